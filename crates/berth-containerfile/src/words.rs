//! Splitting an instruction's text into words, the three ways BuildKit's parser does.
//!
//! None of them expands anything: they only decide where words begin and end. Which
//! one applies depends on the instruction (see `node.rs`), and they disagree on purpose
//! (flags lose their quotes, ENV words keep them for expansion to interpret).

/// Go's `unicode.IsSpace`.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{85}' || c == '\u{a0}'
}

/// BuildKit's `tokenWhitespace` split (`[\t\v\f\r ]+`): plain fields, quotes mean nothing.
pub(crate) fn fields(rest: &str) -> Vec<String> {
    rest.split(['\t', '\u{b}', '\u{c}', '\r', ' '])
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// BuildKit's `parseWords`: whitespace-separated words where quotes group blanks, and
/// quotes and escape characters are **kept** so that expansion can interpret them later.
/// In single quotes the escape character is an ordinary character; a trailing escape is
/// dropped.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if let Some(q) = quote {
            if ch == q {
                quote = None;
            }
            if ch == escape && q != '\'' {
                let Some(&next) = chars.get(i) else {
                    quote = None;
                    continue;
                };
                word.push(ch);
                word.push(next);
                i += 1;
                continue;
            }
            word.push(ch);
            continue;
        }
        if !in_word {
            if is_space(ch) {
                continue;
            }
            in_word = true;
        }
        if is_space(ch) {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            in_word = false;
            blank_ok = false;
            continue;
        }
        if ch == '\'' || ch == '"' {
            quote = Some(ch);
            blank_ok = true;
        }
        if ch == escape {
            let Some(&next) = chars.get(i) else {
                continue;
            };
            word.push(ch);
            word.push(next);
            i += 1;
            continue;
        }
        word.push(ch);
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// BuildKit's `extractBuilderFlags`: the leading `--name[=value]` words of an
/// instruction, with quotes removed and `\` escaping the next character (always `\`,
/// whatever the file's escape character, as in BuildKit). A lone `--` ends the flags.
/// Returns the flags and the rest of the line.
pub(crate) fn extract_flags(line: &str) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &line[pos..];
        let start = rest.len() - rest.trim_start_matches(is_space).len();
        pos += start;
        if !line[pos..].starts_with("--") {
            return (flags, &line[pos..]);
        }
        let mut word = String::new();
        let mut blank_ok = false;
        let mut quote: Option<char> = None;
        let mut chars = line[pos..].char_indices();
        let mut end = line.len();
        while let Some((i, ch)) = chars.next() {
            if let Some(q) = quote {
                if ch == q {
                    quote = None;
                } else if ch == '\\' {
                    match chars.next() {
                        Some((_, next)) => word.push(next),
                        None => quote = None,
                    }
                } else {
                    word.push(ch);
                }
                continue;
            }
            if is_space(ch) {
                end = pos + i;
                break;
            }
            if ch == '\'' || ch == '"' {
                quote = Some(ch);
                blank_ok = true;
                continue;
            }
            if ch == '\\' {
                if let Some((_, next)) = chars.next() {
                    word.push(next);
                }
                continue;
            }
            word.push(ch);
        }
        if word == "--" {
            return (flags, &line[end..]);
        }
        if blank_ok || !word.is_empty() {
            flags.push(word);
        }
        pos = end;
        if pos >= line.len() {
            return (flags, "");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            parse_words(r#""a b"="c d" e=f g\ h 'i\'"#, '\\'),
            vec![r#""a b"="c d""#, "e=f", r"g\ h", r"'i\'"]
        );
        assert_eq!(
            parse_words(r#"a="x \" y" b"#, '\\'),
            vec![r#"a="x \" y""#, "b"]
        );
        assert_eq!(parse_words("a=`  b", '`'), vec!["a=` ", "b"]);
        assert_eq!(parse_words(r#"a="" b"#, '\\'), vec![r#"a="""#, "b"]);
        assert_eq!(parse_words("a \\", '\\'), vec!["a"]);
    }

    #[test]
    fn fields_ignore_quotes() {
        assert_eq!(fields("a  \"b c\"\td"), vec!["a", "\"b", "c\"", "d"]);
    }

    #[test]
    fn flags_are_unquoted_and_stop_at_first_non_flag() {
        let (flags, rest) = extract_flags(r#"--from=build --chown="a b" src --x=y dst"#);
        assert_eq!(flags, vec!["--from=build", "--chown=a b"]);
        assert_eq!(rest, "src --x=y dst");
        let (flags, rest) = extract_flags("--link -- --weird /d");
        assert_eq!(flags, vec!["--link"]);
        assert_eq!(rest, " --weird /d");
        let (flags, rest) = extract_flags("--mount=type=cache,target=/root");
        assert_eq!(flags, vec!["--mount=type=cache,target=/root"]);
        assert_eq!(rest, "");
        let (flags, rest) = extract_flags("-x y");
        assert!(flags.is_empty());
        assert_eq!(rest, "-x y");
    }
}
