//! Containerfiles / Dockerfiles: parsed whole (directives, continuations, heredocs,
//! flags, JSON forms), and each word expanded as BuildKit's lexer does.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = berth_containerfile::parse(text, "Containerfile") {
        let _ = format!("{file:?}");
    }
    let lookup = |name: &str| (name.len() % 2 == 0).then(|| format!("v-{name}"));
    for escape in ['\\', '`'] {
        let _ = berth_containerfile::expand(text, escape, &lookup);
    }
});
