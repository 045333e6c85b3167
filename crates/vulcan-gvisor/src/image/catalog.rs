//! The image catalog: pulls, verifies, unpacks, registers and removes images.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Deserialize;
use time::OffsetDateTime;
use vulcan_domain::{ImageCatalog, ImageConfig, ImageError, ImageRecord, PullRequest};

use super::reference::Reference;
use super::registry::{digest_hex, sha256_digest, RegistryClient};
use vulcan_sandbox::archive::{unpack, Rules, UnpackError};

const INDEX_MEDIA: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    config: Option<RunConfig>,
}

/// Images on this node's disk (see the module documentation for the layout). Cheap to
/// clone: clones share one catalog.
#[derive(Clone)]
pub struct ImageStore(Arc<Inner>);

struct Inner {
    dir: PathBuf,
    client: RegistryClient,
    /// Largest size an image may unpack to.
    max_unpacked_bytes: u64,
    index: Mutex<BTreeMap<String, ImageRecord>>,
    /// Pulls and removals run one at a time, so two never unpack the same root. A std
    /// mutex, held by the blocking pull itself: a pull given up at its deadline keeps it
    /// until its last read times out.
    changes: Arc<Mutex<()>>,
    /// Runs using each image root (by manifest digest): such roots are never removed.
    in_use: Mutex<HashMap<String, usize>>,
    /// Registries an admin has pulled from (or named in a run) since the start.
    admin_allowed: Mutex<HashSet<String>>,
}

/// An image root held for one run; released on drop.
pub struct RootLease {
    store: ImageStore,
    digest: String,
    pub record: ImageRecord,
    pub rootfs: PathBuf,
}

impl Drop for RootLease {
    fn drop(&mut self) {
        let mut in_use = self
            .store
            .0
            .in_use
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = in_use.get_mut(&self.digest) {
            *n -= 1;
            if *n == 0 {
                in_use.remove(&self.digest);
            }
        }
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> ImageError {
    ImageError::Io(format!("cannot {what} {}: {e}", path.display()))
}

impl ImageStore {
    /// Opens (creating) the catalog at `dir`, dropping unpack leftovers of a crash.
    pub fn open(
        dir: PathBuf,
        client: RegistryClient,
        max_unpacked_bytes: u64,
    ) -> Result<ImageStore, String> {
        for sub in ["blobs/sha256", "rootfs"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d)
                .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        if let Ok(entries) = std::fs::read_dir(dir.join("rootfs")) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".partial-") {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let index_path = dir.join("index.json");
        let index = match std::fs::read(&index_path) {
            Ok(bytes) => serde_json::from_slice::<Vec<ImageRecord>>(&bytes)
                .map_err(|e| format!("{} is not a valid image index: {e}", index_path.display()))?
                .into_iter()
                .map(|r| (r.reference.clone(), r))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", index_path.display())),
        };
        Ok(ImageStore(Arc::new(Inner {
            dir,
            client,
            max_unpacked_bytes,
            index: Mutex::new(index),
            changes: Arc::new(Mutex::new(())),
            in_use: Mutex::new(HashMap::new()),
            admin_allowed: Mutex::new(HashSet::new()),
        })))
    }

    fn normalise(reference: &str) -> Result<String, ImageError> {
        Reference::parse(reference)
            .map(|r| r.to_string())
            .map_err(ImageError::Invalid)
    }

    /// The registered image `reference`, pulling it first if it is not registered and
    /// its registry is allowed (`on_pull` is told before the pull starts). The returned
    /// lease keeps the image root from being removed while the run uses it.
    pub async fn lease(
        &self,
        reference: &str,
        on_pull: impl FnOnce(&str),
    ) -> Result<RootLease, ImageError> {
        let key = self.check_pull(reference, false)?;
        if let Some(lease) = self.0.take_lease(self, &key)? {
            return Ok(lease);
        }
        on_pull(&key);
        self.pull(PullRequest {
            reference: key.clone(),
            ..PullRequest::default()
        })
        .await?;
        self.0
            .take_lease(self, &key)?
            .ok_or(ImageError::NotFound(key))
    }

    /// Whether `r` may be pulled by anyone but an admin: its registry is listed in the
    /// allowed registries, an admin has pulled from it, or an image from it is registered.
    fn allowed(&self, r: &Reference) -> bool {
        let options = self.0.client.options();
        options.allowed.iter().any(|a| a == &r.registry)
            || self.0.admin_allowed().contains(&r.registry)
            || self.0.index().values().any(|image| {
                Reference::parse(&image.reference).is_ok_and(|known| known.registry == r.registry)
            })
    }
}

impl Inner {
    /// A lease on the registered image `key`, taken atomically with respect to removal
    /// (both hold `in_use` while they look at the index); `None` if it is not registered.
    fn take_lease(&self, store: &ImageStore, key: &str) -> Result<Option<RootLease>, ImageError> {
        let mut in_use = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
        let Some(record) = self.index().get(key).cloned() else {
            return Ok(None);
        };
        let rootfs = self.rootfs_path(&record.digest)?;
        *in_use.entry(record.digest.clone()).or_insert(0) += 1;
        Ok(Some(RootLease {
            store: store.clone(),
            digest: record.digest.clone(),
            record,
            rootfs,
        }))
    }

    fn admin_allowed(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.admin_allowed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Allows pulls from `registry` from now on: an admin chose it.
    fn allow(&self, registry: &str) {
        self.admin_allowed().insert(registry.to_owned());
    }

    fn index(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ImageRecord>> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save_index(&self, index: &BTreeMap<String, ImageRecord>) -> Result<(), ImageError> {
        let path = self.dir.join("index.json");
        let tmp = self.dir.join("index.json.tmp");
        let records: Vec<&ImageRecord> = index.values().collect();
        let bytes =
            serde_json::to_vec_pretty(&records).map_err(|e| ImageError::Io(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(|e| io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("replace", &path, e))
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.dir.join("blobs/sha256").join(digest_hex(digest)?))
    }

    fn rootfs_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.dir.join("rootfs").join(digest_hex(digest)?))
    }

    /// Resolves, downloads (what is not cached yet) and unpacks an image. Blocking.
    fn fetch(&self, r: &Reference) -> Result<(String, Vec<Descriptor>, ImageConfig), ImageError> {
        let mut fetched = self.client.manifest(r, r.manifest_ref())?;
        let mut digest = sha256_digest(&fetched.bytes);
        let expected = r.digest.clone().or(fetched.claimed_digest.clone());
        if let Some(expected) = expected.filter(|e| *e != digest) {
            return Err(ImageError::Integrity(format!(
                "the manifest of {r} does not match its digest {expected} (the registry sent content with digest {digest}); refused"
            )));
        }
        let parse = |bytes: &[u8]| {
            serde_json::from_slice::<Manifest>(bytes).map_err(|e| {
                ImageError::Integrity(format!("the manifest of {r} is not valid JSON: {e}"))
            })
        };
        let mut manifest = parse(&fetched.bytes)?;
        let is_index = |m: &Manifest, media: &str| {
            INDEX_MEDIA.contains(&m.media_type.as_str())
                || INDEX_MEDIA.iter().any(|t| media.starts_with(t))
                || (m.config.is_none() && !m.manifests.is_empty())
        };
        if is_index(&manifest, &fetched.media_type) {
            let chosen = manifest
                .manifests
                .iter()
                .find(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
                })
                .ok_or_else(|| {
                    ImageError::Invalid(format!("image {r} has no linux/amd64 variant"))
                })?;
            let child = chosen.digest.clone();
            fetched = self.client.manifest(r, &child)?;
            digest = sha256_digest(&fetched.bytes);
            if digest != child {
                return Err(ImageError::Integrity(format!(
                    "the linux/amd64 manifest of {r} does not match its digest {child} (got {digest}); refused"
                )));
            }
            manifest = parse(&fetched.bytes)?;
        }
        if manifest.schema_version != 2 {
            return Err(ImageError::Invalid(format!(
                "image {r} uses manifest schema {}; only schema 2 (OCI or Docker v2) is supported",
                manifest.schema_version
            )));
        }
        let config_desc = manifest
            .config
            .as_ref()
            .ok_or_else(|| ImageError::Integrity(format!("the manifest of {r} names no config")))?;
        let config_bytes = self
            .client
            .blob_bytes(r, &config_desc.digest, config_desc.size)?;
        let run = serde_json::from_slice::<ConfigBlob>(&config_bytes)
            .map_err(|e| ImageError::Integrity(format!("the config of {r} is not valid: {e}")))?
            .config
            .unwrap_or_default();
        let config = ImageConfig {
            entrypoint: run.entrypoint.unwrap_or_default(),
            cmd: run.cmd.unwrap_or_default(),
            env: run.env.unwrap_or_default(),
            working_dir: run.working_dir.unwrap_or_default(),
            user: run.user.unwrap_or_default(),
        };
        for layer in &manifest.layers {
            if layer.media_type.contains("zstd") {
                return Err(ImageError::Invalid(format!(
                    "image {r} has zstd-compressed layers, which are not supported; push it with gzip layers"
                )));
            }
            let path = self.blob_path(&layer.digest)?;
            if !path.exists() {
                self.client
                    .blob_to_file(r, &layer.digest, layer.size, &path)?;
            }
        }
        self.unpack(r, &digest, &manifest.layers)?;
        Ok((digest, manifest.layers, config))
    }

    fn unpack(&self, r: &Reference, digest: &str, layers: &[Descriptor]) -> Result<(), ImageError> {
        let root = self.rootfs_path(digest)?;
        if root.is_dir() {
            return Ok(());
        }
        let partial = self
            .dir
            .join("rootfs")
            .join(format!(".partial-{}", digest_hex(digest)?));
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).map_err(|e| io("create", &partial, e))?;
        let mut budget = self.max_unpacked_bytes;
        let result = layers.iter().try_for_each(|layer| {
            let path = self.blob_path(&layer.digest)?;
            let file = std::fs::File::open(&path).map_err(|e| io("open", &path, e))?;
            let written = unpack(&partial, file, Rules::layer(budget)).map_err(|e| match e {
                UnpackError::Refused(msg) => ImageError::Integrity(format!(
                    "image {r}, layer {}: {msg}; refused",
                    layer.digest
                )),
                UnpackError::Io(msg) => ImageError::Io(format!("image {r}: {msg}")),
            })?;
            budget = budget.saturating_sub(written);
            Ok(())
        });
        match result
            .and_then(|()| std::fs::rename(&partial, &root).map_err(|e| io("rename", &partial, e)))
        {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&partial);
                Err(e)
            }
        }
    }

    /// Registers a pulled image (keeping an earlier pull's default and resources unless
    /// the request set them), saves the index and drops what no image needs. Blocking.
    fn register(&self, record: ImageRecord) -> Result<ImageRecord, ImageError> {
        let mut index = self.index().clone();
        let mut kept = record;
        if kept.default {
            index.values_mut().for_each(|r| r.default = false);
        } else if let Some(previous) = index.get(&kept.reference) {
            kept.default = previous.default;
            kept.resources = kept.resources.or(previous.resources);
        }
        index.insert(kept.reference.clone(), kept.clone());
        self.save_index(&index)?;
        *self.index() = index;
        self.collect_garbage();
        Ok(kept)
    }

    /// Unregisters `key` unless a run holds its root, then drops what no image needs.
    /// Checking and unregistering happen under `in_use`, as leases are taken. Blocking.
    fn unregister(&self, key: &str) -> Result<(), ImageError> {
        let _one_at_a_time = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        {
            let in_use = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
            let mut index = self.index().clone();
            let record = index
                .remove(key)
                .ok_or_else(|| ImageError::NotFound(key.to_owned()))?;
            let busy = in_use.get(&record.digest).copied().unwrap_or(0);
            if busy > 0 {
                return Err(ImageError::Busy(format!(
                    "image {key} is used by {busy} running workload(s); remove it once they have finished"
                )));
            }
            self.save_index(&index)?;
            *self.index() = index;
        }
        self.collect_garbage();
        Ok(())
    }

    /// Removes blobs and roots no registered image needs and no run is using.
    fn collect_garbage(&self) {
        let index = self.index().clone();
        let in_use: HashSet<String> = self
            .in_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        let mut roots = HashSet::new();
        let mut blobs = HashSet::new();
        for record in index.values() {
            roots.insert(record.digest.clone());
            blobs.extend(record.layers.iter().cloned());
        }
        roots.extend(in_use);
        let sweep = |sub: &str, keep: &HashSet<String>| {
            if let Ok(entries) = std::fs::read_dir(self.dir.join(sub)) {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !name.starts_with('.') && !keep.contains(&format!("sha256:{name}")) {
                        let path = entry.path();
                        let _ = if path.is_dir() {
                            std::fs::remove_dir_all(&path)
                        } else {
                            std::fs::remove_file(&path)
                        };
                    }
                }
            }
        };
        sweep("rootfs", &roots);
        sweep("blobs/sha256", &blobs);
    }
}

#[async_trait]
impl ImageCatalog for ImageStore {
    async fn pull(&self, request: PullRequest) -> Result<ImageRecord, ImageError> {
        let r = Reference::parse(&request.reference).map_err(ImageError::Invalid)?;
        if request.trusted {
            self.0.allow(&r.registry);
        } else if !self.allowed(&r) {
            return Err(not_allowed(&r));
        }
        let store = self.0.clone();
        let timeout = self.0.client.options().pull_timeout;
        let reference = r.to_string();
        let pull = tokio::task::spawn_blocking(move || {
            let _one_at_a_time = store.changes.lock().unwrap_or_else(|p| p.into_inner());
            let (digest, layers, config) = store.fetch(&r)?;
            let record = ImageRecord {
                reference: r.to_string(),
                digest,
                size_bytes: layers.iter().map(|l| l.size).sum(),
                layers: layers.into_iter().map(|l| l.digest).collect(),
                config,
                resources: request.resources,
                default: request.default,
                pulled_at: OffsetDateTime::now_utc(),
            };
            store.register(record)
        });
        match tokio::time::timeout(timeout, pull).await {
            Ok(joined) => joined.map_err(|e| ImageError::Io(format!("the pull task failed: {e}")))?,
            Err(_) => Err(ImageError::TimedOut(format!(
                "pulling {reference} did not finish within {} s (VULCAN_IMAGE_PULL_TIMEOUT_S); the registry is slow or not answering",
                timeout.as_secs()
            ))),
        }
    }

    fn check_pull(&self, reference: &str, trusted: bool) -> Result<String, ImageError> {
        let r = Reference::parse(reference).map_err(ImageError::Invalid)?;
        let key = r.to_string();
        if trusted {
            self.0.allow(&r.registry);
        }
        if self.0.index().contains_key(&key) || self.allowed(&r) {
            Ok(key)
        } else {
            Err(not_allowed(&r))
        }
    }

    fn list(&self) -> Vec<ImageRecord> {
        self.0.index().values().cloned().collect()
    }

    fn get(&self, reference: &str) -> Result<ImageRecord, ImageError> {
        let key = ImageStore::normalise(reference)?;
        self.0
            .index()
            .get(&key)
            .cloned()
            .ok_or(ImageError::NotFound(key))
    }

    fn default_image(&self) -> Option<ImageRecord> {
        self.0.index().values().find(|r| r.default).cloned()
    }

    async fn remove(&self, reference: &str) -> Result<(), ImageError> {
        let key = ImageStore::normalise(reference)?;
        let store = self.0.clone();
        tokio::task::spawn_blocking(move || store.unregister(&key))
            .await
            .map_err(|e| ImageError::Io(format!("the removal task failed: {e}")))?
    }
}

fn not_allowed(r: &Reference) -> ImageError {
    ImageError::NotAllowed(format!(
        "registry {} is not allowed: list it in VULCAN_ALLOWED_REGISTRIES, or have an admin register an image from it (POST /v1/images)",
        r.registry
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(reference: &str) -> (tempfile::TempDir, ImageStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(
            dir.path().to_path_buf(),
            RegistryClient::new(Default::default()),
            1 << 20,
        )
        .unwrap();
        let digest = format!("sha256:{}", "a".repeat(64));
        std::fs::create_dir_all(store.0.rootfs_path(&digest).unwrap()).unwrap();
        store
            .0
            .register(ImageRecord {
                reference: reference.into(),
                digest,
                layers: Vec::new(),
                size_bytes: 0,
                config: ImageConfig::default(),
                resources: None,
                default: false,
                pulled_at: OffsetDateTime::now_utc(),
            })
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn an_image_in_use_cannot_be_removed_and_a_removed_one_cannot_be_leased() {
        let reference = "127.0.0.1:5000/x:1";
        let (_dir, store) = store_with(reference);
        let lease = store.lease(reference, |_| panic!("no pull")).await.unwrap();
        assert!(lease.rootfs.is_dir());
        assert!(matches!(
            store.remove(reference).await,
            Err(ImageError::Busy(_))
        ));
        drop(lease);
        store.remove(reference).await.unwrap();
        assert!(
            store.0.take_lease(&store, reference).unwrap().is_none(),
            "gone from the index, so no lease"
        );
    }

    #[test]
    fn pulls_go_only_to_allowed_registries_unless_an_admin_chose_one() {
        let (_dir, store) = store_with("127.0.0.1:5000/x:1");
        assert_eq!(
            store.check_pull("127.0.0.1:5000/other:2", false).unwrap(),
            "127.0.0.1:5000/other:2",
            "the registry of a registered image is allowed"
        );
        assert!(matches!(
            store.check_pull("127.0.0.1:6000/y:1", false),
            Err(ImageError::NotAllowed(_))
        ));
        store.check_pull("127.0.0.1:6000/y:1", true).unwrap();
        assert!(
            store.check_pull("127.0.0.1:6000/z:1", false).is_ok(),
            "an admin's choice allows the registry"
        );
    }
}
