//! Functions fed by queues end to end: real Deno isolates consuming a real SQLite queue
//! (retries, the dead-letter queue), and two nodes on a real PostgreSQL server, one killed
//! while it holds a batch.

mod common;

use std::time::Duration;

use common::eventually;
use common::queues::{invocations, made, pg_node, receive, send};
use common::Server;
use serde_json::{json, Value};
use vulcan_store::testing::PgServer;

/// Messages the first test sends.
const MESSAGES: i64 = 10_000;

#[test]
fn a_function_fed_by_a_queue_processes_every_message_once_retries_failures_and_dead_letters_poison()
{
    // Over a thousand invocations: more than a minute's default quota (600) would let
    // through at once (the consumer would wait for room, not lose a receive, but slowly).
    let server = Server::start(&[("VULCAN_TENANT_PER_MINUTE", "100000")]);
    made(&server, json!({"name": "dead"}));
    made(
        &server,
        json!({"name": "work", "visibility_timeout_s": 30, "max_receives": 3, "dead_letter_queue": "dead"}),
    );
    // Every tenth message fails its first time; the poison one (-1) always does.
    let code = "export default (input) => {
        const failed = [], done = [];
        for (const m of input.messages) {
            if (m.body.n === -1 || (m.body.n % 10 === 0 && m.receive_count === 1)) failed.push(m.id);
            else done.push(m.body.n);
        }
        return { failed, done };
    }";
    let trigger =
        json!({"queue": "work", "batch_size": 10, "max_concurrency": 4, "max_wait_ms": 50});
    let (status, refused) = server.put(
        "/v1/functions/consumer",
        &json!({"runtime": "node", "code": code, "triggers": [{"queue": "nope"}]}),
    );
    assert_eq!(
        status, 400,
        "a trigger of a queue that is not there: {refused}"
    );
    let (status, deployed) = server.put(
        "/v1/functions/consumer",
        &json!({"runtime": "node", "code": code, "triggers": [trigger]}),
    );
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(deployed["triggers"][0]["batch_size"], 10, "{deployed}");

    let mut messages: Vec<Value> = (1..=MESSAGES).map(|n| json!({"body": {"n": n}})).collect();
    messages.push(json!({"body": {"n": -1}}));
    for batch in messages.chunks(100) {
        send(&server, "work", json!({ "messages": batch }));
    }

    let (work, dead) = eventually(Duration::from_secs(600), "the queue drained", || {
        let (_, work) = server.get("/v1/queues/work");
        let (_, dead) = server.get("/v1/queues/dead");
        (work["depth"] == 0 && work["in_flight"] == 0 && work["delayed"] == 0 && dead["depth"] == 1)
            .then_some((work, dead))
    });
    assert_eq!(work["dead_lettered"], 1, "{work}");
    // A tenth failed once, the poison message twice before its third and last receive.
    assert_eq!(work["redeliveries"], MESSAGES / 10 + 2, "{work}");
    assert_eq!(dead["depth"], 1, "{dead}");

    // Counted inside the function's own outputs: each message done exactly once.
    let runs = invocations(&server, "consumer");
    let mut done: Vec<i64> = Vec::new();
    let mut failed = 0;
    for run in &runs {
        assert_eq!(run["status"], "completed", "{run}");
        assert_eq!(
            run["trigger"],
            json!({"kind": "queue", "id": "work"}),
            "{run}"
        );
        let output: Value = serde_json::from_str(run["output"].as_str().unwrap()).unwrap();
        done.extend(
            output["done"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_i64().unwrap()),
        );
        failed += output["failed"].as_array().unwrap().len();
    }
    done.sort_unstable();
    assert_eq!(
        done,
        (1..=MESSAGES).collect::<Vec<_>>(),
        "each message processed once"
    );
    assert_eq!(
        failed as i64,
        MESSAGES / 10 + 3,
        "a tenth once, the poison message three times"
    );
    assert!(
        runs.len() as i64 > MESSAGES / 10,
        "batches of up to ten: {} runs",
        runs.len()
    );

    let buried = receive(&server, "dead", 1, 0);
    assert_eq!(buried[0]["body"], json!({"n": -1}));
    assert!(
        buried[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("reported it failed"),
        "{}",
        buried[0]
    );
    // Deleted, the function stops consuming: a message sent now stays.
    assert_eq!(server.delete("/v1/functions/consumer").0, 204);
    std::thread::sleep(Duration::from_secs(3));
    send(&server, "work", json!({"body": {"n": MESSAGES + 1}}));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(server.get("/v1/queues/work").1["depth"], 1);
}

#[test]
fn a_consumer_over_its_tenants_quota_waits_for_room_and_spends_no_receive() {
    // One workload at a time for the tenant, four batches at once wanted: three of every
    // four invocations are refused at first. With one receive allowed, a refusal that
    // spent it would dead-letter the message.
    let server = Server::start(&[("VULCAN_TENANT_MAX_CONCURRENT", "1")]);
    made(&server, json!({"name": "dead"}));
    made(
        &server,
        json!({"name": "tight", "visibility_timeout_s": 60, "max_receives": 1, "dead_letter_queue": "dead"}),
    );
    let (status, f) = server.put(
        "/v1/functions/slow",
        &json!({
            "runtime": "node",
            "code": "export default async (i) => { await new Promise((r) => setTimeout(r, 300)); return { done: i.messages.map((m) => m.body) }; }",
            "triggers": [{"queue": "tight", "batch_size": 1, "max_concurrency": 4}],
        }),
    );
    assert_eq!(status, 201, "{f}");
    let messages: Vec<Value> = (1..=12).map(|n| json!({ "body": n })).collect();
    send(&server, "tight", json!({ "messages": messages }));
    let queue = eventually(Duration::from_secs(120), "the queue drained", || {
        let (_, q) = server.get("/v1/queues/tight");
        (q["depth"] == 0 && q["in_flight"] == 0 && q["delayed"] == 0).then_some(q)
    });
    assert_eq!(queue["dead_lettered"], 0, "{queue}");
    assert_eq!(queue["redeliveries"], 0, "{queue}");
    let mut done: Vec<i64> = invocations(&server, "slow")
        .iter()
        .filter(|w| w["status"] == "completed")
        .flat_map(|w| {
            let out: Value = serde_json::from_str(w["output"].as_str().unwrap()).unwrap();
            out["done"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_i64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    done.sort_unstable();
    assert_eq!(done, (1..=12).collect::<Vec<_>>());
}

#[test]
fn a_batch_held_by_a_node_that_dies_is_processed_by_another_after_the_visibility_timeout() {
    let pg = PgServer::start().unwrap();
    let url = pg.database().unwrap();
    let mut a = pg_node(&url, "node-a");
    made(&a, json!({"name": "slow", "visibility_timeout_s": 5}));
    let (status, f) = a.put(
        "/v1/functions/slowfn",
        &json!({
            "runtime": "node",
            "code": "export default async (i) => { await new Promise((r) => setTimeout(r, 3000)); return { got: i.messages.map((m) => [m.body, m.receive_count]) }; }",
            "triggers": [{"queue": "slow"}],
        }),
    );
    assert_eq!(status, 201, "{f}");
    send(&a, "slow", json!({"body": "m"}));
    // Node a runs the batch's invocation, and dies in it.
    eventually(
        Duration::from_secs(30),
        "the invocation running on a",
        || {
            let (_, page) = a.get("/v1/workloads?function=slowfn&limit=1");
            (page["workloads"][0]["status"] == "running").then_some(())
        },
    );
    a.kill9();
    let b = pg_node(&url, "node-b");
    let done = eventually(Duration::from_secs(60), "b to process the batch", || {
        let (_, page) = b.get("/v1/workloads?function=slowfn&limit=10");
        page["workloads"]
            .as_array()?
            .iter()
            .find(|w| w["status"] == "completed" && w["node_id"] == "node-b")
            .cloned()
    });
    let output: Value = serde_json::from_str(done["output"].as_str().unwrap()).unwrap();
    assert_eq!(
        output["got"],
        json!([["m", 2]]),
        "delivered a second time: {done}"
    );
    let queue = eventually(Duration::from_secs(10), "the message acknowledged", || {
        let (_, q) = b.get("/v1/queues/slow");
        (q["depth"] == 0 && q["in_flight"] == 0 && q["delayed"] == 0).then_some(q)
    });
    assert_eq!(queue["redeliveries"], 1, "{queue}");
}

#[test]
fn postgresql_restarted_under_load_loses_nothing_acknowledged_and_acknowledges_nothing_lost() {
    let pg = PgServer::start().unwrap();
    let url = pg.database().unwrap();
    let node = pg_node(&url, "node-a");
    made(&node, json!({"name": "load", "visibility_timeout_s": 20}));
    let (status, f) = node.put(
        "/v1/functions/tally",
        &json!({
            "runtime": "node",
            "code": "export default (i) => ({ done: i.messages.map((m) => m.body.n) })",
            "triggers": [{"queue": "load", "batch_size": 10, "max_concurrency": 2, "max_wait_ms": 20}],
        }),
    );
    assert_eq!(status, 201, "{f}");
    // A producer sends 1,500 messages, ten at a time, each batch again with the same dedup
    // ids until one send of it is acknowledged (201); PostgreSQL restarts midway.
    const N: i64 = 1_500;
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let producer = {
        let (base, acknowledged, refused) =
            (node.base.clone(), acknowledged.clone(), refused.clone());
        std::thread::spawn(move || {
            for first in (1..=N).step_by(10) {
                let batch: Vec<Value> = (first..first + 10)
                    .map(|n| json!({"body": {"n": n}, "dedup_id": format!("m{n}")}))
                    .collect();
                loop {
                    let answer = common::answer_of(
                        ureq::post(&format!("{base}/v1/queues/load/messages"))
                            .send_json(json!({ "messages": batch })),
                    );
                    if answer.0 == 201 {
                        acknowledged.lock().unwrap().extend(first..first + 10);
                        break;
                    }
                    refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        })
    };
    eventually(Duration::from_secs(60), "the load under way", || {
        (acknowledged.lock().unwrap().len() >= 300).then_some(())
    });
    pg.restart().expect("PostgreSQL restarts");
    producer.join().unwrap();
    let queue = eventually(Duration::from_secs(300), "the queue drained", || {
        let (status, q) = node.get("/v1/queues/load");
        (status == 200 && q["depth"] == 0 && q["in_flight"] == 0 && q["delayed"] == 0).then_some(q)
    });
    let sent = acknowledged.lock().unwrap().clone();
    assert_eq!(sent.len() as i64, N, "every batch acknowledged in the end");
    // Counted in the function's own outputs: every acknowledged message processed. One
    // whose batch ran while the database was gone may have run twice (its ack was lost,
    // so it was delivered again): never more.
    let mut seen = std::collections::HashMap::<i64, u32>::new();
    for run in invocations(&node, "tally") {
        if run["status"] != "completed" {
            continue;
        }
        let output: Value = serde_json::from_str(run["output"].as_str().unwrap()).unwrap();
        for n in output["done"].as_array().unwrap() {
            *seen.entry(n.as_i64().unwrap()).or_default() += 1;
        }
    }
    let lost: Vec<_> = sent.iter().filter(|n| !seen.contains_key(n)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but never processed: {lost:?}"
    );
    let unsent: Vec<_> = seen.keys().filter(|n| !sent.contains(n)).collect();
    assert!(unsent.is_empty(), "processed but never sent: {unsent:?}");
    let twice = seen.values().filter(|&&c| c > 1).count();
    assert!(seen.values().all(|&c| c <= 2), "none processed three times");
    assert!(
        queue["redeliveries"].as_u64().unwrap() as usize >= twice,
        "each message processed twice was delivered twice: {queue}"
    );
    eprintln!(
        "{N} messages through a PostgreSQL restart: {} sends refused and retried, {twice} processed twice, {queue}",
        refused.load(std::sync::atomic::Ordering::Relaxed)
    );

    // Async follow-ups ride the restart too: a failed workload's retry and its callback.
    let receiver = common::receiver::Receiver::start(&[]);
    assert_eq!(
        node.put(
            "/v1/secrets/CALLBACK_SIGNING_KEY",
            &json!({"value": "pg-restart-key"})
        )
        .0,
        200
    );
    let id = node.submit(json!({
        "runtime": "node", "code": "throw new Error('once more')",
        "retry": {"max_attempts": 2, "backoff_s": 2},
        "callback_url": receiver.url("/done"),
    }));
    node.wait_status(&id, "failed", Duration::from_secs(30));
    pg.restart().expect("PostgreSQL restarts");
    let call = eventually(Duration::from_secs(60), "the call back", || {
        receiver.at("/done").into_iter().next()
    });
    let last: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(
        last["trigger"],
        json!({"kind": "retry", "id": id}),
        "{last}"
    );
    assert!(call.signed_with("pg-restart-key"));
}
