//! Signature payloads (simple signing and sigstore JSON, parsed strictly) and stored
//! signature blobs (c/image's format): a blob that reads writes back to the same thing.
#![no_main]
use berth_signature::signature::ImageSignature;
use berth_signature::{Format, Payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in [Format::Simple, Format::Sigstore] {
        let _ = Payload::parse(data, format);
    }
    if let Ok(sig) = ImageSignature::from_blob(data) {
        let again = ImageSignature::from_blob(&sig.to_blob()).expect("a written blob reads");
        assert_eq!(again, sig);
        let _ = sig.sigstore_signature();
    }
});
