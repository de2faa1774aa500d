-- berth catalog, schema version 1: what is inside the stored images, derived from
-- meta.db and the blob files (everything here can be recomputed by `berth registry
-- scan --all`). Portable SQL as meta.db's (no AUTOINCREMENT, unix seconds in BIGINT,
-- ON CONFLICT upserts), except the full-text table at the end, which is SQLite's FTS5
-- (PostgreSQL would use a tsvector column instead).

-- One row per layer blob, shared by every image that has the layer: it is read once.
CREATE TABLE IF NOT EXISTS layer_artifacts (
    digest            TEXT PRIMARY KEY,
    analyzer_version  INTEGER NOT NULL,
    status            TEXT NOT NULL,      -- 'ok' | 'failed'
    error             TEXT,
    artifacts         TEXT,               -- JSON LayerArtifacts when ok
    analyzed_at       BIGINT NOT NULL
);

-- One row per image manifest (an index's children each have theirs), keyed by digest
-- alone: the same bytes have the same inventory in every repository.
CREATE TABLE IF NOT EXISTS inventories (
    manifest_digest   TEXT PRIMARY KEY,
    analyzer_version  INTEGER NOT NULL,
    status            TEXT NOT NULL,      -- 'ok' | 'failed'
    error             TEXT,
    platform          TEXT,               -- os/arch[/variant] from the config
    os                TEXT,               -- the config's os
    architecture      TEXT,
    os_id             TEXT,               -- os-release ID
    os_version        TEXT,
    os_pretty         TEXT,
    ecosystem         TEXT,
    config_digest     TEXT,
    created           TEXT,               -- the config's created (RFC 3339)
    size              BIGINT,             -- config and layers, compressed
    labels            TEXT,               -- JSON object (the config's Labels)
    diff_ids          TEXT,               -- JSON array (base image by layer prefix)
    bottom_layer      TEXT,               -- diff_ids[0]: base image candidates share it
    base_image        TEXT,
    containerfile     TEXT,               -- JSON Containerfile
    inventory         TEXT,               -- JSON {os, packages}: what a rematch reads
    grade             TEXT,               -- from the last match, allow-list not applied
    next_drop         BIGINT,
    scanned_at        BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS inventories_by_status ON inventories (status);
CREATE INDEX IF NOT EXISTS inventories_by_bottom_layer ON inventories (bottom_layer);

-- The packages of each inventory again, one row each, so that "images that contain
-- package X" is an index lookup, and a page of a package list reads its rows only,
-- in name order or in version order (`version_rank`: the row's place when the
-- inventory's packages are ordered by kind, then version as the package manager
-- compares them, then name; computed when the rows are written). The last five
-- columns are added to older files by CatalogDb::open.
CREATE TABLE IF NOT EXISTS packages (
    manifest_digest  TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    name             TEXT NOT NULL,
    version          TEXT NOT NULL,
    source           TEXT,
    arch             TEXT,
    kind             TEXT NOT NULL,
    layer_index      INTEGER NOT NULL,
    source_version   TEXT,
    license          TEXT,
    purl             TEXT,
    db_path          TEXT,
    version_rank     INTEGER,
    PRIMARY KEY (manifest_digest, seq)
);
CREATE INDEX IF NOT EXISTS packages_by_name ON packages (name, manifest_digest);

-- Package diffs between two inventories, computed on first view (both sides are
-- content-addressed, so a diff stays true until either is scanned again, which
-- deletes it). JSON DiffIndices: positions (`seq`) of the added, removed and changed
-- packages, so a page reads only the rows it shows.
CREATE TABLE IF NOT EXISTS package_diffs (
    old_digest  TEXT NOT NULL,
    new_digest  TEXT NOT NULL,
    diff        TEXT NOT NULL,
    PRIMARY KEY (old_digest, new_digest)
);
CREATE INDEX IF NOT EXISTS package_diffs_by_new ON package_diffs (new_digest);

-- Findings of the last match of each inventory (replaced by every rematch).
CREATE TABLE IF NOT EXISTS findings (
    manifest_digest  TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    id               TEXT NOT NULL,
    package          TEXT NOT NULL,
    installed        TEXT NOT NULL,
    fixed            TEXT,
    level            TEXT NOT NULL,
    published        TEXT,
    finding          TEXT NOT NULL,       -- JSON Finding
    PRIMARY KEY (manifest_digest, seq)
);
-- Every id and alias of every finding: "images affected by CVE-…".
CREATE TABLE IF NOT EXISTS finding_ids (
    vuln_id          TEXT NOT NULL,
    manifest_digest  TEXT NOT NULL,
    PRIMARY KEY (vuln_id, manifest_digest)
);
CREATE INDEX IF NOT EXISTS finding_ids_by_manifest ON finding_ids (manifest_digest);

-- Findings accepted per repository, with why and until when (applied at query time).
CREATE TABLE IF NOT EXISTS allowlist (
    repository   TEXT NOT NULL,
    finding_id   TEXT NOT NULL,
    reason       TEXT NOT NULL,
    expires_at   BIGINT,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (repository, finding_id)
);

-- What was scanned where: one row per manifest of a repository.
CREATE TABLE IF NOT EXISTS scan_state (
    repository       TEXT NOT NULL,
    manifest_digest  TEXT NOT NULL,
    media_type       TEXT NOT NULL,
    status           TEXT NOT NULL,       -- 'ok' | 'failed' | 'skipped' (not an image)
    error            TEXT,
    annotations      TEXT,                -- JSON object (the manifest's annotations)
    children         TEXT,                -- JSON [{digest, platform}] of an index
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (repository, manifest_digest)
);
CREATE INDEX IF NOT EXISTS scan_state_by_status ON scan_state (status);
CREATE INDEX IF NOT EXISTS scan_state_by_manifest ON scan_state (manifest_digest);

-- Search: one row per repository, rebuilt from its scanned images.
-- `facets`: its os, arch, grade and signed facets again, packed `facet=value` joined
-- by U+001F, read with each match to count a search's facets (added to older files by
-- CatalogDb::open).
CREATE TABLE IF NOT EXISTS search_repos (
    id           INTEGER PRIMARY KEY,
    repository   TEXT NOT NULL UNIQUE,
    description  TEXT,
    updated_at   BIGINT NOT NULL,
    facets       TEXT
);
-- Exact filters: (facet, value) -> repository; facets label (key=value), os, arch, grade.
CREATE TABLE IF NOT EXISTS search_facets (
    facet        TEXT NOT NULL,
    value        TEXT NOT NULL,
    repository   TEXT NOT NULL,
    PRIMARY KEY (facet, value, repository)
);
CREATE INDEX IF NOT EXISTS search_facets_by_repository ON search_facets (repository);
-- Free text (rowid = search_repos.id).
CREATE VIRTUAL TABLE IF NOT EXISTS search_text USING fts5 (
    name, description, labels, annotations, platform, packages
);
