//! Giving each parsed line its meaning: BuildKit's `instructions.ParseInstruction`.
//!
//! Checks here are the ones BuildKit makes before building (argument counts, known
//! flags, stage names, HEALTHCHECK durations); everything that needs variable values is
//! left to the executor, which is why words stay as written.

use crate::flags::{FlagType, Flags};
use crate::node::Node;
use crate::{Arg, Form, Healthcheck, Heredoc, Instruction, Kind};

pub(crate) enum Built {
    From {
        base: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Instruction(Instruction),
}

/// Builds the instruction for `node`; errors are `NAME: message`.
pub(crate) fn build(node: &Node) -> Result<Built, String> {
    let upper = node.cmd.to_uppercase();
    build_inner(node).map_err(|m| format!("{upper}: {m}"))
}

fn build_inner(node: &Node) -> Result<Built, String> {
    let cmd = node.cmd.to_ascii_lowercase();
    let args = &node.args;
    let flags = |known: &[(&'static str, FlagType)]| Flags::parse(&node.flags, known);
    let kind = match cmd.as_str() {
        "from" => return from(node),
        "run" => {
            flags(&[
                ("mount", FlagType::Strings),
                ("network", FlagType::String),
                ("security", FlagType::String),
            ])?;
            Kind::Run {
                cmd: form(node),
                heredocs: node.heredocs.clone(),
                flags: node.flags.clone(),
            }
        }
        "cmd" => {
            flags(&[])?;
            Kind::Cmd(form(node))
        }
        "entrypoint" => {
            flags(&[])?;
            Kind::Entrypoint(form(node))
        }
        "shell" => {
            flags(&[])?;
            if args.is_empty() {
                return Err(at_least_one());
            }
            if !node.json {
                return Err("requires the arguments to be in JSON form".into());
            }
            Kind::Shell(args.clone())
        }
        "copy" => {
            let f = flags(&[
                ("from", FlagType::String),
                ("chown", FlagType::String),
                ("chmod", FlagType::String),
                ("link", FlagType::Bool),
            ])?;
            let (sources, dest, heredocs) = sources_and_dest(node)?;
            Kind::Copy {
                from: f.string("from"),
                chown: f.string("chown"),
                chmod: f.string("chmod"),
                sources,
                dest,
                heredocs,
                link: f.bool("link"),
            }
        }
        "add" => {
            let f = flags(&[
                ("chown", FlagType::String),
                ("chmod", FlagType::String),
                ("link", FlagType::Bool),
                ("checksum", FlagType::String),
                ("keep-git-dir", FlagType::Bool),
            ])?;
            let (sources, dest, heredocs) = sources_and_dest(node)?;
            Kind::Add {
                chown: f.string("chown"),
                chmod: f.string("chmod"),
                sources,
                dest,
                heredocs,
                link: f.bool("link"),
                checksum: f.string("checksum"),
                keep_git_dir: f.bool("keep-git-dir"),
            }
        }
        "env" | "label" => {
            flags(&[])?;
            if args.is_empty() {
                return Err(at_least_one());
            }
            let pairs: Vec<(String, String)> = args
                .chunks(2)
                .map(|kv| (kv[0].clone(), kv.get(1).cloned().unwrap_or_default()))
                .collect();
            if pairs.iter().any(|(k, _)| k.is_empty()) {
                return Err(format!("{} names can not be blank", cmd.to_uppercase()));
            }
            if cmd == "env" {
                Kind::Env(pairs)
            } else {
                Kind::Label(pairs)
            }
        }
        "arg" => {
            flags(&[])?;
            if args.is_empty() {
                return Err(at_least_one());
            }
            let mut out = Vec::with_capacity(args.len());
            for word in args {
                let (name, default) = match word.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (word.as_str(), None),
                };
                if name.is_empty() {
                    return Err("ARG names can not be blank".into());
                }
                out.push(Arg {
                    name: name.to_string(),
                    default,
                });
            }
            Kind::Arg(out)
        }
        "expose" => {
            flags(&[])?;
            if args.is_empty() {
                return Err(at_least_one());
            }
            Kind::Expose(args.clone())
        }
        "user" => Kind::User(exactly_one(node)?),
        "workdir" => Kind::Workdir(exactly_one(node)?),
        "stopsignal" => Kind::StopSignal(exactly_one(node)?),
        "maintainer" => Kind::Maintainer(exactly_one(node)?),
        "volume" => {
            flags(&[])?;
            if args.is_empty() {
                return Err(at_least_one());
            }
            if args.iter().any(|v| v.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            Kind::Volume(args.clone())
        }
        "healthcheck" => healthcheck(node)?,
        "onbuild" => {
            flags(&[])?;
            let Some(sub) = &node.sub else {
                return Err(at_least_one());
            };
            let trigger = sub.cmd.to_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                }
                "MAINTAINER" | "FROM" => {
                    return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            // BuildKit keeps the trigger as text and parses it only in the child build;
            // parsing it now reports a broken trigger where it was written.
            match build(sub)? {
                Built::Instruction(inner) => Kind::Onbuild(Box::new(inner)),
                Built::From { .. } => return Err("FROM isn't allowed as an ONBUILD trigger".into()),
            }
        }
        _ => return Err("unknown instruction".into()),
    };
    Ok(Built::Instruction(Instruction {
        line: node.line,
        text: node.original.clone(),
        kind,
    }))
}

fn at_least_one() -> String {
    "requires at least one argument".into()
}

fn exactly_one(node: &Node) -> Result<String, String> {
    Flags::parse(&node.flags, &[])?;
    match node.args.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err("requires exactly one argument".into()),
    }
}

/// Exec form for a JSON array, else the text as shell form (empty when nothing was
/// written: `CMD` alone runs an empty shell command in BuildKit).
fn form(node: &Node) -> Form {
    if node.json {
        Form::Exec(node.args.clone())
    } else {
        Form::Shell(node.args.join(" "))
    }
}

fn from(node: &Node) -> Result<Built, String> {
    let f = Flags::parse(&node.flags, &[("platform", FlagType::String)])?;
    let args = &node.args;
    let name = match args.as_slice() {
        [_] => None,
        [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            if !valid_stage_name(&lower) {
                return Err(format!(
                    "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                ));
            }
            Some(lower)
        }
        _ => return Err("requires either one or three arguments".into()),
    };
    Ok(Built::From {
        base: args[0].clone(),
        name,
        platform: f.string("platform"),
    })
}

/// `^[a-z][a-z0-9-_\.]*$`
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// BuildKit's `parseSourcesAndDest`: the last word is the destination; heredoc words
/// among the sources become inline files. In JSON form no word is a heredoc (the parser
/// read no bodies for it).
fn sources_and_dest(node: &Node) -> Result<(Vec<String>, String, Vec<Heredoc>), String> {
    let Some((dest, sources)) = node.args.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err("requires at least two arguments".into());
    };
    if node.json {
        return Ok((sources.to_vec(), dest.clone(), Vec::new()));
    }
    if crate::heredoc::parse_heredoc_word(dest).is_some() {
        return Err("cannot accept a heredoc as a destination".into());
    }
    let mut paths = Vec::new();
    let mut docs = Vec::new();
    for src in sources {
        match crate::heredoc::parse_heredoc_word(src) {
            Some(word) => {
                let body = node.heredocs.iter().find(|h| h.name == word.name);
                docs.push(body.cloned().unwrap_or(word));
            }
            None => paths.push(src.clone()),
        }
    }
    Ok((paths, dest.clone(), docs))
}

fn healthcheck(node: &Node) -> Result<Kind, String> {
    let Some((typ, args)) = node.args.split_first() else {
        return Err(at_least_one());
    };
    let typ = typ.to_uppercase();
    if typ == "NONE" {
        if !args.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Kind::Healthcheck(None));
    }
    if typ != "CMD" {
        return Err(format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)"));
    }
    let f = Flags::parse(
        &node.flags,
        &[
            ("interval", FlagType::String),
            ("timeout", FlagType::String),
            ("start-period", FlagType::String),
            ("start-interval", FlagType::String),
            ("retries", FlagType::String),
        ],
    )?;
    if args.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let test = if node.json {
        Form::Exec(args.to_vec())
    } else {
        Form::Shell(args.join(" "))
    };
    let duration = |name: &str| -> Result<Option<String>, String> {
        let Some(value) = f.string(name).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let nanos =
            go_duration_nanos(&value).ok_or_else(|| format!("time: invalid duration {value:?}"))?;
        if nanos < 0.0 {
            return Err(format!("Interval {name} cannot be negative"));
        }
        if nanos > 0.0 && nanos < 1_000_000.0 {
            return Err(format!("Interval {name} cannot be less than 1ms"));
        }
        Ok(Some(value))
    };
    let retries = match f.string("retries").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => {
            let n: i64 = v
                .parse()
                .map_err(|_| format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            Some(u32::try_from(n).map_err(|_| format!("--retries out of range ({n})"))?)
        }
    };
    Ok(Kind::Healthcheck(Some(Healthcheck {
        test,
        interval: duration("interval")?,
        timeout: duration("timeout")?,
        start_period: duration("start-period")?,
        start_interval: duration("start-interval")?,
        retries,
    })))
}

/// Go's `time.ParseDuration`, returning nanoseconds (`None` when invalid).
fn go_duration_nanos(s: &str) -> Option<f64> {
    let (sign, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = next;
    }
    Some(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_nanos("30s"), Some(30e9));
        assert_eq!(go_duration_nanos("1h2m"), Some(3720e9));
        assert_eq!(go_duration_nanos("1.5ms"), Some(1.5e6));
        assert_eq!(go_duration_nanos("0"), Some(0.0));
        assert_eq!(go_duration_nanos("-1s"), Some(-1e9));
        assert_eq!(go_duration_nanos("10"), None);
        assert_eq!(go_duration_nanos("s"), None);
        assert_eq!(go_duration_nanos("1x"), None);
        assert_eq!(go_duration_nanos(""), None);
    }

    #[test]
    fn stage_names() {
        assert!(valid_stage_name("build-1.x_y"));
        assert!(!valid_stage_name("1build"));
        assert!(!valid_stage_name("a/b"));
        assert!(!valid_stage_name(""));
    }
}
