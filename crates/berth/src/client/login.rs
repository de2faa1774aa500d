//! `berth login` and `berth logout`, as skopeo and podman do them: credentials are
//! checked against the registry (`GET /v2/`) before they are saved, and saved as
//! `base64(user:password)` in the same auth.json podman and skopeo read.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use berth_containers_config::Stored;
use berth_remote::{Credentials, Options, Registry};
use clap::Args;

use super::Config;

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username [default: asked on the terminal]
    #[arg(long, short = 'u')]
    username: Option<String>,
    /// Password [default: asked on the terminal]
    #[arg(long, short = 'p', conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    password_stdin: bool,
    /// Credentials file [default: $REGISTRY_AUTH_FILE or ${XDG_RUNTIME_DIR}/containers/auth.json]
    #[arg(long, value_name = "PATH")]
    authfile: Option<PathBuf>,
    /// Print the user name stored for the registry, and nothing else
    #[arg(long)]
    get_login: bool,
    /// Require HTTPS and verify certificates (false also allows plain HTTP)
    #[arg(long, value_name = "BOOL", default_missing_value = "true", num_args = 0..=1, require_equals = true, action = clap::ArgAction::Set)]
    tls_verify: Option<bool>,
    /// TLS material for the registry (*.crt authorities, NAME.cert + NAME.key)
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// The registry: HOST[:PORT], optionally with a namespace (HOST/ns) [default: the
    /// first of registries.conf's unqualified-search-registries]
    registry: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Credentials file [default: $REGISTRY_AUTH_FILE or ${XDG_RUNTIME_DIR}/containers/auth.json]
    #[arg(long, value_name = "PATH")]
    authfile: Option<PathBuf>,
    /// Remove every stored credential
    #[arg(long, short = 'a', conflicts_with = "registry")]
    all: bool,
    /// The registry: HOST[:PORT], optionally with a namespace [default: the first of
    /// registries.conf's unqualified-search-registries]
    registry: Option<String>,
}

/// The auth.json key for what the user typed. A URL means its whole registry, as
/// containers/common's `parseCredentialsKey` reads it: `https://quay.io/v2/` is
/// `quay.io`, so that the credentials are found again for `quay.io/x/y`. Without a
/// scheme, a path names a namespace (`quay.io/team`); a trailing slash is dropped.
fn key_of(registry: &str) -> anyhow::Result<String> {
    let key = match registry
        .strip_prefix("https://")
        .or_else(|| registry.strip_prefix("http://"))
    {
        Some(url) => url.split('/').next().unwrap_or(url),
        None => registry.trim_end_matches('/'),
    };
    if key.is_empty() || key.contains(char::is_whitespace) {
        bail!("invalid registry {registry:?}");
    }
    Ok(key.to_string())
}

/// The registry named, else podman's default: the first search registry.
fn registry_or_default(given: Option<&str>, config: &Config) -> anyhow::Result<String> {
    match given {
        Some(r) => key_of(r),
        None => match config.registries().unqualified_search_registries().first() {
            Some(first) => key_of(first),
            None => bail!("no registries found in registries.conf, a registry must be provided"),
        },
    }
}

pub fn login(a: LoginArgs) -> anyhow::Result<()> {
    let config = Config::load()?;
    let key = registry_or_default(a.registry.as_deref(), &config)?;
    let files = config.auth_files(a.authfile.as_deref());
    let stored = files.credentials(&key, config.registries().credential_helpers())?;
    if a.get_login {
        return match stored {
            Some(c) => {
                println!("{}", c.username);
                Ok(())
            }
            None => bail!("not logged into {key}"),
        };
    }
    let host = key.split('/').next().unwrap_or(&key);
    // registries.conf's entry for the host (not a namespace's: the check is of the
    // whole host), as containers/image's CheckAuth reads it: a blocked registry is not
    // sent the password, and `insecure` holds unless --tls-verify says otherwise.
    let entry = config.registries().find_name(host);
    if entry.is_some_and(|r| r.blocked) {
        bail!("registry {host} is blocked in registries.conf");
    }
    let insecure = entry.is_some_and(|r| r.insecure);
    let check = |username: &str, password: &str| -> anyhow::Result<()> {
        let reg = Registry::new(
            host,
            Options {
                tls_verify: a.tls_verify.unwrap_or(!insecure),
                credentials: Some(Credentials::Basic {
                    username: username.to_string(),
                    password: password.to_string(),
                }),
                cert_dirs: config.cert_dirs(host, a.cert_dir.as_deref()),
                ..Options::default()
            },
        )?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(reg.check_login())
            .with_context(|| format!("logging in to {host}"))
    };
    // As podman: without a user name or password given, credentials already stored
    // for the registry are tried first, and kept when they still work.
    let nothing_given = a.username.is_none() && a.password.is_none() && !a.password_stdin;
    if let Some(c) =
        stored.filter(|c| nothing_given && !c.username.is_empty() && !c.password.is_empty())
    {
        println!("Authenticating with existing credentials for {key}");
        if check(&c.username, &c.password).is_ok() {
            println!("Existing credentials are valid. Already logged in to {host}");
            return Ok(());
        }
        println!("Existing credentials are invalid, please enter valid username and password");
    }
    let username = match a.username {
        Some(u) => u,
        None => prompt_line("Username: ")?,
    };
    let password = match (a.password, a.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) if std::io::stdin().is_terminal() => {
            rpassword::prompt_password("Password: ")?
        }
        (None, false) => bail!("no password: use --password, --password-stdin, or a terminal"),
    };
    if username.is_empty() || password.is_empty() {
        bail!("username and password must not be empty");
    }
    check(&username, &password)?;
    let helpers = config.registries().credential_helpers();
    match files.login(&key, &username, &password, helpers)? {
        Stored::File(_) | Stored::Helper(_) => println!("Login Succeeded!"),
    }
    Ok(())
}

pub fn logout(a: LogoutArgs) -> anyhow::Result<()> {
    let config = Config::load()?;
    let files = config.auth_files(a.authfile.as_deref());
    if a.all {
        files.logout_all(config.registries().credential_helpers())?;
        println!("Removed login credentials for all registries");
        return Ok(());
    }
    let key = registry_or_default(a.registry.as_deref(), &config)?;
    files.logout(&key, config.registries().credential_helpers())?;
    println!("Removed login credentials for {key}");
    Ok(())
}

fn prompt_line(prompt: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("no username: use --username");
    }
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::key_of;

    #[test]
    fn a_url_means_its_whole_registry_and_a_path_without_one_a_namespace() {
        let key = |s| key_of(s).unwrap();
        assert_eq!(key("https://quay.io/v2/"), "quay.io");
        assert_eq!(key("http://localhost:5000/v1/x"), "localhost:5000");
        assert_eq!(key("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(key("quay.io/team/"), "quay.io/team");
        assert_eq!(key("quay.io"), "quay.io");
        assert!(key_of("https://").is_err());
        assert!(key_of("quay .io").is_err());
    }
}
