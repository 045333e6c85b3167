//! Aggregate figures over all workloads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Duration figures of the finished workloads of one backend.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendStats {
    pub finished: u64,
    pub avg_duration_ms: f64,
    pub p50_duration_ms: f64,
    pub p95_duration_ms: f64,
    /// Runs whose usage was measured, and their averages.
    #[serde(default)]
    pub measured_runs: u64,
    #[serde(default)]
    pub avg_cpu_time_ms: Option<f64>,
    #[serde(default)]
    pub avg_peak_memory_bytes: Option<f64>,
}

/// `GET /v1/stats`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub total: u64,
    pub by_status: BTreeMap<String, u64>,
    pub by_isolation: BTreeMap<String, u64>,
    pub avg_duration_ms: f64,
    pub backends: BTreeMap<String, BackendStats>,
}

/// Workloads created in one minute.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinuteCount {
    /// The minute's start.
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    pub created: u64,
}

/// `GET /v1/stats/timeline`: workloads created per minute, oldest first, every minute of
/// the window present (zero where none were).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub minutes: Vec<MinuteCount>,
}

impl Timeline {
    /// The `minutes` whole minutes up to and including the one `now` is in, from counts
    /// keyed by minute (milliseconds since the epoch, divided by 60,000).
    pub fn assemble(
        now: time::OffsetDateTime,
        minutes: u32,
        counts: &BTreeMap<i64, u64>,
    ) -> Timeline {
        let current = now.unix_timestamp().div_euclid(60);
        let minutes = (0..i64::from(minutes))
            .rev()
            .map(|back| {
                let minute = current - back;
                MinuteCount {
                    at: time::OffsetDateTime::from_unix_timestamp(minute * 60)
                        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                    created: counts.get(&minute).copied().unwrap_or(0),
                }
            })
            .collect();
        Timeline { minutes }
    }
}

#[cfg(test)]
mod timeline_tests {
    use super::*;

    #[test]
    fn every_minute_of_the_window_is_present_oldest_first() {
        let now = time::OffsetDateTime::from_unix_timestamp(10 * 60 + 30).unwrap();
        let counts = BTreeMap::from([(8, 3), (10, 1), (2, 99)]);
        let t = Timeline::assemble(now, 3, &counts);
        let got: Vec<(i64, u64)> = t
            .minutes
            .iter()
            .map(|m| (m.at.unix_timestamp() / 60, m.created))
            .collect();
        assert_eq!(got, vec![(8, 3), (9, 0), (10, 1)]);
    }
}
