//! The JSON rules containers/image applies to signature payloads
//! (`signature/internal/json.go`): objects parsed "paranoidly" (duplicate keys and,
//! where asked, any member not expected are errors, because two parsers must never read
//! one signed payload two ways), and output written as Go's `encoding/json` writes a map:
//! keys sorted, compact, `<`, `>`, `&`, U+2028 and U+2029 escaped.

use berth_containers_config::json::DupCheckedValue;
use serde_json::Value;

/// A JSON object's members, duplicates (at any depth) refused while parsing.
pub(crate) struct Object(pub(crate) Vec<(String, Value)>);

impl Object {
    /// Parses `bytes` as one JSON object (nothing after it).
    pub(crate) fn parse(bytes: &[u8]) -> Result<Object, String> {
        let v: DupCheckedValue = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        Object::from_value("the signature", v.0)
    }

    fn from_value(what: &str, v: Value) -> Result<Object, String> {
        match v {
            // Duplicate keys were refused when the document was parsed (DupCheckedValue).
            Value::Object(m) => Ok(Object(m.into_iter().collect())),
            _ => Err(format!("{what} is not a JSON object")),
        }
    }

    /// The members, which must be exactly `names` (each once, nothing else).
    pub(crate) fn exact<const N: usize>(
        self,
        what: &str,
        names: [&str; N],
    ) -> Result<[Value; N], String> {
        let mut out: [Option<Value>; N] = std::array::from_fn(|_| None);
        for (k, v) in self.0 {
            match names.iter().position(|n| *n == k) {
                Some(i) => out[i] = Some(v),
                None => return Err(format!("JSON object {what} has unexpected member {k:?}")),
            }
        }
        let mut missing = names.iter().zip(&out).filter(|(_, v)| v.is_none());
        if let Some((n, _)) = missing.next() {
            return Err(format!("JSON object {what} is missing member {n:?}"));
        }
        Ok(out.map(|v| v.unwrap_or(Value::Null)))
    }
}

/// `v` as an object with exactly `names` as members.
pub(crate) fn exact_object<const N: usize>(
    what: &str,
    v: Value,
    names: [&str; N],
) -> Result<[Value; N], String> {
    Object::from_value(what, v)?.exact(what, names)
}

/// `v` as a string.
pub(crate) fn string(what: &str, v: Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(format!("{what} is not a string")),
    }
}

/// A JSON number that is a whole number (Go reads it as float64 and refuses fractions).
pub(crate) fn integer(what: &str, v: &Value) -> Result<i64, String> {
    let n = v
        .as_number()
        .ok_or_else(|| format!("{what} is not a number"))?;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
        _ => Err(format!("Field {what} is not an integer")),
    }
}

/// Go's `json.Marshal` of `v`: serde_json's compact form with Go's HTML-safe escapes.
/// Map keys are sorted when `v` was built with them in sorted order (callers do).
pub(crate) fn go_marshal(v: &Value) -> Vec<u8> {
    go_escape(&v.to_string())
}

/// serde_json's compact output `json` with Go's escapes for `<`, `>`, `&`, U+2028 and
/// U+2029. These characters only occur inside strings in serde_json's output, so
/// replacing them anywhere is replacing them in strings.
pub(crate) fn go_escape(json: &str) -> Vec<u8> {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_refused_at_any_depth() {
        assert!(Object::parse(br#"{"a":1,"a":2}"#).is_err());
        assert!(Object::parse(br#"{"a":{"b":1,"b":1}}"#).is_err());
        assert!(Object::parse(br#"{"a":[{"b":1,"b":1}]}"#).is_err());
        assert!(Object::parse(br#"{"a":{"b":1},"c":[1,2]}"#).is_ok());
    }

    #[test]
    fn not_an_object_or_trailing_data_refused() {
        assert!(Object::parse(b"[1]").is_err());
        assert!(Object::parse(br#"{"a":1} x"#).is_err());
        assert!(Object::parse(b"null").is_err());
    }

    #[test]
    fn exact_members() {
        let o = Object::parse(br#"{"b":2,"a":1}"#).unwrap();
        let [a, b] = o.exact("o", ["a", "b"]).unwrap();
        assert_eq!((a, b), (Value::from(1), Value::from(2)));
        let o = Object::parse(br#"{"a":1}"#).unwrap();
        assert!(o.exact("o", ["a", "b"]).unwrap_err().contains("missing"));
        let o = Object::parse(br#"{"a":1,"b":2,"c":3}"#).unwrap();
        assert!(o.exact("o", ["a", "b"]).unwrap_err().contains("unexpected"));
    }

    #[test]
    fn integers_as_go_reads_them() {
        assert_eq!(integer("t", &serde_json::json!(12)), Ok(12));
        assert_eq!(integer("t", &serde_json::json!(12.0)), Ok(12));
        assert!(integer("t", &serde_json::json!(12.5)).is_err());
        assert!(integer("t", &serde_json::json!("12")).is_err());
    }

    #[test]
    fn go_escapes() {
        let v = serde_json::json!({"a": "<&>\u{2028}"});
        assert_eq!(go_marshal(&v), br#"{"a":"\u003c\u0026\u003e\u2028"}"#);
    }
}
