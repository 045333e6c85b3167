//! A run's bundle: the image leased (pulled if needed), the code archive unpacked, and
//! the OCI spec runsc reads written ([`bundle`] makes the spec).

use std::path::PathBuf;
use std::sync::Arc;

use vulcan_domain::{BackendError, ImageError, LogSink, LogStream, WorkloadSpec};
use vulcan_sandbox::archive::{self, Rules};
use vulcan_sandbox::network::SandboxNetwork;

use crate::bundle;
use crate::image::catalog::RootLease;
use crate::sandbox_cgroups::CgroupBase;
use crate::{json_of, GvisorBackend};

/// Unpacks a workload's tar.gz into `dir` with the rules every code archive follows (no
/// entry may leave `dir`, one size budget), off the async runtime.
async fn unpack_archive(archive: Vec<u8>, dir: PathBuf) -> Result<(), BackendError> {
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)
            .map_err(|e| BackendError(format!("cannot create {}: {e}", dir.display())))?;
        archive::unpack(&dir, &archive[..], Rules::code_archive())
            .map(|_| ())
            .map_err(|e| BackendError(format!("\"code_archive\" was refused: {e}")))
    })
    .await
    .map_err(|e| BackendError(format!("unpacking the archive failed: {e}")))?
}

/// A failed implicit pull as the workload's error: which image and why, with the
/// registry's own answer only in the server log (callers must not learn what the
/// server's network looks like).
fn pull_failure(reference: &str, e: ImageError) -> BackendError {
    match e {
        ImageError::Registry(detail) => {
            tracing::warn!(image = reference, error = %detail, "implicit pull failed");
            BackendError(format!(
                "pulling image {reference} failed: the registry could not be reached or refused it (an admin finds the details in the server log)"
            ))
        }
        other => BackendError(other.to_string()),
    }
}

/// A sandbox's bundle, written: `config.json` (and `process.json`, the process alone).
pub(crate) struct Bundle {
    /// Keeps the image's root on disk while the sandbox uses it.
    pub image: RootLease,
    pub dir: PathBuf,
    pub memory_limit: u64,
}

impl GvisorBackend {
    /// Leases the image (pulling it if needed), unpacks the code archive and writes the
    /// bundle of sandbox `id`; `hold` makes it a warm instance's (see [`warm`]), `pod` a
    /// container in that pod (see [`pods`]).
    pub(crate) async fn bundle(
        &self,
        id: &str,
        spec: &WorkloadSpec,
        logs: &Arc<dyn LogSink>,
        hold: bool,
        network: Option<&SandboxNetwork>,
        pod: Option<&str>,
    ) -> Result<Bundle, BackendError> {
        let reference = spec
            .run
            .image
            .as_deref()
            .ok_or_else(|| BackendError("runtime oci needs \"image\"".into()))?;
        let image = self
            .images
            .lease(reference, |r| {
                logs.emit(
                    LogStream::Backend,
                    format!("pulling image {r}: it is not in the local image store"),
                )
            })
            .await
            .map_err(|e| pull_failure(reference, e))?;
        if bundle::argv(&image.record.config, spec.run.command.as_deref()).is_empty() {
            return Err(BackendError(format!(
                "image {} has no entrypoint or cmd: give \"command\"",
                image.record.reference
            )));
        }
        let (uid, gid) =
            bundle::user(&image.rootfs, &image.record.config.user).map_err(BackendError)?;
        let dir = self.bundle_dir(id);
        let work = match &spec.run.code_archive {
            Some(archive) => {
                let work = dir.join("work");
                unpack_archive(archive.clone(), work.clone()).await?;
                Some(work)
            }
            None => None,
        };
        let hold_path = self.config.work_dir.join("hold");
        let (namespace, resolv_conf) = (
            network.map(SandboxNetwork::namespace_path),
            dir.join("resolv.conf"),
        );
        if let Some(network) = network {
            std::fs::create_dir_all(&dir)
                .and_then(|()| {
                    std::fs::write(&resolv_conf, format!("nameserver {}\n", network.resolver()))
                })
                .map_err(|e| BackendError(format!("cannot write the bundle: {e}")))?;
        }
        let run = bundle::RunSpec {
            rootfs: &image.rootfs,
            image: &image.record.config,
            command: spec.run.command.as_deref(),
            env: &spec.run.env,
            resources: spec.run.resources,
            pids_limit: self.config.pids_limit,
            cgroup: &CgroupBase::runsc_path(id),
            work: work.as_deref(),
            hold: hold.then_some(hold_path.as_path()),
            network: namespace.as_deref().map(|namespace| bundle::NetworkSpec {
                namespace,
                resolv_conf: &resolv_conf,
            }),
            pod,
        };
        let mut config = bundle::config(&run, uid, gid).map_err(BackendError)?;
        if !spec.attached.is_empty() {
            let (at, attached) = (dir.clone(), spec.attached.clone());
            tokio::task::spawn_blocking(move || crate::sandboxes::mount_volumes(&at, &attached))
                .await
                .map_err(|e| BackendError(format!("mounting the volumes failed: {e}")))?
                .map_err(BackendError)?;
            let bound = crate::sandboxes::bound_volumes(&dir, &spec.attached);
            bundle::bind_volumes(&mut config, &bound).map_err(BackendError)?;
        }
        let process = bundle::process(&run, uid, gid).map_err(BackendError)?;
        let write = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("config.json"), json_of(&config)))
            .and_then(|()| std::fs::write(dir.join("process.json"), json_of(&process)));
        write.map_err(|e| BackendError(format!("cannot write the bundle: {e}")))?;
        Ok(Bundle {
            image,
            dir,
            memory_limit: bundle::memory_limit_bytes(spec.run.resources.mem_mb),
        })
    }
}
