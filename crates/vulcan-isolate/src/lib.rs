//! The `isolate` backend: JavaScript, TypeScript and WebAssembly in V8 isolates.
//!
//! Each workload gets its own Deno process — one V8 isolate, never shared — started with
//! no permissions (no `--allow-*`, no remote or npm modules), a V8 heap limit from
//! `mem_mb`, an OS memory bound (a memory cgroup), inside a chroot that holds only Deno,
//! as `nobody`. A warm pool keeps processes started ahead of time so that a workload does
//! not pay Deno's start-up.
//!
//! Reading order: [`jail`] (the filesystem it sees), [`memory_cgroup`] (its OS memory
//! bound), [`process`] (how a process starts and talks), [`pool`] (processes started
//! ahead), then [`IsolateBackend::execute`]; warm function instances are in `instance`
//! (with `frames`, what a pooled runner relays), and [`wasm_helper`] compiles and runs
//! WebAssembly in a bounded process of its own.
//!
//! `tests/backend.rs` drives this backend as a library (a recording sink in place of
//! the engine): the place to pin a change to what `execute` answers or emits.
//!
//! Code forms (runtime `node`): an ES module (JavaScript or TypeScript) whose default
//! export is a function `(input) => value`, sync or async — the output is the JSON of the
//! value; or a plain script — the output is what it printed. Runtime `wasm`: `code` is a
//! base64 WebAssembly module instantiated with no imports; `input` is
//! `{"fn": "name", "args": [...]}` (default `main`, no arguments) and the output is the
//! JSON of the function's return value.

pub mod cache;
mod frames;
mod instance;
pub mod jail;
pub mod memory_cgroup;
mod networked;
pub mod pool;
pub mod process;
pub mod wasm_helper;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use vulcan_domain::{
    Availability, Backend, BackendCapabilities, BackendError, Isolation, LogSink, LogStream,
    Preparation, Runtime, WorkloadResult, WorkloadSpec,
};

use vulcan_sandbox::capture::{Tail, TAIL_BYTES};
use vulcan_sandbox::instances::Instances;
use vulcan_sandbox::network::{Egress, Traffic};

use crate::cache::CacheDirs;
use crate::jail::Jail;
use crate::memory_cgroup::{CgroupRoot, MemoryCgroup};
pub use crate::networked::MOST as NETWORKED_STOCK;
use crate::pool::WarmPool;
use crate::process::{read_line, DenoProcess, Launcher, ProcessNetwork, Read};
pub use crate::wasm_helper::{WasmHelper, WasmSettings};

/// The runner script every Deno process starts with.
pub const RUNNER_JS: &str = include_str!("runner.js");

/// Configuration of the isolate backend.
#[derive(Debug, Clone)]
pub struct IsolateConfig {
    /// The Deno binary; `None` if none was found.
    pub deno: Option<PathBuf>,
    /// Where the backend keeps its jail and runner.
    pub work_dir: PathBuf,
    /// Idle processes kept warm; 0 disables the pool.
    pub pool_size: usize,
    /// The heap (MiB) pooled processes start with: the default `mem_mb`.
    pub pool_heap_mb: u32,
    pub max_concurrency: u32,
    /// Largest output kept; the engine fails a workload whose output is larger.
    pub max_output_bytes: usize,
    /// Confine Deno in a chroot as nobody (needs root). Off only by explicit choice.
    pub jail: bool,
    /// Run wasm on wasmtime in a helper process; `None` runs it in Deno.
    pub wasm: Option<WasmSettings>,
    /// Where networks come from for workloads with an egress policy; `None`: no workload
    /// has a network, and one asking for it is refused.
    pub egress: Option<Arc<Egress>>,
}

impl IsolateConfig {
    pub fn new(deno: Option<PathBuf>, work_dir: PathBuf) -> Self {
        IsolateConfig {
            deno,
            work_dir,
            pool_size: 4,
            pool_heap_mb: 128,
            max_concurrency: 16,
            max_output_bytes: 1024 * 1024,
            jail: true,
            wasm: None,
            egress: None,
        }
    }
}

/// The isolate backend. See the crate documentation.
pub struct IsolateBackend {
    config: IsolateConfig,
    state: Result<Ready, String>,
    /// Memory cgroups of running workloads, removed by `cleanup`.
    cgroups: Mutex<HashMap<String, MemoryCgroup>>,
    /// Warm instances of deployed functions.
    instances: Arc<Instances<instance::Instance>>,
    /// Runs wasm workloads, where configured.
    wasm: Option<WasmHelper>,
}

struct Ready {
    launcher: Arc<Launcher>,
    pool: Arc<WarmPool>,
    /// Processes with a network made ahead of time; `None` without egress.
    networked: Option<networked::NetworkedPools>,
    version: String,
    cgroup_root: Option<Arc<CgroupRoot>>,
    cgroup_note: Option<String>,
}

fn deno_version(deno: &std::path::Path) -> Result<String, String> {
    let out = std::process::Command::new(deno)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", deno.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .filter(|_| out.status.success())
        .map(|l| l.trim().to_owned())
        .ok_or_else(|| format!("{} --version failed", deno.display()))
}

impl IsolateBackend {
    /// Checks Deno, builds the jail and starts the warm pool. Never fails: a backend that
    /// cannot run here is listed as unavailable with the reason.
    pub fn start(config: IsolateConfig) -> Self {
        let state = Self::prepare(&config);
        if let Err(reason) = &state {
            tracing::warn!(%reason, "isolate backend unavailable");
        }
        let instances = Instances::reaped();
        let wasm = config.wasm.clone().map(|settings| {
            let cgroups = state.as_ref().ok().and_then(|r| r.cgroup_root.clone());
            WasmHelper::new(settings, cgroups)
        });
        IsolateBackend {
            config,
            state,
            cgroups: Mutex::new(HashMap::new()),
            instances,
            wasm,
        }
    }

    fn prepare(config: &IsolateConfig) -> Result<Ready, String> {
        let deno = config.deno.clone().ok_or(
            "deno not found: run scripts/setup.sh, or set VULCAN_DENO_BIN to a deno binary",
        )?;
        let version = deno_version(&deno)?;
        std::fs::create_dir_all(&config.work_dir)
            .map_err(|e| format!("cannot create {}: {e}", config.work_dir.display()))?;
        let runner_path = config.work_dir.join("runner.js");
        std::fs::write(&runner_path, RUNNER_JS)
            .map_err(|e| format!("cannot write {}: {e}", runner_path.display()))?;
        let jail = if config.jail {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                return Err("the isolate jail (chroot as nobody) needs root; run vulcan as root, or set VULCAN_ISOLATE_JAIL=off to accept that workload modules can import host files".into());
            }
            let jail = Jail::build(&config.work_dir.join("jail"), &deno, RUNNER_JS)
                .map_err(|e| format!("cannot build the isolate jail: {e}"))?;
            // A process with a network resolves names through its sandbox's resolver, at
            // the address every sandbox shares.
            if let Some(egress) = &config.egress {
                let etc = jail.root().join("etc");
                std::fs::create_dir_all(&etc)
                    .and_then(|()| {
                        std::fs::write(
                            etc.join("resolv.conf"),
                            format!("nameserver {}\n", egress.resolver()),
                        )
                    })
                    .map_err(|e| format!("cannot write the jail's resolv.conf: {e}"))?;
            }
            Some(jail)
        } else {
            None
        };
        let (cgroup_root, cgroup_note) = match CgroupRoot::detect() {
            Ok(root) => (Some(Arc::new(root)), None),
            Err(e) => (None, Some(e)),
        };
        let scratch = match &jail {
            Some(jail) => jail.root().join("tmp"),
            None => config.work_dir.join("tmp"),
        };
        let caches = CacheDirs::new(
            scratch,
            jail.as_ref().map(|j| (j.uid(), j.gid())),
            config.work_dir.join("cache-template"),
        );
        let launcher = Arc::new(Launcher {
            deno,
            jail,
            runner_path,
            caches,
            cgroups: cgroup_root.clone(),
        });
        let pool = WarmPool::new(launcher.clone(), config.pool_size, config.pool_heap_mb);
        let networked = config
            .egress
            .clone()
            .map(|egress| networked::NetworkedPools::new(egress, launcher.clone()));
        Ok(Ready {
            launcher,
            pool,
            networked,
            version,
            cgroup_root,
            cgroup_note,
        })
    }

    fn ready(&self) -> Result<&Ready, BackendError> {
        self.state
            .as_ref()
            .map_err(|e| BackendError(format!("the isolate backend is not available: {e}")))
    }

    /// Keeps the process's memory cgroup (its limit already set) for `cleanup`.
    fn keep_cgroup(&self, id: &str, process: &mut DenoProcess) -> bool {
        let Some(group) = process.cgroup.take() else {
            return false;
        };
        self.cgroups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), group);
        true
    }

    /// Runs a job in a pooled process's next Worker; the process then goes back to the pool
    /// for the tenant's later jobs, unless the job ended it (out of memory, an exit) or it
    /// does not say it is ready again.
    #[allow(clippy::too_many_arguments)]
    async fn run_in_worker(
        &self,
        ready: &Ready,
        pool: &Arc<WarmPool>,
        mut process: DenoProcess,
        prepared: Preparation,
        spec: &WorkloadSpec,
        job: String,
        logs: Arc<dyn LogSink>,
    ) -> Result<WorkloadResult, BackendError> {
        let mem_mb = spec.run.resources.mem_mb;
        let mark = process.cgroup.as_ref().map(MemoryCgroup::mark);
        if process.cgroup.is_none() && ready.cgroup_root.is_some() {
            logs.emit(LogStream::Backend, "[vulcan] could not place the isolate in its memory cgroup; only the V8 heap limit applies".into());
        }
        let tail = match process.tail.clone() {
            Some(tail) => {
                tail.restart(logs.clone());
                tail
            }
            None => {
                let tail = StderrTail::follow(&mut process, logs.clone());
                process.tail = Some(tail.clone());
                tail
            }
        };
        let traffic = process.network.as_ref().map(|n| n.traffic());
        logs.code_started(prepared);
        let sent = process.send_keyed(job.as_bytes()).await;
        let max_output = self.config.max_output_bytes;
        let outcome = frames::collect(&mut process, logs.as_ref(), max_output).await?;
        let usage =
            |p: &DenoProcess| mark.and_then(|mark| p.cgroup.as_ref().map(|g| g.usage_since(mark)));
        if outcome.ended.is_some() && sent.is_ok() {
            let used = usage(&process);
            let mut result = outcome.into_result(|_| String::new());
            result.usage = used;
            count_traffic(&mut result, &process, traffic);
            pool.come_back(&spec.tenant, process, NEXT_JOB_WITHIN);
            return Ok(result);
        }
        let how = how_it_ended(&mut process, &outcome, &sent).await;
        let used = usage(&process);
        let oom = process
            .cgroup
            .as_ref()
            .is_some_and(MemoryCgroup::oom_killed);
        // The cgroup is released with the workload's (`cleanup`).
        self.keep_cgroup(&spec.id, &mut process);
        let mut result = outcome.into_result(|o| {
            frames::died_error(&tail.text(), oom, mem_mb, o.oversize, max_output, &how)
        });
        result.usage = used;
        count_traffic(&mut result, &process, traffic);
        process.retire();
        Ok(result)
    }

    fn oom_killed(&self, id: &str) -> bool {
        self.cgroups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .is_some_and(MemoryCgroup::oom_killed)
    }

    /// Runs `job` in a process of its own (not pooled): its main isolate runs the code.
    async fn run_alone(
        &self,
        ready: &Ready,
        mut process: DenoProcess,
        prepared: Preparation,
        spec: &WorkloadSpec,
        job: String,
        logs: Arc<dyn LogSink>,
    ) -> Result<WorkloadResult, BackendError> {
        let mem_mb = spec.run.resources.mem_mb;
        let mark = process.cgroup.as_ref().map(MemoryCgroup::mark);
        let bounded = self.keep_cgroup(&spec.id, &mut process);
        if !bounded && ready.cgroup_root.is_some() {
            logs.emit(LogStream::Backend, "[vulcan] could not place the isolate in its memory cgroup; only the V8 heap limit applies".into());
        }
        let tail = StderrTail::follow(&mut process, logs.clone());
        let traffic = process.network.as_ref().map(|n| n.traffic());
        logs.code_started(prepared);
        let sent = process.send(job.as_bytes()).await;
        let max_output = self.config.max_output_bytes;
        let outcome = frames::collect(&mut process, logs.as_ref(), max_output).await?;
        let how = how_it_ended(&mut process, &outcome, &sent).await;
        let mut result = outcome.into_result(|o| {
            let oom = self.oom_killed(&spec.id);
            frames::died_error(&tail.text(), oom, mem_mb, o.oversize, max_output, &how)
        });
        result.usage = mark.and_then(|mark| {
            let groups = self.cgroups.lock().unwrap_or_else(|p| p.into_inner());
            groups.get(&spec.id).map(|g| g.usage_since(mark))
        });
        count_traffic(&mut result, &process, traffic);
        // One job per process: whatever the code left running (timers, promises) ends here,
        // and the process (with its network, if it has one) is reaped off the response's path.
        process.retire();
        Ok(result)
    }

    /// A workload with a network policy: a pooled process of the policy's pool (`networked`:
    /// each in a network of its own made ahead, its Workers given the policy's
    /// `--allow-net`), else a process of its own started in a network opened now. Never a
    /// process of the backend's own pool (those have no network) and never a warm instance.
    async fn execute_networked(
        &self,
        ready: &Ready,
        spec: &WorkloadSpec,
        logs: Arc<dyn LogSink>,
    ) -> Result<WorkloadResult, BackendError> {
        let (Some(egress), Some(pools)) = (&self.config.egress, &ready.networked) else {
            return Err(BackendError(
                "this node gives workloads no network (VULCAN_EGRESS=off)".into(),
            ));
        };
        let (kind, code_b64) = job_code(spec)?;
        if kind == "wasm" {
            return Err(BackendError(
                "a WebAssembly module has no sockets: \"network\" applies to runtime node".into(),
            ));
        }
        let job = serde_json::json!({ "kind": kind, "code_b64": code_b64, "input": spec.input, "env": spec.run.env }).to_string();
        let mem_mb = spec.run.resources.mem_mb;
        let pool = pools.pool_for(&networked::Key {
            policy: spec.run.network.clone(),
            cap_mbps: spec.run.resources.net_mbps,
            heap_mb: mem_mb,
        });
        let pooled = match &pool {
            Some((pool, true)) => pool.take(mem_mb, &spec.tenant, WAIT_FOR_WORKER).await,
            _ => None,
        };
        let (mut process, prepared) = match pooled {
            Some(process) => (process, Preparation::Pool),
            None => {
                let network = egress
                    .open(&spec.run.network, spec.run.resources.net_mbps)
                    .await
                    .map_err(BackendError)?;
                let namespace = std::fs::File::open(network.namespace_path()).map_err(|e| {
                    BackendError(format!("cannot open the sandbox's namespace: {e}"))
                })?;
                let mut process = ready
                    .launcher
                    .spawn_in(
                        mem_mb,
                        false,
                        Some(ProcessNetwork {
                            namespace,
                            allow_net: allow_net(&spec.run.network),
                        }),
                    )
                    .map_err(|e| BackendError(format!("cannot start deno: {e}")))?;
                process.network = Some(network);
                (process, Preparation::Boot)
            }
        };
        process.settle().await;
        if let Some((pool, _)) = pool.filter(|_| process.workers) {
            return self
                .run_in_worker(ready, &pool, process, prepared, spec, job, logs)
                .await;
        }
        self.run_alone(ready, process, prepared, spec, job, logs)
            .await
    }
}

/// What a process's network carried between `before` and now, on `result`.
fn count_traffic(result: &mut WorkloadResult, process: &DenoProcess, before: Option<Traffic>) {
    let (Some(network), Some(before)) = (&process.network, before) else {
        return;
    };
    let now = network.traffic();
    let usage = result.usage.get_or_insert_with(Default::default);
    usage.net_tx_bytes = Some(now.tx_bytes.saturating_sub(before.tx_bytes));
    usage.net_rx_bytes = Some(now.rx_bytes.saturating_sub(before.rx_bytes));
}

/// How a process that gave no result ended (it has closed its output, so it is exiting or
/// gone), with a failure to send it the job; nothing if it gave a result.
async fn how_it_ended(
    process: &mut DenoProcess,
    outcome: &frames::Outcome,
    sent: &std::io::Result<()>,
) -> String {
    if outcome.ended.is_some() {
        return String::new();
    }
    let how = match tokio::time::timeout(Duration::from_secs(5), process.child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        _ => "did not exit".into(),
    };
    let sent = sent
        .as_ref()
        .err()
        .map(|e| format!(" (sending the job failed: {e})"))
        .unwrap_or_default();
    format!("{how}{sent}")
}

/// How long a pooled process may take, after a job's result, to end the job's Worker and
/// make the next; past that it is not used again.
const NEXT_JOB_WITHIN: Duration = Duration::from_secs(2);

/// How long a job waits for one of its tenant's processes to have its next Worker ready
/// before it starts a process cold instead.
const WAIT_FOR_WORKER: Duration = Duration::from_millis(50);

/// Deno's `--allow-net` for a policy: the names and single addresses it allows (with their
/// ports), or empty (every host) where it allows wildcards, networks or every public
/// address, which Deno cannot say; the namespace's rules hold the process to the policy
/// either way.
pub(crate) fn allow_net(policy: &vulcan_domain::NetworkPolicy) -> String {
    use vulcan_domain::NetRule;
    let exact: Option<Vec<String>> = policy
        .allow
        .iter()
        .map(|rule| match rule {
            NetRule::Name { .. } => Some(rule.to_string()),
            NetRule::Net { prefix: 32, .. } => Some(rule.to_string()),
            _ => None,
        })
        .collect();
    match exact {
        Some(list) if !list.is_empty() => list.join(","),
        _ => String::new(),
    }
}

/// The kind and base64 code of a job: a module (JavaScript or TypeScript) or a Wasm module.
fn job_code(spec: &WorkloadSpec) -> Result<(&'static str, String), BackendError> {
    let code = match (&spec.run.code, &spec.run.code_archive) {
        (Some(code), None) => code,
        _ => {
            return Err(BackendError(
                "the isolate backend runs inline \"code\" only, not \"code_archive\"".into(),
            ))
        }
    };
    match spec.run.runtime {
        Runtime::Node => Ok((
            "module",
            base64::engine::general_purpose::STANDARD.encode(code),
        )),
        Runtime::Wasm => {
            let trimmed = code.trim();
            base64::engine::general_purpose::STANDARD
                .decode(trimmed)
                .map_err(|e| {
                    BackendError(format!(
                        "runtime wasm expects \"code\" to be a base64 WebAssembly module: {e}"
                    ))
                })?;
            Ok(("wasm", trimmed.to_owned()))
        }
        other => Err(BackendError(format!(
            "the isolate backend does not run {other}"
        ))),
    }
}

/// The last few KiB of Deno's own stderr, for the error of a run that died; its lines go
/// to the log of whichever invocation is current (a warm instance serves many).
pub(crate) struct StderrTail {
    tail: Mutex<Tail>,
    logs: Mutex<Arc<dyn LogSink>>,
}

impl StderrTail {
    /// Follows the process's stderr from now on.
    pub(crate) fn follow(process: &mut DenoProcess, logs: Arc<dyn LogSink>) -> Arc<StderrTail> {
        let tail = Arc::new(StderrTail {
            tail: Mutex::new(Tail::new(TAIL_BYTES)),
            logs: Mutex::new(logs),
        });
        if let Some(stderr) = process.stderr.take() {
            let tail = tail.clone();
            tokio::spawn(async move {
                let mut reader = tokio::io::BufReader::new(stderr);
                while let Ok(read) = read_line(&mut reader, 16 * 1024, None).await {
                    let logs = tail.logs.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    match read {
                        Read::Eof => break,
                        Read::Raw(line) => {
                            tail.push(&line);
                            logs.emit(LogStream::Stderr, line);
                        }
                        Read::Frame(f) => logs.emit(LogStream::Stderr, format!("{f:?}")),
                        Read::Oversize(n) => tail.push(&format!("[a {n}-byte line]")),
                    }
                }
            });
        }
        tail
    }

    /// Starts over for a reused process's next job: its lines go to `logs`, and the tail
    /// holds that job's lines only.
    pub(crate) fn restart(&self, logs: Arc<dyn LogSink>) {
        *self.tail.lock().unwrap_or_else(|p| p.into_inner()) = Tail::new(TAIL_BYTES);
        self.switch(logs);
    }

    /// Sends further stderr lines to `logs`.
    pub(crate) fn switch(&self, logs: Arc<dyn LogSink>) {
        *self.logs.lock().unwrap_or_else(|p| p.into_inner()) = logs;
    }

    fn push(&self, line: &str) {
        self.tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_line(line);
    }

    pub(crate) fn text(&self) -> String {
        self.tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .text()
            .to_owned()
    }
}

#[async_trait]
impl Backend for IsolateBackend {
    fn isolation(&self) -> Isolation {
        Isolation::Isolate
    }

    fn capabilities(&self) -> BackendCapabilities {
        BackendCapabilities {
            name: "isolate (V8 via Deno)".into(),
            supported_runtimes: vec![Runtime::Node, Runtime::Wasm],
            supported_isolations: vec![Isolation::Isolate],
            max_concurrency: self.config.max_concurrency,
        }
    }

    fn availability(&self) -> Availability {
        match &self.state {
            Ok(ready) => Availability::ready(serde_json::json!({
                "deno": ready.version,
                "deno_path": ready.launcher.deno,
                "warm_pool": { "size": ready.pool.size(), "idle": ready.pool.idle_count(), "heap_mb": self.config.pool_heap_mb },
                "jail": ready.launcher.jail.as_ref().map(|j| j.root().display().to_string()),
                "memory_cgroup": ready.cgroup_root.is_some(),
                "memory_cgroup_note": ready.cgroup_note,
            })),
            Err(reason) => Availability::unavailable(reason.clone()),
        }
    }

    async fn execute(
        &self,
        spec: WorkloadSpec,
        logs: Arc<dyn LogSink>,
    ) -> Result<WorkloadResult, BackendError> {
        let ready = self.ready()?;
        let _running = ready.pool.running();
        if let Some(wasm) = self
            .wasm
            .as_ref()
            .filter(|_| spec.run.runtime == Runtime::Wasm)
        {
            return wasm.run(&spec, logs, self.config.max_output_bytes).await;
        }
        if !spec.run.network.is_none() {
            return self.execute_networked(ready, &spec, logs).await;
        }
        if let Some(invocation) = spec
            .invocation
            .as_ref()
            .filter(|i| i.reuse && spec.run.runtime == Runtime::Node)
        {
            // A warm instance has the code loaded: it is encoded only to start one.
            return instance::invoke(
                ready,
                &self.instances,
                invocation,
                &spec,
                || job_code(&spec).map(|(_, code)| code),
                logs,
                self.config.max_output_bytes,
            )
            .await;
        }
        let (kind, code_b64) = job_code(&spec)?;
        let job = serde_json::json!({ "kind": kind, "code_b64": code_b64, "input": spec.input, "env": spec.run.env }).to_string();
        let mem_mb = spec.run.resources.mem_mb;
        let pooled = ready.pool.take(mem_mb, &spec.tenant, WAIT_FOR_WORKER).await;
        let (mut process, prepared) = match pooled {
            Some(p) => (p, Preparation::Pool),
            None => (
                ready
                    .launcher
                    .spawn(mem_mb, false)
                    .map_err(|e| BackendError(format!("cannot start deno: {e}")))?,
                Preparation::Boot,
            ),
        };
        process.settle().await;
        if process.workers {
            return self
                .run_in_worker(ready, &ready.pool, process, prepared, &spec, job, logs)
                .await;
        }
        self.run_alone(ready, process, prepared, &spec, job, logs)
            .await
    }

    fn warm_instances(&self) -> HashMap<String, usize> {
        self.instances.counts()
    }

    fn enforces_egress(&self) -> bool {
        self.config.egress.is_some() && self.state.is_ok()
    }

    fn retire(&self, prefix: &str) {
        drop(self.instances.retire(prefix));
    }

    async fn cleanup(&self, workload_id: &str) -> Result<(), BackendError> {
        let group = self
            .cgroups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(workload_id);
        if let (Some(group), Ok(ready)) = (group, &self.state) {
            if let Some(root) = ready.cgroup_root.clone() {
                // The group is free once the killed process is reaped: not worth waiting for.
                tokio::spawn(async move { root.release(group).await });
            }
        }
        Ok(())
    }

    fn memory_in_use(&self) -> Option<u64> {
        self.state.as_ref().ok()?.cgroup_root.as_ref()?.usage()
    }

    async fn shutdown(&self) {
        if let Ok(ready) = &self.state {
            ready.pool.close();
            if let Some(pools) = &ready.networked {
                pools.close().await;
            }
        }
    }
}
