//! The local store and containers as a podman user meets them (issue 17): the same
//! commands given to podman 4.3 and to berth, on the same busybox tar, with the same
//! output and exit status; and the errors berth gives where it cannot do as podman.
//!
//! Run with `cargo test -p berth --test podman_parity` (as root: containers need it).

#[path = "interop/support.rs"]
mod support;

use std::fs;

use support::*;

const PODMAN: &str = "podman";
const RUNC: &str = "runc";

/// podman's default rlimits (nofile 1048576, nproc 4194304) are above what this
/// machine lets a process raise to; these are what podman's containers get here.
const PODMAN_ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// A tar of a busybox root (applets linked in /bin, an /etc/passwd): what both
/// tools import.
fn busybox_tar(ctx: &Ctx) -> String {
    let root = ctx.path("bb-root");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "cat", "ls", "sleep", "true", "env", "sort"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let tar = ctx.p("bb.tar");
    ctx.cmd(
        "tar",
        &["-C", &root.display().to_string(), "-cf", &tar, "."],
    )
    .run();
    tar
}

/// Runs `args` with podman or berth.
fn tool<'a>(ctx: &'a Ctx, which: &str, args: &[&str]) -> Run<'a> {
    match which {
        PODMAN => ctx.podman(args),
        _ => ctx.berth(args),
    }
}

/// Output with every 64-hex ID made `ID` (the tools' image and container IDs differ).
fn without_ids(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for ch in text.chars().chain(['\n']) {
        if ch.is_ascii_hexdigit() {
            run.push(ch);
            continue;
        }
        out.push_str(if run.len() == 64 { "ID" } else { &run });
        run.clear();
        out.push(ch);
    }
    out.pop();
    out
}

/// What the commands of a rmi session said: (stdout, error lines, status) each.
fn rmi_session(ctx: &Ctx, which: &str, tar: &str) -> Vec<(String, String, Option<i32>)> {
    let mut said = Vec::new();
    let mut record = |out: Output| {
        let errors = match which {
            PODMAN => out.error_lines(),
            _ => out.stderr.trim().to_string(),
        };
        said.push((
            without_ids(&out.stdout),
            without_ids(&errors),
            out.status.code(),
        ));
    };
    tool(ctx, which, &["import", tar, "localhost/bb:1"]).run();
    tool(ctx, which, &["tag", "localhost/bb:1", "localhost/other:1"]).run();
    tool(
        ctx,
        which,
        &[
            "import",
            "--change",
            "CMD [\"/bin/sh\"]",
            tar,
            "localhost/used:1",
        ],
    )
    .run();
    tool(
        ctx,
        which,
        &["create", "--name", "c1", "localhost/used:1", "true"],
    )
    .run();
    // An image in use: nothing happens, nothing is printed, status 2.
    record(tool(ctx, which, &["rmi", "localhost/used:1"]).run_any());
    // --all: every other image goes; the one in use stays, status 2.
    record(tool(ctx, which, &["rmi", "--all"]).run_any());
    record(
        tool(
            ctx,
            which,
            &["images", "--format", "{{.Repository}}:{{.Tag}}"],
        )
        .run(),
    );
    // -f naming every tag of an image containers use: image and containers go.
    tool(ctx, which, &["tag", "localhost/used:1", "localhost/used:2"]).run();
    tool(
        ctx,
        which,
        &["create", "--name", "c2", "localhost/used:2", "true"],
    )
    .run();
    record(
        tool(
            ctx,
            which,
            &["rmi", "-f", "localhost/used:1", "localhost/used:2"],
        )
        .run_any(),
    );
    record(tool(ctx, which, &["images", "-a", "-q"]).run());
    record(tool(ctx, which, &["ps", "-a", "-q"]).run());
    said
}

#[test]
fn rmi_with_containers_matches_podman() {
    let ctx = Ctx::new("rmi-ctrs", &[PODMAN]);
    let tar = busybox_tar(&ctx);
    let podman = rmi_session(&ctx, PODMAN, &tar);
    let berth = rmi_session(&ctx, "berth", &tar);
    assert_eq!(podman[0].2, Some(2), "podman: {podman:?}");
    assert_eq!(podman[0].0, "", "podman prints nothing for an image in use");
    assert_eq!(berth, podman);
}

#[test]
fn import_refuses_what_is_not_a_whole_tar() {
    let ctx = Ctx::new("import-bad", &[PODMAN]);
    let tar = busybox_tar(&ctx);
    let whole = fs::read(&tar).unwrap();
    let random: Vec<u8> = (0..3000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let bad = [
        ("random.bin", random),
        ("text.txt", b"hello, not a tar\n".to_vec()),
        ("truncated.tar", whole[..whole.len() / 2].to_vec()),
    ];
    for (name, bytes) in &bad {
        let path = ctx.p(name);
        fs::write(&path, bytes).unwrap();
        let podman = ctx.podman(&["import", &path, "localhost/bad"]).run_any();
        assert_eq!(podman.status.code(), Some(125), "podman: {}", podman.stderr);
        let out = ctx.berth(&["import", &path, "localhost/bad"]).run_any();
        assert_eq!(out.status.code(), Some(125), "{name}: {}", out.stderr);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {}", out.stderr);
        assert!(
            lines[0].starts_with(&format!(
                "Error: importing {path}: not a valid tar archive: "
            )),
            "{}",
            lines[0]
        );
    }
    let out = ctx
        .berth(&["import", "-", "localhost/bad"])
        .stdin(b"")
        .run_any();
    assert_eq!(out.status.code(), Some(125), "{}", out.stderr);
    assert_eq!(ctx.berth(&["images", "-a", "-q"]).run().stdout, "");
    let store = ctx.path("berth-store");
    for sub in ["blobs", "uploads"] {
        let files = walk_files(&store.join(sub));
        assert!(files.is_empty(), "nothing stored in {sub}: {files:?}");
    }
    ctx.step("a whole tar, compressed or not, imports");
    ctx.berth(&["import", &tar, "localhost/good:1"]).run();
    let gz = ctx.p("bb.tar.gz");
    ctx.cmd("sh", &["-c", &format!("gzip -c {tar} > {gz}")])
        .run();
    ctx.berth(&["import", &gz, "localhost/good:gz"]).run();
    let a = ctx
        .berth(&[
            "image",
            "inspect",
            "--format",
            "{{.RootFS.Layers}}",
            "localhost/good:1",
        ])
        .run()
        .stdout;
    let b = ctx
        .berth(&[
            "image",
            "inspect",
            "--format",
            "{{.RootFS.Layers}}",
            "localhost/good:gz",
        ])
        .run()
        .stdout;
    assert_eq!(a, b, "the same diff ID");
}

/// Every file under `dir` (none when it does not exist).
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
