//! The local store and containers as a podman user meets them (issue 17): the same
//! commands given to podman 4.3 and to berth, on the same busybox tar, with the same
//! output and exit status; and the errors berth gives where it cannot do as podman.
//!
//! Run with `cargo test -p berth --test podman_parity` (as root: containers need it).

#[path = "interop/support.rs"]
mod support;

mod busybox;

use std::fs;

use busybox::busybox_tar;
use support::*;

const PODMAN: &str = "podman";
const RUNC: &str = "runc";

/// `run ARGS` as each tool takes it (podman with [`PODMAN_ULIMITS`]).
fn run_args<'a>(which: &str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["run"];
    if which == PODMAN {
        all.extend(PODMAN_ULIMITS);
    }
    all.extend(args);
    all
}

/// podman's default rlimits (nofile 1048576, nproc 4194304) are above what this
/// machine lets a process raise to; these are what podman's containers get here.
const PODMAN_ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// Polls `done` until it holds; fails the test after 20 s.
#[track_caller]
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited too long for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
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

#[test]
fn missing_commands_logs_and_inspect_match_podman() {
    let ctx = Ctx::new("exit-logs", &[PODMAN, RUNC]);
    let tar = busybox_tar(&ctx);
    let img = "localhost/bb:1";
    // `err` a moment after the lines: stdout and stderr are two pipes, and under load a
    // logger (podman's conmon as berth's) may read them in either order when written
    // at once, which made `logs --tail 2` flaky.
    let script = "for i in 1 2 3 4 5; do echo line$i; done; sleep 0.5; echo err >&2; sleep 100";
    for which in [PODMAN, "berth"] {
        ctx.step(&format!(
            "{which}: a command not found is 127, not executable 126"
        ));
        tool(
            &ctx,
            which,
            &["import", "--change", "CMD [\"/bin/sh\"]", &tar, img],
        )
        .run();
        for (cmd, code) in [("/nosuch", 127), ("/etc/passwd", 126), ("nosuch", 127)] {
            let out = tool(&ctx, which, &run_args(which, &["--rm", img, cmd])).run_any();
            assert_eq!(
                out.status.code(),
                Some(code),
                "{which} run {cmd}: {}",
                out.stderr
            );
            // The runtime's error once, as the command's: not also as the
            // container's stderr.
            let said = match which {
                PODMAN => out.error_lines(),
                _ => out.stderr.clone(),
            };
            assert_eq!(said.lines().count(), 1, "{which} run {cmd}: {said}");
        }
        tool(
            &ctx,
            which,
            &run_args(which, &["--name", "nf", img, "/nosuch"]),
        )
        .run_any();
        let logs = tool(&ctx, which, &["logs", "nf"]).run();
        // podman's own debug lines aside.
        let err: Vec<&str> = logs
            .stderr
            .lines()
            .filter(|l| !l.starts_with("time="))
            .collect();
        assert_eq!(
            (logs.stdout.as_str(), err.len()),
            ("", 0),
            "{which}: {err:?}"
        );
        tool(&ctx, which, &["rm", "nf"]).run();
        let out = tool(
            &ctx,
            which,
            &run_args(which, &["--rm", img, "sh", "-c", "exit 3"]),
        )
        .run_any();
        assert_eq!(
            out.status.code(),
            Some(3),
            "{which}: the process's own status"
        );
        let out = tool(
            &ctx,
            which,
            &run_args(which, &["-d", "--name", "d1", img, "/nosuch"]),
        )
        .run_any();
        assert_eq!(
            out.status.code(),
            Some(127),
            "{which} run -d: {}",
            out.stderr
        );

        ctx.step(&format!("{which}: exec statuses, logs, inspect"));
        tool(
            &ctx,
            which,
            &run_args(
                which,
                &[
                    "-d", "--name", "d2", "-h", "d2host", img, "sh", "-c", script,
                ],
            ),
        )
        .run();
        wait_for(&format!("{which}: the log's last line"), || {
            let out = tool(&ctx, which, &["logs", "d2"]).run();
            out.stdout.contains("line5") && out.stderr.lines().any(|l| l == "err")
        });
        for (cmd, code) in [("nosuch", 127), ("/etc/passwd", 126)] {
            let out = tool(&ctx, which, &["exec", "d2", cmd]).run_any();
            assert_eq!(
                out.status.code(),
                Some(code),
                "{which} exec {cmd}: {}",
                out.stderr
            );
        }
        let out = tool(&ctx, which, &["logs", "d2"]).run();
        assert_eq!(out.stdout, "line1\nline2\nline3\nline4\nline5\n", "{which}");
        assert!(
            out.stderr.lines().any(|l| l == "err"),
            "{which}: {}",
            out.stderr
        );
        let out = tool(&ctx, which, &["logs", "--tail", "2", "d2"]).run();
        assert_eq!(
            out.stdout, "line5\n",
            "{which}: the last two lines are line5 and err"
        );
        assert!(
            out.stderr.lines().any(|l| l == "err"),
            "{which}: {}",
            out.stderr
        );
        let format = "{{.Name}} {{.State.Status}} {{.State.Running}} {{.ImageName}} {{.Path}} {{.Args}} {{.State.ExitCode}} {{.RestartCount}} {{.Config.Hostname}}";
        let inspected = tool(
            &ctx,
            which,
            &["container", "inspect", "--format", format, "d2"],
        )
        .run()
        .stdout;
        assert_eq!(
            inspected,
            format!("d2 running true {img} sh [-c {script}] 0 0 d2host\n"),
            "{which}"
        );
        let pid = tool(
            &ctx,
            which,
            &["container", "inspect", "--format", "{{.State.Pid}}", "d2"],
        )
        .run()
        .stdout;
        assert!(
            pid.trim().parse::<u32>().unwrap_or(0) > 0,
            "{which}: pid {pid}"
        );
        let by_any = tool(
            &ctx,
            which,
            &["inspect", "--format", "{{.Name}} {{.Id}}", "d2"],
        )
        .run()
        .stdout;
        assert!(
            by_any.starts_with("d2 "),
            "{which}: inspect falls back to containers: {by_any}"
        );
        for (args, says) in [
            (&["inspect", "nosuch"][..], "no such object: \"nosuch\""),
            (
                &["container", "inspect", "nosuch"],
                "no such container nosuch",
            ),
        ] {
            let out = tool(&ctx, which, args).run_any();
            assert_eq!(out.status.code(), Some(125), "{which}");
            assert_eq!(out.stdout, "[]\n", "{which} {args:?}");
            let err = match which {
                PODMAN => out.error_lines(),
                _ => out.stderr.trim().to_string(),
            };
            assert_eq!(err, format!("Error: inspecting object: {says}"), "{which}");
        }
        // Every container goes (podman's hold mounts in the test's folder).
        tool(&ctx, which, &["rm", "-a", "-f"]).run();
    }

    ctx.step("berth: a detached container that could not start says why, in inspect");
    ctx.berth(&["run", "-d", "--name", "gone", img, "/nosuch"])
        .run_any();
    // Its log holds only what the container wrote, as podman's: nothing.
    let log = ctx.berth(&["logs", "gone"]).run();
    assert_eq!((log.stdout.as_str(), log.stderr.as_str()), ("", ""));
    let state = ctx
        .berth(&[
            "container",
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}",
            "gone",
        ])
        .run()
        .stdout;
    assert!(state.starts_with("exited 127 runc: "), "{state}");
    assert!(
        state.contains("OCI runtime attempted to invoke a command that was not found"),
        "{state}"
    );
}

/// Runs `run ARGS` with each tool; (stdout, error lines, status).
fn both_run(ctx: &Ctx, args: &[&str], stdin: Option<&[u8]>) -> [(String, String, Option<i32>); 2] {
    [PODMAN, "berth"].map(|which| {
        let mut r = tool(ctx, which, &run_args(which, args));
        if let Some(bytes) = stdin {
            r = r.stdin(bytes);
        }
        let out = r.run_any();
        let errors = match which {
            PODMAN => out.error_lines(),
            _ => out.stderr.trim().to_string(),
        };
        (out.stdout.clone(), errors, out.status.code())
    })
}

#[test]
fn run_flags_match_podman() {
    let mut ctx = Ctx::new("run-flags", &[PODMAN, RUNC]);
    let tar = busybox_tar(&ctx);
    let img = "localhost/bb:1";
    ctx.podman(&["import", &tar, img]).run();
    ctx.berth(&["import", &tar, img]).run();

    ctx.step("--env-file: podman's parsing, before -e");
    fs::write(
        ctx.path("vars.env"),
        "# a comment\n  A=1\nB=x=y\nFROM_HOST\nC= spaced \n\nMISSING\n",
    )
    .unwrap();
    let show = "env | sort | grep -E '^(A|B|C|FROM_HOST|MISSING)='";
    let [p, b] = [PODMAN, "berth"].map(|which| {
        tool(
            &ctx,
            which,
            &run_args(
                which,
                &[
                    "--rm",
                    "--env-file",
                    "vars.env",
                    "-e",
                    "A=2",
                    img,
                    "sh",
                    "-c",
                    show,
                ],
            ),
        )
        .env("FROM_HOST", "h")
        .run()
        .stdout
    });
    assert_eq!(p, "A=2\nB=x=y\nC= spaced \nFROM_HOST=h\n");
    assert_eq!(b, p);
    fs::write(ctx.path("bad.env"), "=A\n").unwrap();
    let [p, b] = both_run(&ctx, &["--rm", "--env-file", "bad.env", img, "true"], None);
    assert_eq!(p.2, Some(125));
    assert_eq!(b, p, "the same one-line error");

    ctx.step("--add-host lines first in /etc/hosts; --tmpfs mounts; podman's errors");
    let script = "head -2 /etc/hosts; grep -E ' /(scratch|fast) ' /proc/self/mountinfo \
                  | cut -d' ' -f5,6,9 | sort; echo x > /scratch/f && cat /scratch/f";
    let flags = [
        "--rm",
        "--add-host",
        "db.local:10.1.2.3",
        "--add-host",
        "six:fd00::1",
        "--tmpfs",
        "/scratch",
        "--tmpfs",
        "/fast:size=1m",
        img,
        "sh",
        "-c",
        script,
    ];
    let [p, b] = both_run(&ctx, &flags, None);
    assert!(
        p.0.starts_with("10.1.2.3\tdb.local\nfd00::1\tsix\n"),
        "{}",
        p.0
    );
    assert_eq!(b.0, p.0);
    let [p, b] = both_run(&ctx, &["--rm", "--add-host", "bad", img, "true"], None);
    assert_eq!((p.2, b.2), (Some(125), Some(125)));
    assert_eq!(b.1, p.1, "the same one-line error");

    ctx.step("--cap-add/--cap-drop: podman's sets, for root and another user; its errors");
    let show = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status";
    // podman's defaults come from containers.conf (none here: its built-in list);
    // berth's are containers-common's, so each case names its whole set.
    for flags in [
        &["--cap-drop", "all", "--cap-add", "chown,CAP_kill"][..],
        &["-u", "1000", "--cap-drop", "ALL", "--cap-add", "net_raw"],
        &["-u", "1000", "--cap-add", "all"],
        &[
            "--cap-add",
            "all",
            "--cap-drop",
            "sys_admin",
            "--cap-drop",
            "cap_net_admin",
        ],
    ] {
        let mut args = vec!["--rm"];
        args.extend(flags);
        args.extend([img, "sh", "-c", show]);
        let [p, b] = both_run(&ctx, &args, None);
        assert_eq!(p.2, Some(0), "podman {flags:?}: {}", p.1);
        assert_eq!(b, p, "{flags:?}");
    }
    for flags in [
        &["--cap-add", "cap_foo"][..],
        &["--cap-drop", "chown", "--cap-add", "CHOWN"],
        &["--cap-add", "all", "--cap-drop", "all"],
    ] {
        let mut args = vec!["--rm"];
        args.extend(flags);
        args.extend([img, "true"]);
        let [p, b] = both_run(&ctx, &args, None);
        assert_eq!((p.2, b.2), (Some(125), Some(125)), "{flags:?}");
        assert_eq!(b.1, p.1, "the same one-line error");
    }

    ctx.step("exec -u: another user gets no added capability, as podman's exec");
    for which in [PODMAN, "berth"] {
        let name = format!("caps-{which}");
        let args = run_args(
            which,
            &[
                "-d",
                "--name",
                &name,
                "--cap-add",
                "sys_admin",
                img,
                "sleep",
                "100",
            ],
        );
        tool(&ctx, which, &args).run();
        let show = ["sh", "-c", "grep -E '^Cap(Eff|Amb)' /proc/self/status"];
        let mut root = vec!["exec", name.as_str()];
        root.extend(show);
        let mut user = vec!["exec", "-u", "1000", name.as_str()];
        user.extend(show);
        let (r, u) = (
            tool(&ctx, which, &root).run(),
            tool(&ctx, which, &user).run(),
        );
        assert!(
            !r.stdout.contains("CapEff:\t0000000000000000"),
            "{which}: {}",
            r.stdout
        );
        assert_eq!(
            u.stdout, "CapEff:\t0000000000000000\nCapAmb:\t0000000000000000\n",
            "{which}"
        );
        tool(&ctx, which, &["rm", "-f", &name]).run();
    }

    ctx.step("-w: a directory given must be there (the image's is made), as podman says");
    for w in ["/nonexist/deep", "/bin/busybox"] {
        let [p, b] = both_run(&ctx, &["--rm", "-w", w, img, "true"], None);
        assert_eq!(
            (p.2, b.2),
            (Some(126), Some(126)),
            "-w {w}: {} / {}",
            p.1,
            b.1
        );
        assert_eq!(without_ids(&b.1), without_ids(&p.1));
    }
    let [p, b] = both_run(&ctx, &["--rm", "-w", "/tmp", img, "sh", "-c", "pwd"], None);
    assert_eq!((p.0.as_str(), b.0.as_str()), ("/tmp\n", "/tmp\n"));

    ctx.step("-v host binds, ro and rw");
    let host = ctx.path("shared");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("f"), "data\n").unwrap();
    let ro = format!("{}:/data:ro", host.display());
    let rw = format!("{}:/data", host.display());
    let script = "cat /data/f; echo x > /data/ro 2>/dev/null || echo refused";
    let [p, b] = both_run(&ctx, &["--rm", "-v", &ro, img, "sh", "-c", script], None);
    assert_eq!(p.0, "data\nrefused\n");
    assert_eq!(b.0, p.0);
    for which in [PODMAN, "berth"] {
        let line = format!("echo {which} > /data/{which}");
        tool(
            &ctx,
            which,
            &run_args(which, &["--rm", "-v", &rw, img, "sh", "-c", &line]),
        )
        .run();
        assert_eq!(
            fs::read_to_string(host.join(which)).unwrap(),
            format!("{which}\n")
        );
    }

    ctx.step("-i: the container reads stdin only when asked");
    let [p, b] = both_run(&ctx, &["--rm", "-i", img, "cat"], Some(b"piped\n"));
    assert_eq!((p.0.as_str(), b.0.as_str()), ("piped\n", "piped\n"));
    let [p, b] = both_run(&ctx, &["--rm", img, "cat"], Some(b"piped\n"));
    assert_eq!((p.0.as_str(), b.0.as_str()), ("", ""));

    ctx.step("--network host is berth's; what it cannot do is one line, 125");
    ctx.berth(&["run", "--rm", "--network", "host", img, "true"])
        .run();
    for (flags, says) in [
        (
            &["--network", "bridge"][..],
            "only --network host is supported",
        ),
        (&["-p", "8080:80"], "ports are not published"),
        (&["-t"], "terminal for the container is not supported yet"),
        (
            &["-v", "named:/data"],
            "named volumes are not supported yet",
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(flags);
        args.extend([img, "true"]);
        let out = ctx.berth(&args).run_any();
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(
            out.stderr.starts_with("Error: ") && out.stderr.contains(says),
            "{}",
            out.stderr
        );
    }

    ctx.step("usage errors: 125 for podman-style commands, as podman; skopeo-style 1, as skopeo");
    for args in [&["images", "--bogus"][..], &["run"], &["rmi", "--bogus"]] {
        let p = ctx.podman(args).run_any();
        let b = ctx.berth(args).run_any();
        assert_eq!(p.status.code(), Some(125), "podman {args:?}");
        assert_eq!(b.status.code(), Some(125), "berth {args:?}: {}", b.stderr);
    }
    let out = ctx.berth(&["list-tags", "--bogus", "x"]).run_any();
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let theirs = ctx.cmd("skopeo", &["list-tags", "--bogus", "x"]).run_any();
    assert_eq!(theirs.status.code(), Some(1), "{}", theirs.stderr);

    ctx.step("--tls-verify=false: run pulls from a plain-HTTP registry");
    let reg = ctx.start(ServerKind::Berth);
    let remote = format!("{reg}/test/bb:1");
    ctx.berth(&[
        "push",
        "--tls-verify=false",
        img,
        &format!("docker://{remote}"),
    ])
    .run();
    let out = ctx.berth(&["run", "--rm", &remote, "true"]).run_any();
    assert_eq!(
        out.status.code(),
        Some(125),
        "TLS is required by default: {}",
        out.stderr
    );
    let out = ctx
        .berth(&[
            "run",
            "--rm",
            "--tls-verify=false",
            &remote,
            "echo",
            "pulled",
        ])
        .run();
    assert!(out.stdout.ends_with("pulled\n"), "{}", out.stdout);
    ctx.berth(&["create", "--tls-verify=false", &remote, "true"])
        .run();
}

#[test]
fn imported_image_inspect_matches_podman() {
    let ctx = Ctx::new("import-inspect", &[PODMAN]);
    let tar = busybox_tar(&ctx);
    let img = "localhost/imported:1";
    let [p, b] = [PODMAN, "berth"].map(|which| {
        tool(&ctx, which, &["import", "-m", "first import", &tar, img]).run();
        let v = tool(&ctx, which, &["image", "inspect", img]).run().json();
        let h = &v[0]["History"][0];
        (
            v[0]["Comment"].clone(),
            h["created_by"].clone(),
            h["comment"].clone(),
            v[0]["RootFS"]["Layers"].clone(),
        )
    });
    assert_eq!(p.0, "first import", "podman: {p:?}");
    assert_eq!(b, p, "Comment (the history's), created_by, the diff ID");
}

#[test]
fn logs_follow_ends_with_the_container() {
    let ctx = Ctx::new("logs-follow", &[PODMAN, RUNC]);
    let tar = busybox_tar(&ctx);
    let img = "localhost/bb:1";
    let script = "echo a; sleep 2; printf 'b\\nno newline'";
    for which in [PODMAN, "berth"] {
        tool(&ctx, which, &["import", &tar, img]).run();
        tool(
            &ctx,
            which,
            &run_args(which, &["-d", "--name", "f", img, "sh", "-c", script]),
        )
        .run();
        if which == PODMAN {
            // podman's -f waits for an event, and these tests run it without events.
            wait_for("podman: f to exit", || {
                let ps = tool(&ctx, which, &["ps", "-a", "--format", "{{.Status}}"]).run();
                ps.stdout.starts_with("Exited")
            });
        } else {
            let started = std::time::Instant::now();
            let out = tool(&ctx, which, &["logs", "-f", "f"]).run();
            assert!(
                started.elapsed() >= std::time::Duration::from_millis(1000),
                "-f waited for the container"
            );
            assert_eq!(out.stdout, "a\nb\nno newline", "-f printed it all");
        }
        let out = tool(&ctx, which, &["logs", "f"]).run();
        assert_eq!(out.stdout, "a\nb\nno newline", "{which}");
        let out = tool(&ctx, which, &["logs", "-t", "f"]).run();
        let first = out.stdout.lines().next().unwrap_or_default().to_string();
        let (time, text) = first.split_once(' ').unwrap_or_default();
        assert_eq!(text, "a", "{which}: {first}");
        assert!(
            time.starts_with("20") && time.contains('T'),
            "{which}: {first}"
        );
        tool(&ctx, which, &["rm", "f"]).run();

        // A container run in the foreground is logged too.
        let fg = [
            "--name",
            "fg",
            img,
            "sh",
            "-c",
            "echo out; echo err >&2; exit 4",
        ];
        let out = tool(&ctx, which, &run_args(which, &fg)).run_any();
        assert_eq!(
            (out.stdout.as_str(), out.status.code()),
            ("out\n", Some(4)),
            "{which}"
        );
        assert!(
            out.stderr.lines().any(|l| l == "err"),
            "{which}: {}",
            out.stderr
        );
        let out = tool(&ctx, which, &["logs", "fg"]).run();
        assert_eq!(out.stdout, "out\n", "{which}");
        assert!(
            out.stderr.lines().any(|l| l == "err"),
            "{which}: {}",
            out.stderr
        );
        tool(&ctx, which, &["rm", "-a", "-f"]).run();
    }
}
