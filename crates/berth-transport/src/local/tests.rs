//! The store's rules: names move between images, dangling images, blobs shared and
//! freed, lists protecting their members, and two processes at once.

use std::sync::Arc;

use berth_image::media_type as mt;
use bytes::Bytes;

use super::*;

fn stream(bytes: Vec<u8>) -> ByteStream {
    Box::pin(futures_util::stream::once(async move {
        Ok::<_, std::io::Error>(Bytes::from(bytes))
    }))
}

/// Stores a one-layer image whose config says `label`; returns (ID, manifest digest).
async fn put_image(
    store: &Arc<LocalStore>,
    name: Option<(&str, &str)>,
    label: &str,
    layer: &[u8],
    arch: &str,
) -> (Digest, Digest) {
    let config = format!(
        r#"{{"created":"2026-01-02T03:04:05Z","architecture":"{arch}","os":"linux","config":{{"Labels":{{"l":"{label}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    )
    .into_bytes();
    let (repo, tag) = name.unwrap_or(("localhost/x", "unused"));
    put_config_and_layer(store, repo, name.map(|_| tag), config, layer).await
}

/// Stores an image of `config` and one gzip layer as `repo[:tag]`; returns (ID,
/// manifest digest).
async fn put_config_and_layer(
    store: &Arc<LocalStore>,
    repo: &str,
    tag: Option<&str>,
    config: Vec<u8>,
    layer: &[u8],
) -> (Digest, Digest) {
    let (cd, ld) = (Digest::sha256_of(&config), Digest::sha256_of(layer));
    store.put_blob(&cd, stream(config.clone())).await.unwrap();
    store.put_blob(&ld, stream(layer.to_vec())).await.unwrap();
    let d = store
        .put_manifest(repo, tag, &manifest_of(&config, layer), mt::OCI_MANIFEST)
        .unwrap();
    (cd, d)
}

/// The manifest of an image of `config` and one gzip `layer`.
fn manifest_of(config: &[u8], layer: &[u8]) -> Vec<u8> {
    let (cd, ld) = (Digest::sha256_of(config), Digest::sha256_of(layer));
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{ld}","size":{}}}]}}"#,
        mt::OCI_MANIFEST,
        mt::OCI_CONFIG,
        config.len(),
        mt::OCI_LAYER_GZIP,
        layer.len()
    )
    .into_bytes()
}

fn names(store: &LocalStore, id: &Digest) -> Vec<String> {
    store.find(&id.to_string()).unwrap().names
}

#[tokio::test]
async fn names_move_and_leave_dangling_images() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let (a, _) = put_image(
        &store,
        Some(("docker.io/library/app", "v1")),
        "a",
        b"la",
        "amd64",
    )
    .await;
    assert_eq!(names(&store, &a), ["docker.io/library/app:v1"]);
    // Found by short name, by full name, by ID prefix, by digest.
    assert_eq!(store.find("app:v1").unwrap().id, a);
    assert_eq!(store.find("library/app:v1").unwrap().id, a);
    assert_eq!(store.find(&a.hex()[..6]).unwrap().id, a);
    assert!(matches!(
        store.find("nosuch"),
        Err(TransportError::Local(ImageNotKnown(_)))
    ));
    store.tag(&a, "localhost/other:latest").unwrap();
    assert_eq!(store.find("other").unwrap().id, a);
    // Re-tagging the name onto a new image leaves the first with its other name.
    let (b, _) = put_image(
        &store,
        Some(("docker.io/library/app", "v1")),
        "b",
        b"lb",
        "amd64",
    )
    .await;
    assert_eq!(names(&store, &a), ["localhost/other:latest"]);
    assert_eq!(names(&store, &b), ["docker.io/library/app:v1"]);
    store.untag(&a, None).unwrap();
    let a_img = store.find(&a.to_string()).unwrap();
    assert!(a_img.is_dangling());
    assert!(!store.find(&b.to_string()).unwrap().is_dangling());
    assert_eq!(store.images().unwrap().len(), 2);
}

#[tokio::test]
async fn removing_frees_only_unshared_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let shared = vec![7u8; 1000];
    let (a, _) = put_image(&store, Some(("localhost/a", "1")), "a", &shared, "amd64").await;
    let (b, _) = put_image(&store, Some(("localhost/b", "1")), "b", &shared, "amd64").await;
    let config_a = store.blobs.path(&a);
    let layer = store.blobs.path(&Digest::sha256_of(&shared));
    let removed = store.remove(std::slice::from_ref(&a)).unwrap();
    assert!(!config_a.exists(), "a's config goes");
    assert!(layer.exists(), "the layer b still uses stays");
    assert!(removed.reclaimed > 0 && removed.reclaimed < 1000);
    let removed = store.remove(std::slice::from_ref(&b)).unwrap();
    assert!(!layer.exists());
    assert!(removed.reclaimed >= 1000);
    assert!(store.images().unwrap().is_empty());
}

#[tokio::test]
async fn a_manifest_without_its_blobs_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let cd = Digest::sha256_of(&config);
    store.put_blob(&cd, stream(config.clone())).await.unwrap();
    let missing = Digest::sha256_of(b"never stored");
    let manifest = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{missing}","size":12}}]}}"#,
        mt::OCI_CONFIG,
        config.len(),
        mt::OCI_LAYER_GZIP
    );
    let err = store
        .put_manifest(
            "localhost/x",
            Some("v1"),
            manifest.as_bytes(),
            mt::OCI_MANIFEST,
        )
        .unwrap_err();
    assert!(err.to_string().contains(&missing.to_string()), "{err}");
    assert!(store.images().unwrap().is_empty());
    assert!(store.find("localhost/x:v1").is_err());
}

#[tokio::test]
async fn a_list_keeps_its_members_until_its_name_goes() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let (amd, amd_m) = put_image(&store, None, "amd", b"l1", "amd64").await;
    let (arm, arm_m) = put_image(&store, None, "arm", b"l2", "arm64").await;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{m}","digest":"{amd_m}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},{{"mediaType":"{m}","digest":"{arm_m}","size":1,"platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#,
        mt::OCI_INDEX,
        m = mt::OCI_MANIFEST
    );
    store
        .put_manifest(
            "localhost/multi",
            Some("v1"),
            index.as_bytes(),
            mt::OCI_INDEX,
        )
        .unwrap();
    let images = store.images().unwrap();
    assert!(images.iter().all(|i| i.in_list && !i.is_dangling()));
    let shown = store.find("localhost/multi:v1").unwrap().id;
    let here = Platform::this_machine().architecture;
    assert_eq!(
        shown,
        if here == "arm64" {
            arm.clone()
        } else {
            amd.clone()
        }
    );
    // Read back as a copy source: the index by name, members by digest.
    let top = store.manifest("localhost/multi", "v1").unwrap();
    assert_eq!(top.bytes, index.as_bytes());
    assert!(store
        .manifest("localhost/multi", &arm_m.to_string())
        .is_ok());
    store.untag(&shown, None).unwrap();
    assert!(store.images().unwrap().iter().all(|i| i.is_dangling()));
    assert!(store.manifest("localhost/multi", "v1").is_err());
}

/// Two stores on one root are two berth processes: blob files are deleted only when
/// no other one has the store open, so one never loses a blob it has found.
#[tokio::test]
async fn blob_files_wait_for_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let one = LocalStore::open(dir.path()).unwrap();
    let (a, _) = put_image(&one, Some(("localhost/a", "1")), "a", b"layer-a", "amd64").await;
    let other = LocalStore::open(dir.path()).unwrap();
    let layer = one.blobs.path(&Digest::sha256_of(b"layer-a"));
    let removed = one.remove(std::slice::from_ref(&a)).unwrap();
    assert_eq!(removed.reclaimed, 0);
    assert!(layer.exists(), "another process has the store open");
    assert!(
        other.images().unwrap().is_empty(),
        "the image is gone for everyone"
    );
    // The orphan stays a blob the store has, safe to use while `other` is open.
    assert!(other.has_blob(&Digest::sha256_of(b"layer-a")).unwrap());
    drop(other);
    let removed = one.collect_garbage().unwrap();
    assert!(removed.reclaimed > 0);
    assert!(!layer.exists());
}

/// Pulls and removals at once from several handles: every listed image has every
/// blob it needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pulls_and_removals_stay_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let shared = vec![1u8; 4096];
    let mut tasks = Vec::new();
    for w in 0..4 {
        let root = dir.path().to_path_buf();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let store = LocalStore::open(&root).unwrap();
            for i in 0..10 {
                let label = format!("{w}-{i}");
                let tag = format!("{i}");
                let name = format!("localhost/w{w}");
                let stored = {
                    let (cd, ld) = (label.clone(), shared.clone());
                    // A removal elsewhere may take the shared layer between our blob
                    // write and our manifest: then the manifest is refused, not half
                    // stored, and a retry succeeds.
                    let mut ok = None;
                    for _ in 0..5 {
                        let r = tokio::spawn({
                            let store = store.clone();
                            let (name, tag, cd, ld) =
                                (name.clone(), tag.clone(), cd.clone(), ld.clone());
                            async move {
                                put_image(&store, Some((&name, &tag)), &cd, &ld, "amd64").await
                            }
                        })
                        .await;
                        if let Ok(v) = r {
                            ok = Some(v);
                            break;
                        }
                    }
                    ok
                };
                if let (Some((id, _)), true) = (stored, i % 3 == 0) {
                    store.remove(&[id]).unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let store = LocalStore::open(dir.path()).unwrap();
    for img in store.images().unwrap() {
        let m = store.manifest("", &img.digest.to_string()).unwrap();
        let parsed = Manifest::parse(m.media_type.as_deref(), &m.bytes).unwrap();
        for d in parsed.layers.iter().chain(parsed.config.iter()) {
            assert!(
                store.has_blob(&d.digest).unwrap(),
                "{} misses {}",
                img.id,
                d.digest
            );
            assert!(store.blobs.path(&d.digest).exists());
        }
    }
}

#[tokio::test]
async fn removing_keeps_images_in_use_and_removes_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let (a, _) = put_image(&store, Some(("localhost/a", "1")), "a", b"la", "amd64").await;
    let (b, _) = put_image(&store, Some(("localhost/b", "1")), "b", b"lb", "amd64").await;
    store
        .add_container(&ContainerRecord {
            id: "c".repeat(64),
            name: "user".into(),
            image: a.clone(),
            image_name: "localhost/a:1".into(),
            created: 0,
            spec: "{}".into(),
        })
        .unwrap();
    let removed = store.remove(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(removed.images, vec![b], "the free image goes");
    assert_eq!(removed.in_use.len(), 1);
    assert_eq!(removed.in_use[0].image, a);
    let left: Vec<Digest> = store.images().unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(left, vec![a], "the image in use stays, with its name");
}

/// A name or whole ID names its container even where several IDs start so (`db`
/// with IDs `db…` and `db…`): found first, not lost behind a limit of two.
#[tokio::test]
async fn an_exact_name_wins_over_id_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let (image, _) = put_image(&store, Some(("localhost/a", "1")), "a", b"la", "amd64").await;
    for (id, name) in [("db1", "one"), ("db2", "two"), ("ff0", "db")] {
        store
            .add_container(&ContainerRecord {
                id: format!("{id}{}", "0".repeat(61)),
                name: name.into(),
                image: image.clone(),
                image_name: "localhost/a:1".into(),
                created: 0,
                spec: "{}".into(),
            })
            .unwrap();
    }
    assert_eq!(store.container("db").unwrap().name, "db");
    assert_eq!(store.container("db1").unwrap().name, "one");
    assert!(store.container("d").is_err(), "ambiguous");
}

#[test]
fn abandoned_uploads_go_when_the_store_is_next_opened_alone() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = dir.path().join("uploads");
    let abandoned = uploads.join("0bbc9ed0-8ddf-4c0e-9fd7-8e4b374f194c");
    {
        let _first = LocalStore::open(dir.path()).unwrap();
        // What a pull killed mid-blob leaves.
        std::fs::write(&abandoned, b"half a layer").unwrap();
    }
    {
        let _running = LocalStore::open(dir.path()).unwrap();
        std::fs::write(uploads.join("in-flight"), b"being written").unwrap();
        // Another process (here another open of the store) may be writing them.
        let other = LocalStore::open(dir.path()).unwrap();
        assert!(
            uploads.join("in-flight").exists(),
            "kept while another has the store"
        );
        assert_eq!(other.sweep_uploads().unwrap(), 0);
    }
    let _rerun = LocalStore::open(dir.path()).unwrap();
    assert!(
        !abandoned.exists(),
        "the next run removes what the interrupted one left"
    );
    assert!(!uploads.join("in-flight").exists());
}

/// Signatures stay with their manifest: added once each, in order, and removed with
/// the image.
#[tokio::test]
async fn signatures_live_and_go_with_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let (id, d) = put_image(&store, Some(("localhost/s", "v1")), "s", b"ls", "amd64").await;
    assert!(store.signatures(&d).unwrap().is_empty());
    store
        .add_signatures(&d, &[b"one".to_vec(), b"two".to_vec()])
        .unwrap();
    store
        .add_signatures(&d, &[b"two".to_vec(), b"three".to_vec()])
        .unwrap();
    assert_eq!(
        store.signatures(&d).unwrap(),
        [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
    store.remove(&[id]).unwrap();
    assert!(store.signatures(&d).unwrap().is_empty());
    // Not for a manifest the store does not have.
    assert!(store.add_signatures(&d, &[b"x".to_vec()]).is_err());
}

#[test]
fn a_blob_file_error_says_its_cause_once() {
    let ro = || std::io::Error::from_raw_os_error(30);
    let e = once(berth_store::StoreError::Io {
        context: "creating uploads/x".into(),
        source: ro(),
    });
    // As anyhow prints a chain with `{:#}`.
    let mut whole = e.to_string();
    let mut next = std::error::Error::source(&e);
    while let Some(cause) = next {
        whole.push_str(&format!(": {cause}"));
        next = cause.source();
    }
    assert_eq!(whole, format!("creating uploads/x: {}", ro()));
}

/// The store's folder is its owner's alone, made so and tightened when it was made
/// before: images' root file systems below it keep their setuid files and devices.
#[test]
fn the_store_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let made = dir.path().join("made");
    LocalStore::open(&made).unwrap();
    let before = dir.path().join("before");
    std::fs::create_dir(&before).unwrap();
    std::fs::set_permissions(&before, std::fs::Permissions::from_mode(0o755)).unwrap();
    LocalStore::open(&before).unwrap();
    for root in [made, before] {
        let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", root.display());
    }
}

/// A config that parses as an image config but is not the shape callers edit
/// (`rootfs` a string) is refused when read, not a panic in a build or a commit.
#[tokio::test]
async fn a_config_of_the_wrong_shape_is_refused_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":"x"}"#.to_vec();
    let (cd, _) = put_config_and_layer(&store, "localhost/odd", Some("v1"), config, b"layer").await;
    let e = store.image_config(&cd).unwrap_err();
    assert!(e.to_string().contains("rootfs is not an object"), "{e}");
}

/// The image ID is the config's digest: a manifest pairing a held image's config with
/// other layers must not replace its layers, unless they hold the same content (the
/// image recompressed).
#[tokio::test]
async fn a_held_images_layers_are_replaced_only_by_the_same_content() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let gzip = |data: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    };
    let trusted = b"the trusted layer's tar".to_vec();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::sha256_of(&trusted)
    )
    .into_bytes();
    let (id, _) = put_config_and_layer(
        &store,
        "localhost/t",
        Some("v1"),
        config.clone(),
        &gzip(&trusted),
    )
    .await;
    // The same content uncompressed: another digest, the same diff ID.
    let (same, _) =
        put_config_and_layer(&store, "localhost/t", Some("v2"), config.clone(), &trusted).await;
    assert_eq!(same, id);
    assert_eq!(store.layers(&id).unwrap(), [Digest::sha256_of(&trusted)]);
    // Other content under the trusted config: refused, the image kept as it was.
    let hostile = gzip(b"hostile");
    store
        .put_blob(&Digest::sha256_of(&hostile), stream(hostile.clone()))
        .await
        .unwrap();
    let manifest = manifest_of(&config, &hostile);
    let e = store
        .put_manifest("localhost/evil", Some("v1"), &manifest, mt::OCI_MANIFEST)
        .unwrap_err();
    assert!(e.to_string().contains("not that image's layer"), "{e}");
    assert_eq!(store.layers(&id).unwrap(), [Digest::sha256_of(&trusted)]);
    assert!(store.find("localhost/evil:v1").is_err());
}
