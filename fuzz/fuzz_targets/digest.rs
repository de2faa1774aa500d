//! Digests (`algorithm:hex`): whatever parses prints as itself.
#![no_main]
use berth_image::{Algorithm, Digest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = s.parse::<Digest>() {
        assert_eq!(d.to_string(), s, "a digest prints as it was written");
        assert_eq!(d.hex().len(), d.algorithm().hex_len());
        let _ = Digest::of(d.algorithm(), data);
    }
    let _ = s.parse::<Algorithm>();
});
