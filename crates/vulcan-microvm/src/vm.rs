//! One microVM: booted, handed one workload, destroyed. The guest is untrusted: every
//! frame is parsed with size limits, and garbage, silence or a flood fail the workload,
//! never the server.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::sync::mpsc;
use vulcan_agent::{
    read_frame, write_frame, Exit, FrameError, Kind, Ready, Run, Seed, Served, SEED_BYTES,
};
use vulcan_domain::{BackendError, LogSink, LogStream, WorkloadResult};

use crate::vmm::{VmSpec, Vmm};

/// Frames (or the reason the channel broke) as the reader thread sees them.
pub(crate) type Frames = mpsc::Receiver<Result<(Kind, Vec<u8>), String>>;

/// Everything the guest may send for one workload before it is cut off.
const MAX_GUEST_BYTES: u64 = 256 * 1024 * 1024;

/// A booted VM waiting for its one workload. Dropping it kills the VMM process and
/// removes the VM's directory (socket, console log, pid file).
pub struct Vm {
    pub id: String,
    child: tokio::process::Child,
    dir: PathBuf,
    writer: UnixStream,
    frames: Frames,
    pub ready: Ready,
    /// From spawning the VMM to the agent's Ready frame, or to a restored VM running.
    pub boot_time: Duration,
    /// Whether it was restored from a snapshot rather than booted.
    pub restored: bool,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last lines of a VM's console, for error messages.
fn console_tail(dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(dir.join("console.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

fn spawn_reader(stream: UnixStream) -> Frames {
    let (tx, rx) = mpsc::channel(256);
    std::thread::spawn(move || {
        let mut stream = std::io::BufReader::with_capacity(64 * 1024, stream);
        loop {
            let frame = match read_frame(&mut stream) {
                Ok(f) => Ok(f),
                Err(FrameError::Closed) => return,
                Err(FrameError::Io(e)) => Err(format!("the channel failed: {e}")),
                Err(FrameError::Invalid(why)) => {
                    Err(format!("the guest broke the protocol: it sent {why}"))
                }
            };
            let stop = frame.is_err();
            if tx.blocking_send(frame).is_err() || stop {
                return;
            }
        }
    });
    rx
}

impl Vm {
    /// Starts the VMM; `pending` cleans up on any error.
    async fn launch(
        vmm: &dyn Vmm,
        spec: &mut VmSpec,
        vms_dir: &std::path::Path,
    ) -> Result<(String, Pending), String> {
        let id = ulid::Ulid::new().to_string().to_lowercase();
        let dir = vms_dir.join(&id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        spec.channel = dir.join("channel.sock");
        spec.console = dir.join("console.log");
        spec.pidfile = dir.join("qemu.pid");
        if spec.qmp.is_some() {
            spec.qmp = Some(dir.join("qmp.sock"));
        }
        let child = match vmm.command(spec).spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("cannot start {}: {e}", vmm.name()));
            }
        };
        // From here on, dropping `pending` cleans up whatever happens.
        let pending = Pending {
            child: Some(child),
            dir,
        };
        Ok((id, pending))
    }

    /// Connects to the channel of the VM `pending` started.
    async fn channel(
        vmm: &dyn Vmm,
        pending: &mut Pending,
        path: &std::path::Path,
        deadline: Instant,
    ) -> Result<UnixStream, String> {
        loop {
            match UnixStream::connect(path) {
                Ok(s) => return Ok(s),
                Err(_) if Instant::now() < deadline => {
                    if let Some(exited) = pending.exited(vmm).await {
                        return Err(exited);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(e) => return Err(format!("cannot connect to the VM's channel: {e}")),
            }
        }
    }

    /// Starts a VM and waits for its agent's Ready frame.
    pub async fn boot(
        vmm: &dyn Vmm,
        mut spec: VmSpec,
        vms_dir: &std::path::Path,
        timeout: Duration,
    ) -> Result<Vm, String> {
        let started = Instant::now();
        let deadline = started + timeout;
        let (id, mut pending) = Self::launch(vmm, &mut spec, vms_dir).await?;
        let stream = Self::channel(vmm, &mut pending, &spec.channel, deadline).await?;
        let dir = pending.dir.clone();
        let (writer, mut frames) = open_channel(stream)?;
        let first = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            frames.recv(),
        )
        .await;
        let ready = match first {
            Ok(Some(Ok((Kind::Ready, payload)))) => serde_json::from_slice::<Ready>(&payload)
                .map_err(|e| format!("the guest's Ready frame is not valid: {e}"))?,
            Ok(Some(Ok((kind, _)))) => {
                return Err(format!("the guest sent {kind:?} before it was ready"))
            }
            Ok(Some(Err(why))) => return Err(why),
            Ok(None) => {
                return Err(format!(
                    "the VM stopped before its agent was ready (console: {})",
                    console_tail(&dir)
                ))
            }
            Err(_) => {
                return Err(format!(
                    "the guest did not become ready within {} s (console: {})",
                    timeout.as_secs(),
                    console_tail(&dir)
                ))
            }
        };
        pending.into_vm(id, (writer, frames), ready, started, false)
    }

    /// Starts a VM from a snapshot's saved state (`spec.incoming`; `spec` otherwise as the
    /// snapshotted VM was started): its agent is where it was when saved, waiting for a
    /// job, so no Ready frame comes; `ready` is the one it sent then.
    pub async fn restore(
        vmm: &dyn Vmm,
        mut spec: VmSpec,
        vms_dir: &std::path::Path,
        timeout: Duration,
        ready: Ready,
    ) -> Result<Vm, String> {
        let started = Instant::now();
        let deadline = started + timeout;
        spec.qmp = Some(PathBuf::new());
        let (id, mut pending) = Self::launch(vmm, &mut spec, vms_dir).await?;
        let qmp_path = spec.qmp.clone().unwrap_or_default();
        // The channel is connected before the state has loaded, while the guest cannot run
        // yet: its agent, blocked reading the port, takes a port with no host behind it for
        // the host gone, and powers off.
        let stream = Self::channel(vmm, &mut pending, &spec.channel, deadline).await?;
        let loaded = async {
            let mut qmp = crate::qmp::Qmp::connect(&qmp_path, deadline).await?;
            if let (Some(state), Some(_)) = (&spec.incoming, &spec.memory) {
                qmp.load_from_file(state, deadline).await?;
            }
            qmp.wait_running(deadline).await
        };
        if let Err(e) = loaded.await {
            return Err(match pending.exited(vmm).await {
                Some(exited) => exited,
                None => e,
            });
        }
        pending.into_vm(id, open_channel(stream)?, ready, started, true)
    }

    /// Saves this VM (booted with `spec.qmp` set, its agent Ready and waiting) into `file`,
    /// and ends it: QEMU stops the guest when the state is written.
    pub async fn save(self, file: &std::path::Path, timeout: Duration) -> Result<(), String> {
        self.save_keeping(file, timeout).await
    }

    /// [`Vm::save`], keeping the VM: stopped once saved; running on if saving failed.
    pub async fn save_keeping(
        &self,
        file: &std::path::Path,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut qmp = crate::qmp::Qmp::connect(&self.dir.join("qmp.sock"), deadline).await?;
        qmp.migrate_to_file(file, deadline).await
    }

    /// The channel, for a caller that follows the guest itself (a held sandbox): a writer
    /// and the frames; this VM keeps neither.
    pub(crate) fn take_channel(&mut self) -> Result<(UnixStream, Frames), String> {
        let writer = self
            .writer
            .try_clone()
            .map_err(|e| format!("cannot share the VM's channel: {e}"))?;
        let (_, closed) = mpsc::channel(1);
        Ok((writer, std::mem::replace(&mut self.frames, closed)))
    }

    /// Whether the VMM process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Hands the workload to the agent and follows it to its Exit frame.
    pub async fn run(
        mut self,
        job: &Run,
        logs: Arc<dyn LogSink>,
        max_output: usize,
        mem_mb: u32,
    ) -> Result<WorkloadResult, BackendError> {
        let payload = seeded(job)?;
        self.send(Kind::Run, &payload)
            .map_err(|e| BackendError(format!("cannot hand the workload to the VM: {e}")))?;
        let (mut printed, mut received) = (Printed::new(max_output), 0);
        match self.next(logs.as_ref(), &mut printed, &mut received).await {
            Ok((Kind::Exit, payload)) => {
                let exit: Exit = serde_json::from_slice(&payload).map_err(|e| {
                    BackendError(format!("the guest's Exit frame is not valid: {e}"))
                })?;
                Ok(result(
                    exit,
                    printed.bytes,
                    printed.total,
                    max_output,
                    &printed.last_stderr,
                    mem_mb,
                ))
            }
            Ok((kind, _)) => Err(BackendError(format!(
                "the guest broke the protocol: it sent {kind:?} during the run"
            ))),
            Err(e) if e.0.starts_with("the VM stopped") => Err(BackendError(format!(
                "the VM stopped before reporting how the workload ended (console: {})",
                console_tail(&self.dir)
            ))),
            Err(e) => Err(e),
        }
    }
}

impl Vm {
    fn send(&mut self, kind: Kind, payload: &[u8]) -> Result<(), BackendError> {
        write_frame(&mut self.writer, kind, payload)
            .and_then(|()| self.writer.flush())
            .map_err(|e| BackendError(format!("cannot talk to the VM: {e}")))
    }

    /// The next frame of this guest, size-bounded: lines go to `logs` (stdout also into
    /// `printed`), anything else is returned.
    async fn next(
        &mut self,
        logs: &dyn LogSink,
        printed: &mut Printed,
        received: &mut u64,
    ) -> Result<(Kind, Vec<u8>), BackendError> {
        loop {
            let frame = match self.frames.recv().await {
                Some(Ok(frame)) => frame,
                Some(Err(why)) => return Err(BackendError(why)),
                None => {
                    return Err(BackendError(format!(
                        "the VM stopped (console: {})",
                        console_tail(&self.dir)
                    )))
                }
            };
            *received += frame.1.len() as u64 + 5;
            if *received > MAX_GUEST_BYTES {
                return Err(BackendError(format!(
                    "the guest sent more than {MAX_GUEST_BYTES} bytes; it was stopped"
                )));
            }
            match frame {
                (Kind::Stdout, line) => {
                    printed.push(&line);
                    logs.emit(
                        LogStream::Stdout,
                        String::from_utf8_lossy(&line).into_owned(),
                    );
                }
                (Kind::Stderr, line) => {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    // The error is the last line, except where node ends a fatal error
                    // with its stack ("    at …") and version ("Node.js v22.23.3").
                    let footer = text.starts_with("    at ")
                        || text.trim().strip_prefix("Node.js v").is_some_and(|v| {
                            !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.')
                        });
                    if !text.trim().is_empty() && !footer {
                        printed.last_stderr = text.trim().chars().take(500).collect();
                    }
                    logs.emit(LogStream::Stderr, text);
                }
                other => return Ok(other),
            }
        }
    }

    /// Makes this VM a warm instance of a function: the agent loads it (`job.serve`). An
    /// error in `Ok(Err)` is the invocation's (the code would not load).
    pub async fn start_serving(
        &mut self,
        job: &Run,
        logs: &dyn LogSink,
    ) -> Result<Result<(), String>, BackendError> {
        let payload = seeded(job)?;
        self.send(Kind::Run, &payload)?;
        let (mut printed, mut received) = (Printed::new(0), 0);
        match self.next(logs, &mut printed, &mut received).await? {
            (Kind::Loaded, payload) => {
                let loaded: Served = serde_json::from_slice(&payload).map_err(|e| {
                    BackendError(format!("the guest's Loaded frame is not valid: {e}"))
                })?;
                Ok(match loaded.error {
                    Some(e) => Err(e),
                    None => Ok(()),
                })
            }
            (Kind::Exit, payload) => {
                let exit: Exit = serde_json::from_slice(&payload).unwrap_or_default();
                Ok(Err(exit.error.unwrap_or_else(|| {
                    "the function could not be loaded".into()
                })))
            }
            (kind, _) => Err(BackendError(format!(
                "the guest broke the protocol: it sent {kind:?} while loading"
            ))),
        }
    }

    /// Serves one invocation in this warm instance; the result, and whether it can serve
    /// again.
    pub async fn invoke(
        &mut self,
        input: &serde_json::Value,
        logs: &dyn LogSink,
        max_output: usize,
        mem_mb: u32,
    ) -> Result<(WorkloadResult, bool), BackendError> {
        let payload = serde_json::to_vec(input).map_err(|e| BackendError(e.to_string()))?;
        self.send(Kind::Invoke, &payload)?;
        let (mut printed, mut received) = (Printed::new(max_output), 0);
        let served = match self.next(logs, &mut printed, &mut received).await? {
            (Kind::Result, payload) => serde_json::from_slice::<Served>(&payload)
                .map_err(|e| BackendError(format!("the guest's Result frame is not valid: {e}")))?,
            (kind, _) => {
                return Err(BackendError(format!(
                    "the guest broke the protocol: it sent {kind:?} during an invocation"
                )))
            }
        };
        let healthy = !served.broken;
        let result = match served.output {
            // A handler's value.
            Some(output) if served.error.is_none() => WorkloadResult {
                exit_code: None,
                output,
                error: None,
                usage: usage_of(served.used),
            },
            // A handler that threw, or a program that ran (go), or a server that died.
            _ => result(
                Exit {
                    code: served.code,
                    signal: None,
                    oom: served.oom,
                    pids_limited: served.pids_limited,
                    error: served.error,
                    used: served.used,
                },
                printed.bytes,
                printed.total,
                max_output,
                &printed.last_stderr,
                mem_mb,
            ),
        };
        Ok((result, healthy))
    }
}

/// What a guest printed: the first bytes of stdout, and its last stderr line.
struct Printed {
    keep: usize,
    bytes: Vec<u8>,
    total: usize,
    last_stderr: String,
}

impl Printed {
    fn new(keep: usize) -> Self {
        Printed {
            keep,
            bytes: Vec::new(),
            total: 0,
            last_stderr: String::new(),
        }
    }

    fn push(&mut self, line: &[u8]) {
        self.total += line.len() + 1;
        if self.bytes.len() + line.len() < self.keep {
            self.bytes.extend_from_slice(line);
            self.bytes.push(b'\n');
        }
    }
}

fn result(
    exit: Exit,
    output: Vec<u8>,
    output_total: usize,
    max_output: usize,
    last_stderr: &str,
    mem_mb: u32,
) -> WorkloadResult {
    let code = exit.code.or(exit.signal.map(|s| 128 + s));
    let error = if let Some(e) = exit.error {
        Some(e)
    } else if exit.oom {
        Some(format!(
            "memory limit exceeded: the workload needed more than its {mem_mb} MB"
        ))
    } else if exit.pids_limited && code != Some(0) {
        let how = code.map_or(String::new(), |c| format!(" (exit code {c})"));
        Some(format!(
            "process limit reached: the workload may have at most 64 processes (a fork bomb?){how}"
        ))
    } else if output_total > max_output {
        Some(format!(
            "output is over the limit of {max_output} bytes (the workload printed {output_total} bytes)"
        ))
    } else if code != Some(0) {
        let how = match (exit.code, exit.signal) {
            (_, Some(s)) => format!("was killed by signal {s}"),
            (Some(c), _) => format!("exited with code {c}"),
            _ => "ended without an exit code".into(),
        };
        Some(if last_stderr.is_empty() {
            how
        } else {
            format!("{how}: {last_stderr}")
        })
    } else {
        None
    };
    WorkloadResult {
        exit_code: code,
        output: if output_total > max_output {
            String::new()
        } else {
            String::from_utf8_lossy(&output).into_owned()
        },
        error,
        usage: usage_of(exit.used),
    }
}

/// What the guest measured, as the engine records it.
fn usage_of(used: Option<vulcan_agent::Used>) -> Option<vulcan_domain::Usage> {
    used.map(|u| vulcan_domain::Usage {
        cpu_time_ms: u.cpu_time_ms,
        peak_memory_bytes: u.peak_memory_bytes,
        max_processes: u.max_processes,
        net_tx_bytes: None,
        net_rx_bytes: None,
    })
}

/// A VM still booting: killed and removed if boot fails.
struct Pending {
    child: Option<tokio::process::Child>,
    dir: PathBuf,
}

/// The VM's channel as a writer (with a write timeout: a guest that stops reading must not
/// hold a server thread for long) and the frames read from it.
fn open_channel(stream: UnixStream) -> Result<(UnixStream, Frames), String> {
    let writer = stream
        .try_clone()
        .map_err(|e| format!("cannot use the VM's channel: {e}"))?;
    let _ = writer.set_write_timeout(Some(Duration::from_secs(10)));
    Ok((writer, spawn_reader(stream)))
}

impl Pending {
    /// The started VM, its agent `ready` (booted, or `restored`) since `started`.
    fn into_vm(
        mut self,
        id: String,
        (writer, frames): (UnixStream, Frames),
        ready: Ready,
        started: Instant,
        restored: bool,
    ) -> Result<Vm, String> {
        let Some(child) = self.child.take() else {
            return Err("the VM process was lost while it started".into());
        };
        Ok(Vm {
            id,
            child,
            dir: self.dir.clone(),
            writer,
            frames,
            ready,
            boot_time: started.elapsed(),
            restored,
        })
    }

    /// If the VMM has exited: why, with what it wrote on stderr.
    async fn exited(&mut self, vmm: &dyn Vmm) -> Option<String> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().ok()??;
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = e.read_to_string(&mut err).await;
        }
        Some(format!(
            "{} exited at start ({status}): {}",
            vmm.name(),
            err.trim()
        ))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The host's clock and fresh entropy, now.
pub(crate) fn fresh_seed() -> Result<Seed, BackendError> {
    let mut entropy = [0u8; SEED_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut entropy))
        .map_err(|e| BackendError(format!("cannot read the host's entropy: {e}")))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(Seed {
        unix_s: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
        unix_nanos: now.subsec_nanos(),
        entropy: base64::engine::general_purpose::STANDARD.encode(entropy),
    })
}

/// The job's frame, with the host's clock and fresh entropy taken now, as it leaves: a
/// VM booted (or pooled) long before gets the time of its run.
fn seeded(job: &Run) -> Result<Vec<u8>, BackendError> {
    let job = Run {
        seed: Some(fresh_seed()?),
        ..job.clone()
    };
    serde_json::to_vec(&job).map_err(|e| BackendError(e.to_string()))
}
