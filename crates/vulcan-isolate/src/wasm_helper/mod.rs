//! Wasm workloads on wasmtime, in a helper process: the same binary started as `vulcan
//! wasm-helper` (see the `vulcan-wasm` crate), in a memory cgroup of its own, confined to an
//! empty root as nobody with no network. One helper serves every wasm run of the node, each
//! in a fresh instance; it starts on first use. If it dies, the runs it had fail with the
//! reason, and the next run starts a new one.
//!
//! A module is compiled before its first run, in a process of its own with bounds of its
//! own ([`compiled`]); the helper is sent the compiled code once and keeps it. This side
//! keeps count, in the helper's order, of what the helper keeps (the same number, least
//! recently used out first), and sends the code again to a helper that says it is missing.

mod compiled;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::mpsc;
use vulcan_domain::{
    BackendError, LogSink, LogStream, Preparation, Usage, WorkloadResult, WorkloadSpec,
};
use vulcan_wasm::{Reply, Request, CACHED_MODULES};

use crate::memory_cgroup::{CgroupRoot, MemoryCgroup};
use compiled::{Code, Compiled};

/// How long a new helper may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// The helper's own bound past the workload's timeout (the server's comes first).
const HELPER_GRACE: Duration = Duration::from_secs(2);

/// `vulcan wasm-helper` confined to `root`, with piped stdio and nothing of the server's
/// environment, killed if dropped: the helper, or (with `--compile-memory-mb`) a compile.
fn helper_process(program: &std::path::Path, root: &std::path::Path) -> Command {
    let mut command = Command::new(program);
    command
        .arg("wasm-helper")
        .arg("--root")
        .arg(root)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// How to start the helper.
#[derive(Debug, Clone)]
pub struct WasmSettings {
    /// The `vulcan` binary.
    pub program: PathBuf,
    /// The empty directory the helper confines itself to.
    pub root: PathBuf,
    /// Instances at once.
    pub slots: u32,
    /// The largest `mem_mb` a run may ask for.
    pub max_mem_mb: u32,
    /// The helper's memory cgroup bound (all its runs together), in MiB.
    pub memory_mb: u64,
    /// The longest one module may take to compile.
    pub compile_timeout: Duration,
    /// The most data memory compiling one module may use, in MiB.
    pub compile_memory_mb: u64,
}

/// The helper, started when first needed.
pub struct WasmHelper {
    settings: WasmSettings,
    compiled: Compiled,
    cgroups: Option<Arc<CgroupRoot>>,
    current: tokio::sync::Mutex<Option<Arc<Helper>>>,
    next_id: AtomicU64,
}

/// One helper process.
struct Helper {
    /// Its stdin, and (kept as it keeps them) the modules it has been sent.
    stdin: tokio::sync::Mutex<(ChildStdin, VecDeque<String>)>,
    runs: Mutex<HashMap<u64, mpsc::UnboundedSender<Reply>>>,
    /// How it ended, once it has.
    ended: Mutex<Option<String>>,
    /// Kept for the process's lifetime.
    _cgroup: Option<MemoryCgroup>,
}

impl Helper {
    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::UnboundedSender<Reply>>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ended(&self) -> Option<String> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn send(&self, request: &Request) -> std::io::Result<()> {
        let mut stdin = self.stdin.lock().await;
        write_line(&mut stdin.0, request).await
    }

    /// Sends a run of module `sha`, with its code unless the helper keeps it (or `again`:
    /// it said it does not), counting what it keeps as it does.
    async fn send_run(
        &self,
        mut run: Request,
        sha: &str,
        code: &Code,
        again: bool,
    ) -> std::io::Result<()> {
        let mut stdin = self.stdin.lock().await;
        let (pipe, kept) = &mut *stdin;
        let known = kept.iter().position(|s| s == sha);
        if let Some(at) = known {
            kept.remove(at);
        } else if kept.len() >= CACHED_MODULES {
            kept.pop_front();
        }
        kept.push_back(sha.to_owned());
        if known.is_none() || again {
            if let Request::Run { compiled_b64, .. } = &mut run {
                *compiled_b64 = Some(base64::engine::general_purpose::STANDARD.encode(&code[..]));
            }
        }
        write_line(pipe, &run).await
    }
}

async fn write_line(pipe: &mut ChildStdin, request: &Request) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    pipe.write_all(&line).await?;
    pipe.flush().await
}

/// Stops the run in the helper if it is dropped before the run ended (a timeout or kill
/// drops the backend's future).
struct RunGuard {
    helper: Arc<Helper>,
    id: u64,
    finished: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.helper.runs().remove(&self.id);
        if !self.finished {
            let (helper, id) = (self.helper.clone(), self.id);
            tokio::spawn(async move {
                let _ = helper.send(&Request::Kill { id }).await;
            });
        }
    }
}

impl WasmHelper {
    pub fn new(settings: WasmSettings, cgroups: Option<Arc<CgroupRoot>>) -> WasmHelper {
        WasmHelper {
            compiled: Compiled::new(
                settings.program.clone(),
                settings.root.clone(),
                settings.compile_timeout,
                settings.compile_memory_mb,
            ),
            settings,
            cgroups,
            current: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
        }
    }

    /// The running helper, started if there is none or it has ended.
    async fn helper(&self) -> Result<Arc<Helper>, String> {
        let mut current = self.current.lock().await;
        if let Some(helper) = current.as_ref().filter(|h| h.ended().is_none()) {
            return Ok(helper.clone());
        }
        let helper = self.start().await?;
        *current = Some(helper.clone());
        Ok(helper)
    }

    async fn start(&self) -> Result<Arc<Helper>, String> {
        std::fs::create_dir_all(&self.settings.root)
            .map_err(|e| format!("cannot create {}: {e}", self.settings.root.display()))?;
        let mut child = helper_process(&self.settings.program, &self.settings.root)
            .arg("--slots")
            .arg(self.settings.slots.to_string())
            .arg("--max-mem-mb")
            .arg(self.settings.max_mem_mb.to_string())
            .spawn()
            .map_err(|e| format!("cannot start the wasm helper: {e}"))?;
        let cgroup = match (&self.cgroups, child.id()) {
            (Some(root), Some(pid)) => match root.acquire().and_then(|g| {
                g.limit(self.settings.memory_mb << 20)?;
                g.add(pid)?;
                Ok(g)
            }) {
                Ok(g) => Some(g),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot place the wasm helper in a memory cgroup");
                    None
                }
            },
            _ => None,
        };
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the wasm helper has no pipes".into());
        };
        let helper = Arc::new(Helper {
            stdin: tokio::sync::Mutex::new((stdin, VecDeque::new())),
            runs: Mutex::new(HashMap::new()),
            ended: Mutex::new(None),
            _cgroup: cgroup,
        });
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::warn!(line = %line, "wasm helper");
            }
        });
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let reader = helper.clone();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Reply>(&line) {
                    Ok(Reply::Ready) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(reply) => {
                        let id = match &reply {
                            Reply::Log { id, .. }
                            | Reply::Done { id, .. }
                            | Reply::Missing { id } => *id,
                            Reply::Ready => 0,
                        };
                        if let Some(run) = reader.runs().get(&id) {
                            let _ = run.send(reply);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the wasm helper wrote a line that does not parse")
                    }
                }
            }
            let how = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                Ok(Ok(status)) => status.to_string(),
                _ => "did not exit".into(),
            };
            tracing::warn!(how = %how, "the wasm helper ended");
            *reader.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(how);
            // Its runs see their channel close.
            reader.runs().clear();
        });
        match tokio::time::timeout(READY_WITHIN, ready_rx).await {
            Ok(Ok(())) => Ok(helper),
            _ => Err(format!(
                "the wasm helper did not start: {}",
                helper
                    .ended()
                    .unwrap_or_else(|| "no ready line within 10 s".into())
            )),
        }
    }

    /// Runs a wasm workload (its `code` is the base64 module) to its end.
    pub async fn run(
        &self,
        spec: &WorkloadSpec,
        logs: Arc<dyn LogSink>,
        max_output: usize,
    ) -> Result<WorkloadResult, BackendError> {
        let module_b64 = spec.run.code.as_deref().unwrap_or_default();
        let module = match base64::engine::general_purpose::STANDARD.decode(module_b64.trim()) {
            Ok(module) => module,
            Err(e) => {
                return Ok(WorkloadResult::failed(format!(
                    "code is not base64: {e} (a wasm workload's code is a base64 module)"
                )))
            }
        };
        let sha: String = Sha256::digest(&module)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let code = match self.compiled.get(&sha, &module).await {
            Ok((code, fresh)) => {
                if fresh {
                    logs.emit(
                        LogStream::Backend,
                        "[vulcan] compiled the WebAssembly module; later runs of the same module reuse it".into(),
                    );
                }
                code
            }
            Err(refused) => return Ok(WorkloadResult::failed(refused)),
        };
        let helper = self.helper().await.map_err(BackendError)?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, mut rx) = mpsc::unbounded_channel();
        helper.runs().insert(id, tx);
        let mut guard = RunGuard {
            helper: helper.clone(),
            id,
            finished: false,
        };
        let timeout = Duration::from_secs(u64::from(spec.run.resources.timeout_s)) + HELPER_GRACE;
        let run = Request::Run {
            id,
            module: sha.clone(),
            compiled_b64: None,
            input: spec.input.clone(),
            env: spec.run.env.clone(),
            mem_mb: spec.run.resources.mem_mb,
            timeout_ms: timeout.as_millis() as u64,
            max_output,
        };
        // A fresh instance every run (of a module compiled once).
        logs.code_started(Preparation::Boot);
        let cannot_send = |e: std::io::Error| {
            BackendError(format!("cannot send the run to the wasm helper: {e}"))
        };
        helper
            .send_run(run.clone(), &sha, &code, false)
            .await
            .map_err(cannot_send)?;
        let mut sent_again = false;
        while let Some(reply) = rx.recv().await {
            match reply {
                Reply::Log { stderr, line, .. } => {
                    let stream = if stderr {
                        LogStream::Stderr
                    } else {
                        LogStream::Stdout
                    };
                    logs.emit(stream, line);
                }
                Reply::Missing { .. } if !sent_again => {
                    sent_again = true;
                    helper
                        .send_run(run.clone(), &sha, &code, true)
                        .await
                        .map_err(cannot_send)?;
                }
                Reply::Missing { .. } => {
                    guard.finished = true;
                    return Ok(WorkloadResult::failed(
                        "the wasm helper did not keep the module it was sent",
                    ));
                }
                Reply::Done {
                    exit_code,
                    output,
                    error,
                    cpu_ms,
                    peak_memory_bytes,
                    ..
                } => {
                    guard.finished = true;
                    return Ok(WorkloadResult {
                        exit_code,
                        output,
                        error,
                        usage: Some(Usage {
                            cpu_time_ms: cpu_ms,
                            peak_memory_bytes,
                            max_processes: None,
                            net_tx_bytes: None,
                            net_rx_bytes: None,
                        }),
                    });
                }
                Reply::Ready => {}
            }
        }
        guard.finished = true;
        // The helper went away mid-run: wait for its reader to record how.
        let mut how = helper.ended();
        for _ in 0..50 {
            if how.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            how = helper.ended();
        }
        Ok(WorkloadResult::failed(format!(
            "the wasm helper process ended while this workload ran ({}); the next wasm workload starts a new one",
            how.unwrap_or_else(|| "unknown cause".into())
        )))
    }
}
