//! A small Prometheus registry: counters, gauges and histograms with labels, rendered in
//! the text exposition format. Enough for Vulcan's own metrics, without a metrics stack.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// Upper bounds (seconds) of the latency histograms.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
const WORKLOAD_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Families {
    counters: BTreeMap<&'static str, BTreeMap<Labels, f64>>,
    gauges: BTreeMap<&'static str, BTreeMap<Labels, f64>>,
    histograms: BTreeMap<&'static str, (&'static [f64], BTreeMap<Labels, Histogram>)>,
}

/// Vulcan's metrics. Cheap to clone; all clones share one registry.
#[derive(Clone, Default)]
pub struct Metrics {
    families: Arc<Mutex<Families>>,
}

const HELP: &[(&str, &str, &str)] = &[
    (
        "vulcan_http_requests_total",
        "counter",
        "HTTP requests served, by method, route and status.",
    ),
    (
        "vulcan_http_request_duration_seconds",
        "histogram",
        "HTTP request latency, by method and route.",
    ),
    (
        "vulcan_workloads_submitted_total",
        "counter",
        "Workloads accepted, by backend.",
    ),
    (
        "vulcan_workloads_finished_total",
        "counter",
        "Workloads that reached a terminal status, by backend and status.",
    ),
    (
        "vulcan_workload_duration_seconds",
        "histogram",
        "Execution time of workloads that ran, by backend.",
    ),
    (
        "vulcan_workloads_running",
        "gauge",
        "Workloads running now, by backend.",
    ),
    (
        "vulcan_workload_runs_total",
        "counter",
        "Workloads handed to a backend on this node (each run once, whichever node runs it).",
    ),
    (
        "vulcan_log_lines_dropped_total",
        "counter",
        "Log lines dropped past the per-workload limits.",
    ),
];

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn families(&self) -> std::sync::MutexGuard<'_, Families> {
        self.families.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, name: &'static str, pairs: &[(&'static str, &str)], v: f64) {
        *self
            .families()
            .counters
            .entry(name)
            .or_default()
            .entry(labels(pairs))
            .or_default() += v;
    }

    fn gauge_add(&self, name: &'static str, pairs: &[(&'static str, &str)], v: f64) {
        *self
            .families()
            .gauges
            .entry(name)
            .or_default()
            .entry(labels(pairs))
            .or_default() += v;
    }

    fn observe(
        &self,
        name: &'static str,
        buckets: &'static [f64],
        pairs: &[(&'static str, &str)],
        v: f64,
    ) {
        let mut f = self.families();
        let (_, series) = f
            .histograms
            .entry(name)
            .or_insert_with(|| (buckets, BTreeMap::new()));
        let h = series.entry(labels(pairs)).or_insert_with(|| Histogram {
            counts: vec![0; buckets.len()],
            ..Default::default()
        });
        for (i, bound) in buckets.iter().enumerate() {
            if v <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += v;
        h.count += 1;
    }

    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        self.add(
            "vulcan_http_requests_total",
            &[("method", method), ("route", route), ("status", &status)],
            1.0,
        );
        self.observe(
            "vulcan_http_request_duration_seconds",
            HTTP_BUCKETS,
            &[("method", method), ("route", route)],
            seconds,
        );
    }

    pub fn workload_submitted(&self, backend: &str) {
        self.add(
            "vulcan_workloads_submitted_total",
            &[("backend", backend)],
            1.0,
        );
    }

    pub fn workload_started(&self, backend: &str) {
        self.gauge_add("vulcan_workloads_running", &[("backend", backend)], 1.0);
        self.add("vulcan_workload_runs_total", &[("backend", backend)], 1.0);
    }

    pub fn workload_finished(&self, backend: &str, status: &str, ran_for: Option<f64>) {
        self.add(
            "vulcan_workloads_finished_total",
            &[("backend", backend), ("status", status)],
            1.0,
        );
        if let Some(seconds) = ran_for {
            self.gauge_add("vulcan_workloads_running", &[("backend", backend)], -1.0);
            self.observe(
                "vulcan_workload_duration_seconds",
                WORKLOAD_BUCKETS,
                &[("backend", backend)],
                seconds,
            );
        }
    }

    pub fn log_lines_dropped(&self, n: u64) {
        if n > 0 {
            self.add("vulcan_log_lines_dropped_total", &[], n as f64);
        }
    }

    /// The text exposition format (`text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        let f = self.families();
        let mut out = String::new();
        let fmt_labels = |l: &Labels, extra: Option<(&str, String)>| {
            let mut parts: Vec<String> = l
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            if let Some((k, v)) = extra {
                parts.push(format!("{k}=\"{v}\""));
            }
            if parts.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", parts.join(","))
            }
        };
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for family in [&f.counters, &f.gauges] {
                for (l, v) in family.get(name).into_iter().flatten() {
                    let _ = writeln!(out, "{name}{} {v}", fmt_labels(l, None));
                }
            }
            if let Some((buckets, series)) = f.histograms.get(name) {
                for (l, h) in series {
                    for (bound, n) in buckets.iter().zip(&h.counts) {
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {n}",
                            fmt_labels(l, Some(("le", bound.to_string())))
                        );
                    }
                    let inf = fmt_labels(l, Some(("le", "+Inf".into())));
                    let _ = writeln!(out, "{name}_bucket{inf} {}", h.count);
                    let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(l, None), h.sum);
                    let _ = writeln!(out, "{name}_count{} {}", fmt_labels(l, None), h.count);
                }
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
        let text = m.render();
        assert!(
            text.contains(
                "vulcan_http_requests_total{method=\"GET\",route=\"/v1/stats\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "vulcan_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/stats\",le=\"0.005\"} 1"
        ), "{text}");
        assert!(text.contains(
            "vulcan_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/stats\",le=\"0.025\"} 2"
        ), "{text}");
        assert!(
            text.contains("vulcan_workloads_running{backend=\"isolate\"} 0"),
            "{text}"
        );
        assert!(
            text.contains(
                "vulcan_workloads_finished_total{backend=\"isolate\",status=\"completed\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE vulcan_workload_duration_seconds histogram"));
    }
}
