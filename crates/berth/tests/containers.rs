//! Containers, builds, export and import, against the real peers: `berth build` of
//! real Containerfiles gives the config buildah gives and images that run under runc;
//! containers go through create, start, exec, stop, commit and rm; export -> import
//! keeps every file, mode, owner and link, both ways with podman; hostile layers are
//! refused without a byte written outside the root.
//!
//! Run with `cargo test -p berth --test containers` (as root: containers need it).

#[path = "interop/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;

use serde_json::Value;
use support::*;

const BUILDAH: &str = "buildah";
const PODMAN: &str = "podman";
const RUNC: &str = "runc";

/// A berth registry holding busybox as `{reg}/test/busybox:v1`, marked insecure in
/// registries.conf so that FROM (berth and buildah) can pull it.
fn registry_with_busybox(ctx: &mut Ctx) -> (String, String) {
    let reg = ctx.start(ServerKind::Berth);
    let [pf, pv] = ctx.policy_args();
    let image = busybox_with_applets(ctx, "localhost/test/busybox:v1");
    let remote = format!("{reg}/test/busybox:v1");
    ctx.buildah(&[
        "push",
        &pf,
        &pv,
        "--tls-verify=false",
        &image,
        &format!("docker://{remote}"),
    ])
    .run();
    fs::write(
        ctx.path("registries.conf"),
        format!("[[registry]]\nlocation = \"{reg}\"\ninsecure = true\n"),
    )
    .unwrap();
    (reg, remote)
}

/// A busybox image with its applets linked in /bin (sh, mkdir, ls, …) and an
/// /etc/passwd, so that shell-form RUN and USER names work.
fn busybox_with_applets(ctx: &Ctx, image: &str) -> String {
    let root = ctx.path("busybox-root");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    let list = std::process::Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    let [pf, pv] = ctx.policy_args();
    let ctr = ctx
        .buildah(&["from", &pf, &pv, "scratch"])
        .run()
        .last_line();
    ctx.buildah(&["copy", &ctr, &root.display().to_string(), "/"])
        .run();
    ctx.buildah(&["config", "--cmd", r#"["/bin/sh"]"#, &ctr])
        .run();
    ctx.buildah(&["commit", &pf, &pv, &ctr, image]).run();
    ctx.buildah(&["rm", &ctr]).run();
    image.to_string()
}

/// The run-config fields builds are compared on (buildah's own label left out).
fn config_fields(inspect: &Value) -> BTreeMap<String, Value> {
    let config = &inspect[0]["Config"];
    let mut out = BTreeMap::new();
    for key in [
        "Env",
        "Cmd",
        "Entrypoint",
        "Labels",
        "ExposedPorts",
        "WorkingDir",
        "User",
    ] {
        let mut v = config[key].clone();
        if key == "Labels" {
            if let Some(o) = v.as_object_mut() {
                o.remove("io.buildah.version");
            }
        }
        out.insert(key.to_string(), v);
    }
    out
}

#[test]
fn build_matches_buildah_and_runs() {
    let mut ctx = Ctx::new("build", &[BUILDAH, PODMAN, RUNC]);
    let (_reg, busybox) = registry_with_busybox(&mut ctx);
    let dir = ctx.path("context");
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::write(dir.join("app.py"), "print('hi')\n").unwrap();
    fs::write(dir.join("lib/util.py"), "X = 1\n").unwrap();
    fs::write(dir.join("secret.txt"), "never copied\n").unwrap();
    fs::write(dir.join(".containerignore"), "secret.txt\n").unwrap();
    fs::write(
        dir.join("Containerfile"),
        format!(
            "# a multi-stage build\n\
             ARG BASE={busybox}\n\
             FROM $BASE AS builder\n\
             ARG GREETING=hello\n\
             RUN mkdir -p /out && echo \"$GREETING from the builder\" > /out/greeting.txt\n\
             RUN echo second > /out/here.txt && cat /etc/resolv.conf > /out/resolv.txt\n\
             \n\
             FROM {busybox}\n\
             ARG VERSION=1.0\n\
             ENV APP_VERSION=$VERSION \\\n    APP_HOME=/srv\n\
             LABEL org.example.version=\"$VERSION\" org.example.name=\"the app\"\n\
             EXPOSE 8080 9090/udp\n\
             WORKDIR /srv\n\
             COPY --from=builder /out/ /srv/out/\n\
             COPY app.py lib ./\n\
             COPY --chmod=0600 app.py /srv/private.py\n\
             RUN [\"/bin/busybox\", \"sh\", \"-c\", \"test ! -e /srv/secret.txt && echo app:x:1000:1000::/srv:/bin/sh >> /etc/passwd\"]\n\
             USER app\n\
             ENTRYPOINT [\"/bin/busybox\", \"sh\", \"-c\"]\n\
             CMD [\"cat /srv/out/greeting.txt; cat /srv/out/here.txt; id -u; echo $APP_VERSION\"]\n"
        ),
    )
    .unwrap();
    let context = dir.display().to_string();
    let [pf, pv] = ctx.policy_args();

    ctx.step("buildah builds it");
    ctx.buildah(&[
        "build",
        &pf,
        &pv,
        "--isolation",
        "chroot",
        "--layers",
        "--tls-verify=false",
        "--build-arg",
        "VERSION=2.5",
        "--label",
        "org.example.name=from the flag",
        "--label",
        "built.by=$USER \\t",
        "-t",
        "localhost/test/by-buildah:v1",
        &context,
    ])
    .run();
    let theirs = ctx
        .podman(&["image", "inspect", "localhost/test/by-buildah:v1"])
        .run()
        .json();

    ctx.step("berth builds it: the same config");
    let iidfile = ctx.p("app.iid");
    let out = ctx
        .berth(&[
            "build",
            "--build-arg",
            "VERSION=2.5",
            "--label",
            "org.example.name=from the flag",
            "--label",
            "built.by=$USER \\t",
            "-t",
            "app:v1",
            "--iidfile",
            &iidfile,
            &context,
        ])
        .run();
    let id = out.last_line();
    assert_eq!(
        fs::read_to_string(&iidfile).unwrap(),
        format!("sha256:{id}")
    );
    assert!(out.stderr.contains("STEP 1/"), "{}", out.stderr);
    let ours = ctx.berth(&["image", "inspect", "app:v1"]).run().json();
    assert_eq!(config_fields(&ours), config_fields(&theirs));
    assert_eq!(ours[0]["Id"], id.as_str());

    ctx.step("the image runs");
    let ran = ctx.berth(&["run", "--rm", "app:v1"]).run();
    assert_eq!(
        ran.stdout, "hello from the builder\nsecond\n1000\n2.5\n",
        "{}",
        ran.stderr
    );
    ctx.step("-h is the host name, as podman's run takes it");
    let named = ctx
        .berth(&[
            "run",
            "--rm",
            "-h",
            "web-1.example",
            "app:v1",
            "cat /proc/sys/kernel/hostname",
        ])
        .run();
    assert_eq!(named.stdout, "web-1.example\n", "{}", named.stderr);
    ctx.step("the host's resolv.conf and hosts, the host name, as podman gives them");
    let files = ctx
        .berth(&[
            "run",
            "--rm",
            "-h",
            "web-1.example",
            "app:v1",
            "cat /etc/resolv.conf; echo --; cat /etc/hosts; echo --; cat /etc/hostname; \
             echo --; cat /srv/out/resolv.txt; echo --; \
             cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max; \
             grep ' /proc ' /proc/self/mountinfo; ulimit -n; grep Seccomp: /proc/self/status",
        ])
        .run();
    let resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let hosts = fs::read_to_string("/etc/hosts").unwrap_or_default();
    let parts: Vec<&str> = files.stdout.split("--\n").collect();
    assert_eq!(parts.len(), 5, "{}{}", files.stdout, files.stderr);
    assert_eq!(parts[0], resolv);
    assert_eq!(parts[1], hosts);
    assert_eq!(parts[2], "web-1.example\n");
    assert_eq!(
        parts[3], resolv,
        "a build's RUN has the host's resolv.conf too"
    );
    let mut rest = parts[4].lines();
    assert_eq!(rest.next(), Some("2048"), "podman's pids limit");
    let proc_options = rest.next().unwrap_or_default();
    for option in ["nosuid", "nodev", "noexec"] {
        assert!(proc_options.contains(option), "{proc_options}");
    }
    // Open files as podman allows them (the host's hard limit, if lower).
    let nofile = rest.next().and_then(|n| n.parse::<u64>().ok());
    assert!(nofile.is_some_and(|n| n > 1024), "{}", parts[4]);
    // containers-common's system-call filter, as podman's containers have it.
    assert_eq!(rest.next(), Some("Seccomp:\t2"), "{}", parts[4]);
    let bad = ctx
        .berth(&["run", "--rm", "-h", "bad name", "app:v1", "true"])
        .run_fail();
    assert!(bad.stderr.contains("invalid hostname"), "{}", bad.stderr);
    let listing = ctx
        .berth(&["run", "--rm", "app:v1", "ls -ln /srv"])
        .run()
        .stdout;
    assert!(
        listing.contains("util.py") && listing.contains("app.py"),
        "{listing}"
    );
    assert!(
        listing.contains("-rw-------") && listing.contains("private.py"),
        "{listing}"
    );

    ctx.step("every instruction leaves history");
    let history = &ours[0]["History"];
    let created_by: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .collect();
    for fragment in ["EXPOSE 8080", "WORKDIR /srv", "COPY", "USER app", "CMD"] {
        assert!(
            created_by.iter().any(|c| c.contains(fragment)),
            "{fragment} in {created_by:?}"
        );
    }

    ctx.step("--label: a LABEL step each, last, as buildah writes them");
    let last_two = |inspect: &Value| -> Vec<String> {
        let h = inspect[0]["History"].as_array().unwrap();
        h[h.len() - 2..]
            .iter()
            .map(|e| e["created_by"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(last_two(&ours), last_two(&theirs));
    assert_eq!(
        last_two(&ours)[1],
        r#"/bin/sh -c #(nop) LABEL "built.by"="$USER \\t""#
    );

    ctx.step("a rebuild with nothing changed: every step cached, the same ID");
    let again = ctx
        .berth(&[
            "build",
            "--build-arg",
            "VERSION=2.5",
            "--label",
            "org.example.name=from the flag",
            "--label",
            "built.by=$USER \\t",
            "-t",
            "app:v1",
            &context,
        ])
        .run();
    assert_eq!(again.last_line(), id);
    assert!(!again.stderr.contains("STEP") || again.stderr.contains("Using cache"));
    ctx.step("a changed file: the steps before it cached, the rest run");
    fs::write(dir.join("app.py"), "print('changed')\n").unwrap();
    let changed = ctx
        .berth(&[
            "build",
            "--build-arg",
            "VERSION=2.5",
            "--label",
            "org.example.name=from the flag",
            "--label",
            "built.by=$USER \\t",
            "-t",
            "app:v1",
            &context,
        ])
        .run();
    assert_ne!(changed.last_line(), id);
    assert!(changed.stderr.contains("Using cache"), "{}", changed.stderr);

    ctx.step("errors point at the Containerfile line");
    let bad = ctx.path("bad");
    fs::create_dir_all(&bad).unwrap();
    fs::write(
        bad.join("Containerfile"),
        format!("FROM {busybox}\n\nENV A=1\nCOPY app.py /\n"),
    )
    .unwrap();
    let out = ctx.berth(&["build", &bad.display().to_string()]).run_fail();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        out.stderr
            .contains("Containerfile:4: COPY: no such file: app.py"),
        "{}",
        out.stderr
    );
    fs::write(
        bad.join("Containerfile"),
        format!("FROM {busybox}\nRUN exit 3\n"),
    )
    .unwrap();
    let out = ctx.berth(&["build", &bad.display().to_string()]).run_fail();
    assert!(
        out.stderr.contains("Containerfile:2: RUN:"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("status 3"), "{}", out.stderr);

    ctx.step("heredocs (which buildah 1.28 lacks): RUN <<EOF and COPY <<EOF");
    fs::write(
        bad.join("Containerfile"),
        format!(
            "FROM {busybox}\nRUN <<EOF\necho from a heredoc > /here.txt\nEOF\nCOPY <<EOF /copied.txt\ninline\nEOF\nCMD [\"cat\", \"/here.txt\", \"/copied.txt\"]\n"
        ),
    )
    .unwrap();
    ctx.berth(&["build", "-t", "heredoc:v1", &bad.display().to_string()])
        .run();
    let out = ctx.berth(&["run", "--rm", "heredoc:v1"]).run();
    assert_eq!(out.stdout, "from a heredoc\ninline\n");

    ctx.step("HEALTHCHECK, SHELL, ONBUILD: kept in docker format, dropped with a warning in OCI");
    fs::write(
        bad.join("Containerfile"),
        format!(
            "FROM {busybox}\nHEALTHCHECK --interval=30s CMD true\nSHELL [\"/bin/sh\", \"-c\"]\nONBUILD RUN true\nSTOPSIGNAL SIGINT\nVOLUME /data\n"
        ),
    )
    .unwrap();
    let context = bad.display().to_string();
    let out = ctx
        .berth(&["build", "--format", "docker", "-t", "hc:docker", &context])
        .run();
    assert!(!out.stderr.contains("WARN"), "{}", out.stderr);
    let docker = ctx.berth(&["image", "inspect", "hc:docker"]).run().json();
    assert_eq!(
        docker[0]["ManifestType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let config: Value = serde_json::from_str(
        &ctx.berth(&[
            "image",
            "inspect",
            "--format",
            "{{json .Config}}",
            "hc:docker",
        ])
        .run()
        .stdout,
    )
    .unwrap();
    assert_eq!(config["StopSignal"], "SIGINT");
    assert!(config["Volumes"]["/data"].is_object(), "{config}");
    let out = ctx.berth(&["build", "-t", "hc:oci", &context]).run();
    assert!(
        out.stderr
            .contains("HEALTHCHECK is not supported for OCI image format"),
        "{}",
        out.stderr
    );
}

#[test]
fn container_lifecycle() {
    let mut ctx = Ctx::new("ctrs", &[BUILDAH, RUNC]);
    let (_reg, busybox) = registry_with_busybox(&mut ctx);

    ctx.step("run pulls a missing image; -e, -w, -u, --entrypoint, the exit code");
    let out = ctx
        .berth(&[
            "run",
            "--rm",
            "-e",
            "K=V",
            "-w",
            "/tmp",
            "-u",
            "1000",
            &busybox,
            "/bin/busybox",
            "sh",
            "-c",
            "echo $K; pwd; /bin/busybox id -u; exit 7",
        ])
        .run_any();
    assert_eq!(out.status.code(), Some(7), "{}", out.stderr);
    assert_eq!(out.stdout, "V\n/tmp\n1000\n");
    let out = ctx
        .berth(&[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/busybox",
            &busybox,
            "echo",
            "via",
            "entrypoint",
        ])
        .run();
    assert_eq!(out.stdout, "via entrypoint\n");
    assert_eq!(
        ctx.berth(&["ps", "-a", "-q"]).run().stdout,
        "",
        "--rm removed them"
    );
    // SIGTERM to berth (a service manager stopping it), or SIGINT (`kill -INT`, a
    // Ctrl-C), reaches the container once, whose last words, exit status and --rm are
    // still berth's to relay, record and do.
    for signal in ["TERM", "INT"] {
        let script = format!(
            "trap 'echo bye; exit 3' {signal}; echo up; \
             while :; do /bin/busybox sleep 0.1; done"
        );
        let mut child = ctx
            .berth(&["run", "--rm", &busybox, "/bin/busybox", "sh", "-c", &script])
            .spawn();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 3];
        stdout.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"up\n");
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "bye\n", "SIG{signal}");
        assert_eq!(child.wait().unwrap().code(), Some(3), "SIG{signal}");
        assert_eq!(
            ctx.berth(&["ps", "-a", "-q"]).run().stdout,
            "",
            "--rm after SIG{signal}"
        );
    }
    // In the background too, once it ends.
    ctx.berth(&["run", "-d", "--rm", &busybox, "/bin/busybox", "true"])
        .run();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ctx.berth(&["ps", "-a", "-q"]).run().stdout.is_empty() {
        assert!(std::time::Instant::now() < deadline, "run -d --rm left it");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // What fails before the process runs is said at once, not after a 10 s wait.
    let began = std::time::Instant::now();
    let out = ctx
        .berth(&[
            "run",
            "-d",
            "--name",
            "nouser",
            "-u",
            "nosuch",
            &busybox,
            "/bin/busybox",
            "true",
        ])
        .run_fail();
    assert!(out.stderr.contains("nosuch"), "{}", out.stderr);
    assert!(
        began.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    ctx.berth(&["rm", "nouser"]).run();

    ctx.step("create, mount, start, ps, exec, stop, rm");
    let id = ctx
        .berth(&[
            "create",
            "--name",
            "web",
            &busybox,
            "/bin/busybox",
            "sleep",
            "300",
        ])
        .run()
        .last_line();
    assert_eq!(id.len(), 64);
    let ps = ctx.berth(&["ps", "-a"]).run().stdout;
    assert!(ps.starts_with("CONTAINER ID"), "{ps}");
    assert!(ps.contains("Created") && ps.contains("web"), "{ps}");
    let mount = ctx.berth(&["mount", "web"]).run().last_line();
    assert!(
        std::path::Path::new(&mount).join("bin/busybox").is_file(),
        "{mount}"
    );
    ctx.berth(&["start", "web"]).run();
    let ps = ctx.berth(&["ps"]).run().stdout;
    assert!(ps.contains("Up ") && ps.contains(&id[..12]), "{ps}");
    let out = ctx
        .berth(&[
            "exec",
            "-e",
            "X=1",
            "-e",
            "FROM_BERTH",
            "web",
            "/bin/busybox",
            "sh",
            "-c",
            "echo in $X $FROM_BERTH; echo made > /made.txt",
        ])
        .env("FROM_BERTH", "its own")
        .run();
    assert_eq!(out.stdout, "in 1 its own\n", "-e KEY takes berth's value");
    // -i gives the process berth's stdin, as podman's exec -i; without it, none.
    let cat = |flags: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["web", "/bin/busybox", "cat"]);
        ctx.berth(&args).stdin(b"piped in\n").run().stdout
    };
    assert_eq!(cat(&["-i"]), "piped in\n");
    assert_eq!(cat(&[]), "");
    let out = ctx
        .berth(&["exec", "-it", "web", "/bin/busybox", "true"])
        .run_fail();
    assert!(out.stderr.contains("--tty"), "{}", out.stderr);
    let out = ctx.berth(&["rm", "web"]).run_fail();
    assert!(out.stderr.contains("running"), "{}", out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "podman-rm(1): 2 for a running one"
    );
    ctx.berth(&["stop", "-t", "1", "web"]).run();
    let ps = ctx.berth(&["ps", "-a"]).run().stdout;
    assert!(ps.contains("Exited (137)"), "{ps}");
    let listed = ctx.berth(&["container", "ls", "-a", "-q"]).run().stdout;
    let plain = ctx.berth(&["ps", "-a", "-q"]).run().stdout;
    assert_eq!(listed, plain, "podman's container group lists the same");

    ctx.step("two starts at once run one process, which stop stops");
    // The container's processes: those in its cgroup (runc names it by the ID).
    let in_cgroup = |id: &str| {
        fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| fs::read_to_string(e.path().join("cgroup")).is_ok_and(|c| c.contains(id)))
            .count()
    };
    std::thread::scope(|s| {
        let starts: Vec<_> = (0..2)
            .map(|_| s.spawn(|| ctx.berth(&["start", "web"]).run()))
            .collect();
        for started in starts {
            started.join().unwrap();
        }
    });
    assert_eq!(in_cgroup(&id), 1, "one process");
    // stop -a: every running container, by ID, as podman's.
    let stopped = ctx.berth(&["stop", "-a", "-t", "1"]).run().stdout;
    assert_eq!(stopped.trim(), id);
    assert_eq!(in_cgroup(&id), 0, "stopped");

    ctx.step("a container keeps the runtime it ran with");
    // runc with a state folder of its own: the default runtime knows nothing of what
    // it runs.
    let other = ctx.path("other-runc");
    fs::write(
        &other,
        "#!/bin/sh\nfor a do shift; case $a in */runtime) a=$a-other;; esac; set -- \"$@\" \"$a\"; done\n\
         exec runc \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let other_id = ctx
        .berth(&[
            "run",
            "-d",
            "--runtime",
            &other.display().to_string(),
            "--name",
            "elsewhere",
            &busybox,
            "/bin/busybox",
            "sleep",
            "300",
        ])
        .run()
        .last_line();
    let ps = ctx.berth(&["ps"]).run().stdout;
    assert!(ps.contains("elsewhere") && ps.contains("Up "), "{ps}");
    ctx.berth(&["stop", "-t", "1", "elsewhere"]).run();
    assert_eq!(
        in_cgroup(&other_id),
        0,
        "stopped through the runtime that ran it"
    );
    ctx.berth(&["rm", "elsewhere"]).run();

    ctx.step("commit: the container's changes, deletions included, in a new image");
    ctx.berth(&["commit", "web", "committed:v1"]).run();
    let out = ctx
        .berth(&[
            "run",
            "--rm",
            "committed:v1",
            "/bin/busybox",
            "cat",
            "/made.txt",
        ])
        .run();
    assert_eq!(out.stdout, "made\n");
    ctx.berth(&["create", "--name", "changer", "committed:v1", "true"])
        .run();
    let root = ctx.berth(&["mount", "changer"]).run().last_line();
    let root = std::path::Path::new(&root);
    fs::remove_file(root.join("made.txt")).unwrap();
    fs::write(root.join("new.txt"), "new").unwrap();
    ctx.berth(&[
        "commit",
        "-c",
        "CMD [\"/bin/busybox\", \"ls\", \"/\"]",
        "changer",
        "committed:v2",
    ])
    .run();
    let out = ctx.berth(&["run", "--rm", "committed:v2"]).run();
    assert!(out.stdout.contains("new.txt"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("made.txt"),
        "a deletion is a whiteout: {}",
        out.stdout
    );
    let history = ctx.berth(&["history", "committed:v2"]).run().stdout;
    assert!(history.lines().count() >= 4, "{history}");

    ctx.step("rmi of an image a container uses: refused (2), or with -f the container goes too");
    let out = ctx.berth(&["rmi", &busybox]).run_any();
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("in use by a container"),
        "{}",
        out.stderr
    );
    ctx.berth(&["rmi", "-f", &busybox]).run();
    let left = ctx
        .berth(&["ps", "-a", "--format", "{{.Names}}"])
        .run()
        .stdout;
    assert!(!left.contains("web"), "{left}");
    assert!(
        left.contains("changer"),
        "a container of another image stays: {left}"
    );

    ctx.step("unknown containers: podman's message and statuses (rm 1, others 125)");
    let out = ctx.berth(&["rm", "nosuch"]).run_any();
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        "Error: no container with name or ID \"nosuch\" found: no such container"
    );
    assert!(ctx
        .berth(&["rm", "-f", "nosuch"])
        .run_any()
        .status
        .success());
    for cmd in [
        &["stop", "nosuch"][..],
        &["start", "nosuch"],
        &["mount", "nosuch"],
    ] {
        let out = ctx.berth(cmd).run_any();
        assert_eq!(out.status.code(), Some(125), "{cmd:?}: {}", out.stderr);
        assert!(out.stderr.contains("no such container"), "{}", out.stderr);
    }

    ctx.step("no runtime: says what is missing; create and mount still work");
    let out = ctx
        .berth(&["run", "--runtime", "no-such-runtime", "committed:v1"])
        .run_fail();
    assert!(out.stderr.contains("no-such-runtime"), "{}", out.stderr);
    ctx.berth(&["create", "committed:v1", "true"]).run();
}

/// One tar entry as compared: type, mode, uid, gid, link target, content.
type Entry = (char, u32, u64, u64, String, Vec<u8>);

/// Entries of a tar by path.
fn tar_entries(path: &std::path::Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        if name.is_empty() || name == "." {
            continue;
        }
        let h = e.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            _ => 'f',
        };
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        out.insert(
            name,
            (
                kind,
                h.mode().unwrap() & 0o7777,
                h.uid().unwrap(),
                h.gid().unwrap(),
                link,
                content,
            ),
        );
    }
    out
}

/// Only what a file-system snapshot must keep (not the runtime's mount points).
fn without_mount_points(mut m: BTreeMap<String, Entry>) -> BTreeMap<String, Entry> {
    for p in [
        "dev",
        "proc",
        "sys",
        "etc/hosts",
        "etc/resolv.conf",
        "etc/hostname",
        "run",
    ] {
        m.retain(|k, _| k != p && !k.starts_with(&format!("{p}/")));
    }
    m
}

#[test]
fn export_import_round_trips_and_podman() {
    let mut ctx = Ctx::new("export", &[BUILDAH, PODMAN, RUNC]);
    let (_reg, busybox) = registry_with_busybox(&mut ctx);
    ctx.berth(&[
        "run",
        "--name",
        "src",
        &busybox,
        "/bin/busybox",
        "sh",
        "-c",
        "cd / && /bin/busybox mkdir -p d/sub && echo content > d/f && /bin/busybox chmod 750 d && \
         /bin/busybox chown 1000:2000 d/f && /bin/busybox chmod 4755 d/f && \
         /bin/busybox ln -s /d/f d/link && /bin/busybox ln d/f d/hard && echo x > d/sub/x",
    ])
    .run();
    ctx.step("export, change, export again; importing the first brings the old state back");
    let first = ctx.path("first.tar");
    ctx.berth(&["export", "-o", &first.display().to_string(), "src"])
        .run();
    let root = ctx.berth(&["mount", "src"]).run().last_line();
    fs::write(std::path::Path::new(&root).join("d/added-later"), "later").unwrap();
    let second = ctx.path("second.tar");
    ctx.berth(&["export", "-o", &second.display().to_string(), "src"])
        .run();
    assert!(tar_entries(&second).contains_key("d/added-later"));
    let a = tar_entries(&first);
    assert_eq!(a["d/f"].0, 'f');
    assert_eq!((a["d/f"].1, a["d/f"].2, a["d/f"].3), (0o4755, 1000, 2000));
    assert_eq!(a["d/link"].4, "/d/f");
    assert_eq!(a["d"].1, 0o750);
    let id = ctx
        .berth(&["import", &first.display().to_string(), "snap:1"])
        .run()
        .last_line();
    assert!(id.starts_with("sha256:"), "{id}");
    ctx.berth(&["create", "--name", "restored", "snap:1", "true"])
        .run();
    let back = ctx.path("back.tar");
    ctx.berth(&["export", "-o", &back.display().to_string(), "restored"])
        .run();
    let b = tar_entries(&back);
    assert!(!b.contains_key("d/added-later"));
    assert_eq!(without_mount_points(a.clone()), without_mount_points(b));

    ctx.step("berth's export imports into podman, and podman's export into berth");
    ctx.podman(&[
        "import",
        &first.display().to_string(),
        "localhost/from-berth:1",
    ])
    .run();
    ctx.podman(&["create", "--name", "pc", "localhost/from-berth:1", "true"])
        .run();
    let podman_tar = ctx.path("podman.tar");
    ctx.podman(&["export", "-o", &podman_tar.display().to_string(), "pc"])
        .run();
    let p = tar_entries(&podman_tar);
    assert_eq!(
        without_mount_points(p.clone()),
        without_mount_points(a.clone())
    );
    ctx.berth(&["import", &podman_tar.display().to_string(), "from-podman:1"])
        .run();
    ctx.berth(&["create", "--name", "fp", "from-podman:1", "true"])
        .run();
    let again = ctx.path("again.tar");
    ctx.berth(&["export", "-o", &again.display().to_string(), "fp"])
        .run();
    assert_eq!(
        without_mount_points(tar_entries(&again)),
        without_mount_points(p)
    );

    ctx.step("import from stdin, with --change and --message");
    let bytes = fs::read(&first).unwrap();
    ctx.berth(&[
        "import",
        "-c",
        "CMD [\"/bin/busybox\", \"cat\", \"/d/f\"]",
        "-m",
        "from stdin",
        "-",
        "stdin:1",
    ])
    .stdin(&bytes)
    .run();
    let out = ctx.berth(&["run", "--rm", "stdin:1"]).run();
    assert_eq!(out.stdout, "content\n");
    let history = ctx
        .berth(&["history", "--format", "{{.Comment}}", "stdin:1"])
        .run()
        .stdout;
    assert_eq!(history.trim(), "from stdin");
}

/// Builds a layer tar by hand (the `tar` crate refuses to write some of these).
fn hostile_tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link) in entries {
        let mut h = tar::Header::new_gnu();
        {
            let raw = h.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        let body: &[u8] = if kind.is_file() { b"pwned\n" } else { b"" };
        h.set_size(body.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(body);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[test]
fn hostile_layers_are_refused() {
    let ctx = Ctx::new("hostile", &[]);
    let outside = ctx.path("outside");
    fs::create_dir_all(&outside).unwrap();
    let target = outside.display().to_string();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dot-dot",
            hostile_tar(&[(
                "../../../../../../../../../tmp/berth-escape-dotdot",
                tar::EntryType::Regular,
                "",
            )]),
        ),
        (
            "symlink parent",
            hostile_tar(&[
                ("link", tar::EntryType::Symlink, &target),
                ("link/escaped", tar::EntryType::Regular, ""),
            ]),
        ),
        (
            "hard link out",
            hostile_tar(&[("hard", tar::EntryType::Link, "../../../../../../etc/passwd")]),
        ),
    ];
    for (what, bytes) in cases {
        ctx.step(what);
        let path = ctx.path(&format!("{}.tar", what.replace(' ', "-")));
        fs::write(&path, &bytes).unwrap();
        let name = format!("hostile-{}:1", what.replace(' ', "-"));
        ctx.berth(&["import", &path.display().to_string(), &name])
            .run();
        // Refused (a one-line error, no container left) or neutralised (the entry
        // kept inside the root): never a byte outside.
        let before = ctx.berth(&["ps", "-a", "-q"]).run().stdout;
        let out = ctx.berth(&["create", &name, "true"]).run_any();
        ctx.step(&format!("{what}: {}", out.stderr.trim()));
        if !out.status.success() {
            assert_eq!(out.status.code(), Some(125), "{what}: {}", out.stderr);
            assert_eq!(
                out.stderr.trim().lines().count(),
                1,
                "{what}: {}",
                out.stderr
            );
            let after = ctx.berth(&["ps", "-a", "-q"]).run().stdout;
            assert_eq!(after, before, "{what}: no half container left");
        }
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "{what} wrote outside"
        );
        assert!(!std::path::Path::new("/tmp/berth-escape-dotdot").exists());
        let passwd = fs::read_to_string("/etc/passwd").unwrap();
        assert!(!passwd.contains("pwned"), "{what} changed /etc/passwd");
    }
}

/// What buildah 1.28 cannot be compared on, checked on berth alone: ADD of a local
/// archive, COPY --chown, --target, .dockerignore, FROM scratch, SHELL for RUN, and
/// reproducible images with --timestamp.
#[test]
fn build_features() {
    let mut ctx = Ctx::new("buildmore", &[BUILDAH, RUNC]);
    let (_reg, busybox) = registry_with_busybox(&mut ctx);
    let dir = ctx.path("ctx");
    fs::create_dir_all(dir.join("pkg")).unwrap();
    fs::write(dir.join("pkg/a.txt"), "A\n").unwrap();
    fs::write(dir.join("pkg/skip.log"), "no\n").unwrap();
    fs::write(dir.join(".dockerignore"), "**/*.log\n").unwrap();
    // A gzip tar that ADD unpacks.
    let tgz = dir.join("bundle.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(
            fs::File::create(&tgz).unwrap(),
            flate2::Compression::default(),
        );
        let mut t = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(8);
        h.set_mode(0o640);
        h.set_cksum();
        t.append_data(&mut h, "inner/file.txt", &b"unpacked"[..])
            .unwrap();
        t.into_inner().unwrap().finish().unwrap();
    }
    fs::write(
        dir.join("Containerfile"),
        format!(
            "FROM scratch AS empty\n\
             COPY pkg/a.txt /only.txt\n\
             \n\
             FROM {busybox} AS final\n\
             RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group\n\
             SHELL [\"/bin/sh\", \"-c\"]\n\
             ADD bundle.tar.gz /opt/\n\
             COPY --chown=app:app pkg /pkg\n\
             COPY --from=empty /only.txt /from-scratch.txt\n\
             RUN test -f /opt/inner/file.txt && test ! -e /pkg/skip.log\n\
             CMD [\"/bin/sh\", \"-c\", \"cat /opt/inner/file.txt; echo; ls -ln /pkg; cat /from-scratch.txt\"]\n\
             \n\
             FROM final AS extra\n\
             RUN touch /extra\n"
        ),
    )
    .unwrap();
    let context = dir.display().to_string();
    ctx.step("--target stops at a stage; ADD unpacks, --chown, .dockerignore, FROM scratch");
    ctx.berth(&["build", "--target", "final", "-t", "feat:v1", &context])
        .run();
    let out = ctx.berth(&["run", "--rm", "feat:v1"]).run();
    assert!(out.stdout.starts_with("unpacked\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains(" 1000 ") && out.stdout.contains("a.txt"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("skip.log"), "{}", out.stdout);
    assert!(out.stdout.ends_with("A\n"), "{}", out.stdout);
    let check = ctx
        .berth(&[
            "run",
            "--rm",
            "feat:v1",
            "/bin/sh",
            "-c",
            "test -e /extra || echo no-extra",
        ])
        .run();
    assert_eq!(check.stdout, "no-extra\n");
    ctx.step("--timestamp: two builds without the cache give the same image");
    let a = ctx
        .berth(&["build", "--no-cache", "--timestamp", "0", "-q", &context])
        .run()
        .last_line();
    let b = ctx
        .berth(&["build", "--no-cache", "--timestamp", "0", "-q", &context])
        .run()
        .last_line();
    assert_eq!(a, b, "reproducible");
    // The cache holds this file's steps built with and without --timestamp: each
    // build takes only its own.
    let c = ctx
        .berth(&["build", "--timestamp", "0", "-q", &context])
        .run()
        .last_line();
    assert_eq!(c, a);
    let now = ctx.berth(&["build", "-q", &context]).run().last_line();
    let created_now = ctx
        .berth(&["image", "inspect", "--format", "{{.Created}}", &now])
        .run()
        .last_line();
    assert!(!created_now.starts_with("1970"), "{created_now}");
    let created = ctx
        .berth(&["image", "inspect", "--format", "{{.Created}}", &a])
        .run()
        .last_line();
    assert!(created.starts_with("1970-01-01T00:00:00"), "{created}");
    ctx.step("rm -f of a running container");
    ctx.berth(&["run", "-d", "--name", "bg", "feat:v1", "sleep", "100"])
        .run();
    ctx.berth(&["rm", "-f", "bg"]).run();
    assert_eq!(ctx.berth(&["ps", "-a", "-q"]).run().stdout, "");
}

/// Containerfile rules a review against buildah 1.28 found berth breaking: `COPY .`,
/// a folder link as a source, globs in folders and classes, `.dockerignore`
/// exceptions under an excluded folder, ENTRYPOINT clearing the base's CMD, the
/// platform ARGs, ENV updated in its place, ARG defaults from ENV and from before the
/// instruction; WORKDIR is kept as written (`/w/../srv/./app`), as buildah keeps it. buildah builds the same file; the configs and
/// what the images hold are compared.
#[test]
fn build_rules_match_buildah() {
    let mut ctx = Ctx::new("buildrules", &[BUILDAH, PODMAN, RUNC]);
    let (_reg, busybox) = registry_with_busybox(&mut ctx);
    let dir = ctx.path("ctx");
    for (path, body) in [
        ("a.txt", "a\n"),
        ("src/x/package.json", "x\n"),
        ("src/y/package.json", "y\n"),
        ("f1.txt", "1\n"),
        ("fx.txt", "x\n"),
        ("top/docs/README.md", "readme\n"),
        ("top/docs/other.md", "other\n"),
        ("top/keep", "keep\n"),
    ] {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }
    std::os::unix::fs::symlink("src/x", dir.join("current")).unwrap();
    fs::write(
        dir.join(".dockerignore"),
        "top/docs\n!top/docs/README.md\nContainerfile\n",
    )
    .unwrap();
    fs::write(
        dir.join("Containerfile"),
        format!(
            "FROM {busybox} AS base\n\
             CMD [\"base-cmd\"]\n\
             \n\
             FROM base\n\
             ARG TARGETARCH\n\
             ARG TARGETPLATFORM\n\
             ENV A=1 B=2 C=3\n\
             ENV A=one\n\
             ARG D=${{B}}-x\n\
             ARG E=5 F=$E\n\
             RUN echo \"$TARGETARCH $TARGETPLATFORM $D [$F]\" > /args\n\
             COPY . /all/\n\
             COPY current /linked/\n\
             COPY src/*/package.json /globbed/\n\
             COPY f[0-9].txt /classed/\n\
             COPY top /top/\n\
             WORKDIR /w/../srv/./app\n\
             ENTRYPOINT [\"/bin/sh\", \"-c\"]\n"
        ),
    )
    .unwrap();
    let context = dir.display().to_string();
    let [pf, pv] = ctx.policy_args();
    ctx.buildah(&[
        "build",
        &pf,
        &pv,
        "--isolation",
        "chroot",
        "--tls-verify=false",
        "-t",
        "localhost/rules:buildah",
        &context,
    ])
    .run();
    let theirs = ctx
        .podman(&["image", "inspect", "localhost/rules:buildah"])
        .run()
        .json();
    ctx.berth(&["build", "-t", "rules:berth", &context]).run();
    let ours = ctx.berth(&["image", "inspect", "rules:berth"]).run().json();
    assert_eq!(config_fields(&ours), config_fields(&theirs));
    assert!(
        ours[0]["Config"]["Cmd"].is_null(),
        "{:#}",
        ours[0]["Config"]
    );

    let show = "cat /args; cd / && find all linked globbed classed top | sort; \
                cat /globbed/package.json /top/docs/README.md";
    let mut outputs = Vec::new();
    for image in ["localhost/rules:buildah", "rules:berth"] {
        let file = ctx.p(&format!("{}.tar", image.replace([':', '/'], "-")));
        let out = if image.starts_with("localhost/") {
            ctx.podman(&["save", "-o", &file, image]).run();
            ctx.berth(&["load", "-i", &file]).run();
            ctx.berth(&["run", "--rm", image, show]).run()
        } else {
            ctx.berth(&["run", "--rm", image, show]).run()
        };
        outputs.push(out.stdout);
    }
    assert_eq!(outputs[1], outputs[0]);
    assert!(
        outputs[1].starts_with("amd64 linux/amd64 2-x []\n"),
        "{}",
        outputs[1]
    );
    assert!(outputs[1].contains("\nall/current\n"), "{}", outputs[1]);
    assert!(
        outputs[1].contains("\nlinked/package.json\n"),
        "{}",
        outputs[1]
    );
    assert!(
        outputs[1].contains("\ntop/docs/README.md\n"),
        "{}",
        outputs[1]
    );
    assert!(!outputs[1].contains("other.md"), "{}", outputs[1]);

    // ONBUILD: a docker-format base's triggers run in the child's build, first, and
    // are spent.
    let on = ctx.path("onbuild");
    fs::create_dir_all(&on).unwrap();
    fs::write(
        on.join("Containerfile"),
        format!("FROM {busybox}\nONBUILD LABEL trig=fired\nONBUILD RUN echo ran > /trig\n"),
    )
    .unwrap();
    let on_s = on.display().to_string();
    let child = ctx.path("child");
    fs::create_dir_all(&child).unwrap();
    fs::write(
        child.join("Containerfile"),
        "FROM localhost/onbase:1\nLABEL own=1\nCMD [\"cat\", \"/trig\"]\n",
    )
    .unwrap();
    let child_s = child.display().to_string();
    let flags = ["--isolation", "chroot", "--tls-verify=false"];
    let mut args = vec![
        "build",
        &pf,
        &pv,
        "--format",
        "docker",
        "-t",
        "localhost/onbase:1",
    ];
    args.extend(flags);
    args.push(&on_s);
    ctx.buildah(&args).run();
    let mut args = vec!["build", &pf, &pv, "-t", "localhost/child:buildah"];
    args.extend(flags);
    args.push(&child_s);
    ctx.buildah(&args).run();
    let theirs = ctx
        .podman(&["image", "inspect", "localhost/child:buildah"])
        .run()
        .json();
    ctx.berth(&[
        "build",
        "--format",
        "docker",
        "-t",
        "localhost/onbase:1",
        &on_s,
    ])
    .run();
    ctx.berth(&["build", "-t", "child:berth", &child_s]).run();
    let ours = ctx.berth(&["image", "inspect", "child:berth"]).run().json();
    assert_eq!(config_fields(&ours), config_fields(&theirs));
    assert_eq!(ours[0]["Config"]["Labels"]["trig"], "fired");
    assert!(
        ours[0]["Config"]["OnBuild"].is_null(),
        "{:#}",
        ours[0]["Config"]
    );
    let ran = ctx.berth(&["run", "--rm", "child:berth"]).run();
    assert_eq!(ran.stdout, "ran\n");
}

/// Heredocs as BuildKit runs them (buildah 1.28 has none): a body after another
/// command goes to the shell with it, a body with a shebang runs as its own file and
/// leaves nothing in the image, and a changed body is a new step, not the cached one.
#[test]
fn build_heredocs() {
    let mut ctx = Ctx::new("buildheredoc", &[BUILDAH, RUNC]);
    let (_reg, busybox) = registry_with_busybox(&mut ctx);
    let dir = ctx.path("ctx");
    fs::create_dir_all(&dir).unwrap();
    let file = |v: &str| {
        format!(
            "FROM {busybox}\n\
             RUN cat <<EOF > /piped\n\
             piped {v}\n\
             EOF\n\
             RUN <<EOF sh\n\
             echo read by sh > /by-sh\n\
             EOF\n\
             RUN <<EOF\n\
             #!/bin/sh\n\
             echo \"script $0\" > /script\n\
             EOF\n\
             RUN ls /dev/pipes 2>/dev/null > /pipes-left || true\n"
        )
    };
    let context = dir.display().to_string();
    let show = ["cat", "/piped", "/by-sh", "/script", "/pipes-left"];
    for v in ["v1", "v2"] {
        fs::write(dir.join("Containerfile"), file(v)).unwrap();
        ctx.berth(&["build", "-t", "heredoc:1", &context]).run();
        let mut args = vec!["run", "--rm", "heredoc:1"];
        args.extend(show);
        let out = ctx.berth(&args).run();
        assert_eq!(
            out.stdout,
            format!("piped {v}\nread by sh\nscript /dev/pipes/EOF\n")
        );
    }
    let out = ctx
        .berth(&["run", "--rm", "heredoc:1", "ls", "-a", "/dev/pipes"])
        .run_any();
    assert!(
        !out.status.success(),
        "the script's mount is gone: {}",
        out.stdout
    );
}

/// RUN --mount as buildah and BuildKit give it: a bind of the context (less what
/// .dockerignore excludes; writes discarded) or of a stage, a cache kept between
/// builds, a tmpfs, a secret; --network=none. No mount point is left in the image, and
/// what berth cannot mount (ssh) is refused, not run without it.
#[test]
fn build_run_mounts() {
    let mut ctx = Ctx::new("buildmounts", &[BUILDAH, RUNC]);
    let (_reg, busybox) = registry_with_busybox(&mut ctx);
    let dir = ctx.path("ctx");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("a.txt"), "from the context\n").unwrap();
    fs::write(dir.join("ignored.txt"), "no\n").unwrap();
    fs::write(dir.join(".dockerignore"), "ignored.txt\n").unwrap();
    fs::write(
        dir.join("Containerfile"),
        format!(
            "FROM {busybox} AS builder\n\
             RUN mkdir /out && echo built > /out/x\n\
             FROM {busybox}\n\
             RUN --mount=target=/src cat /src/a.txt > /from-bind && test ! -e /src/ignored.txt\n\
             RUN --mount=target=/src,rw touch /src/written\n\
             RUN --mount=type=bind,from=builder,source=/out,target=/in cp /in/x /x\n\
             RUN --mount=type=cache,target=/root/.cache/t,id=counter \
                 sh -c 'echo run >> /root/.cache/t/log; wc -l < /root/.cache/t/log > /count'\n\
             RUN --mount=type=tmpfs,target=/t sh -c 'echo secret > /t/x'\n\
             RUN --network=none ls /sys/class/net > /nets\n"
        ),
    )
    .unwrap();
    let context = dir.display().to_string();
    for (n, flags) in [(1, &[][..]), (2, &["--no-cache"])] {
        let mut args = vec!["build", "-t", "mounts:1"];
        args.extend(flags);
        args.push(&context);
        ctx.berth(&args).run();
        let out = ctx
            .berth(&[
                "run",
                "--rm",
                "mounts:1",
                "sh",
                "-c",
                "cat /from-bind /x /count /nets; \
                 for p in /src /in /t /root; do test -e $p && echo left $p; done; true",
            ])
            .run();
        assert_eq!(
            out.stdout,
            format!("from the context\nbuilt\n{n}\nlo\n"),
            "build {n}"
        );
    }
    assert!(
        !dir.join("written").exists(),
        "a rw bind's writes are discarded"
    );

    // Secrets: read-only at /run/secrets/ID (mode 0400), never in the image; one not
    // given skips its mount unless required.
    fs::write(ctx.path("token"), "s3cr3t").unwrap();
    let secret = format!("id=tok,src={}", ctx.p("token"));
    fs::write(
        dir.join("Containerfile"),
        format!(
            "FROM {busybox}\n\
             RUN --mount=type=secret,id=tok sh -c 'stat -c %a /run/secrets/tok > /mode; \
                 test \"$(cat /run/secrets/tok)\" = s3cr3t && echo seen > /seen'\n\
             RUN --mount=type=secret,id=absent,target=/opt/absent \
                 sh -c 'test -e /opt/absent || echo skipped > /skipped'\n"
        ),
    )
    .unwrap();
    ctx.berth(&["build", "--secret", &secret, "-t", "secret:1", &context])
        .run();
    let out = ctx
        .berth(&[
            "run",
            "--rm",
            "secret:1",
            "sh",
            "-c",
            "cat /mode /seen /skipped; test -e /run/secrets || test -e /opt/absent || echo clean",
        ])
        .run();
    assert_eq!(out.stdout, "400\nseen\nskipped\nclean\n");
    for (file, says) in [
        (
            "RUN --mount=type=secret,id=k,required cat /run/secrets/k",
            "--secret id=k,src=FILE",
        ),
        ("RUN --mount=type=ssh true", "type=ssh: not supported yet"),
    ] {
        fs::write(
            dir.join("Containerfile"),
            format!("FROM {busybox}\n{file}\n"),
        )
        .unwrap();
        let out = ctx.berth(&["build", &context]).run_any();
        assert!(!out.status.success());
        assert!(out.stderr.contains(says), "{}", out.stderr);
    }
}
