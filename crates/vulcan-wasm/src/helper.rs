//! The helper process: one wasmtime engine serving many runs at once, each in a fresh
//! instance and store of its own (nothing is shared between runs but compiled code).
//!
//! - Modules are compiled once per SHA-256 of their bytes and kept (the last
//!   [`CACHED_MODULES`]), with their imports already resolved ([`InstancePre`]).
//! - Instances come from a pooling allocator: their memories and tables are slots reserved
//!   at start, handed out and reset rather than mapped per run.
//! - Linear memory is capped at the run's `mem_mb`; growing past it traps with an error
//!   saying so. CPU is bounded by epoch interruption: a tick every [`EPOCH_TICK`], at which a
//!   killed or timed-out run traps, even in `loop {}`.
//! - WASI preview 1 only: stdin (the input), stdout and stderr (streamed as log lines),
//!   arguments, environment, clocks and random. No preopened directory and no socket.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, ResourceLimiter, Store, UpdateDeadline, Val, ValType,
};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use crate::{Reply, Request};

/// Compiled modules kept, most recently used last.
pub const CACHED_MODULES: usize = 64;
/// How often running code checks whether it must stop.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);
/// The namespace of WASI preview 1's functions: the only imports a module may have.
const WASI: &str = "wasi_snapshot_preview1";
/// The largest linear memory (a 32-bit module's whole address space).
const MAX_MEM_MB: u32 = 4096;
/// Table elements one instance may have.
const MAX_TABLE_ELEMENTS: usize = 100_000;

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
    limits: Limits,
}

struct Limits {
    max_memory: usize,
    peak_memory: usize,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            return Err(wasmtime::format_err!(
                "memory limit exceeded: the module grew its linear memory to {} MiB, past its limit of {} MiB (resources.mem_mb)",
                desired.div_ceil(1 << 20),
                self.max_memory >> 20
            ));
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}

/// Compiled modules by digest, with their imports resolved.
struct Modules {
    engine: Engine,
    linker: Linker<State>,
    cached: Mutex<VecDeque<([u8; 32], InstancePre<State>)>>,
}

impl Modules {
    /// The module of `bytes`, compiled now unless it is cached; and whether it was.
    fn get(&self, bytes: &[u8]) -> Result<(InstancePre<State>, bool), String> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        {
            let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(at) = cached.iter().position(|(d, _)| *d == digest) {
                let entry = cached.remove(at).expect("a found position");
                let pre = entry.1.clone();
                cached.push_back(entry);
                return Ok((pre, false));
            }
        }
        let module = Module::new(&self.engine, bytes)
            .map_err(|e| format!("the code is not a valid WebAssembly module: {e}"))?;
        for import in module.imports() {
            if import.module() != WASI {
                return Err(format!(
                    "the module imports {}.{}, which Vulcan does not provide: a module may import WASI preview 1 functions ({WASI}) only",
                    import.module(),
                    import.name()
                ));
            }
        }
        let pre = self.linker.instantiate_pre(&module).map_err(|e| {
            format!("the module's imports cannot be satisfied: {e} (only WASI preview 1 functions exist)")
        })?;
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if cached.len() >= CACHED_MODULES {
            cached.pop_front();
        }
        cached.push_back((digest, pre.clone()));
        Ok((pre, true))
    }
}

/// Stdout or stderr of one run: each complete line becomes a log reply; stdout is also
/// kept (up to the run's bound) as the output.
#[derive(Clone)]
struct Lines(Arc<Mutex<LineState>>);

struct LineState {
    replies: Replies,
    id: u64,
    stderr: bool,
    partial: Vec<u8>,
    kept: Option<Vec<u8>>,
    max_kept: usize,
    oversize: bool,
}

impl Lines {
    fn new(replies: Replies, id: u64, stderr: bool, max_kept: usize) -> Lines {
        Lines(Arc::new(Mutex::new(LineState {
            replies,
            id,
            stderr,
            partial: Vec::new(),
            kept: (!stderr).then(Vec::new),
            max_kept,
            oversize: false,
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LineState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, bytes: &[u8]) {
        let mut s = self.state();
        let room = s
            .max_kept
            .saturating_sub(s.kept.as_ref().map_or(0, Vec::len));
        if let Some(kept) = s.kept.as_mut() {
            kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        if bytes.len() > room && !s.stderr {
            s.oversize = true;
        }
        s.partial.extend_from_slice(bytes);
        while let Some(end) = s.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = s.partial.drain(..=end).collect();
            s.emit(&line[..line.len() - 1]);
        }
        // A line without its end is sent in pieces rather than held without bound.
        if s.partial.len() >= 64 * 1024 {
            let line = std::mem::take(&mut s.partial);
            s.emit(&line);
        }
    }

    /// Sends what is left of a last line without its end; returns what was kept.
    fn finish(&self) -> (String, bool) {
        let mut s = self.state();
        if !s.partial.is_empty() {
            let line = std::mem::take(&mut s.partial);
            s.emit(&line);
        }
        let kept = s.kept.take().unwrap_or_default();
        (String::from_utf8_lossy(&kept).into_owned(), s.oversize)
    }
}

impl LineState {
    fn emit(&self, line: &[u8]) {
        self.replies.send(&Reply::Log {
            id: self.id,
            stderr: self.stderr,
            line: String::from_utf8_lossy(line).into_owned(),
        });
    }
}

impl IsTerminal for Lines {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Lines {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for Lines {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Lines {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Lines {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The engine every run shares.
fn engine(settings: &Settings) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(settings.slots)
        .total_memories(settings.slots)
        .total_tables(settings.slots)
        .max_memories_per_module(1)
        .max_tables_per_module(4)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_memory_size((settings.max_mem_mb.min(MAX_MEM_MB) as usize) << 20);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Confines the helper before it reads any request: its own empty network namespace, an
/// empty root, no privileges. Needs root; unprivileged (a developer's run) it stays as it is
/// and says so on stderr.
fn confine(root: &Path) -> std::io::Result<()> {
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

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Serves requests from stdin until it closes. `root` is the empty directory the helper
/// confines itself to.
pub fn serve(settings: Settings, root: &Path) -> Result<(), String> {
    let engine = engine(&settings).map_err(|e| format!("cannot set up wasmtime: {e}"))?;
    let mut linker = Linker::new(&engine);
    p1::add_to_linker_sync(&mut linker, |s: &mut State| &mut s.wasi)
        .map_err(|e| format!("cannot link WASI: {e}"))?;
    confine(root).map_err(|e| format!("cannot confine the helper: {e}"))?;
    let modules = Arc::new(Modules {
        engine: engine.clone(),
        linker,
        cached: Mutex::new(VecDeque::new()),
    });
    let ticker = engine.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(EPOCH_TICK);
        ticker.increment_epoch();
    });
    let replies = Replies(Arc::new(Mutex::new(std::io::stdout())));
    let kills: Arc<Mutex<HashMap<u64, Arc<AtomicBool>>>> = Arc::default();
    replies.send(&Reply::Ready);
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("cannot read a request: {e}"))?;
        match serde_json::from_str::<Request>(&line) {
            Ok(Request::Kill { id }) => {
                if let Some(flag) = kills.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
                    flag.store(true, Ordering::SeqCst);
                }
            }
            Ok(Request::Run {
                id,
                module_b64,
                input,
                env,
                mem_mb,
                timeout_ms,
                max_output,
            }) => {
                let flag = Arc::new(AtomicBool::new(false));
                kills
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, flag.clone());
                let job = Job {
                    id,
                    module_b64,
                    input,
                    env: env.into_iter().collect(),
                    max_memory: (mem_mb.min(settings.max_mem_mb).min(MAX_MEM_MB) as usize) << 20,
                    deadline: Instant::now() + Duration::from_millis(timeout_ms),
                    max_output,
                    killed: flag,
                };
                let (modules, replies, kills) = (modules.clone(), replies.clone(), kills.clone());
                std::thread::spawn(move || {
                    let done = job.run(&modules, &replies);
                    kills.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                    replies.send(&done);
                });
            }
            Err(e) => eprintln!("vulcan wasm-helper: a request that does not parse: {e}"),
        }
    }
    Ok(())
}

struct Job {
    id: u64,
    module_b64: String,
    input: serde_json::Value,
    env: Vec<(String, String)>,
    max_memory: usize,
    deadline: Instant,
    max_output: usize,
    killed: Arc<AtomicBool>,
}

/// How a run ended, before it becomes a reply.
struct Ended {
    exit_code: Option<i32>,
    output: String,
    error: Option<String>,
}

impl Job {
    fn run(self, modules: &Modules, replies: &Replies) -> Reply {
        let cpu = thread_cpu();
        let mut compiled = false;
        let mut peak = 0;
        let ended = self
            .module(modules)
            .and_then(|(pre, fresh)| {
                compiled = fresh;
                self.instantiate_and_call(&pre, modules, replies, &mut peak)
            })
            .unwrap_or_else(|error| Ended {
                exit_code: None,
                output: String::new(),
                error: Some(error),
            });
        Reply::Done {
            id: self.id,
            exit_code: ended.exit_code,
            output: ended.output,
            error: ended.error,
            cpu_ms: (thread_cpu().saturating_sub(cpu)).as_millis() as u64,
            peak_memory_bytes: peak as u64,
            compiled,
        }
    }

    fn module(&self, modules: &Modules) -> Result<(InstancePre<State>, bool), String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.module_b64.trim())
            .map_err(|e| {
                format!("code is not base64: {e} (a wasm workload's code is a base64 module)")
            })?;
        modules.get(&bytes)
    }

    fn instantiate_and_call(
        &self,
        pre: &InstancePre<State>,
        modules: &Modules,
        replies: &Replies,
        peak: &mut usize,
    ) -> Result<Ended, String> {
        let module = pre.module();
        let command = module.get_export("_start").is_some();
        let stdout = Lines::new(replies.clone(), self.id, false, self.max_output);
        let stderr = Lines::new(replies.clone(), self.id, true, 0);
        let mut stdin = serde_json::to_vec(&self.input).unwrap_or_default();
        stdin.push(b'\n');
        let wasi = WasiCtxBuilder::new()
            .stdin(MemoryInputPipe::new(if command {
                stdin
            } else {
                Vec::new()
            }))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .args(&["main.wasm"])
            .envs(&self.env)
            .build_p1();
        let mut store = Store::new(
            &modules.engine,
            State {
                wasi,
                limits: Limits {
                    max_memory: self.max_memory,
                    peak_memory: 0,
                },
            },
        );
        store.limiter(|s| &mut s.limits);
        let (killed, deadline) = (self.killed.clone(), self.deadline);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if killed.load(Ordering::SeqCst) {
                Err(wasmtime::format_err!("killed"))
            } else if Instant::now() >= deadline {
                Err(wasmtime::format_err!("timed out"))
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        let called = pre
            .instantiate(&mut store)
            .map_err(|e| format!("cannot instantiate the module: {}", describe(&e)))
            .and_then(|instance| {
                if command {
                    let start = instance
                        .get_typed_func::<(), ()>(&mut store, "_start")
                        .map_err(|e| format!("_start is not a command's entry point: {e}"))?;
                    Ok(start.call(&mut store, ()).map(|()| None))
                } else {
                    self.call_export(&mut store, &instance).map(|r| r.map(Some))
                }
            });
        *peak = store.data().limits.peak_memory;
        let (printed, oversize) = stdout.finish();
        stderr.finish();
        let called = called?;
        let mut ended = match called {
            Ok(Some(value)) => Ended {
                exit_code: None,
                output: value,
                error: None,
            },
            Ok(None) => Ended {
                exit_code: Some(0),
                output: printed,
                error: None,
            },
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => Ended {
                    exit_code: Some(exit.0),
                    output: printed,
                    error: None,
                },
                None => Ended {
                    exit_code: None,
                    output: printed,
                    error: Some(describe(&e)),
                },
            },
        };
        if oversize && ended.error.is_none() {
            ended.error = Some(format!(
                "the output is larger than {} bytes (VULCAN_MAX_OUTPUT_BYTES)",
                self.max_output
            ));
        }
        Ok(ended)
    }

    /// Calls the exported function `input.fn` (default `main`) with `input.args`; the
    /// result is the JSON of what it returned.
    fn call_export(
        &self,
        store: &mut Store<State>,
        instance: &wasmtime::Instance,
    ) -> Result<wasmtime::Result<String>, String> {
        let name = self.input["fn"].as_str().unwrap_or("main");
        let Some(func) = instance.get_func(&mut *store, name) else {
            let names: Vec<String> = instance
                .exports(&mut *store)
                .filter_map(|e| {
                    let name = e.name().to_owned();
                    e.into_func().map(|_| name)
                })
                .collect();
            return Err(format!(
                "the module exports no function \"{name}\"; its functions are: {}",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            ));
        };
        let ty = func.ty(&*store);
        let args = self.input["args"].as_array().cloned().unwrap_or_default();
        if args.len() != ty.params().len() {
            return Err(format!(
                "{name} takes {} arguments; input.args has {}",
                ty.params().len(),
                args.len()
            ));
        }
        let params = ty
            .params()
            .zip(&args)
            .enumerate()
            .map(|(i, (ty, arg))| {
                to_val(&ty, arg).ok_or_else(|| {
                    format!("argument {i} of {name} must be a {ty} number; got {arg}")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut results = vec![Val::I32(0); ty.results().len()];
        Ok(func.call(&mut *store, &params, &mut results).map(|()| {
            let values: Vec<serde_json::Value> = results.iter().map(from_val).collect();
            let json = match values.len() {
                0 => serde_json::Value::Null,
                1 => values.into_iter().next().unwrap_or_default(),
                _ => serde_json::Value::Array(values),
            };
            json.to_string()
        }))
    }
}

fn to_val(ty: &ValType, arg: &serde_json::Value) -> Option<Val> {
    Some(match ty {
        ValType::I32 => Val::I32(i32::try_from(arg.as_i64()?).ok()?),
        ValType::I64 => Val::I64(match arg {
            serde_json::Value::String(s) => s.parse().ok()?,
            _ => arg.as_i64()?,
        }),
        ValType::F32 => Val::F32((arg.as_f64()? as f32).to_bits()),
        ValType::F64 => Val::F64(arg.as_f64()?.to_bits()),
        _ => return None,
    })
}

/// A return value as JSON; an i64 as a string (as JavaScript's BigInt prints).
fn from_val(val: &Val) -> serde_json::Value {
    match val {
        Val::I32(v) => (*v).into(),
        Val::I64(v) => v.to_string().into(),
        Val::F32(bits) => serde_json::Number::from_f64(f64::from(f32::from_bits(*bits)))
            .map_or(serde_json::Value::Null, Into::into),
        Val::F64(bits) => serde_json::Number::from_f64(f64::from_bits(*bits))
            .map_or(serde_json::Value::Null, Into::into),
        _ => serde_json::Value::Null,
    }
}

/// A trap or error as what caused it, without the wasm backtrace around it.
fn describe(e: &wasmtime::Error) -> String {
    e.root_cause().to_string()
}
