//! auth.json (containers and Docker `config.json`) and the legacy `~/.dockercfg`:
//! looked up for several keys, and rewritten by `login` without losing the login.
#![no_main]
use berth_containers_config::auth::AuthFiles;
use berth_containers_config::{Env, Found};
use libfuzzer_sys::fuzz_target;

const KEYS: [&str; 4] = [
    "example.com",
    "example.com/ns/repo",
    "docker.io",
    "localhost:5000",
];

fuzz_target!(|data: &[u8]| {
    let dir = berth_fuzz::scratch().join("auth");
    let _ = std::fs::remove_dir_all(&dir);
    // The file a user names, and the same bytes as every file of the default chain.
    let named = berth_fuzz::scratch_file("auth/named.json", data);
    berth_fuzz::scratch_file("auth/home/.docker/config.json", data);
    berth_fuzz::scratch_file("auth/home/.dockercfg", data);
    let env = Env::under(&dir);
    for files in [
        AuthFiles::new(&env, Some(&named)),
        AuthFiles::new(&env, None),
    ] {
        for key in KEYS {
            let _ = files.find(key);
        }
    }
    let files = AuthFiles::new(&env, Some(&named));
    if files.login("example.com", "user", "pass:word", &[]).is_ok() {
        match files.find("example.com") {
            Ok(Some(Found::Credentials { credentials, .. })) => {
                assert_eq!(
                    (credentials.username.as_str(), credentials.password.as_str()),
                    ("user", "pass:word")
                );
            }
            other => panic!("a login is not found again: {other:?}"),
        }
        let _ = files.logout("example.com", &[]);
    }
});
