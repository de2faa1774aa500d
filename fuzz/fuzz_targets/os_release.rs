//! `os-release` and the one-line release files (`etc/alpine-release`,
//! `etc/debian_version`, `etc/redhat-release`): parsed directly, and in a layer carrying
//! the bytes at all four paths, where `etc/os-release` must read as the parser reads it.
//! A parsed OS has a lowercase, non-empty id, and no value spans two lines.
#![no_main]
use berth_inventory::{analyze_layer, parse_os_release, OsInfo};
use libfuzzer_sys::fuzz_target;

fn check(os: &OsInfo) {
    assert!(!os.id.is_empty(), "{os:?}");
    assert!(!os.id.bytes().any(|b| b.is_ascii_uppercase()), "{os:?}");
    for v in [
        Some(&os.id),
        os.version_id.as_ref(),
        os.pretty_name.as_ref(),
        os.ecosystem.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!v.contains('\n'), "a value over two lines: {os:?}");
    }
    assert!(os.version_id.as_deref() != Some(""), "{os:?}");
    assert!(os.ecosystem.as_deref() != Some(""), "{os:?}");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let direct = parse_os_release(&text);
    if let Some(os) = &direct {
        check(os);
    }
    let paths = [
        "etc/os-release",
        "etc/alpine-release",
        "etc/debian_version",
        "etc/redhat-release",
    ];
    let files: Vec<(&str, &[u8])> = paths.iter().map(|p| (*p, data)).collect();
    let layer = berth_fuzz::tar_of(&files);
    let art = analyze_layer(std::io::Cursor::new(layer), berth_fuzz::OCI_LAYER)
        .unwrap_or_else(|e| panic!("a well-formed layer failed: {e}"));
    let in_layer = art
        .os_release
        .iter()
        .find(|(p, _)| p == "etc/os-release")
        .map(|(_, os)| os);
    assert_eq!(in_layer, direct.as_ref());
    for (path, os) in &art.os_release {
        assert!(paths.contains(&path.as_str()), "{path}");
        check(os);
    }
});
