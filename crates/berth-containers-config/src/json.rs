//! JSON read as containers/image reads what decides trust (policy.json, signature
//! payloads): a duplicate key is an error, never "the last one wins", because two
//! parsers must never read one document two ways.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// A value whose objects, at any depth, have no duplicate keys.
pub struct DupCheckedValue(pub Value);

impl<'de> Deserialize<'de> for DupCheckedValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DupCheckedValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
                Ok(DupCheckedValue(Value::Bool(b)))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
                Ok(DupCheckedValue(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
                Ok(DupCheckedValue(n.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Self::Value, E> {
                serde_json::Number::from_f64(n)
                    .map(|n| DupCheckedValue(Value::Number(n)))
                    .ok_or_else(|| E::custom("a number that is not finite"))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(DupCheckedValue(Value::String(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(DupCheckedValue(Value::String(s)))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(DupCheckedValue(Value::Null))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(DupCheckedValue(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<DupCheckedValue>()? {
                    out.push(v.0);
                }
                Ok(DupCheckedValue(Value::Array(out)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some(k) = map.next_key::<String>()? {
                    if out.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!(
                            "duplicate key {k:?} in JSON object"
                        )));
                    }
                    let v: DupCheckedValue = map.next_value()?;
                    out.insert(k, v.0);
                }
                Ok(DupCheckedValue(Value::Object(out)))
            }
        }
        d.deserialize_any(V)
    }
}
