//! Nodes sharing one store: what each says of itself in its heartbeat, how the others see
//! it (live, lost, left), the housekeeping one of them does for the nodes that are gone,
//! and the signals nodes send each other (queued work, kills, endings, new log lines).
//!
//! A node on its own (the embedded SQLite store) is a cluster of one: the same records and
//! the same signals, delivered in-process.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Isolation, StoreError};

/// What a node says of one of its backends.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeBackend {
    pub name: Isolation,
    pub available: bool,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub details: serde_json::Value,
    /// Workloads it can run at once, and how many of those it could start now.
    pub slots: u32,
    pub free_slots: u32,
}

/// How a node looks to the others.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Its heartbeat is recent.
    Live,
    /// No heartbeat for longer than the lease: presumed dead.
    Lost,
    /// It shut down cleanly.
    Left,
}

/// One node, as its last heartbeat described it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    pub hostname: String,
    pub version: String,
    pub cpus: u32,
    pub memory_total_mb: u64,
    pub memory_used_mb: u64,
    /// Workloads it is running now.
    pub active_workloads: u32,
    pub backends: Vec<NodeBackend>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub heartbeat_at: OffsetDateTime,
    /// Set when it shut down cleanly.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub left_at: Option<OffsetDateTime>,
    /// Warm function instances it holds, per `tenant/function/version`.
    #[serde(default)]
    pub instances: std::collections::BTreeMap<String, u64>,
    /// Its host's IPv4 addresses (not loopback, not its sandboxes' links): what no
    /// workload on another node may reach.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub addresses: Vec<std::net::Ipv4Addr>,
    /// Where its API answers the other nodes (a request about a sandbox it holds is
    /// forwarded there); empty: not reachable from them.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_url: String,
}

impl NodeRecord {
    /// Live, lost (no heartbeat within `lease` of `now`) or left.
    pub fn state(&self, now: OffsetDateTime, lease: time::Duration) -> NodeState {
        if self.left_at.is_some() {
            NodeState::Left
        } else if now - self.heartbeat_at > lease {
            NodeState::Lost
        } else {
            NodeState::Live
        }
    }
}

/// What one round of housekeeping did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Housekept {
    /// Whether this node did it (another may hold the housekeeping lock).
    pub led: bool,
    /// Nodes newly found lost.
    pub lost_nodes: Vec<String>,
    /// Running workloads of lost nodes, now failed.
    pub failed: Vec<String>,
    /// Workloads lost nodes had claimed and not started, back in the queue.
    pub requeued: Vec<String>,
}

/// Keeps the nodes of a cluster.
#[async_trait]
pub trait NodeStore: Send + Sync {
    /// Records a node's heartbeat (registering it the first time).
    async fn heartbeat(&self, node: &NodeRecord) -> Result<(), StoreError>;

    /// Records that a node shut down cleanly.
    async fn leave(&self, node: &str, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Every node that ever joined, by id.
    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;

    /// If no other node is doing it right now: marks nodes without a heartbeat since
    /// `lost_before` lost, fails the workloads they were running (the error names the
    /// node) and puts back in the queue those they had claimed but not started.
    async fn housekeep(&self, lost_before: OffsetDateTime) -> Result<Housekept, StoreError>;
}

/// A message from one node to the others (and to itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A workload was queued for this backend: a node with a free slot may claim it.
    Queued(Isolation),
    /// Stop this workload (the node running it acts).
    Kill(String),
    /// This workload reached a terminal status.
    Ended(String),
    /// New log lines of this workload were stored.
    Logs(String),
    /// The connection to the others was lost and is back: signals may have been missed.
    Resync,
    /// A function was deleted or changed: stop its idle instances (`tenant/function/`).
    Retire(String),
    /// A lifecycle event for live clients, as JSON (the engine's `Event`).
    Event(String),
    /// API keys changed (one created, revoked, or given another role or tenant): every
    /// node reads them again.
    Keys,
}

impl Signal {
    /// The signal as one short line (`q:isolate`, `k:<id>`, ...).
    pub fn encode(&self) -> String {
        match self {
            Signal::Queued(i) => format!("q:{i}"),
            Signal::Kill(id) => format!("k:{id}"),
            Signal::Ended(id) => format!("e:{id}"),
            Signal::Logs(id) => format!("l:{id}"),
            Signal::Resync => "r:".into(),
            Signal::Retire(prefix) => format!("f:{prefix}"),
            Signal::Event(json) => format!("v:{json}"),
            Signal::Keys => "a:".into(),
        }
    }

    /// The signal a line encodes, if it is one.
    pub fn decode(text: &str) -> Option<Signal> {
        let (kind, rest) = text.split_once(':')?;
        let id = || (!rest.is_empty()).then(|| rest.to_owned());
        Some(match kind {
            "q" => Signal::Queued(rest.parse().ok()?),
            "k" => Signal::Kill(id()?),
            "e" => Signal::Ended(id()?),
            "l" => Signal::Logs(id()?),
            "r" => Signal::Resync,
            "f" => Signal::Retire(id()?),
            "v" => Signal::Event(id()?),
            "a" => Signal::Keys,
            _ => return None,
        })
    }
}

/// Where a bus delivers signals: false once it wants no more.
pub type Deliver = Box<dyn Fn(Signal) -> bool + Send + Sync>;

/// Signals between the nodes sharing the store (a node's own signals reach it in-process;
/// a bus may deliver them back too, which does no harm).
pub trait SignalBus: Send + Sync {
    /// Tells the other nodes.
    fn announce(&self, signal: &Signal);

    /// Hands every signal the nodes announce to `deliver` from now on, until it returns
    /// false; after a break in which signals may have been missed, [`Signal::Resync`].
    fn subscribe(&self, deliver: Deliver);
}

/// The bus of a node on its own: there is nobody else to tell, or to hear.
pub struct Alone;

impl SignalBus for Alone {
    fn announce(&self, _: &Signal) {}

    fn subscribe(&self, _: Deliver) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip_and_garbage_is_none() {
        for s in [
            Signal::Queued(Isolation::Gvisor),
            Signal::Kill("01A".into()),
            Signal::Ended("01B".into()),
            Signal::Logs("01C".into()),
            Signal::Resync,
            Signal::Retire("t/f/".into()),
            Signal::Event("{\"kind\":\"node\"}".into()),
            Signal::Keys,
        ] {
            assert_eq!(Signal::decode(&s.encode()), Some(s));
        }
        for junk in ["", "x", "q:docker", "k:", "z:1"] {
            assert_eq!(Signal::decode(junk), None, "{junk}");
        }
    }

    #[test]
    fn a_node_is_lost_past_its_lease_and_left_once_it_says_so() {
        let now = OffsetDateTime::now_utc();
        let mut node = NodeRecord {
            id: "a".into(),
            hostname: "h".into(),
            version: "0".into(),
            cpus: 2,
            memory_total_mb: 1,
            memory_used_mb: 1,
            active_workloads: 0,
            backends: Vec::new(),
            started_at: now,
            heartbeat_at: now - time::Duration::seconds(5),
            left_at: None,
            instances: Default::default(),
            addresses: Vec::new(),
            api_url: String::new(),
        };
        let lease = time::Duration::seconds(10);
        assert_eq!(node.state(now, lease), NodeState::Live);
        node.heartbeat_at = now - time::Duration::seconds(11);
        assert_eq!(node.state(now, lease), NodeState::Lost);
        node.left_at = Some(now);
        assert_eq!(node.state(now, lease), NodeState::Left);
    }
}
