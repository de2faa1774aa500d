//! `oci-archive:` files: unpacked into a temporary layout (refusing links, devices,
//! `..`), `index.json` read, the named image's manifest found and checked.
#![no_main]
use berth_image::Manifest;
use berth_transport::archive;
use berth_transport::oci::Layout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = berth_fuzz::scratch_file("oci-archive.tar", data);
    berth_fuzz::runtime().block_on(async {
        for reference in [None, Some("latest".to_string())] {
            let Ok((layout, _tmp)) = archive::open(&path, reference).await else {
                return;
            };
            if let Ok((bytes, media_type, _)) = layout.manifest(None).await {
                let _ = Layout::media_type_of(&bytes);
                if let Ok(m) = Manifest::parse(media_type.as_deref(), &bytes) {
                    for child in &m.manifests {
                        let _ = layout.manifest(Some(&child.digest)).await;
                    }
                    if let Some(config) = &m.config {
                        let _ = layout.has_blob(&config.digest);
                    }
                }
            }
        }
    });
});
