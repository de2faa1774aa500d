//! TLS to a real PostgreSQL (a throw-away cluster with `ssl=on` and a self-signed
//! certificate for 127.0.0.1): the URL's `sslmode` and `sslrootcert` as libpq reads
//! them, the connection encrypted (the server's own view, `pg_stat_ssl`), and the
//! server's certificate verified.

use berth_pg::{Options, Pool};
use berth_testenv::Postgres;

/// Whether the server sees this connection encrypted.
fn encrypted(pool: &Pool) -> bool {
    pool.with(|c| -> Result<bool, berth_pg::r2d2::Error> {
        Ok(c.db()
            .client()
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .expect("asking pg_stat_ssl")
            .get(0))
    })
    .unwrap()
}

#[test]
fn tls_as_the_url_says_and_the_server_verified() {
    let pg = Postgres::private_tls();
    let url = pg.database();
    let ca = pg.certificate().unwrap().display().to_string();
    let options = Options::default();
    for mode in ["require", "verify-ca", "verify-full"] {
        let pool =
            Pool::connect(&format!("{url}?sslmode={mode}&sslrootcert={ca}"), &options).unwrap();
        assert!(pool.target().tls());
        assert!(
            encrypted(&pool),
            "sslmode={mode}: the connection is not encrypted"
        );
    }
    // The default stays plaintext, as before.
    let pool = Pool::connect(&url, &options).unwrap();
    assert!(!encrypted(&pool));

    // A server whose certificate no trusted CA signed is refused, and the error says so.
    let pool = Pool::connect(&format!("{url}?sslmode=require"), &options).unwrap();
    let e = pool
        .target()
        .connect()
        .err()
        .expect("an unknown issuer is refused");
    let said = berth_pg::message(&e);
    assert!(said.contains("UnknownIssuer"), "{said}");

    // Only the CA named is trusted: another one's certificate does not do.
    let other = tempfile_pem(&pg);
    let pool = Pool::connect(
        &format!("{url}?sslmode=require&sslrootcert={}", other.display()),
        &options,
    )
    .unwrap();
    let e = pool
        .target()
        .connect()
        .err()
        .expect("another CA is refused");
    assert!(
        berth_pg::message(&e).contains("certificate"),
        "{}",
        berth_pg::message(&e)
    );
}

/// A CA file holding a certificate that did not sign the server's.
fn tempfile_pem(pg: &Postgres) -> std::path::PathBuf {
    let dir = pg.certificate().unwrap().parent().unwrap().join("other");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ca.pem");
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    std::fs::write(&path, c.cert.pem()).unwrap();
    path
}
