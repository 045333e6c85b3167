//! Pulling an image onto this node: the manifest resolved (an index to its linux/amd64
//! manifest) and checked against its digest, the config read, every layer downloaded (what
//! is not there yet) and checked against its digest and size, then the layers unpacked
//! under the archive rules into a root of its own, atomically (a partial directory renamed
//! when complete). Blocking: called off the async runtime.

use vulcan_domain::{ImageConfig, ImageError};
use vulcan_sandbox::archive::{unpack, Rules, UnpackError};

use super::catalog::{io, Inner};
use super::manifest::{ConfigBlob, Descriptor, Manifest, INDEX_MEDIA};
use super::reference::Reference;
use super::registry::{digest_hex, sha256_digest};

impl Inner {
    /// Resolves, downloads (what is not cached yet) and unpacks an image. Blocking.
    pub(super) fn fetch(
        &self,
        r: &Reference,
    ) -> Result<(String, Vec<Descriptor>, ImageConfig), ImageError> {
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
}
