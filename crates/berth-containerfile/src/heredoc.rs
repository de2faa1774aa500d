//! Recognising here-documents in RUN, COPY and ADD lines (BuildKit's `heredocsFromLine`
//! and `ParseHeredoc`).
//!
//! A heredoc is a whole word of the form `[fd]<<[-]DELIM` where DELIM holds no `<`.
//! Whether the body is expanded depends on whether any part of DELIM was quoted, which
//! BuildKit finds by lexing the word with and without quote removal and comparing quote
//! counts; here the word is lexed once and quoting is recorded as it is removed, which
//! gives the same answer. The lexer always uses `\` here, not the file's escape
//! character, exactly like BuildKit.

use crate::words::is_space;
use crate::Heredoc;

/// Every heredoc word in `line`, in order, with empty content (the caller reads bodies).
pub(crate) fn heredocs_in_line(line: &str) -> Vec<Heredoc> {
    if !line.contains("<<") {
        return Vec::new();
    }
    raw_words(line)
        .iter()
        .filter_map(|w| parse_heredoc_word(w))
        .collect()
}

/// Splits on unquoted, unescaped blanks and keeps quotes and escapes (BuildKit lexes with
/// `RawQuotes` and `RawEscapes`).
fn raw_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        match quote {
            Some(q) => {
                word.push(ch);
                if ch == q {
                    quote = None;
                } else if ch == '\\' && q == '"' {
                    if let Some(next) = chars.next() {
                        word.push(next);
                    }
                }
            }
            None if is_space(ch) => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                in_word = true;
                word.push(ch);
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                } else if ch == '\\' {
                    if let Some(next) = chars.next() {
                        word.push(next);
                    }
                }
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Whether a RUN command is one heredoc and nothing else (`<<EOF`, not `<<EOF bash`
/// or `cat <<EOF > f`): BuildKit's `MustParseHeredoc` of the command. Such a body is
/// the script; any other command is given to the shell with the bodies after it.
pub fn is_single_heredoc(cmd: &str) -> bool {
    parse_heredoc_word(cmd.trim()).is_some()
}

/// `^(\d*)<<(-?)([^<]*)$`, then the delimiter unquoted; `None` when the word is no heredoc.
pub(crate) fn parse_heredoc_word(word: &str) -> Option<Heredoc> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (fd, rest) = word.split_at(digits);
    let rest = rest.strip_prefix("<<")?;
    let (strip_tabs, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let (name, quoted) = unquote_single_word(rest)?;
    Some(Heredoc {
        name,
        content: String::new(),
        expand: !quoted,
        strip_tabs,
        fd: fd.parse().unwrap_or(0),
    })
}

/// Removes quotes and `\` escapes from `text`, which must be exactly one word; tells
/// whether any quote did quoting. `$` stays literal (BuildKit skips unset variables).
fn unquote_single_word(text: &str) -> Option<(String, bool)> {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut words = 0;
    let mut in_word = false;
    while let Some(ch) = chars.next() {
        if is_space(ch) {
            in_word = false;
            continue;
        }
        if !in_word {
            in_word = true;
            words += 1;
        }
        match ch {
            '\'' => {
                quoted = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => out.push(c),
                    }
                }
            }
            '"' => {
                quoted = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"' | '$' | '\\')) => {
                            out.extend(chars.next());
                        }
                        c => out.push(c),
                    }
                }
            }
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    (words == 1).then_some((out, quoted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<(String, bool, bool, u32)> {
        heredocs_in_line(line)
            .into_iter()
            .map(|h| (h.name, h.expand, h.strip_tabs, h.fd))
            .collect()
    }

    #[test]
    fn plain_quoted_and_chomped() {
        assert_eq!(names("RUN <<EOF"), vec![("EOF".into(), true, false, 0)]);
        assert_eq!(names("RUN <<-EOF"), vec![("EOF".into(), true, true, 0)]);
        assert_eq!(
            names(r#"RUN <<"EOF""#),
            vec![("EOF".into(), false, false, 0)]
        );
        assert_eq!(names("RUN <<'EOF'"), vec![("EOF".into(), false, false, 0)]);
        assert_eq!(
            names(r#"RUN <<E"O"F"#),
            vec![("EOF".into(), false, false, 0)]
        );
        assert_eq!(
            names(r#"RUN <<-"EOF""#),
            vec![("EOF".into(), false, true, 0)]
        );
    }

    #[test]
    fn several_and_fd() {
        assert_eq!(
            names("RUN cat <<A 3<<B > /x"),
            vec![("A".into(), true, false, 0), ("B".into(), true, false, 3)]
        );
        assert_eq!(
            names("COPY <<one.txt <<two.txt /dest/"),
            vec![
                ("one.txt".into(), true, false, 0),
                ("two.txt".into(), true, false, 0)
            ]
        );
    }

    #[test]
    fn not_heredocs() {
        assert!(names("RUN cat<<EOF").is_empty());
        assert!(names("RUN echo '<<EOF'").is_empty());
        assert!(names(r#"RUN echo "a <<EOF""#).is_empty());
        assert!(names("RUN echo <<<word").is_empty());
        assert!(names("RUN echo <<").is_empty());
        assert!(names("RUN echo hi").is_empty());
    }
}
