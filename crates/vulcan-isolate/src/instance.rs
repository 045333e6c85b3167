//! Warm instances of deployed node functions: a Deno process (from the warm pool or
//! started for it) that imports the function's module once and then serves invocations
//! of its default export, one at a time, for one tenant, function and version only.
//!
//! Lifecycle: started (module imported, handler found) → warm (idle in the pool) →
//! serving → warm … → retired: idle past the function's `idle_timeout_s`, the function
//! deleted or redeployed, or broken (it died: out of memory, or its invocation was
//! stopped by a timeout or a kill — the process is killed and replaced by the next
//! invocation; only that invocation failed).

use std::sync::Arc;
use std::time::Duration;

use vulcan_domain::{BackendError, Invocation, LogSink, Preparation, WorkloadResult, WorkloadSpec};
use vulcan_sandbox::instances::Instances;

use crate::frames;
use crate::memory_cgroup::CgroupRoot;
use crate::process::{read_line, DenoProcess, Frame, Read};
use crate::{Ready, StderrTail};

/// One warm instance. Dropped, it is killed and its memory cgroup handed back.
pub(crate) struct Instance {
    process: Option<DenoProcess>,
    tail: Arc<StderrTail>,
    mem_mb: u32,
    cgroups: Option<Arc<CgroupRoot>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        let group = process.cgroup.take();
        process.retire();
        if let (Some(group), Some(root)) = (group, self.cgroups.clone()) {
            tokio::spawn(async move { root.release(group).await });
        }
    }
}

/// A sink that drops lines: what a process's stderr goes to between invocations.
struct Nowhere;

impl LogSink for Nowhere {
    fn emit(&self, _: vulcan_domain::LogStream, _: String) {}
}

impl Instance {
    /// Starts an instance: a process that imports the module and finds its handler. An
    /// error is the invocation's (a module that throws as it loads, or has no handler).
    async fn start(
        ready: &Ready,
        code_b64: &str,
        env: &std::collections::BTreeMap<String, String>,
        mem_mb: u32,
        logs: Arc<dyn LogSink>,
        max_output: usize,
    ) -> Result<Result<Instance, WorkloadResult>, BackendError> {
        // An instance keeps its module in its main isolate: a process of its own, not a
        // pooled one (those run each job in a Worker).
        let mut process = ready
            .launcher
            .spawn(mem_mb, false)
            .map_err(|e| BackendError(format!("cannot start deno: {e}")))?;
        process.settle().await;
        let tail = StderrTail::follow(&mut process, logs.clone());
        let job = serde_json::json!({ "kind": "serve", "code_b64": code_b64, "env": env });
        process
            .send_line(job.to_string().as_bytes())
            .await
            .map_err(|e| BackendError(format!("cannot send the function to deno: {e}")))?;
        let mut instance = Instance {
            process: Some(process),
            tail,
            mem_mb,
            cgroups: ready.cgroup_root.clone(),
        };
        let process = instance.process.as_mut().expect("just set");
        // Reading until "loaded" (console lines of the module's top level go to this
        // invocation's log) or how loading ended.
        loop {
            let read = read_line(&mut process.stdout, 64 * 1024, None)
                .await
                .map_err(|e| BackendError(format!("reading from the isolate: {e}")))?;
            match read {
                Read::Frame(Frame::Loaded) => {
                    return Ok(Ok(instance));
                }
                Read::Frame(Frame::Ready) => {}
                Read::Frame(Frame::Stdout { l }) | Read::Raw(l) => {
                    logs.emit(vulcan_domain::LogStream::Stdout, l)
                }
                Read::Frame(Frame::Stderr { l }) => logs.emit(vulcan_domain::LogStream::Stderr, l),
                Read::Frame(Frame::Threw { m, .. }) => {
                    return Ok(Err(WorkloadResult::failed(format!(
                        "the function could not be loaded: {m}"
                    ))));
                }
                other => {
                    let oom = instance.oom_killed();
                    let died = frames::died_error(
                        &instance.tail.text(),
                        oom,
                        mem_mb,
                        None,
                        max_output,
                        &format!("while loading the function: {other:?}"),
                    );
                    return Ok(Err(WorkloadResult::failed(died)));
                }
            }
        }
    }

    fn oom_killed(&self) -> bool {
        self.process
            .as_ref()
            .and_then(|p| p.cgroup.as_ref())
            .is_some_and(|g| g.oom_killed())
    }

    fn alive(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.alive())
    }

    /// Serves one invocation; the result, and whether the instance can serve again.
    async fn serve(
        &mut self,
        input: &serde_json::Value,
        logs: Arc<dyn LogSink>,
        max_output: usize,
    ) -> Result<(WorkloadResult, bool), BackendError> {
        self.tail.switch(logs.clone());
        let process = self
            .process
            .as_mut()
            .ok_or_else(|| BackendError("the instance is gone".into()))?;
        let line = serde_json::json!({ "input": input }).to_string();
        let mark = process.cgroup.as_ref().map(|g| g.mark());
        let sent = process.send_line(line.as_bytes()).await;
        let outcome = frames::collect(process, logs.as_ref(), max_output).await?;
        let healthy = outcome.ended.is_some() && sent.is_ok();
        let (mem_mb, oom) = (self.mem_mb, self.oom_killed());
        let usage = self
            .process
            .as_ref()
            .and_then(|p| p.cgroup.as_ref())
            .zip(mark)
            .map(|(g, mark)| g.usage_since(mark));
        let tail = self.tail.text();
        let mut result = outcome.into_result(|o| {
            let how = sent
                .err()
                .map(|e| format!("sending the invocation failed: {e}"))
                .unwrap_or_else(|| "the instance stopped".into());
            frames::died_error(&tail, oom, mem_mb, o.oversize, max_output, &how)
        });
        result.usage = usage;
        self.tail.switch(Arc::new(Nowhere));
        Ok((result, healthy))
    }
}

/// Serves an invocation from a warm instance of its function version (starting one if
/// none is idle and fewer than `max_instances` exist; waiting otherwise).
pub(crate) async fn invoke(
    ready: &Ready,
    instances: &Arc<Instances<Instance>>,
    invocation: &Invocation,
    spec: &WorkloadSpec,
    code_b64: impl FnOnce() -> Result<String, BackendError>,
    logs: Arc<dyn LogSink>,
    max_output: usize,
) -> Result<WorkloadResult, BackendError> {
    let mut lease = instances
        .lease(
            &invocation.instance_key(),
            invocation.max_instances as usize,
            Duration::from_secs(invocation.idle_timeout_s.into()),
        )
        .await;
    // A warm instance that died while idle is dropped; its place goes to a new one.
    let warm = lease.take().and_then(|mut i| i.alive().then_some(i));
    let (mut instance, prepared) = match warm {
        Some(instance) => (instance, Preparation::Warm),
        None => {
            let started = Instance::start(
                ready,
                &code_b64()?,
                &spec.run.env,
                spec.run.resources.mem_mb,
                logs.clone(),
                max_output,
            )
            .await?;
            match started {
                Ok(instance) => (instance, Preparation::Boot),
                // Loading failed: this invocation fails; nothing is kept.
                Err(result) => {
                    logs.code_started(Preparation::Boot);
                    return Ok(result);
                }
            }
        }
    };
    logs.code_started(prepared);
    // Dropped here (a timeout, a kill), the instance is killed and the lease frees its place.
    let (result, healthy) = instance.serve(&spec.input, logs, max_output).await?;
    if healthy {
        lease.give_back(instance);
    }
    Ok(result)
}
