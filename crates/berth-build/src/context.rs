//! What COPY and ADD copy: the sources found (in the build context, minus what
//! `.containerignore` excludes, or in another stage's root file system), hashed for
//! the cache key, then written as a tar placed at the destination, which the stage's
//! root file system takes as a layer is taken (berth-rootfs refuses what would land
//! outside it).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use berth_containerfile::Ignore;
use sha2::{Digest as _, Sha256};

/// Where sources are read from.
pub enum Source<'a> {
    /// The build context, with its ignore rules.
    Context { dir: &'a Path, ignore: &'a Ignore },
    /// Another stage's (or image's) root file system.
    Rootfs(&'a Path),
}

/// One thing to copy.
struct Item {
    /// Path under the destination ("" for a directory source itself).
    rel: String,
    path: PathBuf,
    meta: fs::Metadata,
    /// A directory source's content goes into the destination; a file source may
    /// be the destination.
    in_dir_source: bool,
    /// ADD of a local archive: its entries are unpacked at the destination.
    archive: bool,
}

/// The sources of one COPY/ADD, found.
pub struct Found {
    items: Vec<Item>,
    /// Heredoc files: (name, content).
    inline: Vec<(String, String)>,
    several: bool,
}

/// Finds `sources` under `from`; `add` unpacks local archives. Errors say which
/// source is missing, as `no such file: app.py`.
pub fn find(
    from: &Source,
    sources: &[String],
    inline: Vec<(String, String)>,
    add: bool,
) -> Result<Found, String> {
    let (root, ignore) = match from {
        Source::Context { dir, ignore } => (*dir, Some(*ignore)),
        Source::Rootfs(dir) => (*dir, None),
    };
    let base = fs::canonicalize(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let mut items = Vec::new();
    let mut matched_total = 0;
    for src in sources {
        if src.starts_with("http://") || src.starts_with("https://") {
            return Err(format!("{src}: sources from URLs are not supported"));
        }
        let rel = clean(src).ok_or_else(|| format!("{src}: outside the build context"))?;
        let found_before = items.len();
        let in_root = matches!(from, Source::Rootfs(_));
        for m in expand_glob(&base, &rel, in_root)? {
            let ignored = ignore.is_some_and(|i| i.is_ignored(&m, base.join(&m).is_dir()));
            // An excluded folder is still walked when an exception may re-include
            // something under it (`!top/docs/README.md`), as BuildKit does.
            if ignored && !ignore.is_some_and(|i| i.has_exceptions()) {
                continue;
            }
            let (path, meta) = match from {
                Source::Context { .. } => in_context(&base, &m, src)?,
                Source::Rootfs(_) => in_rootfs(&base, &m, src)?,
            };
            if meta.is_dir() {
                let mut found = Vec::new();
                walk(&path, meta, "", ignore, &m, &mut found)?;
                // An excluded folder counts only for what it re-includes.
                if !(ignored && found.len() == 1) {
                    items.extend(found);
                    matched_total += 1;
                }
            } else if !ignored {
                let name = Path::new(&m)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let archive = add && is_archive(&path);
                items.push(Item {
                    rel: name,
                    path,
                    meta,
                    in_dir_source: false,
                    archive,
                });
                matched_total += 1;
            }
        }
        if items.len() == found_before {
            return Err(format!("no such file: {src}"));
        }
    }
    Ok(Found {
        items,
        several: matched_total + inline.len() > 1,
        inline,
    })
}

/// `m` (relative, clean) in the build context `base` (canonical): its path and
/// metadata, a link named directly followed. The host resolves the folders on the way,
/// so a link among them (`lib -> /root` for `COPY lib/.ssh/id_rsa`) or the source
/// itself must not lead out of the context.
fn in_context(base: &Path, m: &str, src: &str) -> Result<(PathBuf, fs::Metadata), String> {
    let missing = || format!("no such file: {src}");
    let out_of_context = || format!("{src}: a link out of the build context");
    let path = base.join(m);
    if let Some(parent) = Path::new(m).parent().filter(|p| !p.as_os_str().is_empty()) {
        let parent = fs::canonicalize(base.join(parent)).map_err(|_| missing())?;
        if !parent.starts_with(base) {
            return Err(out_of_context());
        }
    }
    let meta = fs::symlink_metadata(&path).map_err(|_| missing())?;
    if !meta.file_type().is_symlink() {
        return Ok((path, meta));
    }
    let target = fs::canonicalize(&path).map_err(|_| missing())?;
    if !target.starts_with(base) {
        return Err(out_of_context());
    }
    let meta = fs::metadata(&target).map_err(|_| missing())?;
    Ok((path, meta))
}

/// `m` in a stage's root file system `base` (canonical), every link on the way and the
/// source itself resolved inside that root, as the stage sees its own files: an
/// absolute link (`/var/run -> /run`) names the stage's `/run`, not the host's.
fn in_rootfs(base: &Path, m: &str, src: &str) -> Result<(PathBuf, fs::Metadata), String> {
    let missing = || format!("no such file: {src}");
    let real = resolve_in(base, m).ok_or_else(missing)?;
    let path = base.join(&real);
    let meta = fs::symlink_metadata(&path).map_err(|_| missing())?;
    Ok((path, meta))
}

/// Resolves `rel` inside `root` as the kernel would were `root` the `/`: each link
/// followed (an absolute one from `root`), `..` never above `root`. `None` for a
/// missing path or more than 40 links (ELOOP).
pub(crate) fn resolve_in(root: &Path, rel: &str) -> Option<String> {
    let mut todo: Vec<String> = rel.split('/').rev().map(str::to_string).collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        done.push(part);
        let here = root.join(done.join("/"));
        let Ok(meta) = fs::symlink_metadata(&here) else {
            // Missing: the caller says so (only the last part may be missing here).
            return todo.is_empty().then(|| done.join("/"));
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        links += 1;
        if links > 40 {
            return None;
        }
        let target = fs::read_link(&here).ok()?;
        done.pop();
        let target = target.to_string_lossy().into_owned();
        if target.starts_with('/') {
            done.clear();
        }
        todo.extend(target.split('/').rev().map(str::to_string));
    }
    Some(done.join("/"))
}

/// A path as typed, made relative and clean; `None` if it climbs out.
fn clean(p: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    Some(parts.join("/"))
}

/// The paths `rel` names under `root`, sorted: each component with glob syntax (`*`,
/// `?`, `[…]`, Go's `filepath.Match`) matched against its folder's entries, as
/// buildah's `filepath.Glob`; a path without any, itself if it exists. `in_root`:
/// folders are read through links resolved inside `root` (a stage's file system).
fn expand_glob(root: &Path, rel: &str, in_root: bool) -> Result<Vec<String>, String> {
    let real = |p: &str| match in_root {
        true => resolve_in(root, p),
        false => Some(p.to_string()),
    };
    let mut paths = vec![String::new()];
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        let mut next = Vec::new();
        for dir in &paths {
            let join = |name: &str| match dir.is_empty() {
                true => name.to_string(),
                false => format!("{dir}/{name}"),
            };
            if !berth_containerfile::has_glob(part) {
                next.push(join(part));
                continue;
            }
            let Some(Ok(entries)) = real(dir).map(|d| fs::read_dir(root.join(d))) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                if berth_containerfile::glob_match(part, &name)? {
                    next.push(join(&name));
                }
            }
        }
        paths = next;
    }
    paths.retain(|p| real(p).is_some_and(|p| fs::symlink_metadata(root.join(p)).is_ok()));
    Ok(paths)
}

/// A directory source: itself (`rel` "", with `meta`: a link named as the source is
/// followed) and everything under it, sorted. What the ignore rules exclude is left
/// out; an excluded folder is walked only when an exception may re-include something
/// under it, and kept only if something is.
fn walk(
    dir: &Path,
    meta: fs::Metadata,
    rel: &str,
    ignore: Option<&Ignore>,
    context_rel: &str,
    items: &mut Vec<Item>,
) -> Result<(), String> {
    items.push(Item {
        rel: rel.to_string(),
        path: dir.to_path_buf(),
        meta,
        in_dir_source: true,
        archive: false,
    });
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    let exceptions = ignore.is_some_and(|i| i.has_exceptions());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let sub_rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let sub_context = if context_rel.is_empty() {
            name.clone()
        } else {
            format!("{context_rel}/{name}")
        };
        let path = e.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let ignored = ignore.is_some_and(|i| i.is_ignored(&sub_context, meta.is_dir()));
        if meta.is_dir() {
            if ignored && !exceptions {
                continue;
            }
            let mut inside = Vec::new();
            walk(&path, meta, &sub_rel, ignore, &sub_context, &mut inside)?;
            if !(ignored && inside.len() == 1) {
                items.extend(inside);
            }
        } else if !ignored {
            items.push(Item {
                rel: sub_rel,
                path,
                meta,
                in_dir_source: true,
                archive: false,
            });
        }
    }
    Ok(())
}

/// What ADD unpacks, as buildah judges it: a tar, plain or compressed (gzip, bzip2,
/// zstd; buildah also reads xz, which berth copies as a file), told by its first block
/// after decompression. A compressed file that holds no tar (`data.json.gz`) is copied
/// as it is.
fn is_archive(path: &Path) -> bool {
    // Only a regular file is opened: a FIFO named in ADD waited for a writer for ever.
    if !fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let Ok(mut r) = open_archive(path) else {
        return false;
    };
    let mut block = [0u8; 512];
    r.read_exact(&mut block).is_ok() && is_tar_header(&block)
}

/// The file's bytes decompressed by their first bytes (bzip2 here, the rest as a
/// layer's: gzip, zstd, plain).
fn open_archive(path: &Path) -> std::io::Result<Box<dyn Read + Send>> {
    let mut head = [0u8; 3];
    let n = fs::File::open(path)?.read(&mut head)?;
    let f = fs::File::open(path)?;
    if n == 3 && &head == b"BZh" {
        return Ok(Box::new(bzip2::read::MultiBzDecoder::new(
            std::io::BufReader::new(f),
        )));
    }
    berth_rootfs::decompress(f)
}

/// A tar header block: its checksum (the bytes summed with the checksum field as
/// blanks) is the octal number in that field, as every tar reader checks it.
fn is_tar_header(block: &[u8; 512]) -> bool {
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let Ok(want) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                0x20
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == want
}

impl Found {
    /// What the cache key takes of the content: names, modes, sizes, bytes, link
    /// targets — not times, so a touched file with the same bytes still hits.
    pub fn hash(&self) -> Result<String, String> {
        let mut h = Sha256::new();
        for i in &self.items {
            h.update(i.rel.as_bytes());
            h.update([0]);
            h.update(i.meta.mode().to_le_bytes());
            h.update([u8::from(i.archive), u8::from(i.in_dir_source)]);
            if i.meta.is_file() {
                let mut f =
                    fs::File::open(&i.path).map_err(|e| format!("{}: {e}", i.path.display()))?;
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = f
                        .read(&mut buf)
                        .map_err(|e| format!("{}: {e}", i.path.display()))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            } else if i.meta.file_type().is_symlink() {
                let t = fs::read_link(&i.path).map_err(|e| format!("{}: {e}", i.path.display()))?;
                h.update(t.as_os_str().as_encoded_bytes());
            }
            h.update([0xff]);
        }
        for (name, content) in &self.inline {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(content.as_bytes());
        }
        Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Writes the tar that puts the sources at `dest` (absolute, in the stage's
    /// root file system `rootfs`), owned by `owner`, with `chmod` when given.
    pub fn write_tar(
        &self,
        dest: &str,
        rootfs: &Path,
        owner: (u32, u32),
        chmod: Option<u32>,
        limits: berth_rootfs::TarLimits,
        out: impl Write,
    ) -> Result<(), String> {
        let slash = dest.ends_with('/') || dest.ends_with("/.");
        // A destination that climbs out of the root is an error, not the root.
        let dest = clean(dest).ok_or_else(|| format!("destination {dest} climbs out of /"))?;
        let dest_is_dir = slash
            || self.several
            || dest.is_empty()
            || self.items.iter().any(|i| i.in_dir_source || i.archive)
            || fs::symlink_metadata(rootfs.join(&dest)).is_ok_and(|m| m.is_dir());
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        // Parents the root file system lacks, as root-owned 0755 folders.
        let mut parents = Vec::new();
        let mut p = PathBuf::new();
        let target_parent = match dest_is_dir {
            true => dest.clone(),
            false => Path::new(&dest)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        for c in Path::new(&target_parent).components() {
            p.push(c);
            if fs::symlink_metadata(rootfs.join(&p)).is_err() {
                parents.push(p.clone());
            }
        }
        // A folder source makes the destination itself, with its own mode and time.
        if self
            .items
            .iter()
            .any(|i| i.in_dir_source && i.rel.is_empty())
        {
            parents.retain(|d| d != Path::new(&dest));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for dir in parents {
            let mut h = header(tar::EntryType::Directory, 0o755, owner, 0, now);
            tar.append_data(&mut h, &dir, std::io::empty())
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let place = |rel: &str| -> String {
            match (dest_is_dir, rel.is_empty()) {
                (true, true) => dest.clone(),
                (true, false) if dest.is_empty() => rel.to_string(),
                (true, false) => format!("{dest}/{rel}"),
                (false, _) => dest.clone(),
            }
        };
        for i in &self.items {
            let target = place(&i.rel);
            if target.is_empty() {
                continue;
            }
            let mtime = i.meta.mtime().max(0) as u64;
            let mode = chmod.unwrap_or(i.meta.permissions().mode() & 0o7777);
            if i.archive {
                let parent = target_parent_of(&dest, dest_is_dir);
                unpack_into(&i.path, &parent, limits, &mut tar)?;
            } else if i.meta.is_dir() {
                if i.rel.is_empty() && fs::symlink_metadata(rootfs.join(&target)).is_ok() {
                    continue;
                }
                let mut h = header(tar::EntryType::Directory, mode, owner, 0, mtime);
                tar.append_data(&mut h, &target, std::io::empty())
                    .map_err(|e| format!("{target}: {e}"))?;
            } else if i.meta.file_type().is_symlink() {
                let link =
                    fs::read_link(&i.path).map_err(|e| format!("{}: {e}", i.path.display()))?;
                let mut h = header(tar::EntryType::Symlink, 0o777, owner, 0, mtime);
                tar.append_link(&mut h, &target, &link)
                    .map_err(|e| format!("{target}: {e}"))?;
            } else if i.meta.is_file() {
                let f =
                    fs::File::open(&i.path).map_err(|e| format!("{}: {e}", i.path.display()))?;
                let mut h = header(tar::EntryType::Regular, mode, owner, i.meta.len(), mtime);
                tar.append_data(&mut h, &target, f)
                    .map_err(|e| format!("{target}: {e}"))?;
            }
        }
        for (name, content) in &self.inline {
            let target = match dest_is_dir {
                true => format!("{}/{name}", dest.trim_end_matches('/')),
                false => dest.clone(),
            };
            let mode = chmod.unwrap_or(0o644);
            let mut h = header(
                tar::EntryType::Regular,
                mode,
                owner,
                content.len() as u64,
                0,
            );
            tar.append_data(&mut h, target.trim_start_matches('/'), content.as_bytes())
                .map_err(|e| format!("{target}: {e}"))?;
        }
        tar.into_inner()
            .map_err(|e| format!("writing the copy: {e}"))?;
        Ok(())
    }
}

fn target_parent_of(dest: &str, is_dir: bool) -> String {
    match is_dir {
        true => dest.to_string(),
        false => Path::new(dest)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

fn header(
    kind: tar::EntryType,
    mode: u32,
    owner: (u32, u32),
    size: u64,
    mtime: u64,
) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(owner.0 as u64);
    h.set_gid(owner.1 as u64);
    h.set_size(size);
    h.set_mtime(mtime);
    h
}

/// ADD of a local archive: its entries re-emitted under `dest` (their own owners and
/// modes kept, as docker does); the root file system refuses anything that climbs out.
fn unpack_into<W: Write>(
    archive: &Path,
    dest: &str,
    limits: berth_rootfs::TarLimits,
    tar: &mut tar::Builder<W>,
) -> Result<(), String> {
    let reader = open_archive(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    // berth-rootfs's reader: extension headers applied and bounded, the layer limits in
    // force. Each entry is written again with a fresh header whose size is the data's:
    // the tar crate's own reader took a PAX `size` for the data while its header kept
    // the ustar one, so a re-emitted entry could carry a smuggled header of its own
    // (written outside `dest`, a whiteout, a setuid file).
    let mut input = berth_rootfs::TarReader::with_limits(reader, limits);
    let bad = |e: &dyn std::fmt::Display| format!("{}: {e}", archive.display());
    while let Some(entry) = input.next_entry().map_err(|e| bad(&e))? {
        let name = String::from_utf8_lossy(&entry.name).into_owned();
        let Some(rel) = clean(&name) else {
            return Err(format!("{}: {name} climbs out", archive.display()));
        };
        if rel.is_empty() {
            continue;
        }
        let target = match dest.is_empty() {
            true => rel,
            false => format!("{dest}/{rel}"),
        };
        use berth_rootfs::Kind;
        let kind = match entry.kind {
            Kind::Regular => tar::EntryType::Regular,
            Kind::HardLink => tar::EntryType::Link,
            Kind::Symlink => tar::EntryType::Symlink,
            Kind::Char => tar::EntryType::Char,
            Kind::Block => tar::EntryType::Block,
            Kind::Directory => tar::EntryType::Directory,
            Kind::Fifo => tar::EntryType::Fifo,
            Kind::Other(_) => continue,
        };
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(entry.mode);
        h.set_uid(entry.uid.into());
        h.set_gid(entry.gid.into());
        h.set_mtime(entry.mtime_sec.max(0) as u64);
        if matches!(entry.kind, Kind::Char | Kind::Block) {
            h.set_device_major(entry.dev_major).map_err(|e| bad(&e))?;
            h.set_device_minor(entry.dev_minor).map_err(|e| bad(&e))?;
        }
        match entry.kind {
            Kind::Symlink | Kind::HardLink => {
                let link = String::from_utf8_lossy(&entry.link).into_owned();
                let link = match entry.kind {
                    // A hard link names a path of the same archive: move it along.
                    Kind::HardLink => format!("{dest}/{}", clean(&link).unwrap_or_default()),
                    _ => link,
                };
                h.set_size(0);
                tar.append_link(&mut h, &target, &link)
                    .map_err(|e| bad(&e))?;
            }
            Kind::Regular => {
                h.set_size(entry.size);
                tar.append_data(&mut h, &target, &mut input)
                    .map_err(|e| bad(&e))?;
            }
            _ => {
                h.set_size(0);
                tar.append_data(&mut h, &target, std::io::empty())
                    .map_err(|e| bad(&e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_stay_in_the_context() {
        assert_eq!(clean("a/./b/../c").as_deref(), Some("a/c"));
        assert_eq!(clean("/abs/x").as_deref(), Some("abs/x"));
        assert_eq!(clean("../x"), None);
        assert_eq!(clean("a/../../x"), None);
    }

    /// The relative paths of what `find` found, folders with a trailing `/`.
    fn found(from: &Source, sources: &[&str]) -> Result<Vec<String>, String> {
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let f = find(from, &sources, Vec::new(), false)?;
        Ok(f.items
            .iter()
            .map(|i| match i.meta.is_dir() {
                true => format!("{}/", i.rel),
                false => i.rel.clone(),
            })
            .collect())
    }

    fn tree(root: &Path, files: &[&str]) {
        for f in files {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, f).unwrap();
        }
    }

    /// `COPY . /app/`, `COPY ./ /app/` and `COPY --from=stage / /out/` take the whole
    /// context or root (each was refused as a link out of it); a link to a folder named
    /// as the source is the folder; globs in any component, with classes.
    #[test]
    fn the_whole_context_links_and_globs() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path();
        tree(
            ctx,
            &[
                "a.txt",
                "src/x/package.json",
                "src/y/package.json",
                "f1.txt",
                "fx.txt",
            ],
        );
        std::os::unix::fs::symlink("src/x", ctx.join("current")).unwrap();
        let ignore = Ignore::parse("");
        let from = Source::Context {
            dir: ctx,
            ignore: &ignore,
        };
        let all = found(&from, &["."]).unwrap();
        assert_eq!(all[0], "/");
        assert!(all.contains(&"src/x/package.json".to_string()), "{all:?}");
        assert_eq!(found(&from, &["./"]).unwrap(), all);
        assert_eq!(found(&Source::Rootfs(ctx), &["/"]).unwrap(), all);
        assert_eq!(found(&from, &["current"]).unwrap(), ["/", "package.json"]);
        assert_eq!(
            found(&from, &["src/*/package.json"]).unwrap(),
            ["package.json", "package.json"]
        );
        assert_eq!(found(&from, &["f[0-9].txt"]).unwrap(), ["f1.txt"]);
        assert_eq!(
            found(&from, &["f[!"]).unwrap_err(),
            "f[!: syntax error in pattern"
        );
        assert_eq!(found(&from, &["nope*"]).unwrap_err(), "no such file: nope*");
    }

    /// `.dockerignore` exceptions re-include what is under an excluded folder, named
    /// directly or met on the walk; an excluded folder with nothing re-included is not
    /// there.
    #[test]
    fn exceptions_under_an_excluded_folder() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path();
        tree(
            ctx,
            &[
                "top/docs/README.md",
                "top/docs/other.md",
                "top/keep",
                "junk/x",
            ],
        );
        let ignore = Ignore::parse("top/docs\n!top/docs/README.md\njunk\n");
        let from = Source::Context {
            dir: ctx,
            ignore: &ignore,
        };
        assert_eq!(
            found(&from, &["top"]).unwrap(),
            ["/", "docs/", "docs/README.md", "keep"]
        );
        assert_eq!(found(&from, &["top/docs"]).unwrap(), ["/", "README.md"]);
        assert_eq!(found(&from, &["junk"]).unwrap_err(), "no such file: junk");
        let all = found(&from, &["."]).unwrap();
        assert!(!all.iter().any(|p| p.starts_with("junk")), "{all:?}");
    }

    /// A stage's absolute links name its own files (`/var/run -> /run`), never the
    /// host's.
    #[test]
    fn a_stage_resolves_its_links_inside_itself() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        tree(root, &["real/file", "etc/passwd"]);
        std::os::unix::fs::symlink("/real", root.join("link")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("data")).unwrap();
        std::os::unix::fs::symlink("../../../../real/file", root.join("up")).unwrap();
        let from = Source::Rootfs(root);
        assert_eq!(found(&from, &["/link/file"]).unwrap(), ["file"]);
        assert_eq!(found(&from, &["/up"]).unwrap(), ["up"]);
        let f = find(&from, &["/up".to_string()], Vec::new(), false).unwrap();
        assert_eq!(f.items[0].path, root.join("real/file"));
        assert_eq!(found(&from, &["/data/*"]).unwrap(), ["passwd"]);
        assert_eq!(
            resolve_in(root, "data/passwd").as_deref(),
            Some("etc/passwd")
        );
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(resolve_in(root, "loop"), None);
    }

    /// An archive whose entry's PAX `size` (1024) differs from its header's (0): the
    /// tar crate's reader took the PAX size for the data while the re-emitted header
    /// kept 0, so the data, itself a tar header for `etc/evil`, became an entry of its
    /// own, outside the destination. Now every entry is written again whole, under it.
    #[test]
    fn an_added_archive_cannot_smuggle_an_entry_out() {
        let block = |h: &mut tar::Header| {
            h.set_cksum();
            h.as_bytes().to_vec()
        };
        let mut smuggled = tar::Header::new_ustar();
        smuggled.set_path("etc/evil").unwrap();
        smuggled.set_size(5);
        smuggled.set_mode(0o4755);
        let mut data = block(&mut smuggled);
        data.extend_from_slice(b"evil!");
        data.resize(1024, 0);
        let record = b"13 size=1024\n";
        let mut pax = tar::Header::new_ustar();
        pax.set_path("PaxHeaders/file").unwrap();
        pax.set_entry_type(tar::EntryType::XHeader);
        pax.set_size(record.len() as u64);
        let mut archive = block(&mut pax);
        archive.extend_from_slice(record);
        archive.resize(archive.len().div_ceil(512) * 512, 0);
        let mut file = tar::Header::new_ustar();
        file.set_path("file").unwrap();
        file.set_size(0);
        file.set_mode(0o644);
        archive.extend(block(&mut file));
        archive.extend(&data);
        archive.extend([0u8; 1024]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tar");
        fs::write(&path, &archive).unwrap();

        let mut out = tar::Builder::new(Vec::new());
        unpack_into(
            &path,
            "opt/dest",
            berth_rootfs::TarLimits::default(),
            &mut out,
        )
        .unwrap();
        let layer = out.into_inner().unwrap();
        let mut read = berth_rootfs::TarReader::new(&layer[..]);
        let mut names = Vec::new();
        while let Some(e) = read.next_entry().unwrap() {
            names.push((String::from_utf8_lossy(&e.name).into_owned(), e.size));
        }
        assert_eq!(names, [("opt/dest/file".to_string(), 1024)]);
    }

    /// A link among the folders of a source path leads nowhere out of the context:
    /// `lib -> <outside>` with `COPY lib/secret` read the host's file into the image.
    #[test]
    fn sources_through_a_link_out_of_the_context_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (context, outside) = (dir.path().join("context"), dir.path().join("outside"));
        fs::create_dir_all(context.join("inside")).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), "s").unwrap();
        fs::write(context.join("inside/ok"), "o").unwrap();
        std::os::unix::fs::symlink(&outside, context.join("lib")).unwrap();
        std::os::unix::fs::symlink("inside", context.join("here")).unwrap();
        let ignore = Ignore::parse("");
        let src = Source::Context {
            dir: &context,
            ignore: &ignore,
        };
        for path in ["lib/secret", "lib/*", "lib"] {
            let Err(e) = find(&src, &[path.into()], Vec::new(), false) else {
                panic!("{path}: found");
            };
            assert!(e.contains("out of the build context"), "{path}: {e}");
        }
        // A link that stays inside is followed.
        let found = find(&src, &["here/ok".into()], Vec::new(), false).unwrap();
        assert_eq!(found.items.len(), 1);
    }

    /// A FIFO named in ADD is not an archive, and is not opened (the open waited for
    /// a writer for ever).
    #[test]
    fn a_fifo_is_no_archive() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert!(!is_archive(&fifo));
    }

    /// A tar plain or compressed (gzip, bzip2, zstd) is unpacked; a compressed file
    /// holding no tar, or anything else, is a file.
    #[test]
    fn archives_by_their_first_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_old();
        h.set_size(2);
        h.set_cksum();
        tar.append_data(&mut h, "f", &b"hi"[..]).unwrap();
        let tar = tar.into_inner().unwrap();
        let gzip = |data: &[u8]| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, data).unwrap();
            gz.finish().unwrap()
        };
        let bzip = |data: &[u8]| {
            let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            std::io::Write::write_all(&mut bz, data).unwrap();
            bz.finish().unwrap()
        };
        for (name, bytes, unpacked) in [
            ("plain.tar", tar.clone(), true),
            ("a.tar.gz", gzip(&tar), true),
            ("b.tar.bz2", bzip(&tar), true),
            ("c.tar.zst", zstd::encode_all(&tar[..], 1).unwrap(), true),
            ("data.json.gz", gzip(b"{\"not\": \"a tar\"}"), false),
            ("short.gz", gzip(b"x"), false),
            ("text", b"just text".to_vec(), false),
        ] {
            let p = dir.path().join(name);
            fs::write(&p, bytes).unwrap();
            assert_eq!(is_archive(&p), unpacked, "{name}");
        }
    }

    #[test]
    fn found_sources_and_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/a.txt"), "a").unwrap();
        fs::write(dir.path().join("d/b.log"), "b").unwrap();
        fs::write(dir.path().join("top.py"), "p").unwrap();
        let ignore = Ignore::parse("**/*.log\n");
        let src = Source::Context {
            dir: dir.path(),
            ignore: &ignore,
        };
        let found = find(&src, &["d".into(), "*.py".into()], Vec::new(), false).unwrap();
        let names: Vec<&str> = found.items.iter().map(|i| i.rel.as_str()).collect();
        assert_eq!(
            names,
            ["", "a.txt", "top.py"],
            "the ignored file is left out"
        );
        let before = found.hash().unwrap();
        // A new time, same bytes: same hash; new bytes: a new one.
        fs::write(dir.path().join("top.py"), "p").unwrap();
        let again = find(&src, &["d".into(), "*.py".into()], Vec::new(), false).unwrap();
        assert_eq!(again.hash().unwrap(), before);
        fs::write(dir.path().join("top.py"), "q").unwrap();
        let changed = find(&src, &["d".into(), "*.py".into()], Vec::new(), false).unwrap();
        assert_ne!(changed.hash().unwrap(), before);
        let missing = find(&src, &["nope.txt".into()], Vec::new(), false);
        assert_eq!(missing.err().as_deref(), Some("no such file: nope.txt"));
        let outside = find(&src, &["../etc/passwd".into()], Vec::new(), false);
        assert!(outside.is_err());
    }
}
