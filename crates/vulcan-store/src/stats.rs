//! `/v1/stats` assembled from counter rows, the same way for every store: counts per
//! (isolation, status) and duration buckets per isolation, kept in the same transaction as
//! every status change, for everyone and for each tenant.

use std::collections::BTreeMap;

use vulcan_domain::{BackendStats, Stats, WorkloadStatus};

use crate::DurationHistogram;

/// Finished workloads' figures per backend: durations (a histogram and the sum in
/// milliseconds) and usage totals (runs measured, CPU ms, peak bytes).
#[derive(Debug, Default)]
pub(crate) struct PerBackend(BTreeMap<String, Figures>);

#[derive(Debug, Default)]
pub(crate) struct Figures {
    durations: DurationHistogram,
    sum_ms: u64,
    measured: u64,
    cpu_ms: u64,
    peak_bytes: u64,
}

impl PerBackend {
    /// Adds `n` durations of `bucket` (summing to `sum_ms`) to `isolation`'s figures.
    pub(crate) fn add(&mut self, isolation: String, bucket: i64, n: i64, sum_ms: i64) {
        let entry = self.0.entry(isolation).or_default();
        entry.durations.add(bucket, n.max(0) as u64);
        entry.sum_ms += sum_ms.max(0) as u64;
    }

    /// Adds the usage of `n` measured runs of `isolation`.
    pub(crate) fn add_usage(&mut self, isolation: String, n: i64, cpu_ms: i64, peak_bytes: i64) {
        let entry = self.0.entry(isolation).or_default();
        entry.measured += n.max(0) as u64;
        entry.cpu_ms += cpu_ms.max(0) as u64;
        entry.peak_bytes += peak_bytes.max(0) as u64;
    }
}

/// The SQL that adds one run's usage to its tenant's totals (both stores' placeholders are
/// numbered: `$1`/`?1` tenant, 2 isolation, 3 CPU ms, 4 peak bytes).
pub(crate) fn usage_upsert(placeholder: impl Fn(usize) -> String) -> String {
    let p = |n| placeholder(n);
    format!(
        "INSERT INTO usage_totals (tenant, isolation, n, cpu_ms, peak_bytes) VALUES ({}, {}, 1, {}, {})
         ON CONFLICT (tenant, isolation) DO UPDATE SET n = usage_totals.n + 1,
             cpu_ms = usage_totals.cpu_ms + excluded.cpu_ms,
             peak_bytes = usage_totals.peak_bytes + excluded.peak_bytes",
        p(1),
        p(2),
        p(3),
        p(4)
    )
}

fn average(sum: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        ((sum as f64 / n as f64) * 100.0).round() / 100.0
    }
}

/// `/v1/stats` from (isolation, status, count) rows and per-backend durations.
pub(crate) fn assemble(counts: Vec<(String, String, i64)>, per_backend: PerBackend) -> Stats {
    let mut stats = Stats::default();
    for (isolation, status, n) in counts {
        let n = n.max(0) as u64;
        stats.total += n;
        *stats.by_status.entry(status).or_default() += n;
        *stats.by_isolation.entry(isolation).or_default() += n;
    }
    for status in WorkloadStatus::ALL {
        stats
            .by_status
            .entry(status.as_str().to_owned())
            .or_default();
    }
    let (mut all_n, mut all_sum) = (0u64, 0u64);
    for (isolation, figures) in per_backend.0 {
        let (hist, sum) = (&figures.durations, figures.sum_ms);
        let n = hist.count();
        all_n += n;
        all_sum += sum;
        let measured = figures.measured;
        stats.backends.insert(
            isolation,
            BackendStats {
                finished: n,
                avg_duration_ms: average(sum, n),
                p50_duration_ms: hist.quantile(0.50),
                p95_duration_ms: hist.quantile(0.95),
                measured_runs: measured,
                avg_cpu_time_ms: (measured > 0).then(|| average(figures.cpu_ms, measured)),
                avg_peak_memory_bytes: (measured > 0)
                    .then(|| average(figures.peak_bytes, measured)),
            },
        );
    }
    stats.avg_duration_ms = average(all_sum, all_n);
    stats
}

/// The `WHERE` clause of a list query with only the filters that are set (so the planner
/// can seek the index that fits: a clause with `(? IS NULL OR …)` for every filter makes
/// both SQLite and PostgreSQL scan), and the text values of its placeholders in order.
/// `placeholder(n)` writes the n-th (from 1) in the store's syntax.
pub(crate) fn list_filter(
    filter: &vulcan_domain::ListFilter,
    placeholder: impl Fn(usize) -> String,
) -> (String, Vec<String>) {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    let conditions = [
        ("status =", filter.status.map(|s| s.as_str().to_owned())),
        (
            "isolation =",
            filter.isolation.map(|i| i.as_str().to_owned()),
        ),
        ("tenant =", filter.tenant.clone()),
        ("function =", filter.function.clone()),
        ("trigger_id =", filter.schedule.clone()),
        ("id <", filter.after.clone()),
    ];
    for (column, value) in conditions {
        if let Some(value) = value {
            values.push(value);
            clauses.push(format!("{column} {}", placeholder(values.len())));
        }
    }
    let clause = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (clause, values)
}

/// The smallest workload id (a ULID, time-ordered) created at or after `since`: the lower
/// bound of a range read by creation time on the primary key.
pub(crate) fn first_id_since(since: time::OffsetDateTime) -> String {
    let ms = (since.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
    ulid::Ulid::from_parts(ms, 0).to_string()
}

/// The query counting workloads created per minute from an id on (`$1`/`?1`), of one
/// tenant (`$2`/`?2`) or all.
pub(crate) fn per_minute_sql(placeholder: impl Fn(usize) -> String) -> String {
    let (since, tenant) = (placeholder(1), placeholder(2));
    format!(
        "SELECT created_at / 60000 AS minute, COUNT(*) FROM workloads
         WHERE id >= {since} AND ({tenant} IS NULL OR tenant = {tenant})
         GROUP BY minute"
    )
}

#[cfg(test)]
mod per_minute_tests {
    use super::*;

    #[test]
    fn the_lower_bound_sorts_between_ids_of_before_and_after() {
        let at = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let ms = 1_800_000_000_000u64;
        let before = ulid::Ulid::from_parts(ms - 1, u128::MAX).to_string();
        let after = ulid::Ulid::from_parts(ms, 1).to_string();
        let bound = first_id_since(at);
        assert!(before < bound, "{before} < {bound}");
        assert!(bound < after, "{bound} < {after}");
    }
}
