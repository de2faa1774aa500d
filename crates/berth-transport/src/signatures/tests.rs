//! Each place keeps what it is given and gives it back in order: `dir:` files, the
//! registry extension, lookaside folders and URLs, sigstore attachments (once each).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use berth_auth::{Actor, Change, Secret};
use berth_remote::{Credentials, Options};

use super::*;
use crate::dir::DirImage;

fn simple(text: &str) -> ImageSignature {
    // 0xA3: an OpenPGP compressed-data packet, as gpg writes a signed message.
    let mut b = vec![0xA3];
    b.extend_from_slice(text.as_bytes());
    ImageSignature::Simple(b)
}

fn sigstore(text: &str) -> ImageSignature {
    ImageSignature::sigstore(text.as_bytes().to_vec(), format!("c2ln-{text}"))
}

fn storage(yaml: &str, home: &Path) -> SignatureStorage {
    let d = RegistriesD::from_files([(PathBuf::from("t.yaml"), yaml.to_string())]).unwrap();
    SignatureStorage::new(d, Env::under(home))
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr.to_string()
}

fn client(host: &str, user: bool) -> Arc<Registry> {
    let options = Options {
        tls_verify: false,
        credentials: user.then(|| Credentials::Basic {
            username: "alice".into(),
            password: "pw".into(),
        }),
        ..Options::default()
    };
    Arc::new(Registry::new(host, options).unwrap())
}

/// A berth registry with user alice and one image `alice/app:v1`; returns the host
/// and the image's manifest digest.
async fn berth_registry(dir: &Path) -> (String, Digest) {
    let server =
        berth_registry::Registry::open(berth_registry::RegistryConfig::new(dir.join("root")))
            .unwrap();
    server
        .auth()
        .store()
        .apply(
            &Actor::local(),
            &Change::UserAdd {
                name: "alice".into(),
                password: Secret("pw".into()),
                superuser: false,
            },
        )
        .unwrap();
    let host = serve(server.router()).await;
    let reg = client(&host, true);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = Digest::sha256_of(config);
    reg.upload_blob("alice/app", &cd, once(config))
        .await
        .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": []
    }))
    .unwrap();
    let d = reg
        .put_manifest("alice/app", "v1", &manifest, OCI_MANIFEST)
        .await
        .unwrap();
    (host, d)
}

fn place(reg: Arc<Registry>, repo: &str) -> Place {
    Place::Registry {
        registry: reg,
        repo: repo.into(),
        reference: "v1".into(),
    }
}

#[tokio::test]
async fn dir_keeps_exactly_the_signatures_written() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Digest::sha256_of(b"m");
    let p = Place::Dir(DirImage::new(tmp.path().to_path_buf()));
    let none = SignatureStorage::default();
    assert!(p.signatures(&d, &none).await.unwrap().is_empty());
    let two = [simple("a"), sigstore("b")];
    p.put_signatures(&d, &two, &none).await.unwrap();
    assert!(tmp.path().join("signature-2").is_file());
    assert_eq!(p.signatures(&d, &none).await.unwrap(), two);
    p.put_signatures(&d, &two[..1], &none).await.unwrap();
    assert!(!tmp.path().join("signature-2").exists());
    assert_eq!(p.signatures(&d, &none).await.unwrap(), two[..1]);
    // A blob that is no signature is an error, not an empty list.
    std::fs::write(tmp.path().join("signature-1"), b"junk").unwrap();
    let e = p.signatures(&d, &none).await.unwrap_err();
    assert!(e.to_string().contains("signature-1"), "{e}");
}

#[tokio::test]
async fn oci_and_archives_refuse_with_containers_image_words() {
    let tmp = tempfile::tempdir().unwrap();
    let oci = Place::Oci(crate::oci::Layout::new(tmp.path().join("o"), None));
    let e = oci
        .put_signatures(
            &Digest::sha256_of(b"m"),
            &[simple("a")],
            &SignatureStorage::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Pushing signatures for OCI images is not supported"
    );
    // Nothing to store is no error.
    oci.put_signatures(&Digest::sha256_of(b"m"), &[], &SignatureStorage::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn registry_extension_and_sigstore_attachments() {
    let tmp = tempfile::tempdir().unwrap();
    let (host, d) = berth_registry(tmp.path()).await;
    let p = place(client(&host, true), "alice/app");
    let st = storage(
        "default-docker:\n  use-sigstore-attachments: true\n",
        tmp.path(),
    );
    assert!(p.signatures(&d, &st).await.unwrap().is_empty());
    let sigs = [simple("one"), sigstore("two"), sigstore("three")];
    p.put_signatures(&d, &sigs, &st).await.unwrap();
    // Again: nothing is added twice, neither to the extension nor to the attachments.
    p.put_signatures(&d, &sigs, &st).await.unwrap();
    assert_eq!(p.signatures(&d, &st).await.unwrap(), sigs);
    let reg = client(&host, true);
    let att = reg
        .manifest("alice/app", &attachment_tag(&d))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&att.bytes).unwrap();
    assert_eq!(v["layers"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(
        v["layers"][0]["mediaType"],
        berth_signature::sigstore::PAYLOAD_MEDIA_TYPE
    );
    // No lookaside was written: the registry keeps them.
    assert!(!tmp.path().join("var").exists());
    // Without use-sigstore-attachments, sigstore signatures are not read, and not written.
    let plain = storage("", tmp.path());
    assert_eq!(p.signatures(&d, &plain).await.unwrap(), sigs[..1]);
    let e = p.put_signatures(&d, &sigs[1..2], &plain).await.unwrap_err();
    assert!(e.to_string().contains("use-sigstore-attachments"), "{e}");
}

/// A registry without the extension: signatures go to the file lookaside (staging
/// when named) and are read from a lookaside URL.
#[tokio::test]
async fn lookaside_file_and_http() {
    let tmp = tempfile::tempdir().unwrap();
    let host = serve(axum::Router::new().route("/v2/", get(|| async { "{}" }))).await;
    let p = place(client(&host, false), "team/app");
    let d = Digest::sha256_of(b"m");
    let base = tmp.path().join("la");
    let yaml = format!(
        "docker:\n  {host}/team:\n    lookaside: file://{}\n",
        base.display()
    );
    let st = storage(&yaml, tmp.path());
    p.put_signatures(&d, &[simple("a")], &st).await.unwrap();
    p.put_signatures(&d, &[simple("b"), simple("a")], &st)
        .await
        .unwrap();
    let folder = base.join(format!("team/app@sha256={}", d.hex()));
    assert!(folder.join("signature-2").is_file());
    assert!(!folder.join("signature-3").exists());
    assert_eq!(
        p.signatures(&d, &st).await.unwrap(),
        [simple("a"), simple("b")]
    );

    // The same folder over HTTP: read until the first 404.
    let served = folder.clone();
    let web = serve(axum::Router::new().route(
        "/la/{*rest}",
        get(
            move |axum::extract::Path(rest): axum::extract::Path<String>| {
                let served = served.clone();
                async move {
                    let name = rest.rsplit('/').next().unwrap_or_default().to_string();
                    match std::fs::read(served.join(name)) {
                        Ok(b) => Ok(b),
                        Err(_) => Err(axum::http::StatusCode::NOT_FOUND),
                    }
                }
            },
        ),
    ))
    .await;
    let yaml = format!("default-docker:\n  lookaside: http://{web}/la\n");
    let st = storage(&yaml, tmp.path());
    assert_eq!(
        p.signatures(&d, &st).await.unwrap(),
        [simple("a"), simple("b")]
    );
    let e = p.put_signatures(&d, &[simple("c")], &st).await.unwrap_err();
    assert!(e.to_string().contains("lookaside-staging"), "{e}");
}

/// Writes go to `lookaside-staging` when it is named; reads come from `lookaside` (what
/// a publisher copies the staging folder to).
#[tokio::test]
async fn lookaside_staging_takes_the_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let host = serve(axum::Router::new().route("/v2/", get(|| async { "{}" }))).await;
    let p = place(client(&host, false), "team/app");
    let d = Digest::sha256_of(b"m");
    let (staging, public) = (tmp.path().join("staging"), tmp.path().join("public"));
    let yaml = format!(
        "default-docker:\n  lookaside: file://{}\n  lookaside-staging: file://{}\n",
        public.display(),
        staging.display()
    );
    let st = storage(&yaml, tmp.path());
    p.put_signatures(&d, &[simple("a")], &st).await.unwrap();
    let leaf = format!("team/app@sha256={}/signature-1", d.hex());
    assert!(staging.join(&leaf).is_file());
    assert!(!public.exists());
    assert!(p.signatures(&d, &st).await.unwrap().is_empty());
    copy_tree(&staging, &public);
    assert_eq!(p.signatures(&d, &st).await.unwrap(), [simple("a")]);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}
