//! Where a test's `berth serve` keeps its content: the embedded default (files and
//! SQLite under its root), or blobs in S3 (s3s-fs) and metadata in PostgreSQL (a
//! throw-away cluster), both started by berth-testenv. One scenario, run on each.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_testenv::{Postgres, S3};

pub struct Backend {
    /// berth.toml's top-level settings (empty for the embedded default).
    pub config: String,
    /// The same for `berth registry` on the folder (gc, fsck, usage).
    pub env: Vec<(&'static str, String)>,
    /// The bucket's folder in s3s-fs, and the key prefix berth uses in it.
    pub bucket: Option<(PathBuf, String)>,
}

impl Backend {
    pub fn embedded() -> Backend {
        Backend {
            config: String::new(),
            env: Vec::new(),
            bucket: None,
        }
    }

    /// A new bucket of the shared S3 server and a new database of the shared cluster;
    /// blobs under `prefix/` in the bucket.
    pub fn object_storage(prefix: &str) -> Backend {
        let s3 = S3::shared();
        let bucket = s3.bucket();
        let metadata = Postgres::shared().database();
        let store = format!("s3://{bucket}/{prefix}");
        Backend {
            config: format!(
                "metadata = \"{metadata}\"\nblob_store = \"{store}\"\ns3_endpoint = \"{}\"\n\
                 s3_access_key_id = \"{}\"\ns3_secret_access_key = \"{}\"\n",
                s3.endpoint(),
                S3::ACCESS_KEY,
                S3::SECRET_KEY
            ),
            env: vec![
                ("BERTH_METADATA", metadata),
                ("BERTH_BLOB_STORE", store),
                ("BERTH_S3_ENDPOINT", s3.endpoint()),
                ("AWS_ACCESS_KEY_ID", S3::ACCESS_KEY.into()),
                ("AWS_SECRET_ACCESS_KEY", S3::SECRET_KEY.into()),
            ],
            bucket: Some((s3.bucket_dir(&bucket), prefix.to_string())),
        }
    }

    /// Writes berth.toml into `dir` with `extra` after the backend's settings (tables
    /// such as `[[proxy]]` go there); returns its path, for `--config`.
    pub fn config_file(&self, dir: &Path, extra: &str) -> PathBuf {
        let path = dir.join("berth.toml");
        std::fs::write(&path, format!("{}{extra}", self.config)).expect("writing berth.toml");
        path
    }

    /// `berth registry ARGS --root ROOT` on this backend's content.
    pub fn registry(&self, root: &Path, args: &[&str]) -> Output {
        Command::new(super::BERTH)
            .env_remove("BERTH_ROOT")
            .arg("registry")
            .args(args)
            .arg("--root")
            .arg(root)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("berth registry runs")
    }
}
