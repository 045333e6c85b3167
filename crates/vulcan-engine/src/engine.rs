//! The engine: accepts workloads, runs them on their backend, and records how they end.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use vulcan_domain::{
    ImageCatalog, ImageError, Isolation, LogLine, Resources, Runtime, StoreError, TerminalUpdate,
    Workload, WorkloadSpec, WorkloadStatus, WorkloadStore, DEFAULT_TENANT,
};

use crate::admission::{Admission, QueuePlace, Ticket};
use crate::sink::WorkloadLogSink;
use crate::slots::{Slots, Turn};
use crate::{
    BackendRegistry, EngineConfig, ImagePulls, LogBroker, Metrics, Route, RouteError, Submission,
    SubmitError,
};

/// Why a kill was refused.
#[derive(Debug, thiserror::Error)]
pub enum KillError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The workload had already ended; carries it as it ended.
    #[error("workload {} already ended: it is {}", .0.id, .0.status)]
    AlreadyEnded(Box<Workload>),
}

/// A workload that has been accepted and has not ended yet.
struct Active {
    kill: watch::Sender<bool>,
    done: watch::Receiver<Option<Workload>>,
}

struct Inner {
    config: EngineConfig,
    store: Arc<dyn WorkloadStore>,
    registry: BackendRegistry,
    broker: LogBroker,
    metrics: Metrics,
    slots: HashMap<Isolation, Arc<Slots>>,
    active: Mutex<HashMap<String, Active>>,
    /// Set when shutting down: no new workload starts; waiting ones stay pending.
    stopping: watch::Sender<bool>,
    /// Set when the shutdown grace period is over: running workloads are stopped.
    aborting: watch::Sender<bool>,
    ids: Mutex<ulid::Generator>,
    /// Where runtime `oci` workloads find their default image and per-image resources.
    images: Option<Arc<dyn ImageCatalog>>,
    admission: Arc<Admission>,
}

/// How one accepted workload ended, before it is written down.
enum Ending {
    /// Recorded with the given status (and its run time, if it ran).
    Finished(TerminalUpdate, Option<Duration>),
    /// Someone else already moved it to a terminal state.
    AlreadyEnded,
    /// Shutdown came before it started: it stays pending and runs after the restart.
    LeftPending,
}

/// Vulcan's execution engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

async fn until_set(mut flag: watch::Receiver<bool>) {
    if flag.wait_for(|set| *set).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// An ending recorded without a run to time (never started, or stopped from outside).
fn ended(status: WorkloadStatus, error: impl Into<String>) -> TerminalUpdate {
    TerminalUpdate {
        status,
        output: None,
        exit_code: None,
        error: Some(error.into()),
        finished_at: now(),
        duration_ms: None,
        prepare_ms: None,
    }
}

fn truncate_on_char(text: &mut String, max: usize) {
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
}

impl Engine {
    pub fn new(
        config: EngineConfig,
        store: Arc<dyn WorkloadStore>,
        registry: BackendRegistry,
        metrics: Metrics,
    ) -> Self {
        let config_max_queue = config.max_queue;
        let slots = registry
            .backends()
            .map(|b| {
                let n = b.capabilities().max_concurrency.max(1) as usize;
                (b.isolation(), Slots::new(n))
            })
            .collect();
        Engine {
            inner: Arc::new(Inner {
                config,
                store,
                registry,
                broker: LogBroker::new(),
                metrics,
                slots,
                active: Mutex::new(HashMap::new()),
                stopping: watch::channel(false).0,
                aborting: watch::channel(false).0,
                ids: Mutex::new(ulid::Generator::new()),
                images: None,
                admission: Arc::new(Admission::new(config_max_queue)),
            }),
        }
    }

    /// Adds the image catalog: `oci` workloads naming no image run the default one, and
    /// an image's registered resources are the defaults of its workloads. Call before
    /// the engine is cloned.
    pub fn with_images(mut self, images: Arc<dyn ImageCatalog>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.images = Some(images);
        }
        self
    }

    pub fn images(&self) -> Option<&Arc<dyn ImageCatalog>> {
        self.inner.images.as_ref()
    }

    /// Fills an `oci` submission's image (the default image if it names none, the
    /// normalised reference otherwise) and returns the resource defaults that apply.
    fn image_defaults(&self, submission: &mut Submission) -> Result<Resources, SubmitError> {
        let defaults = self.inner.config.defaults;
        if submission.runtime != Some(Runtime::Oci) {
            return Ok(defaults);
        }
        let Some(images) = &self.inner.images else {
            return Ok(defaults);
        };
        let named = submission
            .image
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty());
        let record = match named {
            None => images.default_image(),
            Some(reference) => match images.get(reference) {
                Ok(record) => Some(record),
                Err(ImageError::NotFound(normalised)) => {
                    if submission.pulls == ImagePulls::Never {
                        return Err(SubmitError::Forbidden(format!(
                            "image {normalised} is not registered, and this key may not pull images (images:write): ask an operator to register it with POST /v1/images"
                        )));
                    }
                    // Refused here, before any connection is opened, if its registry is
                    // not allowed.
                    let trusted = submission.pulls == ImagePulls::Any;
                    let normalised =
                        images
                            .check_pull(&normalised, trusted)
                            .map_err(|e| match e {
                                ImageError::NotAllowed(m) => SubmitError::Forbidden(m),
                                other => SubmitError::Invalid(other.to_string()),
                            })?;
                    submission.image = Some(normalised);
                    None
                }
                Err(e) => return Err(SubmitError::Invalid(e.to_string())),
            },
        };
        Ok(match record {
            Some(record) => {
                let resources = record.resources.unwrap_or(defaults);
                submission.image = Some(record.reference);
                resources
            }
            None => defaults,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &Arc<dyn WorkloadStore> {
        &self.inner.store
    }

    pub fn registry(&self) -> &BackendRegistry {
        &self.inner.registry
    }

    pub fn broker(&self) -> &LogBroker {
        &self.inner.broker
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Workloads waiting for a slot on `isolation`.
    pub fn queued(&self, isolation: Isolation) -> usize {
        self.inner.admission.queued(isolation)
    }

    /// Workloads accepted by this engine that have not ended.
    pub fn active_count(&self) -> usize {
        self.inner.active().len()
    }

    /// Validates, routes and stores a workload, then starts it in the background.
    /// Returns it as stored: `pending`.
    pub async fn submit(&self, mut submission: Submission) -> Result<Workload, SubmitError> {
        let inner = &self.inner;
        if *inner.stopping.borrow() {
            return Err(SubmitError::ShuttingDown);
        }
        let defaults = self.image_defaults(&mut submission)?;
        let (runtime, resources) = submission.validate(defaults, &inner.config.limits)?;
        let tenant = if submission.tenant.is_empty() {
            DEFAULT_TENANT.to_owned()
        } else {
            submission.tenant.clone()
        };
        let requested = submission.isolation.unwrap_or(Isolation::Auto);
        let route = inner
            .registry
            .resolve(requested, runtime)
            .map_err(|e| match e {
                RouteError::Unsupported(m) => SubmitError::Invalid(m),
                RouteError::Unavailable(m) => SubmitError::Unavailable(m),
            })?;
        // The queue first: a submission shed for load does not count against a quota.
        let place = inner.admission.enqueue(route.isolation)?;
        let ticket = submission
            .quota
            .map(|quota| inner.admission.admit(&tenant, &quota, resources))
            .transpose()?;
        let id = inner.new_id();
        let input_hash = submission.input_hash(runtime);
        let spec = WorkloadSpec {
            id: id.clone(),
            runtime,
            isolation: route.isolation,
            code: submission.code,
            code_archive: submission.code_archive,
            image: submission.image,
            command: submission.command,
            input: submission.input,
            env: submission.env,
            resources,
        };
        let workload = Workload {
            id,
            status: WorkloadStatus::Pending,
            isolation: route.isolation,
            requested_isolation: requested,
            runtime,
            node_id: inner.config.node_id.clone(),
            tenant,
            input_hash,
            output: None,
            exit_code: None,
            error: None,
            cpu_limit: resources.cpus,
            mem_limit: resources.mem_mb,
            timeout_s: resources.timeout_s,
            duration_ms: None,
            prepare_ms: None,
            created_at: now(),
            started_at: None,
            finished_at: None,
        };
        inner.store.insert(&workload, &spec).await?;
        inner.metrics.workload_submitted(route.isolation.as_str());
        Inner::launch(inner, workload.clone(), spec, route, ticket, place);
        Ok(workload)
    }

    /// Waits until the workload is terminal and returns it.
    pub async fn wait(&self, id: &str) -> Result<Workload, StoreError> {
        let done = self.inner.active().get(id).map(|a| a.done.clone());
        if let Some(mut done) = done {
            if let Ok(w) = done.wait_for(Option::is_some).await {
                if let Some(w) = w.clone() {
                    return Ok(w);
                }
            }
        }
        self.inner.store.get(id).await
    }

    /// Stops a pending or running workload and returns it once it is `killed`.
    pub async fn kill(&self, id: &str) -> Result<Workload, KillError> {
        let current = self.inner.store.get(id).await?;
        if current.status.is_terminal() {
            return Err(KillError::AlreadyEnded(Box::new(current)));
        }
        // A workload this engine runs is stopped by its own task, which records how it
        // ended: killed if the code was still going, or its real result if it had already
        // finished (then the kill is refused with that result, never recorded over it).
        let signalled = match self.inner.active().get(id) {
            Some(active) => {
                active.kill.send_replace(true);
                true
            }
            None => false,
        };
        let last = if signalled {
            self.wait(id).await?
        } else {
            // Not ours to run (another node's, or already being wound up): record it.
            match self
                .inner
                .store
                .finish(id, &ended(WorkloadStatus::Killed, "killed by request"))
                .await
            {
                Ok(w) => w,
                Err(StoreError::InvalidTransition(_)) => self.inner.store.get(id).await?,
                Err(e) => return Err(e.into()),
            }
        };
        if last.status == WorkloadStatus::Killed {
            Ok(last)
        } else {
            Err(KillError::AlreadyEnded(Box::new(last)))
        }
    }

    /// After a restart: fails the workloads that were running when this node stopped (they
    /// may have had effects, so they are not re-run) and runs the ones that never started.
    /// Returns (failed, re-run).
    pub async fn recover(&self) -> Result<(usize, usize), StoreError> {
        let inner = &self.inner;
        let (mut failed, mut rerun) = (0, 0);
        for w in inner.store.unfinished(&inner.config.node_id).await? {
            if w.status == WorkloadStatus::Running {
                let why = "the server stopped while this workload was running; it was not re-run because it may already have had effects";
                inner
                    .store
                    .finish(&w.id, &ended(WorkloadStatus::Failed, why))
                    .await?;
                inner
                    .metrics
                    .workload_finished(w.isolation.as_str(), "failed", None);
                failed += 1;
                continue;
            }
            let spec = inner.store.spec(&w.id).await?;
            match inner.registry.resolve(w.isolation, w.runtime) {
                Ok(route) => {
                    let place = inner.admission.enqueue_accepted(route.isolation);
                    Inner::launch(inner, w, spec, route, None, place);
                    rerun += 1;
                }
                Err(e) => {
                    let why = format!("accepted before a restart, but cannot run now: {e}");
                    inner
                        .store
                        .finish(&w.id, &ended(WorkloadStatus::Failed, why))
                        .await?;
                    failed += 1;
                }
            }
        }
        Ok((failed, rerun))
    }

    /// Graceful shutdown: accept nothing new, give running workloads `grace` to finish,
    /// then stop them (marked failed). Workloads still waiting for a slot stay pending and
    /// run after the next start.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.stopping.send_replace(true);
        let deadline = Instant::now() + grace;
        while self.active_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        inner.aborting.send_replace(true);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.active_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for backend in inner.registry.backends() {
            backend.shutdown().await;
        }
    }
}

impl Inner {
    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_id(&self) -> String {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.generate()
            .unwrap_or_else(|_| ulid::Ulid::new())
            .to_string()
    }

    fn launch(
        self: &Arc<Self>,
        workload: Workload,
        spec: WorkloadSpec,
        route: Route,
        ticket: Option<Ticket>,
        place: QueuePlace,
    ) {
        let (kill, kill_rx) = watch::channel(false);
        let (done_tx, done) = watch::channel(None);
        self.broker.open(&workload.id);
        self.active()
            .insert(workload.id.clone(), Active { kill, done });
        // The place in line is taken here, in submission order, not when the task first runs.
        let turn = self.slots[&route.isolation].line_up();
        let run = self
            .clone()
            .run(workload, spec, route, kill_rx, done_tx, (place, turn));
        tokio::spawn(async move {
            run.await;
            // The tenant's share is given back once the workload has ended.
            drop(ticket);
        });
    }

    async fn run(
        self: Arc<Self>,
        workload: Workload,
        spec: WorkloadSpec,
        route: Route,
        kill: watch::Receiver<bool>,
        done: watch::Sender<Option<Workload>>,
        queued: (QueuePlace, Turn),
    ) {
        let id = workload.id.clone();
        // Whatever happens below, even a panic, the workload leaves the active map and its
        // live subscribers are told the stream is over.
        let _wound_up = WindUp {
            inner: self.clone(),
            id: id.clone(),
        };
        let backend = route.isolation.as_str();
        let (sink, persist) = WorkloadLogSink::new(&id, self.config.logs, self.broker.clone());
        let sink = Arc::new(sink);
        let writer = tokio::spawn(persist_logs(self.store.clone(), id.clone(), persist));
        if let Some(note) = &route.fallback {
            sink.note(note.clone());
        }

        let ending = self.execute(spec, &route, sink.clone(), kill, queued).await;
        let dropped = sink.close();
        self.metrics.log_lines_dropped(dropped);
        // History is complete before the status turns terminal.
        let _ = writer.await;

        let last = match ending {
            Ending::Finished(update, ran_for) => match self.store.finish(&id, &update).await {
                Ok(w) => {
                    let secs = ran_for.map(|d| d.as_secs_f64());
                    self.metrics
                        .workload_finished(backend, w.status.as_str(), secs);
                    Some(w)
                }
                Err(e) => {
                    tracing::warn!(workload = %id, error = %e, "could not record the end of a workload");
                    if ran_for.is_some() {
                        self.metrics.workload_finished(backend, "unrecorded", None);
                    }
                    None
                }
            },
            Ending::AlreadyEnded | Ending::LeftPending => None,
        };
        let last = match last {
            Some(w) => Some(w),
            None => self.store.get(&id).await.ok(),
        };
        self.broker.close(&id);
        self.active().remove(&id);
        done.send_replace(last.or(Some(workload)));
    }

    /// Waits for a slot, marks the workload running, and runs it to its end.
    async fn execute(
        &self,
        spec: WorkloadSpec,
        route: &Route,
        sink: Arc<WorkloadLogSink>,
        kill: watch::Receiver<bool>,
        (place, turn): (QueuePlace, Turn),
    ) -> Ending {
        let id = spec.id.clone();
        let _slot = tokio::select! {
            slot = turn.ready() => {
                drop(place);
                slot
            }
            _ = until_set(kill.clone()) => {
                return Ending::Finished(ended(WorkloadStatus::Killed, "killed by request before it started"), None);
            }
            _ = until_set(self.stopping.subscribe()) => return Ending::LeftPending,
        };
        match self.store.start(&id, now()).await {
            Ok(_) => {}
            Err(StoreError::InvalidTransition(_)) => return Ending::AlreadyEnded,
            Err(e) => {
                let why = format!("could not mark the workload running: {e}");
                return Ending::Finished(ended(WorkloadStatus::Failed, why), None);
            }
        }
        let backend = route.isolation.as_str();
        self.metrics.workload_started(backend);
        let started = Instant::now();
        let timeout_s = spec.resources.timeout_s;
        let preparation = route.backend.preparation_timeout();
        let code_started = sink.code_started_at();
        // A backend that panics fails its workload, not the server.
        let run = AssertUnwindSafe(route.backend.execute(spec, sink.clone())).catch_unwind();
        let (status, result) = tokio::select! {
            r = run => match r {
                Ok(Ok(result)) => {
                    let status = if result.succeeded() { WorkloadStatus::Completed } else { WorkloadStatus::Failed };
                    (status, result)
                }
                Ok(Err(e)) => (WorkloadStatus::Failed, error_result(e.to_string())),
                Err(panic) => {
                    let what = panic_message(panic.as_ref());
                    tracing::error!(workload = %id, backend, panic = %what, "a backend panicked");
                    (WorkloadStatus::Failed, error_result(format!(
                        "the {backend} backend failed unexpectedly ({what}); the workload was stopped"
                    )))
                }
            },
            missed = deadline(code_started.clone(), preparation, Duration::from_secs(timeout_s.into())) => match missed {
                Missed::Preparation => (WorkloadStatus::Failed, error_result(format!(
                    "preparation took longer than {}: the {backend} backend was still getting the workload ready (booting a VM, pulling an image, starting a process) and its code never started",
                    spoken(preparation)
                ))),
                Missed::Run => (WorkloadStatus::Failed, error_result(format!("timed out after {timeout_s} s"))),
            },
            _ = until_set(kill) => (WorkloadStatus::Killed, error_result("killed by request".into())),
            _ = until_set(self.aborting.subscribe()) => (
                WorkloadStatus::Failed,
                error_result("the server shut down before the workload finished".into()),
            ),
        };
        let ran_for = started.elapsed();
        let prepared_in = code_started.borrow().map(|at| at.duration_since(started));
        if let Some(prepared) = prepared_in.filter(|p| *p >= NOTABLE_PREPARATION) {
            sink.note(format!(
                "[vulcan] prepared in {} ms; the code then ran for {} ms (the timeout counts from when it started)",
                prepared.as_millis(),
                ran_for.saturating_sub(prepared).as_millis()
            ));
        }
        if let Err(e) = route.backend.cleanup(&id).await {
            sink.note(format!("[vulcan] cleanup after the workload failed: {e}"));
            tracing::warn!(workload = %id, error = %e, "backend cleanup failed");
        }

        let mut status = status;
        let mut error = result.error;
        let mut output = result.output;
        // A program's output is what it printed, without the final newline (as `$(...)` in
        // a shell); a returned value's JSON never ends with one.
        if output.ends_with('\n') {
            output.pop();
        }
        let max_output = self.config.limits.max_output_bytes;
        if output.len() > max_output {
            truncate_on_char(&mut output, max_output);
            status = WorkloadStatus::Failed;
            error = Some(format!(
                "output is over the limit of {max_output} bytes; it was cut to the limit"
            ));
        }
        if status == WorkloadStatus::Failed && error.is_none() {
            error = Some(match result.exit_code {
                Some(code) => format!("exited with code {code}"),
                None => "failed without an error message".into(),
            });
        }
        let update = TerminalUpdate {
            status,
            output: Some(output),
            exit_code: result.exit_code,
            error,
            finished_at: now(),
            duration_ms: Some(ran_for.as_millis() as u64),
            prepare_ms: prepared_in.map(|p| p.as_millis() as u64),
        };
        Ending::Finished(update, Some(ran_for))
    }
}

/// Preparation shorter than this is not worth a log line of its own.
const NOTABLE_PREPARATION: Duration = Duration::from_millis(250);

/// Which bound a run missed.
enum Missed {
    /// Its code never started within the backend's preparation bound.
    Preparation,
    /// Its code ran past the workload's timeout.
    Run,
}

/// Resolves when a run misses a bound: preparation until the code starts, then the
/// workload's own timeout from that moment.
async fn deadline(
    mut code_started: watch::Receiver<Option<Instant>>,
    preparation: Duration,
    timeout: Duration,
) -> Missed {
    let started = tokio::time::timeout(preparation, code_started.wait_for(Option::is_some))
        .await
        .map(|seen| seen.is_ok());
    match started {
        Ok(true) => {
            tokio::time::sleep(timeout).await;
            Missed::Run
        }
        // The sink outlives the run: its sender cannot be gone while this is polled.
        Ok(false) => std::future::pending().await,
        Err(_) => Missed::Preparation,
    }
}

/// A bound as a person would say it: `300 ms`, `55 s`.
fn spoken(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs())
    }
}

/// What a panic said, for the workload's error.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Removes a run from the active map and ends its live log stream when the run's task
/// ends in any way: normally (then it is already done) or by a panic.
struct WindUp {
    inner: Arc<Inner>,
    id: String,
}

impl Drop for WindUp {
    fn drop(&mut self) {
        if self.inner.active().remove(&self.id).is_some() {
            self.inner.broker.close(&self.id);
        }
    }
}

fn error_result(error: String) -> vulcan_domain::WorkloadResult {
    vulcan_domain::WorkloadResult {
        exit_code: None,
        output: String::new(),
        error: Some(error),
    }
}

/// Writes a workload's log lines to the store in batches, in order, until the sink closes.
async fn persist_logs(
    store: Arc<dyn WorkloadStore>,
    id: String,
    mut lines: mpsc::UnboundedReceiver<LogLine>,
) {
    let mut batch = Vec::with_capacity(256);
    while lines.recv_many(&mut batch, 256).await > 0 {
        if let Err(e) = store.append_logs(&id, &batch).await {
            tracing::warn!(workload = %id, error = %e, "could not persist log lines");
        }
        batch.clear();
    }
}
