//! Instruction flags (`--from=…`, `--link`, `--mount=…`), checked as BuildKit's
//! `BFlags` checks them: each instruction declares the flags it knows and their type,
//! anything else is an error, a string flag needs `=value`, a bool flag takes
//! nothing or `=true`/`=false`, and only list flags may repeat.

use std::collections::HashMap;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagType {
    Bool,
    String,
    Strings,
}

#[derive(Default)]
pub(crate) struct Flags {
    values: HashMap<&'static str, Vec<String>>,
}

impl Flags {
    /// Checks `raw` (the words as extracted, `--name[=value]`) against `known`.
    pub fn parse(raw: &[String], known: &[(&'static str, FlagType)]) -> Result<Flags, String> {
        let mut flags = Flags::default();
        for arg in raw {
            let Some(arg) = arg.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {arg}"));
            };
            if arg.is_empty() {
                break;
            }
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg, None),
            };
            let Some(&(key, typ)) = known.iter().find(|(k, _)| *k == name) else {
                return Err(format!("unknown flag: {name}"));
            };
            let seen = flags.values.contains_key(key);
            if seen && typ != FlagType::Strings {
                return Err(format!("duplicate flag specified: {name}"));
            }
            let value = match (typ, value) {
                (FlagType::Bool, None) => "true".to_string(),
                (FlagType::Bool, Some("")) => {
                    return Err(format!("missing a value on flag: {name}"))
                }
                (FlagType::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    b @ ("true" | "false") => b.to_string(),
                    _ => return Err(format!("expecting boolean value for flag {name}, not: {v}")),
                },
                (_, None) => return Err(format!("missing a value on flag: {name}")),
                (_, Some(v)) => v.to_string(),
            };
            flags.values.entry(key).or_default().push(value);
        }
        Ok(flags)
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last().cloned())
    }

    pub fn bool(&self, name: &str) -> bool {
        self.string(name).as_deref() == Some("true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FlagType::*;

    const KNOWN: &[(&str, FlagType)] = &[("from", String), ("link", Bool), ("mount", Strings)];

    fn parse(raw: &[&str]) -> Result<Flags, std::string::String> {
        let raw: Vec<_> = raw.iter().map(|s| s.to_string()).collect();
        Flags::parse(&raw, KNOWN)
    }

    #[test]
    fn types_and_errors() {
        let f = parse(&["--from=a", "--link", "--mount=x", "--mount=y"]).ok();
        assert!(f.as_ref().is_some_and(|f| f.bool("link")));
        assert_eq!(f.and_then(|f| f.string("from")).as_deref(), Some("a"));
        assert!(parse(&["--link=FALSE"]).is_ok_and(|f| !f.bool("link")));
        assert_eq!(
            parse(&["--nope=1"]).err().as_deref(),
            Some("unknown flag: nope")
        );
        assert_eq!(
            parse(&["--from"]).err().as_deref(),
            Some("missing a value on flag: from")
        );
        assert_eq!(
            parse(&["--link="]).err().as_deref(),
            Some("missing a value on flag: link")
        );
        assert!(parse(&["--link=maybe"]).is_err());
        assert_eq!(
            parse(&["--from=a", "--from=b"]).err().as_deref(),
            Some("duplicate flag specified: from")
        );
        assert!(parse(&["--from="]).is_ok_and(|f| f.string("from").as_deref() == Some("")));
    }
}
