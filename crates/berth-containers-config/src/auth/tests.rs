use std::os::unix::fs::PermissionsExt;

use super::*;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn auth(user_pass: &str) -> String {
    BASE64.encode(user_pass)
}

fn user_of(found: Option<Found>) -> Option<(String, PathBuf)> {
    match found? {
        Found::Credentials {
            credentials, file, ..
        } => Some((credentials.username, file)),
        Found::Helper { helper, .. } => panic!("unexpected helper {helper}"),
    }
}

/// A fake `docker-credential-test` in `dir/bin`, logging store/erase calls to `dir/log`.
fn fake_helper(dir: &Path) -> std::ffi::OsString {
    let bin = dir.join("bin");
    let script = format!(
        r#"#!/bin/sh
input=$(cat)
case "$1" in
get)
  case "$input" in
  reg.example) echo '{{"ServerURL":"reg.example","Username":"hu","Secret":"hs:x"}}' ;;
  tok.example) echo '{{"ServerURL":"tok.example","Username":"<token>","Secret":"tt"}}' ;;
  broken.example) echo 'boom'; exit 3 ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
  esac ;;
list) echo '{{"reg.example":"hu","other.example":"ou"}}' ;;
*) echo "$1 $input" >> {log} ;;
esac
"#,
        log = dir.join("log").display()
    );
    write(&bin.join("docker-credential-test"), &script);
    std::fs::set_permissions(
        bin.join("docker-credential-test"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::env::join_paths([bin, PathBuf::from("/usr/bin"), PathBuf::from("/bin")]).unwrap()
}

#[test]
fn chain_order_follows_containers_image() {
    let t = tempfile::tempdir().unwrap();
    let mut env = Env::under(t.path());
    let home = env.home.clone().unwrap();
    let paths = |env: &Env| -> Vec<(PathBuf, bool)> {
        AuthFiles::new(env, None)
            .chain()
            .iter()
            .map(|p| (p.path.clone(), p.legacy))
            .collect()
    };
    assert_eq!(
        paths(&env),
        vec![
            (t.path().join("run/containers/1000/auth.json"), false),
            (home.join(".config/containers/auth.json"), false),
            (home.join(".docker/config.json"), false),
            (home.join(".dockercfg"), true),
        ]
    );
    std::fs::create_dir(t.path().join("xdg-run")).unwrap();
    env.xdg_runtime_dir = Some(t.path().join("xdg-run"));
    env.xdg_config_home = Some(t.path().join("xdg-cfg"));
    env.docker_config = Some(t.path().join("dockercfg"));
    assert_eq!(
        paths(&env),
        vec![
            (t.path().join("xdg-run/containers/auth.json"), false),
            (t.path().join("xdg-cfg/containers/auth.json"), false),
            (t.path().join("dockercfg/config.json"), false),
            (home.join(".dockercfg"), true),
        ]
    );
}

#[test]
fn root_without_runtime_dir_uses_run_containers_0() {
    let t = tempfile::tempdir().unwrap();
    let env = Env {
        uid: 0,
        ..Env::under(t.path())
    };
    let files = AuthFiles::new(&env, None);
    assert_eq!(
        files.primary().unwrap(),
        t.path().join("run/containers/0/auth.json")
    );
}

#[test]
fn missing_runtime_dir_skips_reads_and_refuses_writes() {
    let t = tempfile::tempdir().unwrap();
    let env = Env {
        xdg_runtime_dir: Some(t.path().join("gone")),
        ..Env::under(t.path())
    };
    let files = AuthFiles::new(&env, None);
    assert_eq!(files.chain().len(), 3);
    assert!(matches!(
        files.login("h.example", "u", "p", &[]),
        Err(AuthError::RuntimeDirMissing { .. })
    ));
}

#[test]
fn first_file_with_credentials_wins_and_explicit_file_is_read_alone() {
    let t = tempfile::tempdir().unwrap();
    let env = Env::under(t.path());
    let home = env.home.clone().unwrap();
    let cfg = home.join(".config/containers/auth.json");
    let docker = home.join(".docker/config.json");
    write(
        &cfg,
        &format!(
            r#"{{"auths":{{"a.example":{{"auth":"{}"}}}}}}"#,
            auth("cfg:1")
        ),
    );
    write(
        &docker,
        &format!(
            r#"{{"auths":{{"a.example":{{"auth":"{}"}},"b.example":{{"auth":"{}"}}}}}}"#,
            auth("docker:1"),
            auth("docker:2")
        ),
    );
    let files = AuthFiles::new(&env, None);
    assert_eq!(
        user_of(files.find("a.example").unwrap()),
        Some(("cfg".into(), cfg))
    );
    assert_eq!(
        user_of(files.find("b.example").unwrap()),
        Some(("docker".into(), docker))
    );

    let mine = t.path().join("mine.json");
    write(&mine, r#"{"auths":{}}"#);
    let only = AuthFiles::new(&env, Some(&mine));
    assert_eq!(only.chain().len(), 1);
    assert_eq!(only.find("a.example").unwrap(), None);
    let by_env = AuthFiles::new(
        &Env {
            registry_auth_file: Some(mine.clone()),
            ..env
        },
        None,
    );
    assert_eq!(by_env.primary().unwrap(), mine);
    assert_eq!(by_env.find("a.example").unwrap(), None);
}

#[test]
fn most_specific_key_wins() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("auth.json");
    write(
        &f,
        &format!(
            r#"{{"auths":{{
                "reg.example":{{"auth":"{}"}},
                "reg.example/ns":{{"auth":"{}"}},
                "reg.example/ns/team/app":{{"auth":"{}"}}}}}}"#,
            auth("host:p"),
            auth("ns:p"),
            auth("app:p")
        ),
    );
    let files = AuthFiles::new(&Env::under(t.path()), Some(&f));
    let user = |r: &str| {
        let image: ImageReference = r.parse().unwrap();
        user_of(files.find_for(&image).unwrap()).map(|(u, _)| u)
    };
    assert_eq!(user("reg.example/ns/team/app:1").as_deref(), Some("app"));
    assert_eq!(user("reg.example/ns/team/other").as_deref(), Some("ns"));
    assert_eq!(user("reg.example/ns2/x").as_deref(), Some("host"));
    assert_eq!(user("other.example/ns/x"), None);
}

#[test]
fn legacy_keys_are_normalized() {
    let t = tempfile::tempdir().unwrap();
    let env = Env::under(t.path());
    let home = env.home.clone().unwrap();
    write(
        &home.join(".docker/config.json"),
        &format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},
                "http://old.example:5000":{{"auth":"{}"}},
                "https://v2.example/v2/":{{"auth":"{}"}}}}}}"#,
            auth("hub:p"),
            auth("old:p"),
            auth("v2:p")
        ),
    );
    write(
        &home.join(".dockercfg"),
        &format!(
            r#"{{"https://quay.example/v1/":{{"auth":"{}","email":"x@y"}}}}"#,
            auth("quay:p")
        ),
    );
    let files = AuthFiles::new(&env, None);
    let user = |k: &str| user_of(files.find(k).unwrap()).map(|(u, _)| u);
    assert_eq!(user("docker.io/library/alpine").as_deref(), Some("hub"));
    assert_eq!(user("old.example:5000").as_deref(), Some("old"));
    assert_eq!(user("v2.example/ns/app").as_deref(), Some("v2"));
    assert_eq!(user("quay.example/org/app").as_deref(), Some("quay"));
}

#[test]
fn empty_entry_ends_the_file_but_not_the_chain() {
    let t = tempfile::tempdir().unwrap();
    let env = Env::under(t.path());
    let home = env.home.clone().unwrap();
    write(
        &home.join(".config/containers/auth.json"),
        &format!(
            r#"{{"auths":{{"h.example/ns":{{}},"h.example":{{"auth":"{}"}}}}}}"#,
            auth("skipped:p")
        ),
    );
    write(
        &home.join(".docker/config.json"),
        &format!(
            r#"{{"auths":{{"h.example":{{"auth":"{}"}}}}}}"#,
            auth("docker:p")
        ),
    );
    let files = AuthFiles::new(&env, None);
    let found = user_of(files.find("h.example/ns/app").unwrap()).unwrap();
    assert_eq!(found.0, "docker");
}

#[test]
fn password_is_split_at_the_first_colon_and_nuls_trimmed() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("auth.json");
    write(
        &f,
        &format!(
            r#"{{"auths":{{"h.example":{{"auth":"{}","identitytoken":"tok"}}}}}}"#,
            auth("u:pa:ss\0")
        ),
    );
    let files = AuthFiles::new(&Env::under(t.path()), Some(&f));
    let c = files.credentials("h.example", &[]).unwrap().unwrap();
    assert_eq!(c.username, "u");
    assert_eq!(c.password, "pa:ss");
    assert_eq!(c.identity_token.as_deref(), Some("tok"));
    assert!(!format!("{c:?}").contains("pa:ss"));
}

#[test]
fn cred_helpers_come_first_and_run_the_helper() {
    let t = tempfile::tempdir().unwrap();
    let env = Env {
        path: Some(fake_helper(t.path())),
        ..Env::under(t.path())
    };
    let home = env.home.clone().unwrap();
    write(
        &home.join(".config/containers/auth.json"),
        &format!(
            r#"{{"auths":{{"reg.example/ns":{{"auth":"{}"}}}},
                "credHelpers":{{"reg.example":"test","miss.example":"test","tok.example":"test","broken.example":"test"}}}}"#,
            auth("file:p")
        ),
    );
    write(
        &home.join(".docker/config.json"),
        &format!(
            r#"{{"auths":{{"miss.example":{{"auth":"{}"}}}}}}"#,
            auth("fallback:p")
        ),
    );
    let files = AuthFiles::new(&env, None);
    assert_eq!(
        files.find("reg.example/ns/app").unwrap(),
        Some(Found::Helper {
            helper: "test".into(),
            registry: "reg.example".into(),
            file: home.join(".config/containers/auth.json"),
        })
    );
    let c = files
        .credentials("reg.example/ns/app", &[])
        .unwrap()
        .unwrap();
    assert_eq!((c.username.as_str(), c.password.as_str()), ("hu", "hs:x"));
    // The helper has nothing: the next file is read.
    let c = files.credentials("miss.example", &[]).unwrap().unwrap();
    assert_eq!(c.username, "fallback");
    let c = files.credentials("tok.example", &[]).unwrap().unwrap();
    assert_eq!(c.identity_token.as_deref(), Some("tt"));
    assert!(matches!(
        files.credentials("broken.example", &[]),
        Err(AuthError::Helper { message, .. }) if message.contains("boom")
    ));
    // A global credential-helpers list from registries.conf.
    let c = files
        .credentials("reg.example", &["test".to_string()])
        .unwrap()
        .unwrap();
    assert_eq!(c.username, "hu");
    assert!(matches!(
        files.credentials("reg.example", &["absent".to_string()]),
        Err(AuthError::HelperNotFound { .. })
    ));
}

#[test]
fn login_keeps_unknown_fields_and_writes_podman_format() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("auth.json");
    write(
        &f,
        r#"{"psFormat":"table","auths":{"b.example":{"auth":"eDp5","email":"e@x"},"a.example":{"identitytoken":"old"}},"credHelpers":{"h.example":"pass"}}"#,
    );
    let files = AuthFiles::new(&Env::under(t.path()), Some(&f));
    assert_eq!(
        files.login("a.example", "us", "p:w", &[]).unwrap(),
        Stored::File(f.clone())
    );
    let expected = "{\n\t\"auths\": {\n\t\t\"a.example\": {\n\t\t\t\"auth\": \"dXM6cDp3\"\n\t\t},\n\t\t\"b.example\": {\n\t\t\t\"auth\": \"eDp5\",\n\t\t\t\"email\": \"e@x\"\n\t\t}\n\t},\n\t\"credHelpers\": {\n\t\t\"h.example\": \"pass\"\n\t},\n\t\"psFormat\": \"table\"\n}";
    assert_eq!(std::fs::read_to_string(&f).unwrap(), expected);
    let c = files.credentials("a.example", &[]).unwrap().unwrap();
    assert_eq!((c.username.as_str(), c.password.as_str()), ("us", "p:w"));
}

#[test]
fn login_creates_private_files() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("new/dir/auth.json");
    let files = AuthFiles::new(&Env::under(t.path()), Some(&f));
    files.login("127.0.0.1:5999", "u", "p", &[]).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&f), 0o600);
    assert_eq!(mode(&t.path().join("new")), 0o700);
    assert_eq!(mode(&t.path().join("new/dir")), 0o700);
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "{\n\t\"auths\": {\n\t\t\"127.0.0.1:5999\": {\n\t\t\t\"auth\": \"dTpw\"\n\t\t}\n\t}\n}"
    );
    // No temporary file is left behind.
    assert_eq!(
        std::fs::read_dir(t.path().join("new/dir")).unwrap().count(),
        1
    );
}

#[test]
fn login_and_logout_go_through_a_configured_helper() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("auth.json");
    write(&f, r#"{"auths":{},"credHelpers":{"reg.example":"test"}}"#);
    let env = Env {
        path: Some(fake_helper(t.path())),
        ..Env::under(t.path())
    };
    let files = AuthFiles::new(&env, Some(&f));
    assert_eq!(
        files.login("reg.example", "u", "p", &[]).unwrap(),
        Stored::Helper("test".into())
    );
    files.logout("reg.example", &[]).unwrap();
    let log = std::fs::read_to_string(t.path().join("log")).unwrap();
    assert_eq!(
        log,
        "store {\"ServerURL\":\"reg.example\",\"Username\":\"u\",\"Secret\":\"p\"}\nerase reg.example\n"
    );
    // The file itself was never rewritten.
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        r#"{"auths":{},"credHelpers":{"reg.example":"test"}}"#
    );
    // Helpers hold hosts only: a namespaced key goes to the file (containers/image
    // matches credHelpers against the whole key when writing).
    assert_eq!(
        files.login("reg.example/ns", "u", "p", &[]).unwrap(),
        Stored::File(f.clone())
    );
}

/// registries.conf's `credential-helpers` decide where a login goes, as in
/// containers/image: an external helper first keeps it out of the file (a password
/// was written there though the configuration said to keep it in a keyring), a
/// namespaced key goes on to the next in the list, and logout erases everywhere.
#[test]
fn registries_conf_helpers_take_logins_and_logouts() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("auth.json");
    let env = Env {
        path: Some(fake_helper(t.path())),
        ..Env::under(t.path())
    };
    let files = AuthFiles::new(&env, Some(&f));
    let only_helper = ["test".to_string()];
    assert_eq!(
        files.login("a.example", "u", "p", &only_helper).unwrap(),
        Stored::Helper("test".into())
    );
    assert!(!f.exists(), "nothing written to the file");
    assert!(matches!(
        files.login("a.example/ns", "u", "p", &only_helper),
        Err(AuthError::NamespacedHelper { .. })
    ));
    let both = ["test".to_string(), "containers-auth.json".to_string()];
    assert_eq!(
        files.login("a.example/ns", "u", "p", &both).unwrap(),
        Stored::File(f.clone())
    );
    files.logout("a.example", &both).unwrap();
    files.logout_all(&both).unwrap();
    let log = std::fs::read_to_string(t.path().join("log")).unwrap();
    assert_eq!(
        log,
        "store {\"ServerURL\":\"a.example\",\"Username\":\"u\",\"Secret\":\"p\"}\n\
         erase a.example\nerase other.example\nerase reg.example\n"
    );
    assert!(!std::fs::read_to_string(&f)
        .unwrap()
        .contains("a.example/ns"));
}

/// A global helper that fails does not end the search: the auth file after it still
/// answers; the helper's error is the answer only when nothing else has credentials.
#[test]
fn a_failing_global_helper_does_not_end_the_search() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("auth.json");
    let env = Env {
        path: Some(fake_helper(t.path())),
        ..Env::under(t.path())
    };
    let files = AuthFiles::new(&env, Some(&f));
    let both = ["test".to_string(), "containers-auth.json".to_string()];
    assert!(files.credentials("broken.example", &both).is_err());
    files.login("broken.example", "u", "p", &[]).unwrap();
    let found = files.credentials("broken.example", &both).unwrap().unwrap();
    assert_eq!(
        (found.username.as_str(), found.password.as_str()),
        ("u", "p")
    );
    // Logout goes on past a helper that cannot be run, and so does logout --all.
    let missing_first = ["nothere".to_string(), "containers-auth.json".to_string()];
    files.logout("broken.example", &missing_first).unwrap();
    assert!(files.credentials("broken.example", &[]).unwrap().is_none());
    files.login("other.example", "u", "p", &[]).unwrap();
    files.logout_all(&missing_first).unwrap();
    assert!(files.credentials("other.example", &[]).unwrap().is_none());
}

#[test]
fn logout_removes_one_key_or_all() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("auth.json");
    let env = Env {
        path: Some(fake_helper(t.path())),
        ..Env::under(t.path())
    };
    let files = AuthFiles::new(&env, Some(&f));
    files.login("a.example", "u", "p", &[]).unwrap();
    files.login("b.example/ns", "u", "p", &[]).unwrap();
    files.logout("a.example", &[]).unwrap();
    assert!(files.find("a.example").unwrap().is_none());
    assert!(files.find("b.example/ns/x").unwrap().is_some());
    assert!(matches!(
        files.logout("a.example", &[]),
        Err(AuthError::NotLoggedIn { key }) if key == "a.example"
    ));

    let mut file = file::read(&f).unwrap();
    file.cred_helpers.insert("h.example".into(), "test".into());
    file.other.insert("keep".into(), serde_json::json!(1));
    file::write_atomic(&f, &file).unwrap();
    files.logout_all(&[]).unwrap();
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "{\n\t\"auths\": {},\n\t\"keep\": 1\n}"
    );
    let log = std::fs::read_to_string(t.path().join("log")).unwrap();
    assert_eq!(log, "erase h.example\n");
}

#[test]
fn malformed_files_are_errors_naming_the_file() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("auth.json");
    for text in [
        "{not json",
        r#"{"auths":[]}"#,
        r#"{"auths":{"h":{"auth":1}}}"#,
        "",
    ] {
        write(&f, text);
        let files = AuthFiles::new(&Env::under(t.path()), Some(&f));
        let err = files.find("h.example").unwrap_err();
        assert!(matches!(err, AuthError::Parse { .. }), "{text}: {err}");
        assert!(err.to_string().contains(&*f.to_string_lossy()), "{err}");
        assert!(files.login("h.example", "u", "p", &[]).is_err());
    }
    write(&f, r#"{"auths":{"h.example":{"auth":"%%%"}}}"#);
    let files = AuthFiles::new(&Env::under(t.path()), Some(&f));
    let err = files.find("h.example").unwrap_err();
    assert!(matches!(err, AuthError::Base64 { .. }));
    assert!(err.to_string().contains(&*f.to_string_lossy()), "{err}");
}

#[test]
fn keys_are_validated() {
    let t = tempfile::tempdir().unwrap();
    let files = AuthFiles::new(&Env::under(t.path()), Some(&t.path().join("a.json")));
    for bad in [
        "",
        "https://h.example",
        "h.example/x@sha256:00",
        "h.example/x:tag",
    ] {
        assert!(
            matches!(files.find(bad), Err(AuthError::InvalidKey { .. })),
            "{bad}"
        );
    }
    assert!(files.find("localhost:5000/ns").unwrap().is_none());
}
