//! Warm instances of deployed functions: VMs whose agent keeps a handler loaded (python,
//! node) or a program to run again (go), one per invocation at a time, never shared
//! between function versions.

use std::sync::Arc;
use std::time::Duration;

use vulcan_domain::{BackendError, Invocation, LogSink, Preparation, WorkloadResult, WorkloadSpec};

use crate::MicrovmBackend;

impl MicrovmBackend {
    /// Serves an invocation in a VM whose agent has the function loaded (a handler to call;
    /// for go, a program to run again). With `reuse`, a warm instance of its function version: an idle one, or one
    /// started now if fewer than `max_instances` exist (waited for otherwise); an instance
    /// whose invocation broke it, timed out or was killed is destroyed, and only that
    /// invocation fails. Without, a fresh VM that serves this one invocation.
    pub(crate) async fn invoke_served(
        &self,
        invocation: &Invocation,
        spec: &WorkloadSpec,
        logs: Arc<dyn LogSink>,
    ) -> Result<WorkloadResult, BackendError> {
        let mut lease = match invocation.reuse {
            true => Some(
                self.inner
                    .instances
                    .lease(
                        &invocation.instance_key(),
                        invocation.max_instances as usize,
                        Duration::from_secs(invocation.idle_timeout_s.into()),
                    )
                    .await,
            ),
            false => None,
        };
        let warm = lease
            .as_mut()
            .and_then(|l| l.take())
            .and_then(|mut vm| vm.alive().then_some(vm));
        let (mut vm, prepared) = match warm {
            Some(vm) => (vm, Preparation::Warm),
            None => {
                let job = match self.job_for(spec, true, &logs).await? {
                    Ok(job) => job,
                    Err(failed) => return Ok(failed),
                };
                let (runtime, resources) = (spec.run.runtime, spec.run.resources);
                let (mut vm, prepared) = self
                    .vm_for(runtime, resources, logs.as_ref(), job.template.as_ref())
                    .await?;
                if let Err(e) = vm.start_serving(&job.run, logs.as_ref()).await? {
                    logs.code_started(prepared);
                    return Ok(WorkloadResult::failed(e));
                }
                (vm, prepared)
            }
        };
        logs.code_started(prepared);
        let (result, healthy) = vm
            .invoke(
                &spec.input,
                logs.as_ref(),
                self.inner.config.max_output_bytes,
                spec.run.resources.mem_mb,
            )
            .await?;
        if let Some(lease) = lease.filter(|_| healthy) {
            lease.give_back(vm);
        }
        Ok(result)
    }
}
