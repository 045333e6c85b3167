//! Queues end to end: the real binary on a real SQLite file (and two nodes on a real
//! PostgreSQL server): send, receive with a long poll, acknowledge, give back, dead-letter,
//! the CLI, the metrics, two tenants, and bad input.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::queues::{made, pg_node, receive, send};
use common::{eventually, Server};
use serde_json::{json, Value};
use vulcan_store::testing::PgServer;

#[test]
fn messages_are_delivered_once_at_a_time_until_acked_and_dead_lettered_after_max_receives() {
    let server = Server::start(&[]);
    made(&server, json!({"name": "dead"}));
    let jobs = made(
        &server,
        json!({"name": "jobs", "visibility_timeout_s": 1, "max_receives": 2, "dead_letter_queue": "dead"}),
    );
    assert_eq!(jobs["depth"], 0);
    assert_eq!(jobs["retention_s"], 345600, "the default retention: {jobs}");

    let sent = send(
        &server,
        "jobs",
        json!({"messages": [{"body": {"n": 1}}, {"body": {"n": 2}}, {"body": "three"}]}),
    );
    assert_eq!(sent["messages"].as_array().unwrap().len(), 3);
    let first = receive(&server, "jobs", 2, 0);
    assert_eq!(
        first.iter().map(|m| m["body"].clone()).collect::<Vec<_>>(),
        [json!({"n": 1}), json!({"n": 2})],
        "oldest first"
    );
    assert_eq!(first[0]["receive_count"], 1);
    let third = receive(&server, "jobs", 10, 0);
    assert_eq!(third.len(), 1, "the first two are in flight");
    let (status, counts) = server.get("/v1/queues/jobs");
    assert_eq!(status, 200, "{counts}");
    assert_eq!(
        (counts["depth"].clone(), counts["in_flight"].clone()),
        (json!(0), json!(3))
    );

    // Acknowledged: gone; given back: delivered again with its error.
    let (status, acked) = server.post(
        "/v1/queues/jobs/ack",
        &json!({"receipts": [first[0]["receipt"], "rcptnotone"]}),
    );
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["acked"], json!([first[0]["receipt"]]));
    assert_eq!(acked["stale"], json!(["rcptnotone"]));
    let (status, back) = server.post(
        "/v1/queues/jobs/nack",
        &json!({"receipt": third[0]["receipt"], "error": "no luck"}),
    );
    assert_eq!(status, 200, "{back}");
    let (status, stale) = server.post(
        "/v1/queues/jobs/nack",
        &json!({"receipt": third[0]["receipt"]}),
    );
    assert_eq!(status, 409, "a spent receipt: {stale}");
    let again = receive(&server, "jobs", 10, 0);
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0]["body"].clone(), again[0]["last_error"].clone()),
        (json!("three"), json!("no luck"))
    );
    assert_eq!(again[0]["receive_count"], 2);

    // Not acknowledged within its visibility timeout: delivered again.
    let redelivered = eventually(Duration::from_secs(5), "a redelivery", || {
        let got = receive(&server, "jobs", 10, 1);
        got.into_iter().find(|m| m["body"] == json!({"n": 2}))
    });
    assert_eq!(redelivered["receive_count"], 2);
    // Received twice (max_receives) and never acknowledged: both move to "dead".
    let dead = eventually(Duration::from_secs(6), "the dead-letter queue", || {
        let _ = receive(&server, "jobs", 10, 0);
        let (_, q) = server.get("/v1/queues/dead");
        (q["depth"] == 2).then_some(q)
    });
    assert_eq!(dead["depth"], 2, "{dead}");
    let (_, jobs) = server.get("/v1/queues/jobs");
    assert_eq!(jobs["dead_lettered"], 2, "{jobs}");
    assert!(jobs["redeliveries"].as_u64().unwrap() >= 2, "{jobs}");
    let buried = receive(&server, "dead", 10, 0);
    let three = buried
        .iter()
        .find(|m| m["body"] == "three")
        .expect("three is there");
    assert_eq!(three["last_error"], "no luck", "its last error kept");

    // The metrics carry each queue's counts.
    let metrics = common::metrics(&server);
    assert!(
        metrics.contains("vulcan_queue_dead_lettered{tenant=\"default\",queue=\"jobs\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("vulcan_queue_depth{"), "{metrics}");

    // The audit log names what was done.
    let (_, audit) = server.get("/v1/audit?limit=100");
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .or(audit.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "queue.create",
        "queue.send",
        "queue.receive",
        "queue.ack",
        "queue.nack",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }

    // Purged, then deleted once no queue names it.
    assert_eq!(
        server.post("/v1/queues/dead/purge", &json!({})).1["purged"],
        2
    );
    let (status, refused) = server.delete("/v1/queues/dead");
    assert_eq!(status, 409, "still jobs' dead-letter queue: {refused}");
    assert_eq!(server.delete("/v1/queues/jobs").0, 200);
    assert_eq!(server.delete("/v1/queues/dead").0, 200);
    assert_eq!(server.get("/v1/queues").1, json!([]));
}

#[test]
fn a_waiting_receive_gets_a_message_as_soon_as_it_is_sent() {
    let server = Server::start(&[]);
    made(&server, json!({"name": "inbox"}));
    // Nothing there: the wait ends empty, after about as long as asked.
    let started = Instant::now();
    assert!(receive(&server, "inbox", 1, 1).is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    std::thread::scope(|s| {
        let waiting = s.spawn(|| {
            let started = Instant::now();
            (receive(&server, "inbox", 1, 10), started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(500));
        send(&server, "inbox", json!({"body": "wake up"}));
        let (got, after) = waiting.join().unwrap();
        assert_eq!(got[0]["body"], "wake up");
        assert!(
            after < Duration::from_secs(3),
            "woken by the send, not the end of the wait: {after:?}"
        );
    });
    // A delayed message is not there before its delay; a dedup id stores one.
    send(&server, "inbox", json!({"body": "later", "delay_s": 2}));
    assert!(receive(&server, "inbox", 1, 0).is_empty());
    let later = eventually(Duration::from_secs(5), "the delayed message", || {
        receive(&server, "inbox", 1, 1).pop()
    });
    assert_eq!(later["body"], "later");
    let a = send(&server, "inbox", json!({"body": 1, "dedup_id": "order-7"}));
    let b = send(&server, "inbox", json!({"body": 1, "dedup_id": "order-7"}));
    assert_eq!(a["messages"][0]["id"], b["messages"][0]["id"]);
    assert_eq!(b["messages"][0]["duplicate"], true);
    assert_eq!(server.get("/v1/queues/inbox").1["depth"], 1);
}

#[test]
fn bad_queue_requests_get_clear_answers_and_change_nothing() {
    let server = Server::start(&[]);
    made(&server, json!({"name": "small", "max_message_bytes": 64}));
    made(&server, json!({"name": "a"}));
    made(&server, json!({"name": "b", "dead_letter_queue": "a"}));
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "POST",
            "/v1/queues/nope/messages",
            json!({"body": 1}),
            404,
            "not found",
        ),
        (
            "POST",
            "/v1/queues/nope/receive",
            json!({}),
            404,
            "not found",
        ),
        (
            "POST",
            "/v1/queues/small/messages",
            json!({"body": "x".repeat(100)}),
            413,
            "64",
        ),
        (
            "POST",
            "/v1/queues/small/messages",
            json!({"messages": (0..101).map(|i| json!({"body": i})).collect::<Vec<_>>()}),
            400,
            "100",
        ),
        ("POST", "/v1/queues/small/messages", json!({}), 400, "body"),
        (
            "POST",
            "/v1/queues/small/messages",
            json!({"body": 1, "delay_s": 901}),
            400,
            "delay_s",
        ),
        (
            "POST",
            "/v1/queues/small/receive",
            json!({"wait_s": 21}),
            400,
            "wait_s",
        ),
        (
            "POST",
            "/v1/queues/small/receive",
            json!({"max": 0}),
            400,
            "1 to 100",
        ),
        (
            "PUT",
            "/v1/queues/a",
            json!({"dead_letter_queue": "b"}),
            409,
            "cycle",
        ),
        (
            "PUT",
            "/v1/queues/a",
            json!({"dead_letter_queue": "a"}),
            400,
            "its own",
        ),
        (
            "PUT",
            "/v1/queues/a",
            json!({"dead_letter_queue": "nope"}),
            404,
            "dead-letter",
        ),
        ("POST", "/v1/queues", json!({"name": "a"}), 409, "already"),
        (
            "POST",
            "/v1/queues",
            json!({"name": "Bad Name"}),
            400,
            "queue name",
        ),
        (
            "POST",
            "/v1/queues",
            json!({"name": "c", "visibility_timeout_s": 0}),
            400,
            "visibility_timeout_s",
        ),
        (
            "POST",
            "/v1/queues",
            json!({"name": "c", "colour": "red"}),
            400,
            "colour",
        ),
        ("POST", "/v1/queues", json!({}), 400, "name"),
        (
            "DELETE",
            "/v1/queues/a",
            json!({}),
            409,
            "dead-letter queue of b",
        ),
    ];
    for (method, path, body, want, says) in cases {
        let (status, answer) = common::answer_of(
            ureq::request(method, &server.url(path))
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
        );
        assert_eq!(status, want, "{method} {path} {body}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(says),
            "{method} {path}: {error:?} should say {says:?}"
        );
    }
    // Nothing of that was kept: the same three queues, no message, "a" still without a
    // dead-letter queue.
    let (_, all) = server.get("/v1/queues");
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "small"]);
    assert!(all.as_array().unwrap().iter().all(|q| q["depth"] == 0));
    assert_eq!(
        server.get("/v1/queues/a").1["dead_letter_queue"],
        Value::Null
    );
}

#[test]
fn two_tenants_never_see_each_others_queues_and_the_cli_drives_one() {
    let server = Server::start(&[("VULCAN_AUTH", "on")]);
    let admin = std::fs::read_to_string(server.data_dir.join("admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    let call = |method: &str, path: &str, key: &str, body: Value| -> (u16, Value) {
        common::answer_of(
            ureq::request(method, &server.url(path))
                .set("X-API-Key", key)
                .send_json(body),
        )
    };
    let key = |tenant: &str| {
        let (status, body) = call(
            "POST",
            "/v1/keys",
            &admin,
            json!({"name": tenant, "role": "developer", "tenant": tenant}),
        );
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().unwrap().to_owned()
    };
    let (a, b) = (key("alpha"), key("beta"));

    // The CLI, as tenant alpha.
    let cli = |args: &[&str]| {
        let out = Command::new(common::vulcan_bin())
            .args(args)
            .env("VULCAN_URL", server.url(""))
            .env("VULCAN_API_KEY", &a)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    cli(&["queue", "create", "orders", "--visibility-timeout", "60"]);
    cli(&["queue", "send", "orders", r#"{"sku": "x1"}"#]);
    let listed = cli(&["queue", "ls"]);
    assert!(listed.contains("orders"), "{listed}");

    // Beta sees nothing of alpha's, and has a queue of the same name of its own.
    assert_eq!(call("GET", "/v1/queues", &b, Value::Null).1, json!([]));
    let (status, _) = call("POST", "/v1/queues/orders/receive", &b, json!({}));
    assert_eq!(status, 404);
    let (status, _) = call("POST", "/v1/queues", &b, json!({"name": "orders"}));
    assert_eq!(status, 201);
    assert_eq!(
        call("GET", "/v1/queues/orders", &b, Value::Null).1["depth"],
        0
    );

    let got = cli(&["queue", "receive", "orders", "--ack"]);
    assert!(got.contains("x1") && got.contains("acked"), "{got}");
    let (_, orders) = call("GET", "/v1/queues/orders", &a, Value::Null);
    assert_eq!(
        (orders["depth"].clone(), orders["in_flight"].clone()),
        (json!(0), json!(0)),
        "{orders}"
    );
    cli(&["queue", "rm", "orders"]);
    assert_eq!(
        call("GET", "/v1/queues/orders", &b, Value::Null).0,
        200,
        "beta's stays"
    );
}

#[test]
fn a_message_sent_through_one_node_is_received_through_another() {
    let pg = PgServer::start().unwrap();
    let url = pg.database().unwrap();
    let (a, b) = (pg_node(&url, "node-a"), pg_node(&url, "node-b"));
    made(&a, json!({"name": "shared", "visibility_timeout_s": 2}));
    // A long poll on b is answered by a send on a (b looks again every 100 ms).
    std::thread::scope(|s| {
        let waiting = s.spawn(|| {
            let started = Instant::now();
            (receive(&b, "shared", 5, 10), started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(300));
        send(
            &a,
            "shared",
            json!({"messages": [{"body": "m1"}, {"body": "m2"}]}),
        );
        let (got, after) = waiting.join().unwrap();
        assert!(!got.is_empty(), "b received what a sent");
        assert!(after < Duration::from_secs(3), "{after:?}");
    });
    // Whatever b took and did not acknowledge comes back, through a, after its timeout;
    // acknowledged through a, it is gone for both.
    let all = eventually(Duration::from_secs(8), "both messages through a", || {
        let got = receive(&a, "shared", 5, 1);
        (got.len() == 2).then_some(got)
    });
    let receipts: Vec<Value> = all.iter().map(|m| m["receipt"].clone()).collect();
    assert_eq!(
        a.post("/v1/queues/shared/ack", &json!({"receipts": receipts}))
            .1["acked"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert!(receive(&b, "shared", 5, 0).is_empty());
    assert_eq!(b.get("/v1/queues/shared").1["depth"], 0);
}

#[test]
fn a_topic_fans_a_message_out_to_its_queues_and_functions() {
    let server = Server::start(&[]);
    made(&server, json!({"name": "audit"}));
    made(&server, json!({"name": "small", "max_message_bytes": 16}));
    let (status, f) = server.put(
        "/v1/functions/notify",
        &json!({"runtime": "node", "code": "export default (i) => ({seen: i.message.body, topic: i.topic})"}),
    );
    assert_eq!(status, 201, "{f}");
    let (status, topic) = server.post("/v1/topics", &json!({"name": "orders"}));
    assert_eq!(status, 201, "{topic}");
    let subscribe = |body: Value| server.post("/v1/topics/orders/subscriptions", &body);
    let (status, by_queue) = subscribe(json!({"queue": "audit"}));
    assert_eq!(status, 201, "{by_queue}");
    assert_eq!(subscribe(json!({"function": "notify"})).0, 201);
    // Bad subscriptions change nothing.
    for (body, want) in [
        (json!({"queue": "audit"}), 409),
        (json!({"queue": "nope"}), 404),
        (json!({"function": "nope"}), 404),
        (json!({"queue": "audit", "function": "notify"}), 400),
        (json!({}), 400),
    ] {
        let (status, answer) = subscribe(body.clone());
        assert_eq!(status, want, "{body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    assert_eq!(server.post("/v1/topics", &json!({"name": "orders"})).0, 409);
    assert_eq!(
        server
            .post("/v1/topics/nope/publish", &json!({"body": 1}))
            .0,
        404
    );

    // The CLI publishes; the queue gets its copy, the function its invocation.
    let out = Command::new(common::vulcan_bin())
        .args(["topic", "publish", "orders", r#"{"order": 42}"#])
        .env("VULCAN_URL", server.url(""))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("queue audit:") && text.contains("function notify:"),
        "{text}"
    );
    let got = receive(&server, "audit", 5, 0);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["body"], json!({"order": 42}));
    let run = eventually(Duration::from_secs(30), "the function's invocation", || {
        let (_, page) = server.get("/v1/workloads?function=notify&limit=1");
        let w = page["workloads"].get(0)?.clone();
        (w["status"] == "completed").then_some(w)
    });
    let output: Value = serde_json::from_str(run["output"].as_str().unwrap()).unwrap();
    assert_eq!(output, json!({"seen": {"order": 42}, "topic": "orders"}));

    // A subscribed queue that takes smaller messages: 413, and no queue got a copy.
    assert_eq!(subscribe(json!({"queue": "small"})).0, 201);
    let (status, big) = server.post(
        "/v1/topics/orders/publish",
        &json!({"body": "x".repeat(40)}),
    );
    assert_eq!(status, 413, "{big}");
    assert_eq!(server.get("/v1/queues/audit").1["depth"], 0);
    // Unsubscribed, the queue gets nothing more; deleted, the topic leaves its queues.
    let id = by_queue["id"].as_str().unwrap();
    assert_eq!(
        server
            .delete(&format!("/v1/topics/orders/subscriptions/{id}"))
            .0,
        200
    );
    let small = server.get("/v1/topics/orders").1["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["queue"] == "small")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        server
            .delete(&format!("/v1/topics/orders/subscriptions/{small}"))
            .0,
        200
    );
    let (status, published) = server.post("/v1/topics/orders/publish", &json!({"body": 2}));
    assert_eq!(status, 201, "{published}");
    assert_eq!(published["queues"], json!([]));
    assert_eq!(server.get("/v1/queues/audit").1["depth"], 0);
    assert_eq!(server.delete("/v1/topics/orders").0, 200);
    assert_eq!(server.get("/v1/topics").1, json!([]));
    assert_eq!(server.get("/v1/queues/audit").0, 200);
}
