//! TLS for a registry whose certificate folder (`--cert-dir`, `certs.d/HOST/`) holds
//! certificates: the system's and Mozilla's authorities (as reqwest's own
//! configuration) and the folder's `*.crt`, the folder's
//! client certificate (`NAME.cert` + `NAME.key`), and one allowance webpki does not
//! make. A self-signed certificate made the usual way (`openssl req -x509`, as
//! Docker's own guide for a registry has it) says `CA:TRUE`; Go's TLS, and so skopeo
//! and podman, take it as the server's certificate when it is trusted, webpki refuses
//! it (`CaUsedAsEndEntity`). It is taken here when it is byte for byte a certificate
//! of the folder and names the host: the user trusted exactly it.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::error::RemoteError;

/// What the certificate folders give: authorities and a client identity.
#[derive(Default)]
struct Folders {
    authorities: Vec<CertificateDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

/// The TLS configuration for `dirs`, or `None` when they hold no certificate (the
/// HTTP client's own configuration then applies). Missing folders add nothing.
pub(crate) fn config_for(
    dirs: &[std::path::PathBuf],
) -> Result<Option<rustls::ClientConfig>, RemoteError> {
    let mut found = Folders::default();
    for dir in dirs {
        read_folder(dir, &mut found)?;
    }
    if found.authorities.is_empty() && found.identity.is_none() {
        return Ok(None);
    }
    let invalid =
        |e: &dyn std::fmt::Display| RemoteError::Invalid(format!("TLS configuration: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    // The system's authorities, as without a folder (one that does not parse is
    // skipped, as reqwest skips it).
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    // And Mozilla's, as reqwest's own configuration has them beside the system's: a
    // host without ca-certificates still reaches a public registry.
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in &found.authorities {
        roots
            .add(cert.clone())
            .map_err(|e| invalid(&format!("a certificate of the folder: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| invalid(&e))?;
    let verifier = Arc::new(TrustedSelfSigned {
        webpki,
        trusted: found.authorities,
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(&e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match found.identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| invalid(&format!("the client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Some(config))
}

/// The last client certificate of the folders (`NAME.cert` followed by `NAME.key`,
/// PEM), for a client that does not verify the server.
pub(crate) fn identity_pem(dirs: &[std::path::PathBuf]) -> Result<Option<Vec<u8>>, RemoteError> {
    let mut pem = None;
    for p in dirs.iter().flat_map(|d| folder_files(d)) {
        if p.extension().is_some_and(|e| e == "cert") {
            let key = p.with_extension("key");
            let mut both = std::fs::read(&p).map_err(|e| bad_file(&p, &e))?;
            both.extend(std::fs::read(&key).map_err(|e| bad_file(&key, &e))?);
            pem = Some(both);
        }
    }
    Ok(pem)
}

/// One folder's `*.crt` (authorities) and `NAME.cert` + `NAME.key` (the client's
/// certificate), in name order as containers/image reads them.
fn read_folder(dir: &Path, found: &mut Folders) -> Result<(), RemoteError> {
    for p in folder_files(dir) {
        match p.extension().and_then(|e| e.to_str()) {
            Some("crt") => {
                let certs = certificates(&p)?;
                if certs.is_empty() {
                    return Err(bad_file(&p, &"no PEM certificate in it"));
                }
                found.authorities.extend(certs);
            }
            Some("cert") => {
                let chain = certificates(&p)?;
                let key = p.with_extension("key");
                let private = PrivateKeyDer::from_pem_file(&key).map_err(|e| bad_file(&key, &e))?;
                found.identity = Some((chain, private));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A certificate folder's files in name order; none when it is missing.
fn folder_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<std::path::PathBuf> =
        entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    paths
}

/// The PEM certificates of file `p`.
fn certificates(p: &Path) -> Result<Vec<CertificateDer<'static>>, RemoteError> {
    CertificateDer::pem_file_iter(p)
        .map_err(|e| bad_file(p, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_file(p, &e))
}

fn bad_file(p: &Path, e: &dyn std::fmt::Display) -> RemoteError {
    RemoteError::Invalid(format!("{}: {e}", p.display()))
}

/// webpki's verdict, except that a certificate the folder holds byte for byte is
/// taken as the server's although it says `CA:TRUE`, when it names the host.
#[derive(Debug)]
struct TrustedSelfSigned {
    webpki: Arc<WebPkiServerVerifier>,
    trusted: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for TrustedSelfSigned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(other)))
                if is_ca_used_as_end_entity(&other)
                    && self
                        .trusted
                        .iter()
                        .any(|t| t.as_ref() == end_entity.as_ref()) =>
            {
                let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
                    rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
                })?;
                cert.verify_is_valid_for_subject_name(server_name)
                    .map_err(|_| {
                        rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
                    })?;
                if !serves_tls(end_entity) {
                    return Err(rustls::Error::InvalidCertificate(
                        CertificateError::InvalidPurpose,
                    ));
                }
                Ok(ServerCertVerified::assertion())
            }
            verdict => verdict,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Whether a certificate may be a TLS server's, as Go's x509 decides it (webpki
/// checks this after `CA:TRUE`, so not for the certificates taken above): it has no
/// ExtendedKeyUsage extension, or one naming serverAuth or any usage. A certificate
/// made for clients alone is refused. Validity is checked before `CA:TRUE`.
fn serves_tls(der: &[u8]) -> bool {
    use x509_cert::der::oid::db::rfc5280::{
        ANY_EXTENDED_KEY_USAGE, ID_CE_EXT_KEY_USAGE, ID_KP_SERVER_AUTH,
    };
    use x509_cert::der::Decode as _;
    let Ok(cert) = x509_cert::Certificate::from_der(der) else {
        return false;
    };
    let extensions = cert.tbs_certificate.extensions.unwrap_or_default();
    let Some(eku) = extensions.iter().find(|e| e.extn_id == ID_CE_EXT_KEY_USAGE) else {
        return true;
    };
    x509_cert::ext::pkix::ExtendedKeyUsage::from_der(eku.extn_value.as_bytes()).is_ok_and(
        |usages| {
            usages
                .0
                .iter()
                .any(|u| *u == ID_KP_SERVER_AUTH || *u == ANY_EXTENDED_KEY_USAGE)
        },
    )
}

fn is_ca_used_as_end_entity(e: &rustls::OtherError) -> bool {
    matches!(
        e.0.downcast_ref::<webpki::Error>(),
        Some(webpki::Error::CaUsedAsEndEntity)
    )
}
