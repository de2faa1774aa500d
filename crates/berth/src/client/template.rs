//! The part of Go's `text/template` that `--format` users write against skopeo and
//! podman output: `{{.Field}}`, `{{.A.B}}`, `{{json .}}`, `{{json .Field}}`,
//! `{{index .Labels "key"}}`, `{{range .List}}…{{.}}…{{end}}`, and `\n`/`\t` escapes
//! in the text. Values print as Go prints them (`[a b]` for a list, `map[k:v]` for a
//! map, `<no value>` for a missing one).
//!
//! Written by hand: no Rust crate implements Go's template syntax, and this subset
//! is what scripts use.

use anyhow::{bail, Context};
use serde_json::Value;

#[derive(Debug)]
enum Node {
    Text(String),
    /// An action printing an expression.
    Print(Expr),
    Range(Expr, Vec<Node>),
}

#[derive(Debug)]
enum Expr {
    /// `.` or `.A.B`: a path from the current value.
    Path(Vec<String>),
    Json(Box<Expr>),
    Index(Box<Expr>, String),
}

/// Renders `template` over `data`.
pub fn render(template: &str, data: &Value) -> anyhow::Result<String> {
    let tokens = tokenize(template)?;
    let mut pos = 0;
    let nodes = parse(&tokens, &mut pos, false)?;
    let mut out = String::new();
    exec(&nodes, data, &mut out)?;
    Ok(out)
}

/// Renders one template per row, as podman's list commands do with `--format`: a
/// plain template prints each row; `table …` adds a header (from `header`, given a
/// field name) and aligns the `\t`-separated cells.
pub fn render_rows(
    template: &str,
    rows: &[Value],
    header: impl Fn(&str) -> String,
) -> anyhow::Result<String> {
    let Some(cells) = template.strip_prefix("table") else {
        let mut out = String::new();
        for row in rows {
            out.push_str(&render(template, row)?);
            out.push('\n');
        }
        return Ok(out);
    };
    let cells: Vec<String> = unescape(cells.trim())
        .split('\t')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    let mut table = vec![cells
        .iter()
        .map(|c| {
            let field = c.trim_start_matches("{{").trim_end_matches("}}").trim();
            header(field.trim_start_matches('.'))
        })
        .collect::<Vec<_>>()];
    for row in rows {
        table.push(
            cells
                .iter()
                .map(|c| render(c, row))
                .collect::<anyhow::Result<_>>()?,
        );
    }
    Ok(super::table::render(&table))
}

enum Token {
    Text(String),
    Action(String),
}

fn tokenize(t: &str) -> anyhow::Result<Vec<Token>> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Token::Text(unescape(&rest[..start])));
        }
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .with_context(|| format!("template {t:?}: unclosed {{{{"))?;
        out.push(Token::Action(after[..end].trim().to_string()));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Token::Text(unescape(rest)));
    }
    Ok(out)
}

/// `\n` and `\t` as typed on a command line.
fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
}

fn parse(tokens: &[Token], pos: &mut usize, in_range: bool) -> anyhow::Result<Vec<Node>> {
    let mut nodes = Vec::new();
    while *pos < tokens.len() {
        let token = &tokens[*pos];
        *pos += 1;
        match token {
            Token::Text(s) => nodes.push(Node::Text(s.clone())),
            Token::Action(a) if a == "end" => {
                if in_range {
                    return Ok(nodes);
                }
                bail!("template: {{{{end}}}} without {{{{range}}}}");
            }
            Token::Action(a) => match a.strip_prefix("range ") {
                Some(e) => {
                    let body = parse(tokens, pos, true)?;
                    nodes.push(Node::Range(expr(e.trim())?, body));
                }
                None => nodes.push(Node::Print(expr(a)?)),
            },
        }
    }
    if in_range {
        bail!("template: {{{{range}}}} without {{{{end}}}}");
    }
    Ok(nodes)
}

fn expr(s: &str) -> anyhow::Result<Expr> {
    if let Some(rest) = s.strip_prefix("json ") {
        return Ok(Expr::Json(Box::new(expr(rest.trim())?)));
    }
    if let Some(rest) = s.strip_prefix("index ") {
        let (target, key) = rest
            .trim()
            .split_once(' ')
            .with_context(|| format!("template: index needs a value and a key: {s:?}"))?;
        let key = key.trim().trim_matches('"').to_string();
        return Ok(Expr::Index(Box::new(expr(target)?), key));
    }
    if s == "." {
        return Ok(Expr::Path(Vec::new()));
    }
    match s.strip_prefix('.') {
        Some(path)
            if !path.is_empty()
                && path.split('.').all(|p| {
                    !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_')
                }) =>
        {
            Ok(Expr::Path(path.split('.').map(str::to_string).collect()))
        }
        _ => bail!(
            "template: unsupported action {{{{{s}}}}} (supported: .Field, json, index, range)"
        ),
    }
}

fn eval(e: &Expr, data: &Value) -> anyhow::Result<Option<Value>> {
    Ok(match e {
        Expr::Path(path) => {
            let mut v = data;
            for p in path {
                match v.get(p) {
                    Some(next) => v = next,
                    None => match v {
                        Value::Object(_) | Value::Null => return Ok(None),
                        _ => bail!("template: can't evaluate field {p} in {}", type_name(v)),
                    },
                }
            }
            Some(v.clone())
        }
        Expr::Json(inner) => {
            let v = eval(inner, data)?.unwrap_or(Value::Null);
            Some(Value::String(serde_json::to_string(&v)?))
        }
        Expr::Index(inner, key) => eval(inner, data)?.and_then(|v| v.get(key).cloned()),
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "a list",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a bool",
        _ => "a value",
    }
}

fn exec(nodes: &[Node], data: &Value, out: &mut String) -> anyhow::Result<()> {
    for n in nodes {
        match n {
            Node::Text(s) => out.push_str(s),
            Node::Print(e) => match eval(e, data)? {
                Some(v) => out.push_str(&go_string(&v)),
                None => out.push_str("<no value>"),
            },
            Node::Range(e, body) => match eval(e, data)? {
                Some(Value::Array(items)) => {
                    for item in &items {
                        exec(body, item, out)?;
                    }
                }
                Some(Value::Object(map)) => {
                    for v in map.values() {
                        exec(body, v, out)?;
                    }
                }
                Some(Value::Null) | None => {}
                Some(v) => bail!("template: range can't iterate over {}", type_name(&v)),
            },
        }
    }
    Ok(())
}

/// A value as Go's `fmt.Print` shows it.
fn go_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_string(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_subset_scripts_use() {
        let data = json!({"Digest": "sha256:ab", "RepoTags": ["v1", "v2"], "Labels": {"a": "1", "b.c": "2"}, "Env": null, "Size": 3});
        let r = |t: &str| render(t, &data).unwrap();
        assert_eq!(r("{{.Digest}}"), "sha256:ab");
        assert_eq!(r("{{range .RepoTags}}{{.}}\\n{{end}}"), "v1\nv2\n");
        assert_eq!(r("{{json .RepoTags}}"), r#"["v1","v2"]"#);
        assert_eq!(r(r#"{{index .Labels "b.c"}}"#), "2");
        assert_eq!(r("{{.RepoTags}} {{.Size}} {{.Env}}"), "[v1 v2] 3 <nil>");
        assert_eq!(r("{{.Missing}}"), "<no value>");
        assert_eq!(r("{{.Labels}}"), "map[a:1 b.c:2]");
        assert!(r("{{json .}}").starts_with('{'));
        for bad in [
            "{{.Digest",
            "{{end}}",
            "{{range .RepoTags}}",
            "{{printf \"%s\" .Digest}}",
            "{{.Digest.X}}",
        ] {
            assert!(render(bad, &data).is_err(), "{bad}");
        }
    }
}
