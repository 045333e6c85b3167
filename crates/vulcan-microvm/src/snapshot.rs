//! Snapshots of booted guests: one per shape (runtime, memory, vCPUs), the whole VM saved
//! once its agent is Ready (and its interpreter's files are in the page cache), so a
//! workload's VM is restored in a fraction of a boot.
//!
//! On disk, under the snapshot directory: `<runtime>-<mem>m-<cpus>c-<key>/` holding `memory`
//! (the guest's RAM: the snapshotted VM ran with its RAM in this file, sparse where the
//! guest never wrote), `state` (QEMU's migration stream of everything else, some tens of KB)
//! and `meta.json` (the shape, both files' SHA-256 and the state's size, the digest of what
//! the guest was made of, the agent's Ready). A restored VM maps `memory` copy-on-write: a
//! restore reads only the pages its guest touches, and its clones share them in the page
//! cache. A snapshot's files are never written again once in place (a new one is a new
//! directory), so a mapping never sees another VM's writes. The key hashes the shape with
//! the digests of the kernel, initramfs (so the agent), root filesystem, QEMU's version,
//! the accelerator and the kernel command line: any change makes a new key, and snapshots
//! of other keys are removed as stale. A snapshot is written under a `.partial-` name and
//! renamed when complete; partial directories a crash left are removed at start. Before
//! its first restore in a process, a snapshot's state is checked against its digest (again
//! whenever the file changes); one that fails is removed, never loaded.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vulcan_agent::Ready;

/// What a snapshot is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape {
    pub runtime: vulcan_domain::Runtime,
    /// The guest's memory (the workload's and the guest's own), MiB.
    pub mem_mb: u32,
    pub cpus: u32,
    /// Whether the VM has a NIC (for workloads with a network; each restored VM attaches it
    /// to its own sandbox's tap).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nic: bool,
    /// The template whose root the VM has ([`crate::templates`]); none: the runtime's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<u64>,
    /// A sandbox's VM: its own disk of this size, empty (a copy of the snapshot's
    /// `disk.img` for each VM restored from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_disk_mb: Option<u32>,
}

/// The empty disk a sandbox snapshot's VM was booted with.
pub const DATA_DISK: &str = "disk.img";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub shape: Shape,
    /// Hex SHA-256 of `state`.
    pub sha256: String,
    /// Hex SHA-256 of `memory`'s data ([`sha256_sparse`]).
    pub memory_sha256: String,
    pub size_bytes: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    /// The digest of what the guest was made of (see the module's text).
    pub assets: String,
    pub ready: Ready,
}

/// The file a snapshot's guest RAM is in.
pub const MEMORY: &str = "memory";

/// A snapshot found valid: its files and what it is.
#[derive(Debug, Clone)]
pub struct Found {
    pub state: PathBuf,
    pub memory: PathBuf,
    pub meta: Meta,
    pub name: String,
}

/// Identity of a file's content as far as the file system tells: (device, inode, size,
/// mtime in ns). A digest checked for one identity holds until it changes.
type FileId = (u64, u64, u64, i128);

fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    ))
}

/// The identities of a snapshot's state and memory files.
fn files_id(state: &Path, memory: &Path) -> Option<(FileId, FileId)> {
    Some((file_id(state)?, file_id(memory)?))
}

/// Hex SHA-256 of a file's content.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// The extents of `file` that hold data (`SEEK_DATA` to `SEEK_HOLE`), as (offset, end).
fn data_extents(file: &std::fs::File) -> std::io::Result<Vec<(i64, i64)>> {
    use std::os::fd::AsRawFd;
    let len = file.metadata()?.len() as i64;
    let mut extents = Vec::new();
    let mut at: i64 = 0;
    while at < len {
        // SAFETY: lseek on a file the caller holds open.
        let data = unsafe { libc::lseek(file.as_raw_fd(), at, libc::SEEK_DATA) };
        if data < 0 {
            // ENXIO: no data past `at`.
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(file.as_raw_fd(), data, libc::SEEK_HOLE) };
        let end = if hole < 0 { len } else { hole };
        extents.push((data, end));
        at = end;
    }
    Ok(extents)
}

/// Hex SHA-256 of a sparse file's data: each extent that holds data (`SEEK_DATA` to
/// `SEEK_HOLE`) as its offset, length and bytes. A guest's RAM file is hundreds of MB of
/// which the guest wrote a fraction; the holes read as zeros and need no reading.
pub fn sha256_sparse(path: &Path) -> std::io::Result<String> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len() as i64;
    let mut hasher = Sha256::new();
    hasher.update(len.to_le_bytes());
    let mut buf = vec![0u8; 1 << 20];
    for (data, end) in data_extents(&file)? {
        hasher.update(data.to_le_bytes());
        hasher.update((end - data).to_le_bytes());
        file.seek(SeekFrom::Start(data as u64))?;
        let mut left = (end - data) as usize;
        while left > 0 {
            let n = file.read(&mut buf[..left.min(1 << 20)])?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            left -= n;
        }
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Copies `from` to a new file `to` of the same size, its holes left holes: a guest's RAM
/// file or an empty disk costs what it holds, not its size.
pub fn copy_sparse(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let source = std::fs::File::open(from)?;
    let target = std::fs::File::create(to)?;
    target.set_len(source.metadata()?.len())?;
    for (data, end) in data_extents(&source)? {
        let (mut from_at, mut to_at) = (data, data);
        while from_at < end {
            // SAFETY: both descriptors are open; the offsets are ours, updated by the call.
            let n = unsafe {
                libc::copy_file_range(
                    source.as_raw_fd(),
                    &mut from_at,
                    target.as_raw_fd(),
                    &mut to_at,
                    (end - from_at) as usize,
                    0,
                )
            };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if n == 0 {
                break;
            }
        }
    }
    Ok(())
}

/// The digest of a guest's make-up: its files' digests and the VMM's settings. A large
/// file's digest is remembered in `cache` beside its identity, so a restart does not
/// read the root filesystem again.
pub fn assets_digest(files: &[&Path], settings: &str, cache: &Path) -> Result<String, String> {
    let mut remembered: HashMap<String, (FileId, String)> = std::fs::read(cache)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut hasher = Sha256::new();
    for file in files {
        let key = file.to_string_lossy().into_owned();
        let id = file_id(file).ok_or_else(|| format!("cannot read {}", file.display()))?;
        let digest = match remembered.get(&key) {
            Some((known, digest)) if *known == id => digest.clone(),
            _ => {
                let digest = sha256_file(file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                remembered.insert(key.clone(), (id, digest.clone()));
                digest
            }
        };
        hasher.update(key.as_bytes());
        hasher.update(digest.as_bytes());
    }
    hasher.update(settings.as_bytes());
    if let Ok(bytes) = serde_json::to_vec(&remembered) {
        let _ = write_atomically(cache, &bytes);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Snapshots kept at most (each is 100+ MB): every new shape (another `mem_mb`) makes one,
/// and the least recently used goes past this.
pub const MAX_SNAPSHOTS: usize = 8;

pub struct Snapshots {
    pub dir: PathBuf,
    assets: String,
    /// Snapshots whose state matched its digest, by name, as of that file identity.
    verified: Mutex<HashMap<String, (FileId, FileId)>>,
    /// When each snapshot was last found for a restore, in this process.
    used: Mutex<HashMap<String, std::time::Instant>>,
    limit: usize,
}

impl Snapshots {
    /// Opens (and makes) the directory: removes what a crash left half-written and the
    /// snapshots of other assets.
    pub fn open(dir: PathBuf, assets: String) -> Result<Snapshots, String> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                if !path.is_dir() {
                    continue;
                }
                let current = read_meta(&path).map(|m| m.assets == assets);
                let stale = name.contains(".partial-") || current != Some(true);
                if stale {
                    tracing::info!(snapshot = %name, "removing a partial or stale snapshot");
                    let _ = std::fs::remove_dir_all(&path);
                }
            }
        }
        Ok(Snapshots {
            dir,
            assets,
            verified: Mutex::new(HashMap::new()),
            used: Mutex::new(HashMap::new()),
            limit: MAX_SNAPSHOTS,
        })
    }

    /// Keeps at most `limit` snapshots.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit.max(1);
        self
    }

    /// Removes the least recently used snapshots until `room` more fit under the limit
    /// (never used in this process counts as oldest, then by creation).
    fn make_room(&self, room: usize) {
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut kept: Vec<(
            Option<std::time::Instant>,
            time::OffsetDateTime,
            PathBuf,
            String,
        )> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.contains(".partial-") {
                    return None;
                }
                let meta = read_meta(&e.path());
                // Templates' snapshots count against the templates' disk budget instead.
                if meta.as_ref().is_some_and(|m| m.shape.template.is_some()) {
                    return None;
                }
                let created = meta.map_or(time::OffsetDateTime::UNIX_EPOCH, |m| m.created_at);
                Some((used.get(&name).copied(), created, e.path(), name))
            })
            .collect();
        kept.sort_by_key(|k| (k.0, k.1));
        while kept.len() + room > self.limit && !kept.is_empty() {
            let (_, _, path, name) = kept.remove(0);
            tracing::info!(snapshot = %name, "removing the least recently used snapshot");
            let _ = std::fs::remove_dir_all(path);
            self.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&name);
        }
    }

    pub fn name(&self, shape: &Shape) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.assets.as_bytes());
        hasher.update(serde_json::to_vec(shape).unwrap_or_default());
        let key = format!("{:x}", hasher.finalize());
        format!(
            "{}-{}m-{}c{}{}-{}",
            shape.runtime,
            shape.mem_mb,
            shape.cpus,
            if shape.nic { "-nic" } else { "" },
            shape
                .data_disk_mb
                .map_or_else(String::new, |mb| format!("-sandbox{mb}d")),
            &key[..16]
        )
    }

    /// The valid snapshot of `shape`, if there is one. A snapshot whose state does not match
    /// its digest is removed and reported as the error.
    pub fn find(&self, shape: &Shape) -> Result<Option<Found>, String> {
        let name = self.name(shape);
        let dir = self.dir.join(&name);
        if !dir.is_dir() {
            return Ok(None);
        }
        let state = dir.join("state");
        let memory = dir.join(MEMORY);
        let Some(meta) = read_meta(&dir).filter(|m| m.assets == self.assets && m.shape == *shape)
        else {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!(
                "snapshot {name} has no valid description; removed it"
            ));
        };
        let id = files_id(&state, &memory);
        let known = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&name)
            == id.as_ref();
        if !known {
            let digest = sha256_file(&state).unwrap_or_default();
            let memory_digest = sha256_sparse(&memory).unwrap_or_default();
            if id.is_none()
                || digest != meta.sha256
                || memory_digest != meta.memory_sha256
                || id.map(|i| i.0 .2) != Some(meta.size_bytes)
            {
                let _ = std::fs::remove_dir_all(&dir);
                self.verified
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&name);
                return Err(format!(
                    "snapshot {name} failed its digest check (its state or memory file changed or is damaged); removed it, never loaded"
                ));
            }
        }
        self.remember(&name, id);
        Ok(Some(Found {
            state,
            memory,
            meta,
            name,
        }))
    }

    /// Notes that snapshot `name` was just used, and that its files `id` (if known) were
    /// checked against their digests (not read again while they stay the same files).
    fn remember(&self, name: &str, id: Option<(FileId, FileId)>) {
        if let Some(id) = id {
            self.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_owned(), id);
        }
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), std::time::Instant::now());
    }

    /// A new directory to write a snapshot of `shape` into, then [`Snapshots::commit`].
    pub fn partial(&self, shape: &Shape) -> Result<PathBuf, String> {
        let dir = self.dir.join(format!(
            "{}.partial-{}",
            self.name(shape),
            ulid::Ulid::new().to_string().to_lowercase()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(dir)
    }

    /// Describes the state written in `partial` and puts the snapshot in place.
    pub fn commit(&self, shape: &Shape, partial: &Path, ready: Ready) -> Result<Found, String> {
        let state = partial.join("state");
        let sha256 =
            sha256_file(&state).map_err(|e| format!("cannot read the saved state: {e}"))?;
        let memory_sha256 = sha256_sparse(&partial.join(MEMORY))
            .map_err(|e| format!("cannot read the saved memory: {e}"))?;
        let size_bytes = std::fs::metadata(&state).map(|m| m.len()).unwrap_or(0);
        let meta = Meta {
            shape: *shape,
            sha256,
            memory_sha256,
            size_bytes,
            created_at: time::OffsetDateTime::now_utc(),
            assets: self.assets.clone(),
            ready,
        };
        let bytes = serde_json::to_vec_pretty(&meta).map_err(|e| e.to_string())?;
        write_atomically(&partial.join("meta.json"), &bytes)
            .map_err(|e| format!("cannot describe the snapshot: {e}"))?;
        let name = self.name(shape);
        let dir = self.dir.join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        self.make_room(1);
        std::fs::rename(partial, &dir)
            .map_err(|e| format!("cannot put the snapshot in place: {e}"))?;
        self.remember(&name, files_id(&dir.join("state"), &dir.join(MEMORY)));
        Ok(Found {
            state: dir.join("state"),
            memory: dir.join(MEMORY),
            meta,
            name,
        })
    }

    /// The snapshots of each template: how many, and their bytes on disk.
    pub fn template_usage(&self) -> HashMap<u64, (u32, u64)> {
        let mut usage: HashMap<u64, (u32, u64)> = HashMap::new();
        for (dir, meta) in self.in_place() {
            if let Some(id) = meta.shape.template {
                let entry = usage.entry(id).or_default();
                entry.0 += 1;
                entry.1 += on_disk(&dir);
            }
        }
        usage
    }

    /// Removes every snapshot of template `id`.
    pub fn remove_template(&self, id: u64) {
        for (dir, meta) in self.in_place() {
            if meta.shape.template == Some(id) {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }

    /// Each complete snapshot's directory and description.
    fn in_place(&self) -> Vec<(PathBuf, Meta)> {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().contains(".partial-"))
            .filter_map(|e| Some((e.path(), read_meta(&e.path())?)))
            .collect()
    }

    /// Every snapshot in place, for the backend's details.
    pub fn list(&self) -> Vec<serde_json::Value> {
        let verified = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut list: Vec<serde_json::Value> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().contains(".partial-"))
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let meta = read_meta(&e.path())?;
                let checked = verified.get(&name) == files_id(&e.path().join("state"), &e.path().join(MEMORY)).as_ref();
                // What it takes on disk: the state, and the memory file's data (not its holes).
                let memory = std::fs::metadata(e.path().join(MEMORY))
                    .map_or(0, |m| std::os::unix::fs::MetadataExt::blocks(&m) * 512);
                Some(serde_json::json!({
                    "name": name,
                    "shape": meta.shape,
                    "size_bytes": meta.size_bytes + memory,
                    "created_at": meta.created_at.format(&time::format_description::well_known::Rfc3339).ok(),
                    "valid": meta.assets == self.assets,
                    "digest_checked": checked,
                }))
            })
            .collect();
        list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        list
    }
}

/// What a snapshot's directory takes on disk: its files' allocated blocks (the memory
/// file's holes are not).
fn on_disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
        .sum()
}

/// Removes snapshots a crash left half-written (cheap: no digest needed).
pub fn sweep_partials(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().contains(".partial-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn read_meta(dir: &Path) -> Option<Meta> {
    serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> Ready {
        Ready {
            kernel: "k".into(),
            uptime_ms: 1,
        }
    }

    /// A snapshot's files as a save leaves them: the state, and a sparse memory file with
    /// a page written 1 MiB in.
    fn saved(partial: &Path, state: &[u8]) {
        use std::io::{Seek, SeekFrom, Write};
        std::fs::write(partial.join("state"), state).unwrap();
        let mut memory = std::fs::File::create(partial.join(MEMORY)).unwrap();
        memory.set_len(8 << 20).unwrap();
        memory.seek(SeekFrom::Start(1 << 20)).unwrap();
        memory.write_all(&[7u8; 4096]).unwrap();
    }

    #[test]
    fn a_sparse_files_digest_covers_its_data_and_where_it_is() {
        use std::io::{Seek, SeekFrom, Write};
        let tmp = tempfile::tempdir().unwrap();
        let write = |name: &str, at: u64, byte: u8| {
            let path = tmp.path().join(name);
            let mut f = std::fs::File::create(&path).unwrap();
            f.set_len(8 << 20).unwrap();
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&[byte; 4096]).unwrap();
            sha256_sparse(&path).unwrap()
        };
        let a = write("a", 1 << 20, 7);
        assert_eq!(
            a,
            write("b", 1 << 20, 7),
            "the same content, the same digest"
        );
        assert_ne!(a, write("c", 2 << 20, 7), "the data elsewhere");
        assert_ne!(a, write("d", 1 << 20, 8), "other data");
    }

    #[test]
    fn a_sparse_copy_keeps_the_data_and_the_holes() {
        let tmp = tempfile::tempdir().unwrap();
        let (from, to) = (tmp.path().join("from"), tmp.path().join("to"));
        let file = std::fs::File::create(&from).unwrap();
        file.set_len(64 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        file.write_all_at(b"start", 0).unwrap();
        file.write_all_at(&[7u8; 8192], 40 << 20).unwrap();
        drop(file);
        copy_sparse(&from, &to).unwrap();
        assert_eq!(std::fs::read(&from).unwrap(), std::fs::read(&to).unwrap());
        let allocated = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&to).unwrap());
        assert!(
            allocated * 512 < 1 << 20,
            "{allocated} blocks: the holes stay holes"
        );
        assert_eq!(sha256_sparse(&from).unwrap(), sha256_sparse(&to).unwrap());
    }

    #[test]
    fn a_changed_state_is_refused_and_removed_and_stale_ones_go_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("snapshots");
        let shape = Shape {
            runtime: vulcan_domain::Runtime::Python,
            mem_mb: 192,
            cpus: 1,
            nic: false,
            template: None,
            data_disk_mb: None,
        };
        let snapshots = Snapshots::open(dir.clone(), "assets-a".into()).unwrap();
        assert!(snapshots.find(&shape).unwrap().is_none());
        let partial = snapshots.partial(&shape).unwrap();
        saved(&partial, b"the saved machine");
        let found = snapshots.commit(&shape, &partial, ready()).unwrap();
        assert!(!partial.exists());
        assert_eq!(snapshots.find(&shape).unwrap().unwrap().name, found.name);

        // Its memory damaged in place (same size): detected, removed.
        {
            use std::io::{Seek, SeekFrom, Write};
            std::thread::sleep(std::time::Duration::from_millis(10));
            let mut memory = std::fs::OpenOptions::new()
                .write(true)
                .open(&found.memory)
                .unwrap();
            memory.seek(SeekFrom::Start((1 << 20) + 100)).unwrap();
            memory.write_all(b"x").unwrap();
        }
        let err = snapshots.find(&shape).unwrap_err();
        assert!(err.contains("failed its digest check"), "{err}");
        assert!(!found.memory.exists());
        let partial = snapshots.partial(&shape).unwrap();
        saved(&partial, b"the saved machine");
        let found = snapshots.commit(&shape, &partial, ready()).unwrap();

        // Damaged in place (same size): detected, removed.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&found.state, b"THE saved machine").unwrap();
        let err = snapshots.find(&shape).unwrap_err();
        assert!(err.contains("failed its digest check"), "{err}");
        assert!(!found.state.exists());
        assert!(snapshots.find(&shape).unwrap().is_none());

        // A half-written one and one of other assets are removed when opened.
        let partial = snapshots.partial(&shape).unwrap();
        std::fs::write(partial.join("state"), b"half").unwrap();
        let other = snapshots.partial(&shape).unwrap();
        saved(&other, b"whole");
        let kept = snapshots.commit(&shape, &other, ready()).unwrap();
        let reopened = Snapshots::open(dir.clone(), "assets-a".into()).unwrap();
        assert!(!partial.exists());
        assert!(reopened.find(&shape).unwrap().is_some());
        let changed = Snapshots::open(dir, "assets-b".into()).unwrap();
        assert!(!kept.state.exists(), "a snapshot of other assets is stale");
        assert!(changed.find(&shape).unwrap().is_none());
    }

    #[test]
    fn past_the_limit_the_least_recently_used_snapshot_goes() {
        let tmp = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::open(tmp.path().join("s"), "a".into())
            .unwrap()
            .with_limit(2);
        let shape = |mem_mb| Shape {
            runtime: vulcan_domain::Runtime::Python,
            mem_mb,
            cpus: 1,
            nic: false,
            template: None,
            data_disk_mb: None,
        };
        let make = |mem_mb| {
            let partial = snapshots.partial(&shape(mem_mb)).unwrap();
            saved(&partial, format!("state {mem_mb}").as_bytes());
            snapshots.commit(&shape(mem_mb), &partial, ready()).unwrap();
        };
        make(100);
        make(200);
        std::thread::sleep(std::time::Duration::from_millis(5));
        // 100 is used again: 200 is now the least recently used.
        assert!(snapshots.find(&shape(100)).unwrap().is_some());
        make(300);
        assert!(snapshots.find(&shape(100)).unwrap().is_some());
        assert!(snapshots.find(&shape(200)).unwrap().is_none());
        assert!(snapshots.find(&shape(300)).unwrap().is_some());
        assert_eq!(snapshots.list().len(), 2);
    }

    #[test]
    fn the_assets_digest_follows_content_and_settings() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("kernel");
        let cache = tmp.path().join("digests.json");
        std::fs::write(&file, b"one").unwrap();
        let a = assets_digest(&[&file], "tcg", &cache).unwrap();
        assert_eq!(a, assets_digest(&[&file], "tcg", &cache).unwrap());
        assert_ne!(a, assets_digest(&[&file], "kvm", &cache).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&file, b"two").unwrap();
        assert_ne!(a, assets_digest(&[&file], "tcg", &cache).unwrap());
    }
}
