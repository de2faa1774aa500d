//! Format compatibility with the real tool: an auth.json written by berth must be read by
//! skopeo. `skopeo login --get-login` only reads the file, so no registry is needed.

use std::process::Command;

use berth_containers_config::{AuthFiles, Env};

#[test]
fn skopeo_reads_what_berth_writes() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("containers/auth.json");
    let files = AuthFiles::new(&Env::under(t.path()), Some(&file));
    files
        .login("127.0.0.1:5999", "berth-user", "pa:ss", &[])
        .unwrap();
    files
        .login("other.example", "someone-else", "x", &[])
        .unwrap();

    let out = match Command::new("skopeo")
        .args(["login", "--get-login", "--authfile"])
        .arg(&file)
        .arg("127.0.0.1:5999")
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            panic!("skopeo could not be run ({e}): install skopeo (apt-get install -y skopeo)")
        }
    };
    assert!(
        out.status.success(),
        "skopeo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "berth-user");
}
