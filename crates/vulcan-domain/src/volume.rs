//! Volumes: a tenant's named disks whose data outlives every sandbox that mounts them
//! (kept by [`crate::SandboxStore`]). A volume is an ext4 file on the node that made it;
//! a sandbox of that node mounts it at a path, read-write (one at a time: a second
//! writer, or a reader beside a writer, is refused) or read-only (any number of them).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One volume, as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Names its file on its node.
    pub id: String,
    pub tenant: String,
    /// Unique per tenant: what a sandbox's `volumes` name.
    pub name: String,
    /// Its size: what its files may fill.
    pub size_mb: u32,
    /// The node its data is on: only that node's sandboxes mount it.
    pub node_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Volume {
    /// Why `name` is not a volume's name, if it is not one.
    pub fn check_name(name: &str) -> Result<(), String> {
        check_resource_name("volume", name)
    }
}

/// Why `name` is not the name of a tenant's `kind` (a volume, a queue, a topic): 1-63 of
/// a-z, 0-9, '-' and '_', starting with a letter or digit.
pub fn check_resource_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        return Ok(());
    }
    Err(format!(
        "{kind} name {name:?} is not one: give 1-63 of a-z, 0-9, '-' and '_', starting with a letter or digit"
    ))
}

/// A volume mounted in a sandbox.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// The volume's name (the tenant's).
    pub name: String,
    /// An absolute path inside the sandbox, not `/`.
    pub path: String,
    #[serde(default)]
    pub read_only: bool,
}

/// A volume for a backend to mount: its file on this node, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeAttach {
    pub file: std::path::PathBuf,
    pub path: String,
    pub read_only: bool,
}
