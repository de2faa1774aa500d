//! Word expansion as BuildKit's `shell.Lex.ProcessWord` does it for ADD, COPY, ENV,
//! EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR and ARG.
//!
//! It is a small subset of sh on purpose: quotes are removed, `$VAR` and `${VAR…}`
//! forms are replaced, nothing is split or globbed. The escape character is the file's
//! (`\` or `` ` ``), so a Containerfile written for Windows paths expands the same here.

use crate::ParseError;

/// Expands one word: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}`, `${VAR-default}`,
/// `${VAR+alt}`, `${VAR:?msg}`/`${VAR?msg}`; the escape character makes the next
/// character literal; single quotes are literal; in double quotes only `"`, `$` and the
/// escape character can be escaped. Unknown variables are empty.
///
/// Errors (unterminated quotes, bad substitutions) have no place; see [`ParseError::at`].
pub fn expand(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ParseError> {
    let mut lexer = Lexer {
        chars: word.chars().collect(),
        pos: 0,
        escape,
        lookup,
    };
    lexer.until(None).map_err(|m| ParseError {
        file: String::new(),
        line: 0,
        message: m,
    })
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// Processes up to `stop` (consumed) or the end (`stop == None`).
    fn until(&mut self, stop: Option<char>) -> Result<String, String> {
        let mut out = String::new();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok(out);
            }
            match ch {
                '\'' => out.push_str(&self.single_quoted()?),
                '"' => out.push_str(&self.double_quoted()?),
                '$' => out.push_str(&self.dollar()?),
                _ => {
                    self.pos += 1;
                    if ch == self.escape {
                        // An escape at the very end is dropped.
                        match self.next() {
                            Some(c) => out.push(c),
                            None => break,
                        }
                    } else {
                        out.push(ch);
                    }
                }
            }
        }
        match stop {
            Some(c) => Err(format!(
                "unexpected end of statement while looking for matching {c}"
            )),
            None => Ok(out),
        }
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(ch) = self.peek() else {
                return Err(
                    "unexpected end of statement while looking for matching double-quote".into(),
                );
            };
            match ch {
                '"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                '$' => out.push_str(&self.dollar()?),
                _ => {
                    self.pos += 1;
                    if ch == self.escape {
                        if let Some(next @ ('"' | '$')) = self.peek() {
                            self.pos += 1;
                            out.push(next);
                            continue;
                        }
                        if self.peek() == Some(self.escape) {
                            self.pos += 1;
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    /// A name after `$`: letters, digits and `_`; or a run of digits; or one special
    /// parameter character (they look up as themselves and are normally unset).
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    self.pos += 1;
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!') {
                self.pos += 1;
                return ch.to_string();
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            self.pos += 1;
            name.push(ch);
        }
        name
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok((self.lookup)(&name).unwrap_or_default());
        }
        self.pos += 1;
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.name();
        let value = (self.lookup)(&name);
        match self.next() {
            None => Err("syntax error: missing '}'".into()),
            Some('}') => Ok(value.unwrap_or_default()),
            Some(':') => {
                let modifier = self.next();
                let word = self.modifier_word()?;
                let set_non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
                match modifier {
                    Some('-') => Ok(if set_non_empty {
                        value.unwrap_or_default()
                    } else {
                        word
                    }),
                    Some('+') => Ok(if set_non_empty { word } else { String::new() }),
                    Some('?') => match value {
                        None => Err(required(&name, &word, "is not allowed to be unset")),
                        Some(v) if v.is_empty() => {
                            Err(required(&name, &word, "is not allowed to be empty"))
                        }
                        Some(v) => Ok(v),
                    },
                    Some(c) => Err(format!("unsupported modifier ({c}) in substitution")),
                    None => Err("syntax error: missing '}'".into()),
                }
            }
            Some('-') => {
                let word = self.modifier_word()?;
                Ok(value.unwrap_or(word))
            }
            Some('+') => {
                let word = self.modifier_word()?;
                Ok(if value.is_some() { word } else { String::new() })
            }
            Some('?') => {
                let word = self.modifier_word()?;
                value.ok_or_else(|| required(&name, &word, "is not allowed to be unset"))
            }
            Some(c) => Err(format!("unsupported modifier ({c}) in substitution")),
        }
    }

    /// The word after a modifier, up to the closing `}`; it is itself expanded.
    fn modifier_word(&mut self) -> Result<String, String> {
        self.until(Some('}')).map_err(|e| {
            if self.peek().is_none() {
                "syntax error: missing '}'".to_string()
            } else {
                e
            }
        })
    }
}

fn required(name: &str, word: &str, default: &str) -> String {
    format!("{name}: {}", if word.is_empty() { default } else { word })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("aa".into()),
            "EMPTY" => Some(String::new()),
            "SP" => Some("x y".into()),
            _ => None,
        }
    }

    fn ex(word: &str) -> String {
        match expand(word, '\\', &env) {
            Ok(s) => s,
            Err(e) => format!("ERR {}", e.message),
        }
    }

    #[test]
    fn simple_and_braced() {
        assert_eq!(ex("$A"), "aa");
        assert_eq!(ex("${A}"), "aa");
        assert_eq!(ex("x$A.y"), "xaa.y");
        assert_eq!(ex("$Ab"), "");
        assert_eq!(ex("${A}b"), "aab");
        assert_eq!(ex("$UNKNOWN-"), "-");
        assert_eq!(ex("$"), "$");
        assert_eq!(ex("a$ b"), "a$ b");
        assert_eq!(ex("$1x"), "x");
        assert_eq!(ex("$$"), "");
        assert_eq!(ex("${SP}"), "x y");
    }

    #[test]
    fn modifiers() {
        assert_eq!(ex("${A:-d}"), "aa");
        assert_eq!(ex("${EMPTY:-d}"), "d");
        assert_eq!(ex("${NOPE:-d}"), "d");
        assert_eq!(ex("${EMPTY-d}"), "");
        assert_eq!(ex("${NOPE-d}"), "d");
        assert_eq!(ex("${A:+alt}"), "alt");
        assert_eq!(ex("${EMPTY:+alt}"), "");
        assert_eq!(ex("${EMPTY+alt}"), "alt");
        assert_eq!(ex("${NOPE+alt}"), "");
        assert_eq!(ex("${NOPE:-$A}"), "aa");
        assert_eq!(ex("${NOPE:-'x y'}"), "x y");
        assert_eq!(ex("${NOPE:-${A:+nested}}"), "nested");
        assert_eq!(ex("${A:?}"), "aa");
        assert_eq!(ex("${NOPE:?}"), "ERR NOPE: is not allowed to be unset");
        assert_eq!(ex("${EMPTY:?}"), "ERR EMPTY: is not allowed to be empty");
        assert_eq!(ex("${NOPE?must set}"), "ERR NOPE: must set");
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(ex("${A"), "ERR syntax error: missing '}'");
        assert_eq!(ex("${"), "ERR syntax error: missing '}'");
        assert_eq!(ex("${}"), "ERR syntax error: bad substitution");
        assert_eq!(ex("${:a}"), "ERR syntax error: bad substitution");
        assert_eq!(ex("${A:-x"), "ERR syntax error: missing '}'");
        assert_eq!(ex("${A!x}"), "ERR unsupported modifier (!) in substitution");
        assert_eq!(
            ex("${A:=x}"),
            "ERR unsupported modifier (=) in substitution"
        );
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(ex("'$A'"), "$A");
        assert_eq!(ex("\"$A\""), "aa");
        assert_eq!(ex("\"a b\"c"), "a bc");
        assert_eq!(ex(r"\$A"), "$A");
        assert_eq!(ex(r"a\ b"), "a b");
        assert_eq!(ex(r#""\$A \"q\" \\ \n""#), r#"$A "q" \ \n"#);
        assert_eq!(ex(r"'a\'"), r"a\");
        assert_eq!(ex("abc\\"), "abc");
        assert_eq!(
            ex("'abc"),
            "ERR unexpected end of statement while looking for matching single-quote"
        );
        assert_eq!(
            ex("\"abc"),
            "ERR unexpected end of statement while looking for matching double-quote"
        );
    }

    #[test]
    fn backtick_escape() {
        let ex = |w: &str| expand(w, '`', &env).map_err(|e| e.message);
        assert_eq!(ex(r"C:\path\$A").as_deref(), Ok(r"C:\path\aa"));
        assert_eq!(ex("`$A").as_deref(), Ok("$A"));
        assert_eq!(ex("\"`\"\"").as_deref(), Ok("\""));
    }
}
