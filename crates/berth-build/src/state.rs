//! A stage's state between steps: its image config and its layers. It is what the
//! cache stores for a step, and what a root file system is made from when a step
//! must run.

use berth_image::Digest;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// One layer of the state: media type, blob digest, size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub config: Value,
    pub layers: Vec<Layer>,
    /// The cache key of the step that made this state (the chain of every step
    /// before it): the next step's key starts from it.
    pub key: String,
    /// Whether this stage has a CMD of its own: an ENTRYPOINT clears the base's
    /// otherwise, as BuildKit and imagebuilder do (`FROM python` then `ENTRYPOINT
    /// ["app"]` must not run `app python3`).
    #[serde(default)]
    pub cmd_set: bool,
}

impl State {
    /// The layers as `berth_runtime::store_image` takes them.
    pub fn layer_tuples(&self) -> Result<Vec<(String, Digest, u64)>, String> {
        self.layers
            .iter()
            .map(|l| {
                let d: Digest = l
                    .digest
                    .parse()
                    .map_err(|e| format!("layer {}: {e}", l.digest))?;
                Ok((l.media_type.clone(), d, l.size))
            })
            .collect()
    }

    /// Adds a history entry (and, for a layer, its diff ID).
    pub fn record(&mut self, created: &str, created_by: &str, layer: Option<(Layer, Digest)>) {
        let empty = layer.is_none();
        if let Some((layer, diff_id)) = layer {
            push(
                &mut self.config["rootfs"]["diff_ids"],
                json!(diff_id.to_string()),
            );
            if self.config["rootfs"]["type"].is_null() {
                self.config["rootfs"]["type"] = json!("layers");
            }
            self.layers.push(layer);
        }
        let mut entry = json!({"created": created, "created_by": created_by});
        if empty {
            entry["empty_layer"] = json!(true);
        }
        push(&mut self.config["history"], entry);
    }
}

fn push(list: &mut Value, item: Value) {
    match list.as_array_mut() {
        Some(a) => a.push(item),
        None => *list = json!([item]),
    }
}

/// The key of a step: the key before it, what the step is, and the content it reads.
pub fn chain(previous: &str, step: &str, content: &str) -> String {
    let mut h = Sha256::new();
    for part in [previous, step, content] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
