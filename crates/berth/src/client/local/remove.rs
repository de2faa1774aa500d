//! Names and removal: `berth tag`, `untag`, `rmi` (`image rm`) and `image prune`, with
//! podman's rules: removing one of several names only untags; an ID with several
//! names needs `-f`; prune takes dangling images, or with `-a` every image.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use anyhow::bail;
use berth_image::Digest;
use berth_transport::local::ImageNotKnown;
use berth_transport::TransportError;
use clap::Args;

use super::{human_size, open_store, qualify};

#[derive(Args, Debug)]
pub struct TagArgs {
    /// The image: name, ID or ID prefix
    image: String,
    /// New names (a name without a registry goes under localhost/)
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UntagArgs {
    /// The image: name, ID or ID prefix
    image: String,
    /// Names to remove [default: all]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Every image
    #[arg(long, short = 'a')]
    all: bool,
    /// Remove an image even when it has several names (all go) or containers use it
    /// (they are stopped and removed first)
    #[arg(long, short = 'f')]
    force: bool,
    /// Say nothing of images that are not there
    #[arg(long, short = 'i')]
    ignore: bool,
    /// Images: name, ID or ID prefix
    images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Every image no container uses, not only dangling ones
    #[arg(long, short = 'a')]
    all: bool,
    /// Do not ask for confirmation
    #[arg(long, short = 'f')]
    force: bool,
}

pub fn tag(a: TagArgs) -> anyhow::Result<()> {
    let store = open_store()?;
    let img = store.find(&a.image)?;
    for name in &a.names {
        store.tag(&img.id, &qualify(name)?)?;
    }
    Ok(())
}

pub fn untag(a: UntagArgs) -> anyhow::Result<()> {
    let store = open_store()?;
    let img = store.find(&a.image)?;
    if a.names.is_empty() {
        store.untag(&img.id, None)?;
        return Ok(());
    }
    let names = a
        .names
        .iter()
        .map(|n| qualify(n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (typed, name) in a.names.iter().zip(&names) {
        if !img.names.contains(name) {
            bail!("{typed}: tag not known");
        }
    }
    store.untag(&img.id, Some(&names))?;
    Ok(())
}

/// `rmi`: as podman, each argument in turn against the names still left (so naming
/// every tag of an image removes it), then the removals: an image containers use
/// stays unless `-f` (which removes those containers first), the others go.
/// Only what happened is printed: every `Untagged:`, then every `Deleted:`.
/// Exit status: 125 for other errors, else 2 when an image was in use, else 1 when
/// one was not known (unless `-i`).
pub fn rmi(a: RmiArgs) -> anyhow::Result<std::process::ExitCode> {
    match (a.all, a.images.is_empty()) {
        (true, false) => bail!("--all removes every image; give no names with it"),
        (false, true) => bail!("give images to remove, or --all"),
        _ => {}
    }
    let store = open_store()?;
    let mut left: HashMap<Digest, Vec<String>> = store
        .images()?
        .into_iter()
        .map(|i| (i.id, i.names))
        .collect();
    let mut untag: Vec<(Digest, String)> = Vec::new();
    let mut delete: Vec<Digest> = Vec::new();
    let (mut unknown, mut failed) = (Vec::new(), Vec::new());
    if a.all {
        delete.extend(store.images()?.into_iter().map(|i| i.id));
    }
    for spec in &a.images {
        let (img, by_name) = match store.find_named(spec) {
            Ok(found) => found,
            Err(e) => {
                let e = anyhow::Error::from(e);
                match is_unknown(&e) {
                    true => unknown.push(e),
                    false => failed.push(e),
                }
                continue;
            }
        };
        let names = left.entry(img.id.clone()).or_default();
        match by_name {
            Some(name) if !names.contains(&name) => {
                unknown.push(ImageNotKnown(spec.clone()).into());
            }
            Some(name) if names.len() > 1 => {
                names.retain(|n| n != &name);
                untag.push((img.id, name));
            }
            None if names.len() > 1 && !a.force => failed.push(anyhow::anyhow!(
                "unable to delete image \"{}\" by ID with more than one tag ([{}]): please force removal",
                img.id.hex(),
                names.join(" ")
            )),
            _ if delete.contains(&img.id) => {}
            _ => delete.push(img.id),
        }
    }
    if a.force {
        for id in &delete {
            crate::client::containers::remove_users(id)?;
        }
    }
    let mut untagged = Vec::new();
    for (id, name) in untag {
        store.untag(&id, Some(std::slice::from_ref(&name)))?;
        untagged.push(name);
    }
    let removed = store.remove(&delete)?;
    for id in &removed.images {
        untagged.extend(left.remove(id).unwrap_or_default());
    }
    for name in &untagged {
        println!("Untagged: {name}");
    }
    for id in &removed.images {
        println!("Deleted: {}", id.hex());
    }
    let ignored = if a.ignore { unknown.len() } else { 0 };
    for e in unknown.iter().skip(ignored).chain(&failed) {
        eprintln!("Error: {e:#}");
    }
    for e in &removed.in_use {
        eprintln!("Error: {e}");
    }
    let code = match () {
        _ if !failed.is_empty() => super::PODMAN_ERROR,
        _ if !removed.in_use.is_empty() => 2,
        _ if unknown.len() > ignored => 1,
        _ => 0,
    };
    Ok(std::process::ExitCode::from(code))
}

fn is_unknown(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<ImageNotKnown>().is_some()
            || matches!(
                c.downcast_ref::<TransportError>(),
                Some(TransportError::Local(_))
            )
    })
}

pub fn prune(a: PruneArgs) -> anyhow::Result<()> {
    if !a.force {
        let what = match a.all {
            true => "all images without at least one container associated with them",
            false => "all dangling images",
        };
        eprint!("WARNING! This command removes {what}.\nAre you sure you want to continue? [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
            return Ok(());
        }
    }
    let store = open_store()?;
    let victims: Vec<Digest> = store
        .images()?
        .into_iter()
        .filter(|i| !i.in_list && i.containers == 0 && (a.all || i.is_dangling()))
        .map(|i| i.id)
        .collect();
    let removed = store.remove(&victims)?;
    for id in &removed.images {
        println!("{}", id.hex());
    }
    eprintln!("Total reclaimed space: {}", human_size(removed.reclaimed));
    Ok(())
}
