//! The metadata store's contract, run against both implementations: SQLite (the
//! embedded default) and PostgreSQL (a throw-away cluster, berth-testenv). Whatever
//! the registry relies on holds the same on each.

mod common;

use berth_image::Digest;
use berth_store::{NewManifest, SignatureAdded, StoreError, StoredSignature};
use common::{Backend, Meta};

on_each_backend!(
    immutable_tags_are_checked_inside_the_write,
    usage_counts_each_blob_once_per_namespace,
    signatures_belong_to_a_manifest_and_go_with_it,
    manifests_need_their_blobs,
    proxied_manifests_need_nothing_and_links_age_in_order,
    tags_paginate_and_delete,
    manifests_are_listed_page_by_page_across_repositories,
    recent_tags_are_the_newest_set_ties_by_name,
    parents_are_the_indexes_naming_a_child_in_the_repository,
    referrers_by_subject,
    upload_state_is_replaced_only_from_what_it_was
);

fn d(n: u8) -> Digest {
    Digest::sha256_of(&[n])
}

fn manifest(digest: Digest, blobs: Vec<Digest>, subject: Option<Digest>) -> NewManifest {
    NewManifest {
        digest,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        content: b"{}".to_vec(),
        blobs,
        manifests: vec![],
        subject,
        artifact_type: Some("t/x".into()),
        annotations: None,
    }
}

fn immutable_tags_are_checked_inside_the_write(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let m = Meta::open(backend, dir.path());
    let (a, b) = (manifest(d(1), vec![], None), manifest(d(2), vec![], None));
    m.put_manifest_guarded("ns/app", &a, Some("v1"), true, None)
        .unwrap();
    // The same manifest again is fine (a retried push); another is not.
    m.put_manifest_guarded("ns/app", &a, Some("v1"), true, None)
        .unwrap();
    let e = m.put_manifest_guarded("ns/app", &b, Some("v1"), true, None);
    assert!(
        matches!(e, Err(StoreError::TagImmutable(ref t)) if t == "v1"),
        "{e:?}"
    );
    assert_eq!(
        m.manifest_by_tag("ns/app", "v1").unwrap().unwrap().digest,
        d(1)
    );
    // Not immutable: it moves.
    m.put_manifest_guarded("ns/app", &b, Some("v1"), false, None)
        .unwrap();
    assert_eq!(
        m.manifest_by_tag("ns/app", "v1").unwrap().unwrap().digest,
        d(2)
    );
    // A manifest carrying an immutable tag stays, with its tag.
    let e = m.delete_manifest_guarded("ns/app", &d(2), &|t| t == "v1");
    assert!(matches!(e, Err(StoreError::TagImmutable(_))), "{e:?}");
    assert!(m.manifest_by_tag("ns/app", "v1").unwrap().is_some());
    assert!(m
        .delete_manifest_guarded("ns/app", &d(2), &|t| t == "v2")
        .unwrap());

    // A blob of an image under an immutable tag, directly or through an index, stays
    // linked; under a mutable tag it goes.
    m.link_blob("ns/app", &d(5), 10, &|| true).unwrap();
    m.put_manifest("ns/app", &manifest(d(6), vec![d(5)], None), None)
        .unwrap();
    let mut index = manifest(d(7), vec![], None);
    index.manifests = vec![d(6)];
    m.put_manifest("ns/app", &index, Some("v3")).unwrap();
    let e = m.unlink_blob_guarded("ns/app", &d(5), &|t| t == "v3");
    assert!(
        matches!(e, Err(StoreError::BlobOfImmutable { ref tag, ref manifest, .. })
            if tag == "v3" && *manifest == d(7).to_string()),
        "{e:?}"
    );
    assert!(m.blob_in_repo("ns/app", &d(5)).unwrap().is_some());
    // The same questions read only: what the tags on a manifest are, and whether one
    // on it or above it is immutable.
    assert_eq!(m.tags_on("ns/app", &d(7)).unwrap(), ["v3"]);
    assert!(m.tags_on("ns/app", &d(6)).unwrap().is_empty());
    let e = m.check_immutable("ns/app", &d(6), &|t| t == "v3");
    assert!(
        matches!(e, Err(StoreError::ChildOfImmutable { .. })),
        "{e:?}"
    );
    assert!(m.check_immutable("ns/app", &d(6), &|t| t == "v1").is_ok());
    assert!(m.check_immutable("none", &d(6), &|_| true).is_ok());
    assert!(m
        .unlink_blob_guarded("ns/app", &d(5), &|t| t == "v1")
        .unwrap());
    assert!(m.blob_in_repo("ns/app", &d(5)).unwrap().is_none());
}

fn usage_counts_each_blob_once_per_namespace(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let m = Meta::open(backend, dir.path());
    let yes = || true;
    m.link_blob("ns/a", &d(1), 100, &yes).unwrap();
    m.link_blob("ns/b", &d(1), 100, &yes).unwrap();
    m.link_blob("ns/b/c", &d(2), 20, &yes).unwrap();
    m.link_blob("ns0/x", &d(3), 5, &yes).unwrap();
    m.link_blob("other", &d(1), 100, &yes).unwrap();
    assert_eq!(m.namespace_usage("ns").unwrap(), 120);
    assert_eq!(m.namespace_usage("ns0").unwrap(), 5);
    assert_eq!(m.namespace_usage("none").unwrap(), 0);
    assert_eq!(
        m.usage().unwrap(),
        [("ns".into(), 120), ("ns0".into(), 5), ("other".into(), 100)]
    );
    assert!(m.blob_in_namespace("ns", &d(2)).unwrap());
    assert!(!m.blob_in_namespace("ns", &d(3)).unwrap());
    // Within a quota: a new blob over it is refused in the transaction, one the
    // namespace holds is free.
    let e = m.link_blob_within("ns/d", &d(4), 81, &yes, Some(("ns", 200)));
    assert!(
        matches!(e, Err(StoreError::QuotaExceeded { used: 120, .. })),
        "{e:?}"
    );
    assert!(!m.blob_in_namespace("ns", &d(4)).unwrap());
    m.link_blob_within("ns/d", &d(1), 100, &yes, Some(("ns", 120)))
        .unwrap();
    m.link_blob_within("ns/d", &d(4), 80, &yes, Some(("ns", 200)))
        .unwrap();
    assert_eq!(m.namespace_usage("ns").unwrap(), 200);

    // Manifests count too, once per namespace (each is 2 bytes here): one over the
    // quota is refused in the transaction, one the namespace holds is free, and a
    // digest that is both blob and manifest counts once.
    let mf = |n| manifest(d(n), vec![], None);
    let e = m.put_manifest_guarded("ns/a", &mf(10), Some("v1"), false, Some(("ns", 201)));
    assert!(
        matches!(
            e,
            Err(StoreError::QuotaExceeded {
                used: 200,
                size: 2,
                ..
            })
        ),
        "{e:?}"
    );
    assert!(m.manifest_by_tag("ns/a", "v1").unwrap().is_none());
    m.put_manifest_guarded("ns/a", &mf(10), Some("v1"), false, Some(("ns", 202)))
        .unwrap();
    m.put_manifest_guarded("ns/b", &mf(10), Some("v1"), false, Some(("ns", 202)))
        .unwrap();
    assert_eq!(m.namespace_usage("ns").unwrap(), 202);
    m.put_manifest("ns/a", &mf(12), None).unwrap();
    m.link_blob("ns/b", &d(12), 2, &yes).unwrap();
    m.put_manifest("other", &mf(11), None).unwrap();
    assert_eq!(m.namespace_usage("ns").unwrap(), 204);
    assert_eq!(
        m.usage().unwrap(),
        [("ns".into(), 204), ("ns0".into(), 5), ("other".into(), 102)]
    );
}

fn signatures_belong_to_a_manifest_and_go_with_it(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let m = Meta::open(backend, dir.path());
    let sig = |name: &str, content: &[u8]| StoredSignature {
        name: name.into(),
        content: content.to_vec(),
    };
    // No manifest, no signature (and no repository created by trying).
    let err = m.add_signature("a/b", &d(9), &sig("x@1", b"s1"), 8);
    assert!(matches!(err, Err(StoreError::MissingManifest(_))));
    assert!(!m.repository_exists("a/b").unwrap());

    m.put_manifest("a/b", &manifest(d(9), vec![], None), Some("v1"))
        .unwrap();
    assert_eq!(
        m.add_signature("a/b", &d(9), &sig("x@1", b"s1"), 2)
            .unwrap(),
        SignatureAdded::Added
    );
    assert_eq!(
        m.add_signature("a/b", &d(9), &sig("x@1", b"s1"), 2)
            .unwrap(),
        SignatureAdded::Unchanged
    );
    assert_eq!(
        m.add_signature("a/b", &d(9), &sig("x@1", b"other"), 2)
            .unwrap(),
        SignatureAdded::NameTaken
    );
    assert_eq!(
        m.add_signature("a/b", &d(9), &sig("x@2", b"s2"), 2)
            .unwrap(),
        SignatureAdded::Added
    );
    assert_eq!(
        m.add_signature("a/b", &d(9), &sig("x@3", b"s3"), 2)
            .unwrap(),
        SignatureAdded::Full
    );
    let got = m.signatures("a/b", &d(9)).unwrap();
    assert_eq!(got, vec![sig("x@1", b"s1"), sig("x@2", b"s2")]);
    // Asked of many at once: the signed ones, in the order asked, up to the limit.
    m.put_manifest("a/b", &manifest(d(8), vec![], None), Some("v2"))
        .unwrap();
    m.add_signature("a/b", &d(8), &sig("y@1", b"s"), 2).unwrap();
    m.put_manifest("a/b", &manifest(d(7), vec![], None), Some("v3"))
        .unwrap();
    assert_eq!(
        m.signed_manifests("a/b", &[d(7), d(9), d(8)], 10).unwrap(),
        [d(9), d(8)]
    );
    assert_eq!(
        m.signed_manifests("a/b", &[d(7), d(9), d(8)], 1)
            .unwrap()
            .len(),
        1
    );
    assert!(m.signed_manifests("a/b", &[d(7)], 10).unwrap().is_empty());
    assert!(m.signed_manifests("c/d", &[d(9)], 10).unwrap().is_empty());
    assert!(m.signed_manifests("a/b", &[], 10).unwrap().is_empty());
    // Another repository holding no such manifest sees none and may add none.
    assert!(m.signatures("c/d", &d(9)).unwrap().is_empty());

    // Deleted one by name, or all of one manifest's; nothing of another's, or of
    // another repository.
    assert_eq!(m.delete_signatures("c/d", &d(9), None).unwrap(), 0);
    assert_eq!(m.delete_signatures("a/b", &d(9), Some("x@9")).unwrap(), 0);
    assert_eq!(m.delete_signatures("a/b", &d(9), Some("x@1")).unwrap(), 1);
    assert_eq!(m.signatures("a/b", &d(9)).unwrap(), vec![sig("x@2", b"s2")]);
    assert_eq!(
        m.add_signature("a/b", &d(9), &sig("x@3", b"s3"), 2)
            .unwrap(),
        SignatureAdded::Added,
        "a deleted signature's slot is free again"
    );
    assert_eq!(m.delete_signatures("a/b", &d(9), None).unwrap(), 2);
    assert!(m.signatures("a/b", &d(9)).unwrap().is_empty());
    assert_eq!(m.signatures("a/b", &d(8)).unwrap(), vec![sig("y@1", b"s")]);
    m.add_signature("a/b", &d(9), &sig("x@1", b"s1"), 2)
        .unwrap();

    assert!(m.delete_manifest("a/b", &d(9)).unwrap());
    assert!(m.signatures("a/b", &d(9)).unwrap().is_empty());
}

fn manifests_need_their_blobs(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let m = Meta::open(backend, dir.path());
    let err = m.put_manifest("a/b", &manifest(d(9), vec![d(1)], None), Some("v1"));
    assert!(matches!(err, Err(StoreError::MissingBlob(_))));
    // The failed push stored nothing.
    assert!(m.tags("a/b", None, 10).unwrap().is_empty());
    m.link_blob("a/b", &d(1), 10, &|| true).unwrap();
    m.put_manifest("a/b", &manifest(d(9), vec![d(1)], None), Some("v1"))
        .unwrap();
    assert_eq!(
        m.manifest_by_tag("a/b", "v1").unwrap().unwrap().digest,
        d(9)
    );
    assert_eq!(m.repositories(None, 10).unwrap(), vec!["a/b".to_string()]);
    // Another repository cannot read the blob.
    assert_eq!(m.blob_in_repo("c", &d(1)).unwrap(), None);
    assert_eq!(m.blob_known(&d(1)).unwrap(), Some(10));
}

fn proxied_manifests_need_nothing_and_links_age_in_order(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let m = Meta::open(backend, dir.path());
    // A cache's copy: its blob is fetched later.
    m.put_proxied_manifest("up/a", &manifest(d(9), vec![d(1)], None), Some("v1"))
        .unwrap();
    let (digest, at) = m.tag_set_at("up/a", "v1").unwrap().unwrap();
    assert_eq!(digest, d(9));
    assert!(at > 0);
    assert_eq!(m.tag_set_at("up/a", "v2").unwrap(), None);
    for (repo, blob) in [("up/a", 1), ("up/b", 2), ("other", 3)] {
        m.link_blob(repo, &d(blob), 10 * blob as u64, &|| true)
            .unwrap();
    }
    m.sql(&format!(
        "UPDATE repository_blobs SET created_at = 100 WHERE digest = '{}'",
        d(2)
    ));
    let oldest = m.oldest_links("up", None, 10).unwrap();
    let got: Vec<(&str, Digest, u64)> = oldest
        .iter()
        .map(|(r, d, s, _)| (r.as_str(), d.clone(), *s))
        .collect();
    assert_eq!(got, [("up/b", d(2), 20), ("up/a", d(1), 10)]);
    assert_eq!(m.oldest_links("up", None, 1).unwrap().len(), 1);
    // Page by page from a cursor: links of one time by repository, then digest, so
    // a page of links the cache must keep is stepped over, not read again.
    m.link_blob("up/a", &d(4), 40, &|| true).unwrap();
    m.link_blob("up/c", &d(5), 50, &|| true).unwrap();
    m.sql("UPDATE repository_blobs SET created_at = 200 WHERE created_at > 200");
    let mut seen = Vec::new();
    let mut after: Option<(i64, String, Digest)> = None;
    loop {
        let cursor = after.as_ref().map(|(at, r, d)| (*at, r.as_str(), d));
        let page = m.oldest_links("up", cursor, 2).unwrap();
        let Some((r, d, _, at)) = page.last() else {
            break;
        };
        after = Some((*at, r.clone(), d.clone()));
        seen.extend(page.into_iter().map(|(r, d, _, at)| (r, d, at)));
    }
    let mut in_a = [d(1), d(4)];
    in_a.sort_by_key(|d| d.to_string());
    let want = [
        ("up/b".to_string(), d(2), 100),
        ("up/a".to_string(), in_a[0].clone(), 200),
        ("up/a".to_string(), in_a[1].clone(), 200),
        ("up/c".to_string(), d(5), 200),
    ];
    assert_eq!(seen, want);
}

fn tags_paginate_and_delete(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let m = Meta::open(backend, dir.path());
    for t in ["c", "a", "b"] {
        m.put_manifest("r", &manifest(d(1), vec![], None), Some(t))
            .unwrap();
    }
    assert_eq!(m.tags("r", None, 2).unwrap(), ["a", "b"]);
    assert_eq!(m.tags("r", Some("b"), 2).unwrap(), ["c"]);
    assert!(m.delete_tag("r", "a").unwrap());
    assert!(!m.delete_tag("r", "a").unwrap());
    // Retention's fence: a tag set again (another digest or time) stays.
    let (_, _, at) = m.recent_tags("r", 10).unwrap().remove(0);
    assert!(!m.delete_tag_if("r", "b", &d(2), at).unwrap());
    assert!(!m.delete_tag_if("r", "b", &d(1), at - 1).unwrap());
    assert!(!m.delete_tag_if("nowhere", "b", &d(1), at).unwrap());
    assert!(m.delete_tag_if("r", "b", &d(1), at).unwrap());
    assert_eq!(m.tags("r", None, 10).unwrap(), ["c"]);
    assert!(m.delete_manifest("r", &d(1)).unwrap());
    assert!(m.tags("r", None, 10).unwrap().is_empty());
}

fn manifests_are_listed_page_by_page_across_repositories(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let m = Meta::open(backend, dir.path());
    m.put_manifest("b", &manifest(d(1), vec![], None), Some("t"))
        .unwrap();
    m.put_manifest("a", &manifest(d(2), vec![], None), None)
        .unwrap();
    m.put_manifest("a", &manifest(d(1), vec![], None), None)
        .unwrap();
    let first = m.manifests_after(None, 2).unwrap();
    let names: Vec<_> = first
        .iter()
        .map(|e| (e.repository.as_str(), e.digest.clone()))
        .collect();
    assert_eq!(names, [("a", d(1)), ("a", d(2))]);
    let last = first.last().unwrap();
    let rest = m
        .manifests_after(Some((&last.repository, &last.digest.to_string())), 2)
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(
        (rest[0].repository.as_str(), rest[0].digest.clone()),
        ("b", d(1))
    );
    let tags = m.recent_tags("b", 10).unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!((tags[0].0.as_str(), tags[0].1.clone()), ("t", d(1)));
}

fn recent_tags_are_the_newest_set_ties_by_name(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let m = Meta::open(backend, dir.path());
    for (i, tag) in ["a", "b", "c", "d"].iter().enumerate() {
        m.put_manifest("r", &manifest(d(i as u8 + 1), vec![], None), Some(tag))
            .unwrap();
    }
    m.put_manifest("other", &manifest(d(9), vec![], None), Some("z"))
        .unwrap();
    // When each was set: b newest, then a and d together, then c.
    for (tag, at) in [("a", 20), ("b", 30), ("c", 10), ("d", 20)] {
        m.sql(&format!(
            "UPDATE tags SET updated_at = {at} WHERE name = '{tag}'"
        ));
    }
    let names = |n| -> Vec<(String, i64)> {
        m.recent_tags("r", n)
            .unwrap()
            .into_iter()
            .map(|(t, _, at)| (t, at))
            .collect()
    };
    let want = [("b", 30), ("d", 20), ("a", 20), ("c", 10)].map(|(t, at)| (t.to_string(), at));
    assert_eq!(names(10), want);
    assert_eq!(names(2), want[..2]);
    let (_, digest, _) = &m.recent_tags("r", 1).unwrap()[0];
    assert_eq!(*digest, d(2));
    assert!(m.recent_tags("none", 5).unwrap().is_empty());
}

fn parents_are_the_indexes_naming_a_child_in_the_repository(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let m = Meta::open(backend, dir.path());
    m.put_manifest("r", &manifest(d(1), vec![], None), None)
        .unwrap();
    m.put_manifest("other", &manifest(d(1), vec![], None), None)
        .unwrap();
    let mut index = manifest(d(2), vec![], None);
    index.manifests = vec![d(1)];
    m.put_manifest("other", &index, None).unwrap();
    assert!(m.parent_manifests("r", &d(1), 10).unwrap().is_empty());
    m.put_manifest("r", &index, None).unwrap();
    assert_eq!(m.parent_manifests("r", &d(1), 10).unwrap(), vec![d(2)]);
    assert!(m.parent_manifests("r", &d(2), 10).unwrap().is_empty());

    // Signed parents come first, however many unsigned ones sort before them: one
    // with a stored signature, one with a sigstore attachment's tag.
    let mut parents: Vec<Digest> = (10..20).map(d).collect();
    for p in &parents {
        let mut index = manifest(p.clone(), vec![], None);
        index.manifests = vec![d(1)];
        m.put_manifest("r", &index, None).unwrap();
    }
    parents.push(d(2));
    parents.sort_by_key(|p| p.to_string());
    let (stored, attached) = (parents[10].clone(), parents[9].clone());
    let sig = StoredSignature {
        name: "s@1".into(),
        content: b"s".to_vec(),
    };
    m.add_signature("r", &stored, &sig, 4).unwrap();
    m.put_manifest("r", &manifest(d(30), vec![], None), None)
        .unwrap();
    let tag = format!("sha256-{}.sig", attached.hex());
    m.put_manifest("r", &manifest(d(30), vec![], None), Some(&tag))
        .unwrap();
    let mut signed = vec![attached, stored];
    signed.sort_by_key(|p| p.to_string());
    assert_eq!(m.parent_manifests("r", &d(1), 2).unwrap(), signed);
    assert_eq!(m.parent_manifests("r", &d(1), 3).unwrap()[2], parents[0]);
}

fn referrers_by_subject(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let m = Meta::open(backend, dir.path());
    m.put_manifest("r", &manifest(d(2), vec![], Some(d(1))), None)
        .unwrap();
    let all = |repo, t| m.referrers(repo, &d(1), t, None, 100).unwrap();
    assert_eq!(all("r", None).len(), 1);
    assert_eq!(all("r", Some("t/x")).len(), 1);
    assert_eq!(all("r", Some("t/y")).len(), 0);
    assert_eq!(all("other", None).len(), 0);
    // Pages: oldest first, each after where the last ended; long annotations left out.
    for n in 3..8 {
        let mut r = manifest(d(n), vec![], Some(d(1)));
        // Over the bound: in characters, and in bytes alone (two-byte characters).
        let max = berth_store::MAX_REFERRER_ANNOTATIONS;
        r.annotations = Some(match n {
            5 => format!(r#"{{"a":"{}"}}"#, "x".repeat(max)),
            6 => format!(r#"{{"a":"{}"}}"#, "é".repeat(max / 2 + 1)),
            _ => r#"{"a":"b"}"#.into(),
        });
        m.put_manifest("r", &r, None).unwrap();
    }
    let every = all("r", None);
    assert_eq!(every.len(), 6);
    let mut paged = Vec::new();
    let mut after: Option<(i64, Digest)> = None;
    loop {
        let page = m
            .referrers("r", &d(1), None, after.as_ref().map(|(t, d)| (*t, d)), 4)
            .unwrap();
        after = page.last().map(|r| (r.created_at, r.digest.clone()));
        let done = page.len() < 4;
        paged.extend(page);
        if done {
            break;
        }
    }
    let digests =
        |rs: &[berth_store::Referrer]| rs.iter().map(|r| r.digest.clone()).collect::<Vec<_>>();
    assert_eq!(digests(&paged), digests(&every));
    for r in every.iter().filter(|r| r.digest != d(2)) {
        let long = r.digest == d(5) || r.digest == d(6);
        assert_eq!(r.annotations.is_none(), long, "{}", r.digest);
    }
}

/// The compare-and-set two replicas rely on when chunks of one session reach both;
/// repeating a call that succeeded (the pool retries one whose connection closed, which
/// may be after its commit) succeeds again and changes nothing.
fn upload_state_is_replaced_only_from_what_it_was(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let m = Meta::open(backend, dir.path());
    assert!(
        !m.set_upload_state("nope", None, "s1").unwrap(),
        "no such session"
    );
    m.create_upload("u", "r").unwrap();
    assert_eq!(m.upload("u").unwrap().unwrap().state, None);
    assert!(m.set_upload_state("u", None, "s1").unwrap());
    assert!(
        !m.set_upload_state("u", None, "s2").unwrap(),
        "it has one now"
    );
    assert!(!m.set_upload_state("u", Some("s0"), "s2").unwrap(), "stale");
    assert!(m.set_upload_state("u", Some("s1"), "s2").unwrap());
    assert_eq!(m.upload("u").unwrap().unwrap().state.as_deref(), Some("s2"));
    // The same change again (a call retried after its answer was lost): it is there.
    assert!(
        m.set_upload_state("u", Some("s1"), "s2").unwrap(),
        "repeated"
    );
    m.create_upload("u", "r").unwrap();
    assert_eq!(
        m.upload("u").unwrap().unwrap().state.as_deref(),
        Some("s2"),
        "creating a session again changes nothing"
    );
    // Sessions are opened within a bound per namespace ("r" and "r/x" are one,
    // "r2" another): nothing is recorded past it.
    assert!(m.create_upload_bounded("v", "r/x", 3).unwrap());
    assert!(m.create_upload_bounded("w", "r2/x", 1).unwrap());
    assert!(!m.create_upload_bounded("x", "r/y", 2).unwrap(), "u and v");
    assert!(m.upload("x").unwrap().is_none());
    assert!(m.create_upload_bounded("x", "r/y", 3).unwrap());
    assert!(!m.create_upload_bounded("y", "r2", 1).unwrap());
    m.delete_upload("u").unwrap();
    assert!(m.upload("u").unwrap().is_none());
    assert!(m.create_upload_bounded("y", "r", 3).unwrap(), "u's place");
    m.create_upload("u", "r").unwrap();
    assert_eq!(
        m.upload("u").unwrap().unwrap().state,
        None,
        "gone with its session"
    );
}

/// A database migrated by a newer berth is refused at start, with what to do; one of
/// this version is opened again as it is.
#[test]
fn postgres_refuses_a_newer_schema() {
    let url = berth_testenv::Postgres::shared().database();
    let options = berth_store::PgOptions::default();
    drop(berth_store::PgMeta::connect(&url, &options).unwrap());
    drop(berth_store::PgMeta::connect(&url, &options).unwrap());
    let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    c.batch_execute("INSERT INTO berth_schema (version) VALUES (99)")
        .unwrap();
    match berth_store::PgMeta::connect(&url, &options) {
        Err(e @ StoreError::SchemaTooNew { found: 99, .. }) => {
            assert!(e.to_string().contains("upgrade berth"), "{e}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a newer schema was opened"),
    }
}

/// Replicas on one PostgreSQL database hear each other's changes (`MetaStore::watch`):
/// a push, a signature, a tag's and a manifest's delete and the collector's sweep, each
/// only once it commits, never their own, and after the listening connection is cut
/// (`pg_terminate_backend`) a `Missed`, since what was notified meanwhile is lost.
#[test]
fn postgres_replicas_hear_each_others_changes() {
    use berth_store::{MetaChange, MetaStore, Watched};
    use std::sync::mpsc;
    use std::time::Duration;

    let url = berth_testenv::Postgres::shared().database();
    let options = berth_store::PgOptions::default();
    let a = berth_store::PgMeta::connect(&url, &options).unwrap();
    let b = berth_store::PgMeta::connect(&url, &options).unwrap();
    let (tx, heard) = mpsc::channel();
    let _watch = b
        .watch(Box::new(move |w| {
            let _ = tx.send(w);
        }))
        .unwrap()
        .expect("PostgreSQL is shared");
    let next = || {
        heard
            .recv_timeout(Duration::from_secs(5))
            .expect("heard in time")
    };
    let change = |c| Watched::Change(c);
    let repository = || "ns/app".to_string();

    // A push fails (a missing blob) and says nothing; then one that commits.
    assert!(a
        .put_manifest("ns/app", &manifest(d(9), vec![d(1)], None), Some("v1"))
        .is_err());
    a.link_blob("ns/app", &d(1), 10, &|| true).unwrap();
    a.put_manifest("ns/app", &manifest(d(9), vec![d(1)], None), Some("v1"))
        .unwrap();
    assert_eq!(
        next(),
        change(MetaChange::ManifestStored {
            repository: repository(),
            digest: d(9)
        })
    );
    // b's own push is not reported to b.
    b.put_manifest("ns/app", &manifest(d(8), vec![], None), Some("v2"))
        .unwrap();
    let sig = StoredSignature {
        name: "s1".into(),
        content: b"sig".to_vec(),
    };
    assert_eq!(
        a.add_signature("ns/app", &d(9), &sig, 4).unwrap(),
        SignatureAdded::Added
    );
    assert_eq!(
        next(),
        change(MetaChange::Signed {
            repository: repository()
        })
    );
    // Deleting nothing says nothing; deleting one is heard.
    assert_eq!(a.delete_signatures("ns/app", &d(9), Some("s9")).unwrap(), 0);
    assert_eq!(a.delete_signatures("ns/app", &d(9), None).unwrap(), 1);
    assert_eq!(
        next(),
        change(MetaChange::SignaturesDeleted {
            repository: repository()
        })
    );
    assert!(a.delete_tag("ns/app", "v2").unwrap());
    assert_eq!(
        next(),
        change(MetaChange::TagDeleted {
            repository: repository()
        })
    );
    assert!(a.delete_manifest("ns/app", &d(9)).unwrap());
    assert_eq!(
        next(),
        change(MetaChange::ManifestDeleted {
            repository: repository(),
            digest: d(9)
        })
    );
    // The collector's sweep of b's untagged manifest, by a.
    let graph = a.gc_graph().unwrap();
    let garbage: Vec<_> = graph
        .repositories
        .iter()
        .map(|g| berth_store::gc::repo_garbage(g, i64::MAX, false))
        .collect();
    let swept = a.gc_sweep_repositories(&garbage, i64::MAX, false).unwrap();
    assert_eq!(swept[0].manifests.len(), 1, "{swept:?}");
    assert_eq!(
        next(),
        change(MetaChange::ManifestDeleted {
            repository: repository(),
            digest: d(8)
        })
    );
    assert!(heard.try_recv().is_err(), "nothing more");

    // The listening connection cut: b says it may have missed changes, then hears again.
    let mut admin = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .unwrap();
    assert_eq!(next(), Watched::Missed);
    a.put_manifest("ns/app", &manifest(d(7), vec![], None), None)
        .unwrap();
    assert_eq!(
        next(),
        change(MetaChange::ManifestStored {
            repository: repository(),
            digest: d(7)
        })
    );
}

/// PostgreSQL's writers: one within a repository waits for the writers of its
/// namespace and for the collector's (the exclusive lock), never for those of another
/// namespace. Each lock is held here from a connection of the test's own, in a
/// transaction it keeps open.
#[test]
fn postgres_writers_wait_for_their_namespace_and_the_collector_only() {
    use berth_store::MetaStore;
    use std::sync::mpsc;
    use std::time::Duration;
    // postgres.rs's keys: the write lock, and the first key of a namespace's lock.
    const WRITE_LOCK: i64 = 0x6265_7274_686d_6574;
    const NAMESPACE_LOCKS: i32 = 0x6265_7274;
    let url = berth_testenv::Postgres::shared().database();
    let meta = std::sync::Arc::new(
        berth_store::PgMeta::connect(&url, &berth_store::PgOptions::default()).unwrap(),
    );
    let link = |repo: &'static str, n: u8| {
        let (done, finished) = mpsc::channel();
        let meta = meta.clone();
        std::thread::spawn(move || {
            let linked = meta.link_blob_within(repo, &d(n), 1, &|| true, None);
            let _ = done.send(linked.map_err(|e| e.to_string()));
        });
        finished
    };
    let waited = |finished: &mpsc::Receiver<Result<(), String>>| match finished
        .recv_timeout(Duration::from_millis(500))
    {
        Err(mpsc::RecvTimeoutError::Timeout) => true,
        Ok(linked) => {
            linked.unwrap();
            false
        }
        Err(e) => panic!("{e}"),
    };
    let done = |finished: mpsc::Receiver<Result<(), String>>| {
        finished
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap()
    };

    let mut holder = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    let mut tx = holder.transaction().unwrap();
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext('a'))",
        &[&NAMESPACE_LOCKS],
    )
    .unwrap();
    let in_a = link("a/app", 1);
    let in_other = link("b/app", 2);
    done(in_other); // b's write does not wait for a's lock
    assert!(
        waited(&in_a),
        "a write in a went on while a's lock was held"
    );
    // It waits holding the write lock shared (taken first, so that a collector waiting
    // for it exclusively cannot close a cycle). objsubid: 1 for a one-key lock, 2 for
    // a two-key one.
    let mut watcher = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    // The advisory locks of the other sessions, once there are `n` of them (a writer's
    // thread may still be on its way to its lock on a loaded machine), or after 10 s.
    let mut locks = |n: usize| -> Vec<(i32, String, bool)> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let held: Vec<_> = watcher
                .query(
                    "SELECT objsubid::INT, mode, granted FROM pg_locks
                     WHERE locktype = 'advisory' AND database =
                         (SELECT oid FROM pg_database WHERE datname = current_database())
                     AND pid <> pg_backend_pid() ORDER BY 1, 2, 3",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            if held.len() >= n || std::time::Instant::now() > deadline {
                return held;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let lock = |key: i32, mode: &str, granted| (key, mode.to_string(), granted);
    assert_eq!(
        locks(3),
        [
            lock(1, "ShareLock", true),
            lock(2, "ExclusiveLock", false),
            lock(2, "ExclusiveLock", true),
        ],
    );
    tx.commit().unwrap();
    done(in_a);

    let mut tx = holder.transaction().unwrap();
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
        .unwrap();
    let in_other = link("b/app", 3);
    assert!(
        waited(&in_other),
        "a write went on beside the collector's lock"
    );
    assert_eq!(
        locks(2),
        [lock(1, "ExclusiveLock", true), lock(1, "ShareLock", false)]
    );
    tx.commit().unwrap();
    done(in_other);
    for (repo, n) in [("a/app", 1), ("b/app", 2), ("b/app", 3)] {
        assert!(meta.blob_in_repo(repo, &d(n)).unwrap().is_some(), "{repo}");
    }
}
