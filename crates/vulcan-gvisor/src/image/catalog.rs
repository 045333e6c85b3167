//! The image catalog: registers images in the cluster's index, pulls each onto this node's
//! disk on first use (`fetch`: resolve, verify, download, unpack; what a manifest says is
//! `manifest`), leases roots to runs, and removes what nothing uses.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use time::OffsetDateTime;
use vulcan_domain::{
    ImageCatalog, ImageError, ImageIndex, ImageRecord, ImageRoots, LeasedRoot, PullRequest,
    StoreError, TemplateOnNode,
};

use super::reference::Reference;
use super::registry::{digest_hex, RegistryClient};

/// Images: registered once for the whole cluster in the store's image index, pulled,
/// verified and unpacked on each node's disk on first use (see the module documentation
/// for the layout). Cheap to clone: clones share one catalog.
#[derive(Clone)]
pub struct ImageStore(Arc<Inner>);

pub(super) struct Inner {
    pub(super) dir: PathBuf,
    pub(super) client: RegistryClient,
    /// Largest size an image may unpack to.
    pub(super) max_unpacked_bytes: u64,
    /// The registered images, shared by every node.
    pub(super) index: Arc<dyn ImageIndex>,
    /// This node, recorded with each image it has pulled.
    pub(super) node: String,
    /// Pulls and removals run one at a time, so two never unpack the same root. A std
    /// mutex, held by the blocking pull itself: a pull given up at its deadline keeps it
    /// until its last read times out.
    pub(super) changes: Arc<Mutex<()>>,
    /// Runs on this node using each image root (by manifest digest): never removed.
    pub(super) in_use: Mutex<HashMap<String, usize>>,
    /// Registries an admin has pulled from (or named in a run) since the start.
    pub(super) admin_allowed: Mutex<HashSet<String>>,
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

pub(super) fn io(what: &str, path: &Path, e: std::io::Error) -> ImageError {
    ImageError::Io(format!("cannot {what} {}: {e}", path.display()))
}

fn index_error(e: StoreError) -> ImageError {
    ImageError::Io(format!("the image index: {e}"))
}

impl ImageStore {
    /// Opens (creating) this node's image directory, dropping unpack leftovers of a crash,
    /// and registers in `index` the images an earlier version kept in `index.json`.
    pub async fn open(
        dir: PathBuf,
        client: RegistryClient,
        max_unpacked_bytes: u64,
        index: Arc<dyn ImageIndex>,
        node: String,
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
        let store = ImageStore(Arc::new(Inner {
            dir,
            client,
            max_unpacked_bytes,
            index,
            node,
            changes: Arc::new(Mutex::new(())),
            in_use: Mutex::new(HashMap::new()),
            admin_allowed: Mutex::new(HashSet::new()),
        }));
        store.import_legacy_index().await?;
        Ok(store)
    }

    /// Registers the images of an `index.json` file (how images were kept before the
    /// index moved into the store), then renames the file so it is read once.
    async fn import_legacy_index(&self) -> Result<(), String> {
        let path = self.0.dir.join("index.json");
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let records: Vec<ImageRecord> = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a valid image index: {e}", path.display()))?;
        let known = self.0.index.images().await.map_err(|e| e.to_string())?;
        for record in records {
            if !known.iter().any(|k| k.reference == record.reference) {
                self.0
                    .index
                    .put_image(&record)
                    .await
                    .map_err(|e| e.to_string())?;
                if self.0.rootfs_path(&record.digest).is_ok_and(|p| p.is_dir()) {
                    let _ = self
                        .0
                        .index
                        .image_pulled(&record.reference, &self.0.node)
                        .await;
                }
            }
        }
        std::fs::rename(&path, self.0.dir.join("index.json.imported"))
            .map_err(|e| format!("cannot rename {}: {e}", path.display()))
    }

    /// Image roots unpacked on this node's disk.
    pub fn roots_on_disk(&self) -> usize {
        std::fs::read_dir(self.0.dir.join("rootfs"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0)
    }

    fn normalise(reference: &str) -> Result<String, ImageError> {
        Reference::parse(reference)
            .map(|r| r.to_string())
            .map_err(ImageError::Invalid)
    }

    async fn registered(&self, key: &str) -> Result<Option<ImageRecord>, ImageError> {
        Ok(self
            .0
            .index
            .images()
            .await
            .map_err(index_error)?
            .into_iter()
            .find(|r| r.reference == key))
    }

    /// The registered image `reference`, pulled to this node first if it is not on its
    /// disk yet, or pulled and registered if it is not registered and its registry is
    /// allowed (`on_pull` is told before a pull starts). The returned lease keeps the image
    /// root from being removed while the run uses it.
    pub async fn lease(
        &self,
        reference: &str,
        on_pull: impl FnOnce(&str),
    ) -> Result<RootLease, ImageError> {
        let key = self.check_pull(reference, false).await?;
        let record = match self.registered(&key).await? {
            Some(record) if self.0.rootfs_path(&record.digest)?.is_dir() => record,
            Some(record) => {
                // Registered by another node: this one pulls the very same content.
                on_pull(&key);
                self.pull_here(&record).await?;
                record
            }
            None => {
                on_pull(&key);
                self.pull(PullRequest {
                    reference: key.clone(),
                    ..PullRequest::default()
                })
                .await?
            }
        };
        let rootfs = self.0.rootfs_path(&record.digest)?;
        *self
            .0
            .in_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(record.digest.clone())
            .or_insert(0) += 1;
        Ok(RootLease {
            store: self.clone(),
            digest: record.digest.clone(),
            record,
            rootfs,
        })
    }

    /// Pulls a registered image's exact manifest (by its digest) onto this node.
    async fn pull_here(&self, record: &ImageRecord) -> Result<(), ImageError> {
        let named = Reference::parse(&record.reference).map_err(ImageError::Invalid)?;
        let pinned = Reference {
            digest: Some(record.digest.clone()),
            ..named
        };
        let store = self.0.clone();
        let timeout = self.0.client.options().pull_timeout;
        let reference = record.reference.clone();
        let pull = tokio::task::spawn_blocking(move || {
            let _one_at_a_time = store.changes.lock().unwrap_or_else(|p| p.into_inner());
            store.fetch(&pinned).map(drop)
        });
        deadline(timeout, &reference, pull).await?;
        self.0
            .index
            .image_pulled(&record.reference, &self.0.node)
            .await
            .map_err(index_error)
    }

    /// Whether `r` may be pulled by anyone but an admin: its registry is listed in the
    /// allowed registries, an admin has pulled from it, or an image from it is registered.
    async fn allowed(&self, r: &Reference) -> Result<bool, ImageError> {
        let options = self.0.client.options();
        if options.allowed.iter().any(|a| a == &r.registry)
            || self.0.admin_allowed().contains(&r.registry)
        {
            return Ok(true);
        }
        Ok(self
            .0
            .index
            .images()
            .await
            .map_err(index_error)?
            .iter()
            .any(|image| {
                Reference::parse(&image.reference).is_ok_and(|known| known.registry == r.registry)
            }))
    }

    /// Removes blobs and roots on this node that no registered image needs and no run here
    /// is using.
    async fn collect_garbage(&self) {
        let Ok(images) = self.0.index.images().await else {
            return;
        };
        let store = self.0.clone();
        let _ = tokio::task::spawn_blocking(move || store.collect_garbage(&images)).await;
    }
}

/// Waits for a blocking pull, at most `timeout`.
async fn deadline<T>(
    timeout: std::time::Duration,
    reference: &str,
    pull: tokio::task::JoinHandle<Result<T, ImageError>>,
) -> Result<T, ImageError> {
    match tokio::time::timeout(timeout, pull).await {
        Ok(joined) => joined.map_err(|e| ImageError::Io(format!("the pull task failed: {e}")))?,
        Err(_) => Err(ImageError::TimedOut(format!(
            "pulling {reference} did not finish within {} s (VULCAN_IMAGE_PULL_TIMEOUT_S); the registry is slow or not answering",
            timeout.as_secs()
        ))),
    }
}

impl Inner {
    fn admin_allowed(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.admin_allowed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Allows pulls from `registry` from now on: an admin chose it.
    fn allow(&self, registry: &str) {
        self.admin_allowed().insert(registry.to_owned());
    }

    pub(super) fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.dir.join("blobs/sha256").join(digest_hex(digest)?))
    }

    pub(super) fn rootfs_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.dir.join("rootfs").join(digest_hex(digest)?))
    }

    /// Removes blobs and roots no image of `images` needs and no run here is using.
    /// Blocking.
    fn collect_garbage(&self, images: &[ImageRecord]) {
        let in_use: HashSet<String> = self
            .in_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        let mut roots = HashSet::new();
        let mut blobs = HashSet::new();
        for record in images {
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
        } else if !self.allowed(&r).await? {
            return Err(not_allowed(&r));
        }
        let store = self.0.clone();
        let timeout = self.0.client.options().pull_timeout;
        let reference = r.to_string();
        let pull = tokio::task::spawn_blocking(move || {
            let _one_at_a_time = store.changes.lock().unwrap_or_else(|p| p.into_inner());
            store.fetch(&r)
        });
        let (digest, layers, config) = deadline(timeout, &reference, pull).await?;
        let previous = self.registered(&reference).await?;
        let record = ImageRecord {
            reference: reference.clone(),
            digest,
            size_bytes: layers.iter().map(|l| l.size).sum(),
            layers: layers.into_iter().map(|l| l.digest).collect(),
            config,
            // Pulling again keeps what the operator set unless the request says otherwise.
            resources: request
                .resources
                .or(previous.as_ref().and_then(|p| p.resources)),
            default: request.default || previous.as_ref().is_some_and(|p| p.default),
            pulled_at: OffsetDateTime::now_utc(),
            nodes: Vec::new(),
            microvm: Vec::new(),
        };
        self.0.index.put_image(&record).await.map_err(index_error)?;
        self.0
            .index
            .image_pulled(&reference, &self.0.node)
            .await
            .map_err(index_error)?;
        self.collect_garbage().await;
        self.registered(&reference)
            .await?
            .ok_or(ImageError::NotFound(reference))
    }

    async fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        self.0.index.images().await.map_err(index_error)
    }

    async fn get(&self, reference: &str) -> Result<ImageRecord, ImageError> {
        let key = ImageStore::normalise(reference)?;
        self.registered(&key)
            .await?
            .ok_or(ImageError::NotFound(key))
    }

    async fn default_image(&self) -> Result<Option<ImageRecord>, ImageError> {
        Ok(self.list().await?.into_iter().find(|r| r.default))
    }

    async fn check_pull(&self, reference: &str, trusted: bool) -> Result<String, ImageError> {
        let r = Reference::parse(reference).map_err(ImageError::Invalid)?;
        let key = r.to_string();
        if trusted {
            self.0.allow(&r.registry);
        }
        if self.registered(&key).await?.is_some() || self.allowed(&r).await? {
            Ok(key)
        } else {
            Err(not_allowed(&r))
        }
    }

    /// Unregisters the image for the whole cluster, unless a run on this node holds its
    /// root (`409`); other nodes drop their copies when they next collect garbage.
    async fn remove(&self, reference: &str) -> Result<(), ImageError> {
        let key = ImageStore::normalise(reference)?;
        let record = self
            .registered(&key)
            .await?
            .ok_or_else(|| ImageError::NotFound(key.clone()))?;
        let busy = self
            .0
            .in_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&record.digest)
            .copied()
            .unwrap_or(0);
        if busy > 0 {
            return Err(ImageError::Busy(format!(
                "image {key} is used by {busy} running workload(s); remove it once they have finished"
            )));
        }
        if !self.0.index.remove_image(&key).await.map_err(index_error)? {
            return Err(ImageError::NotFound(key));
        }
        self.collect_garbage().await;
        Ok(())
    }
}

#[async_trait]
impl ImageRoots for ImageStore {
    async fn lease_root(
        &self,
        reference: &str,
        on_pull: &(dyn for<'p> Fn(&'p str) + Sync),
    ) -> Result<LeasedRoot, ImageError> {
        let lease = self.lease(reference, |r: &str| on_pull(r)).await?;
        Ok(LeasedRoot {
            record: lease.record.clone(),
            rootfs: lease.rootfs.clone(),
            hold: Box::new(lease),
        })
    }

    async fn registered_digests(&self) -> Result<Vec<String>, ImageError> {
        Ok(self.list().await?.into_iter().map(|r| r.digest).collect())
    }

    async fn record_template(
        &self,
        digest: &str,
        template: Option<TemplateOnNode>,
    ) -> Result<(), ImageError> {
        self.0
            .index
            .image_template(digest, &self.0.node, template.as_ref())
            .await
            .map_err(index_error)
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
    use vulcan_domain::ImageConfig;

    /// The image index as a map (the stores' own are tested by their contract suite).
    #[derive(Default)]
    struct Index(Mutex<Vec<ImageRecord>>);

    #[async_trait]
    impl ImageIndex for Index {
        async fn put_image(&self, record: &ImageRecord) -> Result<(), StoreError> {
            let mut all = self.0.lock().unwrap();
            all.retain(|r| r.reference != record.reference);
            all.push(record.clone());
            Ok(())
        }
        async fn remove_image(&self, reference: &str) -> Result<bool, StoreError> {
            let mut all = self.0.lock().unwrap();
            let before = all.len();
            all.retain(|r| r.reference != reference);
            Ok(all.len() < before)
        }
        async fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
            Ok(self.0.lock().unwrap().clone())
        }
        async fn image_pulled(&self, _: &str, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
        async fn image_template(
            &self,
            _: &str,
            _: &str,
            _: Option<&TemplateOnNode>,
        ) -> Result<(), StoreError> {
            Ok(())
        }
    }

    async fn store_with(reference: &str) -> (tempfile::TempDir, ImageStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(
            dir.path().to_path_buf(),
            RegistryClient::new(Default::default()),
            1 << 20,
            Arc::new(Index::default()),
            "node-a".into(),
        )
        .await
        .unwrap();
        let digest = format!("sha256:{}", "a".repeat(64));
        std::fs::create_dir_all(store.0.rootfs_path(&digest).unwrap()).unwrap();
        store
            .0
            .index
            .put_image(&ImageRecord {
                reference: reference.into(),
                digest,
                layers: Vec::new(),
                size_bytes: 0,
                config: ImageConfig::default(),
                resources: None,
                default: false,
                pulled_at: OffsetDateTime::now_utc(),
                nodes: Vec::new(),
                microvm: Vec::new(),
            })
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn an_image_in_use_cannot_be_removed_and_its_root_goes_with_it() {
        let reference = "127.0.0.1:5000/x:1";
        let (_dir, store) = store_with(reference).await;
        let lease = store.lease(reference, |_| panic!("no pull")).await.unwrap();
        assert!(lease.rootfs.is_dir());
        assert!(matches!(
            store.remove(reference).await,
            Err(ImageError::Busy(_))
        ));
        let root = lease.rootfs.clone();
        drop(lease);
        store.remove(reference).await.unwrap();
        assert!(!root.exists(), "the root no image needs is removed");
        assert!(matches!(
            store.get(reference).await,
            Err(ImageError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn pulls_go_only_to_allowed_registries_unless_an_admin_chose_one() {
        let (_dir, store) = store_with("127.0.0.1:5000/x:1").await;
        assert_eq!(
            store
                .check_pull("127.0.0.1:5000/other:2", false)
                .await
                .unwrap(),
            "127.0.0.1:5000/other:2",
            "the registry of a registered image is allowed"
        );
        assert!(matches!(
            store.check_pull("127.0.0.1:6000/y:1", false).await,
            Err(ImageError::NotAllowed(_))
        ));
        store.check_pull("127.0.0.1:6000/y:1", true).await.unwrap();
        assert!(
            store.check_pull("127.0.0.1:6000/z:1", false).await.is_ok(),
            "an admin's choice allows the registry"
        );
    }

    #[tokio::test]
    async fn an_index_json_of_an_earlier_version_is_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        let record = serde_json::json!([{
            "reference": "127.0.0.1:5000/old:1",
            "digest": format!("sha256:{}", "d".repeat(64)),
            "layers": [],
            "size_bytes": 1,
            "config": {},
            "default": true,
            "pulled_at": "2026-01-01T00:00:00Z"
        }]);
        std::fs::write(dir.path().join("index.json"), record.to_string()).unwrap();
        let index = Arc::new(Index::default());
        let store = ImageStore::open(
            dir.path().to_path_buf(),
            RegistryClient::new(Default::default()),
            1 << 20,
            index.clone(),
            "node-a".into(),
        )
        .await
        .unwrap();
        let default = store.default_image().await.unwrap().unwrap();
        assert_eq!(default.reference, "127.0.0.1:5000/old:1");
        assert!(!dir.path().join("index.json").exists());
        assert!(dir.path().join("index.json.imported").exists());
    }
}
