//! policy.json: parsed strictly, then asked about images of several transports.
#![no_main]
use std::path::Path;

use berth_containers_config::Policy;
use libfuzzer_sys::fuzz_target;

const ASKED: [(&str, &str); 6] = [
    ("docker", "docker.io/library/busybox:latest"),
    ("docker", "example.com:5000/ns/repo@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
    ("atomic", "example.com/ns/repo:tag"),
    ("oci", "/var/lib/layout:tag"),
    ("docker-archive", "/tmp/a.tar"),
    ("containers-storage", "localhost/x:latest"),
];

fuzz_target!(|data: &[u8]| {
    let Ok(policy) = Policy::from_slice(data, Path::new("policy.json")) else {
        return;
    };
    for (transport, identity) in ASKED {
        let _ = policy.requirements_for(transport, identity);
        let _ = policy.scope_of(transport, identity);
        let _ = policy.evaluate(transport, identity);
    }
});
