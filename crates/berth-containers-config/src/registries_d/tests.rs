use super::*;

fn parse(files: &[(&str, &str)]) -> Result<RegistriesD, RegistriesDError> {
    RegistriesD::from_files(files.iter().map(|(p, t)| (PathBuf::from(p), t.to_string())))
}

fn root_env() -> Env {
    let mut env = Env::under(Path::new("/r"));
    env.uid = 0;
    env
}

const DEPARTMENT: &str = r#"
default-docker:
  lookaside-staging: file:///mnt/common/staging
docker:
  registry.example.com/mydepartment:
    lookaside: https://lookaside.mydepartment.example.com
    lookaside-staging: file:///mnt/mydepartment/staging
    use-sigstore-attachments: true
  registry.example.com/mydepartment/quiet:
    use-sigstore-attachments: false
  registry.example.com:
    sigstore: https://old-name.example.com/sigs/
  "*.example.org":
    lookaside: file:///srv/wild
some-unknown-key: ignored
"#;

#[test]
fn the_most_specific_scope_that_names_a_place_wins() {
    let d = parse(&[("/d/a.yaml", DEPARTMENT)]).unwrap();
    let env = root_env();
    let id = "registry.example.com/mydepartment/app:v1";
    assert_eq!(
        d.lookaside_base(&env, id, false).unwrap(),
        Lookaside::Http("https://lookaside.mydepartment.example.com".into())
    );
    assert_eq!(
        d.lookaside_base(&env, id, true).unwrap(),
        Lookaside::File("/mnt/mydepartment/staging".into())
    );
    // A scope that names no place falls through to the next one (containers/image
    // reads each scope's URL, not the scope wholesale).
    let quiet = "registry.example.com/mydepartment/quiet/x@sha256:0000000000000000000000000000000000000000000000000000000000000000";
    assert_eq!(
        d.lookaside_base(&env, quiet, false).unwrap(),
        Lookaside::Http("https://lookaside.mydepartment.example.com".into())
    );
    // The old key name, the host scope, a trailing slash.
    assert_eq!(
        d.lookaside_base(&env, "registry.example.com/other/x:1", false)
            .unwrap(),
        Lookaside::Http("https://old-name.example.com/sigs".into())
    );
    // Staging for writes: default-docker's, since the host scope has none… but it
    // has a reading place, which comes first in containers/image's order.
    assert_eq!(
        d.lookaside_base(&env, "registry.example.com/other/x:1", true)
            .unwrap(),
        Lookaside::Http("https://old-name.example.com/sigs".into())
    );
    // Wildcard hosts.
    assert_eq!(
        d.lookaside_base(&env, "a.b.example.org:5000/x:1", false)
            .unwrap(),
        Lookaside::File("/srv/wild".into())
    );
    // Nothing configured: the built-in folder, per user.
    assert_eq!(
        d.lookaside_base(&env, "quay.io/x:1", false).unwrap(),
        Lookaside::File("/r/var/lib/containers/sigstore".into())
    );
    assert_eq!(
        d.lookaside_base(&env, "quay.io/x:1", true).unwrap(),
        Lookaside::File("/mnt/common/staging".into())
    );
    let user = Env::under(Path::new("/u"));
    assert_eq!(
        RegistriesD::default()
            .lookaside_base(&user, "quay.io/x:1", false)
            .unwrap(),
        Lookaside::File("/u/home/.local/share/containers/sigstore".into())
    );
}

#[test]
fn sigstore_attachments_follow_the_most_specific_scope_that_says() {
    let d = parse(&[("/d/a.yaml", DEPARTMENT)]).unwrap();
    assert!(d.use_sigstore_attachments("registry.example.com/mydepartment/app:v1"));
    assert!(!d.use_sigstore_attachments("registry.example.com/mydepartment/quiet:v1"));
    assert!(!d.use_sigstore_attachments("registry.example.com/other:v1"));
    let on = parse(&[(
        "/d/b.yaml",
        "default-docker:\n  use-sigstore-attachments: true\n",
    )])
    .unwrap();
    assert!(on.use_sigstore_attachments("quay.io/x:1"));
}

#[test]
fn signature_paths_use_the_repository_path_and_an_equals_sign() {
    let digest: Digest = "sha256:959756ee58b6a9b0b1e9a7a9b2a0e6a1d4f3c2b1a0f9e8d7c6b5a4f3e2d1c0b9"
        .parse()
        .unwrap();
    let file = Lookaside::File("/lookaside".into());
    assert_eq!(
        file.signature("test/hello", &digest, 0),
        Lookaside::File(
            "/lookaside/test/hello@sha256=959756ee58b6a9b0b1e9a7a9b2a0e6a1d4f3c2b1a0f9e8d7c6b5a4f3e2d1c0b9/signature-1"
                .into()
        )
    );
    let http = Lookaside::Http("https://s.example".into());
    assert_eq!(
        http.signature("library/busybox", &digest, 2),
        Lookaside::Http(format!(
            "https://s.example/library/busybox@sha256={}/signature-3",
            digest.hex()
        ))
    );
}

#[test]
fn files_merge_and_duplicates_are_errors() {
    let a = "docker:\n  quay.io/a:\n    lookaside: file:///a\n";
    let b = "docker:\n  quay.io/b:\n    lookaside: file:///b\n";
    let d = parse(&[("/d/a.yaml", a), ("/d/b.yaml", b), ("/d/c.yaml", "")]).unwrap();
    let env = root_env();
    assert_eq!(
        d.lookaside_base(&env, "quay.io/b/x:1", false).unwrap(),
        Lookaside::File("/b".into())
    );
    let err = parse(&[("/d/a.yaml", a), ("/d/a2.yaml", a)]).unwrap_err();
    assert!(
        err.to_string()
            .contains("\"docker\" namespace quay.io/a defined both in /d/a.yaml and /d/a2.yaml"),
        "{err}"
    );
    let dd = "default-docker:\n  lookaside: file:///x\n";
    let err = parse(&[("/d/a.yaml", dd), ("/d/b.yaml", dd)]).unwrap_err();
    assert!(
        err.to_string().contains("\"default-docker\" defined both"),
        "{err}"
    );
}

#[test]
fn bad_files_and_urls_are_refused_with_their_path() {
    let err = parse(&[("/d/bad.yaml", "docker: [1, 2")]).unwrap_err();
    assert!(err.to_string().contains("/d/bad.yaml"), "{err}");
    let d = parse(&[("/d/a.yaml", "docker:\n  q.io:\n    lookaside: ftp://x\n")]).unwrap();
    let err = d
        .lookaside_base(&root_env(), "q.io/x:1", false)
        .unwrap_err();
    assert!(err.to_string().contains("ftp://x"), "{err}");
    let d = parse(&[(
        "/d/a.yaml",
        "docker:\n  q.io:\n    lookaside: file://relative\n",
    )])
    .unwrap();
    assert!(d.lookaside_base(&root_env(), "q.io/x:1", false).is_err());
}

#[test]
fn load_reads_yaml_files_in_name_order_and_a_missing_folder_is_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::under(tmp.path());
    assert_eq!(
        RegistriesD::load(&env, None).unwrap(),
        RegistriesD::default()
    );
    let dir = tmp.path().join("etc/containers/registries.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("b.yaml"),
        "docker:\n  q.io:\n    lookaside: file:///b\n",
    )
    .unwrap();
    std::fs::write(dir.join("ignored.conf"), "not: [yaml").unwrap();
    let d = RegistriesD::load(&env, None).unwrap();
    let mut root = env.clone();
    root.uid = 0;
    assert_eq!(
        d.lookaside_base(&root, "q.io/x:1", false).unwrap(),
        Lookaside::File("/b".into())
    );
    // The user's folder replaces the system one when it exists.
    let user = tmp.path().join("home/.config/containers/registries.d");
    std::fs::create_dir_all(&user).unwrap();
    assert_eq!(
        RegistriesD::load(&env, None).unwrap(),
        RegistriesD::default()
    );
    // An explicit folder wins.
    assert_eq!(RegistriesD::load(&env, Some(&dir)).unwrap(), d);
}
