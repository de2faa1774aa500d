//! A busybox root file system as a tar, for tests that import it (berth and podman
//! alike) instead of building an image.

use std::fs;

use crate::support::{Ctx, BUSYBOX};

/// A tar of a busybox root (applets linked in /bin, an /etc/passwd): what both
/// tools import.
pub fn busybox_tar(ctx: &Ctx) -> String {
    let root = ctx.path("bb-root");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "echo", "cat", "ls", "sleep", "true", "env", "sort", "mkdir",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let tar = ctx.p("bb.tar");
    ctx.cmd(
        "tar",
        &["-C", &root.display().to_string(), "-cf", &tar, "."],
    )
    .run();
    tar
}
