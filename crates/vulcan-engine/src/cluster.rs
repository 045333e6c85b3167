//! The cluster's mechanics, from one node's side: every heartbeat interval it records its
//! heartbeat (what it can run, how many slots are free), learns what the other live nodes
//! can run (for routing `auto`), does housekeeping if no other node is doing it (nodes
//! lost past their lease: their running workloads failed, their claims requeued), stops
//! the runs others asked to kill, and gives back claims it is not running.
//!
//! A node that cannot reach the store for longer than its lease stops claiming and stops
//! what it runs (their ends could not be recorded, and another node has by then declared
//! them lost); when the store is back it rejoins. Nothing it writes late overwrites an
//! ending already recorded: the store refuses such transitions.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use vulcan_domain::{Isolation, NodeBackend, NodeRecord, NodeState, Signal, WorkloadStatus};

use crate::engine::{now, Inner, Stop};

/// What the other live nodes can run, as of their last heartbeats.
#[derive(Debug, Default, Clone)]
pub(crate) struct ClusterView {
    /// Backends available on at least one other live node.
    elsewhere: HashSet<Isolation>,
    /// Each node's state at the last heartbeat (`None` before the first): changes are
    /// published as events.
    states: Option<HashMap<String, NodeState>>,
}

impl ClusterView {
    pub(crate) fn live_elsewhere(&self, isolation: Isolation) -> bool {
        self.elsewhere.contains(&isolation)
    }
}

/// Heartbeats after which claims this node is not running are given back.
const RECONCILE_EVERY: u32 = 5;

/// (total, in use) MiB from /proc/meminfo.
fn memory_mb() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    let (total, available) = (field("MemTotal:"), field("MemAvailable:"));
    (total / 1024, total.saturating_sub(available) / 1024)
}

/// This node as its heartbeat describes it.
pub(crate) fn describe(inner: &Inner) -> NodeRecord {
    let (memory_total_mb, memory_used_mb) = memory_mb();
    let backends = inner
        .registry
        .list()
        .into_iter()
        .filter_map(|b| {
            let name: Isolation = b.name.parse().ok()?;
            let (slots, free) = inner.slots.get(&name).map_or((0, 0), |s| s.counts());
            Some(NodeBackend {
                name,
                available: b.available,
                reason: b.reason,
                details: b.details,
                slots: slots as u32,
                free_slots: free as u32,
            })
        })
        .collect();
    // Warm instances per function version (their keys end with the digest).
    let mut instances = std::collections::BTreeMap::new();
    for backend in inner.registry.backends() {
        for (key, n) in backend.warm_instances() {
            // tenant/function/version/digest/secrets → tenant/function/version
            let version = key.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
            *instances.entry(version).or_default() += n as u64;
        }
    }
    NodeRecord {
        id: inner.config.node_id.clone(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        memory_total_mb,
        memory_used_mb,
        active_workloads: inner.active().len() as u32,
        backends,
        started_at: inner.started,
        // Stores keep milliseconds: what is shown from here and from the store looks alike.
        heartbeat_at: {
            let t = now();
            t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
                .unwrap_or(t)
        },
        left_at: None,
        instances,
        addresses: inner.config.addresses.clone(),
        api_url: inner.config.api_url.clone(),
    }
}

/// The heartbeat loop, until the engine stops.
pub(crate) async fn heartbeat(inner: Arc<Inner>) {
    let mut stopping = inner.stopping.subscribe();
    let mut tick = tokio::time::interval(inner.config.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ok = Instant::now();
    let mut beats: u32 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => return,
        }
        if *stopping.borrow() {
            return;
        }
        match beat(&inner, beats.is_multiple_of(RECONCILE_EVERY)).await {
            Ok(()) => {
                last_ok = Instant::now();
            }
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed");
                if last_ok.elapsed() > inner.config.lease
                    && !inner.isolated.swap(true, Ordering::SeqCst)
                {
                    tracing::error!(
                        lease_s = inner.config.lease.as_secs(),
                        "the store has been unreachable for longer than this node's lease: it stops what it runs and claims nothing until it is back"
                    );
                    inner.stop_all(Stop {
                        status: WorkloadStatus::Failed,
                        error: format!(
                            "node {} lost the connection to the store for longer than its lease ({} s); the workload was stopped because its end could not be recorded",
                            inner.config.node_id,
                            inner.config.lease.as_secs()
                        ),
                        record: false,
                    });
                }
            }
        }
        beats = beats.wrapping_add(1);
    }
}

/// Reads the nodes again to learn which backends the others can run now (a node that
/// joined since this node's last heartbeat). False if the store could not be read.
pub(crate) async fn refresh_view(inner: &Inner) -> bool {
    let Ok(nodes) = inner.nodes.nodes().await else {
        return false;
    };
    let now = now();
    let lease = time::Duration::try_from(inner.config.lease).unwrap_or(time::Duration::seconds(10));
    let elsewhere = nodes
        .iter()
        .filter(|n| n.id != inner.config.node_id && n.state(now, lease) == NodeState::Live)
        .flat_map(|n| n.backends.iter().filter(|b| b.available).map(|b| b.name))
        .collect();
    inner
        .view
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .elsewhere = elsewhere;
    true
}

/// One heartbeat: record it, learn the others, housekeep, act on kill requests.
async fn beat(inner: &Arc<Inner>, reconcile: bool) -> Result<(), vulcan_domain::StoreError> {
    let me = describe(inner);
    inner.nodes.heartbeat(&me).await?;
    // Reachable again: the others see this node live from this write on, so it claims
    // from now on too.
    if inner.isolated.swap(false, Ordering::SeqCst) {
        tracing::warn!("the store is reachable again: this node rejoins the cluster");
        inner.handle(Signal::Resync);
    }
    let now = now();
    let lease = time::Duration::try_from(inner.config.lease).unwrap_or(time::Duration::seconds(10));
    let nodes = inner.nodes.nodes().await?;
    let mut elsewhere = HashSet::new();
    let mut lost: HashMap<String, ()> = HashMap::new();
    let mut states = [("live", 1i64), ("lost", 0), ("left", 0)];
    for node in nodes.iter().filter(|n| n.id != me.id) {
        let state = node.state(now, lease);
        states[match state {
            NodeState::Live => 0,
            NodeState::Lost => 1,
            NodeState::Left => 2,
        }]
        .1 += 1;
        match state {
            NodeState::Live => {
                elsewhere.extend(node.backends.iter().filter(|b| b.available).map(|b| b.name))
            }
            NodeState::Lost => {
                lost.insert(node.id.clone(), ());
            }
            NodeState::Left => {}
        }
    }
    let changes = {
        let mut view = inner.view.lock().unwrap_or_else(|p| p.into_inner());
        view.elsewhere = elsewhere;
        let current: HashMap<String, NodeState> = nodes
            .iter()
            .map(|n| (n.id.clone(), n.state(now, lease)))
            .collect();
        let changes: Vec<(String, &str)> = match &view.states {
            None => Vec::new(),
            Some(before) => current
                .iter()
                .filter(|(id, state)| before.get(*id) != Some(*state))
                .map(|(id, state)| {
                    let what = match state {
                        NodeState::Live => "joined",
                        NodeState::Lost => "lost",
                        NodeState::Left => "left",
                    };
                    (id.clone(), what)
                })
                .collect(),
        };
        view.states = Some(current);
        changes
    };
    for (node, what) in changes {
        inner.publish(crate::events::Event::node(inner, what, &node));
    }
    if !lost.is_empty() || reconcile {
        let kept = inner.nodes.housekeep(now - lease).await?;
        for node in &kept.lost_nodes {
            tracing::warn!(node = %node, "a node was lost: its running workloads failed, its claims went back to the queue");
        }
        for id in kept.failed {
            inner.signal(Signal::Ended(id));
        }
        if !kept.requeued.is_empty() {
            for isolation in Isolation::CONCRETE {
                inner.signal(Signal::Queued(isolation));
            }
        }
    }
    for id in inner.store.kill_requests(&me.id).await? {
        inner.handle(Signal::Kill(id));
    }
    if reconcile {
        let keep: Vec<String> = inner.active().keys().cloned().collect();
        let given_back = inner
            .store
            .unclaim(&me.id, &keep, now - time::Duration::seconds(5))
            .await?;
        if given_back > 0 {
            tracing::info!(given_back, "gave back claims this node was not running");
            for isolation in Isolation::CONCRETE {
                inner.signal(Signal::Queued(isolation));
            }
        }
    }
    // The metrics' view of the cluster: nodes by state, the queue per backend (from the
    // store's counters), and this node's backends.
    let mut pending = Vec::new();
    for isolation in Isolation::CONCRETE {
        let page = inner
            .store
            .list(&vulcan_domain::ListFilter {
                status: Some(WorkloadStatus::Pending),
                isolation: Some(isolation),
                limit: 0,
                ..Default::default()
            })
            .await?;
        pending.push((isolation.as_str().to_owned(), page.total as i64));
    }
    inner.metrics.cluster(&states, &pending);
    for b in &me.backends {
        inner.metrics.backend(
            &b.name.to_string(),
            b.available,
            b.slots as usize,
            b.free_slots as usize,
        );
    }

    Ok(())
}
