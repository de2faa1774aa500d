//! `signedIdentity`: which identity a signature must claim for a given image, with
//! containers/image's rules (`signature/policy_reference_match.go`). References on both
//! sides are normalized docker references (`docker.io/library/…`); "name only" means
//! neither tag nor digest, which no exact rule accepts.

use berth_containers_config::policy::SignedIdentity;
use berth_image::ImageReference;

fn name_only(r: &ImageReference) -> bool {
    r.tag().is_none() && r.digest().is_none()
}

/// `matchRepoDigestOrExact`'s comparison: an image named by tag needs exactly that
/// reference signed; one named by digest only needs its repository (the digest itself is
/// checked against the manifest separately).
fn repo_digest_or_exact(intended: &ImageReference, signed: &ImageReference) -> bool {
    if name_only(signed) {
        return false;
    }
    if intended.tag().is_some() {
        signed.to_string() == intended.to_string()
    } else if intended.digest().is_some() {
        signed.name() == intended.name()
    } else {
        false
    }
}

/// `remapIdentity`: when the image's repository is `prefix` or under it, `prefix` is
/// replaced by `signed_prefix` before comparing (a mirror carrying signatures made for
/// the original location).
fn remap(intended: &ImageReference, prefix: &str, signed_prefix: &str) -> Option<ImageReference> {
    let name = intended.name();
    let under = name == prefix
        || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'/'));
    if !under {
        return Some(intended.clone());
    }
    let full = intended.to_string();
    format!("{signed_prefix}{}", &full[prefix.len()..])
        .parse()
        .ok()
}

/// Whether a signature claiming `signed` satisfies `rule` for an image whose docker
/// reference is `intended` (`None` for images with no docker identity, such as `dir:`,
/// which only the `exact*` rules can match).
pub fn matches(rule: &SignedIdentity, intended: Option<&ImageReference>, signed: &str) -> bool {
    let Ok(signed) = signed.parse::<ImageReference>() else {
        return false;
    };
    match rule {
        SignedIdentity::ExactReference(r) => {
            !name_only(r) && !name_only(&signed) && signed.to_string() == r.to_string()
        }
        SignedIdentity::ExactRepository(r) => signed.name() == r.name(),
        _ => {
            let Some(intended) = intended else {
                return false;
            };
            match rule {
                SignedIdentity::MatchExact => {
                    !name_only(intended)
                        && !name_only(&signed)
                        && signed.to_string() == intended.to_string()
                }
                SignedIdentity::MatchRepoDigestOrExact => repo_digest_or_exact(intended, &signed),
                SignedIdentity::MatchRepository => signed.name() == intended.name(),
                SignedIdentity::RemapIdentity {
                    prefix,
                    signed_prefix,
                } => remap(intended, prefix, signed_prefix)
                    .is_some_and(|r| repo_digest_or_exact(&r, &signed)),
                SignedIdentity::ExactReference(_) | SignedIdentity::ExactRepository(_) => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn r(s: &str) -> ImageReference {
        s.parse().unwrap()
    }

    fn remap_rule(prefix: &str, signed_prefix: &str) -> SignedIdentity {
        SignedIdentity::RemapIdentity {
            prefix: prefix.into(),
            signed_prefix: signed_prefix.into(),
        }
    }

    /// (rule, image, signed identity, expected), after c/image's
    /// `policy_reference_match_test.go` cases.
    #[test]
    fn table() {
        use SignedIdentity::*;
        let tag = "example.com/ns/app:v1".to_string();
        let dig = format!("example.com/ns/app@{D1}");
        let dig2 = format!("example.com/ns/app@{D2}");
        let mirror_dig = format!("mirror.example/ns/app@{D1}");
        let cases: Vec<(SignedIdentity, Option<&str>, &str, bool)> = vec![
            // matchExact: the same string, never name-only.
            (MatchExact, Some(&tag), &tag, true),
            (MatchExact, Some(&tag), "example.com/ns/app:v2", false),
            (MatchExact, Some(&tag), "example.com/ns/app", false),
            (MatchExact, Some(&dig), &dig, true),
            (MatchExact, Some(&dig), &dig2, false),
            (
                MatchExact,
                Some("example.com/ns/app"),
                "example.com/ns/app",
                false,
            ),
            (
                MatchExact,
                Some("busybox:latest"),
                "docker.io/library/busybox:latest",
                true,
            ),
            (MatchExact, None, &tag, false),
            // matchRepoDigestOrExact: tags exact, digests by repository.
            (MatchRepoDigestOrExact, Some(&tag), &tag, true),
            (
                MatchRepoDigestOrExact,
                Some(&tag),
                "example.com/ns/app:v2",
                false,
            ),
            (
                MatchRepoDigestOrExact,
                Some(&dig),
                "example.com/ns/app:anything",
                true,
            ),
            (MatchRepoDigestOrExact, Some(&dig), &dig2, true),
            (
                MatchRepoDigestOrExact,
                Some(&dig),
                "example.com/ns/other:v1",
                false,
            ),
            (
                MatchRepoDigestOrExact,
                Some(&dig),
                "example.com/ns/app",
                false,
            ),
            (
                MatchRepoDigestOrExact,
                Some("example.com/ns/app"),
                &tag,
                false,
            ),
            (MatchRepoDigestOrExact, None, &tag, false),
            // matchRepository: any tag or digest of the repository.
            (MatchRepository, Some(&tag), "example.com/ns/app:v9", true),
            (MatchRepository, Some(&tag), "example.com/ns/app", true),
            (
                MatchRepository,
                Some(&tag),
                "example.com/ns/other:v1",
                false,
            ),
            (
                MatchRepository,
                Some(&tag),
                "other.example/ns/app:v1",
                false,
            ),
            (MatchRepository, None, &tag, false),
            // exactReference / exactRepository: the image does not matter.
            (ExactReference(r(&tag)), Some("x.example/y:z"), &tag, true),
            (ExactReference(r(&tag)), None, &tag, true),
            (
                ExactReference(r(&tag)),
                Some(&tag),
                "example.com/ns/app:v2",
                false,
            ),
            (
                ExactReference(r(&tag)),
                Some(&tag),
                "example.com/ns/app",
                false,
            ),
            (
                ExactRepository(r("example.com/ns/app")),
                None,
                "example.com/ns/app:v7",
                true,
            ),
            (
                ExactRepository(r("example.com/ns/app")),
                Some(&tag),
                "example.com/ns/apps:v1",
                false,
            ),
            // remapIdentity: the image's prefix rewritten, then matchRepoDigestOrExact.
            (
                remap_rule("mirror.example/ns", "example.com/ns"),
                Some("mirror.example/ns/app:v1"),
                &tag,
                true,
            ),
            (
                remap_rule("mirror.example/ns", "example.com/ns"),
                Some("mirror.example/ns/app:v1"),
                "mirror.example/ns/app:v1",
                false,
            ),
            (
                remap_rule("mirror.example/ns", "example.com/ns"),
                Some(&mirror_dig),
                "example.com/ns/app:v3",
                true,
            ),
            (
                remap_rule("mirror.example/ns", "example.com/ns"),
                Some("mirror.example/nsx/app:v1"),
                "example.com/nsx/app:v1",
                false,
            ),
            (
                remap_rule("mirror.example/ns", "example.com/ns"),
                Some("mirror.example/nsx/app:v1"),
                "mirror.example/nsx/app:v1",
                true,
            ),
            (
                remap_rule("mirror.example", "example.com"),
                Some("mirror.example/ns/app:v1"),
                &tag,
                true,
            ),
            (
                remap_rule("mirror.example/ns", "example.com/ns"),
                None,
                &tag,
                false,
            ),
            // Unparseable signed identities never match.
            (MatchRepository, Some(&tag), "Not A Reference", false),
        ];
        for (rule, image, signed, want) in cases {
            let image = image.map(r);
            assert_eq!(
                matches(&rule, image.as_ref(), signed),
                want,
                "{rule:?} image {image:?} signed {signed}"
            );
        }
    }
}
