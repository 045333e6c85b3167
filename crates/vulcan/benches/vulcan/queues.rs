//! queues: messages per second end to end into a warm node function fed by a queue
//! (batch 1 and batch 10; from the first send to the queue drained, every message
//! acknowledged), on one SQLite node and one PostgreSQL node; the time from a send to the
//! start of the invocation it feeds, one message at a time on an idle node; and async
//! follow-ups back to back: a failed attempt's end to its retry, an end to its callback.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::OffsetDateTime;
use vulcan_store::testing::PgServer;

use super::cluster::pg_node_env;
use super::common::{eventually, Server};
use super::{percentile, Figures};

/// The tenant's limits out of the way: the bench measures the queue, not the quota.
const UNLIMITED: [(&str, &str); 2] = [
    ("VULCAN_TENANT_PER_MINUTE", "1000000"),
    ("VULCAN_TENANT_MAX_CONCURRENT", "1000"),
];

/// A queue of its own and a function it feeds with batches of `batch`, warmed up.
fn feed(server: &Server, name: &str, batch: u32) {
    let (status, q) = server.post(
        "/v1/queues",
        &json!({"name": name, "visibility_timeout_s": 60}),
    );
    assert_eq!(status, 201, "{q}");
    let (status, f) = server.put(
        &format!("/v1/functions/{name}"),
        &json!({
            "runtime": "node",
            "code": "export default (i) => ({n: i.messages ? i.messages.length : 0})",
            "max_instances": 8,
            "triggers": [{"queue": name, "batch_size": batch, "max_concurrency": 8, "max_wait_ms": 0}],
        }),
    );
    assert_eq!(status, 201, "{f}");
    for _ in 0..20 {
        let (status, w) = server.post(&format!("/v1/functions/{name}/invoke"), &json!({}));
        assert_eq!(status, 200, "{w}");
    }
    // The consumer runs: a first message goes through.
    let (status, sent) = server.post(
        &format!("/v1/queues/{name}/messages"),
        &json!({"body": "probe"}),
    );
    assert_eq!(status, 201, "{sent}");
    eventually(Duration::from_secs(30), "the consumer to run", || {
        drained(server, name, 1).then_some(())
    });
}

fn drained(server: &Server, name: &str, sent: u64) -> bool {
    let (_, q) = server.get(&format!("/v1/queues/{name}"));
    q["depth"] == 0
        && q["in_flight"] == 0
        && q["delayed"] == 0
        && q["deliveries"].as_u64() >= Some(sent)
}

/// Messages per second from the first send to the queue drained.
fn throughput(server: &Server, name: &str, batch: u32, messages: usize) -> f64 {
    feed(server, name, batch);
    let started = Instant::now();
    for chunk in (0..messages).collect::<Vec<_>>().chunks(100) {
        let body: Vec<Value> = chunk.iter().map(|n| json!({"body": {"n": n}})).collect();
        let (status, sent) = server.post(
            &format!("/v1/queues/{name}/messages"),
            &json!({"messages": body}),
        );
        assert_eq!(status, 201, "{sent}");
    }
    // The probe's delivery came before. Looked at every 100 ms: the counts are a scan of
    // the queue, which must not be what the figure measures.
    let deadline = Instant::now() + Duration::from_secs(600);
    while !drained(server, name, messages as u64 + 1) {
        assert!(Instant::now() < deadline, "the queue never drained");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    let (_, q) = server.get(&format!("/v1/queues/{name}"));
    assert_eq!(q["redeliveries"], 0, "nothing failed: {q}");
    rate
}

/// Send → the invocation's start, one message at a time with a pause between.
fn latency(server: &Server, name: &str, n: usize) -> Figures {
    feed(server, name, 1);
    let mut samples = Vec::with_capacity(n);
    let began = Instant::now();
    for i in 0..n {
        std::thread::sleep(Duration::from_millis(200));
        let sent_at = OffsetDateTime::now_utc();
        let (status, s) = server.post(
            &format!("/v1/queues/{name}/messages"),
            &json!({"body": {"i": i}}),
        );
        assert_eq!(status, 201, "{s}");
        let started = eventually(Duration::from_secs(30), "the invocation", || {
            let (_, page) = server.get(&format!("/v1/workloads?function={name}&limit=1"));
            let w = page["workloads"].get(0)?.clone();
            (w["trigger"]["kind"] == "queue" && w["status"] == "completed" && {
                let started = OffsetDateTime::parse(
                    w["started_at"].as_str()?,
                    &time::format_description::well_known::Rfc3339,
                )
                .ok()?;
                started >= sent_at - time::Duration::milliseconds(5)
            })
            .then_some(w)
        });
        let at = OffsetDateTime::parse(
            started["started_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        samples.push(Duration::from_secs_f64(
            (at - sent_at).as_seconds_f64().max(0.0),
        ));
    }
    Figures {
        name: format!("queue → invocation start ({name})"),
        samples,
        wall: began.elapsed(),
        cpu: None,
    }
}

fn at(w: &Value, field: &str) -> OffsetDateTime {
    OffsetDateTime::parse(
        w[field].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

fn since(from: OffsetDateTime, to: OffsetDateTime) -> Duration {
    Duration::from_secs_f64((to - from).as_seconds_f64().max(0.0))
}

/// Async follow-ups, back to back: a failed attempt's end → its retry's admission
/// (`backoff_s` 0), and a workload's end → its callback's arrival at a loopback receiver.
fn followups(label: &str, server: &Server, n: usize) {
    let receiver = super::common::receiver::Receiver::start(&[]);
    let (status, s) = server.put(
        "/v1/secrets/CALLBACK_SIGNING_KEY",
        &json!({"value": "bench-signing-key"}),
    );
    assert_eq!(status, 200, "{s}");
    let mut retries = Vec::with_capacity(n);
    let mut callbacks = Vec::with_capacity(n);
    for i in 0..n {
        let (status, first) = server.post(
            "/v1/workloads/async",
            &json!({"runtime": "node", "code": "throw new Error('again')",
                    "retry": {"max_attempts": 2, "backoff_s": 0},
                    "callback_url": receiver.url(&format!("/cb{i}"))}),
        );
        assert_eq!(status, 202, "{first}");
        let id = first["id"].as_str().unwrap().to_owned();
        let call = eventually(Duration::from_secs(60), "the callback", || {
            receiver.at(&format!("/cb{i}")).into_iter().next()
        });
        let last: Value = serde_json::from_str(&call.body).unwrap();
        assert_eq!(last["trigger"]["id"], id.as_str(), "{last}");
        let (_, first) = server.get(&format!("/v1/workloads/{id}"));
        retries.push(since(at(&first, "finished_at"), at(&last, "created_at")));
        callbacks.push(since(at(&last, "finished_at"), call.wall));
    }
    for (what, mut samples) in [
        ("failed attempt's end → its retry admitted", retries),
        ("end → callback received", callbacks),
    ] {
        samples.sort();
        println!(
            "{label}: {what:<42} n={:<4} p50={:>7.2} ms  p95={:>7.2} ms",
            samples.len(),
            percentile(&samples, 0.5),
            percentile(&samples, 0.95)
        );
    }
}

fn section(label: &str, server: &Server, messages: usize, n: usize) {
    for batch in [1u32, 10] {
        let rate = throughput(server, &format!("bench-b{batch}"), batch, messages);
        println!("{label}: {messages} messages into a warm node function, batch {batch}: {rate:.0} messages/s end to end");
    }
    let mut figures = latency(server, "bench-latency", n);
    figures.samples.sort();
    println!(
        "{label}: send → invocation start, idle node   n={:<4} p50={:>7.2} ms  p95={:>7.2} ms",
        figures.samples.len(),
        percentile(&figures.samples, 0.5),
        percentile(&figures.samples, 0.95)
    );
    followups(label, server, n);
}

pub fn run(messages: usize, n: usize) {
    let sqlite = Server::start(&UNLIMITED);
    section("queues on SQLite", &sqlite, messages, n);
    drop(sqlite);
    let pg = PgServer::start().expect("a PostgreSQL server");
    let url = pg.database().unwrap();
    let mut env = pg_node_env(&url, "a");
    env.extend_from_slice(&UNLIMITED);
    let node = Server::start(&env);
    section("queues on PostgreSQL", &node, messages, n);
}
