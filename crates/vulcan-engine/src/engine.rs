//! The engine: accepts workloads into the queue, runs the ones this node claims, and
//! answers for every workload, whichever node runs it.
//!
//! A workload's path: [`Engine::submit`] validates and routes it and the store admits and
//! records it (claimed at once by this node if it has a free slot and nothing older waits:
//! [`crate::submit`]); otherwise the dispatcher of a node with a free slot claims it
//! ([`crate::dispatch`]); the node that holds the claim runs it ([`crate::run`]). The
//! cluster's mechanics — heartbeats, housekeeping, kill requests, signals — are in
//! [`crate::cluster`]. A node on its own SQLite file is a cluster of one and goes the same
//! way. What the API reads (workloads, logs, figures) it reads through the engine
//! ([`crate::queries`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::watch;
use vulcan_domain::{
    AccessStore, BenchmarkStore, Expect, FollowupStore, FunctionStore, ImageCatalog, Isolation,
    LogStore, NodeRecord, NodeStore, QueueStore, SandboxStore, ScheduleStore, SecretStore, Signal,
    SignalBus, StatsStore, StoreError, TerminalUpdate, Workload, WorkloadStatus, WorkloadStore,
};

use crate::cluster::ClusterView;
use crate::slots::Slots;
use crate::watches::{Watch, Watches};
use crate::{BackendRegistry, EngineConfig, LogBroker, Metrics};

/// Why a kill was refused.
#[derive(Debug, thiserror::Error)]
pub enum KillError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The workload had already ended; carries it as it ended.
    #[error("workload {} already ended: it is {}", .0.id, .0.status)]
    AlreadyEnded(Box<Workload>),
}

/// Why a run this node holds is stopped from outside its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stop {
    pub status: WorkloadStatus,
    pub error: String,
    /// Whether this node records the ending. Not when it has lost the store: by then the
    /// others have declared it lost and recorded the ending themselves.
    pub record: bool,
}

/// A workload this node runs, from its claim to its end.
pub(crate) struct Active {
    pub stop: watch::Sender<Option<Stop>>,
    pub done: watch::Receiver<Option<Workload>>,
}

/// The stores the engine keeps its state in, and how it tells the other nodes.
#[derive(Clone)]
pub struct Stores {
    pub workloads: Arc<dyn WorkloadStore>,
    pub logs: Arc<dyn LogStore>,
    pub stats: Arc<dyn StatsStore>,
    pub benchmarks: Arc<dyn BenchmarkStore>,
    pub nodes: Arc<dyn NodeStore>,
    pub functions: Arc<dyn FunctionStore>,
    pub schedules: Arc<dyn ScheduleStore>,
    pub secrets: Arc<dyn SecretStore>,
    /// Keys, quotas and the audit log.
    pub access: Arc<dyn AccessStore>,
    pub sandboxes: Arc<dyn SandboxStore>,
    pub queues: Arc<dyn QueueStore>,
    /// What follows async workloads (retries, failure queues, callbacks) and POSTs to make.
    pub followups: Arc<dyn FollowupStore>,
    /// Signals to the other nodes ([`vulcan_domain::Alone`] for a node on its own).
    pub bus: Arc<dyn SignalBus>,
}

/// A store that is every port the engine keeps state in (both of Vulcan's stores are).
pub trait EveryPort:
    WorkloadStore
    + LogStore
    + StatsStore
    + BenchmarkStore
    + NodeStore
    + FunctionStore
    + ScheduleStore
    + SecretStore
    + AccessStore
    + SandboxStore
    + QueueStore
    + FollowupStore
    + Clone
    + 'static
{
}

impl<S> EveryPort for S where
    S: WorkloadStore
        + LogStore
        + StatsStore
        + BenchmarkStore
        + NodeStore
        + FunctionStore
        + ScheduleStore
        + SecretStore
        + AccessStore
        + SandboxStore
        + QueueStore
        + FollowupStore
        + Clone
        + 'static
{
}

impl Stores {
    /// Every port from one store that has them all, telling the others through `bus`.
    pub fn of(store: impl EveryPort, bus: Arc<dyn SignalBus>) -> Stores {
        Stores {
            workloads: Arc::new(store.clone()),
            logs: Arc::new(store.clone()),
            stats: Arc::new(store.clone()),
            benchmarks: Arc::new(store.clone()),
            nodes: Arc::new(store.clone()),
            functions: Arc::new(store.clone()),
            schedules: Arc::new(store.clone()),
            secrets: Arc::new(store.clone()),
            access: Arc::new(store.clone()),
            sandboxes: Arc::new(store.clone()),
            queues: Arc::new(store.clone()),
            followups: Arc::new(store),
            bus,
        }
    }
}

pub(crate) struct Inner {
    pub config: EngineConfig,
    pub store: Arc<dyn WorkloadStore>,
    pub logs: Arc<dyn LogStore>,
    pub stats: Arc<dyn StatsStore>,
    pub benchmarks: Arc<dyn BenchmarkStore>,
    pub nodes: Arc<dyn NodeStore>,
    pub functions: crate::functions::Functions,
    pub schedules: Arc<dyn ScheduleStore>,
    pub secrets: Arc<dyn SecretStore>,
    /// Keys, tenants' quotas and the audit log.
    pub access: Arc<dyn AccessStore>,
    pub sandbox_store: Arc<dyn SandboxStore>,
    pub queues: Arc<dyn QueueStore>,
    pub followups: Arc<dyn FollowupStore>,
    /// Wakes the follow-up loop: an async workload with a policy ended here.
    pub followup_due: tokio::sync::Notify,
    /// Wakes receives waiting on a queue when a message was sent (or given back) here.
    pub queue_sent: tokio::sync::Notify,
    /// Wakes the queue consumers when a function was deployed, activated or deleted here.
    pub triggers_changed: tokio::sync::Notify,
    /// Sandboxes this node holds, and the drivers that hold them.
    pub sandboxes: crate::sandboxes::SandboxHost,
    /// The keys requests are verified against.
    pub keys: crate::access::Keys,
    /// Appends to the audit log in batches.
    pub audit_log: crate::audit::AuditLog,
    /// Wakes this node's scheduler when one of its schedules changed.
    pub schedule_changed: tokio::sync::Notify,
    /// Lifecycle events for live clients.
    pub events: tokio::sync::broadcast::Sender<crate::events::Event>,
    pub bus: Arc<dyn SignalBus>,
    pub registry: BackendRegistry,
    pub broker: LogBroker,
    pub metrics: Metrics,
    /// Run slots of the backends this node can run.
    pub slots: HashMap<Isolation, Arc<Slots>>,
    pub active: Mutex<HashMap<String, Active>>,
    pub watches: Arc<Watches>,
    /// What the other live nodes can run, from their heartbeats.
    pub view: Mutex<ClusterView>,
    /// Set when shutting down: nothing new is accepted or claimed.
    pub stopping: watch::Sender<bool>,
    /// Set while this node cannot reach the store past its lease: it claims nothing.
    pub isolated: std::sync::atomic::AtomicBool,
    pub ids: Mutex<ulid::Generator>,
    /// Where runtime `oci` workloads find their default image and per-image resources.
    pub images: Option<Arc<dyn ImageCatalog>>,
    pub started: OffsetDateTime,
}

/// Vulcan's execution engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// An ending recorded without a run to time (never started, or stopped from outside).
pub(crate) fn ended(status: WorkloadStatus, error: impl Into<String>) -> TerminalUpdate {
    TerminalUpdate {
        status,
        output: None,
        exit_code: None,
        error: Some(error.into()),
        finished_at: now(),
        duration_ms: None,
        prepare_ms: None,
        usage: None,
        last_lines: Vec::new(),
    }
}

impl Engine {
    pub fn new(
        config: EngineConfig,
        stores: Stores,
        registry: BackendRegistry,
        metrics: Metrics,
    ) -> Self {
        let slots = registry
            .backends()
            .map(|b| {
                let n = b.capabilities().max_concurrency.max(1) as usize;
                (b.isolation(), Slots::new(n))
            })
            .collect();
        metrics.queue_limit(config.max_queue);
        Engine {
            inner: Arc::new(Inner {
                config,
                store: stores.workloads,
                logs: stores.logs,
                stats: stores.stats,
                benchmarks: stores.benchmarks,
                nodes: stores.nodes,
                functions: crate::functions::Functions::new(stores.functions),
                schedules: stores.schedules,
                secrets: stores.secrets,
                keys: crate::access::Keys::new(stores.access.clone()),
                audit_log: crate::audit::AuditLog::new(stores.access.clone()),
                access: stores.access,
                sandbox_store: stores.sandboxes,
                queues: stores.queues,
                followups: stores.followups,
                followup_due: tokio::sync::Notify::new(),
                queue_sent: tokio::sync::Notify::new(),
                triggers_changed: tokio::sync::Notify::new(),
                sandboxes: Default::default(),
                schedule_changed: tokio::sync::Notify::new(),
                events: crate::events::channel(),
                bus: stores.bus,
                registry,
                broker: LogBroker::new(),
                metrics,
                slots,
                active: Mutex::new(HashMap::new()),
                watches: Arc::new(Watches::default()),
                view: Mutex::new(ClusterView::default()),
                stopping: watch::channel(false).0,
                isolated: std::sync::atomic::AtomicBool::new(false),
                ids: Mutex::new(ulid::Generator::new()),
                images: None,
                started: now(),
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

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
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

    /// `/metrics`: the registry's text, with the backends' own event counts and the
    /// queues' counts read now.
    pub async fn render_metrics(&self) -> String {
        match self.queues(None).await {
            Ok(views) => self.inner.metrics.queues(&views),
            Err(e) => tracing::warn!(error = %e, "cannot read the queues' counts for /metrics"),
        }
        for backend in self.inner.registry.backends() {
            self.inner
                .metrics
                .backend_events(backend.isolation().as_str(), &backend.counters());
        }
        self.inner.metrics.render()
    }

    /// Workloads this node is running (or has claimed and is starting).
    pub fn active_count(&self) -> usize {
        self.inner.active().len()
    }

    /// Run slots of a backend on this node: (in all, free now).
    pub fn slots(&self, isolation: Isolation) -> (usize, usize) {
        self.inner
            .slots
            .get(&isolation)
            .map_or((0, 0), |s| s.counts())
    }

    /// This node, as its next heartbeat will describe it.
    pub fn this_node(&self) -> NodeRecord {
        crate::cluster::describe(&self.inner)
    }

    /// Every node of the cluster (this one as it is now), by id.
    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let me = self.this_node();
        let mut nodes = self.inner.nodes.nodes().await?;
        match nodes.iter_mut().find(|n| n.id == me.id) {
            Some(stored) => *stored = me,
            None => nodes.push(me),
        }
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    /// A new workload id (a ULID, increasing on this node).
    pub(crate) fn new_id(&self) -> String {
        self.inner.new_id()
    }

    /// Waits until the workload is terminal and returns it, wherever it runs.
    pub async fn wait(&self, id: &str) -> Result<Workload, StoreError> {
        let local = self.inner.active().get(id).map(|a| a.done.clone());
        if let Some(mut done) = local {
            if let Ok(w) = done.wait_for(Option::is_some).await {
                if let Some(w) = w.clone() {
                    return Ok(w);
                }
            }
        }
        let watch = self.watch(id);
        loop {
            let armed = watch.armed();
            let w = self.inner.store.get(id).await?;
            if w.status.is_terminal() {
                return Ok(w);
            }
            // It may have been claimed here meanwhile: follow the local run then.
            let local = self.inner.active().get(id).map(|a| a.done.clone());
            if let Some(mut done) = local {
                if let Ok(w) = done.wait_for(Option::is_some).await {
                    if let Some(w) = w.clone() {
                        return Ok(w);
                    }
                }
            }
            watch.changed(armed).await;
        }
    }

    /// A wait on what happens to a workload (its end, its log lines), wherever it runs.
    pub fn watch(&self, id: &str) -> Watch {
        self.inner.watches.watch(id, self.inner.config.poll)
    }

    /// Stops a pending or running workload, wherever it runs, and returns it once it is
    /// `killed`. A workload whose code had already finished is refused with how it ended.
    pub async fn kill(&self, id: &str) -> Result<Workload, KillError> {
        let inner = &self.inner;
        let current = inner.store.get(id).await?;
        if current.status.is_terminal() {
            return Err(KillError::AlreadyEnded(Box::new(current)));
        }
        // A workload this node runs is stopped by its own task, which records how it
        // ended: killed if the code was still going, or its real result if it had already
        // finished (then the kill is refused with that result, never recorded over it).
        if inner.stop_local(id, killed_by_request()) {
            return settle(self.wait(id).await?);
        }
        if current.status == WorkloadStatus::Pending {
            // Not started anywhere: the store decides between this kill and a node's start
            // (refused if a node started it since it was read: then that node is asked).
            match inner
                .store
                .finish(
                    id,
                    &ended(
                        WorkloadStatus::Killed,
                        "killed by request before it started",
                    ),
                    &Expect::Pending,
                )
                .await
            {
                Ok(w) => {
                    inner.signal(Signal::Ended(id.to_owned()));
                    inner.publish(crate::events::Event::workload(inner, "finished", &w));
                    return Ok(w);
                }
                Err(StoreError::InvalidTransition(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Running on another node (or just started there): ask it to stop.
        inner.store.request_kill(id).await?;
        inner.signal(Signal::Kill(id.to_owned()));
        settle(self.wait(id).await?)
    }

    /// After a restart: fails the workloads that were running here when this node stopped
    /// (they may have had effects, so they are not re-run) and puts back in the queue the
    /// ones it had claimed and not started. Returns (failed, requeued).
    pub async fn recover(&self) -> Result<(usize, usize), StoreError> {
        let inner = &self.inner;
        let mut failed = 0;
        for w in inner.store.running_on(&inner.config.node_id).await? {
            let why = "the server stopped while this workload was running; it was not re-run because it may already have had effects";
            match inner
                .store
                .finish(
                    &w.id,
                    &ended(WorkloadStatus::Failed, why),
                    &Expect::RunningOn(inner.config.node_id.clone()),
                )
                .await
            {
                Ok(_) | Err(StoreError::InvalidTransition(_)) => {}
                Err(e) => return Err(e),
            }
            inner
                .metrics
                .workload_finished(w.isolation.as_str(), "failed", None);
            failed += 1;
        }
        let requeued = inner
            .store
            .unclaim(&inner.config.node_id, &[], now())
            .await? as usize;
        Ok((failed, requeued))
    }

    /// Starts the background work: a dispatcher per backend this node can run, the
    /// heartbeat with housekeeping and kill requests. Call once, after [`Engine::recover`].
    pub fn start(&self) {
        let receiver = Arc::downgrade(&self.inner);
        self.inner
            .bus
            .subscribe(Box::new(move |signal| match receiver.upgrade() {
                Some(inner) => {
                    inner.handle(signal);
                    true
                }
                None => false,
            }));
        crate::dispatch::start(&self.inner);
        tokio::spawn(crate::access::reread_keys(self.inner.clone()));
        tokio::spawn(crate::cluster::heartbeat(self.inner.clone()));
        tokio::spawn(crate::schedules::run_scheduler(self.inner.clone()));
        tokio::spawn(crate::consumers::run(self.clone()));
        tokio::spawn(crate::followups::run(self.clone()));
        if !self.inner.sandboxes.drivers.is_empty() {
            tokio::spawn(crate::sandboxes::reap(self.inner.clone()));
        }
    }

    /// A signal from another node (or this one).
    pub fn signal(&self, signal: Signal) {
        self.inner.handle(signal);
    }

    /// Graceful shutdown: accept and claim nothing new, give running workloads `grace` to
    /// finish, then stop them (marked failed). Workloads still queued stay pending for any
    /// node (this one after its restart); this node is marked as having left.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.stopping.send_replace(true);
        let deadline = Instant::now() + grace;
        while self.active_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        inner.stop_all(Stop {
            status: WorkloadStatus::Failed,
            error: "the server shut down before the workload finished".into(),
            record: true,
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.active_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop_sandboxes().await;
        let node = &inner.config.node_id;
        if let Err(e) = inner.store.unclaim(node, &[], now()).await {
            tracing::warn!(error = %e, "could not give back claimed workloads");
        }
        if let Err(e) = inner.nodes.leave(node, now()).await {
            tracing::warn!(error = %e, "could not record that this node left");
        }
        inner.handle(Signal::Resync);
        for backend in inner.registry.backends() {
            backend.shutdown().await;
        }
    }
}

fn killed_by_request() -> Stop {
    Stop {
        status: WorkloadStatus::Killed,
        error: "killed by request".into(),
        record: true,
    }
}

/// A kill's answer: the workload if it ended killed, else how it did end.
fn settle(last: Workload) -> Result<Workload, KillError> {
    if last.status == WorkloadStatus::Killed {
        Ok(last)
    } else {
        Err(KillError::AlreadyEnded(Box::new(last)))
    }
}

impl Inner {
    pub(crate) fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn view(&self) -> std::sync::MutexGuard<'_, ClusterView> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_isolated(&self) -> bool {
        self.isolated.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn new_id(&self) -> String {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.generate()
            .unwrap_or_else(|_| ulid::Ulid::new())
            .to_string()
    }

    /// Stops a run this node holds; false if it holds none of that id.
    pub(crate) fn stop_local(&self, id: &str, stop: Stop) -> bool {
        match self.active().get(id) {
            Some(active) => {
                active.stop.send_if_modified(|current| {
                    let first = current.is_none();
                    if first {
                        *current = Some(stop);
                    }
                    first
                });
                true
            }
            None => false,
        }
    }

    /// Stops every run this node holds.
    pub(crate) fn stop_all(&self, stop: Stop) {
        let ids: Vec<String> = self.active().keys().cloned().collect();
        for id in ids {
            self.stop_local(&id, stop.clone());
        }
    }

    /// Acts on a signal here and tells the other nodes.
    pub(crate) fn signal(&self, signal: Signal) {
        self.handle(signal.clone());
        self.bus.announce(&signal);
    }

    /// Acts on a signal (from this node or another).
    pub(crate) fn handle(&self, signal: Signal) {
        match signal {
            Signal::Queued(isolation) => {
                if let Some(slots) = self.slots.get(&isolation) {
                    slots.wake_to_claim();
                }
            }
            Signal::Kill(id) => {
                self.stop_local(&id, killed_by_request());
            }
            Signal::Ended(id) | Signal::Logs(id) => self.watches.touch(&id),
            Signal::Resync => {
                for slots in self.slots.values() {
                    slots.wake_to_claim();
                }
                self.watches.touch_all();
            }
            Signal::Retire(prefix) => {
                for backend in self.registry.backends() {
                    backend.retire(&prefix);
                }
            }
            Signal::Event(json) => self.relay(&json),
            Signal::Keys => {
                let keys = self.keys.clone();
                tokio::spawn(async move {
                    if let Err(e) = keys.reread().await {
                        tracing::warn!(error = %e, "cannot read the API keys again after a change");
                    }
                });
            }
        }
    }
}
