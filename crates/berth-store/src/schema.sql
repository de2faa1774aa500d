-- berth registry metadata, schema version 1.
-- Portable SQL (SQLite and PostgreSQL): no AUTOINCREMENT, no SQLite-only types;
-- times are unix seconds in BIGINT columns; upserts use ON CONFLICT.
-- Every row a garbage collector needs has a created_at, so that an online collector
-- can spare what was linked after its mark phase began.

CREATE TABLE IF NOT EXISTS repositories (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

-- Blob bytes that are stored (globally, once per digest).
CREATE TABLE IF NOT EXISTS blobs (
    digest      TEXT PRIMARY KEY,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Which repository may read which blob: the access boundary of a shared store.
CREATE TABLE IF NOT EXISTS repository_blobs (
    repository_id  INTEGER NOT NULL REFERENCES repositories(id),
    digest         TEXT NOT NULL REFERENCES blobs(digest),
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX IF NOT EXISTS repository_blobs_by_digest ON repository_blobs (digest);

-- Manifests, stored byte for byte as pushed.
CREATE TABLE IF NOT EXISTS manifests (
    repository_id  INTEGER NOT NULL REFERENCES repositories(id),
    digest         TEXT NOT NULL,
    media_type     TEXT NOT NULL,
    artifact_type  TEXT,
    subject        TEXT,
    annotations    TEXT,
    size           BIGINT NOT NULL,
    content        BLOB NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX IF NOT EXISTS manifests_by_subject ON manifests (repository_id, subject);

-- What a manifest references: blobs (config, layers) and child manifests. The
-- collector's mark phase reads this table; a manifest delete is checked against it.
CREATE TABLE IF NOT EXISTS manifest_references (
    repository_id    INTEGER NOT NULL,
    manifest_digest  TEXT NOT NULL,
    child_digest     TEXT NOT NULL,
    child_is_manifest SMALLINT NOT NULL,
    PRIMARY KEY (repository_id, manifest_digest, child_digest)
);
CREATE INDEX IF NOT EXISTS manifest_references_by_child ON manifest_references (child_digest);

CREATE TABLE IF NOT EXISTS tags (
    repository_id    INTEGER NOT NULL REFERENCES repositories(id),
    name             TEXT NOT NULL,
    manifest_digest  TEXT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (repository_id, name)
);
CREATE INDEX IF NOT EXISTS tags_by_manifest ON tags (repository_id, manifest_digest);
-- The most recently set tags first (MetaStore::recent_tags): pages and search order a
-- window of them, not every tag of a repository that has a million.
CREATE INDEX IF NOT EXISTS tags_by_update ON tags (repository_id, updated_at, name);

CREATE TABLE IF NOT EXISTS uploads (
    id          TEXT PRIMARY KEY,
    repository  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_by_age ON uploads (updated_at);
-- Sessions open per repository are counted before another is opened
-- (MetaStore::open_uploads): a bound on what one pusher can leave open.
CREATE INDEX IF NOT EXISTS uploads_by_repository ON uploads (repository);
-- What an object-storage upload keeps between requests (UploadState as JSON): in the
-- database, so that each chunk of a session may reach another replica.
CREATE TABLE IF NOT EXISTS upload_states (
    id          TEXT PRIMARY KEY REFERENCES uploads (id) ON DELETE CASCADE,
    state       TEXT NOT NULL
);

-- Blobs whose rows the garbage collector deleted and whose files it is removing. A
-- link to one of these is refused until the file is gone and the tombstone cleared:
-- the fence between new references and file removal, with no lock held meanwhile.
CREATE TABLE IF NOT EXISTS blob_tombstones (
    digest      TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

-- Blob commits under way: an upload notes its digest before its file is renamed into
-- `blobs/`, and the link that names the file clears the note in its transaction. A
-- note still here at start-up marks a file that a crash (or a refused link) may have
-- left with no row; `berth_store::recover_blob_commits` removes such files.
CREATE TABLE IF NOT EXISTS blob_commits (
    digest      TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

-- Signatures kept through the registry signature extension (OpenShift's
-- `X-Registry-Supports-Signatures`): opaque blobs (simple signing, OpenPGP), named
-- `<digest>@<32 hex>` by the client, per manifest of a repository.
CREATE TABLE IF NOT EXISTS signatures (
    repository_id    INTEGER NOT NULL REFERENCES repositories(id),
    manifest_digest  TEXT NOT NULL,
    name             TEXT NOT NULL,
    content          BLOB NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (repository_id, manifest_digest, name)
);
