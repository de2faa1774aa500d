//! Keygrips, the names gpg-agent files secret keys under: a SHA-1 over the public key
//! as libgcrypt defines it. RSA: the modulus as stored in the key's S-expression (a
//! leading zero byte when its top bit is set). ECC: `(1:p..)(1:a..)(1:b..)(1:g..)
//! (1:n..)(1:q..)`, each the curve's parameter as libgcrypt's curve table holds it
//! (magnitudes; the cofactor left out), q compact (32 bytes) for EdDSA and
//! uncompressed for NIST curves. Checked against `gpg --with-keygrip` in the tests.

use pgp::crypto::hash::HashAlgorithm;
use pgp::ser::Serialize;
use pgp::types::{EcdsaPublicParams, EddsaLegacyPublicParams, PublicParams};

/// libgcrypt's Ed25519 parameters (a = -1 and b = d < 0 are hashed as magnitudes).
const ED25519: [(&str, &str); 5] = [
    ("p", "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED"),
    ("a", "01"),
    ("b", "2DFC9311D490018C7338BF8688861767FF8FF5B2BEBE27548A14B235ECA6874A"),
    ("g", "04216936D3CD6E53FEC0A4E231FDD6DC5C692CC7609525A7B2C9562D608F25D51A6666666666666666666666666666666666666666666666666666666666666658"),
    ("n", "1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED"),
];

/// NIST P-256 (secp256r1).
const P256: [(&str, &str); 5] = [
    ("p", "FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF"),
    ("a", "FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC"),
    ("b", "5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B"),
    ("g", "046B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C2964FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5"),
    ("n", "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551"),
];

/// The keygrip (40 upper-case hex digits) of an RSA, Ed25519 or NIST P-256 key;
/// `None` for other algorithms.
pub fn keygrip(params: &PublicParams) -> Option<String> {
    let mut wire = Vec::new();
    params.to_writer(&mut wire).ok()?;
    let hashed = match params {
        PublicParams::RSA(_) => {
            let n = first_mpi(&wire)?;
            let mut v = Vec::with_capacity(n.len() + 1);
            if n.first().is_some_and(|b| b & 0x80 != 0) {
                v.push(0);
            }
            v.extend_from_slice(n);
            v
        }
        PublicParams::EdDSALegacy(EddsaLegacyPublicParams::Ed25519 { .. }) => {
            // OID (length-prefixed), then q as an MPI: 0x40 and the 32-byte point.
            let q = first_mpi(wire.get(1 + usize::from(*wire.first()?)..)?)?;
            curve_grip(&ED25519, q.strip_prefix(&[0x40])?)
        }
        PublicParams::ECDSA(EcdsaPublicParams::P256 { .. }) => {
            let q = first_mpi(wire.get(1 + usize::from(*wire.first()?)..)?)?;
            curve_grip(&P256, q)
        }
        _ => return None,
    };
    let digest = HashAlgorithm::Sha1.digest(&hashed).ok()?;
    Some(digest.iter().map(|b| format!("{b:02X}")).collect())
}

/// What libgcrypt hashes for an ECC key: each parameter as `(1:<name><len>:<bytes>)`.
fn curve_grip(curve: &[(&str, &str)], q: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut put = |name: &str, v: &[u8]| {
        out.extend(format!("(1:{name}{}:", v.len()).bytes());
        out.extend_from_slice(v);
        out.push(b')');
    };
    for (name, hex) in curve {
        let v: Vec<u8> = (0..hex.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
            .collect();
        put(name, &v);
    }
    put("q", q);
    out
}

/// The value of the MPI at the start of `wire` (2-byte bit count, then the bytes).
fn first_mpi(wire: &[u8]) -> Option<&[u8]> {
    let bits = usize::from(u16::from_be_bytes([*wire.first()?, *wire.get(1)?]));
    wire.get(2..2 + bits.div_ceil(8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openpgp::Keyring;

    /// Public keys exported from GnuPG 2.2 and their keygrips as `gpg --with-keygrip`
    /// lists them.
    #[test]
    fn keygrips_as_gpg_lists_them() {
        for (file, grip) in [
            ("ed25519.pub", "EFEF53EFBC97DA24FCAFC7BBFC7365D5C0CF8A95"),
            ("rsa2048.pub", "092895F23AC24C17FBF1347FAB985B15B41B8E99"),
            ("p256.pub", "51249AA5901810B5A717E4C9DA3F1FDB06904FD7"),
        ] {
            let path = format!("{}/tests/fixtures/agent/{file}", env!("CARGO_MANIFEST_DIR"));
            let ring = Keyring::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
            let key = &ring.certs()[0].primary_key;
            assert_eq!(
                keygrip(pgp::types::KeyDetails::public_params(key)).as_deref(),
                Some(grip),
                "{file}"
            );
        }
    }
}
