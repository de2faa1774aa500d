//! `docker-archive:` files (what `docker save` writes): unpacked, `manifest.json` read,
//! each image's manifest synthesized (within the default tar limits); what comes out must
//! parse as a manifest.
#![no_main]
use berth_image::Manifest;
use berth_rootfs::TarLimits;
use berth_transport::docker_archive::{repo_tags, DockerArchive};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = berth_fuzz::scratch_file("docker-archive.tar", data);
    let _ = repo_tags(&path);
    berth_fuzz::runtime().block_on(async {
        if let Ok(images) = DockerArchive::read_all(&path, &TarLimits::default()).await {
            for (image, _tags) in images {
                let (manifest, _) = image.manifest().expect("a read image has a manifest");
                Manifest::parse(None, &manifest).expect("a synthesized manifest parses");
            }
        }
        let _ = DockerArchive::read(&path, Some("example.com/a:b".into())).await;
    });
});
