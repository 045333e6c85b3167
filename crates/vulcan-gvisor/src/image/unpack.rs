//! Applies image layers to a root filesystem, the way the OCI image spec describes:
//! in order, with whiteouts (`.wh.name` deletes `name`, `.wh..wh..opq` empties the
//! directory), and never outside the root:
//!
//! - an entry whose path climbs out with `..` is refused;
//! - nothing is ever written through a symbolic link (a link `etc -> /etc` followed by
//!   `etc/passwd` is refused), so a link can never redirect a write to the host;
//! - a symbolic link whose target climbs above the image root (`../../..`, or an absolute
//!   target with `..` above `/`) is refused; other absolute targets are kept, since they
//!   resolve inside the sandbox's root;
//! - hard links must name an entry inside the root;
//! - device nodes and FIFOs are skipped (the sandbox supplies `/dev`).

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The layer breaks the rules above; the message names the entry.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Io(String),
}

fn io_err(what: &str, path: &Path, e: io::Error) -> UnpackError {
    UnpackError::Io(format!("cannot {what} {}: {e}", path.display()))
}

/// The relative path of an entry inside the root, or a refusal.
fn sanitize(raw: &Path) -> Result<PathBuf, UnpackError> {
    let mut out = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(UnpackError::Refused(format!(
                    "layer entry {} escapes the image root",
                    raw.display()
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
                return Err(UnpackError::Refused(format!(
                    "layer entry {} would be written through the symbolic link {}",
                    rel.display(),
                    current.strip_prefix(root).unwrap_or(&current).display()
                )))
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

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Applies one layer (a tar stream, gzip-compressed or not) on top of `root`. Returns the
/// bytes written; fails once more than `budget` bytes would be.
pub fn apply_layer(root: &Path, layer: impl Read, budget: u64) -> Result<u64, UnpackError> {
    let mut buffered = BufReader::new(layer);
    let magic = buffered
        .fill_buf()
        .map_err(|e| UnpackError::Io(format!("cannot read the layer: {e}")))?;
    let reader: Box<dyn Read> = match magic {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(buffered)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            return Err(UnpackError::Refused(
                "zstd-compressed layers are not supported; push the image with gzip layers".into(),
            ))
        }
        _ => Box::new(buffered),
    };
    let mut archive = tar::Archive::new(reader);
    let mut written: u64 = 0;
    let entries = archive
        .entries()
        .map_err(|e| UnpackError::Io(format!("the layer is not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry
            .map_err(|e| UnpackError::Io(format!("the layer is not a valid tar archive: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| UnpackError::Io(format!("a layer entry has an unreadable path: {e}")))?
            .into_owned();
        let rel = sanitize(&raw)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        prepare_parents(root, &rel)?;
        let target = root.join(&rel);
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default();

        if name == ".wh..wh..opq" {
            let dir = target.parent().unwrap_or(root);
            if let Ok(children) = fs::read_dir(dir) {
                for child in children.flatten() {
                    remove_any(&child.path()).map_err(|e| io_err("remove", &child.path(), e))?;
                }
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let victim = target.with_file_name(hidden);
            remove_any(&victim).map_err(|e| io_err("remove", &victim, e))?;
            continue;
        }

        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let (uid, gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
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
                let size = entry.size();
                written = written.saturating_add(size);
                if written > budget {
                    return Err(UnpackError::Refused(format!(
                        "the image unpacks to more than {budget} bytes"
                    )));
                }
                let mut file =
                    fs::File::create(&target).map_err(|e| io_err("create", &target, e))?;
                io::copy(&mut entry, &mut file).map_err(|e| io_err("write", &target, e))?;
            }
            T::Symlink => {
                let link = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .ok_or_else(|| {
                        UnpackError::Refused(format!(
                            "symbolic link {} has no target",
                            rel.display()
                        ))
                    })?
                    .into_owned();
                if !link_stays_inside(&rel, &link) {
                    return Err(UnpackError::Refused(format!(
                        "symbolic link {} -> {} points outside the image root",
                        rel.display(),
                        link.display()
                    )));
                }
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|e| io_err("create the link", &target, e))?;
            }
            T::Link => {
                let link = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .ok_or_else(|| {
                        UnpackError::Refused(format!("hard link {} has no target", rel.display()))
                    })?
                    .into_owned();
                let source_rel = sanitize(&link)?;
                prepare_parents(root, &source_rel)?;
                let source = root.join(&source_rel);
                if fs::symlink_metadata(&source).is_err() {
                    return Err(UnpackError::Refused(format!(
                        "hard link {} names {}, which is not in the image",
                        rel.display(),
                        link.display()
                    )));
                }
                fs::hard_link(&source, &target)
                    .map_err(|e| io_err("create the link", &target, e))?;
                continue;
            }
            _ => continue,
        }
        let _ = std::os::unix::fs::lchown(&target, Some(uid as u32), Some(gid as u32));
        if !kind.is_symlink() {
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(|e| io_err("set the mode of", &target, e))?;
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
        apply_layer(&r.0, &base[..], 1 << 20).unwrap();
        let top = layer(&[
            E::File("etc/.wh.b", b""),
            E::File("var/.wh..wh..opq", b""),
            E::File("var/y", b"y"),
            E::File("etc/a", b"new"),
        ]);
        apply_layer(&r.0, &top[..], 1 << 20).unwrap();
        assert_eq!(fs::read(r.0.join("etc/a")).unwrap(), b"new");
        assert_eq!(
            fs::read(r.0.join("etc/a2")).unwrap(),
            b"a",
            "hard link kept the old inode"
        );
        assert!(!r.0.join("etc/b").exists());
        assert!(!r.0.join("var/x").exists());
        assert_eq!(fs::read(r.0.join("var/y")).unwrap(), b"y");
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
        apply_layer(&r.0, &gz.finish().unwrap()[..], 1 << 20).unwrap();
        assert_eq!(fs::read(r.0.join("hello")).unwrap(), b"world");
    }

    fn refused(entries: &[E]) -> String {
        let r = root();
        match apply_layer(&r.0, &layer(entries)[..], 1 << 20) {
            Err(UnpackError::Refused(msg)) => msg,
            other => panic!("expected a refusal, got {other:?}"),
        }
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
        assert!(refused(&[E::Hard("x", "missing")]).contains("not in the image"));
    }

    #[test]
    fn a_symlink_inside_is_fine_and_whiteouts_never_leave_the_root() {
        let r = root();
        apply_layer(&r.0, &layer(&[E::Sym("a/b", "../c")])[..], 1 << 20).unwrap();
        let outside = r.0.parent().unwrap().join("vulcan-unpack-sentinel");
        fs::write(&outside, "keep").unwrap();
        let msg = match apply_layer(
            &r.0,
            &layer(&[E::File("../.wh.vulcan-unpack-sentinel", b"")])[..],
            1 << 20,
        ) {
            Err(UnpackError::Refused(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(msg.contains("escapes"));
        assert!(outside.exists());
        let _ = fs::remove_file(outside);
    }

    #[test]
    fn the_size_budget_holds() {
        let r = root();
        let big = vec![0u8; 4096];
        let err = apply_layer(&r.0, &layer(&[E::File("big", &big)])[..], 1000).unwrap_err();
        assert!(err.to_string().contains("more than 1000 bytes"));
    }
}
