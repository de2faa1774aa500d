use super::*;

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::from_slice(text.as_bytes(), Path::new("/p/policy.json"))
}

const SCOPED: &str = r#"{
  "default": [{"type": "reject"}],
  "transports": {
    "docker": {
      "": [{"type": "insecureAcceptAnything"}],
      "reg.example": [{"type": "reject"}],
      "reg.example/team": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k.gpg"}],
      "reg.example/team/app": [{"type": "insecureAcceptAnything"}],
      "reg.example/team/app:pinned": [{"type": "reject"}],
      "*.example.org": [{"type": "sigstoreSigned", "keyPath": "/c.pub",
                         "signedIdentity": {"type": "matchRepository"}}],
      "*.org": [{"type": "reject"}]
    },
    "dir": {"/srv/images": [{"type": "insecureAcceptAnything"}]},
    "oci": {"/srv/oci:v1": [{"type": "insecureAcceptAnything"}],
            "/srv/oci": [{"type": "reject"}]}
  }
}"#;

#[test]
fn most_specific_scope_wins() {
    let p = parse(SCOPED).unwrap();
    let docker = |id: &str| p.evaluate("docker", id);
    assert_eq!(docker("reg.example/team/app:v1"), Decision::Accept);
    assert!(matches!(
        docker("reg.example/team/app:pinned"),
        Decision::Reject(_)
    ));
    assert_eq!(
        docker("reg.example/team/other:v1"),
        Decision::NeedsSignature
    );
    assert!(matches!(
        docker("reg.example/else/x:v1"),
        Decision::Reject(_)
    ));
    assert_eq!(docker("quay.example/x:v1"), Decision::Accept);
    assert_eq!(
        docker("a.b.example.org:5000/x:v1"),
        Decision::NeedsSignature
    );
    assert!(matches!(docker("other.org/x:v1"), Decision::Reject(_)));
    // Prefixes match whole components only.
    assert_eq!(
        p.requirements_for("docker", "reg.example/teamx/app:v1"),
        p.requirements_for("docker", "reg.example/x:1")
    );
    // Other transports: exact path, parents, then "" (absent) and the global default.
    assert_eq!(p.evaluate("dir", "/srv/images/a/b"), Decision::Accept);
    assert!(matches!(
        p.evaluate("dir", "/srv/imagesx"),
        Decision::Reject(_)
    ));
    assert_eq!(p.evaluate("oci", "/srv/oci:v1"), Decision::Accept);
    assert!(matches!(
        p.evaluate("oci", "/srv/oci:v2"),
        Decision::Reject(_)
    ));
    assert!(matches!(
        p.evaluate("docker-archive", "/x.tar"),
        Decision::Reject(_)
    ));
}

#[test]
fn reject_message_names_the_image() {
    let p = parse(r#"{"default": [{"type": "reject"}]}"#).unwrap();
    assert_eq!(
        p.evaluate("docker", "127.0.0.1:5055/foo/x:v1"),
        Decision::Reject(
            "Running image docker://127.0.0.1:5055/foo/x:v1 is rejected by policy.".into()
        )
    );
    let p =
        parse(r#"{"default": [{"type": "insecureAcceptAnything"}, {"type": "reject"}]}"#).unwrap();
    assert!(matches!(p.evaluate("dir", "/x"), Decision::Reject(_)));
}

#[test]
fn docker_identity_is_the_full_reference() {
    let id = |s: &str| docker_identity(&s.parse().unwrap());
    assert_eq!(id("busybox"), "docker.io/library/busybox:latest");
    assert_eq!(id("quay.io/a/b:1"), "quay.io/a/b:1");
    let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_eq!(
        id(&format!("quay.io/a/b:1@{d}")),
        format!("quay.io/a/b@{d}")
    );
    assert_eq!(
        docker_namespaces("a.b.example.com:5000/ns/repo:tag"),
        [
            "a.b.example.com:5000/ns/repo",
            "a.b.example.com:5000/ns",
            "a.b.example.com:5000",
            "*.b.example.com",
            "*.example.com",
            "*.com"
        ]
    );
}

#[test]
fn requirements_parse_fully() {
    let p = parse(
        r#"{"default": [
        {"type": "signedBy", "keyType": "GPGKeys", "keyPaths": ["/a", "/b"],
         "signedIdentity": {"type": "exactReference", "dockerReference": "quay.io/a/b:1"}},
        {"type": "signedBy", "keyType": "signedByX509CAs", "keyData": "AAEC",
         "signedIdentity": {"type": "remapIdentity", "prefix": "mirror.example:5000/vendor",
                            "signedPrefix": "vendor.example.com"}},
        {"type": "sigstoreSigned", "fulcio": {"caPath": "/ca", "oidcIssuer": "https://i",
         "subjectEmail": "a@b"}, "rekorPublicKeyPath": "/rekor"},
        {"type": "sigstoreSigned", "keyDatas": ["AAEC"],
         "signedIdentity": {"type": "exactRepository", "dockerRepository": "quay.io/a/b"}}
    ]}"#,
    )
    .unwrap();
    let reqs = p.requirements_for("docker", "x.example/y:1");
    assert_eq!(
        reqs[0],
        Requirement::SignedBy(SignedBy {
            key_type: KeyType::GpgKeys,
            keys: Keys::Paths(vec!["/a".into(), "/b".into()]),
            signed_identity: SignedIdentity::ExactReference("quay.io/a/b:1".parse().unwrap()),
        })
    );
    assert!(matches!(&reqs[1], Requirement::SignedBy(s) if s.keys == Keys::Data(vec![0, 1, 2])));
    assert!(matches!(&reqs[2], Requirement::SigstoreSigned(s)
        if matches!(s.keys, SigstoreKeys::Fulcio(_))
        && s.signed_identity == SignedIdentity::MatchRepoDigestOrExact));
    assert!(matches!(&reqs[3], Requirement::SigstoreSigned(s)
        if s.keys == SigstoreKeys::Keys(Keys::Datas(vec![vec![0, 1, 2]]))));
    assert_eq!(
        p.evaluate("docker", "x.example/y:1"),
        Decision::NeedsSignature
    );
}

#[test]
fn strict_parsing_rejects_the_whole_file() {
    for bad in [
        r#"{"default": [{"type": "reject"}], "extra": 1}"#,
        r#"{"transports": {}}"#,
        r#"{"default": []}"#,
        r#"{"default": [{"type": "reject", "why": "x"}]}"#,
        r#"{"default": [{"type": "insecureAcceptAnything", "keyPath": "/k"}]}"#,
        r#"{"default": [{"type": "acceptSometimes"}]}"#,
        r#"{"default": [{}]}"#,
        r#"{"default": [{"type": "signedBy", "keyPath": "/k"}]}"#,
        r#"{"default": [{"type": "signedBy", "keyType": "PGP", "keyPath": "/k"}]}"#,
        r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys"}]}"#,
        r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k", "keyData": "AA=="}]}"#,
        r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPaths": []}]}"#,
        r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyData": "%%"}]}"#,
        r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k", "signedIdentity": {"type": "matchExact", "x": 1}}]}"#,
        r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k", "signedIdentity": {"type": "exactReference", "dockerReference": "quay.io/a/b"}}]}"#,
        r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k", "signedIdentity": {"type": "remapIdentity", "prefix": "busybox", "signedPrefix": "x.example"}}]}"#,
        r#"{"default": [{"type": "sigstoreSigned"}]}"#,
        r#"{"default": [{"type": "sigstoreSigned", "fulcio": {"caPath": "/ca", "oidcIssuer": "i", "subjectEmail": "e"}}]}"#,
        r#"{"default": [{"type": "sigstoreSigned", "keyPath": "/k", "fulcio": {"caPath": "/ca", "oidcIssuer": "i", "subjectEmail": "e"}, "rekorPublicKeyPath": "/r"}]}"#,
        r#"{"default": [{"type": "reject"}], "transports": {"docker": {"a": [{"type": "reject"}], "a": [{"type": "reject"}]}}}"#,
        r#"{"default": [{"type": "reject"}], "transports": {"dir": {"relative": [{"type": "reject"}]}}}"#,
        r#"{"default": [{"type": "reject"}], "transports": {"dir": {"/": [{"type": "reject"}]}}}"#,
        r#"{"default": [{"type": "reject"}], "transports": {"dir": {"/a/../b": [{"type": "reject"}]}}}"#,
        r#"{"default": [{"type": "reject"}], "transports": {"docker-archive": {"/a.tar": [{"type": "reject"}]}}}"#,
        // A key twice in a requirement, at any depth (the last one won).
        r#"{"default": [{"type": "reject", "type": "insecureAcceptAnything"}]}"#,
        r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k", "keyPath": "/other"}]}"#,
        r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k", "signedIdentity": {"type": "matchExact", "type": "matchRepository"}}]}"#,
        "{not json",
    ] {
        let err = parse(bad).expect_err(bad);
        assert!(err.to_string().contains("/p/policy.json"), "{bad}: {err}");
    }
}

#[test]
fn load_prefers_the_user_file_and_needs_one() {
    let t = tempfile::tempdir().unwrap();
    let env = Env::under(t.path());
    let system = t.path().join("etc/containers/policy.json");
    let err = Policy::load(&env, None).unwrap_err();
    assert!(matches!(&err, PolicyError::Io { path, .. } if *path == system));
    std::fs::create_dir_all(system.parent().unwrap()).unwrap();
    std::fs::write(&system, r#"{"default": [{"type": "reject"}]}"#).unwrap();
    assert!(matches!(
        Policy::load(&env, None)
            .unwrap()
            .evaluate("docker", "a/b:1"),
        Decision::Reject(_)
    ));
    let user = t.path().join("home/.config/containers/policy.json");
    std::fs::create_dir_all(user.parent().unwrap()).unwrap();
    std::fs::write(
        &user,
        r#"{"default": [{"type": "insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    assert_eq!(Policy::default_path(&env), user);
    assert_eq!(
        Policy::load(&env, None)
            .unwrap()
            .evaluate("docker", "a/b:1"),
        Decision::Accept
    );
    assert!(matches!(
        Policy::load(&env, Some(&system))
            .unwrap()
            .evaluate("docker", "a/b:1"),
        Decision::Reject(_)
    ));
}

#[test]
fn scope_of_names_where_the_requirements_came_from() {
    let p = parse(SCOPED).unwrap();
    assert_eq!(
        p.scope_of("docker", "reg.example/team/other:v1"),
        r#"transports.docker["reg.example/team"]"#
    );
    assert_eq!(
        p.scope_of("docker", "elsewhere.test/x:v1"),
        r#"transports.docker[""]"#
    );
    assert_eq!(p.scope_of("oci-archive", "/x.tar"), "default");
}

/// The local store is judged as containers/image judges containers-storage: the
/// image, its repository and namespaces within the store, the store, then `""`.
#[test]
fn the_local_store_is_scoped_like_containers_storage() {
    let p = parse(
        r#"{"default": [{"type": "reject"}],
            "transports": {"containers-storage": {
              "[/s]reg.example/team": [{"type": "insecureAcceptAnything"}],
              "[/s]reg.example/team/app:pinned": [{"type": "reject"}],
              "[/other]": [{"type": "insecureAcceptAnything"}]
            }}}"#,
    )
    .unwrap();
    let storage = |id: &str| p.evaluate("containers-storage", id);
    assert_eq!(storage("[/s]reg.example/team/app:v1"), Decision::Accept);
    assert!(matches!(
        storage("[/s]reg.example/team/app:pinned"),
        Decision::Reject(_)
    ));
    assert!(matches!(
        storage("[/s]reg.example/x:v1"),
        Decision::Reject(_)
    ));
    assert_eq!(storage("[/other]reg.example/x:v1"), Decision::Accept);
    assert_eq!(
        storage_namespaces("[/s]h:5000/ns/repo@sha256:00"),
        ["[/s]h:5000/ns/repo", "[/s]h:5000/ns", "[/s]h:5000", "[/s]"]
    );
}
