//! Table-driven: each requirement type with each `signedIdentity` kind, accepted and
//! refused, and the ways a signature requirement fails, with c/image's reasons.

use std::path::Path;

use berth_containers_config::policy::{Decision, Policy};
use berth_image::{Digest, ImageReference};
use serde_json::{json, Value};

use super::{evaluate, Image, ImageSignature};
use crate::openpgp::{sign_with_key, testkeys};
use crate::payload::{Format, Payload};
use crate::sigstore::{self, PrivateKey};

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"layers":[]}"#;
const IMAGE: &str = "registry.example/team/app:v1";

struct Keys {
    dir: tempfile::TempDir,
    gpg_secret: Vec<u8>,
    other_gpg_secret: Vec<u8>,
    cosign: PrivateKey,
    other_cosign: PrivateKey,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let (gpg_secret, gpg_public) = testkeys::generate("P <p@example.com>", true);
        let (other_gpg_secret, _) = testkeys::generate("O <o@example.com>", false);
        std::fs::write(dir.path().join("trusted.gpg"), gpg_public).unwrap();
        let pair = sigstore::generate_key_pair(b"").unwrap();
        std::fs::write(dir.path().join("cosign.pub"), &pair.public_pem).unwrap();
        let cosign = PrivateKey::from_pem(pair.private_pem.as_bytes(), b"").unwrap();
        let other = sigstore::generate_key_pair(b"").unwrap();
        let other_cosign = PrivateKey::from_pem(other.private_pem.as_bytes(), b"").unwrap();
        Keys {
            dir,
            gpg_secret,
            other_gpg_secret,
            cosign,
            other_cosign,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    fn payload(&self, claimed: &str, manifest: &[u8]) -> Payload {
        Payload::new(Digest::sha256_of(manifest), claimed, "test")
    }

    fn simple(&self, claimed: &str) -> ImageSignature {
        self.simple_by(&self.gpg_secret, claimed, MANIFEST)
    }

    fn simple_by(&self, secret: &[u8], claimed: &str, manifest: &[u8]) -> ImageSignature {
        let p = self
            .payload(claimed, manifest)
            .to_json(Format::Simple)
            .unwrap();
        ImageSignature::Simple(sign_with_key(secret, "", &p).unwrap())
    }

    fn cosign(&self, claimed: &str) -> ImageSignature {
        self.cosign_by(&self.cosign, claimed, MANIFEST)
    }

    fn cosign_by(&self, key: &PrivateKey, claimed: &str, manifest: &[u8]) -> ImageSignature {
        let p = self
            .payload(claimed, manifest)
            .to_json(Format::Sigstore)
            .unwrap();
        let sig = key.sign(&p);
        ImageSignature::sigstore(p, sig)
    }
}

fn policy(requirement: Value) -> Policy {
    let p = json!({
        "default": [{"type": "reject"}],
        "transports": {"docker": {"registry.example/team": [requirement]}}
    });
    Policy::from_slice(p.to_string().as_bytes(), Path::new("policy.json")).unwrap()
}

fn decide(policy: &Policy, image: &str, signatures: &[ImageSignature]) -> Decision {
    let reference: ImageReference = image.parse().unwrap();
    let identity = berth_containers_config::policy::docker_identity(&reference);
    evaluate(
        policy,
        &Image {
            transport: "docker",
            policy_identity: &identity,
            docker_reference: Some(&reference),
            manifest: MANIFEST,
            signatures,
        },
    )
}

fn signed_by(keys: &Keys, identity: Value) -> Value {
    json!({"type": "signedBy", "keyType": "GPGKeys", "keyPath": keys.path("trusted.gpg"),
        "signedIdentity": identity})
}

fn sigstore_signed(keys: &Keys, identity: Value) -> Value {
    json!({"type": "sigstoreSigned", "keyPath": keys.path("cosign.pub"), "signedIdentity": identity})
}

#[test]
fn every_requirement_type_with_every_identity_kind() {
    let keys = Keys::new();
    let digest_image = format!("registry.example/team/app@{}", Digest::sha256_of(MANIFEST));
    // (signedIdentity, image, identity claimed by an accepted signature, one refused)
    let identities: Vec<(Value, &str, &str, &str)> = vec![
        (
            json!({"type": "matchExact"}),
            IMAGE,
            IMAGE,
            "registry.example/team/app:v2",
        ),
        (
            json!({"type": "matchRepoDigestOrExact"}),
            IMAGE,
            IMAGE,
            "registry.example/team/app:v2",
        ),
        (
            json!({"type": "matchRepoDigestOrExact"}),
            &digest_image,
            "registry.example/team/app:any",
            "registry.example/team/other:v1",
        ),
        (
            json!({"type": "matchRepository"}),
            IMAGE,
            "registry.example/team/app:v9",
            "registry.example/team/other:v1",
        ),
        (
            json!({"type": "exactReference", "dockerReference": "registry.example/team/app:signed"}),
            IMAGE,
            "registry.example/team/app:signed",
            IMAGE,
        ),
        (
            json!({"type": "exactRepository", "dockerRepository": "registry.example/upstream/app"}),
            IMAGE,
            "registry.example/upstream/app:v1",
            IMAGE,
        ),
        (
            json!({"type": "remapIdentity", "prefix": "registry.example/team", "signedPrefix": "upstream.example/org"}),
            IMAGE,
            "upstream.example/org/app:v1",
            IMAGE,
        ),
    ];
    for (identity, image, good, bad) in &identities {
        for (kind, req) in [
            ("signedBy", signed_by(&keys, identity.clone())),
            ("sigstoreSigned", sigstore_signed(&keys, identity.clone())),
        ] {
            let p = policy(req);
            let sign = |claimed: &str| match kind {
                "signedBy" => keys.simple(claimed),
                _ => keys.cosign(claimed),
            };
            let case = format!("{kind} {identity} image {image}");
            assert_eq!(
                decide(&p, image, &[sign(good)]),
                Decision::Accept,
                "{case} accepts {good}"
            );
            assert_eq!(
                decide(&p, image, &[sign(bad)]),
                Decision::Reject(format!("Signature for identity {bad:?} is not accepted")),
                "{case} refuses {bad}"
            );
            // One good signature among bad ones is enough.
            assert_eq!(
                decide(&p, image, &[sign(bad), sign(good)]),
                Decision::Accept,
                "{case}"
            );
        }
    }
}

#[test]
fn signature_requirement_failures() {
    let keys = Keys::new();
    let gpg = policy(signed_by(&keys, json!({"type": "matchRepoDigestOrExact"})));
    let cosign = policy(sigstore_signed(
        &keys,
        json!({"type": "matchRepoDigestOrExact"}),
    ));
    let reject = |m: &str| Decision::Reject(m.to_string());
    let none = "A signature was required, but no signature exists";

    // No signatures at all.
    assert_eq!(decide(&gpg, IMAGE, &[]), reject(none));
    assert_eq!(decide(&cosign, IMAGE, &[]), reject(none));
    // Only the other kind: signedBy ignores sigstore ones; sigstoreSigned counts them.
    assert_eq!(decide(&gpg, IMAGE, &[keys.cosign(IMAGE)]), reject(none));
    assert_eq!(
        decide(&cosign, IMAGE, &[keys.simple(IMAGE)]),
        reject(&format!(
            "{none} (1 non-sigstore signatures, 0 sigstore non-signature attachments)"
        ))
    );
    // Another key.
    let Decision::Reject(m) = decide(
        &gpg,
        IMAGE,
        &[keys.simple_by(&keys.other_gpg_secret, IMAGE, MANIFEST)],
    ) else {
        panic!("accepted another key")
    };
    assert!(m.contains("not trusted"), "{m}");
    let Decision::Reject(m) = decide(
        &cosign,
        IMAGE,
        &[keys.cosign_by(&keys.other_cosign, IMAGE, MANIFEST)],
    ) else {
        panic!("accepted another key")
    };
    assert!(
        m.contains("cryptographic signature verification failed"),
        "{m}"
    );
    // Another manifest.
    let other = Digest::sha256_of(b"other");
    let want = reject(&format!("Signature for digest {other} does not match"));
    assert_eq!(
        decide(
            &gpg,
            IMAGE,
            &[keys.simple_by(&keys.gpg_secret, IMAGE, b"other")]
        ),
        want
    );
    assert_eq!(
        decide(
            &cosign,
            IMAGE,
            &[keys.cosign_by(&keys.cosign, IMAGE, b"other")]
        ),
        want
    );
    // Several failures are summarized.
    let Decision::Reject(m) = decide(
        &gpg,
        IMAGE,
        &[
            keys.simple("registry.example/team/app:v2"),
            keys.simple_by(&keys.gpg_secret, IMAGE, b"other"),
        ],
    ) else {
        panic!()
    };
    assert!(
        m.starts_with("None of the signatures were accepted, reasons: Signature for identity"),
        "{m}"
    );
    assert!(m.contains("; Signature for digest"), "{m}");
    // A tampered signature blob.
    let ImageSignature::Simple(mut blob) = keys.simple(IMAGE) else {
        unreachable!()
    };
    let n = blob.len();
    blob[n - 2] ^= 1;
    assert!(matches!(
        decide(&gpg, IMAGE, &[ImageSignature::Simple(blob)]),
        Decision::Reject(_)
    ));
    // A sigstore layer of another media type is not a signature.
    let ImageSignature::Sigstore {
        payload,
        annotations,
        ..
    } = keys.cosign(IMAGE)
    else {
        unreachable!()
    };
    let attachment = ImageSignature::Sigstore {
        media_type: "application/x-sbom".into(),
        payload: payload.clone(),
        annotations,
    };
    assert_eq!(
        decide(&cosign, IMAGE, &[attachment]),
        reject(&format!(
            "{none} (0 non-sigstore signatures, 1 sigstore non-signature attachments)"
        ))
    );
    // A sigstore layer without its signature annotation.
    let unsigned = ImageSignature::Sigstore {
        media_type: crate::sigstore::PAYLOAD_MEDIA_TYPE.into(),
        payload,
        annotations: Default::default(),
    };
    assert_eq!(
        decide(&cosign, IMAGE, &[unsigned]),
        reject("missing dev.cosignproject.cosign/signature annotation")
    );
}

#[test]
fn keys_and_unsupported_configurations() {
    let keys = Keys::new();
    let sig = [keys.simple(IMAGE)];
    // Key data inline works like a key file.
    let data = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        std::fs::read(keys.path("trusted.gpg")).unwrap(),
    );
    let inline = policy(json!({"type": "signedBy", "keyType": "GPGKeys", "keyData": data}));
    assert_eq!(decide(&inline, IMAGE, &sig), Decision::Accept);
    // keyPaths: any of the files.
    std::fs::write(
        keys.path("unrelated.gpg"),
        testkeys::generate("U <u@example.com>", false).1,
    )
    .unwrap();
    let paths = policy(json!({"type": "signedBy", "keyType": "GPGKeys",
        "keyPaths": [keys.path("unrelated.gpg"), keys.path("trusted.gpg")]}));
    assert_eq!(decide(&paths, IMAGE, &sig), Decision::Accept);
    // A missing key file rejects every signature with the reason.
    let missing =
        policy(json!({"type": "signedBy", "keyType": "GPGKeys", "keyPath": keys.path("nope.gpg")}));
    let Decision::Reject(m) = decide(&missing, IMAGE, &sig) else {
        panic!()
    };
    assert!(
        m.starts_with("reading key file") && m.contains("nope.gpg"),
        "{m}"
    );
    // Key types c/image does not implement.
    let x509 = policy(
        json!({"type": "signedBy", "keyType": "X509Certificates", "keyPath": keys.path("trusted.gpg")}),
    );
    let Decision::Reject(m) = decide(&x509, IMAGE, &sig) else {
        panic!()
    };
    assert!(m.contains("Unimplemented \"keyType\""), "{m}");
    // Rekor and Fulcio are not verified by berth: refused, never skipped.
    let rekor = policy(
        json!({"type": "sigstoreSigned", "keyPath": keys.path("cosign.pub"),
        "rekorPublicKeyPath": keys.path("cosign.pub")}),
    );
    let Decision::Reject(m) = decide(&rekor, IMAGE, &[keys.cosign(IMAGE)]) else {
        panic!()
    };
    assert!(m.contains("Rekor"), "{m}");
}

#[test]
fn requirements_combine_and_scopes_apply() {
    let keys = Keys::new();
    // Both kinds required: each must be satisfied.
    let both = json!({
        "default": [{"type": "reject"}],
        "transports": {"docker": {
            "registry.example": [
                signed_by(&keys, json!({"type": "matchRepository"})),
                sigstore_signed(&keys, json!({"type": "matchRepository"}))
            ],
            "registry.example/open": [{"type": "insecureAcceptAnything"}]
        }}
    });
    let both = Policy::from_slice(both.to_string().as_bytes(), Path::new("p")).unwrap();
    assert_eq!(
        decide(&both, IMAGE, &[keys.simple(IMAGE), keys.cosign(IMAGE)]),
        Decision::Accept
    );
    assert_eq!(
        decide(&both, IMAGE, &[keys.simple(IMAGE)]),
        Decision::Reject("A signature was required, but no signature exists (1 non-sigstore signatures, 0 sigstore non-signature attachments)".into())
    );
    // A more specific scope wins; the default rejects what no scope covers.
    assert_eq!(
        decide(&both, "registry.example/open/x:v1", &[]),
        Decision::Accept
    );
    assert_eq!(
        decide(
            &both,
            "elsewhere.example/x:v1",
            &[keys.simple("elsewhere.example/x:v1")]
        ),
        Decision::Reject(
            "Running image docker://elsewhere.example/x:v1 is rejected by policy.".into()
        )
    );
}
