use super::*;

const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn image(s: &str) -> ImageReference {
    s.parse().unwrap()
}

/// Loads `text` as the only (system) registries.conf under a fresh root.
fn load(text: &str) -> Registries {
    let t = tempfile::tempdir().unwrap();
    write(&t.path().join("etc/containers/registries.conf"), text);
    Registries::load(&Env::under(t.path())).unwrap()
}

fn sources(r: &Registries, s: &str) -> Vec<(String, bool)> {
    r.pull_sources(&image(s))
        .unwrap()
        .into_iter()
        .map(|p| (p.reference.to_string(), p.insecure))
        .collect()
}

#[test]
fn nothing_configured_is_an_empty_configuration() {
    let t = tempfile::tempdir().unwrap();
    let r = Registries::load(&Env::under(t.path())).unwrap();
    assert!(r.registries().is_empty());
    assert_eq!(r.short_name_mode(), ShortNameMode::Permissive);
    assert_eq!(
        sources(&r, "quay.io/a/b:1"),
        vec![("quay.io/a/b:1".to_string(), false)]
    );
}

#[test]
fn drop_ins_override_in_order() {
    let t = tempfile::tempdir().unwrap();
    let env = Env::under(t.path());
    let home = env.home.clone().unwrap();
    write(
        &t.path().join("etc/containers/registries.conf"),
        r#"
unqualified-search-registries = ["main.example"]
short-name-mode = "enforcing"
credential-helpers = ["containers-auth.json"]
[aliases]
"app" = "main.example/app"
"gone" = "main.example/gone"
[[registry]]
prefix = "a.example"
location = "a-main.example"
[[registry]]
location = "b.example"
insecure = true
"#,
    );
    let dir = t.path().join("etc/containers/registries.conf.d");
    write(
        &dir.join("10-first.conf"),
        r#"
unqualified-search-registries = ["first.example"]
[[registry]]
prefix = "a.example"
location = "a-first.example"
"#,
    );
    write(
        &dir.join("20-second.conf"),
        r#"
[aliases]
"gone" = ""
[[registry]]
prefix = "a.example"
location = "a-second.example"
"#,
    );
    write(&dir.join("30-ignored.txt"), "not toml at all [");
    write(&dir.join("sub.conf/x.conf"), "not toml at all [");
    write(
        &home.join(".config/containers/registries.conf.d/00-user.conf"),
        r#"short-name-mode = "disabled""#,
    );
    let r = Registries::load(&env).unwrap();
    // A later drop-in replaces the table of an identical prefix wholesale.
    assert_eq!(
        r.find(&image("a.example/x")).unwrap().location,
        "a-second.example"
    );
    // Untouched tables and keys survive.
    assert!(r.find(&image("b.example/x")).unwrap().insecure);
    assert_eq!(r.unqualified_search_registries(), ["first.example"]);
    // The user directory comes after the system one, whatever the names.
    assert_eq!(r.short_name_mode(), ShortNameMode::Disabled);
    assert_eq!(r.credential_helpers(), ["containers-auth.json"]);
    assert_eq!(r.alias("app").unwrap().to_string(), "main.example/app");
    assert_eq!(r.alias("gone"), None);
    let prefixes: Vec<&str> = r.registries().iter().map(|r| r.prefix.as_str()).collect();
    assert_eq!(prefixes, ["a.example", "b.example"]);
}

#[test]
fn user_file_replaces_system_file_and_directory() {
    let t = tempfile::tempdir().unwrap();
    let env = Env::under(t.path());
    let home = env.home.clone().unwrap();
    write(
        &t.path().join("etc/containers/registries.conf"),
        r#"unqualified-search-registries = ["system.example"]"#,
    );
    write(
        &t.path().join("etc/containers/registries.conf.d/x.conf"),
        r#"short-name-mode = "enforcing""#,
    );
    write(
        &home.join(".config/containers/registries.conf"),
        r#"unqualified-search-registries = ["user.example"]"#,
    );
    let r = Registries::load(&env).unwrap();
    assert_eq!(r.unqualified_search_registries(), ["user.example"]);
    assert_eq!(r.short_name_mode(), ShortNameMode::Permissive);
}

#[test]
fn registries_conf_variable_replaces_the_main_file_only() {
    let t = tempfile::tempdir().unwrap();
    let mine = t.path().join("mine.conf");
    write(&mine, r#"unqualified-search-registries = ["mine.example"]"#);
    write(
        &t.path().join("etc/containers/registries.conf"),
        r#"short-name-mode = "disabled""#,
    );
    write(
        &t.path().join("etc/containers/registries.conf.d/x.conf"),
        r#"short-name-mode = "enforcing""#,
    );
    let env = Env {
        registries_conf: Some(mine),
        ..Env::under(t.path())
    };
    let r = Registries::load(&env).unwrap();
    assert_eq!(r.unqualified_search_registries(), ["mine.example"]);
    assert_eq!(r.short_name_mode(), ShortNameMode::Enforcing);
    // An explicit file must exist.
    let env = Env {
        registries_conf: Some(t.path().join("missing.conf")),
        ..Env::under(t.path())
    };
    assert!(matches!(
        Registries::load(&env),
        Err(RegistriesError::Io { .. })
    ));
}

#[test]
fn longest_prefix_wins_at_component_boundaries() {
    let r = load(
        r#"
[[registry]]
location = "example.com"
[[registry]]
prefix = "example.com/foo"
location = "foo.internal/x"
[[registry]]
prefix = "example.com/foo/bar"
location = "bar.internal"
[[registry]]
prefix = "*.wild.example"
insecure = true
[[registry]]
prefix = "*.deep.wild.example"
location = "deep.internal"
"#,
    );
    let prefix = |s: &str| r.find(&image(s)).map(|r| r.prefix.clone());
    assert_eq!(
        prefix("example.com/foo/bar/baz:1").as_deref(),
        Some("example.com/foo/bar")
    );
    assert_eq!(
        prefix("example.com/foo/bar").as_deref(),
        Some("example.com/foo/bar")
    );
    assert_eq!(
        prefix("example.com/foo/barn").as_deref(),
        Some("example.com/foo")
    );
    assert_eq!(prefix("example.com/foobar").as_deref(), Some("example.com"));
    assert_eq!(prefix("example.community/x"), None);
    assert_eq!(
        prefix("a.wild.example/x").as_deref(),
        Some("*.wild.example")
    );
    assert_eq!(
        prefix("a.b.wild.example:5000/x").as_deref(),
        Some("*.wild.example")
    );
    assert_eq!(
        prefix("x.deep.wild.example/x").as_deref(),
        Some("*.deep.wild.example")
    );
    assert_eq!(prefix("wild.example/x"), None);
    assert_eq!(prefix("other.example/a.wild.example"), None);

    assert_eq!(
        sources(&r, "example.com/foo/app:v1"),
        vec![("foo.internal/x/app:v1".to_string(), false)]
    );
    // A wildcard without location keeps the name and applies its settings.
    assert_eq!(
        sources(&r, "a.wild.example/app:v1"),
        vec![("a.wild.example/app:v1".to_string(), true)]
    );
    // A wildcard with a location replaces the matched host.
    assert_eq!(
        sources(&r, "x.deep.wild.example/ns/app:v1"),
        vec![("deep.internal/ns/app:v1".to_string(), false)]
    );
}

#[test]
fn mirrors_come_first_and_honour_pull_from_mirror() {
    let r = load(
        r#"
[[registry]]
prefix = "docker.io/library"
location = "docker.io/library"
[[registry.mirror]]
location = "all.mirror/lib"
insecure = true
[[registry.mirror]]
location = "digest.mirror/lib"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tag.mirror/lib"
pull-from-mirror = "tag-only"

[[registry]]
location = "strict.example"
mirror-by-digest-only = true
[[registry.mirror]]
location = "strict.mirror"
"#,
    );
    assert_eq!(
        sources(&r, "alpine:3"),
        vec![
            ("all.mirror/lib/alpine:3".to_string(), true),
            ("tag.mirror/lib/alpine:3".to_string(), false),
            ("docker.io/library/alpine:3".to_string(), false),
        ]
    );
    assert_eq!(
        sources(&r, &format!("alpine@{D}")),
        vec![
            (format!("all.mirror/lib/alpine@{D}"), true),
            (format!("digest.mirror/lib/alpine@{D}"), false),
            (format!("docker.io/library/alpine@{D}"), false),
        ]
    );
    assert_eq!(
        sources(&r, "strict.example/a:1"),
        vec![("strict.example/a:1".to_string(), false)]
    );
    assert_eq!(
        sources(&r, &format!("strict.example/a@{D}")),
        vec![
            (format!("strict.mirror/a@{D}"), false),
            (format!("strict.example/a@{D}"), false),
        ]
    );
    let p = r.pull_sources(&image("alpine:3")).unwrap();
    assert!(p[0].mirror && !p[2].mirror);
}

#[test]
fn blocked_registries_refuse_pulls() {
    let r = load(
        r#"
[[registry]]
prefix = "bad.example"
blocked = true
"#,
    );
    let err = r.pull_sources(&image("bad.example/x:1")).unwrap_err();
    assert!(matches!(&err, RegistriesError::Blocked { prefix, .. } if prefix == "bad.example"));
    assert!(err.to_string().contains("registries.conf"), "{err}");
    assert!(r.pull_sources(&image("good.example/x:1")).is_ok());
    // A prefix without location loads (it can still block) but cannot be pulled from.
    let r = load("[[registry]]\nprefix = \"nowhere.example\"");
    assert!(matches!(
        r.pull_sources(&image("nowhere.example/x:1")),
        Err(RegistriesError::NoLocation { .. })
    ));
}

#[test]
fn v1_format_is_converted() {
    let r = load(
        r#"
[registries.search]
registries = ["registry.fedoraproject.org", "docker.io"]
[registries.insecure]
registries = ["insecure.example:5000", "both.example"]
[registries.block]
registries = ["blocked.example", "both.example"]
"#,
    );
    assert_eq!(
        r.unqualified_search_registries(),
        ["registry.fedoraproject.org", "docker.io"]
    );
    assert!(r.find(&image("insecure.example:5000/x")).unwrap().insecure);
    assert!(r.find(&image("blocked.example/x")).unwrap().blocked);
    let both = r.find(&image("both.example/x")).unwrap();
    assert!(both.blocked && both.insecure);
}

#[test]
fn invalid_files_are_errors_naming_the_file() {
    let t = tempfile::tempdir().unwrap();
    let main = t.path().join("etc/containers/registries.conf");
    let dropin = t.path().join("etc/containers/registries.conf.d/a.conf");
    let env = Env::under(t.path());
    for (file, text) in [
        (&main, "[[registry]\n"),
        (&main, "short-name-mode = \"sometimes\""),
        (&main, "[[registry]]\nlocation = \"https://x.example\""),
        (&main, "[[registry]]\ninsecure = true"),
        (&main, "[[registry]]\nprefix = \"*.x.example/ns\""),
        (&main, "[[registry]]\nlocation = \"x.example\"\npull-from-mirror = \"all\""),
        (
            &main,
            "[[registry]]\nlocation = \"x.example\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.example\"\npull-from-mirror = \"all\"",
        ),
        (
            &main,
            "[[registry]]\nlocation = \"x.example\"\n[[registry.mirror]]\nlocation = \"m.example\"\npull-from-mirror = \"often\"",
        ),
        (
            &main,
            "[[registry]]\nprefix = \"a.example\"\nlocation = \"x.example\"\n[[registry]]\nprefix = \"b.example\"\nlocation = \"x.example\"\ninsecure = true",
        ),
        (&main, "unqualified-search-registries = []\n[registries.search]\nregistries = []"),
        (&main, "[aliases]\n\"quay.io/app\" = \"quay.io/app\""),
        (&main, "[aliases]\n\"app:1\" = \"quay.io/app\""),
        (&main, "[aliases]\n\"app\" = \"app\""),
        (&main, "[aliases]\n\"app\" = \"quay.io/app:1\""),
        (&dropin, "[registries.search]\nregistries = [\"x.example\"]"),
    ] {
        let _ = std::fs::remove_file(&main);
        let _ = std::fs::remove_file(&dropin);
        write(file, text);
        let err = Registries::load(&env).unwrap_err();
        assert!(
            err.to_string().contains(&*file.to_string_lossy()),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn short_names_use_aliases_first() {
    let r = load(
        r#"
unqualified-search-registries = ["quay.io", "docker.io"]
short-name-mode = "enforcing"
[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
"#,
    );
    let res = r.resolve_short_name("fedora:39", false).unwrap();
    assert_eq!(
        res.candidates,
        vec![image("registry.fedoraproject.org/fedora:39")]
    );
    assert!(matches!(res.resolved_by, ResolvedBy::Alias(_)));
    assert!(!res.prompt);
    let res = r.resolve_short_name(&format!("fedora@{D}"), false).unwrap();
    assert_eq!(
        res.candidates[0].to_string(),
        format!("registry.fedoraproject.org/fedora@{D}")
    );
    let res = r.resolve_short_name("quay.io/x/y", false).unwrap();
    assert_eq!(res.candidates, vec![image("quay.io/x/y:latest")]);
    assert_eq!(res.resolved_by, ResolvedBy::Qualified);
}

#[test]
fn short_names_use_search_registries_per_mode() {
    let conf = |mode: &str| {
        load(&format!(
            "unqualified-search-registries = [\"quay.io\", \"docker.io\"]\nshort-name-mode = \"{mode}\""
        ))
    };
    let expected = vec![
        image("quay.io/alpine:latest"),
        image("docker.io/library/alpine:latest"),
    ];

    let enforcing = conf("enforcing");
    assert!(matches!(
        enforcing.resolve_short_name("alpine", false),
        Err(RegistriesError::Ambiguous { .. })
    ));
    let res = enforcing.resolve_short_name("alpine", true).unwrap();
    assert_eq!(
        (res.candidates.clone(), res.prompt),
        (expected.clone(), true)
    );

    let permissive = conf("permissive");
    let res = permissive.resolve_short_name("alpine", false).unwrap();
    assert_eq!(
        (res.candidates.clone(), res.prompt),
        (expected.clone(), false)
    );
    assert!(
        permissive
            .resolve_short_name("alpine", true)
            .unwrap()
            .prompt
    );

    let disabled = conf("disabled");
    let res = disabled.resolve_short_name("alpine", true).unwrap();
    assert_eq!((res.candidates, res.prompt), (expected, false));

    // One search registry is never ambiguous.
    let one =
        load("unqualified-search-registries = [\"quay.io\"]\nshort-name-mode = \"enforcing\"");
    let res = one.resolve_short_name("team/app:v1", false).unwrap();
    assert_eq!(res.candidates, vec![image("quay.io/team/app:v1")]);

    let none = load("");
    assert!(matches!(
        none.resolve_short_name("alpine", true),
        Err(RegistriesError::NoSearchRegistries { .. })
    ));
}

#[test]
fn shortnames_conf_is_an_ordinary_drop_in() {
    let t = tempfile::tempdir().unwrap();
    write(
        &t.path()
            .join("etc/containers/registries.conf.d/000-shortnames.conf"),
        "[aliases]\n\"alpine\" = \"docker.io/library/alpine\"\n",
    );
    let r = Registries::load(&Env::under(t.path())).unwrap();
    let res = r.resolve_short_name("alpine:3", false).unwrap();
    assert_eq!(res.candidates, vec![image("docker.io/library/alpine:3")]);
}

#[test]
fn find_name_matches_what_login_is_given() {
    let r = load(
        "[[registry]]\nlocation = \"127.0.0.1:5000\"\ninsecure = true\n\
         [[registry]]\nprefix = \"reg.example/team\"\nlocation = \"reg.example/team\"\n",
    );
    assert!(r.find_name("127.0.0.1:5000").unwrap().insecure);
    assert!(r.find_name("127.0.0.1:5000/ns").unwrap().insecure);
    // Another port is another registry; a longer host is not a path boundary.
    assert!(r.find_name("127.0.0.1:5001").is_none());
    assert!(r.find_name("127.0.0.1").is_none());
    assert!(r.find_name("reg.example").is_none());
    assert_eq!(
        r.find_name("reg.example/team/app").unwrap().prefix,
        "reg.example/team"
    );
    // Prefixes of equal length both matching: the one that sorts first, in either
    // order of the files, as containers/image keeps the first of its sorted list.
    for text in [
        "[[registry]]\nlocation = \"q.example.com\"\n\
         [[registry]]\nprefix = \"*.example.com\"\nblocked = true\n",
        "[[registry]]\nprefix = \"*.example.com\"\nblocked = true\n\
         [[registry]]\nlocation = \"q.example.com\"\n",
    ] {
        let r = load(text);
        assert_eq!(
            r.find_name("q.example.com/x").unwrap().prefix,
            "*.example.com"
        );
    }
}
