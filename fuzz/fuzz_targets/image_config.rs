//! Image configs (Docker and OCI): parsed as inspect does, and converted to the OCI
//! config a v2s2 -> OCI copy stores.
#![no_main]
use berth_image::inspect::ImageConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = ImageConfig::parse(data) {
        let _ = c.platform();
    }
    if let Ok(oci) = berth_image::convert::oci_config(data) {
        // What the conversion writes is itself a config.
        assert!(
            berth_image::convert::oci_config(&oci).is_ok(),
            "the converted config does not convert again"
        );
    }
});
