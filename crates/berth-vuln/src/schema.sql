-- berth-vuln's own database (vulndb.sqlite). Portable SQL: no AUTOINCREMENT, times
-- as BIGINT unix seconds (records' `modified`: microseconds), upserts with ON CONFLICT.

-- One row per OSV record, the newest `modified` kept. The JSON is the record as
-- imported (kept for the API and for re-indexing by a later version of berth).
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    modified BIGINT NOT NULL,
    modified_text TEXT NOT NULL,
    published TEXT,
    withdrawn TEXT,
    aliases TEXT NOT NULL,
    json TEXT NOT NULL
);

-- The index matching reads: one row per affected[] entry that names a package,
-- with what evaluating it needs (ranges, versions, severity) as compact JSON.
CREATE TABLE IF NOT EXISTS affected (
    id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (id, seq)
);
CREATE INDEX IF NOT EXISTS affected_package ON affected (ecosystem, name);

-- What was imported when: every answer can say how fresh the data is.
CREATE TABLE IF NOT EXISTS imports (
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    records BIGINT NOT NULL,
    stored BIGINT NOT NULL,
    skipped BIGINT NOT NULL,
    newest_modified TEXT,
    imported_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS imports_time ON imports (imported_at);
