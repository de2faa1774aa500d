//! The access-control directory in PostgreSQL (`berth serve --metadata postgres://…`),
//! on a real PostgreSQL (a throw-away cluster from Debian's package, started by
//! berth-testenv): the same changes give the same directory as on SQLite, a change
//! made through one replica applies on another as soon as PostgreSQL notifies it
//! (with no query per request meanwhile), replicas share one token key, and a
//! replica's listener comes back by itself after PostgreSQL restarts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_auth::{
    Actor, AdminError, AuthStore, Change, Directory, Level, Principal, Secret, StoreError,
    Visibility,
};
use berth_testenv::Postgres;

fn local() -> Actor {
    Actor::local()
}

fn user(name: &str) -> Actor {
    Actor {
        principal: Principal::Account(name.into()),
        local: false,
        from: "127.0.0.1".into(),
    }
}

fn team_remove() -> Change {
    Change::TeamRemove {
        team: "myorg/devs".into(),
        member: "bob".into(),
    }
}

fn team_add() -> Change {
    Change::TeamAdd {
        team: "myorg/devs".into(),
        member: "bob".into(),
    }
}

/// A sequence of changes touching every table.
fn changes() -> Vec<(Actor, Change)> {
    let add = |name: &str, superuser| Change::UserAdd {
        name: name.into(),
        password: Secret("pw".into()),
        superuser,
    };
    vec![
        (local(), add("root", true)),
        (local(), add("alice", false)),
        (local(), add("bob", false)),
        (
            user("alice"),
            Change::OrgCreate {
                name: "myorg".into(),
            },
        ),
        (user("alice"), team_add()),
        (
            user("alice"),
            Change::Grant {
                subject: "myorg/devs".into(),
                level: Level::Write,
                target: "myorg/app".into(),
            },
        ),
        (
            user("alice"),
            Change::RobotCreate {
                name: "myorg+ci".into(),
            },
        ),
        (
            user("alice"),
            Change::RepoVisibility {
                repository: "myorg/site".into(),
                visibility: Visibility::Public,
            },
        ),
        (
            user("alice"),
            Change::ImmutableSet {
                name: "myorg".into(),
                patterns: vec!["v*".into()],
            },
        ),
        (
            user("alice"),
            Change::RetentionSet {
                name: "myorg/app".into(),
                keep_last: Some(3),
                keep: vec![],
                older_than: Some("30d".into()),
                never: vec!["latest".into()],
            },
        ),
        (
            user("root"),
            Change::QuotaSet {
                namespace: "myorg".into(),
                bytes: 1 << 40,
            },
        ),
        (
            user("alice"),
            Change::Grant {
                subject: "bob".into(),
                level: Level::Read,
                target: "alice/private".into(),
            },
        ),
    ]
}

/// What a directory decides, in a form two directories can be compared by.
fn decisions(d: &Directory) -> String {
    let mut out = String::new();
    let mut grants = d.grants();
    grants.sort();
    out += &format!("grants {grants:?}\n");
    for name in ["root", "alice", "bob", "myorg", "myorg+ci", "nobody"] {
        let who = Principal::Account(name.into());
        out += &format!(
            "{name}: kind {:?} superuser {} app {:?} site {:?} private {:?}\n",
            d.account(name).map(|a| a.kind),
            d.is_superuser(&who),
            d.level(&who, "myorg/app"),
            d.level(&who, "myorg/site"),
            d.level(&who, "alice/private"),
        );
    }
    out += &format!(
        "visibility {:?} {:?}\n",
        d.visibility("myorg/site"),
        d.visibility("myorg/app")
    );
    out += &format!(
        "immutable {:?}\n",
        d.immutable_for("myorg/app").map(|i| i.describe())
    );
    out += &format!("retention {:?}\n", d.retention_setting("myorg/app"));
    out += &format!("quota {:?}\n", d.quota("myorg"));
    let mut teams: Vec<_> = d.teams_of("myorg").collect();
    teams.sort();
    out += &format!("teams {teams:?}\n");
    out
}

fn apply_all(s: &AuthStore) {
    for (actor, change) in changes() {
        s.apply(&actor, &change)
            .unwrap_or_else(|e| panic!("{}: {e}", change.describe()));
    }
}

/// Waits until `f` holds, at most `limit`; how long it took.
fn until(limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "not within {limit:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

fn bob_on_app(s: &AuthStore) -> Option<Level> {
    s.directory()
        .ok()?
        .level(&Principal::Account("bob".into()), "myorg/app")
}

#[test]
fn the_same_changes_make_the_same_directory_as_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let sqlite = AuthStore::open(&tmp.path().join("auth.db")).unwrap();
    let pg = AuthStore::connect(&Postgres::shared().database()).unwrap();
    assert!(pg.is_shared() && !sqlite.is_shared());
    apply_all(&sqlite);
    apply_all(&pg);
    let (a, b) = (sqlite.directory().unwrap(), pg.directory().unwrap());
    assert!(a.grants().len() >= 3, "{}", decisions(&a));
    assert_eq!(decisions(&a), decisions(&b));
    // Refusals are the same too: bob administers nothing.
    let refused = pg.apply(
        &user("bob"),
        &Change::Grant {
            subject: "bob".into(),
            level: Level::Admin,
            target: "myorg".into(),
        },
    );
    assert!(matches!(refused, Err(AdminError::Denied(_))), "{refused:?}");
    // The audit trail records the same changes, newest first.
    let trail = |s: &AuthStore| -> Vec<String> {
        s.audit_trail(100)
            .unwrap()
            .into_iter()
            .map(|e| format!("{} {}", e.actor, e.change))
            .collect()
    };
    assert_eq!(trail(&sqlite), trail(&pg));
    assert_eq!(trail(&pg).len(), changes().len());
    // Deleting the organization takes what it owns, on both.
    for s in [&sqlite, &pg] {
        s.apply(
            &user("alice"),
            &Change::AccountDelete {
                name: "myorg".into(),
            },
        )
        .unwrap();
    }
    let (a, b) = (sqlite.directory().unwrap(), pg.directory().unwrap());
    assert!(b.account("myorg+ci").is_none());
    assert_eq!(decisions(&a), decisions(&b));
}

#[test]
fn a_change_through_one_replica_applies_on_the_other_at_once() {
    let url = Postgres::shared().database();
    let a = AuthStore::connect(&url).unwrap();
    let b = AuthStore::connect(&url).unwrap();
    apply_all(&a);
    until(Duration::from_secs(5), || {
        bob_on_app(&b) == Some(Level::Write)
    });
    // With nothing changing, asking again reloads nothing: the same snapshot.
    let first = b.directory().unwrap();
    for _ in 0..1000 {
        assert!(Arc::ptr_eq(&first, &b.directory().unwrap()));
    }
    // A revoke through `a` applies on `b` when the notification arrives: well within
    // the one-second version recheck that backs notifications up.
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        a.apply(&user("alice"), &team_remove()).unwrap();
        let took = until(Duration::from_secs(5), || bob_on_app(&b).is_none());
        a.apply(&user("alice"), &team_add()).unwrap();
        until(Duration::from_secs(5), || bob_on_app(&b).is_some());
        slowest = slowest.max(took);
    }
    assert!(
        slowest < Duration::from_millis(500),
        "a revoke took {slowest:?} to reach the other replica"
    );
}

#[test]
fn replicas_share_one_token_key_and_the_refresh_tokens() {
    let url = Postgres::shared().database();
    let a = AuthStore::connect(&url).unwrap();
    let b = AuthStore::connect(&url).unwrap();
    let key = a.shared_token_key(|| Ok("first".into())).unwrap();
    assert_eq!(key.as_deref(), Some("first"));
    let again = b
        .shared_token_key(|| panic!("a second key was made"))
        .unwrap();
    assert_eq!(again.as_deref(), Some("first"));

    a.apply(
        &local(),
        &Change::UserAdd {
            name: "alice".into(),
            password: Secret("pw".into()),
            superuser: false,
        },
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    a.add_refresh_token("tok", "alice", now + 60).unwrap();
    assert_eq!(
        b.refresh_token_account("tok").unwrap().as_deref(),
        Some("alice")
    );
    let listed = b.refresh_tokens(Some("alice")).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id.len(), 16);
    assert_eq!(b.refresh_tokens(None).unwrap().len(), 1);
    assert!(b.refresh_tokens(Some("bob")).unwrap().is_empty());
    // Revoked by its id through the other replica.
    b.apply(
        &local(),
        &Change::TokenRevoke {
            account: "alice".into(),
            id: Some(listed[0].id.clone()),
        },
    )
    .unwrap();
    assert_eq!(a.refresh_token_account("tok").unwrap(), None);
}

#[test]
fn a_sqlite_directory_moves_into_postgres_once() {
    let tmp = tempfile::tempdir().unwrap();
    let sqlite = AuthStore::open(&tmp.path().join("auth.db")).unwrap();
    apply_all(&sqlite);
    let pg = AuthStore::connect(&Postgres::shared().database()).unwrap();
    let copied = sqlite.copy_into(&pg).unwrap();
    assert!(copied > changes().len(), "{copied} rows");
    assert_eq!(
        decisions(&sqlite.directory().unwrap()),
        decisions(&pg.directory().unwrap())
    );
    // The password hashes moved as they were: alice logs in with the same password.
    let hash = |s: &AuthStore| {
        s.directory()
            .unwrap()
            .account("alice")
            .unwrap()
            .password_hash
            .clone()
    };
    assert!(hash(&pg).is_some());
    assert_eq!(hash(&sqlite), hash(&pg));
    let trail = sqlite.audit_trail(100).unwrap().len();
    assert_eq!(pg.audit_trail(100).unwrap().len(), trail);
    // Run again (a resumed migration): nothing is copied twice.
    assert_eq!(sqlite.copy_into(&pg).unwrap(), 0);
    assert_eq!(pg.audit_trail(100).unwrap().len(), trail);
}

#[test]
fn a_newer_directory_schema_is_refused() {
    let url = Postgres::shared().database();
    drop(AuthStore::connect(&url).unwrap());
    let mut c = berth_pg::postgres::Client::connect(&url, berth_pg::postgres::NoTls).unwrap();
    c.execute("INSERT INTO berth_auth_schema (version) VALUES (99)", &[])
        .unwrap();
    match AuthStore::connect(&url) {
        Err(e @ StoreError::SchemaTooNew { found: 99, .. }) => {
            assert!(e.to_string().contains("upgrade berth"), "{e}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

#[test]
fn the_listener_comes_back_after_postgres_restarts() {
    let pg = Postgres::private();
    let url = pg.database();
    let a = AuthStore::connect(&url).unwrap();
    let b = AuthStore::connect(&url).unwrap();
    apply_all(&a);
    until(Duration::from_secs(5), || bob_on_app(&b).is_some());
    pg.kill();
    // While PostgreSQL is down a change cannot be made, and the error says why.
    match a.apply(&user("alice"), &team_remove()) {
        Err(AdminError::Store(e)) => assert!(e.is_unreachable(), "{e}"),
        other => panic!("expected an unreachable database, got {other:?}"),
    }
    pg.restart();
    until(Duration::from_secs(20), || {
        a.apply(&user("alice"), &team_remove()).is_ok()
    });
    until(Duration::from_secs(10), || bob_on_app(&b).is_none());
    // Notifications flow again once the listener is back: the next change arrives fast.
    std::thread::sleep(Duration::from_secs(1));
    a.apply(&user("alice"), &team_add()).unwrap();
    let took = until(Duration::from_secs(5), || bob_on_app(&b).is_some());
    assert!(took < Duration::from_millis(500), "{took:?}");
}

/// A registry that kept its directory in the folder (before it moved to PostgreSQL)
/// does not come up open on an empty shared directory: the folder's accounts are
/// copied in, once, and the folder's token key becomes the shared one, so its tokens
/// stay valid.
#[test]
fn a_folder_directory_and_its_token_key_move_into_an_empty_shared_one() {
    use berth_auth::{adopt_folder_directory, Adopted, Auth, AuthConfig};

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let single = Auth::open(root, AuthConfig::default()).unwrap();
    apply_all(single.store());
    let alice = Principal::Account("alice".into());
    let token = single.tokens().issue(&alice, Vec::new()).unwrap();

    let url = Postgres::shared().database();
    let shared = AuthStore::connect(&url).unwrap();
    match adopt_folder_directory(&shared, root).unwrap() {
        Adopted::Copied(rows) => assert!(rows > changes().len(), "{rows}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        decisions(&single.store().directory().unwrap()),
        decisions(&shared.directory().unwrap())
    );
    // Once the shared directory has accounts, a folder's is left alone.
    assert_eq!(
        adopt_folder_directory(&shared, root).unwrap(),
        Adopted::Ignored
    );
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        adopt_folder_directory(&shared, empty.path()).unwrap(),
        Adopted::Nothing
    );
    // The replica signs and checks with the folder's key.
    let replica = Auth::with_store(
        AuthStore::connect(&url).unwrap(),
        root,
        AuthConfig::default(),
    )
    .unwrap();
    assert_eq!(replica.tokens().verify(&token).unwrap().sub, "alice");
    // And another replica with an empty folder, with the shared key.
    let other = Auth::with_store(
        AuthStore::connect(&url).unwrap(),
        empty.path(),
        AuthConfig::default(),
    )
    .unwrap();
    assert_eq!(other.tokens().verify(&token).unwrap().sub, "alice");
    assert!(
        !empty.path().join("auth").exists(),
        "nothing written to the folder"
    );
}

/// A lockout one replica starts is seen by the other (and by a store opened later);
/// a longer one already there is not shortened, and ended ones do not count.
#[test]
fn lockouts_are_shared_between_replicas() {
    let url = Postgres::shared().database();
    let tmp = tempfile::tempdir().unwrap();
    let sqlite = AuthStore::open(&tmp.path().join("auth.db")).unwrap();
    let a = AuthStore::connect(&url).unwrap();
    let b = AuthStore::connect(&url).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The same statements on both databases.
    for (one, other) in [(&a, &b), (&sqlite, &sqlite)] {
        assert_eq!(other.shared_lockout("alice", "10.0.0.1").unwrap(), None);
        one.share_lockouts(&[("source", "10.0.0.1", now + 60)])
            .unwrap();
        assert_eq!(
            other.shared_lockout("alice", "10.0.0.1").unwrap(),
            Some(now + 60)
        );
        // Another address, or the same name as an account, is not locked.
        assert_eq!(other.shared_lockout("alice", "10.0.0.2").unwrap(), None);
        assert_eq!(other.shared_lockout("10.0.0.1", "10.0.0.2").unwrap(), None);
        // A shorter lockout does not shorten it; an account lockout adds to it.
        other
            .share_lockouts(&[
                ("source", "10.0.0.1", now + 10),
                ("account", "alice", now + 120),
            ])
            .unwrap();
        assert_eq!(
            one.shared_lockout("bob", "10.0.0.1").unwrap(),
            Some(now + 60)
        );
        assert_eq!(
            one.shared_lockout("alice", "10.0.0.9").unwrap(),
            Some(now + 120)
        );
        // Ended: no longer counted.
        one.share_lockouts(&[("account", "carol", now - 1)])
            .unwrap();
        assert_eq!(other.shared_lockout("carol", "10.0.0.9").unwrap(), None);
        // One account from one address: that pair alone.
        let pair = berth_auth::Lockout::pair_name("dave", "10.0.0.3");
        one.share_lockouts(&[("pair", &pair, now + 30)]).unwrap();
        assert_eq!(
            other.shared_lockout("dave", "10.0.0.3").unwrap(),
            Some(now + 30)
        );
        assert_eq!(other.shared_lockout("erin", "10.0.0.3").unwrap(), None);
        assert_eq!(other.shared_lockout("dave", "10.0.0.4").unwrap(), None);
    }
    let later = AuthStore::connect(&url).unwrap();
    assert_eq!(
        later.shared_lockout("alice", "10.0.0.1").unwrap(),
        Some(now + 120)
    );
}
