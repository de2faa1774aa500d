//! The skopeo-style commands: what they share is how an image name is read
//! (`docker://…`), and how a registry is reached (TLS, credentials from flags or from
//! the containers auth files, registries.conf's `insecure` and `blocked`).

pub mod build;
pub mod containers;
pub mod copy;
pub mod images;
pub mod local;
pub mod login;
pub mod progress;
pub mod referrers;
pub mod sbom;
pub mod search;
pub mod sign;
pub mod signed;
pub mod sync;
pub mod table;
pub mod template;
pub mod trust;

use std::path::PathBuf;

use anyhow::{bail, Context};
use std::io::IsTerminal;

use berth_containers_config::{AuthFiles, Env, PullSource, Registries, RegistriesError};
use berth_image::ImageReference;
use berth_remote::{Credentials, Options, Registry};
use clap::Args;

// How to reach a registry: skopeo's flag names.
// (A plain comment, not a doc comment: see `Command` in main.rs.)
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
    #[arg(long, value_name = "BOOL", default_missing_value = "true", num_args = 0..=1, require_equals = true, action = clap::ArgAction::Set)]
    pub tls_verify: Option<bool>,
    /// Retries of a request that failed for a passing reason (network, 5xx, 429)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retry_times: u32,
    /// TLS material for the registry: *.crt authorities, NAME.cert + NAME.key client
    /// certificate [default: /etc/containers/certs.d/HOST, /etc/docker/certs.d/HOST]
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// The trust policy for images pulled with these flags (podman's
    /// `--signature-policy` of build, run and create sets it) [default: policy.json's
    /// usual place]
    #[arg(skip)]
    pub signature_policy: Option<PathBuf>,
}

// skopeo's `--username` and `--password` of inspect, list-tags and delete: `--creds`
// in two flags. (A plain comment, not a doc comment: see `Command` in main.rs.)
#[derive(Args, Debug, Clone)]
pub struct AccountFlags {
    /// Username for the registry (with --password)
    #[arg(
        long,
        value_name = "USERNAME",
        conflicts_with_all = ["creds", "no_creds", "registry_token"],
        requires = "password"
    )]
    username: Option<String>,
    /// Password for the registry (with --username)
    #[arg(long, value_name = "PASSWORD", requires = "username")]
    password: Option<String>,
}

impl AccountFlags {
    /// Makes these `flags`' credentials.
    pub fn apply(&self, flags: &mut RegistryFlags) {
        flags.creds = creds_of(&self.username, &self.password, flags.creds.take());
    }
}

/// `--creds` from its two-flag form (`--username` and `--password`, which clap has
/// made come together), else `creds` as given.
pub fn creds_of(
    username: &Option<String>,
    password: &Option<String>,
    creds: Option<String>,
) -> Option<String> {
    match (username, password) {
        (Some(u), Some(p)) => Some(format!("{u}:{p}")),
        _ => creds,
    }
}

impl Default for RegistryFlags {
    /// As the command line leaves them (for pulls no flag asked for: FROM, run).
    fn default() -> Self {
        RegistryFlags {
            authfile: None,
            creds: None,
            no_creds: false,
            registry_token: None,
            tls_verify: None,
            retry_times: 3,
            cert_dir: None,
            signature_policy: None,
        }
    }
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

    /// Where TLS material for `host` is: the folder given, else the first of
    /// containers/image's per-host folders that exists (its `dockerCertDir`: not their
    /// union, where `/etc`'s client certificate replaced the user's own).
    pub fn cert_dirs(&self, host: &str, explicit: Option<&std::path::Path>) -> Vec<PathBuf> {
        match explicit {
            Some(d) => vec![d.to_path_buf()],
            None => {
                let mut v = Vec::new();
                if let Some(home) = self.env.home_path(".config/containers/certs.d") {
                    v.push(home.join(host));
                }
                v.push(self.env.system_path("/etc/containers/certs.d").join(host));
                v.push(self.env.system_path("/etc/docker/certs.d").join(host));
                v.into_iter().find(|d| d.is_dir()).into_iter().collect()
            }
        }
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    /// registries.conf as loaded (for `login`: a host's `insecure`, the default
    /// registry, the credential helpers).
    pub fn registries(&self) -> &Registries {
        &self.registries
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
        self.client(image, image, entry.is_some_and(|r| r.insecure), flags)
    }

    /// A client for one of [`Config::read_sources`]: `logical` read from `source` (with
    /// the source's own `insecure`, and command-line credentials only for its host).
    pub fn source_client(
        &self,
        logical: &ImageReference,
        source: &PullSource,
        flags: &RegistryFlags,
    ) -> anyhow::Result<Registry> {
        self.client(&source.reference, logical, source.insecure, flags)
    }

    /// Where to read `image` (as typed after `docker://`) from, in order: a short name
    /// through registries.conf's aliases and `unqualified-search-registries`, then for
    /// each candidate its mirrors and its own location. A blocked registry is an error.
    pub fn read_sources(
        &self,
        typed: &str,
        image: &ImageReference,
        rules: ShortNames,
    ) -> anyhow::Result<Vec<(ImageReference, PullSource)>> {
        let candidates = if image.is_qualified() {
            vec![image.clone()]
        } else {
            let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
            match self.registries.resolve_short_name(typed, tty) {
                Ok(r) if r.prompt => bail!(
                    "{typed} is a short name and several registries could hold it; name one \
                     (host/{typed}) or add an alias in registries.conf"
                ),
                Ok(r) if !r.candidates.is_empty() => r.candidates,
                // What registries.conf cannot settle. skopeo never resolves a
                // `docker://` name: it is docker.io's. podman's commands read no search
                // list as docker.io too, but one set to `[]`, or several under
                // `enforcing` without a terminal, is an error, as containers/image's
                // shortnames.Resolve has it: falling back would pull from a registry
                // the administrator never listed.
                Err(
                    e @ (RegistriesError::NoSearchRegistries { .. }
                    | RegistriesError::Ambiguous { .. }),
                ) => {
                    let unlisted = matches!(e, RegistriesError::NoSearchRegistries { .. })
                        && !self.registries.search_registries_set();
                    if rules == ShortNames::Podman && !unlisted {
                        return Err(e.into());
                    }
                    vec![image.clone()]
                }
                Err(e) => return Err(e.into()),
                Ok(_) => vec![image.clone()],
            }
        };
        let mut sources = Vec::new();
        for c in &candidates {
            let found = self.registries.pull_sources(c)?;
            sources.extend(found.into_iter().map(|s| (c.clone(), s)));
        }
        Ok(sources)
    }

    /// The first of [`Config::read_sources`] that has the image: the name it goes by
    /// (a short name resolved), the client of the place that has it (maybe a mirror),
    /// and its name there. A mirror serves while the registry is down, the next search
    /// registry when the first lacks the image. A lone source is returned unasked.
    pub async fn open_for_read(
        &self,
        typed: &str,
        image: &ImageReference,
        flags: &RegistryFlags,
        rules: ShortNames,
    ) -> anyhow::Result<(ImageReference, Registry, ImageReference)> {
        let mut sources = self.read_sources(typed, image, rules)?;
        if sources.len() == 1 {
            // One place to read from: the manifest request that follows answers for it
            // (a 404 there is the same "not found"). Asking first would cost a round
            // trip per image, the price of one more request to a remote registry.
            let (logical, source) = sources.remove(0);
            let registry = self.source_client(&logical, &source, flags)?;
            return Ok((logical, registry, source.reference));
        }
        let mut failed = Failures::default();
        for (logical, source) in sources {
            // A source that cannot be used (a blocked mirror) is skipped for the next,
            // as containers/image records the attempt and goes on.
            let registry = match self.source_client(&logical, &source, flags) {
                Ok(r) => r,
                Err(e) => {
                    failed.add(&logical, e);
                    continue;
                }
            };
            let r = source.reference;
            let reference = reference_of(&r);
            match registry
                .manifest_digest(r.path().as_str(), &reference)
                .await
            {
                Ok(Some(_)) => return Ok((logical, registry, r)),
                Ok(None) => {
                    let what = berth_image::reference::join(&r.name(), &reference);
                    failed.add(
                        &logical,
                        berth_remote::RemoteError::NotFound { what }.into(),
                    );
                }
                Err(e) => {
                    tracing::debug!(source = %r.name(), error = %e, "trying the next source");
                    let e = anyhow::Error::new(e).context(format!("reading {}", r.name()));
                    failed.add(&logical, e);
                }
            }
        }
        Err(failed.into_error(typed))
    }

    /// A client for `image`, the place an image `requested` is read from or written to:
    /// the same, or a mirror or rewritten location of it. Credentials given on the
    /// command line are for the registry asked; as containers/image does, they do not
    /// go to a mirror on another host, which gets those of the auth files for its own
    /// host. A blocked registry is refused wherever it is reached from.
    fn client(
        &self,
        image: &ImageReference,
        requested: &ImageReference,
        insecure: bool,
        flags: &RegistryFlags,
    ) -> anyhow::Result<Registry> {
        if self.registries.find(image).is_some_and(|r| r.blocked) {
            bail!("registry {} is blocked in registries.conf", image.domain());
        }
        let given = image.domain() == requested.domain();
        let credentials = if flags.no_creds {
            None
        } else if let (Some(t), true) = (&flags.registry_token, given) {
            Some(Credentials::Token(t.clone()))
        } else if let (Some(c), true) = (&flags.creds, given) {
            let (username, password) = match c.split_once(':') {
                Some((u, p)) => (u.to_string(), p.to_string()),
                None => (
                    c.clone(),
                    rpassword::prompt_password(format!("Password for {c}: ")).map_err(|e| {
                        anyhow::anyhow!(
                            "--creds {c:?} has no password and none could be asked for \
                             ({e}): give USERNAME:PASSWORD, or run on a terminal"
                        )
                    })?,
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
            cert_dirs: self.cert_dirs(image.domain(), flags.cert_dir.as_deref()),
            ..Options::default()
        };
        Ok(Registry::new(image.domain(), options)?)
    }
}

/// Whose rules settle a short name that registries.conf cannot (no search list, or
/// several registries under `enforcing` without a terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShortNames {
    /// skopeo's `docker://NAME`: docker.io's.
    Skopeo,
    /// podman's pull, run and build: an error where a search list is set.
    Podman,
}

/// Why no candidate of a short name could be read: one error per candidate (its
/// last source's: the mirrors come before the registry itself).
#[derive(Default)]
pub struct Failures(Vec<(String, anyhow::Error)>);

impl Failures {
    pub fn add(&mut self, candidate: &ImageReference, e: anyhow::Error) {
        let name = candidate.to_string();
        match self.0.last_mut() {
            Some((last, slot)) if *last == name => *slot = e,
            _ => self.0.push((name, e)),
        }
    }

    /// The one error, or podman's list of them (`N errors occurred while pulling:`
    /// then ` * ERROR` per candidate).
    pub fn into_error(mut self, typed: &str) -> anyhow::Error {
        if self.0.len() <= 1 {
            return self.0.pop().map_or_else(
                || anyhow::anyhow!("{typed}: no registry to read it from"),
                |(_, e)| e,
            );
        }
        let mut text = format!("{} errors occurred while pulling:", self.0.len());
        for (_, e) in &self.0 {
            text.push_str(&format!("\n * {e:#}"));
        }
        anyhow::anyhow!(text)
    }
}

/// The tag or digest that names `r` in its repository: the digest when given, else the
/// tag, else `latest`.
pub fn reference_of(r: &ImageReference) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".into(),
    }
}
