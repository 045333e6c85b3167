//! Unpacking tar archives — image layers and workloads' `code_archive`s — with one set of
//! rules, so that nothing an archive says can reach outside its root:
//!
//! - an entry whose path climbs out with `..` is refused;
//! - nothing is ever written through a symbolic link (a link `etc -> /etc` followed by
//!   `etc/passwd` is refused), so a link can never redirect a write to the host;
//! - a symbolic link whose target climbs above the root (`../../..`, or an absolute target
//!   with `..` above `/`) is refused; other absolute targets are kept, since they resolve
//!   inside the sandbox's root;
//! - hard links must name an entry already inside the root;
//! - device nodes and FIFOs are skipped (the sandbox supplies `/dev`);
//! - the bytes written are bounded by a budget, checked before each file is written;
//! - whiteouts (`.wh.name` deletes `name`, `.wh..wh..opq` empties the directory) apply only
//!   where the rules say so: image layers, as the OCI image spec describes.
//!
//! [`unpack`] writes; [`check`] applies the same rules to an archive without writing
//! anything (the microvm host checks an archive before it spends a VM on it).

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// A gzipped tar holding one file, `name`, with `mode` (a built program for a backend
/// that takes a `code_archive`).
pub fn pack_file(name: &str, bytes: &[u8], mode: u32) -> io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, bytes)?;
    builder.into_inner()?.finish()
}

/// The most a workload's `code_archive` may unpack to, on every backend.
pub const CODE_ARCHIVE_BUDGET: u64 = 256 * 1024 * 1024;

/// What an archive is and how much it may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// What the root is called in refusals ("the image root", "the work directory").
    pub root_name: &'static str,
    /// Apply OCI whiteouts (image layers) instead of unpacking them as files.
    pub whiteouts: bool,
    /// Most bytes of file content the archive may write.
    pub budget: u64,
}

impl Rules {
    /// An OCI image layer: whiteouts apply.
    pub fn layer(budget: u64) -> Rules {
        Rules {
            root_name: "the image root",
            whiteouts: true,
            budget,
        }
    }

    /// A workload's `code_archive`, unpacked into its work directory.
    pub fn code_archive() -> Rules {
        Rules {
            root_name: "the work directory",
            whiteouts: false,
            budget: CODE_ARCHIVE_BUDGET,
        }
    }
}

/// Why an archive could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The archive breaks the rules above; the message names the entry.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Io(String),
}

fn io_err(what: &str, path: &Path, e: io::Error) -> UnpackError {
    UnpackError::Io(format!("cannot {what} {}: {e}", path.display()))
}

/// The relative path of an entry inside the root, or a refusal.
fn sanitize(raw: &Path, rules: &Rules) -> Result<PathBuf, UnpackError> {
    let mut out = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(UnpackError::Refused(format!(
                    "entry {} escapes {}",
                    raw.display(),
                    rules.root_name
                )))
            }
        }
    }
    Ok(out)
}

/// Whether a link placed at `entry` with `target` stays inside the root.
fn link_stays_inside(entry: &Path, target: &Path) -> bool {
    let mut depth: usize = if target.is_absolute() {
        0
    } else {
        entry.components().count().saturating_sub(1)
    };
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            _ => {}
        }
    }
    true
}

/// Makes sure every directory above `rel` exists inside `root` and none is a link.
fn prepare_parents(root: &Path, rel: &Path) -> Result<(), UnpackError> {
    let mut current = root.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    for component in parent.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(through_link(
                    rel,
                    current.strip_prefix(root).unwrap_or(&current),
                ))
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => fs::remove_file(&current)
                .and_then(|_| fs::create_dir(&current))
                .map_err(|e| io_err("replace with a directory", &current, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&current).map_err(|e| io_err("create", &current, e))?
            }
            Err(e) => return Err(io_err("inspect", &current, e)),
        }
    }
    Ok(())
}

fn through_link(rel: &Path, link: &Path) -> UnpackError {
    UnpackError::Refused(format!(
        "entry {} would be written through the symbolic link {}",
        rel.display(),
        link.display()
    ))
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The archive's entries, gzip-compressed or plain tar.
fn open<'a>(reader: impl Read + 'a) -> Result<tar::Archive<Box<dyn Read + 'a>>, UnpackError> {
    let mut buffered = BufReader::new(reader);
    let magic = buffered
        .fill_buf()
        .map_err(|e| UnpackError::Io(format!("cannot read the archive: {e}")))?;
    let reader: Box<dyn Read + 'a> = match magic {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(buffered)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            return Err(UnpackError::Refused(
                "zstd-compressed archives are not supported; use gzip".into(),
            ))
        }
        _ => Box::new(buffered),
    };
    Ok(tar::Archive::new(reader))
}

/// One entry, as the rules see it.
struct Entry {
    rel: PathBuf,
    kind: tar::EntryType,
    link: Option<PathBuf>,
    size: u64,
}

/// Reads the next entry's facts and applies the checks that need no filesystem.
fn inspect<R: Read>(
    entry: &tar::Entry<'_, R>,
    rules: &Rules,
    written: &mut u64,
) -> Result<Entry, UnpackError> {
    let raw = entry
        .path()
        .map_err(|e| UnpackError::Io(format!("an entry has an unreadable path: {e}")))?
        .into_owned();
    let rel = sanitize(&raw, rules)?;
    let kind = entry.header().entry_type();
    let link = entry.link_name().ok().flatten().map(|l| l.into_owned());
    let size = entry.size();
    use tar::EntryType as T;
    match kind {
        T::Regular | T::Continuous | T::GNUSparse => {
            *written = written.saturating_add(size);
            if *written > rules.budget {
                return Err(UnpackError::Refused(format!(
                    "the archive unpacks to more than {} bytes",
                    rules.budget
                )));
            }
        }
        T::Symlink => {
            let target = link.as_deref().ok_or_else(|| {
                UnpackError::Refused(format!("symbolic link {} has no target", rel.display()))
            })?;
            if !link_stays_inside(&rel, target) {
                return Err(UnpackError::Refused(format!(
                    "symbolic link {} -> {} points outside {}",
                    rel.display(),
                    target.display(),
                    rules.root_name
                )));
            }
        }
        T::Link if link.is_none() => {
            return Err(UnpackError::Refused(format!(
                "hard link {} has no target",
                rel.display()
            )))
        }
        _ => {}
    }
    Ok(Entry {
        rel,
        kind,
        link,
        size,
    })
}

/// Unpacks an archive (a tar stream, gzip-compressed or not) into `root` under `rules`.
/// Returns the bytes written.
pub fn unpack(root: &Path, archive: impl Read, rules: Rules) -> Result<u64, UnpackError> {
    each_entry(archive, rules, |entry, facts| {
        let rel = facts.rel;
        prepare_parents(root, &rel)?;
        let target = root.join(&rel);
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default();

        if rules.whiteouts && name == ".wh..wh..opq" {
            let dir = target.parent().unwrap_or(root);
            if let Ok(children) = fs::read_dir(dir) {
                for child in children.flatten() {
                    remove_any(&child.path()).map_err(|e| io_err("remove", &child.path(), e))?;
                }
            }
            return Ok(());
        }
        if let Some(hidden) = name.strip_prefix(".wh.").filter(|_| rules.whiteouts) {
            let victim = target.with_file_name(hidden);
            remove_any(&victim).map_err(|e| io_err("remove", &victim, e))?;
            return Ok(());
        }

        let header = entry.header();
        let kind = facts.kind;
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let (uid, gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
        let mtime = header
            .mtime()
            .ok()
            .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s));
        let existing = fs::symlink_metadata(&target).ok();
        if !(kind.is_dir() && existing.as_ref().is_some_and(|m| m.is_dir())) && existing.is_some() {
            remove_any(&target).map_err(|e| io_err("replace", &target, e))?;
        }
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                if !target.is_dir() {
                    fs::create_dir(&target).map_err(|e| io_err("create", &target, e))?;
                }
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                let mut file =
                    fs::File::create(&target).map_err(|e| io_err("create", &target, e))?;
                // Never more than the header promised (and the budget allowed).
                io::copy(&mut entry.take(facts.size), &mut file)
                    .map_err(|e| io_err("write", &target, e))?;
                // The archive's time, kept: python trusts a compiled `.pyc` only while its
                // source has the time recorded in it (else it compiles the module again, at
                // every import where it cannot write the cache).
                if let Some(mtime) = mtime {
                    file.set_modified(mtime)
                        .map_err(|e| io_err("set the time of", &target, e))?;
                }
            }
            T::Symlink => {
                let link = facts.link.unwrap_or_default();
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|e| io_err("create the link", &target, e))?;
            }
            T::Link => {
                let link = facts.link.unwrap_or_default();
                let source_rel = sanitize(&link, &rules)?;
                prepare_parents(root, &source_rel)?;
                let source = root.join(&source_rel);
                if fs::symlink_metadata(&source).is_err() {
                    return Err(missing_link_target(&rel, &link, &rules));
                }
                fs::hard_link(&source, &target)
                    .map_err(|e| io_err("create the link", &target, e))?;
                return Ok(());
            }
            _ => return Ok(()),
        }
        let _ = std::os::unix::fs::lchown(&target, Some(uid as u32), Some(gid as u32));
        if !kind.is_symlink() {
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(|e| io_err("set the mode of", &target, e))?;
        }
        Ok(())
    })
}

fn missing_link_target(rel: &Path, link: &Path, rules: &Rules) -> UnpackError {
    UnpackError::Refused(format!(
        "hard link {} names {}, which is not in {}",
        rel.display(),
        link.display(),
        rules.root_name
    ))
}

/// Applies [`unpack`]'s rules to an archive without writing anything: every entry is read
/// (and decompressed), so a malformed archive or one over its budget is found here too.
/// Returns the bytes it would write.
pub fn check(archive: impl Read, rules: Rules) -> Result<u64, UnpackError> {
    // What earlier entries made: links (never written through) and everything else (what
    // a hard link may name).
    let mut links: HashSet<PathBuf> = HashSet::new();
    let mut present: HashSet<PathBuf> = HashSet::new();
    each_entry(archive, rules, |entry, facts| {
        let rel = facts.rel;
        if let Some(link) = rel.ancestors().skip(1).find(|a| links.contains(*a)) {
            return Err(through_link(&rel, link));
        }
        if facts.kind == tar::EntryType::Link {
            let link = facts.link.unwrap_or_default();
            let source = sanitize(&link, &rules)?;
            if !present.contains(&source) {
                return Err(missing_link_target(&rel, &link, &rules));
            }
        }
        // Reading the content proves it decompresses, within what the header said.
        io::copy(&mut entry.take(facts.size), &mut io::sink())
            .map_err(|e| UnpackError::Io(format!("cannot read {}: {e}", rel.display())))?;
        links.remove(&rel);
        if facts.kind.is_symlink() {
            links.insert(rel.clone());
        }
        present.insert(rel);
        Ok(())
    })
}

/// Reads every entry of an archive, applies the checks that need no filesystem, and hands
/// each one with a path to `visit`. Returns the bytes of content the entries hold.
fn each_entry(
    archive: impl Read,
    rules: Rules,
    mut visit: impl FnMut(&mut tar::Entry<'_, Box<dyn Read + '_>>, Entry) -> Result<(), UnpackError>,
) -> Result<u64, UnpackError> {
    let mut archive = open(archive)?;
    let mut written: u64 = 0;
    let entries = archive
        .entries()
        .map_err(|e| UnpackError::Io(format!("the archive is not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry
            .map_err(|e| UnpackError::Io(format!("the archive is not a valid tar archive: {e}")))?;
        let facts = inspect(&entry, &rules, &mut written)?;
        if !facts.rel.as_os_str().is_empty() {
            visit(&mut entry, facts)?;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    enum E<'a> {
        File(&'a str, &'a [u8]),
        Dir(&'a str),
        Sym(&'a str, &'a str),
        Hard(&'a str, &'a str),
    }

    /// The time every test entry has.
    const MTIME: u64 = 1_600_000_000;

    /// A real tar archive built with the `tar` crate; raw names bypass its path checks.
    fn layer(entries: &[E]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            let (name, kind, data, link): (&str, tar::EntryType, &[u8], Option<&str>) = match e {
                E::File(n, d) => (n, tar::EntryType::Regular, d, None),
                E::Dir(n) => (n, tar::EntryType::Directory, b"", None),
                E::Sym(n, t) => (n, tar::EntryType::Symlink, b"", Some(t)),
                E::Hard(n, t) => (n, tar::EntryType::Link, b"", Some(t)),
            };
            let raw = h.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(t) = link {
                raw.linkname[..t.len()].copy_from_slice(t.as_bytes());
            }
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            h.set_mtime(MTIME);
            h.set_cksum();
            builder.append(&h, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn root() -> tempdir::Dir {
        tempdir::Dir::new()
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p =
                    std::env::temp_dir().join(format!("vulcan-unpack-{}-{n}", std::process::id()));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn layers_stack_and_whiteouts_delete() {
        let r = root();
        let base = layer(&[
            E::Dir("etc/"),
            E::File("etc/a", b"a"),
            E::File("etc/b", b"b"),
            E::Dir("var/"),
            E::File("var/x", b"x"),
            E::Sym("bin/sh", "/bin/busybox"),
            E::Hard("etc/a2", "etc/a"),
        ]);
        unpack(&r.0, &base[..], Rules::layer(1 << 20)).unwrap();
        let top = layer(&[
            E::File("etc/.wh.b", b""),
            E::File("var/.wh..wh..opq", b""),
            E::File("var/y", b"y"),
            E::File("etc/a", b"new"),
        ]);
        unpack(&r.0, &top[..], Rules::layer(1 << 20)).unwrap();
        assert_eq!(fs::read(r.0.join("etc/a")).unwrap(), b"new");
        assert_eq!(
            fs::read(r.0.join("etc/a2")).unwrap(),
            b"a",
            "hard link kept the old inode"
        );
        assert!(!r.0.join("etc/b").exists());
        assert!(!r.0.join("var/x").exists());
        assert_eq!(fs::read(r.0.join("var/y")).unwrap(), b"y");
        let mtime = fs::metadata(r.0.join("var/y")).unwrap().modified().unwrap();
        assert_eq!(
            mtime,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(MTIME),
            "a file keeps the archive's time"
        );
        assert_eq!(
            fs::read_link(r.0.join("bin/sh")).unwrap(),
            Path::new("/bin/busybox")
        );
    }

    #[test]
    fn gzip_layers_are_read() {
        use std::io::Write;
        let r = root();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&layer(&[E::File("hello", b"world")])).unwrap();
        unpack(&r.0, &gz.finish().unwrap()[..], Rules::layer(1 << 20)).unwrap();
        assert_eq!(fs::read(r.0.join("hello")).unwrap(), b"world");
    }

    /// The refusal of both `unpack` and `check`, which must agree.
    fn refused(entries: &[E]) -> String {
        let r = root();
        let rules = Rules::layer(1 << 20);
        let written = match unpack(&r.0, &layer(entries)[..], rules) {
            Err(UnpackError::Refused(msg)) => msg,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let checked = match check(&layer(entries)[..], rules) {
            Err(UnpackError::Refused(msg)) => msg,
            other => panic!("check let through what unpack refused ({written}): {other:?}"),
        };
        assert_eq!(written, checked, "unpack and check say the same");
        written
    }

    #[test]
    fn escapes_are_refused() {
        assert!(refused(&[E::File("../evil", b"x")]).contains("escapes the image root"));
        assert!(refused(&[E::File("a/../../evil", b"x")]).contains("escapes"));
        assert!(
            refused(&[E::Sym("etc", "/etc"), E::File("etc/passwd", b"x")])
                .contains("through the symbolic link etc")
        );
        assert!(refused(&[E::Sym("a/link", "../../../etc")]).contains("points outside"));
        assert!(refused(&[E::Sym("link", "/../etc")]).contains("points outside"));
        assert!(refused(&[E::Hard("x", "../etc/passwd")]).contains("escapes"));
        assert!(refused(&[E::Hard("x", "missing")]).contains("not in the image root"));
    }

    #[test]
    fn check_accepts_what_unpack_accepts() {
        let good = layer(&[
            E::Dir("src/"),
            E::File("src/main.py", b"print(1)"),
            E::Sym("link", "src/main.py"),
            E::Hard("copy", "src/main.py"),
        ]);
        let r = root();
        let rules = Rules::code_archive();
        assert_eq!(check(&good[..], rules).unwrap(), 8);
        assert_eq!(unpack(&r.0, &good[..], rules).unwrap(), 8);
        assert_eq!(fs::read(r.0.join("copy")).unwrap(), b"print(1)");
    }

    #[test]
    fn code_archives_name_their_root_and_keep_whiteout_names_as_files() {
        let r = root();
        let rules = Rules::code_archive();
        let msg = unpack(&r.0, &layer(&[E::File("../x", b"")])[..], rules).unwrap_err();
        assert!(
            msg.to_string().contains("escapes the work directory"),
            "{msg}"
        );
        unpack(&r.0, &layer(&[E::File(".wh.keep", b"k")])[..], rules).unwrap();
        assert_eq!(fs::read(r.0.join(".wh.keep")).unwrap(), b"k");
    }

    #[test]
    fn a_symlink_inside_is_fine_and_whiteouts_never_leave_the_root() {
        let r = root();
        let rules = Rules::layer(1 << 20);
        unpack(&r.0, &layer(&[E::Sym("a/b", "../c")])[..], rules).unwrap();
        let outside = r.0.parent().unwrap().join("vulcan-unpack-sentinel");
        fs::write(&outside, "keep").unwrap();
        let msg = match unpack(
            &r.0,
            &layer(&[E::File("../.wh.vulcan-unpack-sentinel", b"")])[..],
            rules,
        ) {
            Err(UnpackError::Refused(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(msg.contains("escapes"));
        assert!(outside.exists());
        let _ = fs::remove_file(outside);
    }

    #[test]
    fn the_size_budget_holds_for_unpack_and_check() {
        let r = root();
        let big = vec![0u8; 4096];
        let archive = layer(&[E::File("big", &big)]);
        let err = unpack(&r.0, &archive[..], Rules::layer(1000)).unwrap_err();
        assert!(err.to_string().contains("more than 1000 bytes"));
        assert!(!r.0.join("big").exists(), "refused before it was written");
        let err = check(&archive[..], Rules::layer(1000)).unwrap_err();
        assert!(err.to_string().contains("more than 1000 bytes"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let r = root();
        let junk = [0x1f, 0x8b, 1, 2, 3, 4, 5];
        assert!(unpack(&r.0, &junk[..], Rules::code_archive()).is_err());
        assert!(check(&junk[..], Rules::code_archive()).is_err());
    }
}
