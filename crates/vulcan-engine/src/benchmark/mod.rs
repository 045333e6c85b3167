//! The built-in benchmark: the same small workload on every available backend, measured
//! through the engine exactly as API requests are (submit, run, record), side by side.
//!
//! Per backend, twice — one-shot workloads, then invocations of the same code deployed as a
//! function (served by warm instances) — cold start (a start that cannot use a warm pool or
//! instance), warm start and p50/p95 latency over sequential runs, throughput with
//! `concurrency` runs in flight, and memory per workload (the peak memory the kernel
//! charged to the backend's cgroups during the concurrent phase, over its idle baseline,
//! divided by the concurrency). One benchmark runs at a time; reports are kept in the
//! store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use vulcan_domain::{Isolation, Runtime, StoreError, WorkloadStatus, DEFAULT_TENANT};

use crate::{CodeRequest, DeployRequest, Engine, Submission};

mod report;

pub use report::{BackendFigures, BenchmarkReport, BenchmarkRequest, Progress};

/// Why a benchmark was not started.
#[derive(Debug, thiserror::Error)]
pub enum BenchmarkError {
    #[error("{0}")]
    Invalid(String),
    #[error("benchmark {0} is still running; wait for it to finish")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one measured run is.
#[derive(Clone)]
enum Probe {
    /// A one-shot workload.
    Workload(Submission),
    /// An invocation of the benchmark's function `name`, deployed from `deploy`.
    Function {
        name: String,
        deploy: DeployRequest,
        input: serde_json::Value,
    },
}

/// Starts benchmarks and keeps the running one's progress.
#[derive(Clone)]
pub struct Benchmarks {
    engine: Engine,
    running: Arc<Mutex<HashMap<String, BenchmarkReport>>>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

fn percentile(sorted: &[Duration], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(ms(sorted[i]))
}

impl Benchmarks {
    pub fn new(engine: Engine) -> Self {
        Benchmarks {
            engine,
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, BenchmarkReport>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A running benchmark's report, if `id` is running.
    pub fn live(&self, id: &str) -> Option<BenchmarkReport> {
        self.running().get(id).cloned()
    }

    /// Every running benchmark's report.
    pub fn live_all(&self) -> Vec<BenchmarkReport> {
        self.running().values().cloned().collect()
    }

    /// Validates and starts a benchmark in the background; returns its first report.
    pub fn start(&self, request: BenchmarkRequest) -> Result<BenchmarkReport, BenchmarkError> {
        if !(1..=1000).contains(&request.iterations) {
            return Err(BenchmarkError::Invalid(format!(
                "\"iterations\" is {}; it must be between 1 and 1000",
                request.iterations
            )));
        }
        if !(1..=64).contains(&request.concurrency) {
            return Err(BenchmarkError::Invalid(format!(
                "\"concurrency\" is {}; it must be between 1 and 64",
                request.concurrency
            )));
        }
        if let Some(backends) = &request.backends {
            if backends.contains(&Isolation::Auto) {
                return Err(BenchmarkError::Invalid(
                    "\"backends\" lists concrete backends: isolate, gvisor, microvm".into(),
                ));
            }
        }
        let mut running = self.running();
        if let Some(id) = running.keys().next() {
            return Err(BenchmarkError::Busy(id.clone()));
        }
        let id = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
        let report = BenchmarkReport {
            id: id.clone(),
            status: "running".into(),
            node_id: self.engine.config().node_id.clone(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            request,
            progress: Progress::default(),
            results: Vec::new(),
            error: None,
            created_at: OffsetDateTime::now_utc(),
            finished_at: None,
        };
        running.insert(id.clone(), report.clone());
        drop(running);
        let this = self.clone();
        tokio::spawn(async move { this.run(id).await });
        Ok(report)
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut BenchmarkReport)) {
        if let Some(report) = self.running().get_mut(id) {
            f(report);
        }
    }

    /// The workload a backend is measured with, or why it cannot be.
    async fn workload(
        &self,
        backend: Isolation,
        request: &BenchmarkRequest,
    ) -> Result<(String, Submission), String> {
        // Latency is measured, not capped: a slow run (a VM booting under emulation on a
        // busy host) counts as slow, not as failed.
        let base = CodeRequest {
            isolation: Some(backend),
            timeout_s: Some(self.engine.config().limits.max_timeout_s.min(300)),
            ..CodeRequest::default()
        };
        let submission = |code: CodeRequest, input: serde_json::Value| Submission {
            code,
            input,
            pulls: request.pulls,
            ..Submission::default()
        };
        let echo_hi = |image: String| {
            (
                format!("oci: {image} echo hi"),
                submission(
                    CodeRequest {
                        runtime: Some(Runtime::Oci),
                        image: Some(image),
                        command: Some(vec!["echo".into(), "hi".into()]),
                        ..base.clone()
                    },
                    serde_json::Value::Null,
                ),
            )
        };
        match backend {
            Isolation::Isolate => Ok((
                "node: export default (i) => ({sum: i.a + i.b})".into(),
                submission(
                    CodeRequest {
                        runtime: Some(Runtime::Node),
                        code: Some("export default (i) => ({sum: i.a + i.b})".into()),
                        ..base
                    },
                    serde_json::json!({"a": 1, "b": 2}),
                ),
            )),
            Isolation::Gvisor => {
                let default = match self.engine.images() {
                    Some(images) => images
                        .default_image()
                        .await
                        .map_err(|e| e.to_string())?
                        .map(|r| r.reference),
                    None => None,
                };
                let image = request
                    .image
                    .clone()
                    .or(default)
                    .ok_or("no image to run: pass \"image\" or register a default image (POST /v1/images with \"default\": true)")?;
                Ok(echo_hi(image))
            }
            // With an image, microVMs run it too (a template: converted, then restored).
            Isolation::Microvm if request.image.is_some() => {
                Ok(echo_hi(request.image.clone().unwrap_or_default()))
            }
            Isolation::Microvm => Ok((
                "python: print(1 + 2)".into(),
                submission(
                    CodeRequest {
                        runtime: Some(Runtime::Python),
                        code: Some("print(1 + 2)".into()),
                        ..base
                    },
                    serde_json::Value::Null,
                ),
            )),
            Isolation::Auto => Err("auto is not a backend".into()),
        }
    }

    /// The function a backend's invocations are measured with (the workload's code as a
    /// handler where the runtime has one), up to `concurrency` instances, and its label.
    fn function(backend: Isolation, workload: &Submission, concurrency: u32) -> (String, Probe) {
        let mut code = workload.code.clone();
        let name = format!("vulcan-benchmark-{backend}");
        let label = match backend {
            Isolation::Microvm if code.runtime == Some(Runtime::Python) => {
                code.code = Some("def handler(input):\n    return 1 + 2\n".into());
                "python: def handler(input): return 1 + 2".into()
            }
            _ => String::new(),
        };
        let probe = Probe::Function {
            name,
            deploy: DeployRequest {
                code,
                pulls: workload.pulls,
                max_instances: Some(concurrency),
                ..DeployRequest::default()
            },
            input: workload.input.clone(),
        };
        (label, probe)
    }

    /// A probe that cannot be served warm: a one-shot workload with resources no pool
    /// holds; a function redeployed as a new version (`round` changes its environment).
    async fn cold(&self, probe: &Probe, round: u32) -> Result<Probe, String> {
        match probe {
            Probe::Workload(s) => {
                let mut s = s.clone();
                s.code.mem_mb = Some(self.engine.config().defaults.mem_mb + 1);
                Ok(Probe::Workload(s))
            }
            Probe::Function { name, deploy, .. } => {
                let mut cold = deploy.clone();
                cold.code
                    .env
                    .insert("VULCAN_BENCH_ROUND".into(), round.to_string());
                self.engine
                    .deploy(DEFAULT_TENANT, name, cold)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(probe.clone())
            }
        }
    }

    /// One run through the engine: its latency, or its error.
    async fn once(&self, probe: &Probe) -> Result<Duration, String> {
        let started = Instant::now();
        let accepted = match probe {
            Probe::Workload(submission) => self.engine.submit(submission.clone()).await,
            Probe::Function { name, input, .. } => {
                self.engine
                    .invoke(DEFAULT_TENANT, name, input.clone(), None)
                    .await
            }
        }
        .map_err(|e| e.to_string())?;
        let done = self
            .engine
            .wait(&accepted.id)
            .await
            .map_err(|e| e.to_string())?;
        if done.status == WorkloadStatus::Completed {
            Ok(started.elapsed())
        } else {
            Err(done
                .error
                .unwrap_or_else(|| format!("ended {}", done.status.as_str())))
        }
    }

    async fn run(self, id: String) {
        let Some(request) = self.live(&id).map(|r| r.request) else {
            return;
        };
        let infos = self.engine.registry().list();
        let backends: Vec<Isolation> = Isolation::CONCRETE
            .into_iter()
            .filter(|b| {
                request
                    .backends
                    .as_ref()
                    .is_none_or(|list| list.contains(b))
            })
            .collect();
        let cold_runs = request.iterations.min(3);
        // One-shot runs, then the function: cold runs, sequential runs (and, for the
        // function, one unmeasured warm-up), the concurrent phase.
        let per_mode = cold_runs + 2 * request.iterations;
        self.update(&id, |r| {
            r.progress.total = 2 * per_mode * backends.len() as u32
        });

        for backend in backends {
            let info = infos.iter().find(|i| i.name == backend.as_str());
            let prepared = match info {
                None => Err(format!("{backend} is not configured on this node")),
                Some(i) if !i.available => {
                    Err(i.reason.clone().unwrap_or_else(|| "unavailable".into()))
                }
                Some(_) => self.workload(backend, &request).await,
            };
            let (label, submission) = match prepared {
                Ok(prepared) => prepared,
                Err(reason) => {
                    for mode in ["workload", "function"] {
                        let mut figures = BackendFigures::new(backend, mode);
                        figures.skipped = Some(reason.clone());
                        self.update(&id, |r| {
                            r.progress.done += per_mode;
                            r.results.push(figures)
                        });
                    }
                    continue;
                }
            };
            let mut figures = BackendFigures::new(backend, "workload");
            figures.workload = label.clone();
            self.measure(
                &id,
                &request,
                cold_runs,
                Probe::Workload(submission.clone()),
                &mut figures,
            )
            .await;
            self.update(&id, |r| r.results.push(figures));

            let (function_label, function) =
                Self::function(backend, &submission, request.concurrency);
            let mut figures = BackendFigures::new(backend, "function");
            figures.workload = if function_label.is_empty() {
                label
            } else {
                function_label
            };
            self.measure(&id, &request, cold_runs, function.clone(), &mut figures)
                .await;
            if let Probe::Function { name, .. } = &function {
                if let Err(e) = self.engine.delete_function(DEFAULT_TENANT, name).await {
                    tracing::warn!(function = %name, error = %e, "cannot delete the benchmark's function");
                }
            }
            self.update(&id, |r| r.results.push(figures));
        }

        let finished = self.running().remove(&id);
        if let Some(mut report) = finished {
            report.status = "completed".into();
            report.finished_at = Some(OffsetDateTime::now_utc());
            report.progress.done = report.progress.total;
            let json = serde_json::to_string(&report).unwrap_or_default();
            if let Err(e) = self
                .engine
                .inner
                .benchmarks
                .save_benchmark(&id, &json)
                .await
            {
                tracing::error!(benchmark = %id, error = %e, "cannot store the benchmark report");
            }
        }
    }

    async fn measure(
        &self,
        id: &str,
        request: &BenchmarkRequest,
        cold_runs: u32,
        probe: Probe,
        figures: &mut BackendFigures,
    ) {
        let record = |result: &Result<Duration, String>, figures: &mut BackendFigures| {
            figures.runs += 1;
            if let Err(e) = result {
                figures.failed_runs += 1;
                figures.first_error.get_or_insert_with(|| e.clone());
            }
            self.update(id, |r| r.progress.done += 1);
        };

        // Cold: warm pools hold processes and VMs with the default resources, so another
        // mem_mb starts a fresh one; a function's new version starts a new instance.
        let mut cold = Vec::new();
        for round in 0..cold_runs {
            let r = match self.cold(&probe, round).await {
                Ok(cold_probe) => self.once(&cold_probe).await,
                Err(e) => Err(e),
            };
            record(&r, figures);
            cold.extend(r.ok());
        }
        cold.sort();
        figures.cold_start_ms = percentile(&cold, 0.5);
        if let Probe::Function { name, deploy, .. } = &probe {
            // The measured version, with an instance started by one unmeasured invocation.
            let deployed = self
                .engine
                .deploy(DEFAULT_TENANT, name, deploy.clone())
                .await
                .map_err(|e| e.to_string());
            let warmed = match deployed {
                Ok(_) => self.once(&probe).await,
                Err(e) => Err(e),
            };
            if let Err(e) = warmed {
                figures.first_error.get_or_insert(e);
            }
        }

        let mut warm = Vec::new();
        for _ in 0..request.iterations {
            let r = self.once(&probe).await;
            record(&r, figures);
            warm.extend(r.ok());
        }
        warm.sort();
        figures.warm_start_ms = percentile(&warm, 0.5);
        figures.p50_ms = percentile(&warm, 0.5);
        figures.p95_ms = percentile(&warm, 0.95);

        // Throughput: `concurrency` runs in flight until `iterations` have finished,
        // with the backend's memory sampled meanwhile.
        let backend = self.engine.registry().get(figures.backend).cloned();
        let memory_in_use = move || backend.as_ref().and_then(|b| b.memory_in_use());
        let baseline = memory_in_use();
        let peak = Arc::new(Mutex::new(baseline.unwrap_or(0)));
        let sampling = {
            let peak = peak.clone();
            let memory_in_use = memory_in_use.clone();
            tokio::spawn(async move {
                loop {
                    if let Some(now) = memory_in_use() {
                        let mut p = peak.lock().unwrap_or_else(|e| e.into_inner());
                        *p = (*p).max(now);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        let remaining = Arc::new(std::sync::atomic::AtomicU32::new(request.iterations));
        let started = Instant::now();
        let workers: Vec<_> = (0..request.concurrency)
            .map(|_| {
                let (this, probe, remaining) = (self.clone(), probe.clone(), remaining.clone());
                tokio::spawn(async move {
                    let mut results = Vec::new();
                    while remaining
                        .fetch_update(
                            std::sync::atomic::Ordering::SeqCst,
                            std::sync::atomic::Ordering::SeqCst,
                            |n| n.checked_sub(1),
                        )
                        .is_ok()
                    {
                        results.push(this.once(&probe).await);
                    }
                    results
                })
            })
            .collect();
        let mut ok = 0u32;
        for worker in workers {
            for r in worker.await.unwrap_or_default() {
                record(&r, figures);
                ok += u32::from(r.is_ok());
            }
        }
        let wall = started.elapsed();
        sampling.abort();
        if ok > 0 {
            figures.throughput_per_s =
                Some((f64::from(ok) / wall.as_secs_f64() * 100.0).round() / 100.0);
        }
        let peak = *peak.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(base) = baseline {
            let per = peak.saturating_sub(base) as f64
                / f64::from(request.concurrency)
                / (1024.0 * 1024.0);
            figures.memory_per_workload_mb = Some((per * 10.0).round() / 10.0);
        }
        if let Some(backend) = self.engine.registry().get(figures.backend) {
            figures.start_ms = backend
                .start_times()
                .into_iter()
                .map(|(how, ms)| (how.to_owned(), (ms * 10.0).round() / 10.0))
                .collect();
        }
    }
}
