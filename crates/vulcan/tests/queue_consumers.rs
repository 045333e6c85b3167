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

#[test]
fn a_function_fed_by_a_queue_processes_every_message_once_retries_failures_and_dead_letters_poison()
{
    let server = Server::start(&[]);
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
        json!({"queue": "work", "batch_size": 10, "max_concurrency": 2, "max_wait_ms": 50});
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

    let mut messages: Vec<Value> = (1..=100).map(|n| json!({"body": {"n": n}})).collect();
    messages.push(json!({"body": {"n": -1}}));
    send(&server, "work", json!({"messages": messages[..50]}));
    send(&server, "work", json!({"messages": messages[50..]}));

    let (work, dead) = eventually(Duration::from_secs(90), "the queue drained", || {
        let (_, work) = server.get("/v1/queues/work");
        let (_, dead) = server.get("/v1/queues/dead");
        (work["depth"] == 0 && work["in_flight"] == 0 && work["delayed"] == 0 && dead["depth"] == 1)
            .then_some((work, dead))
    });
    assert_eq!(work["dead_lettered"], 1, "{work}");
    // Ten failed once, the poison message twice before its third and last receive.
    assert_eq!(work["redeliveries"], 12, "{work}");
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
        (1..=100).collect::<Vec<_>>(),
        "each message processed once"
    );
    assert_eq!(failed, 13, "ten once, the poison message three times");
    assert!(
        runs.len() >= 11,
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
    send(&server, "work", json!({"body": {"n": 101}}));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(server.get("/v1/queues/work").1["depth"], 1);
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
