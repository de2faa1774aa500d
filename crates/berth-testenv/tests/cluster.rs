//! The throw-away cluster keeps what it acknowledged across a crash (SIGQUIT) and a
//! restart, as the tests that stop it under a running server rely on.

use berth_testenv::Postgres;

#[test]
fn acknowledged_writes_survive_a_crash_and_restart() {
    let pg = Postgres::private();
    let url = pg.database();
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute("CREATE TABLE kept (a INT); INSERT INTO kept VALUES (7);")
        .unwrap();
    pg.kill();
    assert!(
        c.simple_query("SELECT 1").is_err(),
        "the server still answers"
    );
    pg.restart();
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let row = c.query_one("SELECT a FROM kept", &[]).unwrap_or_else(|e| {
        panic!("{e:?}\n{}", pg.log());
    });
    assert_eq!(row.get::<_, i32>(0), 7);
}
