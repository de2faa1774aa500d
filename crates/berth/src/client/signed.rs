//! Signatures on the paths that copy images (copy, sync, pull, push): the source is
//! decided on under policy.json before anything is copied (its signatures fetched only
//! when a requirement needs them), its signatures go along unless
//! `--remove-signatures`, new ones are made (`--sign-by`, `--sign-by-key`,
//! `--sign-by-sigstore-private-key`) for the manifest digest written, and all are
//! stored where the destination keeps them. As containers/image: a destination that
//! cannot keep signatures refuses before copying, and an image with signatures goes
//! with its manifest unchanged (a conversion or recompression would invalidate them;
//! skopeo 1.9.3 then silently keeps the manifest, and so does berth).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use berth_containers_config::policy::docker_identity;
use berth_containers_config::{Decision, Policy, RegistriesD};
use berth_image::{Digest, ImageReference, Manifest, ManifestKind};
use berth_signature::ImageSignature;
use berth_transport::copy::{copy_manifest, instance_for, CopyOptions, Progress};
use berth_transport::signatures::SignatureStorage;
use berth_transport::{ImageName, Place, RawManifest};
use clap::Args;

use super::sign::{creator, passphrase_from};
use super::Config;

// The signing flags of `copy`, `sync` and `push` (skopeo's and podman's names).
// (A plain comment, not a doc comment: see `Command` in main.rs.)
#[derive(Args, Debug, Default, Clone)]
pub struct SignFlags {
    /// Sign the image with the GnuPG key of this fingerprint
    #[arg(long, value_name = "FINGERPRINT")]
    pub sign_by: Option<String>,
    /// Sign the image with this armored OpenPGP secret key (no GnuPG involved)
    #[arg(long, value_name = "FILE")]
    pub sign_by_key: Option<PathBuf>,
    /// Sign the image with this sigstore private key (as generate-sigstore-key writes)
    #[arg(long, value_name = "FILE")]
    pub sign_by_sigstore_private_key: Option<PathBuf>,
    /// The signing key's passphrase, on the first line of this file
    #[arg(long, value_name = "FILE")]
    pub sign_passphrase_file: Option<PathBuf>,
    /// The image reference the signature claims [default: the destination's]
    #[arg(long, value_name = "REFERENCE")]
    pub sign_identity: Option<String>,
}

impl SignFlags {
    fn signs(&self) -> bool {
        self.sign_by.is_some()
            || self.sign_by_key.is_some()
            || self.sign_by_sigstore_private_key.is_some()
    }

    /// Signs manifest `digest` as `identity`, each way asked for, saying so as
    /// containers/image does.
    fn sign(
        &self,
        digest: &Digest,
        identity: &str,
        progress: &Progress,
    ) -> anyhow::Result<Vec<ImageSignature>> {
        let mut out = Vec::new();
        let passphrase = || -> anyhow::Result<Option<String>> {
            self.sign_passphrase_file
                .as_deref()
                .map(passphrase_from)
                .transpose()
        };
        if let Some(fpr) = &self.sign_by {
            progress.line("Signing manifest using simple signing");
            let payload = berth_signature::Payload::new(digest.clone(), identity, creator())
                .to_json(berth_signature::Format::Simple)?;
            let sig = berth_signature::sign_with_gpg(
                fpr,
                self.sign_passphrase_file.as_deref(),
                &payload,
                None,
            )
            .context("Error creating signature")?;
            out.push(ImageSignature::Simple(sig));
        }
        if let Some(file) = &self.sign_by_key {
            progress.line("Signing manifest using simple signing");
            let key = read(file)?;
            let pw = passphrase()?.unwrap_or_default();
            let sig = berth_signature::simple::sign(&key, &pw, digest, identity, &creator())
                .with_context(|| format!("Error creating signature with {}", file.display()))?;
            out.push(ImageSignature::Simple(sig));
        }
        if let Some(file) = &self.sign_by_sigstore_private_key {
            progress.line("Signing manifest using a sigstore signature");
            let pem = read(file)?;
            let pw = match passphrase()? {
                Some(p) => p,
                None => {
                    rpassword::prompt_password(format!("Passphrase for key {}: ", file.display()))?
                }
            };
            let key = berth_signature::sigstore::PrivateKey::from_pem(&pem, pw.as_bytes())
                .with_context(|| format!("reading {}", file.display()))?;
            let (payload, sig) =
                berth_signature::sigstore::sign_image(&key, digest, identity, &creator())
                    .context("Error creating signature")?;
            out.push(ImageSignature::sigstore(payload, sig));
        }
        Ok(out)
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// policy.json (none with `--insecure-policy`) and where signatures live.
pub struct Trust {
    policy: Option<Policy>,
    storage: SignatureStorage,
}

impl Trust {
    /// Reads `policy` (else the default policy.json) unless `insecure`, and
    /// registries.d.
    pub fn load(config: &Config, policy: Option<&Path>, insecure: bool) -> anyhow::Result<Trust> {
        Self::load_with(config, policy, insecure, None)
    }

    /// [`Trust::load`] with registries.d read from `registries_d` (skopeo's
    /// `--registries.d`) instead of its usual place.
    pub fn load_with(
        config: &Config,
        policy: Option<&Path>,
        insecure: bool,
        registries_d: Option<&Path>,
    ) -> anyhow::Result<Trust> {
        let policy = match insecure {
            true => None,
            false => Some(Policy::load(config.env(), policy)?),
        };
        let registries_d = RegistriesD::load(config.env(), registries_d)?;
        Ok(Trust {
            policy,
            storage: SignatureStorage::new(registries_d, config.env().clone()),
        })
    }

    pub fn storage(&self) -> &SignatureStorage {
        &self.storage
    }

    /// Refuses `name` early when the policy rejects it whatever its signatures (a
    /// `reject` scope), before any registry is asked; signatures are checked per
    /// image, when it is read.
    pub fn precheck(&self, name: &ImageName) -> anyhow::Result<()> {
        let (Some(policy), Some((transport, identity))) = (&self.policy, policy_identity(name))
        else {
            return Ok(());
        };
        match policy.evaluate(transport, &identity) {
            Decision::Reject(why) => Err(refusal(policy, transport, &identity, &why)),
            _ => Ok(()),
        }
    }

    /// Decides whether image `name`, read from `src` with top-level manifest `top`, may
    /// be used. Returns the signatures it fetched to decide, if it needed them.
    pub async fn admit(
        &self,
        name: &ImageName,
        src: &Place,
        top: &RawManifest,
    ) -> anyhow::Result<Option<Vec<ImageSignature>>> {
        let (Some(policy), Some((transport, identity))) = (&self.policy, policy_identity(name))
        else {
            return Ok(None);
        };
        match policy.evaluate(transport, &identity) {
            Decision::Accept => return Ok(None),
            Decision::Reject(why) => return Err(refusal(policy, transport, &identity, &why)),
            Decision::NeedsSignature => {}
        }
        let sigs = src
            .signatures(&top.digest, &self.storage)
            .await
            .with_context(|| format!("reading the signatures of {name}"))?;
        match judge(policy, name, (transport, &identity), top, &sigs) {
            Decision::Reject(why) => Err(refusal(policy, transport, &identity, &why)),
            _ => Ok(Some(sigs)),
        }
    }
}

/// One signature as `inspect --signatures` shows it: its kind, and whether the policy
/// accepts the image on the strength of this signature alone.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SignatureVerdict {
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub verified: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl Trust {
    /// Each of `sigs` (of image `name`, manifest `top`) judged alone by the policy's
    /// requirements for the image. Where the requirements need no signature, none is
    /// "verified": the reason says so.
    pub fn verdicts(
        &self,
        name: &ImageName,
        top: &RawManifest,
        sigs: &[ImageSignature],
    ) -> Vec<SignatureVerdict> {
        let kind = |s: &ImageSignature| match s {
            ImageSignature::Simple(_) => "simple",
            ImageSignature::Sigstore { .. } => "sigstore",
        };
        let judged = |s: &ImageSignature| -> Result<(), String> {
            let Some(policy) = &self.policy else {
                return Err("no policy (--insecure-policy)".into());
            };
            let Some((transport, identity)) = policy_identity(name) else {
                return Err("the local store is not checked by policy".into());
            };
            let scope = policy.scope_of(transport, &identity);
            match policy.evaluate(transport, &identity) {
                Decision::NeedsSignature => {}
                Decision::Accept => {
                    return Err(format!("trust policy {scope} requires no signature"))
                }
                Decision::Reject(why) => return Err(format!("{why} (trust policy {scope})")),
            }
            match judge(
                policy,
                name,
                (transport, &identity),
                top,
                std::slice::from_ref(s),
            ) {
                Decision::Reject(why) => Err(why),
                _ => Ok(()),
            }
        };
        sigs.iter()
            .map(|s| {
                let outcome = judged(s);
                SignatureVerdict {
                    kind: kind(s),
                    verified: outcome.is_ok(),
                    reason: outcome.err().unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// The policy's decision on image `name` (policy transport and identity `scope`) with
/// top-level manifest `top` and signatures `sigs`.
fn judge(
    policy: &Policy,
    name: &ImageName,
    scope: (&str, &str),
    top: &RawManifest,
    sigs: &[ImageSignature],
) -> Decision {
    // signedIdentity compares signatures with the reference as the user named it.
    let docker_reference = match name {
        ImageName::Docker(r) | ImageName::Local(r) => Some(r.clone().with_default_tag()),
        _ => None,
    };
    let image = berth_signature::Image {
        transport: scope.0,
        policy_identity: scope.1,
        docker_reference: docker_reference.as_ref(),
        manifest: &top.bytes,
        signatures: sigs,
    };
    berth_signature::evaluate(policy, &image)
}

/// c/image's "Source image rejected", with where in policy.json the rule is.
fn refusal(policy: &Policy, transport: &str, identity: &str, why: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "Source image rejected: {why} (trust policy {})",
        policy.scope_of(transport, identity)
    )
}

/// A path as policy.json scopes name it: absolute, with `..` and links resolved, as
/// c/image's `explicitfilepath.ResolvePathToFullyExplicit` makes it (a path not made
/// yet: its folder resolved, its name kept). `/srv/other/../untrusted`, or a link to
/// `/srv/untrusted`, was judged by the default instead of `/srv/untrusted`'s scope.
fn absolute(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let explicit = std::fs::canonicalize(&abs).ok().or_else(|| {
        let (parent, name) = (abs.parent()?, abs.file_name()?);
        Some(std::fs::canonicalize(parent).ok()?.join(name))
    });
    explicit.unwrap_or(abs).display().to_string()
}

/// The transport and identity policy.json decides `name` by. The local store is
/// judged as containers/image judges its `containers-storage` (on push, save and
/// copies from it): `[<store root>]host/repo:tag`, within scopes `[<root>]host/repo`,
/// `[<root>]host`, `[<root>]` (berth's store has no graph driver to name).
pub fn policy_identity(name: &ImageName) -> Option<(&'static str, String)> {
    let with_ref = |path: &Path, reference: &Option<String>| match reference {
        Some(r) => format!("{}:{r}", absolute(path)),
        None => absolute(path),
    };
    Some(match name {
        ImageName::Docker(r) => ("docker", docker_identity(r)),
        ImageName::Oci { path, reference } => ("oci", with_ref(path, reference)),
        ImageName::Dir(path) => ("dir", absolute(path)),
        ImageName::Local(r) => {
            let root = crate::paths::storage_root().ok()?;
            (
                "containers-storage",
                format!("[{}]{}", absolute(&root), docker_identity(r)),
            )
        }
        ImageName::OciArchive { path, reference } => ("oci-archive", with_ref(path, reference)),
        ImageName::DockerArchive { path, .. } => ("docker-archive", absolute(path)),
    })
}

/// The identity a new signature claims: `--sign-identity`, else the destination's
/// reference (a registry or local-store name); `None` where there is none.
fn sign_identity(flags: &SignFlags, dst: &ImageName) -> anyhow::Result<Option<String>> {
    if let Some(given) = &flags.sign_identity {
        let r: ImageReference = given
            .parse()
            .with_context(|| format!("Could not parse --sign-identity {given:?}"))?;
        return Ok(Some(r.to_string()));
    }
    Ok(match dst {
        ImageName::Docker(r) | ImageName::Local(r) => {
            Some(r.clone().with_default_tag().to_string())
        }
        _ => None,
    })
}

/// How one copy treats signatures.
pub struct SignedCopy<'a> {
    pub trust: &'a Trust,
    pub remove_signatures: bool,
    pub sign: &'a SignFlags,
}

impl SignedCopy<'_> {
    /// The manifests a copy of `top` stands on: `top` itself; for an index without
    /// --all, its image for the platform; with --all, the index and every image in it.
    async fn checked(
        &self,
        src: &Place,
        top: &RawManifest,
        opts: &CopyOptions,
    ) -> anyhow::Result<Vec<RawManifest>> {
        let parsed = match Manifest::parse(top.media_type.as_deref(), &top.bytes) {
            Ok(m) if m.kind == ManifestKind::Index => m,
            // Not an index (or not readable: the copy says why).
            _ => return Ok(vec![top.clone()]),
        };
        if !opts.all {
            let child = instance_for(&parsed, &top.digest, &opts.platform)?;
            return Ok(vec![src.manifest(Some(&child.digest)).await?]);
        }
        let mut out = vec![top.clone()];
        for child in &parsed.manifests {
            out.push(src.manifest(Some(&child.digest)).await?);
        }
        Ok(out)
    }

    /// Copies `src` (named `src_name`) to `dst` (named `dst_name`): the policy decides
    /// first, then the image and its signatures go, new signatures are made for the
    /// digest written, and all are stored. Returns the digest written.
    pub async fn copy(
        &self,
        src_name: &ImageName,
        src: &Place,
        dst_name: &ImageName,
        dst: &Place,
        opts: &CopyOptions,
        progress: Progress,
    ) -> anyhow::Result<Digest> {
        self.copy_written(src_name, src, dst_name, dst, opts, progress)
            .await
            .map(|w| w.digest)
    }

    /// [`SignedCopy::copy`], also saying whether the manifest written is the source's.
    pub async fn copy_written(
        &self,
        src_name: &ImageName,
        src: &Place,
        dst_name: &ImageName,
        dst: &Place,
        opts: &CopyOptions,
        progress: Progress,
    ) -> anyhow::Result<Written> {
        let top = src.manifest(None).await?;
        let storage = self.trust.storage();
        // What the policy decides on and whose signatures go, as containers/image
        // decides: the image copied (from an index, the one for the platform), and with
        // --all the index and each of its images.
        let mut carried: Vec<(Digest, Vec<ImageSignature>)> = Vec::new();
        for m in self.checked(src, &top, opts).await? {
            let fetched = self.trust.admit(src_name, src, &m).await?;
            let sigs = match (self.remove_signatures, fetched) {
                (true, _) => Vec::new(),
                (false, Some(s)) => s,
                (false, None) => src
                    .signatures(&m.digest, storage)
                    .await
                    .with_context(|| format!("reading the signatures of {src_name}"))?,
            };
            carried.push((m.digest, sigs));
        }
        let any = carried.iter().any(|(_, s)| !s.is_empty());
        let mut opts = opts.clone();
        if any || self.sign.signs() {
            progress.line("Checking if image destination supports signatures");
            if let Some(why) = dst.signature_refusal() {
                bail!("Can not copy signatures to {dst_name}: {why}");
            }
        }
        if any {
            // Changing a manifest would invalidate them: each goes as it is.
            opts.format = None;
            opts.compress = None;
            opts.preserve_digests = true;
        }
        let identity = match self.sign.signs() {
            true => Some(sign_identity(self.sign, dst_name)?.with_context(|| {
                format!("Cannot determine canonical Docker reference for destination {dst_name}")
            })?),
            false => None,
        };
        let digest = copy_manifest(src, dst, top, &opts, progress.clone()).await?;
        // The first is the manifest written at the top (it kept its digest when it has
        // signatures); an index's images kept theirs.
        let converted = carried.first().is_some_and(|(d, _)| *d != digest);
        if let Some(first) = carried.first_mut() {
            first.0 = digest.clone();
        }
        if let Some(identity) = identity {
            let new = self.sign.sign(&digest, &identity, &progress)?;
            match carried.first_mut() {
                Some(first) => first.1.extend(new),
                None => carried.push((digest.clone(), new)),
            }
        }
        if carried.iter().any(|(_, s)| !s.is_empty()) {
            progress.line("Storing signatures");
        }
        for (d, sigs) in carried.iter().filter(|(_, s)| !s.is_empty()) {
            dst.put_signatures(d, sigs, storage)
                .await
                .with_context(|| format!("storing the signatures of {dst_name}"))?;
        }
        Ok(Written { digest, converted })
    }
}

/// What [`SignedCopy::copy_written`] wrote.
pub struct Written {
    /// The manifest written at the top.
    pub digest: Digest,
    /// It is not the source's manifest (recompressed, converted): nothing of the
    /// source names it, not its signatures nor its referrers.
    pub converted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_identities_as_containers_image_names_them() {
        let id = |s: &str| policy_identity(&ImageName::parse(s).unwrap());
        assert_eq!(
            id("docker://busybox"),
            Some(("docker", "docker.io/library/busybox:latest".to_string()))
        );
        assert_eq!(
            id("docker://reg.test/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000"),
            Some((
                "docker",
                "reg.test/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000"
                    .to_string()
            ))
        );
        assert_eq!(id("dir:/srv/x"), Some(("dir", "/srv/x".to_string())));
        assert_eq!(id("oci:/srv/o:v1"), Some(("oci", "/srv/o:v1".to_string())));
        let root = absolute(&crate::paths::storage_root().unwrap());
        assert_eq!(
            id("local:alpine"),
            Some((
                "containers-storage",
                format!("[{root}]localhost/alpine:latest")
            ))
        );
    }

    /// A scope names a folder: reached through `..` or a link, the same folder is
    /// judged by the same scope, as c/image resolves it.
    #[test]
    fn a_folder_is_named_by_its_resolved_path() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir(root.join("untrusted")).unwrap();
        std::fs::create_dir(root.join("other")).unwrap();
        std::os::unix::fs::symlink(root.join("untrusted"), root.join("link")).unwrap();
        let want = Some(("dir", root.join("untrusted").display().to_string()));
        for path in ["untrusted", "other/../untrusted", "link"] {
            let name = ImageName::parse(&format!("dir:{}", root.join(path).display())).unwrap();
            assert_eq!(policy_identity(&name), want, "{path}");
        }
        // Not made yet: its folder resolved, its name kept.
        let name = ImageName::parse(&format!("dir:{}", root.join("link/new").display())).unwrap();
        let want_new = root.join("untrusted/new").display().to_string();
        assert_eq!(policy_identity(&name), Some(("dir", want_new)));
    }

    #[test]
    fn new_signatures_claim_the_destination_unless_told() {
        let flags = SignFlags::default();
        let dst = ImageName::parse("docker://reg.test/team/app").unwrap();
        assert_eq!(
            sign_identity(&flags, &dst).unwrap().as_deref(),
            Some("reg.test/team/app:latest")
        );
        assert_eq!(
            sign_identity(&flags, &ImageName::parse("dir:/x").unwrap()).unwrap(),
            None
        );
        let told = SignFlags {
            sign_identity: Some("busybox:1".into()),
            ..SignFlags::default()
        };
        assert_eq!(
            sign_identity(&told, &ImageName::parse("dir:/x").unwrap())
                .unwrap()
                .as_deref(),
            Some("docker.io/library/busybox:1")
        );
        let bad = SignFlags {
            sign_identity: Some("a b@c".into()),
            ..SignFlags::default()
        };
        assert!(sign_identity(&bad, &dst).is_err());
    }
}
