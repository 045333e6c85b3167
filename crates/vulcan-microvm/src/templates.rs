//! Templates: a registered OCI image as a microVM's root. The image is pulled and unpacked
//! by the image store (the gVisor backend's, under its archive rules: whiteouts, no entry
//! out of the root, one size budget); the first VM of its manifest digest on this node
//! converts that directory into a read-only ext4 file (`mkfs.ext4 -d`), which every VM of
//! the image then attaches as its first disk. The agent mounts it without setuid or device
//! files under an overlay whose writable half is a tmpfs in the guest's RAM, so each VM
//! writes to its own copy and nothing of it outlives the VM. VMs of a template are restored
//! from snapshots as the built-in runtimes' are ([`crate::snapshot`]: the shape names the
//! template).
//!
//! On disk, under `<work dir>/templates/`: `<manifest hex>-<nonce>.ext4`, written under a
//! `.partial-` name and renamed when complete. The nonce makes a converted root a new
//! template (a conversion is not byte-for-byte repeatable): a snapshot of one root is never
//! restored over another. Roots and their snapshots count against one disk budget
//! (`VULCAN_TEMPLATE_DISK_MB`); past it the least recently used template not in use goes,
//! root and snapshots. The template of an image no longer registered goes at the next sweep
//! (every [`SWEEP_EVERY`], and whenever a template is made).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sha2::{Digest, Sha256};
use vulcan_domain::{ImageRoots, LeasedRoot, LogSink, LogStream, TemplateOnNode};

use crate::snapshot::Snapshots;

/// How often the templates of unregistered images are looked for.
pub(crate) const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// This node's converted image roots.
pub(crate) struct Templates {
    dir: PathBuf,
    budget_bytes: u64,
    images: Arc<dyn ImageRoots>,
    /// One conversion at a time: each reads and writes the whole image.
    converting: tokio::sync::Mutex<()>,
    /// VMs being made from each root (by file name): never removed meanwhile.
    in_use: Mutex<HashMap<String, usize>>,
    /// When each root was last used, in this process.
    used: Mutex<HashMap<String, Instant>>,
    /// Roots converted since the start.
    pub converted: AtomicU64,
}

impl Templates {
    /// For the backend's details: what is kept, against what budget.
    pub fn details(&self, snapshots: Option<&Snapshots>) -> serde_json::Value {
        serde_json::json!({
            "converted": self.converted.load(Ordering::Relaxed),
            "budget_bytes": self.budget_bytes,
            "on_disk": self.usage(snapshots),
        })
    }
}

/// A converted root, held (not removed) while the value lives.
pub(crate) struct Template {
    pub path: PathBuf,
    /// Names the template in snapshot shapes.
    pub id: u64,
    name: String,
    templates: Arc<Templates>,
}

impl Template {
    /// Its root file's name (in the templates' directory).
    pub fn file_name(&self) -> &str {
        &self.name
    }
}

impl Drop for Template {
    fn drop(&mut self) {
        let mut in_use = self.templates.lock_in_use();
        if let Some(n) = in_use.get_mut(&self.name) {
            *n -= 1;
            if *n == 0 {
                in_use.remove(&self.name);
            }
        }
    }
}

/// The template id of root file `name`.
fn id_of(name: &str) -> u64 {
    let hash = Sha256::digest(name.as_bytes());
    u64::from_be_bytes(hash[..8].try_into().unwrap_or_default())
}

/// The manifest digest a root file is of (`<hex>-<nonce>.ext4`).
fn digest_of(name: &str) -> Option<String> {
    let hex = name.strip_suffix(".ext4")?.split('-').next()?;
    (hex.len() == 64).then(|| format!("sha256:{hex}"))
}

/// What a file takes on disk (its allocated blocks, not its apparent size).
fn on_disk(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
}

/// The bytes (apparent sizes, in 4 KiB blocks) and entries of a directory tree; symbolic
/// links are counted, never followed.
fn tree_size(dir: &Path) -> std::io::Result<(u64, u64)> {
    let (mut bytes, mut entries) = (0u64, 1u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            entries += 1;
            bytes += meta.len().div_ceil(4096) * 4096;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok((bytes, entries))
}

/// Writes `rootfs` into a new ext4 file `out`, sized for it; refuses a tree larger than
/// `budget` bytes. Blocking.
fn convert(rootfs: &Path, out: &Path, budget: u64) -> Result<(), String> {
    let (bytes, entries) = tree_size(rootfs)
        .map_err(|e| format!("cannot read the image's root {}: {e}", rootfs.display()))?;
    if bytes > budget {
        return Err(format!(
            "the image's root holds {} MiB; the microVM template budget is {} MiB (VULCAN_TEMPLATE_DISK_MB)",
            bytes >> 20,
            budget >> 20
        ));
    }
    // Room for ext4's own structures and the inode tables, as guest.sh sizes its root.
    let size_mb = (bytes + bytes / 4) / (1 << 20) + 64;
    let inodes = entries + entries / 4 + 4096;
    let out_put = std::process::Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-L",
            "vulcanimage",
            "-N",
            &inodes.to_string(),
            "-d",
        ])
        .arg(rootfs)
        .arg(out)
        .arg(format!("{size_mb}M"))
        .output()
        .map_err(|e| format!("cannot run mkfs.ext4 (Debian's e2fsprogs): {e}"))?;
    if !out_put.status.success() {
        let _ = std::fs::remove_file(out);
        return Err(format!(
            "mkfs.ext4 could not write the image's root: {}",
            String::from_utf8_lossy(&out_put.stderr).trim()
        ));
    }
    Ok(())
}

impl Templates {
    /// Opens (and makes) the directory, removing what a crash left half-written.
    pub fn open(
        dir: PathBuf,
        budget_bytes: u64,
        images: Arc<dyn ImageRoots>,
    ) -> Result<Templates, String> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(".partial-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Templates {
            dir,
            budget_bytes,
            images,
            converting: tokio::sync::Mutex::new(()),
            in_use: Mutex::new(HashMap::new()),
            used: Mutex::new(HashMap::new()),
            converted: AtomicU64::new(0),
        })
    }

    fn lock_in_use(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.in_use.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The converted root of manifest `digest` on disk, if there is one.
    fn existing(&self, digest: &str) -> Option<String> {
        let hex = digest.strip_prefix("sha256:")?;
        std::fs::read_dir(&self.dir)
            .ok()?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with(hex) && n.ends_with(".ext4"))
    }

    /// Root file `name`, held, if it is still on disk (a sandbox taken back after a restart
    /// needs the very root its VM was started with).
    pub fn hold_existing(self: &Arc<Self>, name: &str) -> Option<Template> {
        let plain = !name.contains('/') && name.ends_with(".ext4") && !name.starts_with('.');
        (plain && self.dir.join(name).is_file()).then(|| self.hold(name.to_owned()))
    }

    fn hold(self: &Arc<Self>, name: String) -> Template {
        *self.lock_in_use().entry(name.clone()).or_insert(0) += 1;
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone(), Instant::now());
        Template {
            path: self.dir.join(&name),
            id: id_of(&name),
            name,
            templates: self.clone(),
        }
    }

    /// The template of image `reference`: its root converted first if this node has none
    /// (the image pulled first if needed). Also returns the image's lease (its record, and
    /// the unpacked root a user name is looked up in).
    pub async fn root(
        self: &Arc<Self>,
        reference: &str,
        logs: &dyn LogSink,
        snapshots: Option<&Snapshots>,
    ) -> Result<(Template, LeasedRoot), String> {
        let emit = |line: &str| logs.emit(LogStream::Backend, line.to_owned());
        let lease = self
            .images
            .lease_root(reference, &|r| {
                emit(&format!(
                    "pulling image {r}: it is not in the local image store"
                ))
            })
            .await
            .map_err(|e| e.to_string())?;
        let digest = lease.record.digest.clone();
        if let Some(name) = self.existing(&digest) {
            return Ok((self.hold(name), lease));
        }
        let _one = self.converting.lock().await;
        if let Some(name) = self.existing(&digest) {
            return Ok((self.hold(name), lease));
        }
        let hex = digest.trim_start_matches("sha256:").to_owned();
        let name = format!(
            "{hex}-{}.ext4",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let partial = self.dir.join(format!(".partial-{name}"));
        let started = Instant::now();
        emit(&format!(
            "converting image {} into a microVM root (first use on this node)",
            lease.record.reference
        ));
        let (rootfs, budget, out) = (lease.rootfs.clone(), self.budget_bytes, partial.clone());
        let converted = tokio::task::spawn_blocking(move || convert(&rootfs, &out, budget))
            .await
            .map_err(|e| format!("converting the image failed: {e}"))?;
        converted.map_err(|e| format!("image {}: {e}", lease.record.reference))?;
        let path = self.dir.join(&name);
        std::fs::rename(&partial, &path)
            .map_err(|e| format!("cannot put the converted root in place: {e}"))?;
        self.converted.fetch_add(1, Ordering::Relaxed);
        emit(&format!(
            "converted image {} in {} ms: a root of {} MiB",
            lease.record.reference,
            started.elapsed().as_millis(),
            on_disk(&path) >> 20
        ));
        let template = self.hold(name);
        if let Some(snapshots) = snapshots {
            self.settle(snapshots).await;
        }
        Ok((template, lease))
    }

    /// What this node keeps of each template (by manifest digest): its root and snapshots.
    pub fn usage(&self, snapshots: Option<&Snapshots>) -> HashMap<String, TemplateOnNode> {
        let by_id = snapshots.map(Snapshots::template_usage).unwrap_or_default();
        let mut usage = HashMap::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(digest) = digest_of(&name).filter(|_| !name.starts_with('.')) else {
                continue;
            };
            let (snapshots, snapshot_bytes) = by_id.get(&id_of(&name)).copied().unwrap_or_default();
            usage.insert(
                digest,
                TemplateOnNode {
                    root_bytes: on_disk(&entry.path()),
                    snapshots,
                    snapshot_bytes,
                },
            );
        }
        usage
    }

    /// Removes the least recently used templates not in use (root and snapshots) until
    /// what is kept fits the budget, then records what this node keeps of each in the image
    /// index (for `GET /v1/images`).
    pub async fn settle(&self, snapshots: &Snapshots) {
        // Unreadable: no template counts as unregistered this time.
        let registered = self.images.registered_digests().await.ok();
        let removed = self.make_room(snapshots, registered.as_deref());
        let usage = self.usage(Some(snapshots));
        for digest in removed {
            if !usage.contains_key(&digest) {
                let _ = self.images.record_template(&digest, None).await;
            }
        }
        for (digest, template) in usage {
            if let Err(e) = self.images.record_template(&digest, Some(template)).await {
                tracing::warn!(%digest, error = %e, "cannot record a microVM template");
            }
        }
    }

    /// Whether this node keeps any converted root.
    pub fn any(&self) -> bool {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| digest_of(&e.file_name().to_string_lossy()).is_some())
    }

    /// Removes the templates of images no longer `registered` (when known), then those
    /// past the budget, least recently used first; none in use. Returns the digests whose
    /// root went.
    fn make_room(&self, snapshots: &Snapshots, registered: Option<&[String]>) -> Vec<String> {
        let by_id = snapshots.template_usage();
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let in_use = self.lock_in_use().clone();
        let mut roots: Vec<(Option<Instant>, String, u64)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                digest_of(&name).filter(|_| !name.starts_with('.'))?;
                let snaps = by_id.get(&id_of(&name)).map_or(0, |u| u.1);
                Some((used.get(&name).copied(), name, on_disk(&e.path()) + snaps))
            })
            .collect();
        let mut total: u64 = roots.iter().map(|r| r.2).sum();
        let gone = |name: &str| {
            registered.is_some_and(|r| digest_of(name).is_some_and(|d| !r.contains(&d)))
        };
        // Unregistered first, then by last use.
        roots.sort_by_key(|r| (!gone(&r.1), r.0));
        let mut removed = Vec::new();
        for (_, name, bytes) in roots {
            if total <= self.budget_bytes && !gone(&name) {
                break;
            }
            if in_use.contains_key(&name) {
                continue;
            }
            tracing::info!(template = %name, unregistered = gone(&name), "removing a microVM template");
            // Snapshots first: a root without its snapshots is still a template.
            snapshots.remove_template(id_of(&name));
            let _ = std::fs::remove_file(self.dir.join(&name));
            total = total.saturating_sub(bytes);
            removed.extend(digest_of(&name));
        }
        removed
    }
}

impl crate::Inner {
    /// Every [`SWEEP_EVERY`] until the backend stops: the templates of images no longer
    /// registered are removed (and what is kept recorded again).
    pub(crate) async fn sweep_templates(self: Arc<Self>) {
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            let Some(templates) = self.templates.as_ref() else {
                return;
            };
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            if !templates.any() {
                continue;
            }
            if let Ok(snapshots) = self.snapshots().await {
                templates.settle(&snapshots).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_file_names_its_digest_and_a_stable_id() {
        let hex = "ab".repeat(32);
        let name = format!("{hex}-01abc.ext4");
        assert_eq!(digest_of(&name), Some(format!("sha256:{hex}")));
        assert_eq!(id_of(&name), id_of(&name));
        assert_ne!(id_of(&name), id_of(&format!("{hex}-01abd.ext4")));
        assert_eq!(digest_of("short-01abc.ext4"), None);
        assert_eq!(digest_of(&format!("{hex}-01abc.img")), None);
    }

    #[test]
    fn a_tree_over_the_budget_is_refused_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        let big = std::fs::File::create(root.join("usr/lib/sparse")).unwrap();
        // Apparent size counts: a sparse file of 64 MiB takes no disk but would in a root.
        big.set_len(64 << 20).unwrap();
        std::fs::write(root.join("usr/lib/small"), b"x").unwrap();
        let (bytes, entries) = tree_size(&root).unwrap();
        assert!(bytes >= 64 << 20, "{bytes}");
        assert_eq!(entries, 5);
        let out = tmp.path().join("root.ext4");
        let err = convert(&root, &out, 16 << 20).unwrap_err();
        assert!(err.contains("VULCAN_TEMPLATE_DISK_MB"), "{err}");
        assert!(!out.exists());
    }
}
