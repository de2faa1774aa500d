//! registries.d YAML files (lookaside locations, sigstore attachments): parsed, then the
//! locations computed for reading and writing signatures.
#![no_main]
use std::path::PathBuf;

use berth_containers_config::{Env, RegistriesD};
use berth_image::Digest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(d) = RegistriesD::from_files([(PathBuf::from("fuzz.yaml"), text.to_string())]) else {
        return;
    };
    let env = Env::under(berth_fuzz::scratch());
    let digest = Digest::sha256_of(data);
    for identity in [
        "docker.io/library/busybox:latest",
        "example.com/ns/repo:tag",
        "localhost:5000/a@sha256:00",
    ] {
        for write in [false, true] {
            if let Ok(base) = d.lookaside_base(&env, identity, write) {
                let _ = base.signature("library/busybox", &digest, 0);
            }
        }
        let _ = d.use_sigstore_attachments(identity);
        let _ = d.store_for_scope(identity);
    }
});
