//! Lifecycle events for live clients (`GET /ws/events`): workloads created, started and
//! finished, nodes joined, lost and left, functions deployed, schedules fired.
//!
//! Each node publishes what it sees on a bounded broadcast channel and tells the other
//! nodes over the signal bus, so a client of any node sees the events of every node. A
//! receiver that falls behind by more than the channel holds is told so (and closed by the
//! API) rather than buffered without bound.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use vulcan_domain::{Signal, Workload};

use crate::engine::{now, Inner};
use crate::Engine;

/// Events kept for receivers that are behind.
const CAPACITY: usize = 1024;

/// One event.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `workload`, `node`, `function` or `schedule`.
    pub kind: String,
    /// `created`, `started`, `finished`; `joined`, `lost`, `left`; `deployed`; `fired`.
    #[serde(rename = "type")]
    pub event: String,
    /// The workload's, node's, function's or schedule's id (name for a function).
    pub id: String,
    /// Whose it is (`None` for nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// A workload's status; a function's version; a fired schedule's workload id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_id: Option<String>,
    /// The node that saw it.
    pub node: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl Event {
    fn new(inner: &Inner, kind: &str, event: &str, id: &str) -> Event {
        Event {
            kind: kind.into(),
            event: event.into(),
            id: id.into(),
            tenant: None,
            status: None,
            isolation: None,
            function: None,
            workload_id: None,
            node: inner.config.node_id.clone(),
            at: now(),
        }
    }

    /// An event about `w` (`created`, `started`, `finished`).
    pub(crate) fn workload(inner: &Inner, event: &str, w: &Workload) -> Event {
        Event {
            tenant: Some(w.tenant.clone()),
            status: Some(w.status.as_str().to_owned()),
            isolation: Some(w.isolation.as_str().to_owned()),
            function: w.function.clone(),
            ..Event::new(inner, "workload", event, &w.id)
        }
    }

    pub(crate) fn node(inner: &Inner, event: &str, node: &str) -> Event {
        Event::new(inner, "node", event, node)
    }

    pub(crate) fn deployed(inner: &Inner, tenant: &str, name: &str, version: u32) -> Event {
        Event {
            tenant: Some(tenant.to_owned()),
            status: Some(version.to_string()),
            function: Some(name.to_owned()),
            ..Event::new(inner, "function", "deployed", name)
        }
    }

    pub(crate) fn fired(inner: &Inner, tenant: &str, schedule: &str, w: &Workload) -> Event {
        Event {
            tenant: Some(tenant.to_owned()),
            function: w.function.clone(),
            workload_id: Some(w.id.clone()),
            ..Event::new(inner, "schedule", "fired", schedule)
        }
    }
}

/// The channel events are published on.
pub(crate) fn channel() -> broadcast::Sender<Event> {
    broadcast::channel(CAPACITY).0
}

impl Inner {
    /// Publishes `event` here and tells the other nodes.
    pub(crate) fn publish(&self, event: Event) {
        if let Ok(json) = serde_json::to_string(&event) {
            self.bus.announce(&Signal::Event(json));
        }
        let _ = self.events.send(event);
    }

    /// An event another node published (this node's own come back from the bus too and
    /// are dropped: they were published here already).
    pub(crate) fn relay(&self, json: &str) {
        match serde_json::from_str::<Event>(json) {
            Ok(event) if event.node != self.config.node_id => {
                let _ = self.events.send(event);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "an event from another node does not parse"),
        }
    }
}

impl Engine {
    /// Every event from now on (of every node).
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }
}
