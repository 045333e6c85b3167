//! VMs restored from snapshots: the snapshots of this host's assets, opened at first need;
//! the snapshot of a shape made the first time it is needed (a guest booted with its
//! runtime warmed, saved when its agent is Ready; one at a time); a VM restored from it.
//! What is kept and checked on disk is [`crate::snapshot`].

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use vulcan_domain::{LogSink, LogStream, Resources, Runtime};

use crate::snapshot::{self, Shape, Snapshots};
use crate::vm::Vm;
use vulcan_sandbox::network::{ScratchTap, TAP};

use crate::templates::Template;
use crate::vmm::{self, GuestMemory, Nic, VmSpec};
use crate::{runtime_rootfs, with_nic, Inner, Ready, GUEST_OVERHEAD_MB};

/// How long saving a booted guest into a snapshot may take (≈ 0.7 s under TCG).
const SAVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a VM could not come from a snapshot.
pub(crate) enum NotRestored {
    /// No snapshot, and making one failed (its boot counts as the workload's boot).
    Snapshot(String),
    /// A snapshot was there but did not restore.
    Restore(String),
}

impl Inner {
    /// How a VM to be snapshotted, and every VM restored from it, is started: as any VM,
    /// with its runtime warmed (and, with a NIC, its driver loaded) before Ready and a
    /// control socket.
    pub(crate) fn snapshot_spec(
        &self,
        ready: &Ready,
        shape: Shape,
        resources: Resources,
        template: Option<&Template>,
    ) -> VmSpec {
        let runtime = shape.runtime;
        let mut spec = self.spec(ready, runtime, resources, template);
        if runtime_rootfs(runtime) || template.is_some() {
            spec.cmdline_extra = format!("{} vulcan.prewarm={runtime}", spec.cmdline_extra)
                .trim()
                .to_owned();
        }
        if shape.nic {
            spec.cmdline_extra = with_nic(&spec.cmdline_extra);
        }
        if shape.data_disk_mb.is_some() {
            spec.cmdline_extra = format!("{} {}", spec.cmdline_extra, vulcan_agent::DATA_DISK_ARG);
        }
        spec.qmp = Some(PathBuf::new());
        spec
    }

    pub(crate) fn shape(
        runtime: Runtime,
        resources: Resources,
        nic: bool,
        template: Option<&Template>,
    ) -> Shape {
        Shape {
            runtime,
            mem_mb: resources.mem_mb + GUEST_OVERHEAD_MB,
            cpus: resources.cpus,
            nic,
            template: template.map(|t| t.id),
            data_disk_mb: None,
        }
    }

    pub(crate) async fn snapshots(&self) -> Result<Arc<Snapshots>, String> {
        let ready = self.state.as_ref().map_err(Clone::clone)?;
        let files = [
            ready.kernel.clone(),
            ready.initramfs.clone(),
            ready.rootfs.clone(),
        ];
        // `ram-file`: snapshots whose RAM is a file of its own (older ones carried it in
        // the state) are another kind: those of before are stale.
        let settings = format!(
            "{}|{}|{}|{}|ram-file",
            ready.qemu_version,
            ready.accel.as_str(),
            vmm::KERNEL_CMDLINE,
            ready.cmdline_extra
        );
        let dir = self.config.work_dir.join("snapshots");
        self.snapshots
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
                    let assets =
                        snapshot::assets_digest(&paths, &settings, &dir.join("digests.json"))?;
                    Snapshots::open(dir, assets).map(Arc::new)
                })
                .await
                .map_err(|e| format!("opening the snapshots failed: {e}"))?
            })
            .await
            .clone()
    }

    /// A VM restored from the snapshot of its shape, made first if there is none; with
    /// `nic`, from a snapshot of a VM that had one, attached to this one's tap.
    pub(crate) async fn restore(
        &self,
        runtime: Runtime,
        resources: Resources,
        logs: Option<&dyn LogSink>,
        nic: Option<Nic>,
        template: Option<&Template>,
    ) -> Result<(Vm, String), NotRestored> {
        let ready = self
            .state
            .as_ref()
            .map_err(|e| NotRestored::Snapshot(e.clone()))?;
        let snapshots = self.snapshots().await.map_err(NotRestored::Snapshot)?;
        let shape = Self::shape(runtime, resources, nic.is_some(), template);
        let found = match find(&snapshots, shape).await {
            Ok(Some(found)) => found,
            other => {
                if let (Err(e), Some(logs)) = (&other, logs) {
                    logs.emit(LogStream::Backend, e.clone());
                }
                let made = self
                    .make_snapshot(ready, &snapshots, shape, resources, template)
                    .await
                    .map_err(NotRestored::Snapshot)?;
                if let (Some(templates), Some(_)) = (&self.templates, template) {
                    templates.settle(&snapshots).await;
                }
                made
            }
        };
        let spec = VmSpec {
            incoming: Some(found.state.clone()),
            memory: Some(GuestMemory {
                file: found.memory.clone(),
                shared: false,
            }),
            nic,
            ..self.snapshot_spec(ready, shape, resources, template)
        };
        let vm = Vm::restore(
            ready.vmm.as_ref(),
            spec,
            &self.config.work_dir.join("vms"),
            self.config.boot_timeout,
            found.meta.ready.clone(),
        )
        .await
        .map_err(NotRestored::Restore)?;
        self.counters.restored(&vm);
        Ok((vm, found.name))
    }

    /// Boots a VM of `shape` to Ready with its runtime warmed, saves it, and puts the
    /// snapshot in place (unless another task made it meanwhile). A shape with a NIC is
    /// booted with it on a tap that leads nowhere ([`ScratchTap`]).
    pub(crate) async fn make_snapshot(
        &self,
        ready: &Ready,
        snapshots: &Arc<Snapshots>,
        shape: Shape,
        resources: Resources,
        template: Option<&Template>,
    ) -> Result<snapshot::Found, String> {
        let runtime = shape.runtime;
        let _one = self.making.lock().await;
        if let Ok(Some(found)) = find(snapshots, shape).await {
            return Ok(found);
        }
        let started = std::time::Instant::now();
        let partial = snapshots.partial(&shape)?;
        let made = async {
            let scratch = match shape.nic {
                true => Some(
                    tokio::task::spawn_blocking(ScratchTap::new)
                        .await
                        .map_err(|e| format!("making the snapshot's tap failed: {e}"))??,
                ),
                false => None,
            };
            // A sandbox's VM is booted with its empty disk: each restored one gets a copy.
            let data_disk = match shape.data_disk_mb {
                Some(mb) => {
                    let disk = partial.join(snapshot::DATA_DISK);
                    let made = disk.clone();
                    tokio::task::spawn_blocking(move || vulcan_sandbox::disk::make_ext4(&made, mb))
                        .await
                        .map_err(|e| format!("making the snapshot's disk failed: {e}"))??;
                    Some(disk)
                }
                None => None,
            };
            let spec = VmSpec {
                memory: Some(GuestMemory {
                    file: partial.join(snapshot::MEMORY),
                    shared: true,
                }),
                data_disk,
                nic: scratch.as_ref().map(|tap| Nic {
                    namespace: tap.namespace_path(),
                    tap: TAP.into(),
                }),
                ..self.snapshot_spec(ready, shape, resources, template)
            };
            let vm = Vm::boot(
                ready.vmm.as_ref(),
                spec,
                &self.config.work_dir.join("vms"),
                self.config.boot_timeout,
            )
            .await?;
            // The snapshot's boot is a boot like any other, for the figures.
            self.counters
                .recent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .0
                .push(vm.boot_time);
            let agent = vm.ready.clone();
            vm.save(&partial.join("state"), SAVE_TIMEOUT).await?;
            let snapshots = snapshots.clone();
            let partial = partial.clone();
            tokio::task::spawn_blocking(move || snapshots.commit(&shape, &partial, agent))
                .await
                .map_err(|e| format!("describing the snapshot failed: {e}"))?
        }
        .await;
        match &made {
            Ok(found) => {
                self.counters.snapshots_made.fetch_add(1, Ordering::Relaxed);
                tracing::info!(snapshot = %found.name, size = found.meta.size_bytes, ms = started.elapsed().as_millis() as u64, "made a microVM snapshot");
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&partial);
                tracing::warn!(%runtime, error = %e, "could not make a microVM snapshot");
            }
        }
        made
    }
}

/// The valid snapshot of `shape`, checked off the async runtime (a first check reads the
/// whole state).
pub(crate) async fn find(
    snapshots: &Arc<Snapshots>,
    shape: Shape,
) -> Result<Option<snapshot::Found>, String> {
    let snapshots = snapshots.clone();
    tokio::task::spawn_blocking(move || snapshots.find(&shape))
        .await
        .map_err(|e| format!("checking the snapshot failed: {e}"))?
}
