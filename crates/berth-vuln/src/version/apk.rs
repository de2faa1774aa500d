//! apk's version order (`digits{.digits}[letter]{_suffix[digits]}[~hash][-rN]`), as
//! apk-tools orders it: the first number numerically; later numbers numerically unless
//! either has a leading zero (then as strings, so `1.02 < 1.1`); one letter by its
//! ASCII value; suffixes `_alpha < _beta < _pre < _rc < (none) < _cvs < _svn < _git <
//! _hg < _p`; a commit hash as a string; the `-rN` revision last. When one version runs
//! out, the other is newer unless what it has next is a pre-release suffix. A version
//! that stops being valid part-way compares up to there, as apk does.
//!
//! There is no established crate; this is written from those rules and tested against
//! apk-tools' own test vectors (`tests/data/apk-version.data`).

use std::cmp::Ordering;

/// What a token is. The order matters: when two versions agree up to a point and then
/// differ in the kind of their next token, the one with the *later* kind is older
/// (`1.0` (end) < `1.0.1` (digit); `1.0-r1` (revision) > `1.0` (end)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNumber,
    CommitHash,
    Revision,
    End,
    Invalid,
}

/// Suffix ranks; `NONE` is where a version without the suffix would sit.
const SUFFIXES: [(&str, u8); 9] = [
    ("alpha", 1),
    ("beta", 2),
    ("pre", 3),
    ("rc", 4),
    ("cvs", 6),
    ("svn", 7),
    ("git", 8),
    ("hg", 9),
    ("p", 10),
];
const SUFFIX_NONE: u8 = 5;

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    /// The token's text (digits, letter, suffix name or hash).
    text: &'a [u8],
    /// Digits as a number (wrapping, as apk's `uint64_t` accumulation does).
    number: u64,
    suffix: u8,
}

/// Splits a version into tokens, one at a time.
struct Tokens<'a> {
    rest: &'a [u8],
    last: Kind,
    started: bool,
}

impl<'a> Tokens<'a> {
    fn new(v: &'a str) -> Self {
        Tokens {
            rest: v.as_bytes(),
            last: Kind::InitialDigit,
            started: false,
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let n = self.rest.iter().take_while(|c| f(**c)).count();
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        head
    }

    fn digits(&mut self, kind: Kind) -> Token<'a> {
        let text = self.take_while(|c| c.is_ascii_digit());
        let number = text.iter().fold(0u64, |n, c| {
            n.wrapping_mul(10).wrapping_add(u64::from(c - b'0'))
        });
        let kind = if text.is_empty() { Kind::Invalid } else { kind };
        Token {
            kind,
            text,
            number,
            suffix: 0,
        }
    }

    fn invalid() -> Token<'a> {
        Token {
            kind: Kind::Invalid,
            text: &[],
            number: 0,
            suffix: 0,
        }
    }

    /// The next token; `End` at the end, `Invalid` where the grammar is broken
    /// (and from then on the caller stops).
    fn next_token(&mut self) -> Token<'a> {
        let token = self.read();
        self.last = token.kind;
        token
    }

    fn read(&mut self) -> Token<'a> {
        if !self.started {
            self.started = true;
            return self.digits(Kind::InitialDigit);
        }
        let Some(&c) = self.rest.first() else {
            return Token {
                kind: Kind::End,
                text: &[],
                number: 0,
                suffix: 0,
            };
        };
        let last = self.last;
        match c {
            b'a'..=b'z' if last <= Kind::Digit => {
                let (text, tail) = self.rest.split_at(1);
                self.rest = tail;
                Token {
                    kind: Kind::Letter,
                    text,
                    number: 0,
                    suffix: 0,
                }
            }
            b'.' | b'0'..=b'9' => {
                if c == b'.' {
                    if last > Kind::Digit {
                        return Self::invalid();
                    }
                    self.rest = &self.rest[1..];
                }
                match last {
                    Kind::InitialDigit | Kind::Digit => self.digits(Kind::Digit),
                    Kind::Suffix => self.digits(Kind::SuffixNumber),
                    _ => Self::invalid(),
                }
            }
            b'_' if last <= Kind::SuffixNumber => {
                self.rest = &self.rest[1..];
                let text = self.take_while(|c| c.is_ascii_lowercase());
                match SUFFIXES.iter().find(|(name, _)| name.as_bytes() == text) {
                    Some(&(_, suffix)) => Token {
                        kind: Kind::Suffix,
                        text,
                        number: 0,
                        suffix,
                    },
                    None => Self::invalid(),
                }
            }
            b'~' if last < Kind::CommitHash => {
                self.rest = &self.rest[1..];
                let text = self.take_while(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
                match text.is_empty() {
                    true => Self::invalid(),
                    false => Token {
                        kind: Kind::CommitHash,
                        text,
                        number: 0,
                        suffix: 0,
                    },
                }
            }
            b'-' if last < Kind::Revision && self.rest.starts_with(b"-r") => {
                self.rest = &self.rest[2..];
                self.digits(Kind::Revision)
            }
            _ => Self::invalid(),
        }
    }
}

fn token_cmp(a: &Token<'_>, b: &Token<'_>) -> Ordering {
    match a.kind {
        Kind::Digit if a.text.first() == Some(&b'0') || b.text.first() == Some(&b'0') => {
            a.text.cmp(b.text)
        }
        Kind::InitialDigit | Kind::Digit | Kind::SuffixNumber | Kind::Revision => {
            a.number.cmp(&b.number)
        }
        Kind::Letter => a.text.cmp(b.text),
        Kind::Suffix => a.suffix.cmp(&b.suffix),
        _ => a.text.cmp(b.text),
    }
}

/// Compares two apk versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (mut ta, mut tb) = (Tokens::new(a), Tokens::new(b));
    let (mut x, mut y) = (ta.next_token(), tb.next_token());
    while x.kind == y.kind && x.kind < Kind::End {
        let r = token_cmp(&x, &y);
        if r != Ordering::Equal {
            return r;
        }
        x = ta.next_token();
        y = tb.next_token();
    }
    if x.kind == y.kind {
        return Ordering::Equal;
    }
    // Equal so far: the longer one is newer unless it goes on with a pre-release suffix.
    if x.kind == Kind::Suffix && x.suffix < SUFFIX_NONE {
        return Ordering::Less;
    }
    if y.kind == Kind::Suffix && y.suffix < SUFFIX_NONE {
        return Ordering::Greater;
    }
    y.kind.cmp(&x.kind)
}

/// True when the whole string follows apk's version grammar.
pub fn is_valid(v: &str) -> bool {
    let mut t = Tokens::new(v);
    loop {
        match t.next_token().kind {
            Kind::End => return true,
            Kind::Invalid => return false,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_and_revisions() {
        assert_eq!(compare("1.0_rc1", "1.0"), Ordering::Less);
        assert_eq!(compare("1.0_p1", "1.0"), Ordering::Greater);
        assert_eq!(compare("1.0-r1", "1.0"), Ordering::Greater);
        assert_eq!(compare("1.02", "1.1"), Ordering::Less);
        assert_eq!(compare("3.1.4-r5", "3.1.4-r10"), Ordering::Less);
        assert!(is_valid("0.1_pre2~1234abcd"));
        assert!(!is_valid("0.1-r2_pre1"));
    }
}
