//! Physical lines to logical lines, as BuildKit's `parser.Parse` loop does it.
//!
//! The rules are odd in places and are kept on purpose, because a Containerfile that
//! builds with podman or docker must mean the same here:
//! - parser directives (`# escape=`, `# syntax=`, `# check=`) count only while every
//!   line so far has been one; the first other line (even an empty one) ends them;
//! - a comment is a line whose first non-blank character is `#`; `#` later in a line is
//!   an ordinary character;
//! - a line continues when its last non-blank (space/tab) character is the escape
//!   character and that is not itself escaped; inside a continuation, comment lines and
//!   empty lines are skipped (BuildKit warns about the latter);
//! - the first line of an instruction loses its leading blanks, continuation lines keep
//!   theirs, and the escape character is removed but the blanks before it stay.

use std::collections::HashSet;

/// A logical line: an instruction with its continuations joined.
pub(crate) struct Logical {
    /// 1-based line where it starts.
    pub line: usize,
    pub text: String,
}

/// An error with the line it belongs to.
pub(crate) struct LineError {
    pub line: usize,
    pub message: String,
}

pub(crate) struct Lines<'a> {
    /// Physical lines, each with its line ending (heredoc bodies keep them).
    physical: Vec<&'a str>,
    /// Index of the next physical line.
    next: usize,
    escape: char,
    syntax: Option<String>,
    directives_done: bool,
    seen_directives: HashSet<String>,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Lines {
            physical: text.split_inclusive('\n').collect(),
            next: 0,
            escape: '\\',
            syntax: None,
            directives_done: false,
            seen_directives: HashSet::new(),
        }
    }

    pub fn escape(&self) -> char {
        self.escape
    }

    pub fn syntax(&self) -> Option<&str> {
        self.syntax.as_deref()
    }

    pub fn line_count(&self) -> usize {
        self.physical.len()
    }

    fn next_physical(&mut self) -> Option<&'a str> {
        let line = self.physical.get(self.next).copied()?;
        self.next += 1;
        Some(line)
    }

    /// The next instruction line, or `None` at the end of the text.
    pub fn next_logical(&mut self) -> Option<Result<Logical, LineError>> {
        loop {
            let raw = self.next_physical()?;
            let line = self.next;
            let first = trim_newline(raw).trim_start();
            if let Err(message) = self.directive(first) {
                return Some(Err(LineError { line, message }));
            }
            let first = if is_comment(raw) { "" } else { first };
            let (text, mut ended) = trim_continuation(first, self.escape);
            if ended && text.is_empty() {
                continue;
            }
            let mut joined = text.to_string();
            while !ended {
                let Some(raw) = self.next_physical() else {
                    break;
                };
                let here = self.next;
                let content = trim_newline(raw);
                if let Err(message) = self.directive(content) {
                    return Some(Err(LineError {
                        line: here,
                        message,
                    }));
                }
                if is_comment(raw) || content.trim_start().is_empty() {
                    continue;
                }
                let (text, end) = trim_continuation(content, self.escape);
                joined.push_str(text);
                ended = end;
            }
            return Some(Ok(Logical { line, text: joined }));
        }
    }

    /// Reads a heredoc body up to the line that is exactly `name` (after removing leading
    /// tabs for `<<-`). `None` when the text ends first.
    pub fn read_heredoc(&mut self, name: &str, strip_tabs: bool) -> Option<String> {
        let mut content = String::new();
        loop {
            let raw = self.next_physical()?;
            let mut candidate = trim_newline(raw);
            if strip_tabs {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == name {
                return Some(content);
            }
            content.push_str(raw);
        }
    }

    /// Looks at a line (left-trimmed, without its newline) while directives may still
    /// come. Unknown names end the directives, as in BuildKit's `DirectiveParser`.
    fn directive(&mut self, line: &str) -> Result<(), String> {
        if self.directives_done {
            return Ok(());
        }
        let Some((name, value)) = parse_directive(line) else {
            self.directives_done = true;
            return Ok(());
        };
        let name = name.to_ascii_lowercase();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.directives_done = true;
            return Ok(());
        }
        if !self.seen_directives.insert(name.clone()) {
            return Err(format!("only one {name} parser directive can be used"));
        }
        match name.as_str() {
            "escape" => match value {
                "\\" => self.escape = '\\',
                "`" => self.escape = '`',
                other => {
                    return Err(format!(
                        "invalid escape token '{other}' does not match ` or \\"
                    ))
                }
            },
            "syntax" => self.syntax = Some(value.to_string()),
            _ => {}
        }
        Ok(())
    }
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`, by hand.
fn parse_directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, rest) = rest.split_at(name_len);
    let value = rest.trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((name, value))
}

/// Go's `bytes.TrimRight(line, "\r\n")`.
pub(crate) fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(raw: &str) -> bool {
    raw.trim_start().starts_with('#')
}

/// Removes a trailing continuation (escape character plus trailing spaces and tabs);
/// returns whether the line ends the instruction. An escape preceded by another escape
/// is not a continuation (BuildKit's regex `([^\\])\\[ \t]*$|^\\[ \t]*$`).
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, true);
    };
    if before.ends_with(escape) {
        return (line, true);
    }
    (before, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logical(text: &str) -> Vec<(usize, String)> {
        let mut lines = Lines::new(text);
        let mut out = Vec::new();
        while let Some(l) = lines.next_logical() {
            match l {
                Ok(l) => out.push((l.line, l.text)),
                Err(e) => out.push((e.line, format!("ERR {}", e.message))),
            }
        }
        out
    }

    #[test]
    fn continuation_keeps_blanks_before_escape_and_on_next_line() {
        assert_eq!(
            logical("RUN a \\\n    && b\n"),
            vec![(1, "RUN a     && b".to_string())]
        );
    }

    #[test]
    fn trailing_blanks_after_escape_still_continue() {
        assert_eq!(logical("RUN a\\  \t\nb\n"), vec![(1, "RUN ab".to_string())]);
    }

    #[test]
    fn escaped_escape_does_not_continue() {
        assert_eq!(
            logical("RUN echo \\\\\nRUN x\n"),
            vec![(1, "RUN echo \\\\".into()), (2, "RUN x".into())]
        );
    }

    #[test]
    fn comment_and_empty_lines_inside_continuation_are_skipped() {
        assert_eq!(
            logical("RUN a \\\n# note\n\n   \n  # indented\n b\nRUN c\n"),
            vec![(1, "RUN a  b".into()), (7, "RUN c".into())]
        );
    }

    #[test]
    fn comments_only_at_line_start() {
        assert_eq!(
            logical("# c\n  # c2\nRUN echo # not a comment\n"),
            vec![(3, "RUN echo # not a comment".into())]
        );
    }

    #[test]
    fn backtick_escape_directive() {
        let mut lines = Lines::new("# escape=`\nRUN a `\n b \\\nRUN c\n");
        let l = lines.next_logical().and_then(Result::ok).map(|l| l.text);
        assert_eq!(l.as_deref(), Some("RUN a  b \\"));
        assert_eq!(lines.escape(), '`');
    }

    #[test]
    fn directive_after_instruction_or_blank_is_a_comment() {
        let mut lines = Lines::new("\n# escape=`\nRUN a `\nRUN b\n");
        let l: Vec<_> = std::iter::from_fn(|| lines.next_logical())
            .filter_map(Result::ok)
            .map(|l| l.text)
            .collect();
        assert_eq!(lines.escape(), '\\');
        assert_eq!(l, vec!["RUN a `", "RUN b"]);
    }

    #[test]
    fn unknown_directive_ends_directives() {
        let mut lines = Lines::new("# foo=bar\n# escape=`\nFROM x\n");
        while lines.next_logical().is_some() {}
        assert_eq!(lines.escape(), '\\');
    }

    #[test]
    fn directives_syntax_and_duplicates() {
        let mut lines = Lines::new("# syntax = docker/dockerfile:1.4\n#escape=\\\nFROM x\n");
        while lines.next_logical().is_some() {}
        assert_eq!(lines.syntax(), Some("docker/dockerfile:1.4"));
        assert_eq!(
            logical("# escape=`\n# escape=\\\nFROM x\n")[0],
            (2, "ERR only one escape parser directive can be used".into())
        );
        assert!(logical("# escape=x\nFROM x\n")[0]
            .1
            .contains("invalid escape token"));
    }

    #[test]
    fn crlf_and_bom() {
        assert_eq!(
            logical("\u{feff}RUN a \\\r\n b\r\n"),
            vec![(1, "RUN a  b".into())]
        );
    }

    #[test]
    fn continuation_at_end_of_file() {
        assert_eq!(logical("RUN a \\"), vec![(1, "RUN a ".into())]);
    }

    #[test]
    fn heredoc_body_and_tab_stripping() {
        let mut lines = Lines::new("a\n\tb\n\tEOF\nEOF\nnext\n");
        assert_eq!(lines.read_heredoc("EOF", true).as_deref(), Some("a\n\tb\n"));
        let mut lines = Lines::new("a\n\tEOF\nEOF\n");
        assert_eq!(
            lines.read_heredoc("EOF", false).as_deref(),
            Some("a\n\tEOF\n")
        );
        let mut lines = Lines::new("a\n");
        assert_eq!(lines.read_heredoc("EOF", false), None);
    }
}
