//! Crash and restart: SIGKILL the server while workloads run, start it again.

mod common;

use std::time::Duration;

use common::{send_sigterm, sum_workload, Server};
use serde_json::json;

#[test]
fn after_a_sigkill_every_workload_ends_terminal_or_is_rerun_and_the_database_is_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let env = [("VULCAN_ISOLATE_CONCURRENCY", "1")];
    let mut server = Server::start_in(tmp.path(), &env);
    let running = server.submit(json!({"runtime": "node", "resources": {"timeout_s": 120},
        "code": "console.log('started'); await new Promise(r => setTimeout(r, 60000));"}));
    let pending: Vec<String> = (0..3).map(|i| server.submit(sum_workload(i, 1))).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // Running, and its first line persisted (lines are written in batches, asynchronously).
    while server
        .get(&format!("/v1/workloads/{running}/logs/history"))
        .1["lines"][0]["line"]
        != "started"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the first workload never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        server.get(&format!("/v1/workloads/{running}")).1["status"],
        "running"
    );
    for id in &pending {
        assert_eq!(
            server.get(&format!("/v1/workloads/{id}")).1["status"],
            "pending"
        );
    }
    server.kill9();

    let server = Server::start_in(tmp.path(), &env);
    let crashed = server.wait_terminal(&running, Duration::from_secs(10));
    assert_eq!(crashed["status"], "failed");
    assert!(
        crashed["error"]
            .as_str()
            .unwrap()
            .contains("server stopped while this workload was running"),
        "{crashed}"
    );
    // How long it ran is unknown: no duration, rather than a 0 that would drag the
    // backend's figures down.
    assert!(crashed["duration_ms"].is_null(), "{crashed}");
    for (i, id) in pending.iter().enumerate() {
        let w = server.wait_terminal(id, Duration::from_secs(30));
        assert_eq!(
            w["status"], "completed",
            "never-started workloads are re-run: {w}"
        );
        assert_eq!(w["output"], format!("{{\"sum\":{}}}", i + 1));
    }
    let (_, history) = server.get(&format!("/v1/workloads/{running}/logs/history"));
    assert_eq!(
        history["lines"][0]["line"], "started",
        "lines persisted before the crash survive"
    );
    let (_, stats) = server.get("/v1/stats");
    assert_eq!(stats["total"], 4);
    assert_eq!(
        stats["backends"]["isolate"]["finished"], 3,
        "only the runs that were timed count in the figures: {stats}"
    );
    assert_eq!(
        (
            stats["by_status"]["pending"].as_u64(),
            stats["by_status"]["running"].as_u64()
        ),
        (Some(0), Some(0))
    );

    let db = rusqlite::Connection::open(tmp.path().join("vulcan.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn a_graceful_shutdown_leaves_waiting_workloads_pending_for_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let env = [
        ("VULCAN_ISOLATE_CONCURRENCY", "1"),
        ("VULCAN_SHUTDOWN_GRACE_S", "1"),
    ];
    let mut server = Server::start_in(tmp.path(), &env);
    let busy = server.submit(
        json!({"runtime": "node", "code": "while (true) {}", "resources": {"timeout_s": 60}}),
    );
    let waiting = server.submit(sum_workload(2, 3));
    server.wait_status(&busy, "running", Duration::from_secs(10));
    // SIGTERM, as a service manager would send.
    send_sigterm(server.child.id());
    let status = server.child.wait().unwrap();
    assert!(
        status.success(),
        "vulcan exits cleanly on SIGTERM: {status}"
    );

    let server = Server::start_in(tmp.path(), &env);
    let stopped = server.wait_terminal(&busy, Duration::from_secs(5));
    assert_eq!(
        stopped["error"],
        "the server shut down before the workload finished"
    );
    let rerun = server.wait_terminal(&waiting, Duration::from_secs(30));
    assert_eq!(
        (rerun["status"].as_str(), rerun["output"].as_str()),
        (Some("completed"), Some("{\"sum\":5}"))
    );
}
