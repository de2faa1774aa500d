//! `berth login` and `berth logout`, as skopeo and podman do them: credentials are
//! checked against the registry (`GET /v2/`) before they are saved, and saved as
//! `base64(user:password)` in the same auth.json podman and skopeo read.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use berth_containers_config::{Found, Stored};
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
    #[arg(long, value_name = "BOOL", default_missing_value = "true", num_args = 0..=1, action = clap::ArgAction::Set)]
    tls_verify: Option<bool>,
    /// TLS material for the registry (*.crt authorities, NAME.cert + NAME.key)
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// The registry: HOST[:PORT], optionally with a namespace (HOST/ns)
    registry: String,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Credentials file [default: $REGISTRY_AUTH_FILE or ${XDG_RUNTIME_DIR}/containers/auth.json]
    #[arg(long, value_name = "PATH")]
    authfile: Option<PathBuf>,
    /// Remove every stored credential
    #[arg(long, short = 'a', conflicts_with = "registry")]
    all: bool,
    /// The registry: HOST[:PORT], optionally with a namespace
    #[arg(required_unless_present = "all")]
    registry: Option<String>,
}

/// The auth.json key for what the user typed: no scheme, no trailing slash.
fn key_of(registry: &str) -> anyhow::Result<String> {
    let key = registry
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    if key.is_empty() || key.contains(char::is_whitespace) {
        bail!("invalid registry {registry:?}");
    }
    Ok(key.to_string())
}

pub fn login(a: LoginArgs) -> anyhow::Result<()> {
    let key = key_of(&a.registry)?;
    let config = Config::load()?;
    let files = config.auth_files(a.authfile.as_deref());
    if a.get_login {
        return match files.find(&key)? {
            Some(Found::Credentials { credentials, .. }) => {
                println!("{}", credentials.username);
                Ok(())
            }
            _ => bail!("not logged into {key}"),
        };
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
    let host = key.split('/').next().unwrap_or(&key);
    let reg = Registry::new(
        host,
        Options {
            tls_verify: a.tls_verify.unwrap_or(true),
            credentials: Some(Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            }),
            cert_dirs: config.cert_dirs(host, a.cert_dir.as_deref()),
            ..Options::default()
        },
    )?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(reg.check_login())
        .with_context(|| format!("logging in to {host}"))?;
    match files.login(&key, &username, &password)? {
        Stored::File(_) | Stored::Helper(_) => println!("Login Succeeded!"),
    }
    Ok(())
}

pub fn logout(a: LogoutArgs) -> anyhow::Result<()> {
    let config = Config::load()?;
    let files = config.auth_files(a.authfile.as_deref());
    if a.all {
        files.logout_all()?;
        println!("Removed login credentials for all registries");
        return Ok(());
    }
    let key = key_of(a.registry.as_deref().unwrap_or_default())?;
    files.logout(&key)?;
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
