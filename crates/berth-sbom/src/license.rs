//! A package database's license string, as the SBOM formats can carry it.
//!
//! rpm's `LICENSE` and apk's `L:` are free text: newer Fedora and Alpine packages use
//! SPDX expressions (`MIT AND BSD-3-Clause`), older ones and many others do not
//! (`GPLv2+`, `BSD`, `MIT and ISC`). A string goes into a document as an SPDX
//! expression only when it parses as one against the SPDX license list; otherwise
//! the formats get it as what it is, free text (a `LicenseRef-` with the text in SPDX,
//! a license `name` in CycloneDX).

use spdx::lexer::{Lexer, Token};
use spdx::ParseMode;

/// A package's license, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum License<'a> {
    /// A valid SPDX license expression, written out with upper-case operators.
    Expression(String),
    /// Free text that is not an SPDX expression (kept as the database has it).
    Text(&'a str),
    /// The database records none.
    None,
}

/// License identifiers on the SPDX list (deprecated ones too: `GPL-2.0` is still a
/// valid identifier in SPDX 2.3 documents), no `/` for OR, no guessed names, no
/// unknown identifiers.
const MODE: ParseMode = ParseMode {
    allow_deprecated: true,
    ..ParseMode::STRICT
};

pub(crate) fn classify(raw: Option<&str>) -> License<'_> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return License::None;
    };
    match expression(raw) {
        Some(e) => License::Expression(e),
        None => License::Text(raw),
    }
}

/// `raw` as a canonical SPDX expression, when it is one. `LicenseRef-`s are refused:
/// the document would have to define them, and the database does not say what they are.
fn expression(raw: &str) -> Option<String> {
    spdx::Expression::parse_mode(raw, MODE).ok()?;
    // The parser takes `and`/`or`/`with` in any case; SPDX documents spell them in
    // upper case. Rebuild the text from the tokens.
    let mut out = String::with_capacity(raw.len());
    for t in Lexer::new_mode(raw, MODE) {
        let t = t.ok()?;
        let word = match t.token {
            Token::And => "AND",
            Token::Or => "OR",
            Token::With => "WITH",
            Token::OpenParen => "(",
            Token::CloseParen => ")",
            Token::Plus => "+",
            Token::Spdx(_) | Token::Exception(_) => &raw[t.span.clone()],
            Token::LicenseRef { .. } | Token::AdditionRef { .. } | Token::Unknown(_) => {
                return None
            }
        };
        let glued = matches!(t.token, Token::Plus | Token::CloseParen) || out.ends_with('(');
        if !out.is_empty() && !glued {
            out.push(' ');
        }
        out.push_str(word);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_expressions_pass_normalized() {
        for (raw, want) in [
            ("MIT", "MIT"),
            ("GPL-2.0-or-later", "GPL-2.0-or-later"),
            ("MIT and BSD-3-Clause", "MIT AND BSD-3-Clause"),
            (
                "(MIT OR Apache-2.0)  AND Zlib",
                "(MIT OR Apache-2.0) AND Zlib",
            ),
            (
                "GPL-2.0-only WITH Classpath-exception-2.0",
                "GPL-2.0-only WITH Classpath-exception-2.0",
            ),
            ("GPL-2.0", "GPL-2.0"),
            ("Apache-2.0+", "Apache-2.0+"),
        ] {
            assert_eq!(
                classify(Some(raw)),
                License::Expression(want.into()),
                "{raw}"
            );
        }
    }

    #[test]
    fn other_strings_are_text() {
        for raw in [
            "GPLv2+",
            "BSD",
            "GPLv2+ and LGPLv2+",
            "MIT/Apache-2.0",
            "LicenseRef-mine",
            "Public Domain",
            "MIT AND",
        ] {
            assert_eq!(classify(Some(raw)), License::Text(raw), "{raw}");
        }
        assert_eq!(classify(None), License::None);
        assert_eq!(classify(Some("  ")), License::None);
    }
}
