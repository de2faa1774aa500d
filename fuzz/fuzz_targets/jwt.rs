//! Bearer tokens: berth-auth's verification of an arbitrary token against a fixed key
//! (`keys/token.pem`), and the `scope` parameter of token requests.
#![no_main]
use std::sync::OnceLock;
use std::time::Duration;

use berth_auth::{ResourceActions, Tokens};
use libfuzzer_sys::fuzz_target;

fn tokens() -> &'static Tokens {
    static T: OnceLock<Tokens> = OnceLock::new();
    T.get_or_init(|| {
        Tokens::load_or_create(
            &berth_fuzz::key_path("token.pem"),
            "berth",
            Duration::from_secs(300),
        )
        .expect("loading keys/token.pem")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // Nothing here is signed by the key, except the seeds, which have long expired.
    if let Ok(claims) = tokens().verify(s) {
        panic!("an arbitrary token verified: {claims:?}");
    }
    if let Ok(scope) = ResourceActions::parse_scope(s) {
        let _ = format!("{scope:?}");
    }
});
