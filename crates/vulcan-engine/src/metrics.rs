//! Vulcan's Prometheus metrics, on the `prometheus-client` crate, rendered in the
//! OpenMetrics text format at `GET /metrics`.
//!
//! Series: HTTP requests and latency by method and route (the route template, never a raw
//! path); workloads submitted, run, running and finished by backend (and status);
//! execution time, CPU time and peak memory per run as histograms by backend, preparation
//! time (cold starts) by backend and path; log lines
//! dropped; and this node's view of the cluster, refreshed with every heartbeat — nodes by
//! state, workloads waiting per backend, each backend's availability and slots.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the latency histograms.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
const WORKLOAD_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Upper bounds (seconds) of the preparation histogram: a pooled isolate's half a
/// millisecond to a VM booted under emulation.
const PREPARATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds (bytes) of the peak-memory histogram: 4 MiB to 16 GiB, by powers of 4.
const MEMORY_BUCKETS: &[f64] = &[
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
    1073741824.0,
    4294967296.0,
    17179869184.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Backend {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Ended {
    backend: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PostOutcome {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendEvent {
    backend: String,
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Prepared {
    backend: String,
    path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Traffic {
    backend: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    tenant: String,
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeState {
    state: String,
}

/// Makes histograms with one set of bounds.
#[derive(Clone, Copy)]
struct Buckets(&'static [f64]);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

struct Series {
    http_requests: Family<Request, Counter>,
    http_duration: Family<Route, Histogram, Buckets>,
    submitted: Family<Backend, Counter>,
    finished: Family<Ended, Counter>,
    duration: Family<Backend, Histogram, Buckets>,
    prepared: Family<Prepared, Histogram, Buckets>,
    cpu: Family<Backend, Histogram, Buckets>,
    memory: Family<Backend, Histogram, Buckets>,
    network: Family<Traffic, Counter>,
    running: Family<Backend, Gauge>,
    runs: Family<Backend, Counter>,
    dropped: Counter,
    slow_clients: Counter,
    nodes: Family<NodeState, Gauge>,
    queued: Family<Backend, Gauge>,
    queue_limit: Gauge,
    available: Family<Backend, Gauge>,
    slots: Family<Backend, Gauge>,
    free_slots: Family<Backend, Gauge>,
    backend_events: Family<BackendEvent, Counter>,
    queue_sent: Counter,
    retries: Counter,
    posts: Family<PostOutcome, Counter>,
    spans: Family<PostOutcome, Counter>,
    queue_depth: Family<QueueLabel, Gauge>,
    queue_in_flight: Family<QueueLabel, Gauge>,
    queue_oldest: Family<QueueLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    queue_deliveries: Family<QueueLabel, Gauge>,
    queue_redeliveries: Family<QueueLabel, Gauge>,
    queue_dead_lettered: Family<QueueLabel, Gauge>,
    /// Serializes [`Metrics::backend_events`]: two renders must not both add one delta.
    events_sync: Mutex<()>,
}

/// Vulcan's metrics. Cheap to clone; all clones share one registry.
#[derive(Clone)]
pub struct Metrics {
    series: Arc<Series>,
    registry: Arc<Mutex<Registry>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn backend(name: &str) -> Backend {
    Backend {
        backend: name.to_owned(),
    }
}

impl Metrics {
    pub fn new() -> Self {
        let series = Series {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(Buckets(HTTP_BUCKETS)),
            submitted: Family::default(),
            finished: Family::default(),
            duration: Family::new_with_constructor(Buckets(WORKLOAD_BUCKETS)),
            prepared: Family::new_with_constructor(Buckets(PREPARATION_BUCKETS)),
            cpu: Family::new_with_constructor(Buckets(WORKLOAD_BUCKETS)),
            memory: Family::new_with_constructor(Buckets(MEMORY_BUCKETS)),
            network: Family::default(),
            running: Family::default(),
            runs: Family::default(),
            dropped: Counter::default(),
            slow_clients: Counter::default(),
            nodes: Family::default(),
            queued: Family::default(),
            queue_limit: Gauge::default(),
            available: Family::default(),
            slots: Family::default(),
            free_slots: Family::default(),
            backend_events: Family::default(),
            queue_sent: Counter::default(),
            retries: Counter::default(),
            posts: Family::default(),
            spans: Family::default(),
            queue_depth: Family::default(),
            queue_in_flight: Family::default(),
            queue_oldest: Family::default(),
            queue_deliveries: Family::default(),
            queue_redeliveries: Family::default(),
            queue_dead_lettered: Family::default(),
            events_sync: Mutex::new(()),
        };
        // Every outcome is a series from the start, so that a rate over it is one.
        for outcome in ["delivered", "failed", "given_up", "refused"] {
            let _ = series.posts.get_or_create(&PostOutcome {
                outcome: outcome.to_owned(),
            });
        }
        for outcome in ["exported", "dropped"] {
            let _ = series.spans.get_or_create(&PostOutcome {
                outcome: outcome.to_owned(),
            });
        }
        let mut r = Registry::default();
        let s = &series;
        r.register(
            "vulcan_http_requests",
            "HTTP requests served, by method, route and status",
            s.http_requests.clone(),
        );
        r.register(
            "vulcan_http_request_duration_seconds",
            "HTTP request latency, by method and route",
            s.http_duration.clone(),
        );
        r.register(
            "vulcan_workloads_submitted",
            "Workloads accepted, by backend",
            s.submitted.clone(),
        );
        r.register(
            "vulcan_workloads_finished",
            "Workloads that reached a terminal status, by backend and status",
            s.finished.clone(),
        );
        r.register(
            "vulcan_workload_duration_seconds",
            "Execution time of workloads that ran, by backend",
            s.duration.clone(),
        );
        r.register(
            "vulcan_workload_preparation_seconds",
            "Time from a run's start to its code's start (a cold start), by backend and path: boot (started from nothing), restore (a VM from a snapshot), pool (taken ready), warm (a function's kept instance)",
            s.prepared.clone(),
        );
        r.register(
            "vulcan_workload_cpu_seconds",
            "CPU time each run used, by backend",
            s.cpu.clone(),
        );
        r.register(
            "vulcan_workload_peak_memory_bytes",
            "Peak memory of each run, by backend",
            s.memory.clone(),
        );
        r.register(
            "vulcan_workload_network_bytes",
            "Bytes workloads with a network sent (tx) and received (rx), by backend",
            s.network.clone(),
        );
        r.register(
            "vulcan_workloads_running",
            "Workloads running on this node now, by backend",
            s.running.clone(),
        );
        r.register(
            "vulcan_workload_runs",
            "Workloads handed to a backend on this node (each run once, whichever node runs it)",
            s.runs.clone(),
        );
        r.register(
            "vulcan_log_lines_dropped",
            "Log lines dropped past the per-workload limits",
            s.dropped.clone(),
        );
        r.register(
            "vulcan_websocket_slow_closed",
            "WebSocket clients closed for not keeping up",
            s.slow_clients.clone(),
        );
        r.register(
            "vulcan_nodes",
            "Nodes of the cluster by state (live, lost, left), as this node last saw them",
            s.nodes.clone(),
        );
        r.register(
            "vulcan_queue_pending",
            "Workloads waiting in the cluster's queue, by backend",
            s.queued.clone(),
        );
        r.register(
            "vulcan_queue_limit",
            "Workloads that may wait per backend before submissions are refused (VULCAN_QUEUE_LIMIT)",
            s.queue_limit.clone(),
        );
        r.register(
            "vulcan_backend_available",
            "Whether this node can run a backend (1) or not (0)",
            s.available.clone(),
        );
        r.register(
            "vulcan_backend_slots",
            "Run slots of each backend on this node",
            s.slots.clone(),
        );
        r.register(
            "vulcan_backend_free_slots",
            "Free run slots of each backend on this node",
            s.free_slots.clone(),
        );
        r.register(
            "vulcan_backend_events",
            "A backend's own events on this node (microvm: booted, restored, restore_failed, snapshot_made)",
            s.backend_events.clone(),
        );
        r.register(
            "vulcan_queue_messages_sent",
            "Messages sent to queues through this node (duplicates by dedup id not counted)",
            s.queue_sent.clone(),
        );
        r.register(
            "vulcan_workload_retries",
            "Failed async workloads submitted again (their retry policy) by this node",
            s.retries.clone(),
        );
        r.register(
            "vulcan_trace_spans",
            "Spans this node finished while traces are exported (OTEL_EXPORTER_OTLP_ENDPOINT), by outcome: exported, or dropped (its queue full, or the collector refused or did not answer)",
            s.spans.clone(),
        );
        r.register(
            "vulcan_callback_posts",
            "Tries of callbacks and url subscriptions' POSTs by this node, by outcome (delivered, failed: tried again, given_up, refused: a forbidden destination or no signing secret)",
            s.posts.clone(),
        );
        for (name, help, family) in [
            (
                "vulcan_queue_depth",
                "Messages a consumer can receive now, by queue",
                &s.queue_depth,
            ),
            (
                "vulcan_queue_in_flight",
                "Messages received and not yet acknowledged or given back, by queue",
                &s.queue_in_flight,
            ),
            (
                "vulcan_queue_deliveries",
                "Deliveries of each queue's messages so far (cluster-wide, from the store)",
                &s.queue_deliveries,
            ),
            (
                "vulcan_queue_redeliveries",
                "Deliveries of a message received before (retries), by queue (cluster-wide)",
                &s.queue_redeliveries,
            ),
            (
                "vulcan_queue_dead_lettered",
                "Messages moved to each queue's dead-letter queue so far (cluster-wide)",
                &s.queue_dead_lettered,
            ),
        ] {
            r.register(name, help, family.clone());
        }
        r.register(
            "vulcan_queue_oldest_message_age_seconds",
            "Age of the oldest message each queue keeps",
            s.queue_oldest.clone(),
        );
        Metrics {
            series: Arc::new(series),
            registry: Arc::new(Mutex::new(r)),
        }
    }

    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let s = &self.series;
        s.http_requests
            .get_or_create(&Request {
                method: method.to_owned(),
                route: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
        s.http_duration
            .get_or_create(&Route {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    pub fn workload_submitted(&self, name: &str) {
        self.series.submitted.get_or_create(&backend(name)).inc();
    }

    pub fn workload_started(&self, name: &str) {
        self.series.running.get_or_create(&backend(name)).inc();
        self.series.runs.get_or_create(&backend(name)).inc();
    }

    /// A run's preparation: from its start to its code's, and how (`path`).
    pub fn workload_prepared(&self, name: &str, path: &str, seconds: f64) {
        self.series
            .prepared
            .get_or_create(&Prepared {
                backend: name.to_owned(),
                path: path.to_owned(),
            })
            .observe(seconds);
    }

    pub fn workload_finished(&self, name: &str, status: &str, ran_for: Option<f64>) {
        self.series
            .finished
            .get_or_create(&Ended {
                backend: name.to_owned(),
                status: status.to_owned(),
            })
            .inc();
        if let Some(seconds) = ran_for {
            self.series.running.get_or_create(&backend(name)).dec();
            self.series
                .duration
                .get_or_create(&backend(name))
                .observe(seconds);
        }
    }

    /// What one run used.
    pub fn workload_usage(&self, name: &str, usage: &vulcan_domain::Usage) {
        self.series
            .cpu
            .get_or_create(&backend(name))
            .observe(usage.cpu_time_ms as f64 / 1000.0);
        self.series
            .memory
            .get_or_create(&backend(name))
            .observe(usage.peak_memory_bytes as f64);
        for (direction, bytes) in [("tx", usage.net_tx_bytes), ("rx", usage.net_rx_bytes)] {
            if let Some(bytes) = bytes {
                let labels = Traffic {
                    backend: name.to_owned(),
                    direction: direction.to_owned(),
                };
                self.series.network.get_or_create(&labels).inc_by(bytes);
            }
        }
    }

    pub fn log_lines_dropped(&self, n: u64) {
        if n > 0 {
            self.series.dropped.inc_by(n);
        }
    }

    /// A WebSocket client was closed for not keeping up.
    pub fn slow_client_closed(&self) {
        self.series.slow_clients.inc();
    }

    /// This node's view of the cluster: nodes per state, and workloads waiting per backend.
    pub fn cluster(&self, nodes: &[(&str, i64)], pending: &[(String, i64)]) {
        for (state, n) in nodes {
            self.series
                .nodes
                .get_or_create(&NodeState {
                    state: (*state).to_owned(),
                })
                .set(*n);
        }
        for (name, n) in pending {
            self.series.queued.get_or_create(&backend(name)).set(*n);
        }
    }

    /// The queue's bound per backend, as configured.
    pub fn queue_limit(&self, limit: usize) {
        self.series
            .queue_limit
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
    }

    /// A backend's event counts since it started ([`vulcan_domain::Backend::counters`]).
    pub fn backend_events(&self, name: &str, counts: &[(&'static str, u64)]) {
        let _one = self
            .series
            .events_sync
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (event, total) in counts {
            let counter = self.series.backend_events.get_or_create(&BackendEvent {
                backend: name.to_owned(),
                event: (*event).to_owned(),
            });
            catch_up(&counter, *total);
        }
    }

    /// One backend on this node: whether it can run, and its slots.
    pub fn backend(&self, name: &str, available: bool, slots: usize, free: usize) {
        let s = &self.series;
        s.available
            .get_or_create(&backend(name))
            .set(i64::from(available));
        s.slots.get_or_create(&backend(name)).set(slots as i64);
        s.free_slots.get_or_create(&backend(name)).set(free as i64);
    }

    /// A failed async workload submitted again.
    pub fn workload_retried(&self) {
        self.series.retries.inc();
    }

    /// One try of a POST, and how it went.
    pub fn post_made(&self, outcome: &str) {
        self.series
            .posts
            .get_or_create(&PostOutcome {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Messages sent through this node.
    pub fn queue_sent(&self, n: usize) {
        self.series.queue_sent.inc_by(n as u64);
    }

    /// Every queue's counts, as the store has them now.
    pub fn queues(&self, views: &[vulcan_domain::QueueView]) {
        let s = &self.series;
        for v in views {
            let label = QueueLabel {
                tenant: v.queue.tenant.clone(),
                queue: v.queue.name.clone(),
            };
            let c = &v.counts;
            let n = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
            s.queue_depth.get_or_create(&label).set(n(c.depth));
            s.queue_in_flight.get_or_create(&label).set(n(c.in_flight));
            s.queue_deliveries
                .get_or_create(&label)
                .set(n(c.deliveries));
            s.queue_redeliveries
                .get_or_create(&label)
                .set(n(c.redeliveries));
            s.queue_dead_lettered
                .get_or_create(&label)
                .set(n(c.dead_lettered));
            s.queue_oldest
                .get_or_create(&label)
                .set(c.oldest_age_s.unwrap_or(0.0));
        }
    }

    /// The OpenMetrics text format.
    pub fn render(&self) -> String {
        // Counted by the exporter since the start; a concurrent render adds nothing twice.
        let (exported, dropped) = crate::traces::span_counts();
        {
            let _one = self
                .series
                .events_sync
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (outcome, total) in [("exported", exported), ("dropped", dropped)] {
                let counter = self.series.spans.get_or_create(&PostOutcome {
                    outcome: outcome.to_owned(),
                });
                catch_up(&counter, total);
            }
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Raises `counter` to `total`, a count kept elsewhere since the start (callers hold
/// `events_sync`, so that two renders do not add the same difference twice).
fn catch_up(counter: &Counter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_cumulative_histograms() {
        let m = Metrics::new();
        m.http_request("GET", "/v1/stats", 200, 0.003);
        m.http_request("GET", "/v1/stats", 200, 0.02);
        m.workload_started("isolate");
        m.workload_finished("isolate", "completed", Some(0.004));
        m.workload_usage(
            "isolate",
            &vulcan_domain::Usage {
                cpu_time_ms: 1500,
                peak_memory_bytes: 10 << 20,
                max_processes: None,
                net_tx_bytes: Some(300),
                net_rx_bytes: Some(4000),
            },
        );
        m.cluster(&[("live", 3), ("lost", 1)], &[("isolate".into(), 7)]);
        let text = m.render();
        for line in [
            "vulcan_http_requests_total{method=\"GET\",route=\"/v1/stats\",status=\"200\"} 2",
            "vulcan_http_request_duration_seconds_bucket{le=\"0.005\",method=\"GET\",route=\"/v1/stats\"} 1",
            "vulcan_http_request_duration_seconds_bucket{le=\"0.025\",method=\"GET\",route=\"/v1/stats\"} 2",
            "vulcan_workloads_running{backend=\"isolate\"} 0",
            "vulcan_workloads_finished_total{backend=\"isolate\",status=\"completed\"} 1",
            "vulcan_workload_cpu_seconds_bucket{le=\"2.5\",backend=\"isolate\"} 1",
            "vulcan_workload_cpu_seconds_bucket{le=\"1.0\",backend=\"isolate\"} 0",
            "vulcan_workload_peak_memory_bytes_bucket{le=\"16777216.0\",backend=\"isolate\"} 1",
            "vulcan_workload_network_bytes_total{backend=\"isolate\",direction=\"tx\"} 300",
            "vulcan_workload_network_bytes_total{backend=\"isolate\",direction=\"rx\"} 4000",
            "vulcan_nodes{state=\"lost\"} 1",
            "vulcan_queue_pending{backend=\"isolate\"} 7",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        assert!(text.contains("# TYPE vulcan_workload_duration_seconds histogram"));
        assert!(text.ends_with("# EOF\n"));
    }
}
