-- The local image store's metadata (images.db). Blob bytes are files under blobs/.
--
-- An image is its config (its ID is the config's digest, as in podman); it may be
-- known under several manifests (the same config pushed as OCI and as Docker v2s2)
-- and several names. A manifest list is a manifest row without an image; it lives
-- while a name points at it, and keeps its members from being pruned.

CREATE TABLE IF NOT EXISTS blobs (
    digest TEXT PRIMARY KEY,
    size   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS images (
    id           TEXT PRIMARY KEY,       -- config digest, sha256:...
    digest       TEXT NOT NULL,          -- the manifest it was last stored with
    created      INTEGER NOT NULL,       -- config `created`, unix seconds (0: unknown)
    created_text TEXT,                   -- config `created` as written
    size         INTEGER NOT NULL,       -- config and layers, as stored (compressed)
    labels       TEXT NOT NULL,          -- JSON object
    architecture TEXT NOT NULL,
    os           TEXT NOT NULL,
    added        INTEGER NOT NULL        -- unix seconds, when stored here
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS manifests (
    digest     TEXT PRIMARY KEY,
    media_type TEXT NOT NULL,
    content    BLOB NOT NULL,
    image      TEXT REFERENCES images(id) ON DELETE CASCADE   -- NULL: a manifest list
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifests_image ON manifests(image);

-- What an image needs: its config and layers.
CREATE TABLE IF NOT EXISTS image_blobs (
    image TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    blob  TEXT NOT NULL,
    PRIMARY KEY (image, blob)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS image_blobs_blob ON image_blobs(blob);

CREATE TABLE IF NOT EXISTS list_members (
    list   TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    member TEXT NOT NULL,
    PRIMARY KEY (list, member)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS list_members_member ON list_members(member);

-- `host/path:tag` -> the manifest it names and the image shown for it (for a list,
-- the member for this machine).
CREATE TABLE IF NOT EXISTS names (
    name     TEXT PRIMARY KEY,
    manifest TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    image    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    added    INTEGER NOT NULL     -- order of naming: an image's names as they came
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS names_image ON names(image);

-- Containers made from images (berth-runtime keeps their files and processes; this is
-- what the store must know): no cascade from images, so an image a container uses
-- cannot be removed under it.
CREATE TABLE IF NOT EXISTS containers (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    image      TEXT NOT NULL REFERENCES images(id),
    image_name TEXT NOT NULL,      -- as the user gave it, for `ps`
    created    INTEGER NOT NULL,   -- unix seconds
    spec       TEXT NOT NULL       -- JSON: what to run and how (berth-runtime's)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS containers_image ON containers(image);

-- Build steps already made (berth-build's cache): a key over the parent state, the
-- instruction and the content it copies -> the state after the step (config and
-- layers, JSON). Layers are blobs: an entry whose blobs went is a miss.
CREATE TABLE IF NOT EXISTS build_cache (
    key     TEXT PRIMARY KEY,
    state   TEXT NOT NULL,
    created INTEGER NOT NULL
) WITHOUT ROWID;

-- The signatures of a manifest, in order, each as containers/image stores one (a bare
-- OpenPGP message, or a zero byte, a format name and its data): they go with the
-- manifest, so removing an image removes them, and a push copies them out.
CREATE TABLE IF NOT EXISTS signatures (
    manifest TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    content  BLOB NOT NULL,
    PRIMARY KEY (manifest, position)
) WITHOUT ROWID;
