//! Image references and their parts, and transport names (`docker://…`, `oci:…`):
//! whatever parses prints as text that parses to the same image.
#![no_main]
use berth_image::{ImageReference, Reference, RepositoryName, Tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = s.parse::<ImageReference>() {
        let again: ImageReference = r
            .to_string()
            .parse()
            .unwrap_or_else(|e| panic!("{r} does not parse again: {e}"));
        // The same image (whether a domain was typed is not part of the text).
        assert_eq!(again.to_string(), r.to_string());
        assert_eq!((again.domain(), again.path()), (r.domain(), r.path()));
        assert_eq!((again.tag(), again.digest()), (r.tag(), r.digest()));
        let _ = (r.familiar(), r.name(), r.is_qualified());
        let _ = r.with_default_tag().on_domain("localhost:5000");
    }
    if let Ok(r) = ImageReference::parse_local(s) {
        let _ = r.familiar();
    }
    if let Ok(n) = s.parse::<RepositoryName>() {
        assert_eq!(n.to_string().parse::<RepositoryName>().ok(), Some(n));
    }
    if let Ok(t) = s.parse::<Tag>() {
        assert_eq!(t.to_string().parse::<Tag>().ok(), Some(t));
    }
    if let Ok(r) = s.parse::<Reference>() {
        assert_eq!(r.to_string().parse::<Reference>().ok(), Some(r));
    }
    if berth_transport::ImageName::has_transport(s) {
        let _ = berth_transport::ImageName::parse(s);
    }
});
