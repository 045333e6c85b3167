//! Async reliability end to end, with real Deno isolates and a real SQLite file: retries
//! with backoff, the age limit, the failure queue, callbacks signed and retried until the
//! receiver takes them (a receiver of the test's own on loopback), a topic's url
//! subscription, and a retry that was due while the server was SIGKILLed.

mod common;

use std::time::Duration;

use common::queues::{made, receive};
use common::receiver::Receiver;
use common::{eventually, Server};
use serde_json::{json, Value};

const KEY: &str = "a-signing-key-of-the-tests-own-0123456789";

fn signing_key(server: &Server) {
    let (status, info) = server.put("/v1/secrets/CALLBACK_SIGNING_KEY", &json!({"value": KEY}));
    assert_eq!(status, 200, "{info}");
}

fn failing() -> Value {
    json!({"runtime": "node", "code": "throw new Error('always')"})
}

/// The chain of attempts that ends with `last`, first first (each retry names the one
/// before in its trigger).
fn attempts(server: &Server, last: &Value) -> Vec<Value> {
    let mut chain = vec![last.clone()];
    while let Some(before) = chain[0]["trigger"]
        .as_object()
        .filter(|t| t["kind"] == "retry")
        .map(|t| t["id"].as_str().unwrap().to_owned())
    {
        let (_, w) = server.get(&format!("/v1/workloads/{before}"));
        chain.insert(0, w);
    }
    chain
}

/// The newest workload whose trigger is a retry of `id`, if there is one yet.
fn retry_of(server: &Server, id: &str) -> Option<Value> {
    let (_, page) = server.get("/v1/workloads?limit=100");
    page["workloads"]
        .as_array()?
        .iter()
        .find(|w| w["trigger"] == json!({"kind": "retry", "id": id}))
        .cloned()
}

#[test]
fn a_failing_async_workload_is_retried_with_backoff_then_queued_and_called_back_signed() {
    let server = Server::start(&[]);
    let receiver = Receiver::start(&[("/flaky", &[500, 500])]);
    let mut request = failing();
    request["retry"] = json!({"max_attempts": 3, "backoff_s": 1});
    request["on_failure"] = json!({"queue": "failures"});
    request["callback_url"] = json!(receiver.url("/flaky"));

    // Bad input changes nothing: each refused with what to change.
    let (status, e) = server.post("/v1/workloads/async", &request);
    assert_eq!(status, 400, "no failure queue yet: {e}");
    assert!(
        e["error"].as_str().unwrap().contains("POST /v1/queues"),
        "{e}"
    );
    made(&server, json!({"name": "failures"}));
    let (status, e) = server.post("/v1/workloads/async", &request);
    assert_eq!(status, 409, "no signing secret yet: {e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("PUT /v1/secrets/CALLBACK_SIGNING_KEY"),
        "{e}"
    );
    signing_key(&server);
    for (field, value, says) in [
        ("retry", json!({"max_attempts": 0}), "1 to 10"),
        (
            "retry",
            json!({"max_attempts": 3, "backoff": 1}),
            "unknown field",
        ),
        ("max_age_s", json!(0), "1 to 86400"),
        ("callback_url", json!("ftp://example.com/"), "http"),
    ] {
        let mut bad = request.clone();
        bad[field] = value;
        let (status, e) = server.post("/v1/workloads/async", &bad);
        assert_eq!(status, 400, "{field}: {e}");
        assert!(e["error"].as_str().unwrap().contains(says), "{field}: {e}");
    }
    let (status, e) = server.post("/v1/workloads", &request);
    assert_eq!(status, 400, "a sync workload cannot ask for retries: {e}");
    assert!(
        e["error"].as_str().unwrap().contains("/v1/workloads/async"),
        "{e}"
    );
    let (_, before) = server.get("/v1/workloads?limit=100");
    assert_eq!(before["workloads"], json!([]), "nothing refused was stored");

    let first = server.submit(request);
    // Three attempts, each after the one before failed and its backoff (1 s, then 2 s).
    let calls = eventually(Duration::from_secs(60), "the third call back", || {
        let got = receiver.at("/flaky");
        (got.len() >= 3).then_some(got)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.at("/flaky").len(), 3, "no call after the 200");
    let last: Value = serde_json::from_str(&calls[2].body).unwrap();
    let chain = attempts(&server, &last);
    assert_eq!(chain.len(), 3, "{chain:?}");
    assert_eq!(chain[0]["id"], first.as_str());
    for w in &chain {
        assert_eq!(w["status"], "failed", "{w}");
        assert!(w["error"].as_str().unwrap().contains("always"), "{w}");
    }
    let gap = |a: &Value, b: &Value| {
        let end = time::OffsetDateTime::parse(
            a["finished_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let start = time::OffsetDateTime::parse(
            b["created_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        (start - end).as_seconds_f64()
    };
    assert!(gap(&chain[0], &chain[1]) >= 1.0, "backoff 1 s: {chain:?}");
    assert!(gap(&chain[1], &chain[2]) >= 2.0, "then 2 s: {chain:?}");
    let (_, spec) = server.get(&format!(
        "/v1/workloads/{}/spec",
        chain[2]["id"].as_str().unwrap()
    ));
    assert_eq!(spec["async_policy"]["attempt"], 3, "{spec}");

    // The callback: the final workload, one delivery tried three times, each signed.
    assert_eq!(last["status"], "failed");
    for (i, call) in calls.iter().enumerate() {
        assert!(call.signed_with(KEY), "call {i}: {:?}", call.headers);
        assert!(!call.signed_with("another key"), "call {i}");
        assert_eq!(call.body, calls[0].body, "the same body each time");
        assert_eq!(call.headers["x-vulcan-attempt"], (i + 1).to_string());
        assert_eq!(
            call.headers["x-vulcan-delivery"], calls[0].headers["x-vulcan-delivery"],
            "one delivery"
        );
        assert_eq!(call.headers["content-type"], "application/json");
    }
    assert!(
        calls[1].at - calls[0].at >= Duration::from_millis(900),
        "the callback backs off too"
    );

    // The failure queue: the last attempt, once.
    let failures = receive(&server, "failures", 10, 1);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["body"]["workload"]["id"], last["id"]);
    assert_eq!(failures[0]["body"]["workload"]["status"], "failed");

    // A workload that completes is called back once, and queued nowhere.
    let ok = server.submit(json!({
        "runtime": "node", "code": "export default () => 42",
        "retry": {"max_attempts": 3}, "on_failure": {"queue": "failures"},
        "callback_url": receiver.url("/ok"),
    }));
    let call = eventually(Duration::from_secs(30), "the call back", || {
        receiver.at("/ok").into_iter().next()
    });
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(
        (body["id"].as_str(), body["status"].as_str()),
        (Some(ok.as_str()), Some("completed"))
    );
    assert_eq!(body["output"], "42");
    assert!(call.signed_with(KEY));
    assert!(retry_of(&server, &ok).is_none());
    assert!(receive(&server, "failures", 10, 0).is_empty());
    assert_eq!(
        common::metric(&server, "vulcan_workload_retries_total"),
        2.0,
        "two retries counted"
    );
}

#[test]
fn the_age_limit_stops_retries_and_invocations_take_the_same_options() {
    let server = Server::start(&[]);
    let receiver = Receiver::start(&[]);
    signing_key(&server);
    made(&server, json!({"name": "failures"}));
    // The second attempt would be due 3 s after the first failed: past an age of 2 s.
    let mut request = failing();
    request["retry"] = json!({"max_attempts": 5, "backoff_s": 3});
    request["max_age_s"] = json!(2);
    request["on_failure"] = json!({"queue": "failures"});
    let id = server.submit(request);
    let failures = eventually(Duration::from_secs(30), "the failure queued", || {
        let got = receive(&server, "failures", 10, 1);
        (!got.is_empty()).then_some(got)
    });
    assert_eq!(failures[0]["body"]["workload"]["id"], id.as_str());
    std::thread::sleep(Duration::from_secs(4));
    assert!(retry_of(&server, &id).is_none(), "not retried past its age");

    // A function invoked async with the same options, as query parameters.
    let (status, f) = server.put(
        "/v1/functions/flaky",
        &json!({"runtime": "node", "code": "export default () => { throw new Error('nope'); }"}),
    );
    assert_eq!(status, 201, "{f}");
    let invoke = |query: &str| {
        server.post(
            &format!("/v1/functions/flaky/invoke?{query}"),
            &json!({"x": 1}),
        )
    };
    let (status, e) = invoke("max_attempts=2");
    assert_eq!(status, 400, "only async: {e}");
    let (status, e) = invoke("async=true&max_attempts=11");
    assert_eq!(status, 400, "at most 10 attempts: {e}");
    let url = receiver.url("/fn");
    let (status, w) = invoke(&format!(
        "async=true&max_attempts=2&backoff_s=1&callback_url={url}"
    ));
    assert_eq!(status, 202, "{w}");
    let call = eventually(
        Duration::from_secs(60),
        "the invocation's call back",
        || receiver.at("/fn").into_iter().next(),
    );
    let last: Value = serde_json::from_str(&call.body).unwrap();
    let chain = attempts(&server, &last);
    assert_eq!(chain.len(), 2, "{chain:?}");
    assert_eq!(chain[0]["id"], w["id"]);
    for attempt in &chain {
        assert_eq!(attempt["function"], "flaky", "{attempt}");
        assert_eq!(attempt["function_version"], 1, "{attempt}");
        assert_eq!(attempt["status"], "failed", "{attempt}");
    }
    assert!(call.signed_with(KEY));
}

#[test]
fn a_topics_url_subscription_gets_each_message_signed_and_a_tenant_needs_an_admin_for_loopback() {
    let (server, admin) = Server::start_readme_way(&[]);
    let call = |method: &str, path: &str, key: &str, body: Value| {
        common::answer_of(
            ureq::request(method, &server.url(path))
                .set("X-API-Key", key)
                .send_json(body),
        )
    };
    let receiver = Receiver::start(&[("/hook", &[503])]);
    let (status, key) = call(
        "POST",
        "/v1/keys",
        &admin,
        json!({"name": "ops", "role": "operator", "tenant": "acme"}),
    );
    assert_eq!(status, 201, "{key}");
    let dev = key["key"].as_str().unwrap().to_owned();
    assert_eq!(
        call(
            "PUT",
            "/v1/secrets/CALLBACK_SIGNING_KEY",
            &dev,
            json!({"value": KEY})
        )
        .0,
        200
    );
    assert_eq!(
        call("POST", "/v1/topics", &dev, json!({"name": "events"})).0,
        201
    );
    let subscribe = || {
        call(
            "POST",
            "/v1/topics/events/subscriptions",
            &dev,
            json!({"url": receiver.url("/hook")}),
        )
    };
    // Loopback is never reached for a tenant unless an admin lists it.
    let (status, e) = subscribe();
    assert_eq!(status, 403, "{e}");
    assert!(e["error"].as_str().unwrap().contains("egress_allow"), "{e}");
    let mut async_call = json!({"runtime": "node", "code": "export default () => 1"});
    async_call["callback_url"] = json!(receiver.url("/hook"));
    let (status, e) = call("POST", "/v1/workloads/async", &dev, async_call.clone());
    assert_eq!(status, 403, "{e}");
    let quota = json!({"max_concurrent": 5, "per_minute": 100, "max_cpus": 4, "max_mem_mb": 4096, "egress_allow": ["127.0.0.1"]});
    let (status, set) = call("PUT", "/v1/tenants/acme/quota", &admin, quota);
    assert_eq!(status, 200, "{set}");
    let (status, sub) = subscribe();
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["url"], receiver.url("/hook").as_str());
    assert_eq!(subscribe().0, 409, "subscribed already");

    let (status, published) = call(
        "POST",
        "/v1/topics/events/publish",
        &dev,
        json!({"body": {"order": 7}}),
    );
    assert_eq!(status, 201, "{published}");
    assert_eq!(published["urls"], 1, "{published}");
    // Answered 503 the first time: delivered again.
    let calls = eventually(Duration::from_secs(30), "the message delivered", || {
        let got = receiver.at("/hook");
        (got.len() >= 2).then_some(got)
    });
    let body: Value = serde_json::from_str(&calls[1].body).unwrap();
    assert_eq!(
        body,
        json!({"topic": "events", "message": {"body": {"order": 7}}})
    );
    assert!(calls.iter().all(|c| c.signed_with(KEY)));
}

#[test]
fn a_retry_due_while_the_server_was_killed_is_made_after_it_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    let mut request = failing();
    request["retry"] = json!({"max_attempts": 2, "backoff_s": 4});
    let id = server.submit(request);
    server.wait_status(&id, "failed", Duration::from_secs(30));
    server.kill9();
    std::thread::sleep(Duration::from_secs(4));
    let server = Server::start_in(dir.path(), &[]);
    let retry = eventually(
        Duration::from_secs(30),
        "the retry after the restart",
        || retry_of(&server, &id),
    );
    let retry = server.wait_terminal(retry["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(retry["status"], "failed", "{retry}");
    std::thread::sleep(Duration::from_secs(2));
    let (_, page) = server.get("/v1/workloads?limit=100");
    assert_eq!(
        page["workloads"].as_array().unwrap().len(),
        2,
        "one retry, once: {page}"
    );
}
