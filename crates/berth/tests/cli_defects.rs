//! Issue 17, part C, side by side with podman: `login` and FROM pulls honour
//! registries.conf's `insecure` and word a plain-HTTP registry as podman does; login
//! with stored credentials; `--get-login` without a registry; build's `--pull`,
//! `--layers`, `--tls-verify`; the global `--debug`; `podman search` of a logged-in
//! user; a short name failing on every search registry.
//!
//! Run with `cargo test -p berth --test cli_defects`; the peers are Debian packages
//! (scripts/install-peers.sh), a missing one fails the test.

#[path = "interop/support.rs"]
mod support;

use std::fs;

use support::*;

const PODMAN: &str = "podman";

/// Go's net/http words it so, and podman passes it on.
const PLAIN_HTTP: &str = "server gave HTTP response to HTTPS client";

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// registries.conf marking `hosts` insecure, with `search` as search registries.
fn registries_conf(ctx: &Ctx, search: &[&str], insecure: &[&str]) {
    let mut text = format!(
        "unqualified-search-registries = [{}]\nshort-name-mode = \"permissive\"\n",
        search
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for host in insecure {
        text.push_str(&format!(
            "[[registry]]\nlocation = \"{host}\"\ninsecure = true\n"
        ));
    }
    fs::write(ctx.path("registries.conf"), text).unwrap();
}

/// A one-file image built by berth and pushed to `dest` (plain HTTP).
fn push_base(ctx: &Ctx, dest: &str) {
    let context = ctx.path("base-context");
    fs::create_dir_all(&context).unwrap();
    fs::write(context.join("hello"), "hello\n").unwrap();
    fs::write(
        context.join("Containerfile"),
        "FROM scratch\nCOPY hello /hello\n",
    )
    .unwrap();
    let c = context.display().to_string();
    ctx.berth(&["build", "-q", "-t", "localhost/base:v1", &c])
        .run();
    ctx.berth(&[
        "push",
        "--tls-verify=false",
        "localhost/base:v1",
        &format!("docker://{dest}"),
    ])
    .run();
    ctx.berth(&["rmi", "localhost/base:v1"]).run();
}

/// A build context whose Containerfile starts `FROM base`.
fn context_from(ctx: &Ctx, name: &str, base: &str) -> String {
    let dir = ctx.path(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("more"), "more\n").unwrap();
    fs::write(
        dir.join("Containerfile"),
        format!("FROM {base}\nCOPY more /more\n"),
    )
    .unwrap();
    dir.display().to_string()
}

#[test]
fn login_honours_insecure_and_reuses_stored_credentials_as_podman() {
    let mut ctx = Ctx::new("cli-login", &[PODMAN]);
    let reg = ctx.start(ServerKind::Berth);
    let root = ctx.berth_root(&reg).display().to_string();
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
    let login = ["login", "-u", "alice", "-p", "alice-pw", reg.as_str()];

    ctx.step("no registries.conf entry: TLS is required, and the registry speaks HTTP");
    let berth = ctx.berth(&login).run_fail();
    let podman = ctx.podman(&login).run_fail();
    assert!(podman.stderr.contains(PLAIN_HTTP), "{}", podman.stderr);
    assert!(berth.stderr.contains(PLAIN_HTTP), "{}", berth.stderr);
    assert_eq!(berth.stderr.lines().count(), 1, "{}", berth.stderr);

    // `--tls-verify` alone is true, and the registry after it stays the registry.
    for args in [
        [
            "login",
            "--tls-verify",
            "-u",
            "alice",
            "-p",
            "alice-pw",
            reg.as_str(),
        ],
        [
            "login",
            "-u",
            "alice",
            "-p",
            "alice-pw",
            "--tls-verify",
            reg.as_str(),
        ],
    ] {
        let berth = ctx.berth(&args).run_fail();
        assert!(berth.stderr.contains(PLAIN_HTTP), "{}", berth.stderr);
    }
    let pull = ctx
        .berth(&["pull", "--tls-verify", &format!("{reg}/alice/none:v1")])
        .run_fail();
    assert!(pull.stderr.contains(PLAIN_HTTP), "{}", pull.stderr);

    ctx.step("insecure = true: both log in over HTTP");
    registries_conf(&ctx, &[], &[&reg]);
    assert_eq!(ctx.berth(&login).run().stdout, "Login Succeeded!\n");
    assert_eq!(ctx.podman(&login).run().stdout, "Login Succeeded!\n");

    ctx.step("login without credentials given: the stored ones, checked");
    let berth = ctx.berth(&["login", &reg]).run();
    let podman = ctx.podman(&["login", &reg]).run();
    assert_eq!(berth.stdout, podman.stdout);
    assert_eq!(
        berth.stdout,
        format!(
            "Authenticating with existing credentials for {reg}\n\
             Existing credentials are valid. Already logged in to {reg}\n"
        )
    );

    ctx.step("--get-login with and without a registry");
    let berth = ctx.berth(&["login", "--get-login", &reg]).run();
    let podman = ctx.podman(&["login", "--get-login", &reg]).run();
    assert_eq!(
        (berth.stdout.as_str(), podman.stdout.as_str()),
        ("alice\n", "alice\n")
    );
    let berth = ctx.berth(&["login", "--get-login"]).run_fail();
    let podman = ctx.podman(&["login", "--get-login"]).run_fail();
    let no_default = "no registries found in registries.conf, a registry must be provided";
    assert!(podman.stderr.contains(no_default), "{}", podman.stderr);
    assert!(berth.stderr.contains(no_default), "{}", berth.stderr);
    registries_conf(&ctx, &[&reg], &[&reg]);
    let berth = ctx.berth(&["login", "--get-login"]).run();
    let podman = ctx.podman(&["login", "--get-login"]).run();
    assert_eq!(
        (berth.stdout.as_str(), podman.stdout.as_str()),
        ("alice\n", "alice\n")
    );

    ctx.step("stored credentials that no longer work are not kept silently");
    ctx.berth(&[
        "registry",
        "--root",
        &root,
        "user",
        "passwd",
        "alice",
        "--password-stdin",
    ])
    .stdin(b"new-pw\n")
    .run();
    let berth = ctx.berth(&["login", &reg]).run_fail();
    assert!(
        berth
            .stdout
            .contains("Existing credentials are invalid, please enter valid username and password"),
        "{}",
        berth.stdout
    );
}

#[test]
fn build_pulls_from_an_insecure_registry_with_podman_flags() {
    let mut ctx = Ctx::new("cli-build", &[PODMAN]);
    let reg = ctx.start(ServerKind::Berth);
    let base = format!("{reg}/lib/base:v1");
    push_base(&ctx, &base);
    let c = context_from(&ctx, "from-registry", &base);

    ctx.step("FROM a plain-HTTP registry without insecure: podman's words");
    let berth = ctx.berth(&["build", "-q", &c]).run_fail();
    let podman = ctx.podman(&["build", "-q", &c]).run_fail();
    assert!(podman.stderr.contains(PLAIN_HTTP), "{}", podman.stderr);
    assert!(berth.stderr.contains(PLAIN_HTTP), "{}", berth.stderr);
    assert_eq!(berth.status.code(), Some(125));

    ctx.step("--tls-verify=false pulls over HTTP");
    let id = ctx
        .berth(&["build", "-q", "--tls-verify=false", &c])
        .run()
        .last_line();
    assert_eq!(id.len(), 64, "{id}");
    ctx.berth(&["rmi", "-f", &base]).run();

    ctx.step("registries.conf insecure = true pulls over HTTP; --tls-verify=true wins over it");
    registries_conf(&ctx, &[], &[&reg]);
    let berth = ctx
        .berth(&["build", "-q", "--tls-verify=true", &c])
        .run_fail();
    assert!(berth.stderr.contains(PLAIN_HTTP), "{}", berth.stderr);
    ctx.berth(&["build", "-q", &c]).run();
    ctx.podman(&["build", "-q", &c]).run();
    // create (and run) pull through the same path.
    ctx.berth(&["rmi", "-f", &base]).run();
    ctx.berth(&["create", &base, "/hello"]).run();

    ctx.step("--pull policies, with the registry of the FROM image unreachable");
    let closed = format!("127.0.0.1:{}/lib/gone:v1", closed_port());
    ctx.berth(&["tag", &base, &closed]).run();
    let c = context_from(&ctx, "from-closed", &closed);
    // The image is stored: missing (the default, and podman's false) and never use
    // it; newer falls back to it; always (also --pull alone and true) must pull.
    for ok in [
        None,
        Some("--pull=missing"),
        Some("--pull=false"),
        Some("--pull=never"),
        Some("--pull=newer"),
    ] {
        let mut args = vec!["build", "-q"];
        args.extend(ok);
        args.push(&c);
        ctx.berth(&args).run();
    }
    for fail in ["--pull", "--pull=always", "--pull=true"] {
        let out = ctx.berth(&["build", "-q", fail, &c]).run_fail();
        assert_eq!(out.status.code(), Some(125), "{fail}: {}", out.stderr);
        assert!(out.stderr.contains("FROM"), "{fail}: {}", out.stderr);
    }
    ctx.step("--pull=never of an image the store lacks: podman's 'image not known'");
    ctx.berth(&["rmi", "-f", &closed]).run();
    let berth = ctx.berth(&["build", "-q", "--pull=never", &c]).run_fail();
    assert!(
        berth.stderr.contains(&format!("{closed}: image not known")),
        "{}",
        berth.stderr
    );
    let bad = ctx.berth(&["build", "--pull=sometimes", &c]).run_fail();
    assert_eq!(bad.status.code(), Some(125));
    assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("--pull"), "{}", bad.stderr);

    ctx.step("--layers: the cache by default, none with --layers=false");
    let c = context_from(&ctx, "cached", &base);
    ctx.berth(&["build", &c]).run();
    let again = ctx.berth(&["build", &c]).run();
    assert!(again.stderr.contains("Using cache"), "{}", again.stderr);
    // Flags without a value take none: the context after them stays the context.
    let layers = ctx.berth(&["build", "--layers", "--tls-verify", &c]).run();
    assert!(layers.stderr.contains("Using cache"), "{}", layers.stderr);
    let no_layers = ctx.berth(&["build", "--layers=false", &c]).run();
    assert!(
        !no_layers.stderr.contains("Using cache"),
        "{}",
        no_layers.stderr
    );
}

#[test]
fn debug_is_accepted_before_and_after_the_subcommand() {
    let mut ctx = Ctx::new("cli-debug", &[]);
    let reg = ctx.start(ServerKind::Berth);
    let quiet = ctx.berth(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{reg}/none"),
    ]);
    let quiet = quiet.run_fail();
    assert!(!quiet.stderr.contains("DEBUG"), "{}", quiet.stderr);
    for args in [
        vec!["--debug", "list-tags", "--tls-verify=false"],
        vec!["list-tags", "--debug", "--tls-verify=false"],
    ] {
        let mut args = args;
        let name = format!("docker://{reg}/none");
        args.push(&name);
        let out = ctx.berth(&args).run_fail();
        assert!(out.stderr.contains("DEBUG"), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(&reg), "{args:?}: {}", out.stderr);
    }
    ctx.berth(&["images", "--debug"]).run();
    ctx.berth(&["--debug", "images"]).run();
}

#[test]
fn podman_search_sees_the_private_repositories_of_a_logged_in_user() {
    let mut ctx = Ctx::new("cli-search", &[PODMAN]);
    let reg = ctx.start(ServerKind::Berth);
    let root = ctx.berth_root(&reg).display().to_string();
    push_base(&ctx, &format!("{reg}/alice/secret:v1"));
    push_base(&ctx, &format!("{reg}/alice/open:v1"));
    let admin = |args: &[&str]| {
        let mut all = vec!["registry", "--root", root.as_str()];
        all.extend(args);
        ctx.berth(&all)
    };
    admin(&["user", "add", "alice", "--password-stdin"])
        .stdin(b"alice-pw\n")
        .run();
    admin(&["repo", "visibility", "alice/open", "public"]).run();
    registries_conf(&ctx, &[], &[&reg]);
    let term = format!("{reg}/alice");
    let names = |out: &str| -> Vec<String> {
        let mut v: Vec<String> = out
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let open = vec![format!("{reg}/alice/open")];
    let both = vec![format!("{reg}/alice/open"), format!("{reg}/alice/secret")];

    ctx.step("anonymous: the public repository");
    assert_eq!(names(&ctx.podman(&["search", &term]).run().stdout), open);
    assert_eq!(names(&ctx.berth(&["search", &term]).run().stdout), open);

    ctx.step("logged in: the private one too");
    ctx.podman(&["login", "-u", "alice", "-p", "alice-pw", &reg])
        .run();
    assert_eq!(names(&ctx.podman(&["search", &term]).run().stdout), both);
    assert_eq!(names(&ctx.berth(&["search", &term]).run().stdout), both);
}

#[test]
fn a_short_name_failing_everywhere_lists_each_registry_as_podman() {
    let mut ctx = Ctx::new("cli-short", &[PODMAN]);
    let one = ctx.start(ServerKind::Berth);
    let two = ctx.start(ServerKind::Berth);
    registries_conf(&ctx, &[&one, &two], &[&one, &two]);
    let berth = ctx.berth(&["pull", "nothere:v1"]).run_fail();
    let podman = ctx.podman(&["pull", "nothere:v1"]).run_fail();
    let listed = |stderr: &str| -> Vec<String> {
        let at = stderr
            .find("Error: 2 errors occurred while pulling:\n")
            .unwrap_or_else(|| panic!("no list of errors in:\n{stderr}"));
        stderr[at..]
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with(" * "))
            .map(str::to_string)
            .collect()
    };
    let (b, p) = (listed(&berth.stderr), listed(&podman.stderr));
    assert_eq!((b.len(), p.len()), (2, 2), "berth {b:?}, podman {p:?}");
    for (line, host) in b.iter().zip([&one, &two]) {
        assert!(line.contains(&format!("{host}/nothere")), "{line}");
    }
    assert_eq!(berth.status.code(), Some(125));
}
