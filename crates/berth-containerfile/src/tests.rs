//! Whole-file cases. Expected values follow BuildKit's parser and instructions packages
//! (frontend/dockerfile/parser, frontend/dockerfile/instructions) as read in the public
//! source; where buildah's imagebuilder differs the choice is noted in the crate docs.

use super::*;

fn ok(text: &str) -> Containerfile {
    match parse(text, "Containerfile") {
        Ok(f) => f,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn err(text: &str) -> String {
    match parse(text, "Containerfile") {
        Ok(f) => panic!("expected an error, got {f:?}"),
        Err(e) => e.to_string(),
    }
}

/// The kinds of the first stage's instructions.
fn kinds(text: &str) -> Vec<Kind> {
    let mut f = ok(text);
    std::mem::take(&mut f.stages[0].instructions)
        .into_iter()
        .map(|i| i.kind)
        .collect()
}

fn one(text: &str) -> Kind {
    let mut k = kinds(&format!("FROM scratch\n{text}"));
    assert_eq!(k.len(), 1, "{k:?}");
    k.remove(0)
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn stages_names_platform_and_lines() {
    let f = ok("ARG BASE=alpine\nARG V\n\nFROM --platform=$BUILDPLATFORM ${BASE}:3 AS Builder\nRUN make\nfrom scratch\ncopy --from=builder /a /b\n");
    assert_eq!(
        f.global_args,
        vec![
            Arg {
                name: s("BASE"),
                default: Some(s("alpine"))
            },
            Arg {
                name: s("V"),
                default: None
            }
        ]
    );
    assert_eq!(f.stages.len(), 2);
    let b = &f.stages[0];
    assert_eq!(
        (b.index, b.name.as_deref(), b.base.as_str()),
        (0, Some("builder"), "${BASE}:3")
    );
    assert_eq!(b.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(b.line, 4);
    assert_eq!(b.instructions[0].line, 5);
    let c = &f.stages[1];
    assert_eq!((c.index, c.name.as_deref(), c.line), (1, None, 6));
    assert_eq!(c.instructions[0].line, 7);
    assert_eq!(f.escape, '\\');
}

#[test]
fn case_insensitive_instructions() {
    assert_eq!(
        one("rUn echo hi"),
        Kind::Run {
            cmd: Form::Shell(s("echo hi")),
            heredocs: vec![],
            flags: vec![]
        }
    );
    assert_eq!(one("wOrKdIr /app"), Kind::Workdir(s("/app")));
}

#[test]
fn instruction_text_is_joined_original() {
    let f =
        ok("FROM x\nRUN apt-get update \\\n    # comment inside\n    && apt-get install -y curl\n");
    let i = &f.stages[0].instructions[0];
    assert_eq!(i.line, 2);
    assert_eq!(i.text, "RUN apt-get update     && apt-get install -y curl");
}

#[test]
fn line_numbers_after_continuations_comments_and_heredocs() {
    let f = ok("# syntax=docker/dockerfile:1\n# a comment\nFROM x\nRUN a \\\n\n  b\nRUN <<EOF\nline\nEOF\n  # indented comment\nUSER me\n");
    let lines: Vec<usize> = f.stages[0].instructions.iter().map(|i| i.line).collect();
    assert_eq!(lines, vec![4, 7, 11]);
    assert_eq!(f.syntax.as_deref(), Some("docker/dockerfile:1"));
}

#[test]
fn escape_directive_backtick() {
    let f = ok("# escape=`\nFROM mcr.microsoft.com/windows\nRUN dir C:\\ `\n  && echo done\nWORKDIR C:\\app\n");
    assert_eq!(f.escape, '`');
    let k: Vec<_> = f.stages[0]
        .instructions
        .iter()
        .map(|i| i.kind.clone())
        .collect();
    assert_eq!(
        k,
        vec![
            Kind::Run {
                cmd: Form::Shell(s("dir C:\\   && echo done")),
                heredocs: vec![],
                flags: vec![]
            },
            Kind::Workdir(s("C:\\app")),
        ]
    );
}

#[test]
fn directive_not_at_top_is_a_comment() {
    let f = ok("FROM x\n# escape=`\nRUN a `\n");
    assert_eq!(f.escape, '\\');
    assert_eq!(f.stages[0].instructions.len(), 1);
}

#[test]
fn exec_and_shell_forms() {
    assert_eq!(
        one(r#"CMD ["nginx", "-g", "daemon off;"]"#),
        Kind::Cmd(Form::Exec(vec![s("nginx"), s("-g"), s("daemon off;")]))
    );
    assert_eq!(
        one("CMD nginx -g 'daemon off;'"),
        Kind::Cmd(Form::Shell(s("nginx -g 'daemon off;'")))
    );
    assert_eq!(
        one(r#"ENTRYPOINT ["/bin/sh", "-c"]"#),
        Kind::Entrypoint(Form::Exec(vec![s("/bin/sh"), s("-c")]))
    );
    assert_eq!(one("ENTRYPOINT []"), Kind::Entrypoint(Form::Exec(vec![])));
    assert_eq!(
        one(r#"RUN ["echo", "a\"b"]"#),
        Kind::Run {
            cmd: Form::Exec(vec![s("echo"), s("a\"b")]),
            heredocs: vec![],
            flags: vec![]
        }
    );
}

#[test]
fn invalid_json_falls_back_to_shell() {
    assert_eq!(
        one("CMD [\"a\", 'b']"),
        Kind::Cmd(Form::Shell(s("[\"a\", 'b']")))
    );
    assert_eq!(one("CMD [a, b]"), Kind::Cmd(Form::Shell(s("[a, b]"))));
    assert_eq!(
        one("RUN [ -f x ] && echo y"),
        Kind::Run {
            cmd: Form::Shell(s("[ -f x ] && echo y")),
            heredocs: vec![],
            flags: vec![]
        }
    );
}

#[test]
fn json_with_non_strings_is_an_error() {
    assert_eq!(
        err("FROM x\nCMD [\"a\", 1]\n"),
        "Containerfile:2: CMD: when using JSON array syntax, arrays must be comprised of strings only"
    );
}

#[test]
fn shell_instruction_requires_json() {
    assert_eq!(
        one(r#"SHELL ["/bin/bash", "-euo", "pipefail", "-c"]"#),
        Kind::Shell(vec![s("/bin/bash"), s("-euo"), s("pipefail"), s("-c")])
    );
    assert_eq!(
        err("FROM x\nSHELL /bin/bash -c\n"),
        "Containerfile:2: SHELL: requires the arguments to be in JSON form"
    );
}

#[test]
fn run_flags_kept_raw() {
    assert_eq!(
        one("RUN --mount=type=cache,target=/root/.cache --network=none --mount=type=secret,id=s make"),
        Kind::Run {
            cmd: Form::Shell(s("make")),
            heredocs: vec![],
            flags: vec![s("--mount=type=cache,target=/root/.cache"), s("--network=none"), s("--mount=type=secret,id=s")],
        }
    );
    assert_eq!(
        err("FROM x\nRUN --bogus=1 make\n"),
        "Containerfile:2: RUN: unknown flag: bogus"
    );
}

#[test]
fn heredoc_run() {
    let k = one("RUN <<EOF\napt-get update\n  apt-get install -y vim\nEOF");
    assert_eq!(
        k,
        Kind::Run {
            cmd: Form::Shell(s("<<EOF")),
            heredocs: vec![Heredoc {
                name: s("EOF"),
                content: s("apt-get update\n  apt-get install -y vim\n"),
                expand: true,
                strip_tabs: false,
                fd: 0
            }],
            flags: vec![],
        }
    );
}

#[test]
fn heredoc_chomp_and_quoted() {
    let k = one("RUN <<-\"EOT\" bash\n\techo $HOME\n\tEOT\n");
    let Kind::Run { heredocs, cmd, .. } = k else {
        panic!("not RUN")
    };
    assert_eq!(cmd, Form::Shell(s("<<-\"EOT\" bash")));
    assert_eq!(heredocs.len(), 1);
    let h = &heredocs[0];
    assert_eq!(
        (h.name.as_str(), h.expand, h.strip_tabs),
        ("EOT", false, true)
    );
    assert_eq!(h.content, "\techo $HOME\n");
    assert_eq!(h.effective_content(), "echo $HOME\n");
}

#[test]
fn several_heredocs_on_one_line() {
    let f = ok("FROM x\nRUN cat <<A <<'B' > /out\na1\nA\nb1\nb2\nB\nUSER u\n");
    let i = &f.stages[0].instructions;
    let Kind::Run { heredocs, .. } = &i[0].kind else {
        panic!("not RUN")
    };
    let got: Vec<_> = heredocs
        .iter()
        .map(|h| (h.name.as_str(), h.content.as_str(), h.expand))
        .collect();
    assert_eq!(got, vec![("A", "a1\n", true), ("B", "b1\nb2\n", false)]);
    assert_eq!((i[1].line, &i[1].kind), (8, &Kind::User(s("u"))));
}

#[test]
fn heredoc_copy() {
    let k = one("COPY --chmod=644 <<EOF /etc/app.conf\nkey=value\nEOF\n");
    assert_eq!(
        k,
        Kind::Copy {
            from: None,
            chown: None,
            chmod: Some(s("644")),
            sources: vec![],
            dest: s("/etc/app.conf"),
            heredocs: vec![Heredoc {
                name: s("EOF"),
                content: s("key=value\n"),
                expand: true,
                strip_tabs: false,
                fd: 0
            }],
            link: false,
        }
    );
    let k = one("ADD <<a.txt b.txt <<c.txt /dir/\nA\na.txt\nC\nc.txt\n");
    let Kind::Add {
        sources,
        heredocs,
        dest,
        ..
    } = k
    else {
        panic!("not ADD")
    };
    assert_eq!(sources, vec![s("b.txt")]);
    assert_eq!(dest, "/dir/");
    let got: Vec<_> = heredocs
        .iter()
        .map(|h| (h.name.as_str(), h.content.as_str()))
        .collect();
    assert_eq!(got, vec![("a.txt", "A\n"), ("c.txt", "C\n")]);
}

#[test]
fn heredoc_errors() {
    assert_eq!(
        err("FROM x\nRUN <<EOF\nno end\n"),
        "Containerfile:2: unterminated heredoc"
    );
    assert_eq!(
        err("FROM x\nCOPY a <<EOF\nx\nEOF\n"),
        "Containerfile:2: COPY: cannot accept a heredoc as a destination"
    );
}

#[test]
fn heredoc_not_in_json_or_other_instructions() {
    let f = ok("FROM x\nRUN [\"cat\", \"<<EOF\"]\nLABEL a=<<EOF\n");
    assert_eq!(f.stages[0].instructions.len(), 2);
}

#[test]
fn from_forms_and_errors() {
    let f = ok("FROM --platform=linux/arm64 alpine:3.19 as base\n");
    assert_eq!(f.stages[0].platform.as_deref(), Some("linux/arm64"));
    assert_eq!(f.stages[0].name.as_deref(), Some("base"));
    assert_eq!(
        err("FROM a b\n"),
        "Containerfile:1: FROM: requires either one or three arguments"
    );
    assert_eq!(
        err("FROM\n"),
        "Containerfile:1: FROM: requires either one or three arguments"
    );
    assert!(err("FROM a AS 1x\n")
        .starts_with("Containerfile:1: FROM: invalid name for build stage: \"1x\""));
    assert_eq!(
        err("FROM --os=linux a\n"),
        "Containerfile:1: FROM: unknown flag: os"
    );
    assert_eq!(
        err("FROM a AS x\nFROM b AS X\n"),
        "Containerfile:2: FROM: duplicate stage name \"x\""
    );
}

#[test]
fn arg_forms() {
    assert_eq!(
        one("ARG a=1 b c=\"x y\" d="),
        Kind::Arg(vec![
            Arg {
                name: s("a"),
                default: Some(s("1"))
            },
            Arg {
                name: s("b"),
                default: None
            },
            Arg {
                name: s("c"),
                default: Some(s("\"x y\""))
            },
            Arg {
                name: s("d"),
                default: Some(s(""))
            },
        ])
    );
    assert_eq!(
        err("FROM x\nARG =1\n"),
        "Containerfile:2: ARG: ARG names can not be blank"
    );
    assert_eq!(
        err("FROM x\nARG\n"),
        "Containerfile:2: ARG: requires at least one argument"
    );
}

#[test]
fn env_forms() {
    assert_eq!(
        one("ENV a=b c=d"),
        Kind::Env(vec![(s("a"), s("b")), (s("c"), s("d"))])
    );
    assert_eq!(
        one("ENV PATH /usr/local/bin:$PATH extra"),
        Kind::Env(vec![(s("PATH"), s("/usr/local/bin:$PATH extra"))])
    );
    assert_eq!(
        one(r#"ENV msg="hello world" q=a\ b"#),
        Kind::Env(vec![(s("msg"), s("\"hello world\"")), (s("q"), s("a\\ b"))])
    );
    assert_eq!(
        err("FROM x\nENV a\n"),
        "Containerfile:2: ENV: ENV must have two arguments"
    );
    assert_eq!(
        err("FROM x\nENV =b\n"),
        "Containerfile:2: ENV: ENV names can not be blank"
    );
    assert_eq!(
        err("FROM x\nENV\n"),
        "Containerfile:2: ENV: requires at least one argument"
    );
}

#[test]
fn label_quoting_and_expansion() {
    let k = one(r#"LABEL "a b"="c d" e=f g="say \"hi\"""#);
    let Kind::Label(pairs) = k else {
        panic!("not LABEL")
    };
    assert_eq!(pairs[0], (s("\"a b\""), s("\"c d\"")));
    assert_eq!(pairs[1], (s("e"), s("f")));
    let none = |_: &str| None;
    let expanded: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| {
            (
                expand(k, '\\', &none).unwrap_or_default(),
                expand(v, '\\', &none).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        expanded,
        vec![
            (s("a b"), s("c d")),
            (s("e"), s("f")),
            (s("g"), s("say \"hi\""))
        ]
    );
    assert_eq!(
        one("LABEL version 1.0"),
        Kind::Label(vec![(s("version"), s("1.0"))])
    );
}

#[test]
fn copy_flags_and_arguments() {
    assert_eq!(
        one("COPY --from=build --chown=app:app --chmod=755 --link a b /dest/"),
        Kind::Copy {
            from: Some(s("build")),
            chown: Some(s("app:app")),
            chmod: Some(s("755")),
            sources: vec![s("a"), s("b")],
            dest: s("/dest/"),
            heredocs: vec![],
            link: true,
        }
    );
    assert_eq!(
        one(r#"COPY ["a b", "/d e/"]"#),
        Kind::Copy {
            from: None,
            chown: None,
            chmod: None,
            sources: vec![s("a b")],
            dest: s("/d e/"),
            heredocs: vec![],
            link: false
        }
    );
    assert_eq!(
        err("FROM x\n\nCOPY onlyone\n"),
        "Containerfile:3: COPY: requires at least two arguments"
    );
    assert_eq!(
        err("FROM x\nCOPY --from a b\n"),
        "Containerfile:2: COPY: missing a value on flag: from"
    );
    assert_eq!(
        err("FROM x\nCOPY --keep-git-dir a b\n"),
        "Containerfile:2: COPY: unknown flag: keep-git-dir"
    );
}

#[test]
fn add_flags() {
    let k = one("ADD --checksum=sha256:abc --keep-git-dir=true https://x/y.tar /y");
    let Kind::Add {
        checksum,
        keep_git_dir,
        sources,
        ..
    } = k
    else {
        panic!("not ADD")
    };
    assert_eq!(checksum.as_deref(), Some("sha256:abc"));
    assert!(keep_git_dir);
    assert_eq!(sources, vec![s("https://x/y.tar")]);
    assert_eq!(
        err("FROM x\nADD --from=a b c\n"),
        "Containerfile:2: ADD: unknown flag: from"
    );
}

#[test]
fn expose_volume_user_workdir_stopsignal() {
    assert_eq!(
        one("EXPOSE 80/tcp 443  53/udp"),
        Kind::Expose(vec![s("80/tcp"), s("443"), s("53/udp")])
    );
    assert_eq!(
        one("VOLUME /data /logs"),
        Kind::Volume(vec![s("/data"), s("/logs")])
    );
    assert_eq!(
        one(r#"VOLUME ["/data", "/a b"]"#),
        Kind::Volume(vec![s("/data"), s("/a b")])
    );
    assert_eq!(one("USER app:app"), Kind::User(s("app:app")));
    assert_eq!(one("WORKDIR /my dir"), Kind::Workdir(s("/my dir")));
    assert_eq!(one("STOPSIGNAL SIGTERM"), Kind::StopSignal(s("SIGTERM")));
    assert_eq!(
        one("MAINTAINER Jane Doe <jane@example.com>"),
        Kind::Maintainer(s("Jane Doe <jane@example.com>"))
    );
    assert_eq!(
        err("FROM x\nEXPOSE\n"),
        "Containerfile:2: EXPOSE: requires at least one argument"
    );
    assert_eq!(
        err("FROM x\nUSER\n"),
        "Containerfile:2: USER: requires exactly one argument"
    );
    assert_eq!(
        err("FROM x\nVOLUME [\"\"]\n"),
        "Containerfile:2: VOLUME: VOLUME specified can not be an empty string"
    );
}

#[test]
fn healthcheck_forms() {
    assert_eq!(
        one("HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 CMD curl -f http://localhost/ || exit 1"),
        Kind::Healthcheck(Some(Healthcheck {
            test: Form::Shell(s("curl -f http://localhost/ || exit 1")),
            interval: Some(s("30s")),
            timeout: Some(s("3s")),
            start_period: Some(s("5s")),
            start_interval: None,
            retries: Some(3),
        }))
    );
    let Kind::Healthcheck(Some(h)) = one(r#"HEALTHCHECK cmd ["pg_isready"]"#) else {
        panic!("not HEALTHCHECK")
    };
    assert_eq!(h.test, Form::Exec(vec![s("pg_isready")]));
    assert_eq!(one("HEALTHCHECK NONE"), Kind::Healthcheck(None));
    assert_eq!(
        err("FROM x\nHEALTHCHECK NONE x\n"),
        "Containerfile:2: HEALTHCHECK: HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        err("FROM x\nHEALTHCHECK CMD\n"),
        "Containerfile:2: HEALTHCHECK: Missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        err("FROM x\nHEALTHCHECK RUN x\n"),
        "Containerfile:2: HEALTHCHECK: Unknown type \"RUN\" in HEALTHCHECK (try CMD)"
    );
    assert!(err("FROM x\nHEALTHCHECK --interval=5 CMD x\n").contains("invalid duration"));
    assert!(err("FROM x\nHEALTHCHECK --interval=10us CMD x\n").contains("cannot be less than 1ms"));
    assert!(err("FROM x\nHEALTHCHECK --retries=-1 CMD x\n")
        .contains("--retries cannot be negative (-1)"));
    assert_eq!(
        err("FROM x\nHEALTHCHECK --user=x CMD x\n"),
        "Containerfile:2: HEALTHCHECK: unknown flag: user"
    );
}

#[test]
fn onbuild_wraps_a_parsed_trigger() {
    let k = one("ONBUILD COPY . /app/src");
    let Kind::Onbuild(inner) = k else {
        panic!("not ONBUILD")
    };
    assert_eq!(inner.text, "COPY . /app/src");
    assert_eq!(inner.line, 2);
    assert!(matches!(inner.kind, Kind::Copy { .. }));
    let Kind::Onbuild(inner) = one("onbuild run <<EOF\necho hi\nEOF") else {
        panic!("not ONBUILD")
    };
    let Kind::Run { heredocs, .. } = inner.kind else {
        panic!("not RUN")
    };
    assert_eq!(heredocs[0].content, "echo hi\n");
    assert_eq!(
        err("FROM x\nONBUILD ONBUILD RUN x\n"),
        "Containerfile:2: ONBUILD: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        err("FROM x\nONBUILD FROM y\n"),
        "Containerfile:2: ONBUILD: FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        err("FROM x\nONBUILD\n"),
        "Containerfile:2: ONBUILD: requires at least one argument"
    );
    assert_eq!(
        err("FROM x\nONBUILD COPY a\n"),
        "Containerfile:2: ONBUILD: COPY: requires at least two arguments"
    );
}

#[test]
fn unknown_instruction() {
    assert_eq!(
        err("FROM x\nRUN a\nFOO bar\n"),
        "Containerfile:3: FOO: unknown instruction"
    );
}

#[test]
fn parser_errors_win_over_instruction_errors() {
    // BuildKit parses the whole file before checking instructions.
    assert_eq!(
        err("FROM x\nFOO bar\nRUN <<EOF\n"),
        "Containerfile:3: unterminated heredoc"
    );
}

#[test]
fn instruction_before_from() {
    assert_eq!(
        err("ARG X\n# comment\nRUN echo\nFROM x\n"),
        "Containerfile:3: RUN: no build stage in current context (only ARG may come before the first FROM)"
    );
}

#[test]
fn empty_and_stageless_files() {
    assert_eq!(err(""), "Containerfile:1: file with no instructions");
    assert_eq!(
        err("# only\n\n# comments\n"),
        "Containerfile:3: file with no instructions"
    );
    assert_eq!(
        err("ARG A=1\nARG B\n"),
        "Containerfile:2: dockerfile contains no stages to build (no FROM)"
    );
}

#[test]
fn error_fields() {
    let e = parse("FROM x\nCOPY a\n", "Dockerfile.dev").err();
    assert_eq!(
        e,
        Some(ParseError {
            file: s("Dockerfile.dev"),
            line: 2,
            message: s("COPY: requires at least two arguments")
        })
    );
}

#[test]
fn expand_error_placed_by_caller() {
    let e = expand("${", '\\', &|_| None).map_err(|e| e.at("Containerfile", 9).to_string());
    assert_eq!(e, Err(s("Containerfile:9: syntax error: missing '}'")));
}

#[test]
fn continuation_with_comment_and_empty_lines() {
    let k = one("RUN echo a \\\n# c1\n\n    # c2\n    b");
    assert_eq!(
        k,
        Kind::Run {
            cmd: Form::Shell(s("echo a     b")),
            heredocs: vec![],
            flags: vec![]
        }
    );
}

#[test]
fn trailing_whitespace_and_crlf() {
    let f = ok("FROM x\r\nRUN echo a   \r\nCMD [\"a\"]  \r\n");
    let k: Vec<_> = f.stages[0]
        .instructions
        .iter()
        .map(|i| i.kind.clone())
        .collect();
    assert_eq!(
        k,
        vec![
            Kind::Run {
                cmd: Form::Shell(s("echo a")),
                heredocs: vec![],
                flags: vec![]
            },
            Kind::Cmd(Form::Exec(vec![s("a")])),
        ]
    );
}

#[test]
fn hash_inside_line_is_not_a_comment() {
    assert_eq!(
        one("RUN echo hi # there"),
        Kind::Run {
            cmd: Form::Shell(s("echo hi # there")),
            heredocs: vec![],
            flags: vec![]
        }
    );
}
