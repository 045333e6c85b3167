//! Volumes ([`vulcan_domain::Volume`]): a tenant's named ext4 files on the node that made
//! them, mounted by that node's sandboxes and workloads. Their records and the rule of one writer are
//! the store's (checked in the transaction that records a sandbox); their files are here,
//! under [`SandboxLimits::volume_dir`](super::SandboxLimits).

use std::collections::HashSet;

use time::OffsetDateTime;
use vulcan_domain::{Volume, VolumeAttach, VolumeMount};

use super::SandboxError;
use crate::Engine;

/// The smallest volume, in MiB (ext4 needs room for its own structures).
pub const MIN_VOLUME_MB: u32 = 16;

/// Volumes one sandbox mounts at most.
pub const MAX_MOUNTS: usize = 8;

impl Engine {
    /// Makes volume `name` of `size_mb` for `tenant` on this node.
    pub async fn create_volume(
        &self,
        tenant: &str,
        name: &str,
        size_mb: u32,
    ) -> Result<Volume, SandboxError> {
        Volume::check_name(name).map_err(SandboxError::Invalid)?;
        let limits = &self.inner.sandboxes.limits;
        if !(MIN_VOLUME_MB..=limits.max_disk_mb).contains(&size_mb) {
            return Err(SandboxError::Invalid(format!(
                "\"size_mb\" is {size_mb}; it must be between {MIN_VOLUME_MB} and {} (a sandbox's largest disk)",
                limits.max_disk_mb
            )));
        }
        let volume = Volume {
            id: format!("vol{}", ulid::Ulid::new().to_string().to_lowercase()),
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            size_mb,
            node_id: self.inner.config.node_id.clone(),
            created_at: OffsetDateTime::now_utc(),
        };
        let file = self.inner.volume_file(&volume);
        let made = file.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = made.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            vulcan_sandbox::disk::make_volume(&made, size_mb)
        })
        .await
        .map_err(|e| SandboxError::Backend(format!("making the volume's disk failed: {e}")))?
        .map_err(|why| {
            SandboxError::Backend(format!("the volume's disk could not be made: {why}"))
        })?;
        let limit = limits.max_volumes_per_tenant;
        if let Err(e) = self.inner.sandbox_store.insert_volume(&volume, limit).await {
            let _ = std::fs::remove_file(&file);
            return Err(e.into());
        }
        Ok(volume)
    }

    /// A tenant's volumes (everyone's for `None`).
    pub async fn volumes(&self, tenant: Option<&str>) -> Result<Vec<Volume>, SandboxError> {
        Ok(self.inner.sandbox_store.volumes(tenant).await?)
    }

    pub async fn volume(&self, tenant: &str, name: &str) -> Result<Volume, SandboxError> {
        Ok(self.inner.sandbox_store.volume(tenant, name).await?)
    }

    /// Deletes a volume and its data; refused while a sandbox mounts it, and on another
    /// node than its own (whose disk its data is on).
    pub async fn delete_volume(&self, tenant: &str, name: &str) -> Result<Volume, SandboxError> {
        let volume = self.volume(tenant, name).await?;
        self.inner.on_this_node(&volume)?;
        let volume = self.inner.sandbox_store.delete_volume(tenant, name).await?;
        let _ = std::fs::remove_file(self.inner.volume_file(&volume));
        Ok(volume)
    }
}

impl crate::engine::Inner {
    /// The files on this node of the volumes `mounts` names, checked: the tenant's, on
    /// this node, each at its own absolute path.
    pub(crate) async fn volume_attachments(
        &self,
        tenant: &str,
        mounts: &[VolumeMount],
    ) -> Result<Vec<VolumeAttach>, SandboxError> {
        let mut attached = Vec::new();
        for (volume, mount) in self.mounted_volumes(tenant, mounts).await? {
            self.on_this_node(&volume)?;
            attached.push(VolumeAttach {
                file: self.volume_file(&volume),
                path: mount.path.trim_end_matches('/').to_owned(),
                read_only: mount.read_only,
            });
        }
        Ok(attached)
    }

    /// The node whose volumes a workload's `mounts` name (it runs there), checked as a
    /// sandbox's are; `None` for no mounts.
    pub(crate) async fn volumes_node(
        &self,
        tenant: &str,
        mounts: &[VolumeMount],
    ) -> Result<Option<String>, SandboxError> {
        let mut node: Option<String> = None;
        for (volume, _) in self.mounted_volumes(tenant, mounts).await? {
            match &node {
                Some(n) if *n != volume.node_id => {
                    return Err(SandboxError::Invalid(format!(
                        "volume {} is on node {} and another on node {n}: a workload mounts volumes of one node only",
                        volume.name, volume.node_id
                    )))
                }
                _ => node = Some(volume.node_id),
            }
        }
        Ok(node)
    }

    /// The volumes `mounts` names, checked: the tenant's, each once, each at its own
    /// absolute path that is not `/`.
    async fn mounted_volumes<'m>(
        &self,
        tenant: &str,
        mounts: &'m [VolumeMount],
    ) -> Result<Vec<(Volume, &'m VolumeMount)>, SandboxError> {
        if mounts.len() > MAX_MOUNTS {
            return Err(SandboxError::Invalid(format!(
                "{} volumes are asked for; at most {MAX_MOUNTS} are mounted",
                mounts.len()
            )));
        }
        let (mut names, mut paths) = (HashSet::new(), HashSet::new());
        let mut found = Vec::new();
        for mount in mounts {
            let path = mount.path.trim_end_matches('/');
            if !mount.path.starts_with('/')
                || path.is_empty()
                || path.split('/').any(|part| part == ".." || part == ".")
                || path.contains('\0')
            {
                return Err(SandboxError::Invalid(format!(
                    "volume {}'s path {:?} must be an absolute path inside the sandbox, not / and without . or ..",
                    mount.name, mount.path
                )));
            }
            if !names.insert(mount.name.as_str()) || !paths.insert(path.to_owned()) {
                return Err(SandboxError::Invalid(format!(
                    "volume {} (or its path {path}) is given twice",
                    mount.name
                )));
            }
            let volume = self
                .sandbox_store
                .volume(tenant, &mount.name)
                .await
                .map_err(|_| {
                    SandboxError::Invalid(format!(
                        "volume {} not found: make it first (POST /v1/volumes)",
                        mount.name
                    ))
                })?;
            found.push((volume, mount));
        }
        Ok(found)
    }

    fn on_this_node(&self, volume: &Volume) -> Result<(), SandboxError> {
        let here = &self.config.node_id;
        if &volume.node_id == here {
            return Ok(());
        }
        Err(SandboxError::Conflict(format!(
            "volume {}'s data is on node {}, not this one ({here}): send the request there",
            volume.name, volume.node_id
        )))
    }

    fn volume_file(&self, volume: &Volume) -> std::path::PathBuf {
        self.sandboxes
            .limits
            .volume_dir
            .join(format!("{}.ext4", volume.id))
    }
}
