//! `.containerignore` / `.dockerignore`: patterns parsed, then matched against paths
//! made from the input's own lines.
#![no_main]
use berth_containerfile::Ignore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(ignore) = Ignore::try_parse(text) else {
        return;
    };
    let _ = (ignore.patterns(), ignore.has_exceptions());
    for line in text.lines().take(8) {
        let path = line.trim_start_matches('!').trim_matches('/');
        for is_dir in [false, true] {
            let _ = ignore.is_ignored(path, is_dir);
            let _ = ignore.is_ignored(&format!("{path}/x"), is_dir);
        }
    }
    let _ = ignore.is_ignored("Containerfile", false);
});
