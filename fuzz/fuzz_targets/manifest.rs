//! Manifests and indexes (OCI, Docker v2s2, manifest lists). The first line is the
//! Content-Type a client sent (may be empty), the rest the body. A parsed image manifest
//! or index is also converted both ways, as `copy --format` does.
#![no_main]
use berth_image::convert::{convert_image, convert_index, Format};
use berth_image::manifest::Platform;
use berth_image::{Digest, Manifest, ManifestKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (head, body) = berth_fuzz::split_once(data, b"\n");
    let content_type = std::str::from_utf8(head).ok().filter(|s| !s.is_empty());
    let Ok(m) = Manifest::parse(content_type, body) else {
        return;
    };
    let _ = m.effective_artifact_type();
    for to in [Format::Oci, Format::V2s2] {
        match m.kind {
            ManifestKind::Image => {
                let _ = convert_image(body, b"{}", to);
            }
            ManifestKind::Index => {
                let children: Vec<(&str, Digest, u64)> = m
                    .manifests
                    .iter()
                    .map(|d| (to.manifest_type(), d.digest.clone(), d.size))
                    .collect();
                let _ = convert_index(body, &children, to);
            }
        }
    }
    for d in m.manifests.iter() {
        if let Some(p) = &d.platform {
            let _ = Platform::parse(&format!("{}/{}", p.os, p.architecture));
        }
    }
});
