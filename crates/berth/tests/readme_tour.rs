//! The README's container and build tour, run as written: every line of its `sh`
//! block (a heredoc with the lines it feeds) in one folder, each of which must
//! succeed; `alpine` comes from a local registry that registries.conf names as
//! docker.io's mirror, so nothing leaves the machine.
//!
//! Run with `cargo test -p berth --test readme_tour` (as root: containers need it).

#[path = "interop/support.rs"]
mod support;

mod busybox;

use std::fs;

use support::*;

/// The `sh` block under the README's "Containers and builds" heading.
fn tour() -> String {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md beside the workspace");
    let section = &readme[readme
        .find("### Containers and builds")
        .expect("the README's container section")..];
    let block = &section[section.find("```sh\n").expect("its sh block") + "```sh\n".len()..];
    block[..block.find("```").expect("the block's end")].to_string()
}

/// The block as the commands a shell runs: one per line, a heredoc with its body;
/// comments and blank lines dropped.
fn commands(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = block.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut command = line.to_string();
        if let Some(at) = line.find("<<'") {
            let end = line[at + 3..]
                .split('\'')
                .next()
                .unwrap_or_default()
                .to_string();
            for body in lines.by_ref() {
                command.push('\n');
                command.push_str(body);
                if body == end {
                    break;
                }
            }
        }
        out.push(command);
    }
    out
}

#[test]
fn the_readme_container_tour_runs_as_written() {
    let mut ctx = Ctx::new("readme-tour", &["runc"]);
    let commands = commands(&tour());
    assert!(commands.len() >= 15, "the tour: {commands:#?}");

    ctx.step("alpine (busybox here) in a local registry, docker.io's mirror");
    let reg = ctx.start(ServerKind::Berth);
    let tar = busybox::busybox_tar(&ctx);
    let seed = ctx.p("seed-store");
    ctx.berth(&["--root", &seed, "import", &tar, "alpine"])
        .run();
    ctx.berth(&[
        "--root",
        &seed,
        "push",
        "--tls-verify=false",
        "alpine",
        &format!("docker://{reg}/library/alpine:latest"),
    ])
    .run();
    fs::write(
        ctx.path("registries.conf"),
        format!(
            "unqualified-search-registries = [\"docker.io\"]\n\
             short-name-mode = \"permissive\"\n\
             [[registry]]\nlocation = \"docker.io\"\n\
             [[registry.mirror]]\nlocation = \"{reg}\"\ninsecure = true\n"
        ),
    )
    .unwrap();
    let bin = ctx.path("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_berth"), bin.join("berth")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = ctx.path("tour");
    fs::create_dir_all(&dir).unwrap();

    let mut said = String::new();
    for command in &commands {
        ctx.step(&format!("$ {command}"));
        let out = ctx
            .cmd("sh", &["-c", &format!("cd {} && {command}", dir.display())])
            .env("PATH", &path)
            .run();
        said.push_str(&out.stdout);
    }
    // What the tour's comments promise.
    assert!(
        said.contains("\nhi\n") || said.starts_with("hi\n"),
        "{said}"
    );
    assert!(said.contains("from a file\n"), "{said}");
    assert!(said.contains("exit 127\n"), "{said}");
    assert!(said.contains("version 2\n"), "{said}");
    let images = ctx
        .berth(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .run()
        .stdout;
    for name in [
        "app:patched",
        "snapshot:1",
        "app:v2",
        "app:builder",
        "app:v3",
    ] {
        assert!(
            images.contains(&format!("localhost/{name}")),
            "{name}: {images}"
        );
    }
}
