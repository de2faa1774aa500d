//! The collector and fsck over blob files and each metadata backend (SQLite, and
//! PostgreSQL on a throw-away cluster): each kind of garbage goes, each kind of live
//! content stays, the grace period and the fence hold, the dry run is what happens,
//! and fsck finds and repairs exactly the broken things.

use std::cell::Cell;
use std::time::Duration;

use berth_image::Digest;
use berth_store::gc::{self, GcOptions};
use berth_store::{fsck, BlobStore, NewManifest, StoredSignature};
use common::{Backend, Meta};

mod common;

thread_local! {
    /// The metadata backend of the test running on this thread (each test has one):
    /// the checks build their stores deep inside helpers.
    static BACKEND: Cell<Backend> = const { Cell::new(Backend::Sqlite) };
}

on_each_backend!(
    garbage_goes_and_live_content_stays,
    grace_period_spares_young_content,
    a_grace_past_the_clock_spares_everything,
    keep_untagged_keeps_manifests_and_their_blobs,
    repo_scope_leaves_other_repositories_alone,
    fence_spares_blobs_referenced_after_the_mark,
    link_after_file_removal_fails_cleanly,
    a_named_blob_links_without_looking_at_storage,
    linking_again_renews_the_grace,
    eviction_leaves_a_link_renewed_since_it_read_it,
    fsck_finds_and_repairs_only_broken_things,
    fsck_never_repairs_away_a_blob_it_cannot_read,
    fsck_will_not_repair_where_most_files_are_missing,
    renewed_links_are_spared,
    tombstones_fence_links_while_files_go,
    commits_cut_off_before_their_link_are_recovered,
    young_commit_notes_are_left_to_their_commits,
    untag_plans_as_if_the_tags_were_gone,
    attachment_tags_go_with_their_image
);

struct Store {
    _dir: tempfile::TempDir,
    meta: Meta,
    blobs: BlobStore,
}

/// A store on this test's backend, with its blob files in a new folder.
fn store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    Store {
        meta: Meta::open(BACKEND.get(), dir.path()),
        blobs: BlobStore::open(dir.path()).unwrap(),
        _dir: dir,
    }
}

impl Store {
    /// Stores `bytes` as a blob linked to `repo`; returns its digest.
    fn blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let d = Digest::sha256_of(bytes);
        let id = format!("u{}", &d.hex()[..16]);
        let mut w = self.blobs.create_upload(&id).unwrap();
        w.write(bytes).unwrap();
        let size = self.blobs.commit(w, &d).unwrap();
        let path = self.blobs.path(&d);
        self.meta
            .link_blob(repo, &d, size, &|| path.is_file())
            .unwrap();
        d
    }

    /// Stores a manifest referencing `blobs`, `children` and `subject`.
    fn manifest(
        &self,
        repo: &str,
        name: &str,
        blobs: &[&Digest],
        children: &[&Digest],
        subject: Option<&Digest>,
        tag: Option<&str>,
    ) -> Digest {
        let content = format!("{{\"name\":\"{name}\"}}").into_bytes();
        let d = Digest::sha256_of(&content);
        let m = NewManifest {
            digest: d.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            content,
            blobs: blobs.iter().map(|b| (*b).clone()).collect(),
            manifests: children.iter().map(|b| (*b).clone()).collect(),
            subject: subject.cloned(),
            artifact_type: None,
            annotations: None,
        };
        self.meta.put_manifest(repo, &m, tag).unwrap();
        d
    }

    fn has_manifest(&self, repo: &str, d: &Digest) -> bool {
        self.meta.manifest_by_digest(repo, d).unwrap().is_some()
    }

    fn has_blob(&self, d: &Digest) -> bool {
        self.meta.blob_known(d).unwrap().is_some() && self.blobs.contains(d)
    }

    /// Makes every row look `secs` older than it is (the grace period passing).
    fn age(&self, secs: i64) {
        for t in ["blobs", "repository_blobs", "manifests"] {
            self.meta
                .sql(&format!("UPDATE {t} SET created_at = created_at - {secs}"));
        }
    }

    fn collect(&self, opts: &GcOptions) -> (gc::Plan, gc::Outcome) {
        let plan = gc::plan(self.meta.as_ref(), opts, berth_store::unix_now()).unwrap();
        let out = gc::sweep(self.meta.as_ref(), &self.blobs, &plan).unwrap();
        (plan, out)
    }
}

fn hour() -> GcOptions {
    GcOptions {
        grace: Duration::from_secs(3600),
        ..GcOptions::default()
    }
}

/// A repository with one of everything: returns (store, live, garbage) manifests and blobs.
struct Scene {
    s: Store,
    live_manifests: Vec<Digest>,
    dead_manifests: Vec<Digest>,
    live_blobs: Vec<Digest>,
    dead_blobs: Vec<Digest>,
}

fn scene() -> Scene {
    let s = store();
    let shared = s.blob("app", b"shared layer");
    let a = s.blob("app", b"layer a");
    let b = s.blob("app", b"layer b");
    let c = s.blob("app", b"layer c only in untagged");
    let loose = s.blob("app", b"uploaded, never referenced");
    let tagged = s.manifest("app", "tagged", &[&shared, &a], &[], None, Some("v1"));
    let child = s.manifest("app", "child", &[&b], &[], None, None);
    let index = s.manifest("app", "index", &[], &[&child], None, Some("multi"));
    let sig = s.manifest("app", "sig of tagged", &[], &[], Some(&tagged), None);
    let untagged = s.manifest("app", "untagged", &[&shared, &c], &[], None, None);
    let orphan_ref = s.manifest(
        "app",
        "referrer of untagged",
        &[],
        &[],
        Some(&untagged),
        None,
    );
    let gone_index = s.manifest("app", "untagged index", &[], &[&untagged], None, None);
    s.meta
        .add_signature(
            "app",
            &untagged,
            &StoredSignature {
                name: format!("{untagged}@{}", "0".repeat(32)),
                content: b"sig".to_vec(),
            },
            8,
        )
        .unwrap();
    s.meta
        .add_signature(
            "app",
            &tagged,
            &StoredSignature {
                name: format!("{tagged}@{}", "1".repeat(32)),
                content: b"sig".to_vec(),
            },
            8,
        )
        .unwrap();
    Scene {
        s,
        live_manifests: vec![tagged, child, index, sig],
        dead_manifests: vec![untagged, orphan_ref, gone_index],
        live_blobs: vec![shared, a, b],
        dead_blobs: vec![c, loose],
    }
}

fn garbage_goes_and_live_content_stays(backend: Backend) {
    BACKEND.set(backend);
    let sc = scene();
    sc.s.age(7200);
    let (plan, out) = sc.s.collect(&hour());
    for d in &sc.live_manifests {
        assert!(sc.s.has_manifest("app", d), "live manifest {d} kept");
    }
    for d in &sc.dead_manifests {
        assert!(!sc.s.has_manifest("app", d), "garbage manifest {d} removed");
    }
    for d in &sc.live_blobs {
        assert!(sc.s.has_blob(d), "live blob {d} kept");
    }
    for d in &sc.dead_blobs {
        assert!(!sc.s.has_blob(d), "garbage blob {d} removed");
        assert!(!sc.s.blobs.path(d).exists());
    }
    // The tagged manifest's signature stayed; the untagged one's went with it.
    assert_eq!(
        sc.s.meta
            .signatures("app", &sc.live_manifests[0])
            .unwrap()
            .len(),
        1
    );
    assert!(sc
        .s
        .meta
        .signatures("app", &sc.dead_manifests[0])
        .unwrap()
        .is_empty());
    // The dry run (the plan) is exactly what happened.
    assert_eq!(plan.manifest_count(), out.manifests.len());
    assert_eq!(plan.blobs, out.blobs);
    assert_eq!(out.manifests.len(), 3);
    assert_eq!(out.blobs.len(), 2);
    assert_eq!(
        out.bytes_freed(),
        (b"layer c only in untagged".len() + b"uploaded, never referenced".len()) as u64
    );
    // A second run finds nothing.
    let (plan, _) = sc.s.collect(&hour());
    assert_eq!(
        plan.manifest_count() + plan.blobs.len() + plan.link_count(),
        0
    );
}

fn grace_period_spares_young_content(backend: Backend) {
    BACKEND.set(backend);
    let sc = scene();
    sc.s.age(1800); // half an hour old: inside a one-hour grace
    let (plan, out) = sc.s.collect(&hour());
    assert_eq!(plan.manifest_count() + plan.blobs.len(), 0);
    assert!(out.manifests.is_empty() && out.blobs.is_empty());
    for d in sc.dead_manifests.iter() {
        assert!(sc.s.has_manifest("app", d));
    }
}

/// A grace longer than unix seconds can hold (`--grace 300000000000y`) spares
/// everything: it once wrapped to a cutoff in the future and removed even fresh
/// content. The places a grace is given refuse it ([`gc::check_grace`]).
fn a_grace_past_the_clock_spares_everything(backend: Backend) {
    BACKEND.set(backend);
    let sc = scene();
    sc.s.age(7200);
    for secs in [i64::MAX as u64 + 1, u64::MAX] {
        let grace = Duration::from_secs(secs);
        assert!(gc::check_grace(grace).is_err(), "{secs} s is refused");
        let (plan, out) = sc.s.collect(&GcOptions {
            grace,
            ..GcOptions::default()
        });
        assert_eq!(plan.manifest_count() + plan.blobs.len(), 0, "{secs} s");
        assert!(out.manifests.is_empty() && out.blobs.is_empty());
    }
    for d in sc.dead_manifests.iter() {
        assert!(sc.s.has_manifest("app", d));
    }
    assert!(gc::check_grace(gc::MAX_GRACE).is_ok());
}

fn keep_untagged_keeps_manifests_and_their_blobs(backend: Backend) {
    BACKEND.set(backend);
    let sc = scene();
    sc.s.age(7200);
    let opts = GcOptions {
        keep_untagged: true,
        ..hour()
    };
    let (_, out) = sc.s.collect(&opts);
    for d in sc.live_manifests.iter().chain(&sc.dead_manifests) {
        assert!(sc.s.has_manifest("app", d));
    }
    // Only the blob nothing references went.
    assert_eq!(out.blobs.len(), 1);
    assert!(!sc.s.has_blob(&sc.dead_blobs[1]));
    assert!(sc.s.has_blob(&sc.dead_blobs[0]));
}

fn repo_scope_leaves_other_repositories_alone(backend: Backend) {
    BACKEND.set(backend);
    let sc = scene();
    let other = sc.s.blob("other", b"other loose blob");
    let other_untagged =
        sc.s.manifest("other", "other untagged", &[], &[], None, None);
    // A blob shared by both repositories, garbage in app only: its bytes stay.
    let both = sc.s.blob("app", b"in both");
    sc.s.blob("other", b"in both");
    sc.s.age(7200);
    let opts = GcOptions {
        repo: Some("app".into()),
        ..hour()
    };
    let (plan, out) = sc.s.collect(&opts);
    assert!(plan.repositories.iter().all(|r| r.repository == "app"));
    assert!(sc.s.has_manifest("other", &other_untagged));
    assert!(sc.s.has_blob(&other));
    assert!(sc.s.has_blob(&both));
    assert_eq!(sc.s.meta.blob_in_repo("app", &both).unwrap(), None);
    assert_eq!(out.manifests.len(), 3);
    // Without the scope, the rest goes too.
    let (_, out) = sc.s.collect(&hour());
    assert!(!sc.s.has_manifest("other", &other_untagged));
    assert!(!sc.s.has_blob(&other) && !sc.s.has_blob(&both));
    assert_eq!(out.blobs.len(), 2);
}

/// The fence: a push whose blob was linked before the mark (so the plan holds it for
/// garbage) and whose manifest lands between the mark and the sweep keeps its blob.
fn fence_spares_blobs_referenced_after_the_mark(backend: Backend) {
    BACKEND.set(backend);
    let s = store();
    let layer = s.blob("app", b"uploaded before the mark");
    let config = s.blob("app", b"config uploaded before the mark");
    s.age(7200);
    let plan = gc::plan(s.meta.as_ref(), &hour(), berth_store::unix_now()).unwrap();
    assert_eq!(plan.blobs.len(), 2, "the mark sees two unreferenced blobs");
    // The manifest PUT lands after the mark; its row is old too (as a re-push of a
    // manifest stored long ago, racing the sweep, would be if created_at were not renewed).
    let m = s.manifest("app", "late", &[&layer, &config], &[], None, Some("v1"));
    s.age(7200);
    let out = gc::sweep(s.meta.as_ref(), &s.blobs, &plan).unwrap();
    assert!(out.blobs.is_empty() && out.links == 0, "{out:?}");
    assert!(s.has_blob(&layer) && s.has_blob(&config));
    assert!(s.has_manifest("app", &m));
    let report = fsck::check(s.meta.as_ref(), &s.blobs, fsck::Mode::Check).unwrap();
    assert_eq!(report.remaining(), 0, "{:?}", report.findings);
}

/// The file fence: a link made after the collector removed the file fails instead of
/// naming a missing file.
fn link_after_file_removal_fails_cleanly(backend: Backend) {
    BACKEND.set(backend);
    let s = store();
    let d = s.blob("app", b"about to be collected");
    s.age(7200);
    s.collect(&hour());
    assert!(!s.blobs.contains(&d));
    let path = s.blobs.path(&d);
    let err = s
        .meta
        .link_blob("app", &d, 21, &|| path.is_file())
        .unwrap_err();
    assert!(
        matches!(err, berth_store::StoreError::BlobVanished(_)),
        "{err}"
    );
    assert_eq!(s.meta.blob_known(&d).unwrap(), None);
}

/// A mount of a blob a row names takes the row's word for its file (rows go in after
/// their files and out before them): object storage is not asked while every writer
/// waits. A digest no row names is still looked for.
fn a_named_blob_links_without_looking_at_storage(backend: Backend) {
    BACKEND.set(backend);
    let s = store();
    let d = s.blob("app", b"mounted elsewhere");
    let asked = std::sync::atomic::AtomicUsize::new(0);
    let look = || {
        asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        false
    };
    s.meta.link_blob("other", &d, 17, &look).unwrap();
    assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(s.meta.blob_in_repo("other", &d).unwrap(), Some(17));
    let unnamed = Digest::sha256_of(b"never stored");
    let err = s.meta.link_blob("other", &unnamed, 12, &look).unwrap_err();
    assert!(
        matches!(err, berth_store::StoreError::BlobVanished(_)),
        "{err}"
    );
    assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// Linking again (an upload of a blob already stored, a mount) renews the grace.
fn linking_again_renews_the_grace(backend: Backend) {
    BACKEND.set(backend);
    let s = store();
    let d = s.blob("app", b"old but uploaded again");
    s.age(7200);
    s.blob("app", b"old but uploaded again");
    let (plan, _) = s.collect(&hour());
    assert!(plan.blobs.is_empty());
    assert!(s.has_blob(&d));
}

/// A cache's eviction read a link, then a hit renewed it: the link stays, and so does
/// its blob. Eviction used to unlink whatever it had read, and the client the hit had
/// answered found the blob gone.
fn eviction_leaves_a_link_renewed_since_it_read_it(backend: Backend) {
    BACKEND.set(backend);
    let s = store();
    let d = s.blob("cache/app", b"cached layer");
    let (size, read_at) = s.meta.blob_link("cache/app", &d).unwrap().unwrap();
    s.age(120);
    assert!(s
        .meta
        .renew_blob_link("cache/app", &d, berth_store::unix_now())
        .unwrap());
    let links = [("cache/app".to_string(), d.clone(), size, read_at - 120)];
    let gone = gc::evict_links(s.meta.as_ref(), &s.blobs, &links).unwrap();
    assert!(gone.is_empty(), "{gone:?}");
    assert!(s.has_blob(&d));
    // As read now, it goes.
    let (_, now_at) = s.meta.blob_link("cache/app", &d).unwrap().unwrap();
    let links = [("cache/app".to_string(), d.clone(), size, now_at)];
    let gone = gc::evict_links(s.meta.as_ref(), &s.blobs, &links).unwrap();
    assert_eq!(gone.len(), 1);
    assert!(!s.blobs.contains(&d));
}

fn fsck_finds_and_repairs_only_broken_things(backend: Backend) {
    BACKEND.set(backend);
    let sc = scene();
    let s = &sc.s;
    let [shared, a, b] = [&sc.live_blobs[0], &sc.live_blobs[1], &sc.live_blobs[2]];
    // Corrupt one file, remove another, and leave a file no row names.
    std::fs::write(s.blobs.path(a), b"not what was pushed").unwrap();
    std::fs::remove_file(s.blobs.path(b)).unwrap();
    let orphan = Digest::sha256_of(b"orphan");
    let p = s.blobs.path(&orphan);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, b"orphan").unwrap();

    let report = fsck::check(s.meta.as_ref(), &s.blobs, fsck::Mode::Check).unwrap();
    assert_eq!(report.remaining(), 3, "{:?}", report.findings);
    let find = |d: &Digest| {
        report
            .findings
            .iter()
            .find(|f| match &f.problem {
                fsck::Problem::Corrupt { digest, .. }
                | fsck::Problem::Unreadable { digest, .. }
                | fsck::Problem::MissingFile { digest } => digest == d,
                fsck::Problem::OrphanFile { digest, .. } => digest.as_ref() == Some(d),
            })
            .unwrap()
            .clone()
    };
    let corrupt = find(a);
    assert!(matches!(corrupt.problem, fsck::Problem::Corrupt { .. }));
    // It says which manifest (and tag) the corrupt blob breaks.
    assert_eq!(corrupt.affects.repositories, ["app"]);
    assert_eq!(corrupt.affects.manifests.len(), 1);
    assert_eq!(corrupt.affects.manifests[0].2, ["v1"]);
    assert!(matches!(find(b).problem, fsck::Problem::MissingFile { .. }));
    assert!(matches!(
        find(&orphan).problem,
        fsck::Problem::OrphanFile { .. }
    ));

    let report = fsck::check(s.meta.as_ref(), &s.blobs, fsck::Mode::Repair).unwrap();
    assert_eq!(report.remaining(), 0, "{:?}", report.findings);
    assert_eq!(report.findings.len(), 3);
    // The good blobs are untouched; the broken ones are gone, row and file.
    assert!(s.has_blob(shared));
    for d in &sc.dead_blobs {
        assert!(s.has_blob(d));
    }
    assert!(!s.blobs.path(a).exists() && s.meta.blob_known(a).unwrap().is_none());
    assert!(s.meta.blob_known(b).unwrap().is_none());
    assert!(!p.exists());
    let report = fsck::check(s.meta.as_ref(), &s.blobs, fsck::Mode::Check).unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

/// A HEAD renews an old link (once it is older than the threshold), so a client that
/// skips the upload of a blob it found and PUTs its manifest next finds it still there.
fn renewed_links_are_spared(backend: Backend) {
    BACKEND.set(backend);
    let s = store();
    let d = s.blob("app", b"found by a HEAD");
    s.age(7200);
    let (_, at) = s.meta.blob_link("app", &d).unwrap().unwrap();
    let before = berth_store::unix_now() - 3600;
    assert!(at < before);
    assert!(s.meta.renew_blob_link("app", &d, before).unwrap());
    // Fresh now: a second HEAD writes nothing.
    assert!(!s.meta.renew_blob_link("app", &d, before).unwrap());
    let (plan, _) = s.collect(&hour());
    assert!(plan.blobs.is_empty() && plan.link_count() == 0);
    assert!(s.has_blob(&d));
    // Without the renewal it would have gone.
    s.age(7200);
    let (plan, _) = s.collect(&hour());
    assert_eq!(plan.blobs.len(), 1);

    // A manifest too (an index's child a client found), with what it references.
    let layer = s.blob("app", b"layer of a child");
    let child = s.manifest("app", "child", &[&layer], &[], None, None);
    s.age(7200);
    let at = s.meta.manifest_by_digest("app", &child).unwrap().unwrap();
    assert!(at.created_at < before);
    assert!(s.meta.renew_manifest("app", &child, before).unwrap());
    assert!(!s.meta.renew_manifest("app", &child, before).unwrap());
    let (plan, _) = s.collect(&hour());
    assert_eq!(plan.manifest_count() + plan.link_count(), 0);
    assert!(s.has_manifest("app", &child) && s.has_blob(&layer));
}

/// Timing of a large collection (not a check): `cargo test --release -p berth-store
/// --test gc -- --ignored --nocapture large` (`BERTH_GC_TIMING_BACKEND=postgres` for
/// PostgreSQL, `BERTH_GC_TIMING_N` manifests).
#[test]
#[ignore]
fn large_collection_timing() {
    if std::env::var("BERTH_GC_TIMING_BACKEND").as_deref() == Ok("postgres") {
        BACKEND.set(Backend::Postgres);
    }
    let s = store();
    let n: usize = std::env::var("BERTH_GC_TIMING_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let t = std::time::Instant::now();
    for i in 0..n {
        let repo = format!("gc/r{:03}", i / 100);
        let mut blobs = Vec::new();
        for j in 0..5 {
            blobs.push(s.blob(&repo, format!("blob {i} {j}").as_bytes()));
        }
        let refs: Vec<&Digest> = blobs.iter().collect();
        let tag = format!("t{i}");
        s.manifest(
            &repo,
            &format!("m{i}"),
            &refs,
            &[],
            None,
            (i % 2 == 0).then_some(tag.as_str()),
        );
    }
    eprintln!("populated in {:?}", t.elapsed());
    s.age(7200);
    let t = std::time::Instant::now();
    let plan = gc::plan(s.meta.as_ref(), &hour(), berth_store::unix_now()).unwrap();
    eprintln!(
        "plan in {:?}: {} manifests, {} blobs",
        t.elapsed(),
        plan.manifest_count(),
        plan.blobs.len()
    );
    let t = std::time::Instant::now();
    for g in &plan.repositories {
        s.meta.gc_sweep_repository(g, plan.cutoff, false).unwrap();
    }
    eprintln!("repositories swept in {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let gone = s.meta.gc_delete_blobs(&plan.blobs, plan.cutoff).unwrap();
    eprintln!("blob rows deleted in {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let digests: Vec<Digest> = gone.iter().map(|(d, _)| d.parse().unwrap()).collect();
    gc::remove_unnamed_files(s.meta.as_ref(), &s.blobs, &digests).unwrap();
    eprintln!("files removed in {:?}", t.elapsed());
}

/// While the collector holds a tombstone for a digest (its row is gone, its file is
/// being removed), a link to it is refused even though the file is still there; a
/// tombstone left by a stopped run is cleaned up by the next run, file included.
fn tombstones_fence_links_while_files_go(backend: Backend) {
    BACKEND.set(backend);
    let s = store();
    let d = s.blob("app", b"being collected");
    s.age(7200);
    let plan = gc::plan(s.meta.as_ref(), &hour(), berth_store::unix_now()).unwrap();
    for g in &plan.repositories {
        s.meta.gc_sweep_repository(g, plan.cutoff, false).unwrap();
    }
    // The run stops after its row deletion, before removing the file.
    assert_eq!(
        s.meta
            .gc_delete_blobs(&plan.blobs, plan.cutoff)
            .unwrap()
            .len(),
        1
    );
    assert!(s.blobs.contains(&d));
    let err = s.meta.link_blob("app", &d, 15, &|| true).unwrap_err();
    assert!(
        matches!(err, berth_store::StoreError::BlobVanished(_)),
        "{err}"
    );
    // Another remover (fsck, a replica's recovery) that finds the file with no row
    // leaves it to the run whose tombstone it is: clearing that tombstone would let a
    // push link the digest before the run's unlink.
    let took =
        gc::remove_unnamed_files(s.meta.as_ref(), &s.blobs, std::slice::from_ref(&d)).unwrap();
    assert!(took.is_empty(), "{took:?}");
    assert!(s.blobs.contains(&d));
    assert!(
        s.meta.link_blob("app", &d, 15, &|| true).is_err(),
        "still fenced"
    );
    // A later run clears the stale tombstone and removes the file.
    s.meta
        .sql("UPDATE blob_tombstones SET created_at = created_at - 7200");
    s.collect(&hour());
    assert!(!s.blobs.contains(&d));
    assert!(s.meta.gc_stale_tombstones(i64::MAX).unwrap().is_empty());
    // Uploaded again, it links.
    let again = s.blob("app", b"being collected");
    assert!(s.has_blob(&again));
}

/// A crash between an upload's rename into `blobs/` and its link leaves a whole file
/// with no row: its commit note makes fsck count it as under way (not a problem), the
/// start-up recovery removes it, and a commit that reached its link keeps its file and
/// loses its note.
fn commits_cut_off_before_their_link_are_recovered(backend: Backend) {
    BACKEND.set(backend);
    let s = store();
    let linked = s.blob("app", b"linked before the crash");
    s.meta.begin_blob_commit(&linked).unwrap();
    let path = s.blobs.path(&linked);
    s.meta
        .link_blob("app", &linked, 23, &|| path.is_file())
        .unwrap();
    assert!(
        s.meta.open_blob_commits().unwrap().is_empty(),
        "the link clears its note"
    );

    // Noted and renamed into place, never linked: the process died in between.
    let cut = Digest::sha256_of(b"renamed, never linked");
    s.meta.begin_blob_commit(&cut).unwrap();
    let mut w = s.blobs.create_upload("cut").unwrap();
    w.write(b"renamed, never linked").unwrap();
    s.blobs.commit(w, &cut).unwrap();
    // Noted, never renamed: the crash came earlier.
    let early = Digest::sha256_of(b"never renamed");
    s.meta.begin_blob_commit(&early).unwrap();

    let report = fsck::check(s.meta.as_ref(), &s.blobs, fsck::Mode::Check).unwrap();
    assert_eq!(report.remaining(), 0, "{:?}", report.findings);
    assert_eq!(report.commits_under_way, 1);

    // Notes are taken for a crash's only once no commit under way can own them.
    s.meta.sql(&format!(
        "UPDATE blob_commits SET created_at = created_at - {}",
        gc::STALE_COMMIT.as_secs() + 1
    ));
    let removed =
        gc::recover_blob_commits(s.meta.as_ref(), &s.blobs, berth_store::unix_now()).unwrap();
    let mut removed = removed;
    removed.sort();
    let mut expected = vec![cut.clone(), early.clone()];
    expected.sort();
    assert_eq!(removed, expected, "both notes without a row are followed");
    assert!(!s.blobs.contains(&cut), "the cut-off file is gone");
    assert!(s.has_blob(&linked), "the linked blob stays");
    assert!(s.meta.open_blob_commits().unwrap().is_empty());
    let report = fsck::check(s.meta.as_ref(), &s.blobs, fsck::Mode::Check).unwrap();
    assert_eq!((report.remaining(), report.commits_under_way), (0, 0));
}

/// A blob file fsck cannot read (here a directory in its place, which opens but does
/// not read: `EISDIR`, as `EACCES` or `EIO` would fail; `chmod 000` stops no reader
/// running as root) is reported unreadable, and repair keeps it, its row and its link:
/// only bytes that hash wrong are corrupt.
fn fsck_never_repairs_away_a_blob_it_cannot_read(backend: Backend) {
    BACKEND.set(backend);
    let s = store();
    let d = s.blob("app", b"cannot be read");
    let path = s.blobs.path(&d);
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let report = fsck::check(s.meta.as_ref(), &s.blobs, fsck::Mode::Repair).unwrap();
    assert_eq!(report.remaining(), 1, "{:?}", report.findings);
    let f = &report.findings[0];
    assert!(
        matches!(&f.problem, fsck::Problem::Unreadable { digest, .. } if *digest == d),
        "{:?}",
        f.problem
    );
    assert!(!f.repaired);
    assert_eq!(f.affects.repositories, vec!["app".to_string()]);
    assert!(path.is_dir(), "left as it is");
    assert!(s.meta.blob_known(&d).unwrap().is_some(), "the row stays");
    assert!(
        s.meta.blob_in_repo("app", &d).unwrap().is_some(),
        "the link stays"
    );
}

/// Repair refuses a store where most blob rows have no file (an empty folder where
/// the registry's blobs are in a bucket: it once forgot every row and link), and
/// changes nothing; told that the files are lost, it repairs.
fn fsck_will_not_repair_where_most_files_are_missing(backend: Backend) {
    BACKEND.set(backend);
    let s = store();
    let blobs: Vec<Digest> = (0..3)
        .map(|i| s.blob("app", format!("blob {i}").as_bytes()))
        .collect();
    for d in &blobs[..2] {
        std::fs::remove_file(s.blobs.path(d)).unwrap();
    }
    let err = fsck::check(s.meta.as_ref(), &s.blobs, fsck::Mode::Repair).unwrap_err();
    assert!(
        matches!(
            err,
            berth_store::StoreError::MostFilesMissing {
                missing: 2,
                rows: 3
            }
        ),
        "{err}"
    );
    for d in &blobs {
        assert!(
            s.meta.blob_in_repo("app", d).unwrap().is_some(),
            "a link went"
        );
    }
    let report = fsck::check(s.meta.as_ref(), &s.blobs, fsck::Mode::RepairLostFiles).unwrap();
    assert_eq!(report.remaining(), 0, "{:?}", report.findings);
    assert!(s.meta.blob_known(&blobs[0]).unwrap().is_none());
    assert!(s.has_blob(&blobs[2]));
}

/// A replica starting (or a collection) while another commits: the other's note is
/// young, so recovery leaves its file, and its link then succeeds. Recovery used to take
/// every note for a crash's, removing objects live replicas had just put (their pushes
/// got `BLOB_VANISHED`). The same note, once older than [`gc::STALE_COMMIT`], is taken.
fn young_commit_notes_are_left_to_their_commits(backend: Backend) {
    BACKEND.set(backend);
    let s = store();
    let d = Digest::sha256_of(b"committed by another replica");
    s.meta.begin_blob_commit(&d).unwrap();
    let mut w = s.blobs.create_upload("other").unwrap();
    w.write(b"committed by another replica").unwrap();
    s.blobs.commit(w, &d).unwrap();
    let now = berth_store::unix_now();
    let removed = gc::recover_blob_commits(s.meta.as_ref(), &s.blobs, now).unwrap();
    assert!(removed.is_empty(), "{removed:?}");
    // A whole collection of the registry (its later pass) leaves it too.
    let report = gc::run(s.meta.as_ref(), &s.blobs, &GcOptions::default(), false).unwrap();
    assert_eq!(report.commits_recovered, 0);
    assert!(s.blobs.contains(&d), "the file of a commit under way stays");
    assert_eq!(s.meta.open_blob_commits().unwrap().len(), 1);
    // The other replica's link goes through.
    let path = s.blobs.path(&d);
    s.meta.link_blob("app", &d, 28, &|| path.is_file()).unwrap();
    assert!(s.has_blob(&d));

    // A note just under the bound stays; past it, it is a crash's, and the next
    // collection of the whole registry follows it.
    let cut = Digest::sha256_of(b"cut off");
    s.meta.begin_blob_commit(&cut).unwrap();
    let mut w = s.blobs.create_upload("cut").unwrap();
    w.write(b"cut off").unwrap();
    s.blobs.commit(w, &cut).unwrap();
    let bound = gc::STALE_COMMIT.as_secs() as i64;
    s.meta.sql(&format!(
        "UPDATE blob_commits SET created_at = created_at - {}",
        bound - 60
    ));
    let removed = gc::recover_blob_commits(s.meta.as_ref(), &s.blobs, now).unwrap();
    assert!(removed.is_empty() && s.blobs.contains(&cut), "{removed:?}");
    s.meta
        .sql("UPDATE blob_commits SET created_at = created_at - 120");
    let report = gc::run(s.meta.as_ref(), &s.blobs, &GcOptions::default(), false).unwrap();
    assert_eq!(report.commits_recovered, 1);
    assert!(!s.blobs.contains(&cut), "the cut-off file is gone");
    assert!(s.meta.open_blob_commits().unwrap().is_empty());

    // A note taken again after a recovery listed it (a new commit of the digest) is
    // that commit's: ending the old note leaves it; an old one goes.
    let (again, old) = (Digest::sha256_of(b"noted twice"), Digest::sha256_of(b"old"));
    s.meta.begin_blob_commit(&again).unwrap();
    s.meta.begin_blob_commit(&old).unwrap();
    s.meta.sql("UPDATE blob_commits SET created_at = 10");
    s.meta.begin_blob_commit(&again).unwrap();
    s.meta
        .end_blob_commits(&[again.clone(), old.clone()], 100)
        .unwrap();
    let open: Vec<Digest> = s
        .meta
        .open_blob_commits()
        .unwrap()
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert_eq!(open, [again]);
    assert!(s.has_blob(&d), "the linked blob stays");
}

/// A plan with `untag` (retention's dry run) is what a run finds after those tags are
/// deleted: the manifest only they held and its signature go, a second tag keeps one.
fn untag_plans_as_if_the_tags_were_gone(backend: Backend) {
    BACKEND.set(backend);
    let sc = scene();
    let (tagged, index) = (&sc.live_manifests[0], &sc.live_manifests[2]);
    // The index gets a second tag (the same manifest pushed again).
    let again = sc.s.manifest(
        "app",
        "index",
        &[],
        &[&sc.live_manifests[1]],
        None,
        Some("multi-2"),
    );
    assert_eq!(&again, index);
    sc.s.age(7200);
    let untag = vec![
        ("app".to_string(), tagged.to_string()),
        ("app".to_string(), index.to_string()),
    ];
    let dry = gc::plan(
        sc.s.meta.as_ref(),
        &GcOptions { untag, ..hour() },
        berth_store::unix_now(),
    )
    .unwrap();
    let planned: Vec<&str> = dry.repositories[0]
        .manifests
        .iter()
        .map(|(d, _)| d.as_str())
        .collect();
    assert!(planned.contains(&tagged.to_string().as_str()));
    assert!(
        planned.contains(&sc.live_manifests[3].to_string().as_str()),
        "its signature"
    );
    assert!(
        !planned.contains(&index.to_string().as_str()),
        "multi-2 still holds it"
    );
    // The real thing: delete v1 and multi, then collect.
    assert!(sc.s.meta.delete_tag("app", "v1").unwrap());
    assert!(sc.s.meta.delete_tag("app", "multi").unwrap());
    let (plan, _) = sc.s.collect(&hour());
    let mut real: Vec<&str> = plan.repositories[0]
        .manifests
        .iter()
        .map(|(d, _)| d.as_str())
        .collect();
    let mut planned = planned;
    real.sort();
    planned.sort();
    assert_eq!(planned, real);
    assert_eq!(dry.blobs, plan.blobs);
}

/// cosign's attachment tag for `subject` with `suffix` (`.sig`, `.att`, or none).
fn attachment_tag(subject: &Digest, suffix: &str) -> String {
    format!("sha256-{}{suffix}", subject.hex())
}

fn attachment_tags_go_with_their_image(backend: Backend) {
    BACKEND.set(backend);
    let s = store();
    let layer = s.blob("app", b"layer");
    let kept = s.manifest("app", "kept", &[&layer], &[], None, Some("v1"));
    let deleted = s.manifest("app", "deleted", &[&layer], &[], None, Some("v2"));
    let untagged = s.manifest("app", "untagged", &[&layer], &[], None, None);
    // cosign's signature layers, one per signature manifest.
    let attach = |repo: &str, name: &str, subject: &Digest, suffix: &str| {
        let payload = s.blob(repo, format!("payload {name}").as_bytes());
        let tag = attachment_tag(subject, suffix);
        s.manifest(repo, name, &[&payload], &[], None, Some(&tag))
    };
    let sig_kept = attach("app", "sig kept", &kept, ".sig");
    let sig_deleted = attach("app", "sig deleted", &deleted, ".sig");
    let att_deleted = attach("app", "att deleted", &deleted, ".att");
    let sig_untagged = attach("app", "sig untagged", &untagged, ".sig");
    // A signature of the signature (cosign signs its own attachments on request).
    let sig_of_sig = attach("app", "sig of sig kept", &sig_kept, ".sig");
    // COSIGN_REPOSITORY: signatures kept apart from the images they sign.
    let sig_apart = attach("app-signatures", "sig apart", &kept, ".sig");
    let nowhere = Digest::sha256_of(b"never pushed");
    let sig_nowhere = attach("app-signatures", "sig nowhere", &nowhere, ".sig");
    // The image behind v2 is deleted; the fallback tag's index stays a referrer of
    // nothing.
    assert!(s.meta.delete_manifest("app", &deleted).unwrap());
    s.age(7200);
    let young = attach("app", "young", &deleted, "");

    let (plan, out) = s.collect(&hour());
    for (repo, d) in [
        ("app", &kept),
        ("app", &sig_kept),
        ("app", &sig_of_sig),
        ("app", &young),
        ("app", &sig_deleted),
        ("app", &att_deleted),
        ("app-signatures", &sig_apart),
        ("app-signatures", &sig_nowhere),
    ] {
        assert!(s.has_manifest(repo, d), "{repo}@{d} kept");
    }
    for (repo, d) in [("app", &untagged), ("app", &sig_untagged)] {
        assert!(!s.has_manifest(repo, d), "{repo}@{d} collected");
    }
    let mut tags = s.meta.tags("app", None, 100).unwrap();
    tags.sort();
    let mut want = vec![
        "v1".to_string(),
        attachment_tag(&kept, ".sig"),
        attachment_tag(&sig_kept, ".sig"),
        attachment_tag(&deleted, ""),
        attachment_tag(&deleted, ".sig"),
        attachment_tag(&deleted, ".att"),
    ];
    want.sort();
    assert_eq!(tags, want, "the attachment tags of what went went with it");
    let mut apart = s.meta.tags("app-signatures", None, 100).unwrap();
    apart.sort();
    let mut want = vec![
        attachment_tag(&kept, ".sig"),
        attachment_tag(&nowhere, ".sig"),
    ];
    want.sort();
    assert_eq!(apart, want);
    assert_eq!(plan.manifest_count(), out.manifests.len());
    assert_eq!(out.manifests.len(), 2);
}
