//! The helper process: one wasmtime engine serving many runs at once, each in a fresh
//! instance and store of its own (nothing is shared between runs but compiled code).
//!
//! Reading order: [`serve`] (confine, then read requests), `modules` (the compiled modules
//! kept), `job` (one run), `limits` (what an instance may take), `lines` (its output).
//!
//! - Modules arrive compiled (by the server's compile process, [`crate::compile`]) and are
//!   kept by SHA-256 with their imports already resolved ([`InstancePre`]).
//! - Instances come from a pooling allocator: their memories and tables are slots reserved
//!   at start, handed out and reset rather than mapped per run.
//! - Linear memory is capped at the run's `mem_mb`; growing past it traps with an error
//!   saying so. CPU is bounded by epoch interruption: a tick every [`EPOCH_TICK`], at which a
//!   killed or timed-out run traps, even in `loop {}`; a run waiting in a host call is
//!   dropped at its kill or deadline, freeing its slot at once.
//! - WASI preview 1 only: stdin (the input), stdout and stderr (streamed as log lines),
//!   arguments, environment, clocks and random. No preopened directory and no socket.

mod job;
mod limits;
mod lines;
mod modules;

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};
use wasmtime_wasi::p1::{self, WasiP1Ctx};

pub use modules::{unknown_import, WASI};

use crate::{Reply, Request};

/// How often running code checks whether it must stop.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);
/// The largest linear memory (a 32-bit module's whole address space).
const MAX_MEM_MB: u32 = 4096;

/// How the helper is set up (from its command line).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Instances at once: the pooling allocator's slots.
    pub slots: u32,
    /// The largest `mem_mb` a run may have.
    pub max_mem_mb: u32,
}

/// Where replies go: the helper's stdout, one whole line per reply whichever thread
/// writes it.
#[derive(Clone)]
struct Replies(Arc<Mutex<std::io::Stdout>>);

impl Replies {
    fn send(&self, reply: &Reply) {
        let Ok(mut line) = serde_json::to_vec(reply) else {
            return;
        };
        line.push(b'\n');
        let mut out = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // The server has gone if this fails; the helper ends when its stdin closes.
        let _ = out.write_all(&line).and_then(|()| out.flush());
    }
}

/// A store's data: WASI's state and the run's limits.
struct State {
    wasi: WasiP1Ctx,
    limits: limits::Limits,
}

/// The settings code is compiled with: the compile process and the helper must agree on
/// them (the helper's engine refuses code compiled otherwise).
pub fn compiler_config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config
}

/// The engine every run shares: the compiler's settings, instances from a pool.
fn engine(settings: &Settings) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(settings.slots)
        .total_memories(settings.slots)
        .total_tables(settings.slots)
        .total_stacks(settings.slots)
        .max_memories_per_module(1)
        .max_tables_per_module(4)
        .table_elements(limits::MAX_TABLE_ELEMENTS)
        .max_memory_size((settings.max_mem_mb.min(MAX_MEM_MB) as usize) << 20);
    let mut config = compiler_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Confines the calling process before it reads any request: its own empty network
/// namespace, an empty root, no privileges. Needs root; unprivileged (a developer's run)
/// it stays as it is and says so on stderr.
pub fn confine(root: &Path) -> std::io::Result<()> {
    // SAFETY: plain system calls on owned, NUL-terminated data.
    unsafe {
        if libc::geteuid() != 0 {
            eprintln!(
                "vulcan wasm-helper: not root, so not confined (no jail, no network namespace)"
            );
            return Ok(());
        }
        let root = std::ffi::CString::new(root.as_os_str().as_encoded_bytes())
            .map_err(|_| std::io::Error::other("the root path contains a NUL byte"))?;
        if libc::unshare(libc::CLONE_NEWNET) != 0
            || libc::chroot(root.as_ptr()) != 0
            || libc::chdir(c"/".as_ptr()) != 0
            || libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(65534) != 0
            || libc::setuid(65534) != 0
            || libc::prctl(
                libc::PR_SET_NO_NEW_PRIVS,
                1 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// How a run is told it is killed: a flag for the epoch callback, a notice for a run
/// waiting in a host call.
type KillSwitch = (Arc<AtomicBool>, Arc<tokio::sync::Notify>);

/// The runs under way, to be told of a kill.
#[derive(Default, Clone)]
struct Running(Arc<Mutex<HashMap<u64, KillSwitch>>>);

impl Running {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, KillSwitch>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves requests from stdin until it closes. `root` is the empty directory the helper
/// confines itself to.
pub fn serve(settings: Settings, root: &Path) -> Result<(), String> {
    let engine = engine(&settings).map_err(|e| format!("cannot set up wasmtime: {e}"))?;
    let mut linker = Linker::new(&engine);
    p1::add_to_linker_async(&mut linker, |s: &mut State| &mut s.wasi)
        .map_err(|e| format!("cannot link WASI: {e}"))?;
    confine(root).map_err(|e| format!("cannot confine the helper: {e}"))?;
    let mut modules = modules::Modules::new(engine.clone(), linker);
    let ticker = engine.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(EPOCH_TICK);
        ticker.increment_epoch();
    });
    let replies = Replies(Arc::new(Mutex::new(std::io::stdout())));
    let running = Running::default();
    replies.send(&Reply::Ready);
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("cannot read a request: {e}"))?;
        match serde_json::from_str::<Request>(&line) {
            Ok(Request::Kill { id }) => {
                if let Some((killed, kill)) = running.map().get(&id) {
                    killed.store(true, Ordering::SeqCst);
                    kill.notify_one();
                }
            }
            Ok(Request::Run {
                id,
                module,
                compiled_b64,
                input,
                env,
                mem_mb,
                timeout_ms,
                max_output,
            }) => {
                // Looked up (or loaded) here, in the order of the requests: the server
                // counts on it to know what is kept.
                let pre = match compiled_b64 {
                    Some(b64) => base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|e| format!("the compiled module is not base64: {e}"))
                        .and_then(|bytes| modules.load(&module, &bytes)),
                    None => match modules.get(&module) {
                        Some(pre) => Ok(pre),
                        None => {
                            replies.send(&Reply::Missing { id });
                            continue;
                        }
                    },
                };
                let pre = match pre {
                    Ok(pre) => pre,
                    Err(error) => {
                        replies.send(&Reply::Done {
                            id,
                            exit_code: None,
                            output: String::new(),
                            error: Some(error),
                            cpu_ms: 0,
                            peak_memory_bytes: 0,
                        });
                        continue;
                    }
                };
                let (killed, kill) = (Arc::new(AtomicBool::new(false)), Arc::default());
                running
                    .map()
                    .insert(id, (killed.clone(), Arc::clone(&kill)));
                let job = job::Job {
                    id,
                    input,
                    env: env.into_iter().collect(),
                    max_memory: (mem_mb.min(settings.max_mem_mb).min(MAX_MEM_MB) as usize) << 20,
                    deadline: Instant::now() + Duration::from_millis(timeout_ms),
                    max_output,
                    kill,
                    killed,
                };
                let (replies, running) = (replies.clone(), running.clone());
                std::thread::spawn(move || {
                    let done = job.run(pre, &replies);
                    running.map().remove(&id);
                    replies.send(&done);
                });
            }
            Err(e) => eprintln!("vulcan wasm-helper: a request that does not parse: {e}"),
        }
    }
    Ok(())
}
