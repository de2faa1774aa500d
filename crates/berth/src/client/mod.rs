//! The skopeo-style commands: what they share is how an image name is read
//! (`docker://…`), and how a registry is reached (TLS, credentials from flags or from
//! the containers auth files, registries.conf's `insecure` and `blocked`).

pub mod copy;
pub mod images;
pub mod login;
pub mod sync;
pub mod template;

use std::path::PathBuf;

use anyhow::{bail, Context};
use berth_containers_config::{AuthFiles, Env, Registries};
use berth_image::ImageReference;
use berth_remote::{Credentials, Options, Registry};
use clap::Args;

/// How to reach a registry: skopeo's flag names.
#[derive(Args, Debug, Clone)]
pub struct RegistryFlags {
    /// Credentials file [default: $REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json, then docker's]
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
    /// USERNAME[:PASSWORD] for the registry
    #[arg(long, value_name = "USERNAME[:PASSWORD]", conflicts_with_all = ["no_creds", "registry_token"])]
    pub creds: Option<String>,
    /// Access the registry anonymously
    #[arg(long)]
    pub no_creds: bool,
    /// A bearer token for the registry
    #[arg(long, value_name = "TOKEN")]
    pub registry_token: Option<String>,
    /// Require HTTPS and verify certificates (false also allows plain HTTP)
    #[arg(long, value_name = "BOOL", default_missing_value = "true", num_args = 0..=1, action = clap::ArgAction::Set)]
    pub tls_verify: Option<bool>,
    /// Retries of a request that failed for a passing reason (network, 5xx, 429)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retry_times: u32,
}

/// `docker://NAME[:TAG|@DIGEST]` as containers/image reads it.
pub fn docker_reference(image: &str) -> anyhow::Result<ImageReference> {
    let Some((transport, rest)) = image.split_once(':') else {
        bail!("invalid image name {image:?}: expected TRANSPORT:REFERENCE, e.g. docker://quay.io/org/app:v1");
    };
    match transport {
        "docker" => {
            let name = rest.strip_prefix("//").with_context(|| {
                format!("invalid image name {image:?}: docker references start with docker://")
            })?;
            let r: ImageReference = name
                .parse()
                .with_context(|| format!("invalid image name {image:?}"))?;
            Ok(r)
        }
        "oci" | "oci-archive" | "dir" | "docker-archive" | "containers-storage" => {
            bail!("{image}: the {transport}: transport is not supported by this command yet")
        }
        other => bail!("{image}: unknown transport {other:?}; supported: docker://"),
    }
}

/// The user's containers configuration: credentials and registries.conf.
pub struct Config {
    env: Env,
    registries: Registries,
}

impl Config {
    pub fn load() -> anyhow::Result<Config> {
        let env = Env::from_process();
        let registries = Registries::load(&env)?;
        Ok(Config { env, registries })
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    pub fn auth_files(&self, explicit: Option<&std::path::Path>) -> AuthFiles {
        AuthFiles::new(&self.env, explicit)
    }

    /// A client for the registry of `image`, with the credentials the flags or the auth
    /// files give.
    pub fn registry(
        &self,
        image: &ImageReference,
        flags: &RegistryFlags,
    ) -> anyhow::Result<Registry> {
        let entry = self.registries.find(image);
        if entry.is_some_and(|r| r.blocked) {
            bail!("registry {} is blocked in registries.conf", image.domain());
        }
        let insecure = entry.is_some_and(|r| r.insecure);
        let credentials = if flags.no_creds {
            None
        } else if let Some(t) = &flags.registry_token {
            Some(Credentials::Token(t.clone()))
        } else if let Some(c) = &flags.creds {
            let (username, password) = match c.split_once(':') {
                Some((u, p)) => (u.to_string(), p.to_string()),
                None => (
                    c.clone(),
                    rpassword::prompt_password(format!("Password for {c}: "))?,
                ),
            };
            Some(Credentials::Basic { username, password })
        } else {
            let files = self.auth_files(flags.authfile.as_deref());
            files
                .credentials_for(image, self.registries.credential_helpers())?
                .map(|c| match c.identity_token {
                    Some(token) => Credentials::IdentityToken {
                        username: c.username,
                        token,
                    },
                    None => Credentials::Basic {
                        username: c.username,
                        password: c.password,
                    },
                })
        };
        let options = Options {
            tls_verify: flags.tls_verify.unwrap_or(!insecure),
            credentials,
            retries: flags.retry_times,
            ..Options::default()
        };
        Ok(Registry::new(image.domain(), options)?)
    }
}

/// Rust's architecture names in Go's spelling, which images use.
pub fn go_arch(rust: &str) -> &str {
    match rust {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
