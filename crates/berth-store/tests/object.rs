//! Blobs in object storage, against a real S3 server (s3s-fs, berth-testenv): uploads
//! continued by another client from the saved state alone, equal parts, verified
//! commits that leave nothing behind, range reads, removal, and a store that goes away
//! and comes back.

use berth_image::{Algorithm, Digest};
use berth_store::{BlobBytes, ObjectBlobs, ObjectConfig, SessionRow, StoreError, UploadState};
use berth_testenv::S3;
use futures_util::future::BoxFuture;
use futures_util::TryStreamExt;

const PART: usize = 5 * 1024 * 1024;

fn config(s3: &S3, bucket: &str) -> ObjectConfig {
    let mut c = ObjectConfig::from_url(&format!("s3://{bucket}/reg/one")).unwrap();
    c.endpoint = Some(s3.endpoint());
    c.region = Some(S3::REGION.into());
    c.path_style = true;
    c.access_key_id = Some(S3::ACCESS_KEY.into());
    c.secret_access_key = Some(S3::SECRET_KEY.into());
    c.part_size = PART;
    c
}

fn data(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

/// Every file s3s-fs holds under the bucket, relative to it.
fn objects(s3: &S3, bucket: &str) -> Vec<String> {
    let root = s3.bucket_dir(bucket);
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let rel = p
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                // s3s-fs's own bookkeeping beside the objects.
                if !rel.contains(".s3s") && !rel.starts_with(".") {
                    out.push(rel);
                }
            }
        }
    }
    out.sort();
    out
}

/// A session's row, in memory: the compare-and-set of `MetaStore::set_upload_state`.
#[derive(Default)]
struct Row(std::sync::Mutex<Option<String>>);

impl Row {
    fn get(&self) -> Option<String> {
        self.0.lock().unwrap().clone()
    }

    fn state(&self) -> UploadState {
        UploadState::from_json(self.get().as_deref().unwrap()).unwrap()
    }
}

impl SessionRow for Row {
    fn swap(&self, old: Option<String>, new: String) -> BoxFuture<'_, berth_store::Result<bool>> {
        let mut stored = self.0.lock().unwrap();
        let won = *stored == old || stored.as_deref() == Some(new.as_str());
        if won {
            *stored = Some(new);
        }
        Box::pin(std::future::ready(Ok(won)))
    }
}

async fn read_all(blobs: &ObjectBlobs, d: &Digest, start: u64, len: u64) -> Vec<u8> {
    let stream = blobs.read(d, start, len).await.unwrap().expect("stored");
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    chunks.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_continue_on_another_client_from_the_saved_state() {
    let s3 = S3::shared();
    let bucket = s3.bucket();
    // Two clients: two replicas, sharing only the bucket and the state (as JSON).
    let one = ObjectBlobs::open(&config(s3, &bucket)).unwrap();
    let two = ObjectBlobs::open(&config(s3, &bucket)).unwrap();
    let blob = data(2 * PART + PART / 2 + 7, 1);
    let d = Digest::sha256_of(&blob);
    // Chunks of odd sizes that cross part boundaries, each to the other replica.
    let cuts = [
        0,
        3 * 1024 * 1024 + 1,
        3 * 1024 * 1024 + 2,
        7 * 1024 * 1024,
        blob.len(),
    ];
    let row = Row::default();
    for (i, w) in cuts.windows(2).enumerate() {
        let blobs = if i % 2 == 0 { &one } else { &two };
        let mut up = blobs
            .resume("u1", row.get().as_deref(), &row)
            .await
            .unwrap();
        assert_eq!(up.len(), w[0] as u64);
        up.write(&blob[w[0]..w[1]]).await.unwrap();
        let new = up.save().await.unwrap();
        assert_eq!(row.state(), new);
    }
    // One tail object at most is left between chunks.
    let tails = objects(s3, &bucket)
        .into_iter()
        .filter(|o| o.contains("tail-"))
        .count();
    assert_eq!(tails, 1, "{:?}", objects(s3, &bucket));
    let up = one.resume("u1", row.get().as_deref(), &row).await.unwrap();
    assert_eq!(up.commit(&d).await.unwrap().len, blob.len() as u64);
    assert_eq!(one.size(&d).await.unwrap(), Some(blob.len() as u64));
    assert_eq!(read_all(&two, &d, 0, blob.len() as u64).await, blob);
    let (a, n) = (PART as u64 - 3, 11u64);
    assert_eq!(
        read_all(&one, &d, a, n).await,
        &blob[a as usize..(a + n) as usize]
    );
    // Nothing but the blob is left, under the prefix and at its content address.
    let hex = d.hex();
    assert_eq!(
        objects(s3, &bucket),
        vec![format!("reg/one/blobs/sha256/{}/{hex}", &hex[..2])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_digest_keeps_nothing() {
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let blobs = ObjectBlobs::open(&config(s3, &bucket)).unwrap();
    for size in [10, PART + 10] {
        let blob = data(size, 2);
        let row = Row::default();
        let mut up = blobs.resume("u2", None, &row).await.unwrap();
        up.write(&blob).await.unwrap();
        let wrong = Digest::sha256_of(b"something else");
        match up.commit(&wrong).await {
            Err(StoreError::DigestMismatch { actual, .. }) => {
                assert_eq!(actual, Digest::sha256_of(&blob))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(blobs.size(&wrong).await.unwrap(), None);
        assert!(
            objects(s3, &bucket).is_empty(),
            "{:?}",
            objects(s3, &bucket)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_that_breaks_off_leaves_the_session_as_it_was() {
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let blobs = ObjectBlobs::open(&config(s3, &bucket)).unwrap();
    let blob = data(PART + 100, 3);
    let row = Row::default();
    let mut up = blobs.resume("u3", None, &row).await.unwrap();
    up.write(&blob[..50]).await.unwrap();
    let saved = up.save().await.unwrap();
    // A chunk that sends a whole part, then breaks off: never saved. It hands its
    // part number back.
    let mut up = blobs
        .resume("u3", row.get().as_deref(), &row)
        .await
        .unwrap();
    up.write(&data(PART + 1, 99)).await.unwrap();
    assert!(row.state().in_use(berth_store::unix_now()));
    up.abandon().await.unwrap();
    // As saved, but for the multipart upload it started (recorded: the sweeper's).
    assert!(!row.state().in_use(berth_store::unix_now()));
    assert_eq!(row.state().len, saved.len);
    // The same chunk again, right this time.
    let mut up = blobs
        .resume("u3", row.get().as_deref(), &row)
        .await
        .unwrap();
    assert_eq!(up.len(), 50);
    up.write(&blob[50..]).await.unwrap();
    let d = Digest::sha256_of(&blob);
    up.commit(&d).await.unwrap();
    assert_eq!(read_all(&blobs, &d, 0, blob.len() as u64).await, blob);
}

/// Two requests on one session at once (two replicas, one state): before part numbers
/// were reserved, both sent parts under the same numbers; the loser's replaced the
/// winner's, and the winner's commit assembled the loser's bytes under its own digest
/// (s3s-fs, like some services, does not check part ETags). Now the loser fails at its
/// first part, before sending it, and the winner's blob is its own bytes. Both from a
/// state that has a multipart upload and from a new session (where each request
/// starts one: the loser aborts its own, recorded nowhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requests_on_one_state_never_share_a_part() {
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let one = ObjectBlobs::open(&config(s3, &bucket)).unwrap();
    let two = ObjectBlobs::open(&config(s3, &bucket)).unwrap();
    for (id, first) in [("race-saved", PART + 10), ("race-new", 0)] {
        let row = Row::default();
        let head = data(first, 40);
        if first > 0 {
            let mut up = one.resume(id, None, &row).await.unwrap();
            up.write(&head).await.unwrap();
            up.save().await.unwrap();
        }
        let at = row.get();
        let mut winner = one.resume(id, at.as_deref(), &row).await.unwrap();
        let mut loser = two.resume(id, at.as_deref(), &row).await.unwrap();
        let (mine, theirs) = (data(2 * PART + 3, 41), data(2 * PART + 3, 42));
        // Each sends a whole part, the winner first; then both go on.
        winner.write(&mine[..PART]).await.unwrap();
        let reserved = row.get();
        match loser.write(&theirs[..PART]).await {
            Err(StoreError::UploadChanged(_)) => {}
            other => panic!("{id}: the second request sent a part: {other:?}"),
        }
        assert_eq!(row.get(), reserved, "{id}: the loser changed the session");
        assert!(loser.write(&theirs[PART..]).await.is_err());
        loser.abandon().await.unwrap();
        assert_eq!(
            row.get(),
            reserved,
            "{id}: the loser handed back another's parts"
        );
        winner.write(&mine[PART..]).await.unwrap();
        winner.save().await.unwrap();
        assert!(!row.state().in_use(berth_store::unix_now()));
        let blob = [head.as_slice(), mine.as_slice()].concat();
        let d = Digest::sha256_of(&blob);
        let up = two.resume(id, row.get().as_deref(), &row).await.unwrap();
        assert_eq!(up.commit(&d).await.unwrap().len, blob.len() as u64);
        let stored = read_all(&one, &d, 0, blob.len() as u64).await;
        assert_eq!(
            Digest::sha256_of(&stored),
            d,
            "{id}: the blob is not its bytes"
        );
    }
    let left: Vec<_> = objects(s3, &bucket)
        .into_iter()
        .filter(|k| k.contains("uploads/"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A chunk that holds part numbers and never hands them back (its replica died, a
/// part failed: whether that part lands later is unknown) leaves the session refusing
/// other chunks, rather than letting them write those numbers; states saved before
/// reservations existed still read as sessions open to chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_that_never_ends_keeps_its_part_numbers() {
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let blobs = ObjectBlobs::open(&config(s3, &bucket)).unwrap();
    let row = Row::default();
    let blob = data(PART + 1, 50);
    let mut up = blobs.resume("held", None, &row).await.unwrap();
    up.write(&blob).await.unwrap();
    drop(up);
    let now = berth_store::unix_now();
    let lease = berth_store::object::RESERVATION_LEASE.as_secs() as i64;
    assert!(row.state().in_use(now));
    assert!(
        !row.state().in_use(now + lease + 1),
        "a lease that never lapses"
    );
    match blobs.resume("held", row.get().as_deref(), &row).await {
        Err(StoreError::UploadChanged(_)) => {}
        other => panic!("{:?}", other.map(|u| u.len())),
    }
    // Its lease lapsed (its replica died): another chunk takes the numbers over, from
    // the parts the state names, and the blob is its bytes.
    let held = row.get().unwrap();
    let until = held.split("\"until\":").nth(1).unwrap();
    let until: String = until.chars().take_while(char::is_ascii_digit).collect();
    let lapsed = held.replace(&format!("\"until\":{until}"), "\"until\":1");
    *row.0.lock().unwrap() = Some(lapsed);
    let mut up = blobs
        .resume("held", row.get().as_deref(), &row)
        .await
        .unwrap();
    up.write(&blob).await.unwrap();
    let d = Digest::sha256_of(&blob);
    assert_eq!(up.commit(&d).await.unwrap().len, blob.len() as u64);
    assert_eq!(read_all(&blobs, &d, 0, blob.len() as u64).await, blob);
    let old = r#"{"len":3,"multipart":null,"parts":[],"tail":null,"hash":[]}"#;
    let state = UploadState::from_json(old).unwrap();
    assert!(!state.in_use(now));
    assert_eq!(state.to_json(), old);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_written_once_and_removed() {
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let blobs = ObjectBlobs::open(&config(s3, &bucket)).unwrap();
    let blob = data(1000, 4);
    let d = Digest::sha256_of(&blob);
    for id in ["u4", "u5"] {
        let row = Row::default();
        let mut up = blobs.resume(id, None, &row).await.unwrap();
        up.write(&blob).await.unwrap();
        assert_eq!(up.commit(&d).await.unwrap().len, 1000);
    }
    assert_eq!(objects(s3, &bucket).len(), 1);
    // A digest of another algorithm is checked by reading the bytes.
    let d512 = Digest::of(Algorithm::Sha512, &blob);
    let row = Row::default();
    let mut up = blobs.resume("u6", None, &row).await.unwrap();
    up.write(&blob).await.unwrap();
    up.commit(&d512).await.unwrap();
    assert_eq!(read_all(&blobs, &d512, 0, 1000).await, blob);
    // The collector's synchronous calls, from a thread of its own.
    let gone = std::thread::scope(|s| {
        s.spawn(|| {
            blobs.remove_blob(&d).unwrap();
            blobs.remove_blob(&d).unwrap(); // already gone: no error
            blobs.has(&d).unwrap()
        })
        .join()
        .unwrap()
    });
    assert!(!gone);
    assert!(blobs.read(&d, 0, 1).await.unwrap().is_none());
    assert!(blobs.has(&d512).unwrap());
    // Presigned URLs fetch the blob with no credentials.
    let url = blobs
        .presigned_get(&d512, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let got = reqwest::get(&url).await.unwrap();
    assert!(got.status().is_success(), "{}", got.status());
    assert_eq!(got.bytes().await.unwrap().to_vec(), blob);
}

/// Opened and used synchronously from a current-thread runtime (a test's, a command's):
/// the client's own runtime drives the requests.
#[tokio::test]
async fn synchronous_calls_work_from_a_current_thread_runtime() {
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let blobs = ObjectBlobs::open(&config(s3, &bucket)).unwrap();
    let d = Digest::sha256_of(b"small");
    let row = Row::default();
    let mut up = blobs.resume("u7", None, &row).await.unwrap();
    up.write(b"small").await.unwrap();
    up.commit(&d).await.unwrap();
    assert!(blobs.has(&d).unwrap());
    blobs.remove_blob(&d).unwrap();
    assert!(!blobs.has(&d).unwrap());
}

/// Blob reads streamed from three kinds of runtime: a current-thread one that reads,
/// then blocks its thread on a synchronous read; a multi-thread one (the server's,
/// whose connections then serve its reads); another multi-thread one after that one is
/// gone. None waits on a connection that a blocked or gone runtime would have to
/// drive.
#[test]
fn streamed_reads_never_wait_for_a_blocked_or_gone_runtime() {
    let s3 = S3::shared();
    let cfg = config(s3, &s3.bucket());
    let blob = data(3 * 1024 * 1024 + 5, 21);
    let d = Digest::sha256_of(&blob);
    let blobs = ObjectBlobs::open(&cfg).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let (blobs2, blob2, d2) = (blobs.clone(), blob.clone(), d.clone());
    std::thread::spawn(move || {
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        current.block_on(async {
            let row = Row::default();
            let mut up = blobs2.resume("s1", None, &row).await.unwrap();
            up.write(&blob2).await.unwrap();
            up.commit(&d2).await.unwrap();
            assert_eq!(read_all(&blobs2, &d2, 5, 1000).await, blob2[5..1005]);
            // Time for a connection of this runtime to be idle in its client's pool.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            // Synchronous now: this runtime's one thread waits for the read.
            let (mut reader, size) = blobs2.reader(&d2).unwrap().expect("stored");
            assert_eq!(size, blob2.len() as u64);
            let got = std::thread::scope(|s| {
                s.spawn(move || {
                    let mut v = Vec::new();
                    std::io::Read::read_to_end(&mut reader, &mut v).unwrap();
                    v
                })
                .join()
                .unwrap()
            });
            assert!(got == blob2, "the synchronous read differs");
        });
        let _ = done.send(());
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("a read waited for a runtime that could not run");
    let multi = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    for _ in 0..2 {
        let server = multi();
        server.block_on(async {
            assert_eq!(read_all(&blobs, &d, 0, blob.len() as u64).await, blob);
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_goes_away_is_unreachable_then_back() {
    let s3 = S3::private();
    let bucket = s3.bucket();
    let blobs = ObjectBlobs::open(&config(&s3, &bucket)).unwrap();
    let d = Digest::sha256_of(b"x");
    s3.kill();
    let e = blobs.size(&d).await.unwrap_err();
    assert!(e.is_unreachable(), "{e}");
    assert!(e.to_string().contains("object storage"), "{e}");
    s3.restart();
    assert_eq!(blobs.size(&d).await.unwrap(), None);
}

/// fsck over a bucket: every object read back through its hash, rows without objects
/// and objects without rows found, and repair removing only those (a good blob stays,
/// a noted commit is under way, not a problem).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_reads_the_bucket_and_repairs_only_broken_things() {
    use berth_store::fsck::{self, Problem};
    use berth_store::{MetaStore, SqliteMeta};
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let blobs = ObjectBlobs::open(&config(s3, &bucket)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMeta::open(&dir.path().join("meta.db")).unwrap();
    let mut stored = Vec::new();
    for (i, seed) in [10u32, 11, 12, 13, 14].into_iter().enumerate() {
        // One blob of two parts, to read back more than one part.
        let bytes = data(if i == 0 { PART + 99 } else { 1000 + i }, seed);
        let d = Digest::sha256_of(&bytes);
        let row = Row::default();
        let mut up = blobs.resume(&format!("f{i}"), None, &row).await.unwrap();
        up.write(&bytes).await.unwrap();
        up.commit(&d).await.unwrap();
        stored.push((d, bytes.len() as u64));
    }
    let [good, corrupt, missing, orphan, under_way] = [0, 1, 2, 3, 4].map(|i| stored[i].0.clone());
    for (d, size) in &stored[..3] {
        meta.link_blob("app", d, *size, &|| true).unwrap();
    }
    meta.begin_blob_commit(&under_way).unwrap();
    // Damage as a disk or a hand would: other bytes under a blob's key, a blob's
    // object removed, and an object whose key names no blob.
    let on_disk = |d: &Digest| {
        s3.bucket_dir(&bucket).join(format!(
            "reg/one/blobs/sha256/{}/{}",
            &d.hex()[..2],
            d.hex()
        ))
    };
    std::fs::write(on_disk(&corrupt), b"not what was pushed").unwrap();
    blobs.remove_blob(&missing).unwrap();
    let junk = s3.bucket_dir(&bucket).join("reg/one/blobs/sha256/zz/junk");
    std::fs::create_dir_all(junk.parent().unwrap()).unwrap();
    std::fs::write(&junk, b"junk").unwrap();

    let report =
        tokio::task::block_in_place(|| fsck::check(&meta, &blobs, fsck::Mode::Check)).unwrap();
    assert_eq!(report.files_checked, 5, "{report:?}");
    assert_eq!(report.rows_checked, 3);
    assert_eq!(report.commits_under_way, 1);
    assert_eq!(report.remaining(), 4, "{:?}", report.findings);
    let kind = |want: &Digest| {
        report
            .findings
            .iter()
            .find_map(|f| match &f.problem {
                Problem::Corrupt { digest, .. } if digest == want => Some("corrupt"),
                Problem::MissingFile { digest } if digest == want => Some("missing"),
                Problem::OrphanFile {
                    digest: Some(digest),
                    ..
                } if digest == want => Some("orphan"),
                _ => None,
            })
            .unwrap_or("none")
    };
    assert_eq!(
        [&good, &corrupt, &missing, &orphan].map(kind),
        ["none", "corrupt", "missing", "orphan"]
    );
    let corrupt_finding = report
        .findings
        .iter()
        .find(|f| matches!(&f.problem, Problem::Corrupt { .. }))
        .unwrap();
    assert_eq!(corrupt_finding.affects.repositories, ["app"]);
    assert!(report.findings.iter().any(|f| matches!(
        &f.problem,
        Problem::OrphanFile { location, digest: None } if location == "reg/one/blobs/sha256/zz/junk"
    )));
    assert_eq!(
        report.bytes_checked,
        stored[0].1 + stored[3].1 + stored[4].1
    );

    let report =
        tokio::task::block_in_place(|| fsck::check(&meta, &blobs, fsck::Mode::Repair)).unwrap();
    assert_eq!(report.remaining(), 0, "{:?}", report.findings);
    assert_eq!(report.findings.len(), 4);
    // The good blob and the commit under way are untouched, byte for byte.
    assert_eq!(
        read_all(&blobs, &good, 0, stored[0].1).await,
        data(PART + 99, 10)
    );
    assert!(blobs.has(&under_way).unwrap());
    assert!(meta.blob_known(&good).unwrap().is_some());
    for d in [&corrupt, &orphan] {
        assert!(!blobs.has(d).unwrap(), "{d} is removed");
    }
    for d in [&corrupt, &missing] {
        assert!(
            meta.blob_known(d).unwrap().is_none(),
            "{d}'s row is removed"
        );
    }
    assert!(!junk.exists());
    let report =
        tokio::task::block_in_place(|| fsck::check(&meta, &blobs, fsck::Mode::Check)).unwrap();
    assert_eq!(
        (report.remaining(), report.commits_under_way),
        (0, 1),
        "{:?}",
        report.findings
    );
}

/// A file sent with `put_file` (a migration, the pull-through cache) is an upload
/// session while its multipart upload is open, with the state a sweeper needs to
/// abort it; the session goes when the blob is stored, and when its bytes turn out
/// wrong (nothing left in the bucket either way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_being_sent_is_a_session_the_sweeper_could_abort() {
    use berth_store::{MetaStore, SqliteMeta};
    use std::io::Write;
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let blobs = ObjectBlobs::open(&config(s3, &bucket)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMeta::open(&dir.path().join("meta.db")).unwrap();
    let blob = data(2 * PART + 5, 21);
    let d = Digest::sha256_of(&blob);
    for (id, whole) in [("send-ok", true), ("send-short", false)] {
        // A pipe, so that the test decides when the sender's bytes run out.
        let fifo = dir.path().join(id);
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let writer = {
            let (fifo, blob) = (fifo.clone(), blob.clone());
            std::thread::spawn(move || {
                let mut w = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
                w.write_all(&blob[..PART + 1]).unwrap();
                wait.recv().unwrap();
                if whole {
                    w.write_all(&blob[PART + 1..]).unwrap();
                }
            })
        };
        let sender = {
            let (blobs, meta, d, fifo) = (&blobs, &meta, &d, fifo.clone());
            std::thread::scope(|scope| {
                let sending = scope.spawn(move || {
                    let file = std::fs::File::open(fifo).unwrap();
                    blobs.put_file(meta, "cache/app", id, d, file)
                });
                // The first part went: the session holds its multipart upload.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                let state = loop {
                    if let Some(state) = meta.upload(id).unwrap().and_then(|u| u.state) {
                        break state;
                    }
                    assert!(std::time::Instant::now() < deadline, "no session for {id}");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                };
                UploadState::from_json(&state).unwrap();
                let fields: serde_json::Value = serde_json::from_str(&state).unwrap();
                assert!(fields["multipart"].is_string(), "{state}");
                assert!(meta
                    .stale_uploads(berth_store::unix_now() + 1)
                    .unwrap()
                    .contains(&id.to_string()));
                go.send(()).unwrap();
                sending.join().unwrap()
            })
        };
        writer.join().unwrap();
        match (whole, sender) {
            (true, Ok(n)) => assert_eq!(n, blob.len() as u64),
            (false, Err(StoreError::DigestMismatch { .. })) => {}
            (_, other) => panic!("{id}: {other:?}"),
        }
        assert!(meta.upload(id).unwrap().is_none(), "{id}'s session stays");
        let left: Vec<_> = objects(s3, &bucket)
            .into_iter()
            .filter(|k| k.contains("uploads/"))
            .collect();
        assert!(left.is_empty(), "{id}: {left:?}");
    }
    assert_eq!(read_all(&blobs, &d, 0, blob.len() as u64).await, blob);
}

/// A client on the bucket that knows nothing of berth: to complete a session's
/// multipart upload by hand, as a commit that died before its copy leaves it.
fn raw_bucket(s3: &S3, bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(s3.endpoint())
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region(S3::REGION)
        .with_access_key_id(S3::ACCESS_KEY)
        .with_secret_access_key(S3::SECRET_KEY)
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap()
}

/// Session `id`'s multipart upload and parts, as its saved state names them.
fn multipart_of(state: &UploadState) -> (String, Vec<object_store::multipart::PartId>) {
    let fields: serde_json::Value = serde_json::from_str(&state.to_json()).unwrap();
    let mp = fields["multipart"].as_str().unwrap().to_string();
    let parts = fields["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| object_store::multipart::PartId {
            content_id: p.as_str().unwrap().to_string(),
        })
        .collect();
    (mp, parts)
}

/// The object a completed multipart upload became (`uploads/<id>/data`) goes with its
/// session: no abort removes it. A commit that failed or was killed before copying
/// it to the blob key leaves it, and only `discard` (the sweeper's, a cancel's) can
/// remove it then. Completed here by hand, as such a commit leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discarding_a_session_removes_its_completed_upload() {
    use object_store::multipart::MultipartStore;
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let blobs = ObjectBlobs::open(&config(s3, &bucket)).unwrap();
    let row = Row::default();
    let mut up = blobs.resume("u-data", None, &row).await.unwrap();
    up.write(&data(2 * PART + 10, 30)).await.unwrap();
    let state = up.save().await.unwrap();
    let (mp, parts) = multipart_of(&state);
    let data_key = object_store::path::Path::from("reg/one/uploads/u-data/data");
    raw_bucket(s3, &bucket)
        .complete_multipart(&data_key, &mp, parts)
        .await
        .unwrap();
    assert!(objects(s3, &bucket).contains(&data_key.to_string()));
    blobs.discard("u-data", &state).await.unwrap();
    let left: Vec<_> = objects(s3, &bucket)
        .into_iter()
        .filter(|k| k.contains("uploads/"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A commit that completed its multipart upload and then failed (its copy to the
/// blob key: the store went away) leaves the upload gone and its bytes in
/// `uploads/<id>/data`, while the session's row still names the upload. A retry of
/// the same request commits from that object, once it reads back as the blob; a
/// retry bringing another last chunk is refused as a digest mismatch and the
/// session's objects go. Before, every retry failed (503) until the sweeper ended the
/// session. The first try is played by hand: its last part, then the completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_retried_after_its_upload_was_completed_uses_it() {
    use object_store::multipart::MultipartStore;
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let blobs = ObjectBlobs::open(&config(s3, &bucket)).unwrap();
    let raw = raw_bucket(s3, &bucket);
    let head = data(2 * PART + 10, 31);
    for (id, retried) in [("u-same", b"A".repeat(10)), ("u-other", b"B".repeat(10))] {
        let row = Row::default();
        let mut up = blobs.resume(id, None, &row).await.unwrap();
        up.write(&head).await.unwrap();
        let state = up.save().await.unwrap();
        // The first try's last part: the session's tail and its body, "A"s.
        let (mp, mut parts) = multipart_of(&state);
        let data_key = object_store::path::Path::from(format!("reg/one/uploads/{id}/data"));
        let last = [&head[2 * PART..], &b"A".repeat(10)[..]].concat();
        let part = raw
            .put_part(&data_key, &mp, parts.len(), last.into())
            .await
            .unwrap();
        parts.push(part);
        raw.complete_multipart(&data_key, &mp, parts).await.unwrap();

        let blob = [&head[..], &retried[..]].concat();
        let d = Digest::sha256_of(&blob);
        let stored = row.get();
        let mut up = blobs
            .resume_for(id, stored.as_deref(), &row, &d, Some(10))
            .await
            .unwrap();
        up.write(&retried).await.unwrap();
        let result = up.commit(&d).await;
        if retried == b"A".repeat(10) {
            let done = result.unwrap();
            assert_eq!(done.len, blob.len() as u64);
            assert_eq!(read_all(&blobs, &d, 0, done.len).await, blob);
        } else {
            assert!(
                matches!(result, Err(StoreError::DigestMismatch { .. })),
                "{:?}",
                result.map(|c| c.len)
            );
            assert_eq!(blobs.size(&d).await.unwrap(), None);
        }
        let left: Vec<_> = objects(s3, &bucket)
            .into_iter()
            .filter(|k| k.contains(&format!("uploads/{id}")))
            .collect();
        assert!(left.is_empty(), "{id}: {left:?}");
    }
}

/// `berth registry migrate` sends a blob again when the bucket holds an object of
/// another size at its key (a copy cut short), and that object is replaced: before,
/// the commit kept whatever was at the key, so the truncated object stayed while the
/// report counted the blob copied. One blob under one part (put to its key), one of
/// two (completed, then copied there). An object of the blob's size is kept as it is.
#[test]
fn migrate_replaces_an_object_of_the_wrong_size() {
    use berth_store::{BlobStore, MetaStore, SqliteMeta};
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let blobs = ObjectBlobs::open(&config(s3, &bucket)).unwrap();
    let src = tempfile::tempdir().unwrap();
    let src_blobs = BlobStore::open(src.path()).unwrap();
    let src_meta = SqliteMeta::open(&src.path().join("meta.db")).unwrap();
    let dst = tempfile::tempdir().unwrap();
    let dst_meta = SqliteMeta::open(&dst.path().join("meta.db")).unwrap();
    let mut stored = Vec::new();
    for (i, size) in [1000, PART + 1000].into_iter().enumerate() {
        let bytes = data(size, 40 + i as u32);
        let d = Digest::sha256_of(&bytes);
        let mut w = src_blobs.create_upload(&format!("m{i}")).unwrap();
        w.write(&bytes).unwrap();
        src_blobs.commit(w, &d).unwrap();
        src_meta
            .link_blob("app", &d, bytes.len() as u64, &|| true)
            .unwrap();
        // What a copy cut short leaves: the first half under the blob's key.
        let key = s3.bucket_dir(&bucket).join(format!(
            "reg/one/blobs/sha256/{}/{}",
            &d.hex()[..2],
            d.hex()
        ));
        std::fs::create_dir_all(key.parent().unwrap()).unwrap();
        std::fs::write(&key, &bytes[..size / 2]).unwrap();
        stored.push((d, bytes));
    }
    let report =
        berth_store::migrate::migrate(&src_meta, &src_blobs, &dst_meta, &blobs, &mut |_| {})
            .unwrap();
    assert_eq!((report.blobs_copied, report.blobs_present), (2, 0));
    for (d, bytes) in &stored {
        assert_eq!(blobs.size_sync(d).unwrap(), Some(bytes.len() as u64), "{d}");
        let got = blobs.read_small_sync(d, u64::MAX).unwrap().unwrap();
        assert!(got == bytes.as_slice(), "{d}: other bytes");
    }
    // A second run finds them whole and sends nothing.
    let again =
        berth_store::migrate::migrate(&src_meta, &src_blobs, &dst_meta, &blobs, &mut |_| {})
            .unwrap();
    assert_eq!((again.blobs_copied, again.blobs_present), (0, 2));
}

/// A session row whose first compare-and-set fails: the write lands all the same
/// (its answer was lost) when `lands`, or another request stores `meanwhile` first.
struct FlakyRow {
    inner: Row,
    failed: std::sync::atomic::AtomicBool,
    lands: bool,
    meanwhile: Option<String>,
}

impl SessionRow for FlakyRow {
    fn swap(&self, old: Option<String>, new: String) -> BoxFuture<'_, berth_store::Result<bool>> {
        if !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            if self.lands {
                // The in-memory row's write happens in the call; its answer is dropped.
                drop(self.inner.swap(old, new));
            } else if let Some(m) = &self.meanwhile {
                *self.inner.0.lock().unwrap() = Some(m.clone());
            }
            let lost = StoreError::Corrupt("the connection broke".into());
            return Box::pin(std::future::ready(Err(lost)));
        }
        self.inner.swap(old, new)
    }
}

/// A chunk's tail is stored before the state naming it. When that state's write fails,
/// asking again tells a write that landed (the chunk is saved) from one that did not
/// while another request's did (the tail is nobody's and goes). Before, the chunk
/// failed either way and its tail stayed in the bucket, named by nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_whose_state_write_failed_is_kept_only_if_named() {
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let blobs = ObjectBlobs::open(&config(s3, &bucket)).unwrap();
    let other = r#"{"len":3,"multipart":null,"parts":[],"tail":null,"hash":[]}"#;
    for (id, lands, meanwhile) in [("u-landed", true, None), ("u-lost", false, Some(other))] {
        let row = FlakyRow {
            inner: Row::default(),
            failed: Default::default(),
            lands,
            meanwhile: meanwhile.map(str::to_string),
        };
        let mut up = blobs.resume(id, None, &row).await.unwrap();
        up.write(&data(1000, 40)).await.unwrap();
        let saved = up.save().await;
        let left: Vec<_> = objects(s3, &bucket)
            .into_iter()
            .filter(|k| k.contains(&format!("uploads/{id}/")))
            .collect();
        if lands {
            let state = saved.unwrap();
            assert_eq!(row.inner.state().len, 1000);
            assert_eq!(state.len, 1000);
            assert_eq!(left.len(), 1, "{left:?}");
        } else {
            assert!(
                matches!(saved, Err(StoreError::UploadChanged(_))),
                "{saved:?}"
            );
            assert_eq!(row.inner.get().as_deref(), Some(other));
            assert!(left.is_empty(), "{left:?}");
        }
    }
}
