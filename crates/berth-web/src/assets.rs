//! The stylesheet and the script, embedded: no build step, no files to install, and
//! the Content-Security-Policy can stay `default-src 'self'` with no inline code.

/// `/static/berth.css`.
pub const CSS: &str = include_str!("../assets/berth.css");
/// `/static/berth.js`: only adds to pages that work without it (copy buttons,
/// auto-submit of selects and checkboxes, filtering the visible table rows).
pub const JS: &str = include_str!("../assets/berth.js");

/// An embedded file by its name under `/static/`: `(content type, body)`.
pub fn get(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "berth.css" => Some(("text/css; charset=utf-8", CSS)),
        "berth.js" => Some(("text/javascript; charset=utf-8", JS)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_assets_are_served_and_nothing_else() {
        assert!(super::get("berth.css")
            .unwrap()
            .1
            .contains("prefers-color-scheme: dark"));
        assert!(super::get("berth.js").unwrap().1.contains("data-copy"));
        assert!(super::get("../Cargo.toml").is_none());
        assert!(super::get("").is_none());
    }
}
