//! TLS to PostgreSQL, set as libpq sets it: `sslmode` and `sslrootcert` in the
//! connection URL (`postgres://…/berth?sslmode=verify-full&sslrootcert=/etc/ca.pem`),
//! so that the URL an operator already gives psql works here.
//!
//! - `sslmode=require`, `verify-ca` or `verify-full`: TLS (rustls, ring), and the
//!   server's certificate is always verified, host name included (libpq's
//!   `verify-full`): a managed database is reached over networks berth does not own,
//!   and an unverified TLS connection gives a password to whoever answers.
//! - `sslrootcert=FILE`: the CA certificates (PEM) to trust, instead of the system's
//!   (`sslrootcert=system`, or none given: the operating system's roots).
//! - Otherwise (`disable`, `prefer`, nothing): no TLS, as before. `prefer` does not try
//!   TLS: with verification it would refuse servers that plaintext reaches today
//!   (Debian's PostgreSQL answers TLS with a self-signed certificate by default).
//!
//! rust-postgres's own parser knows only `disable`, `prefer` and `require` and no
//! `sslrootcert`, so both are taken out of the URL first.

use std::path::Path;
use std::sync::Arc;

use postgres::{Client, Config, NoTls};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connection URL could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("the PostgreSQL connection URL: {}", crate::message(.0))]
    Url(#[from] postgres::Error),
    #[error("sslrootcert {path}: {reason}")]
    RootCert { path: String, reason: String },
    #[error("TLS to PostgreSQL: {0}")]
    Tls(String),
}

/// Where the database is and how to reach it: the parsed settings, and TLS when the
/// URL asks for it.
#[derive(Clone)]
pub struct Target {
    config: Config,
    tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Target {
    /// Reads `url` (`postgres://…` or libpq's `key=value` form).
    pub fn parse(url: &str) -> Result<Target, SettingsError> {
        let (url, root) = take_tls_settings(url);
        let config: Config = url.parse()?;
        let tls = match config.get_ssl_mode() {
            postgres::config::SslMode::Require => Some(connector(root.as_deref())?),
            _ => None,
        };
        Ok(Target { config, tls })
    }

    /// Whether connections use TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A new connection.
    pub fn connect(&self) -> Result<Client, postgres::Error> {
        match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        }
    }
}

/// The URL without `sslrootcert` (its value returned) and with libpq's verifying
/// modes said as `require`, which rust-postgres knows.
fn take_tls_settings(url: &str) -> (String, Option<String>) {
    let mut root = None;
    let mut keep = |key: &str, value: &str| -> Option<String> {
        match (key, value) {
            ("sslrootcert", v) => {
                root = Some(v.to_string());
                None
            }
            ("sslmode", "verify-ca" | "verify-full") => Some("require".into()),
            (_, v) => Some(v.to_string()),
        }
    };
    let out = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let pairs: Vec<String> = query
                    .split('&')
                    .filter_map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        let decoded = percent_decode(v);
                        keep(k, &decoded).map(|nv| match nv == decoded {
                            true => pair.to_string(),
                            false => format!("{k}={nv}"),
                        })
                    })
                    .collect();
                match pairs.is_empty() {
                    true => base.to_string(),
                    false => format!("{base}?{}", pairs.join("&")),
                }
            }
        }
    } else {
        // key=value pairs separated by spaces (values with spaces are quoted; such a
        // value is passed on as written).
        url.split_whitespace()
            .filter_map(|pair| match pair.split_once('=') {
                Some((k, v)) if !v.starts_with('\'') => keep(k, v).map(|nv| format!("{k}={nv}")),
                _ => Some(pair.to_string()),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    (out, root)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// rustls with the roots `sslrootcert` names (a PEM file, or `system`).
fn connector(root: Option<&str>) -> Result<MakeRustlsConnect, SettingsError> {
    let mut roots = rustls::RootCertStore::empty();
    match root {
        Some(path) if path != "system" => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(Path::new(path))
                    .and_then(|certs| certs.collect())
                    .map_err(|e| SettingsError::RootCert {
                        path: path.to_string(),
                        reason: e.to_string(),
                    })?;
            if certs.is_empty() {
                return Err(SettingsError::RootCert {
                    path: path.to_string(),
                    reason: "no certificate in the file".into(),
                });
            }
            for cert in certs {
                roots.add(cert).map_err(|e| SettingsError::RootCert {
                    path: path.to_string(),
                    reason: e.to_string(),
                })?;
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // One unreadable system certificate does not stop the others.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(SettingsError::Tls(
                    "no system CA certificates were found: name the CA with sslrootcert=FILE"
                        .into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SettingsError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_come_out_of_the_url() {
        let (url, root) =
            take_tls_settings("postgres://u:p@db:5432/berth?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x");
        assert_eq!(
            url,
            "postgres://u:p@db:5432/berth?sslmode=require&application_name=x"
        );
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        let (url, root) = take_tls_settings("postgres://db/berth?sslrootcert=/ca.pem");
        assert_eq!(
            (url.as_str(), root.as_deref()),
            ("postgres://db/berth", Some("/ca.pem"))
        );
        let (url, root) =
            take_tls_settings("host=db user=u sslmode=verify-ca sslrootcert=/ca.pem dbname=b");
        assert_eq!(url, "host=db user=u sslmode=require dbname=b");
        assert_eq!(root.as_deref(), Some("/ca.pem"));
        let (url, root) = take_tls_settings("postgres://db/berth");
        assert_eq!((url.as_str(), root), ("postgres://db/berth", None));
    }

    #[test]
    fn plaintext_unless_asked() {
        for url in [
            "postgres://db/berth",
            "postgres://db/berth?sslmode=prefer",
            "postgres://db/berth?sslmode=disable",
        ] {
            assert!(!Target::parse(url).unwrap().tls(), "{url}");
        }
        let e = Target::parse("postgres://db/b?sslmode=require&sslrootcert=/nonexistent/ca.pem")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("sslrootcert /nonexistent/ca.pem:"),
            "{e}"
        );
        assert!(Target::parse("postgres://db/b?sslmode=sometimes").is_err());
    }
}
