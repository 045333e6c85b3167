//! Schedules under one tenant's flood: 5,000 one-second schedules of tenant `a` (its
//! quota refuses nearly all their runs, so each tick costs the scheduler a refusal and a
//! skip, the cheapest a tick can be) beside one one-second schedule of tenant `b`. Figures:
//! how late each of `b`'s runs was created after its tick (p50, p95, max), how many of
//! its ticks fired, and how many ticks of `a` the node got through per second.

use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use crate::common::Server;

fn created_at(w: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(
        w["created_at"].as_str().unwrap_or_default(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn run(flood: usize, seconds: u64) {
    let server = Server::start(&[("VULCAN_TENANT_MAX_SCHEDULES", "100000")]);
    let b = crate::common::schedules_beside_a_flood(&server, flood, "* * * * * *");
    let skipped_before: u64 = skipped(&server, "a");
    std::thread::sleep(Duration::from_secs(seconds));
    let skipped_after: u64 = skipped(&server, "a");
    let (_, page) = server.get(&format!("/v1/workloads?schedule={b}&limit=100"));
    let mut late: Vec<Duration> = page["workloads"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .map(|w| {
                    let at = created_at(w);
                    let tick =
                        OffsetDateTime::from_unix_timestamp(at.unix_timestamp()).unwrap_or(at);
                    Duration::try_from(at - tick).unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    late.sort();
    if late.is_empty() {
        println!("schedules: tenant b's schedule never fired in {seconds} s beside {flood} of a's");
        return;
    }
    println!(
        "{:<46} n={:<6} p50={:>8.2} ms  p95={:>8.2} ms  max={:>8.2} ms",
        format!("schedules: b's tick late, beside {flood} of a's"),
        late.len(),
        crate::percentile(&late, 0.50),
        crate::percentile(&late, 0.95),
        late.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
    println!(
        "{:<46} {} of ~{seconds} of b's ticks fired; a's ticks handled: {:.0} /s",
        "schedules: fairness",
        late.len(),
        (skipped_after.saturating_sub(skipped_before)) as f64 / seconds as f64
    );
}

/// Ticks of `tenant`'s schedules skipped so far (a's are refused by its quota).
fn skipped(server: &Server, tenant: &str) -> u64 {
    let (_, all) = server.get("/v1/schedules");
    all.as_array()
        .map(|list| {
            list.iter()
                .filter(|s| s["tenant"] == tenant)
                .map(|s| s["skipped_ticks"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}
