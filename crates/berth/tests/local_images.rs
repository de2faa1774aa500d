//! The podman workflow on berth's local store, step by step against podman 4.3 doing
//! the same: search, pull, images, image inspect, tag, push after login, history,
//! re-tag leaving a dangling image, image prune (prompted and forced), rmi with and
//! without -f; save/load both ways with podman; bad input (unknown images, corrupt
//! archives, a full disk).
//!
//! Run with `cargo test -p berth --test local_images`; the peers are Debian packages
//! (scripts/install-peers.sh), a missing one fails the test.

#[path = "interop/support.rs"]
mod support;

use std::fs;

use support::*;

const BUILDAH: &str = "buildah";
const PODMAN: &str = "podman";
const SKOPEO: &str = "skopeo";

/// An image with every run-config field podman's inspect shows set.
fn build_configured(ctx: &Ctx, image: &str) -> String {
    let [pf, pv] = ctx.policy_args();
    let ctr = ctx
        .buildah(&["from", &pf, &pv, "scratch"])
        .run()
        .last_line();
    ctx.buildah(&["copy", &ctr, BUSYBOX, "/bin/busybox"]).run();
    ctx.buildah(&[
        "config",
        "--env",
        "APP_MODE=test",
        "--entrypoint",
        r#"["/bin/busybox"]"#,
        "--cmd",
        r#"["sh","-c","echo hi"]"#,
        "--user",
        "1000:1000",
        "--workingdir",
        "/srv",
        "--port",
        "8080/tcp",
        "--label",
        "org.example.role=workflow",
        &ctr,
    ])
    .run();
    ctx.buildah(&["commit", &pf, &pv, &ctr, image]).run();
    ctx.buildah(&["rm", &ctr]).run();
    image.to_string()
}

/// The rows of a podman-style table, as cells split on two or more spaces.
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// `images` rows without the CREATED column (its "N seconds ago" moves).
fn listing(table: &str) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = cells(table)
        .into_iter()
        .map(|r| {
            let mut r = r;
            if r.len() >= 5 {
                r.remove(3);
                r.pop();
            }
            r
        })
        .collect();
    rows[1..].sort();
    rows
}

#[test]
fn podman_workflow_on_the_local_store() {
    let mut ctx = Ctx::new("workflow", &[BUILDAH, PODMAN, SKOPEO]);
    let reg = ctx.start(ServerKind::Berth);
    let root = ctx.berth_root(&reg).display().to_string();
    let [pf, pv] = ctx.policy_args();
    let policy = ctx.p("policy.json");
    ctx.berth(&[
        "registry",
        "--root",
        &root,
        "user",
        "add",
        "alice",
        "--password-stdin",
    ])
    .stdin(b"alice-pw\n")
    .run();
    ctx.berth(&[
        "registry",
        "--root",
        &root,
        "repo",
        "visibility",
        "alice/app",
        "public",
    ])
    .run();
    let image = build_configured(&ctx, "localhost/test/workflow:v1");
    let app = format!("{reg}/alice/app:v1");
    ctx.buildah(&[
        "push",
        &pf,
        &pv,
        "--tls-verify=false",
        "--creds",
        "alice:alice-pw",
        &image,
        &format!("docker://{app}"),
    ])
    .run();
    // podman pulls into an empty store, so that what it shows comes from the pull.
    ctx.podman(&["rmi", &image]).run();
    fs::write(
        ctx.path("registries.conf"),
        format!(
            "unqualified-search-registries = [\"{reg}\"]\n\
             [[registry]]\nlocation = \"{reg}\"\ninsecure = true\n"
        ),
    )
    .unwrap();

    ctx.step("search: the short term through unqualified-search-registries");
    let found = ctx.berth(&["search", "app"]).run().stdout;
    let podman_found = ctx.podman(&["search", "app"]).run().stdout;
    assert!(found.starts_with("NAME"), "{found}");
    assert!(found.contains(&format!("{reg}/alice/app")), "{found}");
    assert_eq!(cells(&found)[1][0], cells(&podman_found)[1][0]);

    ctx.step("pull by short name: the ID podman gives the same image");
    let id = ctx
        .berth(&["pull", "--signature-policy", &policy, "alice/app:v1"])
        .run()
        .last_line();
    ctx.podman(&["pull", &pf, &pv, "alice/app:v1"]).run();
    let podman_id = ctx
        .podman(&["image", "inspect", "--format", "{{.Id}}", &app])
        .run()
        .last_line();
    assert_eq!(id, podman_id);

    ctx.step("images: podman's columns and rows");
    let ours = ctx.berth(&["images"]).run().stdout;
    let theirs = ctx.podman(&["images"]).run().stdout;
    assert_eq!(
        cells(&ours)[0],
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    );
    let podman_row = listing(&theirs)
        .into_iter()
        .find(|r| r[0] == format!("{reg}/alice/app"))
        .expect("podman lists the pulled image");
    assert_eq!(listing(&ours)[1], podman_row);

    ctx.step("image inspect: every field podman shows, equal");
    let ours = ctx.berth(&["image", "inspect", &app]).run().json();
    let theirs = ctx.podman(&["image", "inspect", &app]).run().json();
    let (o, t) = (&ours[0], &theirs[0]);
    for field in [
        "Id",
        "Digest",
        "RepoTags",
        "RepoDigests",
        "Created",
        "Architecture",
        "Os",
        "RootFS",
        "History",
        "User",
        "Labels",
        "ManifestType",
    ] {
        assert_eq!(o[field], t[field], "{field}");
    }
    for field in [
        "User",
        "ExposedPorts",
        "Env",
        "Entrypoint",
        "Cmd",
        "WorkingDir",
        "Labels",
    ] {
        assert_eq!(o["Config"][field], t["Config"][field], "Config.{field}");
    }
    assert_eq!(o["Config"]["Env"][0], "APP_MODE=test");
    // `berth inspect NAME` (no transport) is the same, --format too.
    let same = ctx.berth(&["inspect", &app]).run().json();
    assert_eq!(same, ours);
    let env = ctx
        .berth(&[
            "image",
            "inspect",
            "--format",
            "{{.Config.WorkingDir}}",
            &app,
        ])
        .run()
        .last_line();
    assert_eq!(env, "/srv");

    ctx.step("history: podman's rows");
    let ours = ctx.berth(&["history", &app]).run().stdout;
    let theirs = ctx.podman(&["history", &app]).run().stdout;
    assert_eq!(
        cells(&ours)[0],
        ["ID", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    );
    assert_eq!(cells(&ours).len(), cells(&theirs).len(), "{ours}\n{theirs}");
    assert_eq!(cells(&ours)[1][0], cells(&theirs)[1][0], "ID");

    ctx.step("tag: more names on one image");
    ctx.berth(&[
        "tag",
        &app,
        "workflow:extra",
        &format!("{reg}/alice/copy:v1"),
    ])
    .run();
    let names = ctx.berth(&["image", "inspect", "--format", "{{.RepoTags}}", &id[..12]]);
    assert_eq!(
        names.run().last_line(),
        format!("[{app} localhost/workflow:extra {reg}/alice/copy:v1]")
    );

    ctx.step("push without login: the error says to log in");
    let copy = format!("{reg}/alice/copy:v1");
    let out = ctx.berth(&["push", "--tls-verify=false", &copy]).run_fail();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        out.stderr.contains(&format!("berth login {reg}")),
        "{}",
        out.stderr
    );
    ctx.berth(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "--password-stdin",
        &reg,
    ])
    .stdin(b"alice-pw\n")
    .run();
    ctx.berth(&["push", "--tls-verify=false", &copy]).run();
    let pushed = ctx
        .skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "alice:alice-pw",
            "--raw",
            &format!("docker://{copy}"),
        ])
        .run()
        .stdout_bytes;
    let original = ctx
        .skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{app}"),
        ])
        .run()
        .stdout_bytes;
    assert_eq!(pushed, original, "pushed byte-identical");

    ctx.step("rmi of one of several names only untags");
    let out = ctx.berth(&["rmi", &copy]).run();
    assert_eq!(out.stdout.trim(), format!("Untagged: {copy}"));
    ctx.step("rmi by ID with several names needs -f");
    let out = ctx.berth(&["rmi", &id[..12]]).run_fail();
    assert!(
        out.stderr.contains("please force removal"),
        "{}",
        out.stderr
    );
    assert_eq!(out.status.code(), Some(125));

    ctx.step("a re-tag leaves a dangling image");
    let other = ctx.build_busybox("localhost/test/other:v1");
    ctx.buildah(&[
        "push",
        &pf,
        &pv,
        "--tls-verify=false",
        "--creds",
        "alice:alice-pw",
        &other,
        &format!("docker://{reg}/alice/other:v1"),
    ])
    .run();
    let other_id = ctx
        .berth(&[
            "pull",
            "-q",
            "--signature-policy",
            &policy,
            &format!("{reg}/alice/other:v1"),
        ])
        .run()
        .last_line();
    ctx.berth(&["tag", &other_id, &app, "workflow:extra"]).run();
    let dangling = ctx
        .berth(&["images", "--filter", "dangling=true", "--no-trunc", "-q"])
        .run()
        .stdout;
    assert_eq!(dangling.trim(), format!("sha256:{id}"));
    let table = ctx
        .berth(&["images", "--filter", "dangling=true"])
        .run()
        .stdout;
    assert_eq!(cells(&table)[1][..3], ["<none>", "<none>", &id[..12]]);

    ctx.step("image prune asks; no keeps everything");
    let out = ctx.berth(&["image", "prune"]).stdin(b"n\n").run();
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("Are you sure you want to continue? [y/N]"),
        "{}",
        out.stderr
    );
    assert!(ctx
        .berth(&["images", "-q"])
        .run()
        .stdout
        .contains(&id[..12]));
    ctx.step("image prune, yes: the dangling image goes, the named one stays");
    let out = ctx.berth(&["image", "prune"]).stdin(b"y\n").run();
    assert_eq!(out.stdout.trim(), id);
    assert!(
        out.stderr.contains("Total reclaimed space"),
        "{}",
        out.stderr
    );
    let left = ctx.berth(&["images", "-q"]).run().stdout;
    assert!(
        !left.contains(&id[..12]) && left.contains(&other_id[..12]),
        "{left}"
    );

    ctx.step("unknown images: podman's message and status");
    let ours = ctx.berth(&["rmi", "nosuch"]).run_any();
    let theirs = ctx.podman(&["rmi", "nosuch"]).run_any();
    assert_eq!(ours.status.code(), theirs.status.code());
    assert_eq!(ours.status.code(), Some(1));
    assert!(
        ours.stderr.contains("Error: nosuch: image not known"),
        "{}",
        ours.stderr
    );
    let ours = ctx.berth(&["image", "inspect", "nosuch"]).run_any();
    let theirs = ctx.podman(&["image", "inspect", "nosuch"]).run_any();
    assert_eq!(ours.status.code(), Some(125));
    assert_eq!(ours.status.code(), theirs.status.code());
    assert_eq!(ours.stdout, theirs.stdout, "an empty array first");
    assert_eq!(ours.stderr.trim(), theirs.error_lines());
    let ours = ctx.berth(&["tag", "nosuch", "x"]).run_any();
    let theirs = ctx.podman(&["tag", "nosuch", "x"]).run_any();
    assert_eq!(ours.status.code(), theirs.status.code());

    ctx.step("rmi -f of an image with several names; prune -a -f removes the rest");
    ctx.berth(&["tag", &other_id, "a:1", "b:1"]).run();
    let out = ctx.berth(&["rmi", "-f", &other_id[..12]]).run();
    assert!(
        out.stdout.contains(&format!("Deleted: {other_id}")),
        "{}",
        out.stdout
    );
    ctx.berth(&["pull", "-q", "--signature-policy", &policy, &app])
        .run();
    let out = ctx.berth(&["image", "prune", "-a", "-f"]).run();
    assert_eq!(out.stdout.trim(), id);
    assert_eq!(ctx.berth(&["images", "-q"]).run().stdout, "");
    let blobs = ctx.path("berth-store/blobs/sha256");
    let left: usize = fs::read_dir(&blobs)
        .unwrap()
        .map(|d| fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(left, 0, "every blob file freed");
}

#[test]
fn save_and_load_with_podman() {
    let ctx = Ctx::new("saveload", &[BUILDAH, PODMAN]);
    let image = build_configured(&ctx, "localhost/test/saved:v1");
    let podman_id = ctx
        .podman(&["image", "inspect", "--format", "{{.Id}}", &image])
        .run()
        .last_line();
    for format in ["docker-archive", "oci-archive"] {
        ctx.step(&format!("podman save --format {format} -> berth load"));
        let archive = ctx.p(&format!("podman-{format}.tar"));
        ctx.podman(&["save", "--format", format, "-o", &archive, &image])
            .run();
        let out = ctx.berth(&["load", "-i", &archive]).run();
        assert!(out.stdout.contains("Loaded image"), "{}", out.stdout);
        let id = ctx
            .berth(&["image", "inspect", "--format", "{{.Id}}", &image])
            .run()
            .last_line();
        assert_eq!(id, podman_id, "{format}");

        ctx.step(&format!("berth save --format {format} -> podman load"));
        let ours = ctx.p(&format!("berth-{format}.tar"));
        ctx.berth(&["save", "--format", format, "-o", &ours, &image])
            .run();
        ctx.podman(&["rmi", "-f", &image]).run();
        let out = ctx.podman(&["load", "-i", &ours]).run();
        assert!(out.stdout.contains("Loaded image"), "{}", out.stdout);
        let loaded = ctx
            .podman(&["image", "inspect", "--format", "{{.Id}}", &image])
            .run()
            .last_line();
        assert_eq!(loaded, podman_id, "{format}: podman reads berth's archive");
        ctx.berth(&["rmi", &image]).run();
    }

    ctx.step("save to stdout, load from stdin");
    let archive = ctx.p("podman-docker-archive.tar");
    let bytes = fs::read(&archive).unwrap();
    ctx.berth(&["load"]).stdin(&bytes).run();
    let out = ctx.berth(&["save", &image]).run();
    assert!(out.stdout_bytes.len() > 1000);
    fs::write(ctx.path("stdout.tar"), &out.stdout_bytes).unwrap();
    ctx.podman(&["rmi", "-f", &image]).run();
    ctx.podman(&["load", "-i", &ctx.p("stdout.tar")]).run();

    ctx.step("policy.json judges what save takes from the store and what load reads");
    let policy = |name: &str, allowed: &str| {
        let path = ctx.p(name);
        let text = format!(
            r#"{{"default":[{{"type":"reject"}}],
                "transports":{{"{allowed}":{{"":[{{"type":"insecureAcceptAnything"}}]}}}}}}"#
        );
        fs::write(&path, text).unwrap();
        path
    };
    let archives_only = policy("archives-only.json", "docker-archive");
    let store_only = policy("store-only.json", "containers-storage");
    for tool in ["podman", "berth"] {
        let run = |args: &[&str]| match tool {
            "podman" => ctx.podman(args),
            _ => ctx.berth(args),
        };
        let out_tar = ctx.p(&format!("{tool}-judged.tar"));
        let refused = run(&[
            "save",
            "--signature-policy",
            &archives_only,
            "-o",
            &out_tar,
            &image,
        ])
        .run_fail();
        for says in [
            "Running image containers-storage:[",
            "is rejected by policy",
        ] {
            assert!(refused.stderr.contains(says), "{tool}: {}", refused.stderr);
        }
        run(&[
            "save",
            "--signature-policy",
            &store_only,
            "-o",
            &out_tar,
            &image,
        ])
        .run();
        let refused = run(&["load", "--signature-policy", &store_only, "-i", &out_tar]).run_fail();
        for says in ["Running image docker-archive:", "is rejected by policy"] {
            assert!(refused.stderr.contains(says), "{tool}: {}", refused.stderr);
        }
        run(&["load", "--signature-policy", &archives_only, "-i", &out_tar]).run();
    }

    ctx.step("multi-image archives (-m) both ways; without -m more names for one image");
    let second = ctx.build_busybox("localhost/test/second:v1");
    let second_id = ctx
        .podman(&["image", "inspect", "--format", "{{.Id}}", &second])
        .run()
        .last_line();
    let multi = ctx.p("podman-multi.tar");
    ctx.podman(&["save", "-m", "-o", &multi, &image, &second])
        .run();
    let out = ctx.berth(&["load", "-i", &multi]).run();
    assert!(out.stdout.contains(&second), "{}", out.stdout);
    for (name, id) in [(&image, &podman_id), (&second, &second_id)] {
        let got = ctx
            .berth(&["image", "inspect", "--format", "{{.Id}}", name])
            .run()
            .last_line();
        assert_eq!(&got, id, "{name}");
    }
    let ours = ctx.p("berth-multi.tar");
    ctx.berth(&["save", "-m", "-o", &ours, &image, &second])
        .run();
    ctx.podman(&["rmi", "-f", &image, &second]).run();
    ctx.podman(&["load", "-i", &ours]).run();
    for (name, id) in [(&image, &podman_id), (&second, &second_id)] {
        let got = ctx
            .podman(&["image", "inspect", "--format", "{{.Id}}", name])
            .run()
            .last_line();
        assert_eq!(&got, id, "podman reads {name} from berth's -m archive");
    }
    let named = ctx.p("berth-names.tar");
    ctx.berth(&["save", "-o", &named, &image, "localhost/test/alias:v9"])
        .run();
    ctx.podman(&["rmi", "-f", &image]).run();
    ctx.podman(&["load", "-i", &named]).run();
    let tags = ctx
        .podman(&["image", "inspect", "--format", "{{.RepoTags}}", &podman_id])
        .run()
        .last_line();
    assert!(tags.contains("localhost/test/alias:v9"), "{tags}");

    ctx.step("corrupt archives: a clear error, the store untouched");
    let before = ctx.berth(&["images", "--no-trunc", "-q"]).run().stdout;
    let truncated = ctx.path("truncated.tar");
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = ctx.path("garbage.tar");
    fs::write(&garbage, b"this is not a tar file at all, not even close").unwrap();
    let binary = ctx.path("binary.bin");
    let noise: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    fs::write(&binary, &noise).unwrap();
    for (bad, says) in [
        (&truncated, "truncated: the archive ends unexpectedly"),
        (&garbage, "not a tar archive"),
        (&binary, "not a tar archive"),
    ] {
        let out = ctx
            .berth(&["load", "-i", &bad.display().to_string()])
            .run_fail();
        assert_eq!(out.status.code(), Some(125));
        assert!(out.stderr.starts_with("Error: "), "{}", out.stderr);
        assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains(says), "{}", out.stderr);
        assert!(
            out.stderr
                .trim()
                .chars()
                .all(|c| c.is_ascii_graphic() || c == ' '),
            "no raw bytes of the archive in the message: {:?}",
            out.stderr
        );
    }
    assert_eq!(
        ctx.berth(&["images", "--no-trunc", "-q"]).run().stdout,
        before
    );
}

/// A store on a 4 MiB tmpfs: a pull that does not fit fails saying so, and the
/// images already there stay listed and whole.
#[test]
fn full_disk_leaves_the_store_consistent() {
    let mut ctx = Ctx::new("fulldisk", &[BUILDAH, "mount", "umount"]);
    let reg = ctx.start(ServerKind::Berth);
    let [pf, pv] = ctx.policy_args();
    let store = ctx.path("small-store");
    fs::create_dir_all(&store).unwrap();
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&store)
        .output()
        .expect("run mount");
    assert!(
        mount.status.success(),
        "this test mounts a small tmpfs and needs root (CAP_SYS_ADMIN): {}",
        String::from_utf8_lossy(&mount.stderr)
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(store.clone());
    let small = ctx.build_busybox("localhost/test/small:v1");
    // 8 MB of random bytes: no compression makes it fit.
    let big_file = ctx.path("random.bin");
    let mut data = vec![0u8; 8 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    fs::write(&big_file, &data).unwrap();
    let ctr = ctx
        .buildah(&["from", &pf, &pv, "scratch"])
        .run()
        .last_line();
    ctx.buildah(&["copy", &ctr, &big_file.display().to_string(), "/big"])
        .run();
    ctx.buildah(&["commit", &pf, &pv, &ctr, "localhost/test/big:v1"])
        .run();
    for (src, name) in [
        (&small, "small"),
        (&"localhost/test/big:v1".to_string(), "big"),
    ] {
        ctx.buildah(&[
            "push",
            &pf,
            &pv,
            "--tls-verify=false",
            src,
            &format!("docker://{reg}/test/{name}:v1"),
        ])
        .run();
    }
    let policy = ctx.p("policy.json");
    let root = store.display().to_string();
    let pull = |name: &str| {
        ctx.berth(&[
            "--root",
            &root,
            "pull",
            "-q",
            "--signature-policy",
            &policy,
            "--tls-verify=false",
            &format!("{reg}/test/{name}:v1"),
        ])
    };
    let small_id = pull("small").run().last_line();
    let out = pull("big").run_fail();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        out.stderr.contains("No space left on device"),
        "{}",
        out.stderr
    );
    let listed = ctx
        .berth(&["--root", &root, "images", "--no-trunc", "-q"])
        .run()
        .stdout;
    assert_eq!(listed.trim(), format!("sha256:{small_id}"), "no half image");
    // What is there is whole: it saves, and nothing of the failed pull is left over.
    ctx.berth(&[
        "--root",
        &root,
        "save",
        "-o",
        &ctx.p("small.tar"),
        &small_id,
    ])
    .run();
    let uploads = fs::read_dir(store.join("uploads")).unwrap().count();
    assert_eq!(uploads, 0, "the failed pull's partial blob is removed");
}

/// `images` filters, templates, JSON and `--all-tags` give what podman gives for the
/// same images.
#[test]
fn images_filters_and_formats_match_podman() {
    let mut ctx = Ctx::new("imagesfmt", &[BUILDAH, PODMAN]);
    let reg = ctx.start(ServerKind::Berth);
    let [pf, pv] = ctx.policy_args();
    let policy = ctx.p("policy.json");
    let first = build_configured(&ctx, "localhost/test/first:v1");
    // A second, later image without the label.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = ctx.build_busybox("localhost/test/second:v1");
    for (src, tags) in [(&first, ["v1", "v2"]), (&second, ["v3", "v4"])] {
        for tag in tags {
            ctx.buildah(&[
                "push",
                &pf,
                &pv,
                "--tls-verify=false",
                src,
                &format!("docker://{reg}/test/fmt:{tag}"),
            ])
            .run();
        }
    }
    ctx.podman(&["rmi", &first, &second]).run();
    // podman 4.3's --all-tags lists tags ignoring --tls-verify; registries.conf says it.
    fs::write(
        ctx.path("registries.conf"),
        format!("[[registry]]\nlocation = \"{reg}\"\ninsecure = true\n"),
    )
    .unwrap();
    let repo = format!("{reg}/test/fmt");
    let out = ctx
        .berth(&[
            "pull",
            "--all-tags",
            "-q",
            "--tls-verify=false",
            "--signature-policy",
            &policy,
            &repo,
        ])
        .run();
    assert_eq!(out.stdout.lines().count(), 4, "{}", out.stdout);
    ctx.podman(&["pull", &pf, &pv, "--tls-verify=false", "--all-tags", &repo])
        .run();
    let both = |args: &[&str]| -> (Vec<String>, Vec<String>) {
        let mut all = vec!["images"];
        all.extend_from_slice(args);
        let sorted = |s: String| {
            let mut v: Vec<String> = s.lines().map(str::to_string).collect();
            v.sort();
            v
        };
        (
            sorted(ctx.berth(&all).run().stdout),
            sorted(ctx.podman(&all).run().stdout),
        )
    };
    for args in [
        &["--format", "{{.Repository}}:{{.Tag}} {{.ID}}"][..],
        &["--filter", "label=org.example.role=workflow", "-q"],
        &["--filter", "label=org.example.role", "--format", "{{.Tag}}"],
        &["--filter", &format!("reference={repo}:v3"), "-q"],
        &["--filter", "reference=fmt", "--format", "{{.Tag}}"],
        &["--filter", &format!("before={repo}:v3"), "-q"],
        &["--filter", &format!("since={repo}:v1"), "-q"],
        &["--filter", "dangling=false", "-q", "--no-trunc"],
        &["--format", "table {{.ID}}\t{{.Tag}}"],
        &["--digests", "--format", "{{.Digest}}"],
    ] {
        let (ours, theirs) = both(args);
        assert_eq!(ours, theirs, "images {args:?}");
    }
    ctx.step("--format json: podman's keys, the same images");
    let ours = ctx.berth(&["images", "--format", "json"]).run().json();
    let theirs = ctx.podman(&["images", "--format", "json"]).run().json();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v[0].as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&ours), keys(&theirs));
    let ids = |v: &serde_json::Value| -> Vec<String> {
        let mut i: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["Id"].as_str().unwrap().to_string())
            .collect();
        i.sort();
        i
    };
    assert_eq!(ids(&ours), ids(&theirs));
    let names = |v: &serde_json::Value| -> Vec<Vec<String>> {
        let mut n: Vec<Vec<String>> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                // podman's order follows its pulls, which --all-tags does its own way.
                let mut names = strings(&x["Names"]);
                names.sort();
                names
            })
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&ours), names(&theirs));
    ctx.step("--sort tag, -n");
    let sorted = ctx
        .berth(&[
            "images",
            "--sort",
            "tag",
            "-n",
            "--format",
            "table {{.Tag}}",
        ])
        .run()
        .stdout;
    assert_eq!(sorted, "v1\nv2\nv3\nv4\n");
    ctx.step("a reader that goes away ends the listing quietly");
    let script = format!("{} images | head -1", env!("CARGO_BIN_EXE_berth"));
    let out = ctx.cmd("sh", &["-c", &script]).run();
    assert!(out.stdout.starts_with("REPOSITORY"), "{}", out.stdout);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    // A command that may also reach registries (inspect, whose SIGPIPE stays
    // ignored): the reader has closed the pipe before it prints; it ends quietly too,
    // with the status a shell gives SIGPIPE.
    let first = ctx
        .berth(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .run()
        .last_line();
    let berth = env!("CARGO_BIN_EXE_berth");
    let command = format!("{berth} inspect {first}");
    let script = format!("{command} | (exec <&-; true); echo \"status ${{PIPESTATUS[0]}}\" >&2");
    let out = ctx.cmd("bash", &["-c", &script]).run();
    assert!(
        out.stderr.contains("status 141"),
        "{command}: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("panicked"),
        "{command}: {}",
        out.stderr
    );
}
