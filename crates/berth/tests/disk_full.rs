//! The registry's disk fills up, then becomes read-only, in the middle of pushes:
//! each failing push gets a clear answer (507 "storage is full", 503 "storage is
//! read-only") instead of an internal error, what was stored before is served byte
//! for byte, the server keeps answering, nothing half-written is visible
//! (`berth registry fsck` is clean), and pushes succeed again once space (or write
//! access) returns, without a restart.
//!
//! Mounts a small tmpfs as the registry's root, so it needs root (CAP_SYS_ADMIN), as
//! the local store's full-disk test in `local_images.rs` does.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::process::{data, push_blob, request, Resp, Serve};
use common::{admin, sha256};

struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Mount {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(at.to_path_buf())
    }

    fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mount -o remount,{options}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A folder made read-only by a read-only bind mount over itself, writable again when
/// dropped.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn bind(dir: &Path) -> ReadOnly {
        std::fs::create_dir_all(dir).unwrap();
        for args in [&["--bind"][..], &["-o", "remount,bind,ro"][..]] {
            let out = Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .output()
                .expect("running mount");
            assert!(
                out.status.success(),
                "mount {args:?} {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ReadOnly(dir.to_path_buf())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn manifest(config: &str, layer: &str, layer_size: usize) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{layer_size}}}]}}"#
    )
}

fn put_manifest(addr: &str, repo: &str, tag: &str, body: &str) -> Resp {
    request(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[(
            "Content-Type",
            "application/vnd.oci.image.manifest.v1+json".into(),
        )],
        body.as_bytes(),
    )
}

fn one_line(r: &Resp) -> String {
    format!("{} {}", r.status, String::from_utf8_lossy(&r.body))
}

#[test]
fn full_then_read_only_disk_answers_clearly_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mount = Mount::tmpfs(&root, "24m");
    let s = Serve::start(&root, &["--catalog=false"], &[]);
    s.wait_ready();
    let addr = s.addr.clone();

    // Stored before the disk fills.
    let config = push_blob(&addr, "app", b"{}");
    let layer_bytes = data(1 << 20, 7);
    let layer = push_blob(&addr, "app", &layer_bytes);
    let v1 = manifest(&config, &layer, layer_bytes.len());
    assert_eq!(put_manifest(&addr, "app", "v1", &v1).status, 201);

    // A blob larger than the disk: monolithic, then chunked.
    let big = data(40 << 20, 9);
    let big_digest = sha256(&big);
    let r = request(
        &addr,
        "POST",
        &format!("/v2/app/blobs/uploads/?digest={big_digest}"),
        &[],
        &big,
    );
    assert_eq!(
        r.status,
        507,
        "monolithic push onto a full disk: {}",
        one_line(&r)
    );
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        body.contains("UNAVAILABLE") && body.contains("storage is full"),
        "the refusal says why: {body}"
    );
    let r = request(&addr, "POST", "/v2/app/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 202);
    let session = r.header("location").unwrap();
    let r = request(
        &addr,
        "PATCH",
        &session,
        &[("Content-Range", format!("0-{}", big.len() - 1))],
        &big,
    );
    assert_eq!(r.status, 507, "chunk onto a full disk: {}", one_line(&r));

    // The server still answers, and what it had is intact; the big blob is not there.
    let r = request(&addr, "GET", "/v2/app/manifests/v1", &[], b"");
    assert_eq!((r.status, r.body == v1.as_bytes()), (200, true));
    let r = request(&addr, "GET", &format!("/v2/app/blobs/{layer}"), &[], b"");
    assert_eq!((r.status, r.body == layer_bytes), (200, true));
    let r = request(
        &addr,
        "HEAD",
        &format!("/v2/app/blobs/{big_digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 404, "a blob that did not fit is visible");
    // Abandoned uploads are the sweeper's; free their space now.
    let _ = request(&addr, "DELETE", &session, &[], b"");

    // Space returns: the same push succeeds without a restart.
    mount.remount("size=128m");
    let r = request(
        &addr,
        "POST",
        &format!("/v2/app/blobs/uploads/?digest={big_digest}"),
        &[],
        &big,
    );
    assert_eq!(r.status, 201, "push once space returned: {}", one_line(&r));
    let v2 = manifest(&config, &big_digest, big.len());
    assert_eq!(put_manifest(&addr, "app", "v2", &v2).status, 201);

    // Read-only: writes refused as such, reads served. The content folders become
    // read-only (bind mounts over themselves; the whole file system cannot be remounted
    // read-only while the databases are open for writing).
    let read_only: Vec<ReadOnly> = ["blobs", "uploads"]
        .iter()
        .map(|d| ReadOnly::bind(&root.join(d)))
        .collect();
    let small = data(4096, 11);
    let small_digest = sha256(&small);
    let r = request(
        &addr,
        "POST",
        &format!("/v2/app/blobs/uploads/?digest={small_digest}"),
        &[],
        &small,
    );
    assert_eq!(
        r.status,
        503,
        "push onto a read-only disk: {}",
        one_line(&r)
    );
    assert!(
        String::from_utf8_lossy(&r.body).contains("read-only"),
        "the refusal says why: {}",
        one_line(&r)
    );
    let r = request(&addr, "GET", "/v2/app/manifests/v2", &[], b"");
    assert_eq!((r.status, r.body == v2.as_bytes()), (200, true));
    let r = request(
        &addr,
        "GET",
        &format!("/v2/app/blobs/{big_digest}"),
        &[],
        b"",
    );
    assert_eq!((r.status, r.body.len()), (200, big.len()));

    // Writable again: pushes resume.
    drop(read_only);
    let pushed = push_blob(&addr, "app", &small);
    assert_eq!(pushed, small_digest);
    let v3 = manifest(&config, &small_digest, small.len());
    assert_eq!(put_manifest(&addr, "app", "v3", &v3).status, 201);
    drop(s);

    let out = admin(&["fsck", "--root", root.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "fsck after the full and read-only disk:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(mount);
}
