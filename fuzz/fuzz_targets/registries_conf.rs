//! registries.conf (v2 TOML, and v1 `[registries.search]` tables in the main file) as
//! the main file and as a drop-in, then every lookup a pull makes with it.
#![no_main]
use berth_containers_config::{Env, Registries};
use berth_image::ImageReference;
use libfuzzer_sys::fuzz_target;

fn lookups(r: &Registries) {
    let _ = (r.unqualified_search_registries(), r.short_name_mode());
    let _ = r.credential_helpers();
    for name in [
        "busybox",
        "library/busybox",
        "example.com/a/b:c",
        "localhost/x",
    ] {
        let _ = r.alias(name);
        let _ = r.find_name(name);
        let _ = r.resolve_short_name(name, false);
        if let Ok(image) = name.parse::<ImageReference>() {
            let _ = r.find(&image);
            let _ = r.pull_sources(&image);
        }
    }
    for reg in r.registries() {
        let _ = r.find_name(&reg.prefix);
        let _ = r.resolve_short_name(&reg.prefix, false);
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = berth_fuzz::scratch().join("registries");
    let dropins = dir.join("etc/containers/registries.conf.d");
    std::fs::create_dir_all(&dropins).expect("creating the drop-in folder");
    let mut env = Env::under(&dir);
    env.registries_conf = Some(berth_fuzz::scratch_file("registries/main.conf", data));
    let _ = std::fs::remove_file(dropins.join("50-fuzz.conf"));
    if let Ok(r) = Registries::load(&env) {
        lookups(&r);
    }
    env.registries_conf = Some(berth_fuzz::scratch_file("registries/empty.conf", b""));
    std::fs::write(dropins.join("50-fuzz.conf"), data).expect("writing the drop-in");
    if let Ok(r) = Registries::load(&env) {
        lookups(&r);
    }
});
