//! Names and removal: `berth tag`, `untag`, `rmi` (`image rm`) and `image prune`, with
//! podman's rules: removing one of several names only untags; an ID with several
//! names needs `-f`; prune takes dangling images, or with `-a` every image.

use std::io::{BufRead, Write};

use anyhow::bail;
use berth_image::Digest;
use berth_transport::local::{ImageNotKnown, LocalStore};
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

/// What `rmi` does to one argument.
enum Plan {
    Untag(Digest, String),
    Delete(Digest),
}

pub fn rmi(a: RmiArgs) -> anyhow::Result<std::process::ExitCode> {
    match (a.all, a.images.is_empty()) {
        (true, false) => bail!("--all removes every image; give no names with it"),
        (false, true) => bail!("give images to remove, or --all"),
        _ => {}
    }
    let store = open_store()?;
    let mut plans = Vec::new();
    let mut unknown = Vec::new();
    if a.all {
        plans.extend(store.images()?.into_iter().map(|i| Plan::Delete(i.id)));
    }
    for spec in &a.images {
        match plan(&store, spec, a.force) {
            Ok(p) => plans.push(p),
            Err(e) if is_unknown(&e) => unknown.push(e),
            Err(e) => return Err(e),
        }
    }
    let names: std::collections::HashMap<Digest, Vec<String>> = store
        .images()?
        .into_iter()
        .map(|i| (i.id, i.names))
        .collect();
    let mut deleted = Vec::new();
    for p in plans {
        match p {
            Plan::Untag(id, name) => {
                store.untag(&id, Some(std::slice::from_ref(&name)))?;
                println!("Untagged: {name}");
            }
            Plan::Delete(id) if !deleted.contains(&id) => {
                for name in names.get(&id).into_iter().flatten() {
                    println!("Untagged: {name}");
                }
                deleted.push(id.clone());
                println!("Deleted: {}", id.hex());
            }
            Plan::Delete(_) => {}
        }
    }
    if a.force {
        for id in &deleted {
            crate::client::containers::remove_users(id)?;
        }
    }
    match store.remove(&deleted) {
        Err(TransportError::InUse(e)) => {
            eprintln!("Error: {e}");
            // podman: 2 when an image is in use by a container.
            return Ok(std::process::ExitCode::from(2));
        }
        other => other?,
    };
    if unknown.is_empty() || a.ignore {
        return Ok(std::process::ExitCode::SUCCESS);
    }
    for e in &unknown {
        eprintln!("Error: {e:#}");
    }
    // podman: 1 when images were not there and nothing else failed.
    Ok(std::process::ExitCode::from(1))
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

/// A name among several: untag it. An ID (or a last name): delete the image, which
/// by ID with several names needs `force`.
fn plan(store: &LocalStore, spec: &str, force: bool) -> anyhow::Result<Plan> {
    let (img, by_name) = store.find_named(spec)?;
    match by_name {
        Some(name) if img.names.len() > 1 => Ok(Plan::Untag(img.id.clone(), name)),
        Some(_) => Ok(Plan::Delete(img.id)),
        None if img.names.len() > 1 && !force => bail!(
            "unable to delete image \"{}\" by ID with more than one tag ([{}]): please force removal",
            img.id.hex(),
            img.names.join(" ")
        ),
        None => Ok(Plan::Delete(img.id)),
    }
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
