-- Access control, in its own database file (auth.db) so that content writes never
-- invalidate the server's in-memory copy of it. Portable SQL: the same tables serve
-- PostgreSQL later.

CREATE TABLE IF NOT EXISTS accounts (
    name               TEXT PRIMARY KEY,   -- user, organization or robot (owner+name)
    kind               TEXT NOT NULL,      -- 'user' | 'org' | 'robot'
    password_hash      TEXT,               -- argon2id PHC or bcrypt; NULL for organizations
    superuser          INTEGER NOT NULL DEFAULT 0,
    default_visibility TEXT,               -- users and organizations: 'public' | 'private'
    created_at         INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS team_members (
    team       TEXT NOT NULL,              -- org/team
    member     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (team, member)
);

CREATE TABLE IF NOT EXISTS grants (
    subject    TEXT NOT NULL,              -- user, org/team or owner+robot
    target     TEXT NOT NULL,              -- namespace or repository
    level      TEXT NOT NULL,              -- 'read' | 'write' | 'admin'
    created_at INTEGER NOT NULL,
    PRIMARY KEY (subject, target)
);
CREATE INDEX IF NOT EXISTS grants_target ON grants (target);

CREATE TABLE IF NOT EXISTS repository_visibility (
    repository TEXT PRIMARY KEY,
    visibility TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Content trust: whether a namespace's or repository's manifests must be signed before
-- they are served, and by which keys (texts: armored or base64 GPG keys, PEM sigstore keys).
CREATE TABLE IF NOT EXISTS trust_settings (
    target        TEXT PRIMARY KEY,        -- namespace or repository
    required      INTEGER NOT NULL,
    gpg_keys      TEXT NOT NULL,           -- JSON array of key texts
    sigstore_keys TEXT NOT NULL,           -- JSON array of key texts
    created_at    INTEGER NOT NULL
);

-- Trust settings of a repository set by an admin of that repository alone (not of its
-- namespace): they never override a namespace that requires signatures. Settings
-- without a row here were set with the namespace's authority (or before this table).
CREATE TABLE IF NOT EXISTS trust_by_repository_admin (
    target     TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);

-- Immutable tags: tags of a namespace or repository matching one of the patterns never
-- move to another manifest nor go once pushed.
CREATE TABLE IF NOT EXISTS immutable_tags (
    target     TEXT PRIMARY KEY,           -- namespace or repository
    patterns   TEXT NOT NULL,              -- JSON array of glob patterns
    created_at INTEGER NOT NULL
);

-- Retention: which tags of a namespace's or repository's repositories the collector
-- deletes (the rule as JSON: keep_last, keep, older_than seconds, never).
CREATE TABLE IF NOT EXISTS retention (
    target     TEXT PRIMARY KEY,           -- namespace or repository
    rule       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Replication rules: what to copy to which registry, when (the rule as JSON, with the
-- target's credentials; see replication.rs).
CREATE TABLE IF NOT EXISTS replication_rules (
    name       TEXT PRIMARY KEY,
    rule       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Quotas: the bytes of distinct blobs a namespace's repositories may link.
CREATE TABLE IF NOT EXISTS quotas (
    namespace  TEXT PRIMARY KEY,
    bytes      BIGINT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,           -- sha256 hex of the token; the token is never stored
    account    TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- Every permission change, written in the transaction that makes it (never a secret).
CREATE TABLE IF NOT EXISTS audit_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    origin     TEXT NOT NULL,
    change     TEXT NOT NULL
);

-- Lockouts after repeated failed logins (kind 'account' or 'source'), so that one
-- started through any replica holds on every replica, and across restarts.
CREATE TABLE IF NOT EXISTS lockouts (
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    locked_until BIGINT NOT NULL,
    PRIMARY KEY (kind, name)
);
