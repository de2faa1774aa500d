//! Per-endpoint HTTP tests of the registry: every endpoint family of the OCI
//! Distribution Spec v1.1 (and what the conformance suite v1.1.1 sends and asserts),
//! against a real server on a loopback port, one behaviour per test.
//!
//! Run with `cargo test -p berth-registry --test api`.

#[path = "api/support.rs"]
mod support;

mod base {
    use crate::support::*;

    #[tokio::test]
    async fn every_answer_carries_the_api_version_header_and_base_is_200() {
        let srv = Server::start().await;
        for path in ["/v2/", "/v2"] {
            let resp = send(srv.get(path)).await;
            assert_eq!(
                header(&resp, "docker-distribution-api-version").as_deref(),
                Some("registry/2.0"),
                "{path}"
            );
            let (_, body) = expect_status(resp, 200).await;
            let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
            assert!(v.is_object(), "{path}: {v}");
        }
        // Error answers carry it too.
        let resp = send(srv.get(&format!("/v2/repo/blobs/{DUMMY_DIGEST}"))).await;
        assert_eq!(
            header(&resp, "docker-distribution-api-version").as_deref(),
            Some("registry/2.0")
        );
        expect_error(resp, 404, "BLOB_UNKNOWN").await;
    }

    #[tokio::test]
    async fn unknown_endpoint_is_404_with_error_body() {
        let srv = Server::start().await;
        for path in [
            "/v2/repo/nothing-here",
            "/v2/repo/manifests/a/b",
            "/nothing",
        ] {
            let (status, _code) = error_of(send(srv.get(path)).await).await;
            assert_eq!(status, 404, "{path}");
        }
    }

    #[tokio::test]
    async fn wrong_method_is_405_unsupported() {
        let srv = Server::start().await;
        let cases = [
            (
                reqwest::Method::POST,
                "/v2/repo/manifests/latest".to_string(),
            ),
            (
                reqwest::Method::PUT,
                format!("/v2/repo/blobs/{DUMMY_DIGEST}"),
            ),
            (reqwest::Method::DELETE, "/v2/repo/tags/list".to_string()),
            (
                reqwest::Method::POST,
                format!("/v2/repo/referrers/{DUMMY_DIGEST}"),
            ),
            (reqwest::Method::PUT, "/v2/repo/blobs/uploads/".to_string()),
        ];
        for (method, path) in cases {
            let resp = send(srv.req(method.clone(), &path)).await;
            expect_error(resp, 405, "UNSUPPORTED").await;
        }
    }
}

mod blobs {
    use crate::support::*;
    use reqwest::header::RANGE;

    #[tokio::test]
    async fn unknown_blob_head_and_get_are_404() {
        let srv = Server::start().await;
        push_blob(&srv, "repo", b"something").await; // the repository exists
        for repo in ["repo", "never-pushed"] {
            let path = format!("/v2/{repo}/blobs/{DUMMY_DIGEST}");
            let resp = send(srv.head(&path)).await;
            assert_eq!(resp.status(), 404);
            expect_error(send(srv.get(&path)).await, 404, "BLOB_UNKNOWN").await;
        }
    }

    #[tokio::test]
    async fn blob_get_serves_exact_bytes_with_digest_length_and_etag() {
        let srv = Server::start().await;
        let bytes = data(1, 5000);
        let d = push_blob(&srv, "repo", &bytes).await;
        let resp = send(srv.get(&format!("/v2/repo/blobs/{d}"))).await;
        let (h, body) = expect_status(resp, 200).await;
        assert_eq!(body, bytes);
        assert_eq!(header_of(&h, "content-length").as_deref(), Some("5000"));
        assert_eq!(header_of(&h, "docker-content-digest").as_deref(), Some(&*d));
        let etag = header_of(&h, "etag").expect("ETag");
        assert!(etag.contains(&d), "ETag {etag}");
    }

    #[tokio::test]
    async fn blob_head_has_headers_and_no_body() {
        let srv = Server::start().await;
        let bytes = data(2, 1234);
        let d = push_blob(&srv, "repo", &bytes).await;
        let resp = send(srv.head(&format!("/v2/repo/blobs/{d}"))).await;
        let (h, body) = expect_status(resp, 200).await;
        assert!(body.is_empty());
        assert_eq!(header_of(&h, "content-length").as_deref(), Some("1234"));
        assert_eq!(header_of(&h, "docker-content-digest").as_deref(), Some(&*d));
        assert!(header_of(&h, "etag").is_some_and(|e| e.contains(&d)));
    }

    #[tokio::test]
    async fn blob_range_requests_answer_206_with_content_range() {
        let srv = Server::start().await;
        let bytes = data(3, 100);
        let d = push_blob(&srv, "repo", &bytes).await;
        let path = format!("/v2/repo/blobs/{d}");
        for (range, start, end) in [
            ("bytes=2-5", 2usize, 5usize),
            ("bytes=90-", 90, 99),
            ("bytes=-4", 96, 99),
            ("bytes=95-500", 95, 99),
        ] {
            let resp = send(srv.get(&path).header(RANGE, range)).await;
            let (h, body) = expect_status(resp, 206).await;
            assert_eq!(body, &bytes[start..=end], "{range}");
            assert_eq!(
                header_of(&h, "content-range"),
                Some(format!("bytes {start}-{end}/100")),
                "{range}"
            );
            assert_eq!(
                header_of(&h, "content-length"),
                Some((end - start + 1).to_string()),
                "{range}"
            );
        }
    }

    #[tokio::test]
    async fn blob_unsatisfiable_range_answers_416() {
        let srv = Server::start().await;
        let d = push_blob(&srv, "repo", &data(4, 100)).await;
        let path = format!("/v2/repo/blobs/{d}");
        for range in ["bytes=100-", "bytes=50-10", "bytes=200-300"] {
            let resp = send(srv.get(&path).header(RANGE, range)).await;
            assert_eq!(resp.status(), 416, "{range}");
            assert_eq!(
                header(&resp, "content-range").as_deref(),
                Some("bytes */100"),
                "{range}"
            );
        }
    }

    #[tokio::test]
    async fn blob_is_visible_only_in_its_repository() {
        let srv = Server::start().await;
        let d = push_blob(&srv, "one", b"private to one").await;
        push_blob(&srv, "two", b"something else").await;
        expect_error(
            send(srv.get(&format!("/v2/two/blobs/{d}"))).await,
            404,
            "BLOB_UNKNOWN",
        )
        .await;
        let resp = send(srv.head(&format!("/v2/two/blobs/{d}"))).await;
        assert_eq!(resp.status(), 404);
    }

    #[tokio::test]
    async fn blob_delete_answers_202_then_blob_is_gone() {
        let srv = Server::start().await;
        let d = push_blob(&srv, "repo", b"to be deleted").await;
        let path = format!("/v2/repo/blobs/{d}");
        expect_status(send(srv.delete(&path)).await, 202).await;
        assert_eq!(send(srv.head(&path)).await.status(), 404);
        expect_error(send(srv.get(&path)).await, 404, "BLOB_UNKNOWN").await;
        expect_error(send(srv.delete(&path)).await, 404, "BLOB_UNKNOWN").await;
        // It can be pushed again.
        assert_eq!(push_blob(&srv, "repo", b"to be deleted").await, d);
        let (_, body) = expect_status(send(srv.get(&path)).await, 200).await;
        assert_eq!(body, b"to be deleted");
    }

    #[tokio::test]
    async fn blob_with_malformed_digest_is_digest_invalid() {
        let srv = Server::start().await;
        push_blob(&srv, "repo", b"x").await;
        for d in [
            "sha256:xyz",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        ] {
            let path = format!("/v2/repo/blobs/{d}");
            expect_error(send(srv.get(&path)).await, 400, "DIGEST_INVALID").await;
            expect_error(send(srv.delete(&path)).await, 400, "DIGEST_INVALID").await;
        }
    }
}

mod uploads {
    use std::time::{Duration, Instant};

    use crate::support::*;
    use bytes::Bytes;
    use futures_util::StreamExt;
    use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};

    /// The conformance suite's chunked blob: 42 bytes, chunks `0-21` and `22-41`.
    fn blob_b() -> (Vec<u8>, String) {
        let b = data(42, 42);
        let d = sha256(&b);
        (b, d)
    }

    /// Chunks and commits naming no session are refused, and leave no state behind:
    /// on object storage each made-up id was kept in memory for good.
    #[tokio::test]
    async fn made_up_session_ids_leave_nothing_in_memory() {
        let srv = Server::start().await;
        let d = sha256(b"x");
        for i in 0..20 {
            let id = format!("{}{i}", "z".repeat(1000));
            let path = format!("/v2/org/app/blobs/uploads/{id}");
            let resp = send(srv.patch(&path).body("x")).await;
            expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
            let resp = send(srv.put(&format!("{path}?digest={d}")).body("x")).await;
            expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
        }
        assert_eq!(srv.reg.upload_sessions_in_memory(), 0);
    }

    async fn status_range(api: &Api, loc: &str) -> (String, String) {
        let resp = send(api.get(loc)).await;
        let (h, _) = expect_status(resp, 204).await;
        (
            header_of(&h, "range").expect("Range on upload status"),
            header_of(&h, "location").expect("Location on upload status"),
        )
    }

    #[tokio::test]
    async fn monolithic_post_with_digest_answers_201_with_blob_location() {
        let srv = Server::start().await;
        let bytes = config_bytes(7);
        let d = sha256(&bytes);
        let resp = push_blob_monolithic(&srv, "repo", &bytes, &d).await;
        assert_eq!(location(&resp), format!("/v2/repo/blobs/{d}"));
        assert_eq!(header(&resp, "docker-content-digest").as_deref(), Some(&*d));
        expect_status(resp, 201).await;
        let (_, body) =
            expect_status(send(srv.get(&format!("/v2/repo/blobs/{d}"))).await, 200).await;
        assert_eq!(body, bytes);
        assert!(srv.upload_files().is_empty(), "{:?}", srv.upload_files());
    }

    #[tokio::test]
    async fn post_then_put_answers_202_then_201() {
        let srv = Server::start().await;
        let bytes = data(8, 168);
        let d = sha256(&bytes);
        let resp = send(srv.post("/v2/repo/blobs/uploads/")).await;
        let loc = location(&resp);
        assert!(loc.starts_with("/v2/repo/blobs/uploads/"), "{loc}");
        let uuid = header(&resp, "docker-upload-uuid").expect("Docker-Upload-UUID");
        assert!(loc.ends_with(&uuid), "{loc} vs {uuid}");
        expect_status(resp, 202).await;
        let resp = finish_upload(&srv, &loc, &d, &bytes).await;
        assert_eq!(location(&resp), format!("/v2/repo/blobs/{d}"));
        assert_eq!(header(&resp, "docker-content-digest").as_deref(), Some(&*d));
        expect_status(resp, 201).await;
        let (_, body) =
            expect_status(send(srv.get(&format!("/v2/repo/blobs/{d}"))).await, 200).await;
        assert_eq!(body, bytes);
    }

    #[tokio::test]
    async fn pushing_an_existing_blob_again_still_answers_201() {
        let srv = Server::start().await;
        let bytes = config_bytes(9);
        let d = push_blob(&srv, "repo", &bytes).await;
        assert_eq!(push_blob(&srv, "repo", &bytes).await, d);
        let resp = push_blob_monolithic(&srv, "repo", &bytes, &d).await;
        expect_status(resp, 201).await;
        let (_, body) =
            expect_status(send(srv.get(&format!("/v2/repo/blobs/{d}"))).await, 200).await;
        assert_eq!(body, bytes);
        assert!(srv.upload_files().is_empty());
    }

    #[tokio::test]
    async fn streamed_patch_without_content_range_then_empty_put() {
        let srv = Server::start().await;
        let blob = data(10, 42);
        let d = sha256(&blob);
        let loc = start_upload(&srv, "repo").await;
        let resp = send(
            srv.patch(&loc)
                .header(CONTENT_TYPE, OCTET)
                .body(blob.clone()),
        )
        .await;
        let loc2 = location(&resp);
        assert_eq!(header(&resp, "range").as_deref(), Some("0-41"));
        expect_status(resp, 202).await;
        let resp = finish_upload(&srv, &loc2, &d, b"").await;
        assert_eq!(location(&resp), format!("/v2/repo/blobs/{d}"));
        expect_status(resp, 201).await;
        let (_, body) =
            expect_status(send(srv.get(&format!("/v2/repo/blobs/{d}"))).await, 200).await;
        assert_eq!(body, blob);
    }

    #[tokio::test]
    async fn chunked_upload_in_order_reports_exact_ranges_and_completes() {
        let srv = Server::start().await;
        let (blob, d) = blob_b();
        let post_loc = start_upload(&srv, "repo").await;

        let resp = patch_chunk(&srv, &post_loc, 0, &blob[..22]).await;
        assert_eq!(header(&resp, "range").as_deref(), Some("0-21"));
        let patch_loc = location(&resp);
        expect_status(resp, 202).await;
        assert!(patch_loc.starts_with("/v2/repo/blobs/uploads/"));

        // The status at the POST's URL (the suite keeps using it).
        let (range, status_loc) = status_range(&srv, &post_loc).await;
        assert_eq!(range, "0-21");

        let resp = patch_chunk(&srv, &status_loc, 22, &blob[22..]).await;
        assert_eq!(header(&resp, "range").as_deref(), Some("0-41"));
        let loc = location(&resp);
        expect_status(resp, 202).await;

        let resp = finish_upload(&srv, &loc, &d, b"").await;
        assert_eq!(location(&resp), format!("/v2/repo/blobs/{d}"));
        expect_status(resp, 201).await;
        let (_, body) =
            expect_status(send(srv.get(&format!("/v2/repo/blobs/{d}"))).await, 200).await;
        assert_eq!(body, blob);
        // The session is over.
        expect_error(send(srv.get(&post_loc)).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
    }

    #[tokio::test]
    async fn out_of_order_chunk_answers_416_and_session_survives() {
        let srv = Server::start().await;
        let (blob, d) = blob_b();
        let loc = start_upload(&srv, "repo").await;
        let resp = patch_chunk(&srv, &loc, 22, &blob[22..]).await;
        assert_eq!(resp.status(), 416);
        // Nothing was appended; the upload goes on from byte 0.
        let resp = patch_chunk(&srv, &loc, 0, &blob[..22]).await;
        assert_eq!(header(&resp, "range").as_deref(), Some("0-21"));
        expect_status(resp, 202).await;
        expect_status(patch_chunk(&srv, &loc, 22, &blob[22..]).await, 202).await;
        expect_status(finish_upload(&srv, &loc, &d, b"").await, 201).await;
    }

    #[tokio::test]
    async fn a_refused_chunk_is_answered_after_its_body_is_read() {
        // Answering before the body is read makes the server close the connection
        // under a client that is still writing: it gets a broken pipe, not the 416.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let srv = Server::start().await;
        let loc = start_upload(&srv, "repo").await;
        let body = data(136, 2 * 1024 * 1024);
        let mut conn = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        let head = format!(
            "PATCH {loc} HTTP/1.1\r\nHost: {}\r\nContent-Range: 5-{}\r\nContent-Length: {}\r\n\r\n",
            srv.addr,
            body.len() + 4,
            body.len()
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(&body[..body.len() / 2]).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let early = tokio::time::timeout(Duration::from_millis(300), conn.read(&mut buf)).await;
        assert!(early.is_err(), "answered before the body was read");
        conn.write_all(&body[body.len() / 2..]).await.unwrap();
        let n = conn.read(&mut buf).await.unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 416"), "{answer}");
        // The session is as it was.
        let resp = send(srv.get(&loc)).await;
        assert_eq!(header(&resp, "range").as_deref(), Some("0-0"));
    }

    #[tokio::test]
    async fn duplicate_chunk_answers_416_and_session_survives() {
        let srv = Server::start().await;
        let (blob, d) = blob_b();
        let post_loc = start_upload(&srv, "repo").await;
        expect_status(patch_chunk(&srv, &post_loc, 0, &blob[..22]).await, 202).await;
        // The suite re-sends chunk 1 to the POST's URL.
        let resp = patch_chunk(&srv, &post_loc, 0, &blob[..22]).await;
        assert_eq!(resp.status(), 416);
        let (range, loc) = status_range(&srv, &post_loc).await;
        assert_eq!(range, "0-21");
        expect_status(patch_chunk(&srv, &loc, 22, &blob[22..]).await, 202).await;
        expect_status(finish_upload(&srv, &loc, &d, b"").await, 201).await;
        let (_, body) =
            expect_status(send(srv.get(&format!("/v2/repo/blobs/{d}"))).await, 200).await;
        assert_eq!(body, blob);
    }

    #[tokio::test]
    async fn overlapping_chunk_answers_416() {
        let srv = Server::start().await;
        let (blob, d) = blob_b();
        let loc = start_upload(&srv, "repo").await;
        expect_status(patch_chunk(&srv, &loc, 0, &blob[..22]).await, 202).await;
        let resp = patch_chunk(&srv, &loc, 10, &blob[10..30]).await;
        assert_eq!(resp.status(), 416);
        assert_eq!(status_range(&srv, &loc).await.0, "0-21");
        let resp = finish_upload(&srv, &loc, &d, &blob[22..]).await;
        expect_status(resp, 201).await;
    }

    #[tokio::test]
    async fn final_chunk_may_come_with_the_put() {
        let srv = Server::start().await;
        let (blob, d) = blob_b();
        let loc = start_upload(&srv, "repo").await;
        expect_status(patch_chunk(&srv, &loc, 0, &blob[..22]).await, 202).await;
        // A final chunk that does not start at the end is refused like a PATCH.
        let resp = send(
            srv.put(&with_digest(&loc, &d))
                .header(CONTENT_TYPE, OCTET)
                .header(CONTENT_RANGE, "30-41")
                .body(blob[30..].to_vec()),
        )
        .await;
        assert_eq!(resp.status(), 416);
        assert_eq!(status_range(&srv, &loc).await.0, "0-21");
        let resp = send(
            srv.put(&with_digest(&loc, &d))
                .header(CONTENT_TYPE, OCTET)
                .header(CONTENT_RANGE, "22-41")
                .body(blob[22..].to_vec()),
        )
        .await;
        expect_status(resp, 201).await;
        let (_, body) =
            expect_status(send(srv.get(&format!("/v2/repo/blobs/{d}"))).await, 200).await;
        assert_eq!(body, blob);
    }

    #[tokio::test]
    async fn upload_status_of_a_new_session_is_204_with_location() {
        let srv = Server::start().await;
        let loc = start_upload(&srv, "org/repo").await;
        let resp = send(srv.get(&loc)).await;
        assert!(header(&resp, "range").is_some(), "no Range");
        assert!(location(&resp).starts_with("/v2/org/repo/blobs/uploads/"));
        assert!(header(&resp, "docker-upload-uuid").is_some());
        expect_status(resp, 204).await;
    }

    #[tokio::test]
    async fn cancelled_upload_is_gone_with_its_data() {
        let srv = Server::start().await;
        let loc = start_upload(&srv, "repo").await;
        expect_status(patch_chunk(&srv, &loc, 0, b"some bytes").await, 202).await;
        assert_eq!(srv.upload_files().len(), 1);
        expect_status(send(srv.delete(&loc)).await, 204).await;
        expect_error(send(srv.get(&loc)).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
        expect_error(
            patch_chunk(&srv, &loc, 10, b"more").await,
            404,
            "BLOB_UPLOAD_UNKNOWN",
        )
        .await;
        expect_error(send(srv.delete(&loc)).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
        assert!(srv.upload_files().is_empty(), "{:?}", srv.upload_files());
    }

    /// Open sessions are bounded per namespace: one more is refused with a code a
    /// client retries on, in any repository of the namespace; other namespaces are not
    /// affected, and a session that ends (finished or cancelled) makes room. Requests
    /// at once cannot all pass the bound.
    #[tokio::test]
    async fn open_upload_sessions_are_bounded_per_namespace() {
        let dir = tempfile::tempdir().expect("creating a temporary folder");
        let srv = Server::start_configured(dir, |c| c.max_open_uploads = 3).await;
        let mut open = Vec::new();
        for repo in ["team/app", "team/app", "team/other"] {
            open.push(start_upload(&srv, repo).await);
        }
        let over = |repo: &str| {
            send(
                srv.post(&format!("/v2/{repo}/blobs/uploads/"))
                    .header(CONTENT_LENGTH, "0"),
            )
        };
        let body = expect_error(over("team/app").await, 429, "TOOMANYREQUESTS").await;
        assert!(
            body.to_string()
                .contains("3 upload sessions are open in namespace team"),
            "{body}"
        );
        expect_error(over("team/third").await, 429, "TOOMANYREQUESTS").await;
        start_upload(&srv, "elsewhere/app").await;
        start_upload(&srv, "teams/app").await;
        expect_status(send(srv.delete(&open[0])).await, 204).await;
        let again = start_upload(&srv, "team/app").await;
        let blob = b"finished";
        let digest = sha256(blob);
        let done = send(
            srv.put(&format!("{again}?digest={digest}"))
                .header(CONTENT_LENGTH, blob.len().to_string())
                .body(blob.to_vec()),
        )
        .await;
        expect_status(done, 201).await;
        // One slot free: of ten requests at once, one gets it.
        let answers = futures_util::future::join_all((0..10).map(|_| over("team/app"))).await;
        let accepted = answers
            .iter()
            .filter(|r| r.status().as_u16() == 202)
            .count();
        assert_eq!(
            accepted,
            1,
            "{:?}",
            answers.iter().map(|r| r.status()).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn unknown_upload_session_is_404_blob_upload_unknown() {
        let srv = Server::start().await;
        start_upload(&srv, "repo").await;
        let d = sha256(b"x");
        for id in [
            "3f1b2d7e-0000-4000-8000-000000000000",
            "not-a-uuid",
            "meta.db",
        ] {
            let loc = format!("/v2/repo/blobs/uploads/{id}");
            expect_error(send(srv.get(&loc)).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
            expect_error(
                patch_chunk(&srv, &loc, 0, b"x").await,
                404,
                "BLOB_UPLOAD_UNKNOWN",
            )
            .await;
            expect_error(
                finish_upload(&srv, &loc, &d, b"x").await,
                404,
                "BLOB_UPLOAD_UNKNOWN",
            )
            .await;
            expect_error(send(srv.delete(&loc)).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
        }
        if metadata_backend() == "sqlite" {
            assert!(srv.root.join("meta.db").is_file());
        }
    }

    #[tokio::test]
    async fn upload_session_belongs_to_its_repository() {
        let srv = Server::start().await;
        let loc = start_upload(&srv, "one").await;
        let id = loc.rsplit('/').next().unwrap();
        let other = format!("/v2/two/blobs/uploads/{id}");
        expect_error(send(srv.get(&other)).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
        expect_error(
            patch_chunk(&srv, &other, 0, b"x").await,
            404,
            "BLOB_UPLOAD_UNKNOWN",
        )
        .await;
        expect_error(send(srv.delete(&other)).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
        // Still alive where it was opened.
        expect_status(send(srv.get(&loc)).await, 204).await;
    }

    #[tokio::test]
    async fn put_without_digest_is_digest_invalid_and_session_survives() {
        let srv = Server::start().await;
        let (blob, d) = blob_b();
        let loc = start_upload(&srv, "repo").await;
        expect_status(patch_chunk(&srv, &loc, 0, &blob).await, 202).await;
        let resp = send(srv.put(&loc).header(CONTENT_LENGTH, "0")).await;
        expect_error(resp, 400, "DIGEST_INVALID").await;
        let resp = finish_upload(&srv, &loc, "sha256:nothex", b"").await;
        expect_error(resp, 400, "DIGEST_INVALID").await;
        assert_eq!(status_range(&srv, &loc).await.0, "0-41");
        expect_status(finish_upload(&srv, &loc, &d, b"").await, 201).await;
    }

    #[tokio::test]
    async fn digest_mismatch_on_put_is_digest_invalid_and_nothing_is_kept() {
        let srv = Server::start().await;
        let blob = data(11, 500);
        let claimed = sha256(b"something else entirely");
        let loc = start_upload(&srv, "repo").await;
        expect_status(patch_chunk(&srv, &loc, 0, &blob).await, 202).await;
        let resp = finish_upload(&srv, &loc, &claimed, b"").await;
        expect_error(resp, 400, "DIGEST_INVALID").await;
        srv.assert_nothing_kept("repo", &[&claimed, &sha256(&blob)])
            .await;
    }

    #[tokio::test]
    async fn digest_mismatch_on_monolithic_post_keeps_nothing() {
        let srv = Server::start().await;
        let blob = data(12, 300);
        let claimed = sha256(b"not this");
        let resp = push_blob_monolithic(&srv, "repo", &blob, &claimed).await;
        expect_error(resp, 400, "DIGEST_INVALID").await;
        srv.assert_nothing_kept("repo", &[&claimed, &sha256(&blob)])
            .await;
    }

    #[tokio::test]
    async fn sha512_digests_work_for_monolithic_and_chunked_uploads() {
        let srv = Server::start().await;
        let a = data(13, 1000);
        let da = sha512(&a);
        expect_status(push_blob_monolithic(&srv, "repo", &a, &da).await, 201).await;

        let b = data(14, 1000);
        let db = sha512(&b);
        let loc = start_upload(&srv, "repo").await;
        expect_status(patch_chunk(&srv, &loc, 0, &b[..400]).await, 202).await;
        expect_status(patch_chunk(&srv, &loc, 400, &b[400..]).await, 202).await;
        let resp = finish_upload(&srv, &loc, &db, b"").await;
        assert_eq!(location(&resp), format!("/v2/repo/blobs/{db}"));
        expect_status(resp, 201).await;

        for (d, bytes) in [(&da, &a), (&db, &b)] {
            let resp = send(srv.get(&format!("/v2/repo/blobs/{d}"))).await;
            let (h, body) = expect_status(resp, 200).await;
            assert_eq!(&body, bytes);
            assert_eq!(
                header_of(&h, "docker-content-digest").as_deref(),
                Some(d.as_str())
            );
        }
        // The sha256 name of the same bytes is a different blob.
        let resp = send(srv.head(&format!("/v2/repo/blobs/{}", sha256(&a)))).await;
        assert_eq!(resp.status(), 404);
    }

    /// Malformed ranges, and ranges of 2^64 bytes, whose length overflowed
    /// `end - start + 1` (a panic in a debug build, a wrong check in a release one).
    #[tokio::test]
    async fn malformed_content_range_answers_416() {
        let srv = Server::start().await;
        let loc = start_upload(&srv, "repo").await;
        let overflowing = ["0-18446744073709551615", "bytes 0-18446744073709551615/*"];
        for range in ["abc", "5-1", "-3", "0-x"].into_iter().chain(overflowing) {
            let resp = send(
                srv.patch(&loc)
                    .header(CONTENT_TYPE, OCTET)
                    .header(CONTENT_RANGE, range)
                    .body(b"xyz".to_vec()),
            )
            .await;
            expect_error(resp, 416, "BLOB_UPLOAD_INVALID").await;
        }
        // Nothing was appended.
        expect_status(patch_chunk(&srv, &loc, 0, b"xyz").await, 202).await;
    }

    #[tokio::test]
    async fn chunk_shorter_than_its_content_range_is_refused_and_not_kept() {
        let srv = Server::start().await;
        let blob = data(15, 20);
        let d = sha256(&blob);
        let loc = start_upload(&srv, "repo").await;
        expect_status(patch_chunk(&srv, &loc, 0, &blob[..10]).await, 202).await;
        // Claims 10-19 but carries 5 bytes.
        let resp = send(
            srv.patch(&loc)
                .header(CONTENT_TYPE, OCTET)
                .header(CONTENT_RANGE, "10-19")
                .body(blob[10..15].to_vec()),
        )
        .await;
        let (status, _code) = error_of(resp).await;
        assert!((400..500).contains(&status), "status {status}");
        // A refused chunk must leave the session as it was.
        let resp = send(srv.get(&loc)).await;
        assert_eq!(header(&resp, "range").as_deref(), Some("0-9"));
        expect_status(patch_chunk(&srv, &loc, 10, &blob[10..]).await, 202).await;
        expect_status(finish_upload(&srv, &loc, &d, b"").await, 201).await;
    }

    #[tokio::test]
    async fn upload_resumes_after_a_dropped_connection() {
        let srv = Server::start().await;
        let blob = data(16, 64 * 1024);
        let d = sha256(&blob);
        let cut = 40_000;
        let loc = start_upload(&srv, "repo").await;

        let head = Bytes::from(blob[..cut].to_vec());
        let stream = futures_util::stream::iter(vec![Ok::<Bytes, std::io::Error>(head)]).chain(
            futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Err(std::io::Error::other("client went away"))
            }),
        );
        let result = srv
            .patch(&loc)
            .header(CONTENT_TYPE, OCTET)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await;
        if let Ok(resp) = result {
            assert!(!resp.status().is_success(), "a broken body was accepted");
        }

        // The bytes that arrived are kept (the server may still be writing them).
        let want = format!("0-{}", cut - 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        let (range, loc2) = loop {
            let (range, loc2) = status_range(&srv, &loc).await;
            if range == want || Instant::now() > deadline {
                break (range, loc2);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(range, want);

        expect_status(patch_chunk(&srv, &loc2, cut, &blob[cut..]).await, 202).await;
        let resp = finish_upload(&srv, &loc2, &d, b"").await;
        expect_status(resp, 201).await;
        let (_, body) =
            expect_status(send(srv.get(&format!("/v2/repo/blobs/{d}"))).await, 200).await;
        assert_eq!(body, blob);
    }
}

mod mounts {
    use crate::support::*;

    #[tokio::test]
    async fn mount_from_a_repository_answers_201_with_exact_location() {
        let srv = Server::start().await;
        let blob = data(20, 42);
        let d = push_blob(&srv, "source", &blob).await;
        let target = "conformance-target/nested";
        let resp = send(srv.post(&format!(
            "/v2/{target}/blobs/uploads/?mount={d}&from=source"
        )))
        .await;
        assert_eq!(location(&resp), format!("/v2/{target}/blobs/{d}"));
        assert_eq!(header(&resp, "docker-content-digest").as_deref(), Some(&*d));
        expect_status(resp, 201).await;
        let resp = send(srv.get(&format!("/v2/{target}/blobs/{d}"))).await;
        let (_, body) = expect_status(resp, 200).await;
        assert_eq!(body, blob);
    }

    #[tokio::test]
    async fn mount_of_an_unknown_blob_falls_back_to_an_upload_session() {
        let srv = Server::start().await;
        push_blob(&srv, "source", b"something").await;
        for query in [
            format!("mount={DUMMY_DIGEST}"),
            format!("mount={DUMMY_DIGEST}&from=source"),
        ] {
            let resp = send(srv.post(&format!("/v2/target/blobs/uploads/?{query}"))).await;
            let loc = location(&resp);
            assert!(
                loc.starts_with("/v2/target/blobs/uploads/"),
                "{query}: {loc}"
            );
            expect_status(resp, 202).await;
            // The session is a normal one.
            let resp = finish_upload(&srv, &loc, DUMMY_DIGEST, b"hello world").await;
            expect_status(resp, 201).await;
            expect_status(
                send(srv.delete(&format!("/v2/target/blobs/{DUMMY_DIGEST}"))).await,
                202,
            )
            .await;
        }
    }

    #[tokio::test]
    async fn automatic_mount_without_from_answers_201() {
        let srv = Server::start().await;
        let blob = data(21, 99);
        let d = push_blob(&srv, "source", &blob).await;
        let resp = send(srv.post(&format!("/v2/target/blobs/uploads/?mount={d}"))).await;
        assert_eq!(location(&resp), format!("/v2/target/blobs/{d}"));
        expect_status(resp, 201).await;
        let (_, body) =
            expect_status(send(srv.get(&format!("/v2/target/blobs/{d}"))).await, 200).await;
        assert_eq!(body, blob);
    }

    #[tokio::test]
    async fn mount_from_a_repository_without_the_blob_falls_back_to_202() {
        let srv = Server::start().await;
        let d = push_blob(&srv, "has-it", b"blob in has-it").await;
        push_blob(&srv, "lacks-it", b"other blob").await;
        let resp = send(srv.post(&format!(
            "/v2/target/blobs/uploads/?mount={d}&from=lacks-it"
        )))
        .await;
        assert!(location(&resp).starts_with("/v2/target/blobs/uploads/"));
        expect_status(resp, 202).await;
        assert_eq!(
            send(srv.head(&format!("/v2/target/blobs/{d}")))
                .await
                .status(),
            404
        );
    }

    #[tokio::test]
    async fn mount_with_invalid_names_or_digests_is_refused() {
        let srv = Server::start().await;
        let d = push_blob(&srv, "source", b"x").await;
        let resp = send(srv.post(&format!(
            "/v2/target/blobs/uploads/?mount={d}&from=..%2Fsource"
        )))
        .await;
        expect_error(resp, 400, "NAME_INVALID").await;
        let resp = send(srv.post("/v2/target/blobs/uploads/?mount=sha256:zz&from=source")).await;
        expect_error(resp, 400, "DIGEST_INVALID").await;
    }
}

mod manifests {
    use crate::support::*;
    use reqwest::header::{ACCEPT, CONTENT_TYPE};
    use serde_json::json;

    #[tokio::test]
    async fn manifest_put_by_tag_answers_201_with_location_and_digest() {
        let srv = Server::start().await;
        let img = image(30);
        push_blob(&srv, "repo", &img.config).await;
        push_blob(&srv, "repo", &img.layer).await;
        for tag in ["test0", "test1", "test2", "test3"] {
            push_manifest(&srv, "repo", tag, OCI_MANIFEST, &img.manifest).await;
        }
        assert_eq!(
            tags(&srv, "repo", "").await.0,
            ["test0", "test1", "test2", "test3"]
        );
    }

    #[tokio::test]
    async fn manifest_get_serves_exact_bytes_and_media_type() {
        let srv = Server::start().await;
        let img = push_image(&srv, "repo", Some("v1"), 31).await;
        for reference in ["v1", img.digest.as_str()] {
            let resp = send(
                srv.get(&format!("/v2/repo/manifests/{reference}"))
                    .header(ACCEPT, OCI_MANIFEST),
            )
            .await;
            let (h, body) = expect_status(resp, 200).await;
            assert_eq!(body, img.manifest, "{reference}");
            assert_eq!(header_of(&h, "content-type").as_deref(), Some(OCI_MANIFEST));
            assert_eq!(
                header_of(&h, "docker-content-digest").as_deref(),
                Some(img.digest.as_str())
            );
            assert_eq!(
                header_of(&h, "content-length"),
                Some(img.manifest.len().to_string())
            );
            assert!(header_of(&h, "etag").is_some_and(|e| e.contains(&img.digest)));
        }
    }

    #[tokio::test]
    async fn manifest_head_by_tag_and_digest_has_headers_and_no_body() {
        let srv = Server::start().await;
        let img = push_image(&srv, "repo", Some("tagtest0"), 32).await;
        for reference in ["tagtest0", img.digest.as_str()] {
            let resp = send(
                srv.head(&format!("/v2/repo/manifests/{reference}"))
                    .header(ACCEPT, OCI_MANIFEST),
            )
            .await;
            let (h, body) = expect_status(resp, 200).await;
            assert!(body.is_empty());
            assert_eq!(
                header_of(&h, "docker-content-digest").as_deref(),
                Some(img.digest.as_str())
            );
            assert_eq!(header_of(&h, "content-type").as_deref(), Some(OCI_MANIFEST));
            assert_eq!(
                header_of(&h, "content-length"),
                Some(img.manifest.len().to_string())
            );
        }
    }

    #[tokio::test]
    async fn manifest_put_by_digest_creates_no_tag() {
        let srv = Server::start().await;
        let img = push_image(&srv, "repo", None, 33).await;
        let resp = send(srv.get(&format!("/v2/repo/manifests/{}", img.digest))).await;
        let (_, body) = expect_status(resp, 200).await;
        assert_eq!(body, img.manifest);
        assert!(tags(&srv, "repo", "").await.0.is_empty());
    }

    #[tokio::test]
    async fn invalid_manifest_name_is_404_on_head_and_get() {
        let srv = Server::start().await;
        push_image(&srv, "repo", Some("latest"), 34).await;
        for repo in ["repo", "never-pushed"] {
            let path = format!("/v2/{repo}/manifests/.INVALID_MANIFEST_NAME");
            assert_eq!(send(srv.head(&path)).await.status(), 404, "HEAD {repo}");
            let (status, code) = error_of(send(srv.get(&path)).await).await;
            assert_eq!(status, 404, "GET {repo}");
            assert!(
                code == "MANIFEST_UNKNOWN" || code == "NAME_UNKNOWN",
                "{repo}: {code}"
            );
        }
    }

    #[tokio::test]
    async fn get_with_malformed_digest_reference_is_400_or_404_with_error() {
        let srv = Server::start().await;
        push_image(&srv, "repo", Some("latest"), 35).await;
        let resp = send(
            srv.get("/v2/repo/manifests/sha256:totallywrong")
                .header(CONTENT_TYPE, OCI_MANIFEST)
                .body("blablabla"),
        )
        .await;
        let (status, _code) = error_of(resp).await;
        assert!(status == 400 || status == 404, "status {status}");
    }

    #[tokio::test]
    async fn unknown_manifest_is_404_manifest_unknown() {
        let srv = Server::start().await;
        // In a repository that does not exist yet.
        let (status, code) = error_of(send(srv.get("/v2/nobody/manifests/latest")).await).await;
        assert_eq!(status, 404);
        assert!(
            code == "NAME_UNKNOWN" || code == "MANIFEST_UNKNOWN",
            "{code}"
        );
        push_image(&srv, "repo", Some("latest"), 36).await;
        let path = format!("/v2/repo/manifests/{DUMMY_DIGEST}");
        expect_error(send(srv.get(&path)).await, 404, "MANIFEST_UNKNOWN").await;
        assert_eq!(send(srv.head(&path)).await.status(), 404);
        expect_error(
            send(srv.get("/v2/repo/manifests/nosuchtag")).await,
            404,
            "MANIFEST_UNKNOWN",
        )
        .await;
    }

    #[tokio::test]
    async fn manifest_is_visible_only_in_its_repository() {
        let srv = Server::start().await;
        let img = push_image(&srv, "one", Some("latest"), 37).await;
        push_image(&srv, "two", Some("latest"), 38).await;
        expect_error(
            send(srv.get(&format!("/v2/two/manifests/{}", img.digest))).await,
            404,
            "MANIFEST_UNKNOWN",
        )
        .await;
    }

    #[tokio::test]
    async fn manifest_with_blob_missing_from_the_repository_is_manifest_blob_unknown() {
        let srv = Server::start().await;
        let img = image(39);
        // Config missing.
        push_blob(&srv, "repo", &img.layer).await;
        let resp = put_manifest(&srv, "repo", "latest", OCI_MANIFEST, &img.manifest).await;
        expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
        // Layer missing.
        let img2 = image(40);
        push_blob(&srv, "repo", &img2.config).await;
        let resp = put_manifest(&srv, "repo", "latest", OCI_MANIFEST, &img2.manifest).await;
        expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
        // Nothing was stored.
        for d in [&img.digest, &img2.digest] {
            assert_eq!(
                send(srv.head(&format!("/v2/repo/manifests/{d}")))
                    .await
                    .status(),
                404
            );
        }
        assert!(tags(&srv, "repo", "").await.0.is_empty());
        // Blobs of another repository do not count.
        let other = push_image(&srv, "other", Some("latest"), 41).await;
        let resp = put_manifest(&srv, "repo", "latest", OCI_MANIFEST, &other.manifest).await;
        expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    }

    #[tokio::test]
    async fn index_with_missing_child_is_manifest_unknown() {
        let srv = Server::start().await;
        let present = push_image(&srv, "repo", None, 42).await;
        let absent = image(43);
        let index = manifest_bytes(&index_manifest(
            OCI_INDEX,
            &[present.desc.clone(), absent.desc.clone()],
        ));
        let resp = put_manifest(&srv, "repo", "multi", OCI_INDEX, &index).await;
        expect_error(resp, 400, "MANIFEST_UNKNOWN").await;
        assert_eq!(
            send(srv.head("/v2/repo/manifests/multi")).await.status(),
            404
        );
    }

    #[tokio::test]
    async fn oci_index_round_trips_with_its_media_type() {
        let srv = Server::start().await;
        let a = push_image(&srv, "repo", None, 44).await;
        let b = push_image(&srv, "repo", None, 45).await;
        let index = manifest_bytes(&index_manifest(OCI_INDEX, &[a.desc, b.desc]));
        push_manifest(&srv, "repo", "multi", OCI_INDEX, &index).await;
        let resp = send(
            srv.get("/v2/repo/manifests/multi")
                .header(ACCEPT, OCI_INDEX),
        )
        .await;
        let (h, body) = expect_status(resp, 200).await;
        assert_eq!(body, index);
        assert_eq!(header_of(&h, "content-type").as_deref(), Some(OCI_INDEX));
    }

    #[tokio::test]
    async fn docker_v2s2_manifest_and_manifest_list_round_trip() {
        let srv = Server::start().await;
        let config = config_bytes(46);
        let layer = data(46, 200);
        push_blob(&srv, "repo", &config).await;
        push_blob(&srv, "repo", &layer).await;
        let m = json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": Desc::of(DOCKER_CONFIG, &config).json(),
            "layers": [Desc::of(DOCKER_LAYER, &layer).json()],
        });
        let m = manifest_bytes(&m);
        push_manifest(&srv, "repo", "docker", DOCKER_MANIFEST, &m).await;
        let list = manifest_bytes(&index_manifest(
            DOCKER_LIST,
            &[Desc::of(DOCKER_MANIFEST, &m)],
        ));
        push_manifest(&srv, "repo", "list", DOCKER_LIST, &list).await;
        // Without a Content-Type the body's mediaType decides.
        let resp = send(srv.put("/v2/repo/manifests/untyped").body(m.clone())).await;
        expect_status(resp, 201).await;
        let resp = send(srv.head("/v2/repo/manifests/untyped")).await;
        assert_eq!(
            header(&resp, "content-type").as_deref(),
            Some(DOCKER_MANIFEST)
        );
        for (tag, bytes, mt) in [
            ("docker", &m, DOCKER_MANIFEST),
            ("list", &list, DOCKER_LIST),
        ] {
            let resp = send(srv.get(&format!("/v2/repo/manifests/{tag}"))).await;
            let (h, body) = expect_status(resp, 200).await;
            assert_eq!(&body, bytes, "{tag}");
            assert_eq!(header_of(&h, "content-type").as_deref(), Some(mt), "{tag}");
        }
    }

    #[tokio::test]
    async fn manifest_without_media_type_field_takes_the_content_type() {
        let srv = Server::start().await;
        // The suite's emptyLayerManifest: no top-level mediaType, no layers.
        let config = config_bytes(47);
        push_blob(&srv, "repo", &config).await;
        let m = manifest_bytes(&json!({
            "schemaVersion": 2,
            "config": Desc::of(OCI_CONFIG, &config).json(),
            "layers": [],
        }));
        push_manifest(&srv, "repo", "emptylayer", OCI_MANIFEST, &m).await;
        let resp = send(srv.get("/v2/repo/manifests/emptylayer")).await;
        let (h, body) = expect_status(resp, 200).await;
        assert_eq!(body, m);
        assert_eq!(header_of(&h, "content-type").as_deref(), Some(OCI_MANIFEST));
    }

    #[tokio::test]
    async fn manifest_with_unknown_fields_and_data_is_accepted() {
        let srv = Server::start().await;
        let img = image(48);
        push_blob(&srv, "repo", &img.config).await;
        push_blob(&srv, "repo", &img.layer).await;
        let mut config = img.config_desc.json();
        config["data"] = json!(base64_like::encode(&img.config));
        config["newUnspecifiedField"] = json!("aGVsbG8gd29ybGQ=");
        let mut layer = img.layer_desc.json();
        layer["newUnspecifiedField"] = serde_json::Value::Null;
        let m = manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [layer],
            "somethingNew": {"x": 1},
        }));
        push_manifest(&srv, "repo", "extra", OCI_MANIFEST, &m).await;
        let (_, body) = expect_status(send(srv.get("/v2/repo/manifests/extra")).await, 200).await;
        assert_eq!(body, m);
    }

    /// Just enough standard base64 for a descriptor's `data` field.
    mod base64_like {
        pub fn encode(bytes: &[u8]) -> String {
            const T: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut out = String::new();
            for c in bytes.chunks(3) {
                let n = (c[0] as u32) << 16
                    | (*c.get(1).unwrap_or(&0) as u32) << 8
                    | *c.get(2).unwrap_or(&0) as u32;
                for i in 0..4 {
                    if i <= c.len() {
                        out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                    } else {
                        out.push('=');
                    }
                }
            }
            out
        }
    }

    #[tokio::test]
    async fn non_distributable_layers_need_not_be_uploaded() {
        let srv = Server::start().await;
        let config = config_bytes(49);
        push_blob(&srv, "repo", &config).await;
        let mut foreign = Desc::of(DOCKER_FOREIGN_LAYER, &data(49, 10)).json();
        foreign["urls"] = json!(["https://example.invalid/layer.tar.gz"]);
        let m = manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": Desc::of(DOCKER_CONFIG, &config).json(),
            "layers": [foreign],
        }));
        push_manifest(&srv, "repo", "windows", DOCKER_MANIFEST, &m).await;
    }

    #[tokio::test]
    async fn malformed_manifests_are_manifest_invalid() {
        let srv = Server::start().await;
        let img = image(51);
        push_blob(&srv, "repo", &img.config).await;
        push_blob(&srv, "repo", &img.layer).await;
        let mut wrong_version: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
        wrong_version["schemaVersion"] = json!(1);
        let mut no_config: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
        no_config.as_object_mut().unwrap().remove("config");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            // Body says OCI manifest, header says Docker.
            (DOCKER_MANIFEST, img.manifest.clone()),
            (OCI_MANIFEST, b"blablabla".to_vec()),
            (OCI_MANIFEST, b"[]".to_vec()),
            (OCI_MANIFEST, manifest_bytes(&wrong_version)),
            (OCI_MANIFEST, manifest_bytes(&no_config)),
            (
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                br#"{"schemaVersion":1,"name":"repo","tag":"x","fsLayers":[]}"#.to_vec(),
            ),
        ];
        for (ct, body) in cases {
            let resp = put_manifest(&srv, "repo", "x", ct, &body).await;
            expect_error(resp, 400, "MANIFEST_INVALID").await;
        }
        assert!(tags(&srv, "repo", "").await.0.is_empty());
    }

    #[tokio::test]
    async fn manifest_put_by_wrong_digest_is_digest_invalid() {
        let srv = Server::start().await;
        let img = image(52);
        push_blob(&srv, "repo", &img.config).await;
        push_blob(&srv, "repo", &img.layer).await;
        let resp = put_manifest(&srv, "repo", DUMMY_DIGEST, OCI_MANIFEST, &img.manifest).await;
        expect_error(resp, 400, "DIGEST_INVALID").await;
        assert_eq!(
            send(srv.head(&format!("/v2/repo/manifests/{}", img.digest)))
                .await
                .status(),
            404
        );
    }

    #[tokio::test]
    async fn manifest_put_with_invalid_tag_is_400() {
        let srv = Server::start().await;
        let img = image(53);
        push_blob(&srv, "repo", &img.config).await;
        push_blob(&srv, "repo", &img.layer).await;
        let long = "a".repeat(129);
        for tag in [".INVALID_MANIFEST_NAME", "-dash", long.as_str()] {
            let resp = put_manifest(&srv, "repo", tag, OCI_MANIFEST, &img.manifest).await;
            let (status, code) = error_of(resp).await;
            assert_eq!(status, 400, "{tag}");
            assert!(
                code == "TAG_INVALID" || code == "MANIFEST_INVALID",
                "{tag}: {code}"
            );
        }
    }

    #[tokio::test]
    async fn manifest_over_4_mib_answers_413_and_4_mib_is_accepted() {
        let srv = Server::start().await;
        let img = image(54);
        push_blob(&srv, "repo", &img.config).await;
        push_blob(&srv, "repo", &img.layer).await;
        let mut v: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
        v["annotations"] = json!({"pad": "x".repeat(4 * 1024 * 1024)});
        let big = serde_json::to_vec(&v).unwrap();
        assert!(big.len() > 4 * 1024 * 1024);

        // With Content-Length.
        let resp = put_manifest(&srv, "repo", "big", OCI_MANIFEST, &big).await;
        assert_eq!(error_of(resp).await.0, 413);

        // Streamed, without Content-Length.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            big.chunks(512 * 1024).map(|c| Ok(c.to_vec())).collect();
        let resp = send(
            srv.put("/v2/repo/manifests/big")
                .header(CONTENT_TYPE, OCI_MANIFEST)
                .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                    chunks,
                ))),
        )
        .await;
        assert_eq!(error_of(resp).await.0, 413);
        assert_eq!(send(srv.head("/v2/repo/manifests/big")).await.status(), 404);

        // Exactly 4 MiB is still accepted.
        v["annotations"] = json!({"pad": ""});
        let base = serde_json::to_vec(&v).unwrap().len();
        v["annotations"] = json!({"pad": "x".repeat(4 * 1024 * 1024 - base)});
        let limit = serde_json::to_vec(&v).unwrap();
        assert_eq!(limit.len(), 4 * 1024 * 1024);
        push_manifest(&srv, "repo", "limit", OCI_MANIFEST, &limit).await;
    }

    #[tokio::test]
    async fn manifest_pushed_by_sha512_digest_is_served_by_it() {
        let srv = Server::start().await;
        let config = config_bytes(55);
        let layer = data(55, 300);
        push_blob(&srv, "repo", &config).await;
        // The layer is pushed, and referenced, by its sha512 digest.
        let layer_d = sha512(&layer);
        expect_status(
            push_blob_monolithic(&srv, "repo", &layer, &layer_d).await,
            201,
        )
        .await;
        let layer_desc = Desc {
            media_type: OCI_LAYER.to_string(),
            digest: layer_d,
            size: layer.len(),
        };
        let manifest = manifest_bytes(&image_manifest(
            &Desc::of(OCI_CONFIG, &config),
            &[layer_desc],
        ));
        let img = Image {
            digest: sha256(&manifest),
            desc: Desc::of(OCI_MANIFEST, &manifest),
            config_desc: Desc::of(OCI_CONFIG, &config),
            layer_desc: Desc::of(OCI_LAYER, &layer),
            config,
            layer,
            manifest,
        };
        let d = sha512(&img.manifest);
        let resp = put_manifest(&srv, "repo", &d, OCI_MANIFEST, &img.manifest).await;
        assert_eq!(location(&resp), format!("/v2/repo/manifests/{d}"));
        assert_eq!(header(&resp, "docker-content-digest").as_deref(), Some(&*d));
        expect_status(resp, 201).await;
        let resp = send(srv.get(&format!("/v2/repo/manifests/{d}"))).await;
        let (h, body) = expect_status(resp, 200).await;
        assert_eq!(body, img.manifest);
        assert_eq!(header_of(&h, "docker-content-digest").as_deref(), Some(&*d));
        assert_eq!(header_of(&h, "content-type").as_deref(), Some(OCI_MANIFEST));
        // Stored under its sha512 name only.
        let resp = send(srv.head(&format!("/v2/repo/manifests/{}", img.digest))).await;
        assert_eq!(resp.status(), 404);
    }

    #[tokio::test]
    async fn manifest_delete_by_digest_answers_202_and_removes_its_tags() {
        let srv = Server::start().await;
        let img = push_image(&srv, "repo", Some("a"), 56).await;
        push_manifest(&srv, "repo", "b", OCI_MANIFEST, &img.manifest).await;
        let other = push_image(&srv, "repo", Some("keep"), 57).await;
        let path = format!("/v2/repo/manifests/{}", img.digest);
        expect_status(send(srv.delete(&path)).await, 202).await;
        let (status, _) = error_of(send(srv.get(&path)).await).await;
        assert_eq!(status, 404);
        expect_error(
            send(srv.get("/v2/repo/manifests/a")).await,
            404,
            "MANIFEST_UNKNOWN",
        )
        .await;
        assert_eq!(tags(&srv, "repo", "").await.0, ["keep"]);
        expect_error(send(srv.delete(&path)).await, 404, "MANIFEST_UNKNOWN").await;
        // Blobs are not collected on manifest delete (the suite deletes them next).
        let resp = send(srv.delete(&format!("/v2/repo/blobs/{}", img.config_desc.digest))).await;
        expect_status(resp, 202).await;
        let resp = send(srv.get(&format!("/v2/repo/manifests/{}", other.digest))).await;
        expect_status(resp, 200).await;
    }

    #[tokio::test]
    async fn tag_delete_answers_202_and_keeps_the_manifest() {
        let srv = Server::start().await;
        let img = push_image(&srv, "repo", Some("tagtest0"), 58).await;
        expect_status(send(srv.delete("/v2/repo/manifests/tagtest0")).await, 202).await;
        expect_error(
            send(srv.get("/v2/repo/manifests/tagtest0")).await,
            404,
            "MANIFEST_UNKNOWN",
        )
        .await;
        let resp = send(srv.get(&format!("/v2/repo/manifests/{}", img.digest))).await;
        expect_status(resp, 200).await;
        expect_error(
            send(srv.delete("/v2/repo/manifests/tagtest0")).await,
            404,
            "MANIFEST_UNKNOWN",
        )
        .await;
    }

    #[tokio::test]
    async fn pushing_a_tag_again_moves_it() {
        let srv = Server::start().await;
        let first = push_image(&srv, "repo", Some("latest"), 59).await;
        let second = push_image(&srv, "repo", Some("latest"), 60).await;
        let resp = send(srv.get("/v2/repo/manifests/latest")).await;
        let (h, body) = expect_status(resp, 200).await;
        assert_eq!(body, second.manifest);
        assert_eq!(
            header_of(&h, "docker-content-digest").as_deref(),
            Some(second.digest.as_str())
        );
        // The first stays reachable by digest.
        let resp = send(srv.get(&format!("/v2/repo/manifests/{}", first.digest))).await;
        expect_status(resp, 200).await;
        assert_eq!(tags(&srv, "repo", "").await.0, ["latest"]);
    }
}

mod tags {
    use crate::support::*;

    async fn repo_with_tags(srv: &Server, names: &[&str]) {
        let img = push_image(srv, "repo", None, 70).await;
        for t in names {
            push_manifest(srv, "repo", t, OCI_MANIFEST, &img.manifest).await;
        }
    }

    #[tokio::test]
    async fn tags_list_is_sorted_and_named() {
        let srv = Server::start().await;
        repo_with_tags(&srv, &["v2", "latest", "a", "v1.0", "RC_1-x.Y", "_under"]).await;
        let (tags, link) = tags(&srv, "repo", "").await;
        assert_eq!(tags, ["RC_1-x.Y", "_under", "a", "latest", "v1.0", "v2"]);
        assert!(link.is_none(), "{link:?}");
    }

    #[tokio::test]
    async fn tags_list_n_returns_exactly_n_and_links_the_next_page() {
        let srv = Server::start().await;
        repo_with_tags(&srv, &["a", "b", "c", "d", "e"]).await;
        let (page, link) = tags(&srv, "repo", "n=2").await;
        assert_eq!(page, ["a", "b"]);
        let next = link_target(&link.expect("Link on a partial page"));
        assert!(next.starts_with("/v2/repo/tags/list?"), "{next}");
        let (q_tags, link) = tags(&srv, "repo", next.split_once('?').unwrap().1).await;
        assert_eq!(q_tags, ["c", "d"]);
        let next = link_target(&link.expect("Link on the second page"));
        let (q_tags, link) = tags(&srv, "repo", next.split_once('?').unwrap().1).await;
        assert_eq!(q_tags, ["e"]);
        assert!(link.is_none(), "{link:?}");
        // n equal to the count: exactly all, no Link.
        let (all, link) = tags(&srv, "repo", "n=5").await;
        assert_eq!(all.len(), 5);
        assert!(link.is_none());
    }

    #[tokio::test]
    async fn tags_list_last_starts_after_the_given_tag() {
        let srv = Server::start().await;
        repo_with_tags(&srv, &["a", "b", "c", "d"]).await;
        assert_eq!(tags(&srv, "repo", "last=b").await.0, ["c", "d"]);
        assert_eq!(tags(&srv, "repo", "n=1&last=a").await.0, ["b"]);
        assert_eq!(tags(&srv, "repo", "last=bb").await.0, ["c", "d"]);
        assert!(tags(&srv, "repo", "last=d").await.0.is_empty());
    }

    #[tokio::test]
    async fn tags_list_n_zero_is_an_empty_page() {
        let srv = Server::start().await;
        repo_with_tags(&srv, &["a", "b"]).await;
        assert!(tags(&srv, "repo", "n=0").await.0.is_empty());
    }

    #[tokio::test]
    async fn tags_list_is_200_and_empty_after_deleting_every_tag() {
        let srv = Server::start().await;
        let img = push_image(&srv, "repo", Some("tagtest0"), 71).await;
        push_manifest(&srv, "repo", "test0", OCI_MANIFEST, &img.manifest).await;
        let before = tags(&srv, "repo", "").await.0.len();
        expect_status(send(srv.delete("/v2/repo/manifests/tagtest0")).await, 202).await;
        let resp = send(srv.delete(&format!("/v2/repo/manifests/{}", img.digest))).await;
        expect_status(resp, 202).await;
        let after = tags(&srv, "repo", "").await.0;
        assert!(after.len() < before);
        assert!(after.is_empty(), "{after:?}");
    }

    #[tokio::test]
    async fn tags_list_of_unknown_repository_is_404_name_unknown() {
        let srv = Server::start().await;
        expect_error(
            send(srv.get("/v2/nobody/tags/list")).await,
            404,
            "NAME_UNKNOWN",
        )
        .await;
    }

    #[tokio::test]
    async fn tags_list_with_bad_n_is_400() {
        let srv = Server::start().await;
        repo_with_tags(&srv, &["a"]).await;
        for n in ["abc", "-1"] {
            let resp = send(srv.get(&format!("/v2/repo/tags/list?n={n}"))).await;
            expect_error(resp, 400, "PAGINATION_NUMBER_INVALID").await;
        }
    }
}

mod catalog {
    use crate::support::*;
    use serde_json::Value;

    async fn catalog(api: &Api, query: &str) -> (Vec<String>, Option<String>) {
        let resp = send(api.get(&format!("/v2/_catalog{query}"))).await;
        let (h, body) = expect_status(resp, 200).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        let repos = v["repositories"]
            .as_array()
            .expect("repositories array")
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        (repos, header_of(&h, "link"))
    }

    #[tokio::test]
    async fn catalog_lists_repositories_with_nested_names_in_order() {
        let srv = Server::start().await;
        assert!(catalog(&srv, "").await.0.is_empty());
        for (i, repo) in ["myorg/team/app", "alpine", "myorg/tool"]
            .iter()
            .enumerate()
        {
            push_image(&srv, repo, Some("latest"), 80 + i as u64).await;
        }
        // A repository with blobs but no manifest is not listed.
        push_blob(&srv, "blobs-only", b"x").await;
        let (repos, link) = catalog(&srv, "").await;
        assert_eq!(repos, ["alpine", "myorg/team/app", "myorg/tool"]);
        assert!(link.is_none());
    }

    #[tokio::test]
    async fn catalog_paginates_with_n_last_and_link() {
        let srv = Server::start().await;
        for (i, repo) in ["a", "b", "c"].iter().enumerate() {
            push_image(&srv, repo, Some("latest"), 90 + i as u64).await;
        }
        let (page, link) = catalog(&srv, "?n=2").await;
        assert_eq!(page, ["a", "b"]);
        let next = link_target(&link.expect("Link"));
        assert!(next.starts_with("/v2/_catalog?"), "{next}");
        let (page, link) = catalog(&srv, &next["/v2/_catalog".len()..]).await;
        assert_eq!(page, ["c"]);
        assert!(link.is_none());
        assert_eq!(catalog(&srv, "?last=a").await.0, ["b", "c"]);
    }
}

mod search {
    use crate::support::*;
    use berth_auth::{Actor, Change, Secret, Visibility};
    use serde_json::Value;

    async fn search(api: &Api, query: &str, creds: Option<(&str, &str)>) -> Value {
        let mut rb = api.get(&format!("/v1/search{query}"));
        if let Some((user, password)) = creds {
            rb = rb.basic_auth(user, Some(password));
        }
        let (h, body) = expect_status(send(rb).await, 200).await;
        assert_eq!(
            header_of(&h, "content-type").as_deref(),
            Some("application/json")
        );
        serde_json::from_slice(&body).expect("search answer is JSON")
    }

    fn names(v: &Value) -> Vec<String> {
        v["results"]
            .as_array()
            .expect("results array")
            .iter()
            .map(|r| r["name"].as_str().expect("name").to_string())
            .collect()
    }

    #[tokio::test]
    async fn search_matches_substrings_case_insensitively_in_docker_hub_shape() {
        let srv = Server::start().await;
        for (i, repo) in ["myorg/app", "myorg/web-app", "tools/builder"]
            .iter()
            .enumerate()
        {
            push_image(&srv, repo, Some("latest"), 200 + i as u64).await;
        }
        let v = search(&srv, "?q=APP", None).await;
        assert_eq!(names(&v), ["myorg/app", "myorg/web-app"]);
        assert_eq!(v["num_results"], 2);
        assert_eq!(v["num_pages"], 1);
        assert_eq!(v["page"], 1);
        assert_eq!(v["page_size"], 25);
        assert_eq!(v["query"], "APP");
        assert_eq!(
            v["results"][0],
            serde_json::json!({
                "name": "myorg/app",
                "description": "",
                "star_count": 0,
                "is_official": false,
                "is_automated": false,
            })
        );
        // No term (or an empty one) lists everything; a term nothing contains, nothing.
        let all = ["myorg/app", "myorg/web-app", "tools/builder"];
        assert_eq!(names(&search(&srv, "", None).await), all);
        assert_eq!(names(&search(&srv, "?q=", None).await), all);
        let none = search(&srv, "?q=zzz", None).await;
        assert!(names(&none).is_empty());
        assert_eq!(none["num_results"], 0);
        // Percent-encoded terms are decoded: "/" matches across components.
        assert_eq!(
            names(&search(&srv, "?q=org%2Fw", None).await),
            ["myorg/web-app"]
        );
    }

    #[tokio::test]
    async fn search_limit_defaults_to_25_and_is_capped_at_100() {
        let srv = Server::start().await;
        for i in 0..27u64 {
            push_image(&srv, &format!("repo{i:02}"), Some("v1"), 300 + i).await;
        }
        let v = search(&srv, "?q=repo", None).await;
        assert_eq!(names(&v).len(), 25);
        assert_eq!(names(&v)[0], "repo00");
        let v = search(&srv, "?q=repo&n=2", None).await;
        assert_eq!(names(&v), ["repo00", "repo01"]);
        assert_eq!(v["page_size"], 2);
        let v = search(&srv, "?q=repo&n=1000", None).await;
        assert_eq!(names(&v).len(), 27);
        assert_eq!(v["page_size"], 100);
        // n=0 is the default, as Docker Hub reads it; a non-number is refused.
        assert_eq!(names(&search(&srv, "?n=0", None).await).len(), 25);
        for n in ["abc", "-1"] {
            let resp = send(srv.get(&format!("/v1/search?q=repo&n={n}"))).await;
            expect_error(resp, 400, "PAGINATION_NUMBER_INVALID").await;
        }
    }

    #[tokio::test]
    async fn search_shows_only_what_the_caller_may_pull() {
        let srv = Server::start().await;
        // Pushed while the registry is still open; then alice's namespace gets an owner.
        push_image(&srv, "alice/private", Some("v1"), 400).await;
        push_image(&srv, "alice/public", Some("v1"), 401).await;
        let store = srv.reg.auth().store();
        for change in [
            Change::UserAdd {
                name: "alice".into(),
                password: Secret("alice-pw".into()),
                superuser: false,
            },
            Change::UserAdd {
                name: "bob".into(),
                password: Secret("bob-pw".into()),
                superuser: false,
            },
            Change::RepoVisibility {
                repository: "alice/public".into(),
                visibility: Visibility::Public,
            },
        ] {
            store
                .apply(&Actor::local(), &change)
                .unwrap_or_else(|e| panic!("{change:?}: {e}"));
        }
        // Anonymous: a 401 with the token challenge, so that podman (which asks
        // /v1/search without credentials) falls back to the catalog with them.
        let resp = send(srv.get("/v1/search?q=alice")).await;
        let (h, body) = expect_status(resp, 401).await;
        assert_eq!(error_code(&body), "UNAUTHORIZED");
        let challenge = header_of(&h, "www-authenticate").expect("WWW-Authenticate");
        assert!(challenge.starts_with("Bearer realm="), "{challenge}");
        let bob = search(&srv, "?q=alice", Some(("bob", "bob-pw"))).await;
        assert_eq!(names(&bob), ["alice/public"]);
        let alice = search(&srv, "?q=alice", Some(("alice", "alice-pw"))).await;
        assert_eq!(names(&alice), ["alice/private", "alice/public"]);
        // The catalog hides the same repository (one filter serves both), and shows
        // anonymous callers the public ones.
        let resp = send(srv.get("/v2/_catalog").basic_auth("bob", Some("bob-pw"))).await;
        let (_, body) = expect_status(resp, 200).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["repositories"], serde_json::json!(["alice/public"]));
        let resp = send(srv.get("/v2/_catalog")).await;
        let (_, body) = expect_status(resp, 200).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["repositories"], serde_json::json!(["alice/public"]));
        // Wrong credentials are refused, never served as anonymous.
        let resp = send(
            srv.get("/v1/search?q=alice")
                .basic_auth("alice", Some("nope")),
        )
        .await;
        expect_error(resp, 401, "UNAUTHORIZED").await;
    }
}

mod referrers {
    use crate::support::*;
    use serde_json::{json, Value};

    const TYPE_A: &str = "application/vnd.nhl.peanut.butter.bagel";
    const TYPE_B: &str = "application/vnd.nba.strawberry.jam.croissant";
    const ANNOTATION: &str = "org.opencontainers.conformance.test";
    const REPO: &str = "repo";

    /// What the conformance suite's discovery setup pushes.
    struct Setup {
        subject: Image,
        /// Never pushed, but referred to by `c_layer`.
        missing: Image,
        a_config: Vec<u8>,
        a_layer: Vec<u8>,
        index: Vec<u8>,
        b_config: Vec<u8>,
        b_layer: Vec<u8>,
        c_layer: Vec<u8>,
    }

    fn artifact(
        config: &Desc,
        layer: &Desc,
        artifact_type: Option<&str>,
        subject: &Desc,
        annotation: Option<&str>,
    ) -> Vec<u8> {
        let mut m = image_manifest(config, std::slice::from_ref(layer));
        if let Some(t) = artifact_type {
            m["artifactType"] = json!(t);
        }
        m["subject"] = subject.json();
        if let Some(a) = annotation {
            m["annotations"] = json!({ ANNOTATION: a });
        }
        manifest_bytes(&m)
    }

    async fn put_with_subject(api: &Api, body: &[u8], media_type: &str, subject: &str) {
        let h = push_manifest(api, REPO, &sha256(body), media_type, body).await;
        assert_eq!(
            header_of(&h, "oci-subject").as_deref(),
            Some(subject),
            "OCI-Subject"
        );
    }

    async fn setup(srv: &Server) -> Setup {
        let subject = image(100);
        let missing = image(101);
        let empty = b"{}".to_vec();
        let ref_a = b"NHL Peanut Butter on my NHL bagel".to_vec();
        let ref_b = b"NBA Strawberry Jam on my NBA croissant".to_vec();
        let empty_desc = Desc::of(OCI_EMPTY, &empty);
        assert_eq!(
            empty_desc.digest,
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        push_blob(srv, REPO, &empty).await;
        push_blob(srv, REPO, &ref_a).await;
        let s = &subject.desc;
        let a_config = artifact(
            &Desc::of(TYPE_A, &ref_a),
            &empty_desc,
            None,
            s,
            Some("test config a"),
        );
        let a_layer = artifact(
            &empty_desc,
            &Desc::of(TYPE_A, &ref_a),
            Some(TYPE_A),
            s,
            Some("test layer a"),
        );
        // Pushed before their subject exists.
        put_with_subject(srv, &a_config, OCI_MANIFEST, &subject.digest).await;
        put_with_subject(srv, &a_layer, OCI_MANIFEST, &subject.digest).await;
        let mut index = index_manifest(
            OCI_INDEX,
            &[
                Desc::of(OCI_MANIFEST, &a_config),
                Desc::of(OCI_MANIFEST, &a_layer),
            ],
        );
        index["artifactType"] = json!("application/vnd.food.stand");
        index["subject"] = s.json();
        index["annotations"] = json!({ ANNOTATION: "test index" });
        let index = manifest_bytes(&index);
        put_with_subject(srv, &index, OCI_INDEX, &subject.digest).await;

        push_blob(srv, REPO, &subject.config).await;
        push_blob(srv, REPO, &subject.layer).await;
        push_manifest(srv, REPO, "tagtest0", OCI_MANIFEST, &subject.manifest).await;

        push_blob(srv, REPO, &ref_b).await;
        let b_config = artifact(
            &Desc::of(TYPE_B, &ref_b),
            &empty_desc,
            None,
            s,
            Some("test config b"),
        );
        let b_layer = artifact(
            &empty_desc,
            &Desc::of(TYPE_B, &ref_b),
            Some(TYPE_B),
            s,
            Some("test layer b"),
        );
        put_with_subject(srv, &b_config, OCI_MANIFEST, &subject.digest).await;
        put_with_subject(srv, &b_layer, OCI_MANIFEST, &subject.digest).await;
        let c_layer = artifact(
            &empty_desc,
            &Desc::of(TYPE_B, &ref_b),
            Some(TYPE_B),
            &missing.desc,
            None,
        );
        put_with_subject(srv, &c_layer, OCI_MANIFEST, &missing.digest).await;
        Setup {
            subject,
            missing,
            a_config,
            a_layer,
            index,
            b_config,
            b_layer,
            c_layer,
        }
    }

    /// `GET /v2/repo/referrers/<digest>[?query]`: asserts 200 and the exact
    /// Content-Type; returns the descriptors and the OCI-Filters-Applied header.
    async fn referrers(api: &Api, digest: &str, query: &str) -> (Vec<Value>, Option<String>) {
        let resp = send(api.get(&format!("/v2/{REPO}/referrers/{digest}{query}"))).await;
        let (h, body) = expect_status(resp, 200).await;
        assert_eq!(
            header_of(&h, "content-type").as_deref(),
            Some(OCI_INDEX),
            "referrers Content-Type"
        );
        let v: Value = serde_json::from_slice(&body).expect("referrers body is JSON");
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["mediaType"], OCI_INDEX);
        let manifests = v["manifests"].as_array().expect("manifests array").clone();
        (manifests, header_of(&h, "oci-filters-applied"))
    }

    fn digests(list: &[Value]) -> Vec<String> {
        let mut d: Vec<String> = list
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_string())
            .collect();
        d.sort();
        d
    }

    fn sorted(bodies: &[&[u8]]) -> Vec<String> {
        let mut d: Vec<String> = bodies.iter().map(|b| sha256(b)).collect();
        d.sort();
        d
    }

    #[tokio::test]
    async fn put_with_dangling_subject_answers_201_with_oci_subject() {
        // Image manifests and an index, all before their subject exists.
        let srv = Server::start().await;
        let s = setup(&srv).await;
        // The referrers stay stored as pushed.
        let resp = send(srv.get(&format!("/v2/{REPO}/manifests/{}", sha256(&s.index)))).await;
        let (h, body) = expect_status(resp, 200).await;
        assert_eq!(body, s.index);
        assert_eq!(header_of(&h, "content-type").as_deref(), Some(OCI_INDEX));
    }

    #[tokio::test]
    async fn referrers_lists_every_referrer_with_its_annotations() {
        let srv = Server::start().await;
        let s = setup(&srv).await;
        let (list, filters) = referrers(&srv, &s.subject.digest, "").await;
        assert!(filters.is_none(), "{filters:?}");
        assert_eq!(
            digests(&list),
            sorted(&[&s.a_config, &s.a_layer, &s.index, &s.b_config, &s.b_layer])
        );
        let expected = [
            (&s.a_config, "test config a", OCI_MANIFEST, TYPE_A),
            (&s.a_layer, "test layer a", OCI_MANIFEST, TYPE_A),
            (
                &s.index,
                "test index",
                OCI_INDEX,
                "application/vnd.food.stand",
            ),
            (&s.b_config, "test config b", OCI_MANIFEST, TYPE_B),
            (&s.b_layer, "test layer b", OCI_MANIFEST, TYPE_B),
        ];
        for (body, annotation, media_type, artifact_type) in expected {
            let d = sha256(body);
            let m = list.iter().find(|m| m["digest"] == d.as_str()).unwrap();
            assert_eq!(m["mediaType"], media_type, "{annotation}");
            assert_eq!(m["size"], body.len(), "{annotation}");
            assert_eq!(m["artifactType"], artifact_type, "{annotation}");
            assert_eq!(m["annotations"], json!({ ANNOTATION: annotation }));
        }
    }

    #[tokio::test]
    async fn referrers_filter_by_artifact_type_sets_oci_filters_applied() {
        let srv = Server::start().await;
        let s = setup(&srv).await;
        let (list, filters) =
            referrers(&srv, &s.subject.digest, &format!("?artifactType={TYPE_A}")).await;
        assert_eq!(filters.as_deref(), Some("artifactType"));
        // AConfig matches through its config's media type, ALayer through artifactType.
        assert_eq!(digests(&list), sorted(&[&s.a_config, &s.a_layer]));
        for m in &list {
            assert_eq!(m["annotations"].as_object().unwrap().len(), 1);
        }
        let (list, filters) = referrers(
            &srv,
            &s.subject.digest,
            "?artifactType=application/vnd.nothing.like.this",
        )
        .await;
        assert_eq!(filters.as_deref(), Some("artifactType"));
        assert!(list.is_empty());
        let (list, _) = referrers(
            &srv,
            &s.subject.digest,
            "?artifactType=application/vnd.food.stand",
        )
        .await;
        assert_eq!(digests(&list), sorted(&[&s.index]));
    }

    #[tokio::test]
    async fn referrers_of_unknown_digest_is_an_empty_index() {
        let srv = Server::start().await;
        setup(&srv).await;
        let (list, _) = referrers(&srv, DUMMY_DIGEST, "").await;
        assert!(list.is_empty());
        // Also in a repository that does not exist.
        let resp = send(srv.get(&format!("/v2/nobody/referrers/{DUMMY_DIGEST}"))).await;
        let (h, body) = expect_status(resp, 200).await;
        assert_eq!(header_of(&h, "content-type").as_deref(), Some(OCI_INDEX));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v["manifests"].as_array().is_none_or(|m| m.is_empty()));
    }

    #[tokio::test]
    async fn referrers_of_never_pushed_subject_lists_its_referrer() {
        let srv = Server::start().await;
        let s = setup(&srv).await;
        let (list, _) = referrers(&srv, &s.missing.digest, "").await;
        assert_eq!(digests(&list), [sha256(&s.c_layer)]);
        assert!(list[0].get("annotations").is_none_or(|a| a.is_null()));
    }

    #[tokio::test]
    async fn deleted_referrer_disappears_from_the_list() {
        let srv = Server::start().await;
        let s = setup(&srv).await;
        let path = format!("/v2/{REPO}/manifests/{}", sha256(&s.b_layer));
        expect_status(send(srv.delete(&path)).await, 202).await;
        let (list, _) = referrers(&srv, &s.subject.digest, "").await;
        assert_eq!(
            digests(&list),
            sorted(&[&s.a_config, &s.a_layer, &s.index, &s.b_config])
        );
    }

    /// Many referrers come a page at a time, each `Link` leading to the next, every
    /// referrer once; a bad `last` is refused.
    #[tokio::test]
    async fn many_referrers_are_paged_by_link() {
        let srv = Server::start().await;
        let subject = image(102);
        let empty = b"{}".to_vec();
        push_blob(&srv, REPO, &empty).await;
        let empty_desc = Desc::of(OCI_EMPTY, &empty);
        let mut pushed = Vec::new();
        for i in 0..300 {
            let m = artifact(
                &empty_desc,
                &empty_desc,
                Some(TYPE_A),
                &subject.desc,
                Some(&format!("r{i}")),
            );
            put_with_subject(&srv, &m, OCI_MANIFEST, &subject.digest).await;
            pushed.push(m);
        }
        let mut seen = Vec::new();
        let mut next = Some(format!("/v2/{REPO}/referrers/{}", subject.digest));
        let mut pages = 0;
        while let Some(path) = next.take() {
            let (h, body) = expect_status(send(srv.get(&path)).await, 200).await;
            let v: Value = serde_json::from_slice(&body).unwrap();
            let page = v["manifests"].as_array().unwrap();
            assert!(page.len() <= 128, "{}", page.len());
            seen.extend(
                page.iter()
                    .map(|m| m["digest"].as_str().unwrap().to_string()),
            );
            next = header_of(&h, "link").map(|l| {
                l.trim_start_matches('<')
                    .split_once(">; rel=\"next\"")
                    .unwrap()
                    .0
                    .to_string()
            });
            pages += 1;
        }
        assert_eq!(pages, 3);
        seen.sort();
        let mut want: Vec<String> = pushed.iter().map(|m| sha256(m)).collect();
        want.sort();
        assert_eq!(seen, want);
        let resp = send(srv.get(&format!(
            "/v2/{REPO}/referrers/{}?last=nope",
            subject.digest
        )))
        .await;
        expect_status(resp, 400).await;
    }

    #[tokio::test]
    async fn referrers_are_per_repository() {
        let srv = Server::start().await;
        let s = setup(&srv).await;
        let resp = send(srv.get(&format!("/v2/other/referrers/{}", s.subject.digest))).await;
        let (_, body) = expect_status(resp, 200).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            v["manifests"].as_array().is_none_or(|m| m.is_empty()),
            "{v}"
        );
    }

    #[tokio::test]
    async fn referrers_with_malformed_digest_is_digest_invalid() {
        let srv = Server::start().await;
        setup(&srv).await;
        let resp = send(srv.get(&format!("/v2/{REPO}/referrers/sha256:nothex"))).await;
        expect_error(resp, 400, "DIGEST_INVALID").await;
    }
}

mod names {
    use std::path::Path;

    use crate::support::*;

    #[tokio::test]
    async fn nested_repository_names_work_end_to_end() {
        let srv = Server::start().await;
        for repo in ["myorg/team/app", "a/b/c/d/e", "x.y_z__w---v/0"] {
            let img = push_image(&srv, repo, Some("v1"), 110).await;
            let resp = send(srv.get(&format!("/v2/{repo}/manifests/v1"))).await;
            let (_, body) = expect_status(resp, 200).await;
            assert_eq!(body, img.manifest, "{repo}");
            assert_eq!(tags(&srv, repo, "").await.0, ["v1"], "{repo}");
            let resp = send(srv.get(&format!("/v2/{repo}/blobs/{}", img.layer_desc.digest))).await;
            expect_status(resp, 200).await;
        }
        // Names that end in an endpoint word are still names.
        let img = push_image(&srv, "a/manifests/b", Some("v1"), 111).await;
        let resp = send(srv.get("/v2/a/manifests/b/manifests/v1")).await;
        let (_, body) = expect_status(resp, 200).await;
        assert_eq!(body, img.manifest);
    }

    #[tokio::test]
    async fn invalid_names_are_name_invalid_on_every_endpoint() {
        let srv = Server::start().await;
        let long = "a".repeat(256);
        let bad = [
            "MyRepo",
            "UPPER/case",
            "a//b",
            "-a",
            "a_",
            "a..b",
            "a___b",
            "a%20b",
            "a%2e%2eb",
            long.as_str(),
        ];
        for name in bad {
            let cases = [
                (reqwest::Method::GET, format!("/v2/{name}/tags/list")),
                (reqwest::Method::GET, format!("/v2/{name}/manifests/latest")),
                (reqwest::Method::PUT, format!("/v2/{name}/manifests/latest")),
                (
                    reqwest::Method::DELETE,
                    format!("/v2/{name}/manifests/latest"),
                ),
                (
                    reqwest::Method::GET,
                    format!("/v2/{name}/blobs/{DUMMY_DIGEST}"),
                ),
                (reqwest::Method::POST, format!("/v2/{name}/blobs/uploads/")),
                (
                    reqwest::Method::GET,
                    format!("/v2/{name}/referrers/{DUMMY_DIGEST}"),
                ),
            ];
            for (method, path) in cases {
                let resp = send(srv.req(method.clone(), &path).body("{}")).await;
                let (status, code) = error_of(resp).await;
                assert_eq!(
                    (status, code.as_str()),
                    (400, "NAME_INVALID"),
                    "{method} {path}"
                );
            }
        }
        // Nothing was created.
        let resp = send(srv.get("/v2/_catalog")).await;
        let (_, body) = expect_status(resp, 200).await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["repositories"], serde_json::json!([]));
    }

    fn assert_root_untouched(dir: &Path, root: &Path) {
        assert_eq!(
            list_dir(dir),
            ["root"],
            "something was written beside the root"
        );
        for entry in list_dir(root) {
            assert!(
                ["blobs", "uploads", "auth"].contains(&entry.as_str())
                    || entry.starts_with("meta.db")
                    || entry.starts_with("catalog.db"),
                "unexpected {entry} in the root"
            );
        }
        let mut all = Vec::new();
        walk(root, &mut all);
        for p in &all {
            let s = p.to_string_lossy();
            assert!(!s.contains("evil") && !s.contains(".."), "{s}");
        }
        assert!(list_dir(&root.join("uploads")).is_empty());
    }

    #[tokio::test]
    async fn path_traversal_names_are_refused_and_touch_no_files() {
        let srv = Server::start().await;
        let body = b"evil bytes".to_vec();
        let d = sha256(&body);
        let names = [
            "..",
            "../evil",
            "../../evil",
            "%2e%2e/evil",
            "%2e%2e%2fevil",
            "..%2f..%2fevil",
            "a/../../evil",
            "a/%2e%2e/evil",
            "./evil",
            "evil/..",
            "%2fetc/evil",
        ];
        for name in names {
            for (method, target) in [
                ("POST", format!("/v2/{name}/blobs/uploads/")),
                ("POST", format!("/v2/{name}/blobs/uploads/?digest={d}")),
                ("PUT", format!("/v2/{name}/manifests/latest")),
                ("GET", format!("/v2/{name}/manifests/latest")),
                ("GET", format!("/v2/{name}/blobs/{d}")),
                ("DELETE", format!("/v2/{name}/blobs/{d}")),
                ("GET", format!("/v2/{name}/tags/list")),
            ] {
                let (status, text) = raw_request(srv.addr, method, &target, &body).await;
                assert_eq!(status, 400, "{method} {target}: {text}");
                assert!(text.contains("NAME_INVALID"), "{method} {target}: {text}");
            }
        }
        // Digests and upload ids are never paths either.
        for (method, target) in [
            ("GET", "/v2/repo/blobs/sha256:..%2f..%2fmeta.db".to_string()),
            ("GET", "/v2/repo/blobs/..%2f..%2fmeta.db".to_string()),
            ("DELETE", "/v2/repo/blobs/uploads/..%2fmeta.db".to_string()),
            ("DELETE", "/v2/repo/blobs/uploads/%2e%2e".to_string()),
            ("PATCH", "/v2/repo/blobs/uploads/..%2f..%2fevil".to_string()),
            ("PUT", "/v2/repo/manifests/..%2f..%2fevil".to_string()),
        ] {
            let (status, text) = raw_request(srv.addr, method, &target, &body).await;
            assert!(
                (400..500).contains(&status),
                "{method} {target}: {status} {text}"
            );
        }
        assert_root_untouched(srv.dir.path(), &srv.root);
        // The registry still works.
        push_image(&srv, "repo", Some("ok"), 112).await;
    }
}

mod ops {
    use crate::support::*;

    fn metric_value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.split(['{', ' ']).next() == Some(name) && labels.iter().all(|lab| l.contains(lab))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .next()
    }

    #[tokio::test]
    async fn healthz_answers_200() {
        let srv = Server::start().await;
        let (_, body) = expect_status(send(srv.get("/healthz")).await, 200).await;
        assert_eq!(String::from_utf8_lossy(&body).trim(), "ok");
    }

    #[tokio::test]
    async fn metrics_count_requests_by_route_and_status_and_content() {
        let srv = Server::start().await;
        push_image(&srv, "repo", Some("latest"), 120).await;
        start_upload(&srv, "repo").await;
        let resp = send(srv.get(&format!("/v2/repo/blobs/{DUMMY_DIGEST}"))).await;
        assert_eq!(resp.status(), 404);
        // Made-up methods share one label: a series each would grow without bound.
        for made_up in ["BOGUS1", "BOGUS2"] {
            let method = reqwest::Method::from_bytes(made_up.as_bytes()).unwrap();
            send(srv.req(method, "/v2/")).await;
        }

        let resp = send(srv.get("/metrics")).await;
        let ct = header(&resp, "content-type").unwrap_or_default();
        assert!(
            ct.starts_with("text/plain") || ct.starts_with("application/openmetrics-text"),
            "{ct}"
        );
        let (_, body) = expect_status(resp, 200).await;
        let text = String::from_utf8(body).unwrap();

        let put = metric_value(
            &text,
            "berth_http_requests_total",
            &["route=\"manifest_put\"", "status=\"201\""],
        );
        assert_eq!(put, Some(1.0), "{text}");
        let missing = metric_value(
            &text,
            "berth_http_requests_total",
            &["route=\"blob_get\"", "status=\"404\""],
        );
        assert_eq!(missing, Some(1.0), "{text}");
        assert!(
            metric_value(&text, "berth_http_requests_total", &["status=\"202\""]).is_some(),
            "{text}"
        );
        assert!(!text.contains("BOGUS"), "{text}");
        assert!(text.contains("method=\"other\""), "{text}");
        assert_eq!(metric_value(&text, "berth_blobs", &[]), Some(2.0), "{text}");
        assert_eq!(
            metric_value(&text, "berth_manifests", &[]),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            metric_value(&text, "berth_upload_sessions", &[]),
            Some(1.0),
            "{text}"
        );
    }
}

mod concurrency {
    use crate::support::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_pushes_of_the_same_blob_end_consistent() {
        let srv = Server::start().await;
        let blob = data(130, 256 * 1024);
        let d = sha256(&blob);
        let push = |chunked: bool| {
            let (api, blob, d) = (srv.api.clone(), blob.clone(), d.clone());
            tokio::spawn(async move {
                if chunked {
                    let loc = start_upload(&api, "repo").await;
                    let half = blob.len() / 2;
                    let resp = patch_chunk(&api, &loc, 0, &blob[..half]).await;
                    assert_eq!(resp.status(), 202);
                    finish_upload(&api, &loc, &d, &blob[half..]).await.status()
                } else {
                    push_blob_monolithic(&api, "repo", &blob, &d).await.status()
                }
            })
        };
        let (a, b, c, e, f, g) = tokio::join!(
            push(true),
            push(false),
            push(true),
            push(false),
            push(true),
            push(false)
        );
        for r in [a, b, c, e, f, g] {
            assert_eq!(r.unwrap(), 201);
        }
        let (_, body) =
            expect_status(send(srv.get(&format!("/v2/repo/blobs/{d}"))).await, 200).await;
        assert_eq!(body, blob);
        let files: Vec<_> = srv
            .blob_files()
            .into_iter()
            .filter(|p| p.is_file())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(srv.upload_files().is_empty(), "{:?}", srv.upload_files());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_chunks_to_one_session_do_not_interleave() {
        let srv = Server::start().await;
        let blob = data(135, 200_000);
        let d = sha256(&blob);
        let loc = start_upload(&srv, "repo").await;
        // Four clients send the same first chunk at once: exactly one may land.
        let chunk = || {
            let (api, loc, bytes) = (srv.api.clone(), loc.clone(), blob[..100_000].to_vec());
            tokio::spawn(async move { patch_chunk(&api, &loc, 0, &bytes).await.status().as_u16() })
        };
        let (a, b, c, e) = tokio::join!(chunk(), chunk(), chunk(), chunk());
        let mut statuses = [a.unwrap(), b.unwrap(), c.unwrap(), e.unwrap()];
        statuses.sort();
        assert_eq!(statuses, [202, 416, 416, 416]);
        let resp = send(srv.get(&loc)).await;
        assert_eq!(header(&resp, "range").as_deref(), Some("0-99999"));
        let resp = finish_upload(&srv, &loc, &d, &blob[100_000..]).await;
        expect_status(resp, 201).await;
        let (_, body) =
            expect_status(send(srv.get(&format!("/v2/repo/blobs/{d}"))).await, 200).await;
        assert_eq!(body, blob);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_pushes_of_the_same_tag_end_consistent() {
        let srv = Server::start().await;
        let mut images = Vec::new();
        for seed in 140..146 {
            let img = image(seed);
            push_blob(&srv, "repo", &img.config).await;
            push_blob(&srv, "repo", &img.layer).await;
            images.push(img);
        }
        let push = |img: &Image| {
            let (api, body) = (srv.api.clone(), img.manifest.clone());
            tokio::spawn(async move {
                put_manifest(&api, "repo", "latest", OCI_MANIFEST, &body)
                    .await
                    .status()
            })
        };
        let (a, b, c, d, e, f) = tokio::join!(
            push(&images[0]),
            push(&images[1]),
            push(&images[2]),
            push(&images[3]),
            push(&images[4]),
            push(&images[5])
        );
        for r in [a, b, c, d, e, f] {
            assert_eq!(r.unwrap(), 201);
        }
        let resp = send(srv.get("/v2/repo/manifests/latest")).await;
        let (h, body) = expect_status(resp, 200).await;
        let digest = header_of(&h, "docker-content-digest").unwrap();
        assert_eq!(digest, sha256(&body), "tag serves bytes of another digest");
        assert!(images.iter().any(|i| i.manifest == body));
        assert_eq!(tags(&srv, "repo", "").await.0, ["latest"]);
        for img in &images {
            let resp = send(srv.get(&format!("/v2/repo/manifests/{}", img.digest))).await;
            let (_, body) = expect_status(resp, 200).await;
            assert_eq!(body, img.manifest);
        }
    }
}

mod lifecycle {
    use std::time::Duration;

    use crate::support::*;

    #[tokio::test]
    async fn expired_upload_session_is_swept() {
        let srv = Server::start_with_ttl(Duration::from_secs(1)).await;
        let loc = start_upload(&srv, "repo").await;
        expect_status(patch_chunk(&srv, &loc, 0, b"partial").await, 202).await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let fresh = start_upload(&srv, "repo").await;
        let removed = srv.reg.sweep_uploads().await.expect("sweep");
        assert!(removed >= 1, "removed {removed}");
        expect_error(send(srv.get(&loc)).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
        // A session younger than the time to live is kept.
        expect_status(send(srv.get(&fresh)).await, 204).await;
        // Its empty file is kept; in a bucket an empty session has no object at all.
        let fresh_files = if srv.bucket_dir.is_some() { 0 } else { 1 };
        assert_eq!(
            srv.upload_files().len(),
            fresh_files,
            "{:?}",
            srv.upload_files()
        );
    }

    #[tokio::test]
    async fn restart_serves_content_and_resumes_uploads() {
        let srv = Server::start().await;
        let img = push_image(&srv, "org/app", Some("v1"), 150).await;
        let blob = data(151, 100_000);
        let d = sha256(&blob);
        let loc = start_upload(&srv, "org/app").await;
        expect_status(patch_chunk(&srv, &loc, 0, &blob[..60_000]).await, 202).await;
        let dir = srv.stop().await;

        let srv = Server::start_in(dir, Duration::from_secs(3600)).await;
        let (_, body) = expect_status(send(srv.get("/v2/org/app/manifests/v1")).await, 200).await;
        assert_eq!(body, img.manifest);
        let resp = send(srv.get(&format!("/v2/org/app/blobs/{}", img.layer_desc.digest))).await;
        let (_, body) = expect_status(resp, 200).await;
        assert_eq!(body, img.layer);
        assert_eq!(tags(&srv, "org/app", "").await.0, ["v1"]);

        let resp = send(srv.get(&loc)).await;
        assert_eq!(header(&resp, "range").as_deref(), Some("0-59999"));
        expect_status(resp, 204).await;
        expect_status(
            patch_chunk(&srv, &loc, 60_000, &blob[60_000..80_000]).await,
            202,
        )
        .await;
        let resp = finish_upload(&srv, &loc, &d, &blob[80_000..]).await;
        expect_status(resp, 201).await;
        let (_, body) =
            expect_status(send(srv.get(&format!("/v2/org/app/blobs/{d}"))).await, 200).await;
        assert_eq!(body, blob);
    }
}

/// The registry signature extension (`X-Registry-Supports-Signatures`), as
/// containers/image reads and writes it.
mod signatures {
    use crate::support::*;
    use base64::Engine;
    use serde_json::{json, Value};

    fn path(repo: &str, digest: &str) -> String {
        format!("/extensions/v2/{repo}/signatures/{digest}")
    }

    fn entry(digest: &str, suffix: &str, content: &[u8]) -> Value {
        json!({
            "schemaVersion": 2,
            "name": format!("{digest}@{suffix}"),
            "type": "atomic",
            "content": base64::engine::general_purpose::STANDARD.encode(content),
        })
    }

    async fn list(srv: &Server, repo: &str, digest: &str) -> Vec<Value> {
        let (_, body) = expect_status(send(srv.get(&path(repo, digest))).await, 200).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        v["signatures"].as_array().unwrap().clone()
    }

    #[tokio::test]
    async fn the_ping_announces_the_extension() {
        let srv = Server::start().await;
        let resp = send(srv.get("/v2/")).await;
        assert_eq!(
            header(&resp, "x-registry-supports-signatures").as_deref(),
            Some("1")
        );
    }

    #[tokio::test]
    async fn signatures_are_added_one_at_a_time_and_listed() {
        let srv = Server::start().await;
        let img = push_image(&srv, "team/app", Some("v1"), 500).await;
        // An unsigned image has an empty list, not an error.
        assert!(list(&srv, "team/app", &img.digest).await.is_empty());

        let one = entry(
            &img.digest,
            "0123456789abcdef0123456789abcdef",
            b"\xa3first",
        );
        let resp = send(srv.put(&path("team/app", &img.digest)).json(&one)).await;
        expect_status(resp, 201).await;
        // The same again changes nothing.
        let resp = send(srv.put(&path("team/app", &img.digest)).json(&one)).await;
        expect_status(resp, 201).await;
        let two = entry(&img.digest, "fedcba9876543210fedcba9876543210", b"second");
        expect_status(
            send(srv.put(&path("team/app", &img.digest)).json(&two)).await,
            201,
        )
        .await;
        assert_eq!(
            list(&srv, "team/app", &img.digest).await,
            vec![one.clone(), two]
        );

        // A name is never given to other content.
        let clash = entry(&img.digest, "0123456789abcdef0123456789abcdef", b"forged");
        let resp = send(srv.put(&path("team/app", &img.digest)).json(&clash)).await;
        expect_error(resp, 409, "DENIED").await;

        // Deleting the manifest deletes its signatures.
        expect_status(
            send(srv.delete(&format!("/v2/team/app/manifests/{}", img.digest))).await,
            202,
        )
        .await;
        push_image(&srv, "team/app", Some("v1"), 500).await;
        assert!(list(&srv, "team/app", &img.digest).await.is_empty());
    }

    #[tokio::test]
    async fn signatures_are_deleted_one_by_name_or_all() {
        let srv = Server::start().await;
        let img = push_image(&srv, "team/app", Some("v1"), 502).await;
        let other = push_image(&srv, "team/app", Some("v2"), 503).await;
        let p = path("team/app", &img.digest);
        let (a, b) = (
            entry(&img.digest, "0a", b"first"),
            entry(&img.digest, "0b", b"second"),
        );
        for e in [&a, &b] {
            expect_status(send(srv.put(&p).json(e)).await, 201).await;
        }
        let kept = entry(&other.digest, "0c", b"other's");
        expect_status(
            send(srv.put(&path("team/app", &other.digest)).json(&kept)).await,
            201,
        )
        .await;

        // A mistyped key deletes nothing (it would have meant all of them).
        expect_error(
            send(srv.delete(&format!("{p}?nmae={}@0a", img.digest))).await,
            400,
            "UNSUPPORTED",
        )
        .await;
        // A name not of this manifest, or one it does not have.
        expect_error(
            send(srv.delete(&format!("{p}?name={}@0a", other.digest))).await,
            400,
            "MANIFEST_INVALID",
        )
        .await;
        expect_error(
            send(srv.delete(&format!("{p}?name={}@ff", img.digest))).await,
            404,
            "MANIFEST_UNKNOWN",
        )
        .await;
        assert_eq!(
            list(&srv, "team/app", &img.digest).await,
            vec![a.clone(), b]
        );

        expect_status(
            send(srv.delete(&format!("{p}?name={}@0b", img.digest))).await,
            202,
        )
        .await;
        assert_eq!(list(&srv, "team/app", &img.digest).await, vec![a]);
        expect_status(send(srv.delete(&p)).await, 202).await;
        assert!(list(&srv, "team/app", &img.digest).await.is_empty());
        expect_error(send(srv.delete(&p)).await, 404, "MANIFEST_UNKNOWN").await;
        // The other manifest's signature is untouched.
        assert_eq!(list(&srv, "team/app", &other.digest).await, vec![kept]);
    }

    #[tokio::test]
    async fn bad_signatures_are_refused_and_nothing_is_kept() {
        let srv = Server::start().await;
        let img = push_image(&srv, "repo", Some("v1"), 501).await;
        let p = path("repo", &img.digest);
        let other = sha256(b"another manifest");
        let cases = [
            // Not JSON, unknown fields, wrong version or type.
            (
                p.clone(),
                Value::String("nope".into()),
                400,
                "MANIFEST_INVALID",
            ),
            (
                p.clone(),
                json!({"schemaVersion": 2, "name": format!("{}@01", img.digest), "type": "atomic",
                       "content": "AA==", "extra": 1}),
                400,
                "MANIFEST_INVALID",
            ),
            (
                p.clone(),
                json!({"schemaVersion": 1, "name": format!("{}@01", img.digest), "type": "atomic",
                       "content": "AA=="}),
                400,
                "MANIFEST_INVALID",
            ),
            // A name for another manifest, or not hex.
            (
                p.clone(),
                entry(&other, "01", b"x"),
                400,
                "MANIFEST_INVALID",
            ),
            (
                p.clone(),
                entry(&img.digest, "../../x", b"x"),
                400,
                "MANIFEST_INVALID",
            ),
            // Empty or not base64.
            (
                p.clone(),
                entry(&img.digest, "01", b""),
                400,
                "MANIFEST_INVALID",
            ),
            (
                p.clone(),
                json!({"schemaVersion": 2, "name": format!("{}@01", img.digest), "type": "atomic",
                       "content": "%%%"}),
                400,
                "MANIFEST_INVALID",
            ),
            // A manifest the repository does not hold.
            (
                path("repo", &other),
                entry(&other, "01", b"x"),
                404,
                "MANIFEST_UNKNOWN",
            ),
            (
                path("nothere", &img.digest),
                entry(&img.digest, "01", b"x"),
                404,
                "MANIFEST_UNKNOWN",
            ),
            // Not a digest, not a name.
            (
                path("repo", "latest"),
                entry(&img.digest, "01", b"x"),
                400,
                "DIGEST_INVALID",
            ),
            (
                path("Bad..Name", &img.digest),
                entry(&img.digest, "01", b"x"),
                400,
                "NAME_INVALID",
            ),
        ];
        for (p, body, status, code) in cases {
            let resp = send(srv.put(&p).json(&body)).await;
            expect_error(resp, status, code).await;
        }
        // Too large: refused before it is all read.
        let big = entry(&img.digest, "01", &vec![7u8; 65 * 1024]);
        let resp = send(srv.put(&p).json(&big)).await;
        expect_error(resp, 413, "MANIFEST_INVALID").await;
        assert!(list(&srv, "repo", &img.digest).await.is_empty());
        assert!(!send(srv.get(&path("nothere", &img.digest)))
            .await
            .status()
            .is_server_error());
    }

    #[tokio::test]
    async fn a_manifest_carries_a_bounded_number_of_signatures() {
        let srv = Server::start().await;
        let img = push_image(&srv, "repo", Some("v1"), 502).await;
        let p = path("repo", &img.digest);
        for i in 0..32 {
            let e = entry(&img.digest, &format!("{i:032x}"), b"sig");
            expect_status(send(srv.put(&p).json(&e)).await, 201).await;
        }
        let e = entry(&img.digest, &format!("{:032x}", 99), b"sig");
        expect_error(send(srv.put(&p).json(&e)).await, 403, "DENIED").await;
        assert_eq!(list(&srv, "repo", &img.digest).await.len(), 32);
    }
}

mod object_storage {
    use crate::support::*;

    /// A PUT whose blob reached the bucket but whose link then failed (the database
    /// refusing the write, as when PostgreSQL restarts) succeeds when retried on the
    /// same upload URL once the database is back: the session's tail and multipart
    /// upload went with the first try, so the retry checks its bytes against the
    /// stored blob instead of resuming them. A blob under one part sent by PATCH, and
    /// one of two parts whose last bytes come with the PUT (sent again by the retry).
    #[tokio::test]
    async fn a_put_retried_after_its_link_failed_succeeds() {
        let srv = Server::start_on_s3().await;
        let db = rusqlite::Connection::open(srv.root.join("meta.db")).unwrap();
        for (seed, size, in_put) in [(1, 1000, 0), (2, 8 * 1024 * 1024 + 1000, 500)] {
            let blob = data(seed, size);
            let digest = sha256(&blob);
            let loc = start_upload(&srv, "retry/app").await;
            let cut = size - in_put;
            let resp = patch_chunk(&srv, &loc, 0, &blob[..cut]).await;
            let loc = location(&resp);
            expect_status(resp, 202).await;
            db.execute_batch(
                "CREATE TRIGGER fail_link BEFORE INSERT ON repository_blobs
                 BEGIN SELECT RAISE(ABORT, 'injected: the database is away'); END;",
            )
            .unwrap();
            let resp = finish_upload(&srv, &loc, &digest, &blob[cut..]).await;
            assert!(resp.status().is_server_error(), "{size}: {}", resp.status());
            db.execute_batch("DROP TRIGGER fail_link;").unwrap();
            let resp = finish_upload(&srv, &loc, &digest, &blob[cut..]).await;
            expect_status(resp, 201).await;
            let resp = send(srv.get(&format!("/v2/retry/app/blobs/{digest}"))).await;
            let (_, body) = expect_status(resp, 200).await;
            assert!(body == blob, "{size}: the blob read back differs");
            // The session and its objects are gone.
            assert!(srv.upload_files().is_empty(), "{:?}", srv.upload_files());
            let resp = send(srv.get(&loc)).await;
            expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
        }
    }
}
