//! One logical line split into instruction name, flags and arguments: BuildKit's
//! parser-level `Node`, before any instruction-specific checks.
//!
//! How the arguments are split depends on the instruction (BuildKit's dispatch table):
//! JSON-or-shell for RUN/CMD/ENTRYPOINT/SHELL, JSON-or-fields for COPY/ADD/VOLUME,
//! fields for FROM/EXPOSE, quote-aware words for ENV/LABEL/ARG, the whole rest for
//! USER/WORKDIR/STOPSIGNAL/MAINTAINER. Unknown instructions pass this stage (their
//! arguments are ignored) and fail in the next one, as in BuildKit.

use crate::heredoc::heredocs_in_line;
use crate::words::{extract_flags, fields, is_space, parse_words};
use crate::Heredoc;

pub(crate) struct Node {
    pub line: usize,
    /// The logical line as written.
    pub original: String,
    /// The instruction name as written (case kept for messages).
    pub cmd: String,
    pub flags: Vec<String>,
    /// For ENV/LABEL: key, value, key, value…; HEALTHCHECK: type, then the command.
    pub args: Vec<String>,
    /// The arguments were a JSON array.
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
    /// ONBUILD's trigger.
    pub sub: Option<Box<Node>>,
}

const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

impl Node {
    pub fn parse(line: &str, line_no: usize, escape: char) -> Result<Node, String> {
        let trimmed = line.trim_matches(is_space);
        let (cmd, after) = match trimmed.find(['\t', '\u{b}', '\u{c}', '\r', ' ']) {
            Some(i) => (&trimmed[..i], &trimmed[i..]),
            None => (trimmed, ""),
        };
        let (flags, rest) = extract_flags(after);
        let rest = rest.trim_matches(is_space);
        let lower = cmd.to_ascii_lowercase();
        let mut node = Node {
            line: line_no,
            original: line.to_string(),
            cmd: cmd.to_string(),
            flags,
            args: Vec::new(),
            json: false,
            heredocs: Vec::new(),
            sub: None,
        };
        let prefix = |m: String| format!("{}: {m}", cmd.to_uppercase());
        match lower.as_str() {
            "run" | "cmd" | "entrypoint" | "shell" => {
                (node.args, node.json) = maybe_json(rest).map_err(prefix)?;
            }
            "copy" | "add" | "volume" => match json_array(rest) {
                Json::Array(a) => (node.args, node.json) = (a, true),
                Json::NotStrings => return Err(prefix(NOT_STRING_ARRAY.into())),
                Json::Invalid => node.args = fields(rest),
            },
            "from" | "expose" => node.args = fields(rest),
            "env" | "label" => node.args = name_values(rest, &lower, escape).map_err(prefix)?,
            "arg" => node.args = parse_words(rest, escape),
            "user" | "workdir" | "stopsignal" | "maintainer" if !rest.is_empty() => {
                node.args = vec![rest.to_string()];
            }
            "healthcheck" => {
                let end = rest.find(is_space).unwrap_or(rest.len());
                if end > 0 {
                    let (typ, cmd) = rest.split_at(end);
                    let (args, json) =
                        maybe_json(cmd.trim_start_matches(is_space)).map_err(prefix)?;
                    node.args = std::iter::once(typ.to_string()).chain(args).collect();
                    node.json = json;
                }
            }
            "onbuild" if !rest.is_empty() => {
                let sub = Node::parse(rest, line_no, escape)?;
                node.args = vec![sub.cmd.clone()];
                node.sub = Some(Box::new(sub));
            }
            _ => {}
        }
        // Heredocs belong to RUN/COPY/ADD in shell form, directly or as ONBUILD's trigger.
        if let Some(target) = node.heredoc_target() {
            target.heredocs = heredocs_in_line(line);
        }
        Ok(node)
    }

    /// The node whose heredocs the lines after this one fill, if any.
    pub fn heredoc_target(&mut self) -> Option<&mut Node> {
        let target = if self.cmd.eq_ignore_ascii_case("onbuild") {
            self.sub.as_deref_mut()?
        } else {
            self
        };
        let allowed = ["run", "copy", "add"]
            .iter()
            .any(|c| target.cmd.eq_ignore_ascii_case(c));
        (allowed && !target.json).then_some(target)
    }
}

enum Json {
    Array(Vec<String>),
    NotStrings,
    Invalid,
}

/// BuildKit's `parseJSON`: a JSON array of strings, or why not.
fn json_array(rest: &str) -> Json {
    let rest = rest.trim_start_matches(is_space);
    if !rest.starts_with('[') {
        return Json::Invalid;
    }
    // Go's json.Decoder reads one value and ignores what follows it.
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Vec<serde_json::Value>>();
    match values.next() {
        Some(Ok(values)) => {
            let strings: Option<Vec<String>> = values
                .into_iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => Some(s),
                    _ => None,
                })
                .collect();
            strings.map_or(Json::NotStrings, Json::Array)
        }
        _ => Json::Invalid,
    }
}

/// BuildKit's `parseMaybeJSON`: exec form when the text is a JSON array of strings,
/// otherwise the whole text as shell form (even when it looked like a broken array).
fn maybe_json(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match json_array(rest) {
        Json::Array(a) => Ok((a, true)),
        Json::NotStrings => Err(NOT_STRING_ARRAY.into()),
        Json::Invalid => Ok((vec![rest.to_string()], false)),
    }
}

/// BuildKit's `parseNameVal` for ENV and LABEL: `k=v k2=v2`, or the legacy `k value…`
/// when the first word has no `=`.
fn name_values(rest: &str, cmd: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let mut parts = rest.splitn(2, ['\t', '\u{b}', '\u{c}', '\r', ' ']);
        let key = parts.next().unwrap_or_default();
        let value = parts
            .next()
            .map(|v| v.trim_start_matches(['\t', '\u{b}', '\u{c}', '\r', ' ']));
        return match value {
            Some(value) => Ok(vec![key.to_string(), value.to_string()]),
            None => Err(format!("{} must have two arguments", cmd.to_uppercase())),
        };
    }
    let mut out = Vec::with_capacity(words.len() * 2);
    for word in &words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
            ));
        };
        out.push(k.to_string());
        out.push(v.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(line: &str) -> Node {
        match Node::parse(line, 1, '\\') {
            Ok(n) => n,
            Err(e) => panic!("{line}: {e}"),
        }
    }

    #[test]
    fn json_or_shell() {
        let n = node(r#"CMD ["a", "b c"]"#);
        assert!(n.json);
        assert_eq!(n.args, vec!["a", "b c"]);
        let n = node(r#"CMD ["a", 'b']"#);
        assert!(!n.json);
        assert_eq!(n.args, vec![r#"["a", 'b']"#]);
        let n = node(r#"RUN ["a"] trailing"#);
        assert!(n.json, "Go's decoder stops after the first value");
        assert!(Node::parse("CMD [1, 2]", 1, '\\').is_err());
        let n = node("ENTRYPOINT []");
        assert!(n.json && n.args.is_empty());
    }

    #[test]
    fn legacy_and_modern_env() {
        assert_eq!(node("ENV a b  c").args, vec!["a", "b  c"]);
        assert_eq!(
            node("ENV a=b c=\"d e\"").args,
            vec!["a", "b", "c", "\"d e\""]
        );
        assert!(Node::parse("ENV a", 1, '\\')
            .err()
            .is_some_and(|e| e.contains("must have two arguments")));
        assert!(Node::parse("ENV a=b c", 1, '\\')
            .err()
            .is_some_and(|e| e.contains("can't find =")));
    }

    #[test]
    fn healthcheck_shape() {
        let n = node(r#"HEALTHCHECK --interval=5s CMD ["curl", "x"]"#);
        assert_eq!(n.flags, vec!["--interval=5s"]);
        assert_eq!(n.args, vec!["CMD", "curl", "x"]);
        assert!(n.json);
    }

    #[test]
    fn onbuild_heredoc_target_is_trigger() {
        let mut n = node("ONBUILD RUN <<EOF");
        assert!(n.heredocs.is_empty());
        let t = n.heredoc_target().map(|t| t.heredocs.len());
        assert_eq!(t, Some(1));
        let mut n = node(r#"RUN ["<<EOF"]"#);
        assert!(n.heredoc_target().is_none());
    }
}
