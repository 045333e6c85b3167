//! Workloads with a network: a VM with a NIC on a tap of its own in a network
//! namespace of its own (made and filtered by [`vulcan_sandbox::network`] before the VM
//! starts; the VMM joins the namespace), which its agent configures before the code
//! starts, and which is removed when the VM ends. Such a VM serves the one workload or
//! invocation: one made ahead with a NIC on a network of its own whose policy is given
//! now (`pool`), or restored from a snapshot of a VM that had a NIC (or booted); never a
//! VM of the warm pool, never kept warm (a warm VM would hold its network open).

use std::sync::Arc;
use std::time::Instant;

use vulcan_agent::GuestNetwork;
use vulcan_domain::{BackendError, LogSink, LogStream, Preparation, WorkloadResult, WorkloadSpec};

use vulcan_sandbox::network::TAP;

use crate::pool::NetworkedVm;
use crate::vmm::Nic;
use crate::{Job, MicrovmBackend};

impl MicrovmBackend {
    pub(crate) async fn execute_networked(
        &self,
        spec: WorkloadSpec,
        logs: Arc<dyn LogSink>,
    ) -> Result<WorkloadResult, BackendError> {
        let egress = self.inner.config.egress.as_ref().ok_or_else(|| {
            BackendError("this node gives workloads no network (VULCAN_EGRESS=off)".into())
        })?;
        // A function's handler (or a go program served) is loaded, then invoked once.
        let served = spec
            .invocation
            .as_ref()
            .is_some_and(|i| i.handler || i.reuse);
        let Job { mut run, template } = match self.job_for(&spec, served, &logs).await? {
            Ok(job) => job,
            Err(failed) => return Ok(failed),
        };
        let opened = Instant::now();
        let (runtime, resources) = (spec.run.runtime, spec.run.resources);
        let (policy, cap) = (&spec.run.network, resources.net_mbps);
        // VMs made ahead have the runtime's own root, not an image's.
        let made_ahead = match template {
            None => self.inner.take_networked(runtime, resources),
            Some(_) => None,
        };
        let (network, vm, how) = match made_ahead {
            Some(NetworkedVm { vm, mut network }) => {
                network.apply(policy, cap).await.map_err(BackendError)?;
                (network, Some(vm), "a VM made ahead")
            }
            None => (
                egress.open_tap(policy, cap).await.map_err(BackendError)?,
                None,
                "",
            ),
        };
        run.network = Some(GuestNetwork {
            address: network.address(),
            prefix: network.prefix(),
            gateway: network.resolver(),
            resolver: network.resolver(),
        });
        let opened = opened.elapsed();
        let (mut vm, how, prepared) = match vm {
            Some(vm) => (vm, how.to_owned(), Preparation::Pool),
            None => {
                let nic = Nic {
                    namespace: network.namespace_path(),
                    tap: TAP.into(),
                };
                let (vm, how) = self
                    .inner
                    .fresh_with(
                        runtime,
                        resources,
                        Some(logs.as_ref()),
                        Some(nic),
                        template.as_ref(),
                    )
                    .await
                    .map_err(|e| BackendError(format!("the VM did not boot: {e}")))?;
                let prepared = match vm.restored {
                    true => Preparation::Restore,
                    false => Preparation::Boot,
                };
                (vm, how, prepared)
            }
        };
        logs.emit(
            LogStream::Backend,
            format!(
                "{how} with a network ({}, made in {} ms): ready in {} ms ({}, guest uptime {} ms, kernel {})",
                network.address(),
                opened.as_millis(),
                vm.boot_time.as_millis(),
                self.ready()?.accel.as_str(),
                vm.ready.uptime_ms,
                vm.ready.kernel
            ),
        );
        let (max_output, mem_mb) = (self.inner.config.max_output_bytes, resources.mem_mb);
        let ran = if served {
            match vm.start_serving(&run, logs.as_ref()).await {
                Ok(Ok(())) => {
                    logs.code_started(prepared);
                    vm.invoke(&spec.input, logs.as_ref(), max_output, mem_mb)
                        .await
                        .map(|(result, _)| result)
                }
                Ok(Err(e)) => {
                    logs.code_started(prepared);
                    Ok(WorkloadResult::failed(e))
                }
                Err(e) => Err(e),
            }
        } else {
            logs.code_started(prepared);
            vm.run(&run, logs, max_output, mem_mb).await
        };
        // The VM is gone (or going: its tap may be removed under it) before its network.
        let traffic = network.close();
        ran.map(|mut result| {
            if let Some(usage) = result.usage.as_mut() {
                usage.net_tx_bytes = Some(traffic.tx_bytes);
                usage.net_rx_bytes = Some(traffic.rx_bytes);
            }
            result
        })
    }
}
