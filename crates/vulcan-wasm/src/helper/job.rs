//! One run: a fresh store and instance of a kept module, on a thread of its own (its CPU
//! time is that thread's), driven asynchronously so that it can be dropped at any point.
//!
//! - Code running wasm instructions is stopped at the next epoch tick when the run is
//!   killed or past its deadline (the epoch callback traps).
//! - Code waiting in a host call (WASI's `poll_oneoff` on a long clock: `sleep`) runs no
//!   instruction to trap at: the run's future is dropped instead, which unwinds the call
//!   and frees the store, its instance and its pooling slot at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use wasmtime::{InstancePre, Store, UpdateDeadline, Val, ValType};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use super::limits::Limits;
use super::lines::Lines;
use super::{Replies, State};
use crate::Reply;

/// A run, as the helper was asked for it.
pub(super) struct Job {
    pub id: u64,
    pub input: serde_json::Value,
    pub env: Vec<(String, String)>,
    pub max_memory: usize,
    pub deadline: Instant,
    pub max_output: usize,
    /// Notified when the server kills the run.
    pub kill: Arc<Notify>,
    /// Set when the server kills the run (what the epoch callback sees).
    pub killed: Arc<std::sync::atomic::AtomicBool>,
}

/// How a run ended, before it becomes a reply.
struct Ended {
    exit_code: Option<i32>,
    output: String,
    error: Option<String>,
}

impl Ended {
    fn failed(error: impl Into<String>) -> Ended {
        Ended {
            exit_code: None,
            output: String::new(),
            error: Some(error.into()),
        }
    }
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

impl Job {
    /// Runs to the end, a kill or the deadline, on the calling thread.
    pub fn run(self, pre: InstancePre<State>, replies: &Replies) -> Reply {
        let cpu = thread_cpu();
        let peak = Arc::new(AtomicUsize::new(0));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build();
        let ended = match runtime {
            Err(e) => Ended::failed(format!("cannot start the run: {e}")),
            Ok(runtime) => runtime.block_on(async {
                let deadline = tokio::time::Instant::from_std(self.deadline);
                tokio::select! {
                    ended = self.call(&pre, replies, peak.clone()) => ended,
                    // Dropping the call unwinds a host call in progress and frees its store.
                    _ = self.kill.notified() => Ended::failed("killed"),
                    _ = tokio::time::sleep_until(deadline) => Ended::failed("timed out"),
                }
            }),
        };
        Reply::Done {
            id: self.id,
            exit_code: ended.exit_code,
            output: ended.output,
            error: ended.error,
            cpu_ms: thread_cpu().saturating_sub(cpu).as_millis() as u64,
            peak_memory_bytes: peak.load(Ordering::Relaxed) as u64,
        }
    }

    async fn call(
        &self,
        pre: &InstancePre<State>,
        replies: &Replies,
        peak: Arc<AtomicUsize>,
    ) -> Ended {
        let command = pre.module().get_export("_start").is_some();
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
            pre.module().engine(),
            State {
                wasi,
                limits: Limits {
                    max_memory: self.max_memory,
                    peak_memory: peak,
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
        let called = match pre.instantiate_async(&mut store).await {
            Err(e) => Err(format!("cannot instantiate the module: {}", describe(&e))),
            Ok(instance) if command => {
                match instance.get_typed_func::<(), ()>(&mut store, "_start") {
                    Ok(start) => Ok(start.call_async(&mut store, ()).await.map(|()| None)),
                    Err(e) => Err(format!("_start is not a command's entry point: {e}")),
                }
            }
            Ok(instance) => self
                .call_export(&mut store, &instance)
                .await
                .map(|r| r.map(Some)),
        };
        let (printed, oversize) = stdout.finish();
        stderr.finish();
        let mut ended = match called {
            Err(error) => Ended::failed(error),
            Ok(Ok(Some(value))) => Ended {
                exit_code: None,
                output: value,
                error: None,
            },
            Ok(Ok(None)) => Ended {
                exit_code: Some(0),
                output: printed,
                error: None,
            },
            Ok(Err(e)) => match e.downcast_ref::<I32Exit>() {
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
        ended
    }

    /// Calls the exported function `input.fn` (default `main`) with `input.args`; the
    /// result is the JSON of what it returned.
    async fn call_export(
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
        Ok(func
            .call_async(&mut *store, &params, &mut results)
            .await
            .map(|()| {
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
