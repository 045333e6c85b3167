//! One Deno process: started with no permissions in the jail, it runs exactly one job.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

use crate::cache::{CacheDir, CacheDirs};
use crate::jail::{Jail, DENO_IN_JAIL, RUNNER_IN_JAIL};
use crate::memory_cgroup::{CgroupRoot, MemoryCgroup};
use std::sync::Arc;
use vulcan_sandbox::network::SandboxNetwork;

/// The `deno run` flags of every workload process: quiet, no prompts, no remote or npm
/// modules, no config or lock file, nothing fetched.
pub const DENO_RUN_FLAGS: [&str; 7] = [
    "--quiet",
    "--no-prompt",
    "--no-remote",
    "--no-npm",
    "--no-config",
    "--no-lock",
    "--cached-only",
];

/// What Deno itself needs on top of the workload's heap (its RSS when idle is ~30 MB).
const OS_BOUND_OVERHEAD_MB: u64 = 96;

/// The OS memory bound of a process with a V8 heap of `heap_mb`.
pub fn os_bound_bytes(heap_mb: u32) -> u64 {
    (u64::from(heap_mb) + OS_BOUND_OVERHEAD_MB) * 1024 * 1024
}

/// The niceness pooled processes start with.
const POOLED_NICE: libc::c_int = 10;

/// How to start Deno processes.
#[derive(Debug)]
pub struct Launcher {
    pub deno: PathBuf,
    /// `None` runs Deno unconfined (only where the operator chose so).
    pub jail: Option<Jail>,
    pub runner_path: PathBuf,
    /// Each process's own Deno cache directory.
    pub caches: Arc<CacheDirs>,
    /// Per-process memory cgroups, where the host has them.
    pub cgroups: Option<Arc<CgroupRoot>>,
}

/// The job of the priming run: TypeScript, which the runner first tries as JavaScript, so
/// that the caches of both paths are primed.
const PRIMING_JOB: &str =
    r#"{"kind":"module","code_b64":"ZXhwb3J0IGRlZmF1bHQgKHg6IHVua25vd24pID0+IHg7","input":null}"#;

/// A started Deno process waiting for (or running) its one job.
pub struct DenoProcess {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: BufReader<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    /// The V8 heap limit it was started with.
    pub heap_mb: u32,
    /// The process's memory cgroup, its limit set from the heap: known at start, since a
    /// process only ever runs a job with the heap it was started with.
    pub cgroup: Option<MemoryCgroup>,
    /// The move into that cgroup, still under way: the kernel's first migration of a
    /// process can take a grace period (~10-20 ms), so it runs while Deno starts.
    joining: Option<tokio::task::JoinHandle<Option<MemoryCgroup>>>,
    cache: CacheDir,
    /// A pooled process runs each job in a fresh Worker and stays for later jobs (of one
    /// tenant); any other runs exactly one job.
    pub workers: bool,
    /// Its stderr, followed from its first job on (a reused process keeps it).
    pub(crate) tail: Option<Arc<crate::StderrTail>>,
    /// The key of the job a pooled process runs now: only frames carrying it are the
    /// runner's (see [`DenoProcess::send_keyed`]).
    pub(crate) key: Option<String>,
    /// The network it runs in, if it has one: removed when the process is dropped.
    pub network: Option<SandboxNetwork>,
}

/// One line the runner wrote: a frame, and the key of the job it is about (pooled
/// processes' frames only).
#[derive(Debug, Deserialize)]
struct Keyed {
    #[serde(flatten)]
    frame: Frame,
    #[serde(default)]
    k: Option<String>,
}

/// One frame of the runner.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "t")]
pub enum Frame {
    #[serde(rename = "ready")]
    Ready,
    #[serde(rename = "loaded")]
    Loaded,
    #[serde(rename = "o")]
    Stdout { l: String },
    #[serde(rename = "e")]
    Stderr { l: String },
    #[serde(rename = "r")]
    Return { v: String },
    #[serde(rename = "s")]
    ScriptDone,
    #[serde(rename = "x")]
    Threw { m: String, s: String },
    /// A pooled process has ended the job's Worker and waits for its next job.
    #[serde(rename = "n")]
    Next,
    /// A pooled process has handed the job to its Worker: what comes before is not the job's.
    #[serde(rename = "b")]
    Begun,
}

/// What reading the next line gave.
#[derive(Debug, PartialEq)]
pub enum Read {
    Frame(Frame),
    /// A line that is not a frame of the job being read (code that wrote to stdout
    /// directly, or a frame without the job's key: forged).
    Raw(String),
    /// A line longer than the limit; its length so far.
    Oversize(usize),
    Eof,
}

/// A process's network: the namespace it runs in (opened before the jail hides it) and
/// Deno's `--allow-net` list (empty: every host, the namespace's rules decide), which a
/// pooled process's Workers get too.
pub struct ProcessNetwork {
    pub namespace: std::fs::File,
    pub allow_net: String,
}

impl Launcher {
    /// Starts a process with a V8 heap of `heap_mb`. A `pooled` one runs each job in a
    /// fresh Worker, made (with the module machinery loaded) before the job arrives, and
    /// stays for later jobs; a cold one runs its one job in its main isolate.
    pub fn spawn(&self, heap_mb: u32, pooled: bool) -> std::io::Result<DenoProcess> {
        self.spawn_in(heap_mb, pooled, None)
    }

    /// [`Launcher::spawn`], in `network`'s namespace with its `--allow-net` where given (a
    /// cold process's job runs in the main isolate, which has the permission; a pooled
    /// one's Workers are given it).
    pub fn spawn_in(
        &self,
        heap_mb: u32,
        pooled: bool,
        network: Option<ProcessNetwork>,
    ) -> std::io::Result<DenoProcess> {
        let low_priority = pooled;
        let cache = self.caches.take()?;
        let (program, runner, cache_seen) = match &self.jail {
            Some(jail) => {
                let seen =
                    Path::new("/").join(cache.0.strip_prefix(jail.root()).unwrap_or(&cache.0));
                (
                    PathBuf::from(DENO_IN_JAIL),
                    PathBuf::from(RUNNER_IN_JAIL),
                    seen,
                )
            }
            None => (self.deno.clone(), self.runner_path.clone(), cache.0.clone()),
        };
        let mut cmd = Command::new(program);
        cmd.arg("run")
            .args(DENO_RUN_FLAGS)
            .arg(format!("--v8-flags=--max-old-space-size={heap_mb}"));
        if let Some(network) = &network {
            cmd.arg(match network.allow_net.as_str() {
                "" => "--allow-net".to_owned(),
                list => format!("--allow-net={list}"),
            });
        }
        if pooled {
            // The main thread reads the runner once more, to start each job's Worker from
            // it; the Workers themselves have no permission at all.
            cmd.arg("--unstable-worker-options")
                .arg(format!("--allow-read={}", runner.display()));
        }
        cmd.arg(&runner)
            .args(pooled.then_some("--workers"))
            // A pooled process's Workers get its network permission (`*`: every host).
            .args(
                network
                    .as_ref()
                    .filter(|_| pooled)
                    .map(|n| match n.allow_net.as_str() {
                        "" => "--net=*".to_owned(),
                        list => format!("--net={list}"),
                    }),
            )
            .env_clear()
            .env("NO_COLOR", "1")
            .env("DENO_NO_UPDATE_CHECK", "1")
            .env("DENO_DIR", cache_seen)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(network) = network {
            use std::os::fd::AsRawFd;
            let fd = network.namespace.as_raw_fd();
            // SAFETY: setns is async-signal-safe; the descriptor stays open in the parent
            // (moved into the closure) until the child has exec'd. It runs before the
            // jail drops the privilege it needs.
            unsafe {
                cmd.pre_exec(move || {
                    let _keep = &network.namespace;
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        if let Some(jail) = &self.jail {
            jail.confine(&mut cmd);
        }
        // SAFETY: prctl is async-signal-safe; runs after the jail's credential change,
        // which would otherwise clear it. A crashed server takes its Deno processes along.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // A pooled process starts at low priority so that refilling the pool does
                // not take CPU from running jobs; it is raised when taken (`promote`).
                if low_priority {
                    libc::setpriority(libc::PRIO_PROCESS, 0, POOLED_NICE);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        // The move into the group runs beside Deno's start-up; no job is sent before it
        // has finished (see `settle`).
        let joining = match (&self.cgroups, child.id()) {
            (Some(root), Some(pid)) => {
                let root = root.clone();
                Some(tokio::task::spawn_blocking(move || {
                    root.acquire()
                        .and_then(|group| group.limit(os_bound_bytes(heap_mb)).map(|()| group))
                        .and_then(|group| group.add(pid).map(|()| group))
                        .map_err(
                            |e| tracing::warn!(error = %e, "cannot place deno in a memory cgroup"),
                        )
                        .ok()
                }))
            }
            _ => None,
        };
        let stdout = stdout.ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
        Ok(DenoProcess {
            child,
            stdin,
            stdout: BufReader::with_capacity(64 * 1024, stdout),
            stderr,
            heap_mb,
            cgroup: None,
            joining,
            cache,
            workers: pooled,
            tail: None,
            key: None,
            network: None,
        })
    }

    /// Runs the runner once on a trivial job and keeps the caches it wrote as the
    /// template of every later process's cache directory (see [`crate::cache`]).
    pub async fn prime_template(self: &Arc<Self>, heap_mb: u32) -> Result<(), String> {
        let mut process = self
            .spawn(heap_mb, false)
            .map_err(|e| format!("cannot start deno: {e}"))?;
        process.settle().await;
        process
            .send(PRIMING_JOB.as_bytes())
            .await
            .map_err(|e| format!("cannot send the priming job: {e}"))?;
        // It ends on its own once the job is done; Deno writes its caches before it exits.
        let mut returned = false;
        let ran = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match read_line(&mut process.stdout, 64 * 1024, None).await {
                    Ok(Read::Frame(Frame::Return { .. })) => returned = true,
                    Ok(Read::Eof) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            process.child.wait().await
        })
        .await;
        match ran {
            Ok(Ok(status)) if status.success() && returned => {}
            Ok(Ok(status)) => return Err(format!("the priming run failed ({status})")),
            Ok(Err(e)) => return Err(format!("waiting for the priming run: {e}")),
            Err(_) => return Err("the priming run did not end within 10 s".into()),
        }
        let launcher = self.clone();
        tokio::task::spawn_blocking(move || {
            let captured = launcher.caches.capture(&process.cache.0);
            drop(process);
            captured.map_err(|e| format!("cannot keep the primed caches: {e}"))
        })
        .await
        .map_err(|e| format!("capturing the primed caches: {e}"))?
    }
}

impl DenoProcess {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the process is still alive (a pooled process may have died while idle).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Gives a pooled process normal priority back, every thread of it (nice is per thread).
    pub fn promote(&self) {
        self.renice(0);
    }

    /// Lowers a pooled process's priority while it makes its next Worker between jobs, so
    /// that it does not take CPU from the jobs running beside it.
    pub fn demote(&self) {
        self.renice(POOLED_NICE);
    }

    fn renice(&self, nice: libc::c_int) {
        let Some(pid) = self.pid() else {
            return;
        };
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                if let Some(tid) = task
                    .file_name()
                    .to_str()
                    .and_then(|t| t.parse::<libc::id_t>().ok())
                {
                    // SAFETY: setpriority has no memory preconditions.
                    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) };
                }
            }
        }
    }

    /// Waits until the process is in its memory cgroup (if it is to be in one).
    pub async fn settle(&mut self) {
        if let Some(joining) = self.joining.take() {
            self.cgroup = joining.await.ok().flatten();
        }
    }

    /// Waits for the runner's `ready` frame.
    pub async fn ready(&mut self, within: Duration) -> Result<(), String> {
        match tokio::time::timeout(within, read_line(&mut self.stdout, 4096, None)).await {
            Ok(Ok(Read::Frame(Frame::Ready))) => Ok(()),
            Ok(Ok(other)) => Err(format!("deno did not start its runner: {other:?}")),
            Ok(Err(e)) => Err(format!("reading from deno: {e}")),
            Err(_) => Err(format!(
                "deno was not ready within {} ms",
                within.as_millis()
            )),
        }
    }

    /// After a job in a Worker: waits until the process says (with the job's key) that
    /// the Worker is gone and it waits for the next job (whatever else comes before is
    /// dropped). False if it does not within `within` or its output ended.
    pub async fn next_job_ready(&mut self, within: Duration) -> bool {
        let key = self.key.take();
        let wait = async {
            loop {
                match read_line(&mut self.stdout, 1 << 20, key.as_deref()).await {
                    Ok(Read::Frame(Frame::Next)) => return true,
                    Ok(Read::Eof) | Err(_) => return false,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(within, wait).await.unwrap_or(false)
    }

    /// Kills the process; reaping it and removing its cache happen off the caller's path.
    pub fn retire(mut self) {
        let _ = self.child.start_kill();
        tokio::spawn(async move {
            let _ = self.child.wait().await;
            // Removing the cache directory is blocking file work.
            tokio::task::spawn_blocking(move || drop(self));
        });
    }

    /// Sends one line of JSON (no raw newline inside) and keeps stdin open: a warm
    /// instance's job, then each of its invocations.
    pub async fn send_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("stdin is closed"))?;
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
        stdin.write_all(&bytes).await?;
        stdin.flush().await
    }

    /// Sends a job to a pooled process under a new random key: the runner's main thread
    /// writes every frame of the job with it, and the job's Worker never learns it, so
    /// nothing the job writes itself is taken for a frame.
    pub async fn send_keyed(&mut self, job: &[u8]) -> std::io::Result<()> {
        let key = random_key()?;
        let mut line = Vec::with_capacity(key.len() + 1 + job.len());
        line.extend_from_slice(key.as_bytes());
        line.push(b'\t');
        line.extend_from_slice(job);
        self.key = Some(key);
        self.send_line(&line).await
    }

    /// Sends the job, one line of JSON (no raw newline inside), and closes stdin.
    pub async fn send(&mut self, job: &[u8]) -> std::io::Result<()> {
        let mut stdin = self
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("the job was already sent"))?;
        let mut line = Vec::with_capacity(job.len() + 1);
        line.extend_from_slice(job);
        line.push(b'\n');
        stdin.write_all(&line).await?;
        stdin.shutdown().await
    }
}

/// 128 random bits, hex.
fn random_key() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom writes at most `len` bytes into the buffer it is given.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(std::io::Error::last_os_error());
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads one line of at most `max` bytes; a longer one is consumed and reported. A frame
/// counts only if it carries `key` (or none, when `key` is `None`); any other line is raw.
pub async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: usize,
    key: Option<&str>,
) -> std::io::Result<Read> {
    let mut line = Vec::new();
    let mut oversize = 0usize;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            if oversize > 0 {
                return Ok(Read::Oversize(oversize));
            }
            if line.is_empty() {
                return Ok(Read::Eof);
            }
            break;
        }
        let (chunk, found) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if oversize > 0 || line.len() + chunk.len() > max {
            oversize += line.len() + chunk.len();
            line.clear();
        } else {
            line.extend_from_slice(chunk);
        }
        let used = found.unwrap_or(buf.len());
        reader.consume(used);
        if found.is_some() {
            if oversize > 0 {
                return Ok(Read::Oversize(oversize));
            }
            break;
        }
    }
    Ok(match serde_json::from_slice::<Keyed>(&line) {
        Ok(keyed) if keyed.k.as_deref() == key => Read::Frame(keyed.frame),
        _ => Read::Raw(String::from_utf8_lossy(&line).into_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn reads(input: &'static [u8], max: usize) -> Vec<Read> {
        keyed_reads(input, max, None).await
    }

    async fn keyed_reads(input: &'static [u8], max: usize, key: Option<&str>) -> Vec<Read> {
        let mut reader = BufReader::with_capacity(8, input);
        let mut out = Vec::new();
        loop {
            let r = read_line(&mut reader, max, key).await.unwrap();
            let end = r == Read::Eof;
            out.push(r);
            if end {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn frames_raw_lines_and_oversize_lines_are_told_apart() {
        let got = reads(
            b"{\"t\":\"o\",\"l\":\"hi\"}\nplain text\n0123456789012345678901234567890\n{\"t\":\"s\"}",
            20,
        )
        .await;
        assert_eq!(
            got,
            vec![
                Read::Frame(Frame::Stdout { l: "hi".into() }),
                Read::Raw("plain text".into()),
                Read::Oversize(31),
                Read::Frame(Frame::ScriptDone),
                Read::Eof,
            ]
        );
    }

    #[tokio::test]
    async fn only_frames_with_the_jobs_key_are_frames() {
        let got = keyed_reads(
            b"{\"t\":\"r\",\"v\":\"1\",\"k\":\"abc\"}\n{\"t\":\"r\",\"v\":\"2\"}\n{\"t\":\"n\",\"k\":\"xyz\"}\n",
            1024,
            Some("abc"),
        )
        .await;
        assert_eq!(got[0], Read::Frame(Frame::Return { v: "1".into() }));
        assert!(
            matches!(&got[1], Read::Raw(l) if l.contains("\"2\"")),
            "no key: forged"
        );
        assert!(matches!(&got[2], Read::Raw(_)), "another job's key");
        // Without a key expected, a keyed line is not a frame either.
        let cold = keyed_reads(b"{\"t\":\"s\",\"k\":\"abc\"}\n", 1024, None).await;
        assert!(matches!(&cold[0], Read::Raw(_)));
        assert!(random_key().unwrap() != random_key().unwrap());
        assert_eq!(random_key().unwrap().len(), 32);
    }
}
