//! How a sandbox's VM comes to be: restored from the snapshot of its shape (made by
//! booting the first one), booted where there is no snapshot, or taken back paused after a
//! restart of the server from what `sandbox.json` kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use vulcan_agent::{FromImage, HeldVolume, Run, DATA_DISK_ARG};
use vulcan_domain::{
    BackendError, LeasedRoot, LiveSandbox, Resources, Runtime, Sandbox, SandboxLaunch,
    SandboxResources, SandboxUsage, VolumeAttach,
};
use vulcan_sandbox::image_user;

use super::files::VmFiles;
use super::link::Calls;
use super::{sample, Held, MicrovmSandbox, MicrovmSandboxes, Phase, Traced};
use crate::snapshot::Shape;
use crate::templates::Template;
use crate::vm::Vm;
use crate::vmm::{GuestMemory, VmSpec};
use crate::Inner;

impl MicrovmSandboxes {
    pub(super) async fn start(
        &self,
        launch: &SandboxLaunch,
        dir: &Path,
    ) -> Result<Box<dyn LiveSandbox>, BackendError> {
        let ready = self
            .inner
            .state
            .as_ref()
            .map_err(|r| BackendError(format!("the microvm backend is unavailable: {r}")))?;
        let templates = self
            .inner
            .templates
            .as_ref()
            .ok_or_else(|| BackendError("this node's microVMs have no image store".into()))?;
        let (template, lease) = templates
            .root(&launch.image, &Traced, None)
            .await
            .map_err(BackendError)?;
        let config = lease.record.config.clone();
        let owner = image_user::user(&lease.rootfs, &config.user).map_err(BackendError)?;
        std::fs::create_dir_all(dir)
            .map_err(|e| BackendError(format!("cannot create {}: {e}", dir.display())))?;
        let spec = self.spec_of(&launch.resources, &template, dir, &launch.volumes)?;
        // A VM with volumes has disks its shape's snapshot has not: it boots.
        let restored = match self.inner.config.snapshots && launch.volumes.is_empty() {
            true => match self.restored(launch, &template, &spec).await {
                Ok(vm) => Some(vm),
                Err(e) => {
                    tracing::warn!(error = %e, "a microVM sandbox did not restore; booting it");
                    None
                }
            },
            false => None,
        };
        let mut vm = match restored {
            Some(vm) => vm,
            None => {
                let _ = std::fs::remove_file(dir.join("memory"));
                let (disk, disk_mb) = (dir.join("disk.img"), launch.resources.disk_mb);
                tokio::task::spawn_blocking(move || {
                    vulcan_sandbox::disk::make_ext4(&disk, disk_mb)
                })
                .await
                .map_err(|e| BackendError(e.to_string()))?
                .map_err(BackendError)?;
                Vm::boot(
                    ready.vmm.as_ref(),
                    spec.clone(),
                    &self.inner.config.work_dir.join("vms"),
                    self.inner.config.boot_timeout,
                )
                .await
                .map_err(|e| BackendError(format!("the sandbox's VM did not boot: {e}")))?
            }
        };
        let job = Run {
            runtime: Runtime::Oci.to_string(),
            code: None,
            archive: None,
            input: serde_json::Value::Null,
            env: Vec::new(),
            rootfs: true,
            mem_mb: launch.resources.mem_mb,
            serve: false,
            seed: None,
            network: None,
            image: Some(FromImage {
                env: config.env.clone(),
                argv: Vec::new(),
                cwd: config.working_dir.clone(),
                uid: owner.0,
                gid: owner.1,
            }),
            sandbox: true,
            volumes: held_volumes(&launch.volumes),
        };
        match vm.start_serving(&job, &Traced).await? {
            Ok(()) => {}
            Err(e) => return Err(BackendError(format!("the sandbox's agent refused it: {e}"))),
        }
        let (writer, frames) = vm.take_channel().map_err(BackendError)?;
        let kept = Kept {
            image: launch.image.clone(),
            template: template.file_name().to_owned(),
            env: launch.env.clone(),
            owner,
            ready: vm.ready.clone(),
            volumes: launch.volumes.clone(),
        };
        std::fs::write(
            dir.join("sandbox.json"),
            serde_json::to_vec(&kept).unwrap_or_default(),
        )
        .map_err(|e| BackendError(format!("cannot write the sandbox's record: {e}")))?;
        let sandbox = self.holding(kept, dir, spec, Some(vm), lease, template);
        sandbox.held.calls.connect(writer, frames);
        Ok(Box::new(sandbox))
    }

    /// A VM for a new sandbox restored from the snapshot of its shape (made first if there
    /// is none): the snapshot's empty disk and its RAM copied into the sandbox's directory,
    /// the sandbox's own from then on (`spec` names them).
    async fn restored(
        &self,
        launch: &SandboxLaunch,
        template: &Template,
        spec: &VmSpec,
    ) -> Result<Vm, String> {
        let inner = &self.inner;
        let ready = inner.state.as_ref().map_err(Clone::clone)?;
        let snapshots = inner.snapshots().await?;
        let resources = Resources {
            cpus: launch.resources.cpus,
            mem_mb: launch.resources.mem_mb,
            ..Resources::default()
        };
        let shape = Shape {
            data_disk_mb: Some(launch.resources.disk_mb),
            ..Inner::shape(Runtime::Oci, resources, false, Some(template))
        };
        let found = match crate::restore::find(&snapshots, shape).await {
            Ok(Some(found)) => found,
            _ => {
                let made = inner
                    .make_snapshot(ready, &snapshots, shape, resources, Some(template))
                    .await?;
                if let Some(templates) = &inner.templates {
                    templates.settle(&snapshots).await;
                }
                made
            }
        };
        let (Some(disk), Some(memory)) = (spec.data_disk.clone(), spec.memory.clone()) else {
            return Err("a sandbox's VM has its own disk and memory file".into());
        };
        let snapshot_disk = found.state.with_file_name(crate::snapshot::DATA_DISK);
        let snapshot_memory = found.memory.clone();
        tokio::task::spawn_blocking(move || {
            crate::snapshot::copy_sparse(&snapshot_disk, &disk)
                .and_then(|()| crate::snapshot::copy_sparse(&snapshot_memory, &memory.file))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot copy the snapshot for the sandbox: {e}"))?;
        let restore = VmSpec {
            incoming: Some(found.state.clone()),
            ..spec.clone()
        };
        Vm::restore(
            ready.vmm.as_ref(),
            restore,
            &inner.config.work_dir.join("vms"),
            inner.config.boot_timeout,
            found.meta.ready.clone(),
        )
        .await
    }

    /// How sandbox `dir`'s VM is started (and restored): the template's root, its own disk,
    /// its RAM in a file of its own, a control socket.
    fn spec_of(
        &self,
        resources: &SandboxResources,
        template: &Template,
        dir: &Path,
        volumes: &[VolumeAttach],
    ) -> Result<VmSpec, BackendError> {
        let ready = self
            .inner
            .state
            .as_ref()
            .map_err(|r| BackendError(format!("the microvm backend is unavailable: {r}")))?;
        let resources = Resources {
            cpus: resources.cpus,
            mem_mb: resources.mem_mb,
            ..Resources::default()
        };
        let mut spec = self
            .inner
            .spec(ready, Runtime::Oci, resources, Some(template));
        spec.cmdline_extra = format!("{} {DATA_DISK_ARG}", spec.cmdline_extra);
        spec.data_disk = Some(dir.join("disk.img"));
        spec.volumes = volume_disks(volumes);
        spec.memory = Some(GuestMemory {
            file: dir.join("memory"),
            shared: true,
        });
        spec.qmp = Some(PathBuf::new());
        Ok(spec)
    }

    /// The sandbox of `dir`: running with `vm`, or paused without one.
    fn holding(
        &self,
        kept: Kept,
        dir: &Path,
        spec: VmSpec,
        vm: Option<Vm>,
        lease: LeasedRoot,
        template: Template,
    ) -> MicrovmSandbox {
        let phase = if vm.is_some() {
            Phase::Running
        } else {
            Phase::Paused
        };
        let calls = Arc::new(Calls::default());
        let held = Arc::new(Held {
            inner: self.inner.clone(),
            dir: dir.to_path_buf(),
            spec,
            ready: kept.ready,
            vm: Mutex::new(vm),
            phase: Mutex::new(phase),
            calls: calls.clone(),
            usage: Mutex::new(SandboxUsage::default()),
        });
        tokio::spawn(sample(Arc::downgrade(&held)));
        MicrovmSandbox {
            files: VmFiles {
                calls,
                owner: kept.owner,
            },
            held,
            config: lease.record.config.clone(),
            env: kept.env,
            lease,
            _template: template,
        }
    }

    /// Takes back paused sandbox `sandbox` (after a restart of the server).
    pub(super) async fn take_back(
        &self,
        sandbox: &Sandbox,
    ) -> Result<MicrovmSandbox, BackendError> {
        let dir = self.dir.join(&sandbox.id);
        let kept: Kept = std::fs::read(dir.join("sandbox.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| BackendError("its record on this node is gone".into()))?;
        for part in ["state", "memory", "disk.img"] {
            if !dir.join(part).is_file() {
                return Err(BackendError(format!(
                    "its saved state on this node is incomplete ({part} is gone)"
                )));
            }
        }
        let templates = self
            .inner
            .templates
            .as_ref()
            .ok_or_else(|| BackendError("this node's microVMs have no image store".into()))?;
        let template = templates.hold_existing(&kept.template).ok_or_else(|| {
            BackendError(format!("the root it ran in ({}) is gone", kept.template))
        })?;
        let images = self
            .inner
            .config
            .images
            .as_ref()
            .ok_or_else(|| BackendError("this node's microVMs have no image store".into()))?;
        let lease = images
            .lease_root(&kept.image, &|_| {})
            .await
            .map_err(|e| BackendError(e.to_string()))?;
        let spec = self.spec_of(&sandbox.resources, &template, &dir, &kept.volumes)?;
        Ok(self.holding(kept, &dir, spec, None, lease, template))
    }
}

/// What a later server needs to take a paused sandbox back (`sandbox.json`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    image: String,
    /// The template root file its VM was started with.
    template: String,
    env: BTreeMap<String, String>,
    owner: (u32, u32),
    ready: vulcan_agent::Ready,
    #[serde(default)]
    volumes: Vec<VolumeAttach>,
}

/// The volumes' disks as the VMM attaches them (serials in this order).
pub(crate) fn volume_disks(volumes: &[VolumeAttach]) -> Vec<(std::path::PathBuf, bool)> {
    volumes
        .iter()
        .map(|v| (v.file.clone(), v.read_only))
        .collect()
}

/// The volumes the agent mounts, by their disks' serials.
pub(crate) fn held_volumes(volumes: &[VolumeAttach]) -> Vec<HeldVolume> {
    volumes
        .iter()
        .enumerate()
        .map(|(n, v)| HeldVolume {
            serial: vulcan_agent::volume_serial(n),
            path: v.path.clone(),
            read_only: v.read_only,
        })
        .collect()
}
