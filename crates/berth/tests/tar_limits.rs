//! The tar limits at the edge: `BERTH_TAR_MAX_ENTRIES`, `BERTH_TAR_MAX_BYTES` and
//! `BERTH_TAR_MAX_PATH` bound `import`, `load` and the layers a container is made of;
//! past one, a one-line error that names the variable, exit 125, and nothing stored.
//! Each case is also run without the variable, to show the same input goes in.
//!
//! Run with `cargo test -p berth --test tar_limits` (no peers needed).

#[path = "interop/support.rs"]
mod support;

use std::fs;

use support::*;

/// A tar of `n` files of `size` bytes each, under `dir/`.
fn tar_of(dir: &str, n: usize, size: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..n {
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, format!("{dir}/f{i}"), &vec![b'x'; size][..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// `five.tar` in the test's folder: 5 files of 100 bytes under `d/`; its path.
fn five_files(ctx: &Ctx) -> String {
    let tar = ctx.path("five.tar");
    fs::write(&tar, tar_of("d", 5, 100)).unwrap();
    tar.display().to_string()
}

/// A docker-archive (as `docker save` writes it) of one image whose only layer is
/// `layer`, tagged `name`.
fn docker_archive(ctx: &Ctx, layer: &[u8], name: &str) -> Vec<u8> {
    let diff_id = ctx.sha256(layer);
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    let config = serde_json::json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [&diff_id]},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", hex(&ctx.sha256(&config)));
    let layer_name = format!("{}.tar", hex(&diff_id));
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": [name], "Layers": [layer_name],
    }]);
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in [
        (config_name.as_str(), config),
        (layer_name.as_str(), layer.to_vec()),
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Runs berth `args` with `var=value`, which must refuse it: exit 125, one error line
/// naming `var`; returns that line.
#[track_caller]
fn refused(ctx: &Ctx, args: &[&str], var: &str, value: &str) -> String {
    let out = ctx.berth(args).env(var, value).run_fail();
    assert_eq!(out.status.code(), Some(125), "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(lines[0].contains(var), "{}", out.stderr);
    println!("  refused: {}", lines[0]);
    lines[0].to_string()
}

/// `berth images` names, sorted.
fn image_names(ctx: &Ctx) -> String {
    let out = ctx
        .berth(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .run()
        .stdout;
    let mut names: Vec<&str> = out.lines().collect();
    names.sort();
    names.iter().map(|n| format!("{n}\n")).collect()
}

#[test]
fn import_past_a_limit_is_refused_and_stores_nothing() {
    let ctx = Ctx::new("tar-limits-import", &[]);
    let tar = five_files(&ctx);

    ctx.step("too many entries");
    let err = refused(
        &ctx,
        &["import", &tar, "lim:entries"],
        "BERTH_TAR_MAX_ENTRIES",
        "4",
    );
    assert!(err.contains("exceeds 4 entries"), "{err}");

    ctx.step("too many bytes");
    refused(
        &ctx,
        &["import", &tar, "lim:bytes"],
        "BERTH_TAR_MAX_BYTES",
        "499",
    );

    ctx.step("a name longer than the path limit");
    let long = ctx.path("long.tar");
    fs::write(&long, tar_of(&"n".repeat(90), 1, 1)).unwrap();
    refused(
        &ctx,
        &["import", &long.display().to_string(), "lim:path"],
        "BERTH_TAR_MAX_PATH",
        "64",
    );

    ctx.step("a bad value is an error naming its variable");
    refused(
        &ctx,
        &["import", &tar, "lim:bad"],
        "BERTH_TAR_MAX_ENTRIES",
        "lots",
    );

    assert_eq!(image_names(&ctx), "", "a refused import stored an image");
    let blobs = ctx.path("berth-store");
    let stored = walk_files(&blobs);
    assert!(
        !stored.iter().any(|p| p.contains("upload")),
        "upload files left: {stored:?}"
    );

    ctx.step("at the limits, the same tars go in");
    ctx.berth(&["import", &tar, "lim:ok"])
        .env("BERTH_TAR_MAX_ENTRIES", "5")
        .env("BERTH_TAR_MAX_BYTES", "500")
        .run();
    ctx.berth(&["import", &long.display().to_string(), "lim:long"])
        .run();
    assert_eq!(image_names(&ctx), "localhost/lim:long\nlocalhost/lim:ok\n");
}

#[test]
fn a_container_is_not_made_of_a_layer_past_a_limit() {
    let ctx = Ctx::new("tar-limits-create", &[]);
    ctx.berth(&["import", &five_files(&ctx), "five:1"]).run();
    refused(
        &ctx,
        &["create", "five:1", "true"],
        "BERTH_TAR_MAX_BYTES",
        "250",
    );
    assert_eq!(ctx.berth(&["ps", "-a", "-q"]).run().stdout, "");
    ctx.berth(&["create", "five:1", "true"]).run();
}

#[test]
fn a_build_step_is_not_made_of_a_layer_past_a_limit() {
    let ctx = Ctx::new("tar-limits-build", &[]);
    ctx.berth(&["import", &five_files(&ctx), "five:1"]).run();
    let context = ctx.path("ctx");
    fs::create_dir_all(&context).unwrap();
    fs::write(context.join("a"), b"a\n").unwrap();
    fs::write(
        context.join("Containerfile"),
        "FROM localhost/five:1\nCOPY a /a\n",
    )
    .unwrap();
    let context = context.display().to_string();
    let err = refused(
        &ctx,
        &["build", "-q", "-t", "built:1", &context],
        "BERTH_TAR_MAX_ENTRIES",
        "3",
    );
    assert!(err.contains("exceeds 3 entries"), "{err}");
    assert_eq!(image_names(&ctx), "localhost/five:1\n");
    ctx.berth(&["build", "-q", "-t", "built:1", &context]).run();
}

#[test]
fn load_past_a_limit_is_refused_and_stores_nothing() {
    let ctx = Ctx::new("tar-limits-load", &[]);
    let archive = ctx.path("img.tar");
    fs::write(
        &archive,
        docker_archive(&ctx, &tar_of("d", 10, 1000), "example.com/lim:1"),
    )
    .unwrap();
    let archive = archive.display().to_string();

    ctx.step("a layer of 10 entries, 4 allowed (the archive itself has 3)");
    let err = refused(
        &ctx,
        &["load", "-q", "-i", &archive],
        "BERTH_TAR_MAX_ENTRIES",
        "4",
    );
    assert!(err.contains("layer "), "{err}");

    // The archive's own data holds the layer whole, so it is what goes past first.
    ctx.step("a layer of 10 000 bytes of data, 5 000 allowed");
    refused(
        &ctx,
        &["load", "-q", "-i", &archive],
        "BERTH_TAR_MAX_BYTES",
        "5000",
    );

    ctx.step("a layer name longer than allowed");
    refused(
        &ctx,
        &["load", "-q", "-i", &archive],
        "BERTH_TAR_MAX_PATH",
        "4",
    );
    assert_eq!(image_names(&ctx), "", "a refused load stored an image");

    ctx.step("without the variables, the archive loads");
    let out = ctx.berth(&["load", "-q", "-i", &archive]).run();
    assert!(out.stdout.contains("example.com/lim:1"), "{}", out.stdout);
    assert_eq!(image_names(&ctx), "example.com/lim:1\n");
}

fn walk_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}
