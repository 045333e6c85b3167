//! The port that keeps OCI images: pulled from registries, verified, unpacked once and
//! shared read-only by every run (seed 003's ImageRegistry).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Resources, StoreError};

/// What an image's configuration says about running it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    /// `NAME=value` pairs.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default)]
    pub user: String,
}

/// One registered image.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The reference as the user wrote it (normalised: registry, repository, tag).
    pub reference: String,
    /// The manifest's digest, `sha256:...`.
    pub digest: String,
    /// Layer digests, base first.
    pub layers: Vec<String>,
    /// Compressed size of all layers, in bytes.
    pub size_bytes: u64,
    pub config: ImageConfig,
    /// Resources a workload of this image gets when it names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Whether runtime `oci` workloads that name no image run this one.
    #[serde(default)]
    pub default: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub pulled_at: OffsetDateTime,
    /// The nodes that have it pulled and verified (each pulls it on first use).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// What each node has made of it for microVMs: the root converted from its layers and
    /// the snapshots of VMs booted from that root.
    #[serde(default)]
    pub microvm: Vec<NodeTemplate>,
}

/// What one node keeps of an image for microVMs (a template).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateOnNode {
    /// The read-only root file converted from the layers, in bytes on disk (0: none).
    pub root_bytes: u64,
    /// Snapshots of VMs booted from that root (one per memory and CPU shape and runtime).
    pub snapshots: u32,
    /// Their size on disk, in bytes.
    pub snapshot_bytes: u64,
}

/// [`TemplateOnNode`] of one node.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTemplate {
    pub node: String,
    #[serde(flatten)]
    pub template: TemplateOnNode,
}

/// An image's root on this node's disk, held for one run: not removed until dropped.
pub struct LeasedRoot {
    pub record: ImageRecord,
    /// The unpacked root directory (read-only: shared by every run of the image).
    pub rootfs: std::path::PathBuf,
    /// Releases the root when dropped.
    pub hold: Box<dyn Send + Sync>,
}

/// Image roots for backends that run something else than the unpacked directory (a
/// microVM's root file made from it).
#[async_trait]
pub trait ImageRoots: Send + Sync {
    /// The registered image `reference`, pulled to this node first if needed (as a gVisor
    /// run would; `on_pull` is told before a pull starts), held while the lease lives.
    async fn lease_root(
        &self,
        reference: &str,
        on_pull: &(dyn for<'p> Fn(&'p str) + Sync),
    ) -> Result<LeasedRoot, ImageError>;

    /// The manifest digests of every registered image (a node's templates of any other
    /// are removed).
    async fn registered_digests(&self) -> Result<Vec<String>, ImageError>;

    /// Records what this node keeps for microVMs of the image with manifest `digest`
    /// (`None`: nothing any more).
    async fn record_template(
        &self,
        digest: &str,
        template: Option<TemplateOnNode>,
    ) -> Result<(), ImageError>;
}

/// `POST /v1/images`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = "^((localhost|[A-Za-z0-9-]*[.][A-Za-z0-9.-]*|[A-Za-z0-9.-]+:[0-9]+)/)?[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-fA-F]{64})?$",
            max_length = 512
        )
    )]
    pub reference: String,
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub resources: Option<Resources>,
    /// Set for an admin's pull: it may go to any registry (and that registry is allowed
    /// from then on). Never read from a request body.
    #[serde(skip)]
    pub trusted: bool,
}

/// Why an image operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The request is wrong; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    #[error("image {0} is not registered")]
    NotFound(String),
    /// The image is in use and cannot be removed now.
    #[error("{0}")]
    Busy(String),
    /// The registry could not be reached or answered an error.
    #[error("{0}")]
    Registry(String),
    /// The pull did not finish within its deadline.
    #[error("{0}")]
    TimedOut(String),
    /// The image's registry is not one pulls may go to.
    #[error("{0}")]
    NotAllowed(String),
    /// Content did not match its digest, or broke the unpacking rules.
    #[error("{0}")]
    Integrity(String),
    #[error("image store failure: {0}")]
    Io(String),
}

/// Where the registered images are kept: once for every node sharing the store.
#[async_trait]
pub trait ImageIndex: Send + Sync {
    /// Registers an image, or replaces its record.
    async fn put_image(&self, record: &ImageRecord) -> Result<(), StoreError>;

    /// Unregisters an image; false if it was not registered.
    async fn remove_image(&self, reference: &str) -> Result<bool, StoreError>;

    /// Every registered image, by reference, with the nodes that have it.
    async fn images(&self) -> Result<Vec<ImageRecord>, StoreError>;

    /// Records that `node` has pulled and verified the image.
    async fn image_pulled(&self, reference: &str, node: &str) -> Result<(), StoreError>;

    /// Records what `node` keeps for microVMs of the images with manifest `digest` (every
    /// reference to it that the node has pulled).
    async fn image_template(
        &self,
        digest: &str,
        node: &str,
        template: Option<&TemplateOnNode>,
    ) -> Result<(), StoreError>;
}

/// Pulls, lists and removes images.
#[async_trait]
pub trait ImageCatalog: Send + Sync {
    /// Pulls `request.reference` (again, if already registered) and registers it.
    async fn pull(&self, request: PullRequest) -> Result<ImageRecord, ImageError>;

    /// Whether a run naming `reference` may use it: it is registered, or it may be pulled
    /// (its registry is allowed). With `trusted` (an admin's run) any registry may be, and
    /// is allowed from then on. Returns the normalised reference; opens no connection.
    async fn check_pull(&self, reference: &str, trusted: bool) -> Result<String, ImageError>;

    async fn list(&self) -> Result<Vec<ImageRecord>, ImageError>;

    async fn get(&self, reference: &str) -> Result<ImageRecord, ImageError>;

    /// The image `oci` workloads without an `image` run, if one is marked default.
    async fn default_image(&self) -> Result<Option<ImageRecord>, ImageError>;

    async fn remove(&self, reference: &str) -> Result<(), ImageError>;
}
