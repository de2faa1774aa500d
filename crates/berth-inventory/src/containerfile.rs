//! The Containerfile rebuilt from an image config's `history[]` (research note,
//! section 5): each entry's `created_by` turned back into the instruction that wrote
//! it, with the layer it made (entries with `empty_layer: false` line up, in order,
//! with `rootfs.diff_ids` and the manifest's layers).
//!
//! Forms handled, as the builders on this machine and BuildKit write them:
//! - classic docker, buildah and podman: `/bin/sh -c #(nop) ENV A=b` (the instruction
//!   after the marker), `/bin/sh -c apt-get update` (a RUN), and for RUNs that used build
//!   arguments `|1 GREETING=bonjour /bin/sh -c echo ...`;
//! - BuildKit: `RUN /bin/sh -c apk add curl # buildkit`, `RUN |2 A=1 B=2 /bin/sh -c ...`,
//!   `ENV A=b`, `COPY /src /dst # buildkit` (older ones wrote `# buildkit:<digest>`);
//! - Windows' `cmd /S /C X`.
//!
//! Anything else (`buildah commit` of a working container records `/bin/sh`, `podman
//! commit` the container's command) is kept as a comment line: it says what happened
//! without pretending to be an instruction.

use crate::error::InventoryError;
use crate::model::{Containerfile, ContainerfileStep, HistoryEntry, ImageHistory, LayerRef};

const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

impl ImageHistory {
    /// The history and layers of an image from its config JSON (`history`,
    /// `rootfs.diff_ids`) and its manifest's layer sizes, in the same order.
    pub fn from_config(config: &[u8], layer_sizes: &[u64]) -> Result<Self, InventoryError> {
        #[derive(serde::Deserialize)]
        struct Config {
            #[serde(default)]
            history: Vec<HistoryEntry>,
            #[serde(default)]
            rootfs: Option<RootFs>,
        }
        #[derive(serde::Deserialize)]
        struct RootFs {
            #[serde(default)]
            diff_ids: Vec<String>,
        }
        let config: Config =
            serde_json::from_slice(config).map_err(|e| InventoryError::Config(e.to_string()))?;
        let diff_ids = config.rootfs.map(|r| r.diff_ids).unwrap_or_default();
        if diff_ids.len() != layer_sizes.len() {
            return Err(InventoryError::Config(format!(
                "{} diff_ids for {} layers",
                diff_ids.len(),
                layer_sizes.len()
            )));
        }
        Ok(ImageHistory {
            history: config.history,
            layers: diff_ids
                .into_iter()
                .zip(layer_sizes)
                .map(|(diff_id, &size)| LayerRef { size, diff_id })
                .collect(),
        })
    }
}

/// The Containerfile an image's history describes (final stage only, no `FROM`: the
/// base image's steps come first, inherited).
pub fn reconstruct(history: &ImageHistory) -> Containerfile {
    let mut layers = history.layers.iter();
    let steps: Vec<ContainerfileStep> = history
        .history
        .iter()
        .map(|h| {
            let layer = if h.empty_layer { None } else { layers.next() };
            ContainerfileStep {
                instruction: instruction(h.created_by.as_deref().unwrap_or("")),
                layer_size: layer.map(|l| l.size),
                diff_id: layer.map(|l| l.diff_id.clone()),
                created: h.created.clone(),
            }
        })
        .collect();
    let mut text = String::new();
    for s in &steps {
        text.push_str(&s.instruction);
        text.push('\n');
    }
    Containerfile {
        reconstructed: true,
        path: None,
        text,
        steps,
    }
}

/// One `created_by` as the instruction that wrote it.
pub fn instruction(created_by: &str) -> String {
    let mut s = created_by.trim();
    if let Some(i) = s.rfind(" # buildkit") {
        let rest = &s[i + " # buildkit".len()..];
        if rest.is_empty() || rest.starts_with(':') {
            s = s[..i].trim_end();
        }
    }
    if s.is_empty() {
        return "# (no command recorded)".into();
    }
    if let Some(rest) = s.strip_prefix("RUN ") {
        return format!("RUN {}", shell_command(strip_build_args(rest.trim_start())));
    }
    let unprefixed = strip_build_args(s);
    for shell in ["/bin/sh -c ", "cmd /S /C "] {
        if let Some(rest) = unprefixed.strip_prefix(shell) {
            let rest = rest.trim_start();
            return match rest.strip_prefix("#(nop)") {
                Some(instr) => instr.trim().to_string(),
                None => format!("RUN {rest}"),
            };
        }
    }
    if unprefixed.len() != s.len() {
        // Only RUNs get a build-argument prefix; this one is exec form.
        return format!("RUN {unprefixed}");
    }
    if let Some(instr) = s.strip_prefix("#(nop)") {
        return instr.trim().to_string();
    }
    let keyword = s.split_whitespace().next().unwrap_or("");
    if INSTRUCTIONS.contains(&keyword) {
        return s.to_string();
    }
    format!("# {s}")
}

/// A RUN's command without the shell in front (`/bin/sh -c X` -> `X`); exec-form
/// commands stay as they are.
fn shell_command(s: &str) -> &str {
    ["/bin/sh -c ", "cmd /S /C "]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .map(str::trim_start)
        .unwrap_or(s)
}

/// Drops the `|N K1=v1 ... KN=vN ` prefix builders put before RUNs that saw build
/// arguments. Values may hold spaces, so where the shell follows, cut right before it;
/// otherwise (an exec-form RUN) skip N words.
fn strip_build_args(s: &str) -> &str {
    let Some(rest) = s.strip_prefix('|') else {
        return s;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let Ok(n) = rest[..digits].parse::<usize>() else {
        return s;
    };
    let rest = &rest[digits..];
    if let Some(i) = rest
        .find(" /bin/sh -c ")
        .or_else(|| rest.find(" cmd /S /C "))
    {
        return &rest[i + 1..];
    }
    let mut tail = rest.trim_start();
    for _ in 0..n {
        tail = tail
            .split_once(char::is_whitespace)
            .map_or("", |(_, t)| t.trim_start());
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_forms() {
        for (created_by, want) in [
            (
                "/bin/sh -c #(nop)  CMD [\"nginx\" \"-g\" \"daemon off;\"]",
                "CMD [\"nginx\" \"-g\" \"daemon off;\"]",
            ),
            (
                "/bin/sh -c #(nop) ENV APP_HOME=/app PATH=/bin",
                "ENV APP_HOME=/app PATH=/bin",
            ),
            (
                "/bin/sh -c #(nop) ADD file:0a1b in / ",
                "ADD file:0a1b in /",
            ),
            (
                "/bin/sh -c apt-get update && apt-get install -y curl",
                "RUN apt-get update && apt-get install -y curl",
            ),
            (
                "|1 GREETING=bonjour /bin/sh -c echo \"$GREETING\" > /g",
                "RUN echo \"$GREETING\" > /g",
            ),
            ("|2 A=one two B=3 /bin/sh -c make", "RUN make"),
            ("RUN /bin/sh -c apk add curl # buildkit", "RUN apk add curl"),
            ("RUN |1 V=2 /bin/sh -c echo $V # buildkit", "RUN echo $V"),
            ("COPY /src /dst # buildkit:sha256:abc", "COPY /src /dst"),
            ("ENV A=b", "ENV A=b"),
            ("WORKDIR /app", "WORKDIR /app"),
            ("cmd /S /C dir", "RUN dir"),
            ("/bin/sh", "# /bin/sh"),
            ("", "# (no command recorded)"),
            (
                "|1 X=1 [\"/app\", \"--init\"]",
                "RUN [\"/app\", \"--init\"]",
            ),
        ] {
            assert_eq!(instruction(created_by), want, "{created_by}");
        }
    }

    #[test]
    fn layers_map_to_non_empty_steps() {
        let config = br#"{"history":[
            {"created":"t0","created_by":"/bin/sh -c #(nop) ADD file:x in / "},
            {"created_by":"/bin/sh -c #(nop) ENV A=b","empty_layer":true},
            {"created_by":"/bin/sh -c echo hi > /f"}],
            "rootfs":{"type":"layers","diff_ids":["sha256:a","sha256:b"]}}"#;
        let h = ImageHistory::from_config(config, &[10, 20]).unwrap();
        let c = reconstruct(&h);
        assert!(c.reconstructed);
        assert_eq!(c.text, "ADD file:x in /\nENV A=b\nRUN echo hi > /f\n");
        let sizes: Vec<_> = c
            .steps
            .iter()
            .map(|s| (s.layer_size, s.diff_id.as_deref()))
            .collect();
        assert_eq!(
            sizes,
            vec![
                (Some(10), Some("sha256:a")),
                (None, None),
                (Some(20), Some("sha256:b"))
            ]
        );
        assert_eq!(c.steps[0].created.as_deref(), Some("t0"));
        assert!(ImageHistory::from_config(config, &[10]).is_err());
        assert!(ImageHistory::from_config(b"{", &[]).is_err());
    }
}
