//! The config's word on an image's layers: `rootfs.diff_ids`, the digests of their
//! uncompressed bytes, one per layer in order. The image ID is the config's digest, so
//! these are what binds an ID to its file systems.

use serde_json::Value;

/// The diff IDs `config` names for an image of `layers` layers; an error when they are
/// missing, malformed or not one per layer.
pub fn diff_ids(config: &Value, layers: usize) -> Result<Vec<String>, String> {
    let list = config
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if list.len() != layers {
        return Err(format!(
            "the image config names {} diff IDs for {layers} layers",
            list.len()
        ));
    }
    list.iter()
        .map(|d| {
            d.as_str()
                .filter(|s| s.parse::<crate::Digest>().is_ok())
                .map(str::to_string)
                .ok_or_else(|| format!("the image config names a diff ID that is none: {d}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_layer_or_an_error() {
        let d = format!("sha256:{}", "a".repeat(64));
        let config = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [d]}});
        assert_eq!(diff_ids(&config, 1).unwrap(), std::slice::from_ref(&d));
        assert!(diff_ids(&config, 2).is_err());
        assert!(diff_ids(&serde_json::json!({"rootfs": "x"}), 1).is_err());
        assert!(diff_ids(&serde_json::json!([]), 0).unwrap().is_empty());
        let bad = serde_json::json!({"rootfs": {"diff_ids": ["nope"]}});
        assert!(diff_ids(&bad, 1).is_err());
    }
}
