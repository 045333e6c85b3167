//! Workloads that mount volumes: a VM booted for the one workload with each volume's ext4
//! file attached as a virtio disk (serials [`vulcan_agent::volume_serial`] in order), which
//! its agent mounts in the workload's root before the code starts and writes out before it
//! reports the end; its root is a writable overlay (in RAM) so that any path can be a
//! mount point. Never a VM of the warm pool or restored from a snapshot: neither has
//! the disks.

use std::sync::Arc;

use vulcan_domain::{BackendError, LogSink, LogStream, Preparation, WorkloadResult, WorkloadSpec};

use crate::sandboxes::{held_volumes, volume_disks};
use crate::vm::Vm;
use crate::{Job, MicrovmBackend};

impl MicrovmBackend {
    pub(crate) async fn execute_with_volumes(
        &self,
        spec: WorkloadSpec,
        logs: Arc<dyn LogSink>,
    ) -> Result<WorkloadResult, BackendError> {
        if !spec.run.network.is_none() {
            return Err(BackendError(
                "a microvm workload with volumes runs without a network here: drop \"network\" or run it under gvisor".into(),
            ));
        }
        let Job { mut run, template } = match self.job_for(&spec, false, &logs).await? {
            Ok(job) => job,
            Err(failed) => return Ok(failed),
        };
        run.volumes = held_volumes(&spec.attached);
        let ready = self.ready()?;
        let (runtime, resources) = (spec.run.runtime, spec.run.resources);
        let mut vm_spec = self
            .inner
            .spec(ready, runtime, resources, template.as_ref());
        // Their mount points are made in the root: a writable overlay over it (in RAM, gone
        // with the VM), as an image's root has.
        if vm_spec.rootfs.is_some() && !vm_spec.cmdline_extra.contains(vulcan_agent::OVERLAY_ARG) {
            vm_spec.cmdline_extra =
                format!("{} {}", vm_spec.cmdline_extra, vulcan_agent::OVERLAY_ARG)
                    .trim()
                    .to_owned();
        }
        vm_spec.volumes = volume_disks(&spec.attached);
        let vm = Vm::boot(
            ready.vmm.as_ref(),
            vm_spec,
            &self.inner.config.work_dir.join("vms"),
            self.inner.config.boot_timeout,
        )
        .await
        .map_err(|e| BackendError(format!("the VM did not boot: {e}")))?;
        drop(template);
        self.inner.counters.booted(&vm);
        logs.emit(
            LogStream::Backend,
            format!(
                "a new VM with {} volume(s): booted to its agent in {} ms ({})",
                spec.attached.len(),
                vm.boot_time.as_millis(),
                ready.accel.as_str()
            ),
        );
        logs.code_started(Preparation::Boot);
        vm.run(
            &run,
            logs,
            self.inner.config.max_output_bytes,
            resources.mem_mb,
        )
        .await
    }
}
