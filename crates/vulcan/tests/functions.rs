//! Functions end to end on the isolate backend: the real binary, real Deno processes as
//! warm instances, a real SQLite file. (Warm microVMs and gVisor sandboxes are tested in
//! their own targets.)

mod common;

use std::time::Duration;

use common::{eventually, Server};
use serde_json::{json, Value};

fn put(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    server.put(path, body)
}

fn deploy(server: &Server, name: &str, code: &str) -> (u16, Value) {
    put(
        server,
        &format!("/v1/functions/{name}"),
        &json!({"runtime": "node", "code": code}),
    )
}

fn invoke(server: &Server, name: &str, input: Value) -> Value {
    let (status, w) = server.post(&format!("/v1/functions/{name}/invoke"), &input);
    assert_eq!(status, 200, "{w}");
    w
}

#[test]
fn a_function_is_deployed_once_invoked_warm_redeployed_and_rolled_back() {
    let server = Server::start(&[]);
    let (status, v1) = deploy(&server, "sum", "export default (i) => i.a + i.b");
    assert_eq!((status, v1["version"].as_u64()), (201, Some(1)), "{v1}");
    assert_eq!(v1["digest"].as_str().unwrap().len(), 64);
    for i in 0..100 {
        let w = invoke(&server, "sum", json!({"a": i, "b": 1}));
        assert_eq!(w["status"], "completed", "{w}");
        assert_eq!(w["output"], (i + 1).to_string());
        assert_eq!(
            (w["function"].as_str(), w["function_version"].as_u64()),
            (Some("sum"), Some(1))
        );
    }
    // Each invocation's preparation is counted by how it was made: the first started an
    // instance, nearly all the others found one warm.
    let prepared = |path: &str| {
        common::metric(
            &server,
            &format!(
                "vulcan_workload_preparation_seconds_count{{backend=\"isolate\",path=\"{path}\"}}"
            ),
        )
    };
    let (boot, warm) = (prepared("boot"), prepared("warm"));
    assert_eq!(boot + warm, 100.0);
    assert!(
        (1.0..=10.0).contains(&boot) && warm >= 90.0,
        "{boot} {warm}"
    );
    let (_, f) = server.get("/v1/functions/sum");
    assert_eq!(
        (f["active_version"].as_u64(), f["invocations"].as_u64()),
        (Some(1), Some(100)),
        "{f}"
    );
    assert!(
        f["instances"].as_u64().unwrap() >= 1,
        "warm instances are counted: {f}"
    );

    let (status, v2) = deploy(&server, "sum", "export default (i) => i.a * i.b");
    assert_eq!(
        (status, v2["version"].as_u64(), &v2["changed"]),
        (200, Some(2), &json!(true))
    );
    assert_eq!(
        invoke(&server, "sum", json!({"a": 3, "b": 4}))["output"],
        "12",
        "v2 runs"
    );
    let (status, same) = deploy(&server, "sum", "export default (i) => i.a * i.b");
    assert_eq!(
        (status, same["version"].as_u64(), &same["changed"]),
        (200, Some(2), &json!(false))
    );
    let (status, back) = put(&server, "/v1/functions/sum/active", &json!({"version": 1}));
    assert_eq!(status, 200, "{back}");
    let w = invoke(&server, "sum", json!({"a": 3, "b": 4}));
    assert_eq!(
        (w["output"].as_str(), w["function_version"].as_u64()),
        (Some("7"), Some(1))
    );
    let (_, versions) = server.get("/v1/functions/sum/versions");
    let numbers: Vec<u64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);
    let (_, listed) = server.get("/v1/workloads?function=sum&limit=5");
    assert_eq!(listed["total"], 102, "{listed}");

    // Deleted: no longer invocable, its history stays, its instances stop.
    assert_eq!(server.delete("/v1/functions/sum").0, 204);
    let (status, gone) = server.post("/v1/functions/sum/invoke", &json!({}));
    assert_eq!(status, 404, "{gone}");
    assert_eq!(
        server.get("/v1/workloads?function=sum&limit=1").1["total"],
        102
    );
    eventually(
        Duration::from_secs(10),
        "the deleted function's instances to stop",
        || {
            let (_, nodes) = server.get("/v1/nodes");
            nodes[0]["instances"].as_object()?.is_empty().then_some(())
        },
    );
}

#[test]
fn bad_deploys_are_refused_with_what_to_change() {
    let server = Server::start(&[]);
    let cases = [
        (
            "Bad_Name",
            json!({"runtime": "node", "code": "export default () => 1"}),
            "not valid",
        ),
        (
            "x",
            json!({"runtime": "node", "code": "console.log(1)"}),
            "default export",
        ),
        ("x", json!({"runtime": "node"}), "needs \"code\""),
        (
            "x",
            json!({"runtime": "node", "code": "export default () => 1", "max_instances": 0}),
            "max_instances",
        ),
        (
            "x",
            json!({"runtime": "node", "code": "export default () => 1", "colour": 1}),
            "unknown field",
        ),
        (
            "x",
            json!({"runtime": "python", "code": "print(1)", "isolation": "microvm"}),
            "def handler(input)",
        ),
    ];
    for (name, body, expected) in cases {
        let (status, error) = put(&server, &format!("/v1/functions/{name}"), &body);
        assert_eq!(status, 400, "{body}: {error}");
        assert!(
            error["error"].as_str().unwrap().contains(expected),
            "{body}: {error}"
        );
    }
    // A plain script may be a function that is not reused.
    let (status, script) = put(
        &server,
        "/v1/functions/script",
        &json!({"runtime": "node", "code": "console.log('once')", "reuse": false}),
    );
    assert_eq!(status, 201, "{script}");
    assert_eq!(invoke(&server, "script", Value::Null)["output"], "once");
    assert_eq!(
        server.post("/v1/functions/missing/invoke", &json!({})).0,
        404
    );
}

#[test]
fn a_broken_invocation_fails_alone_and_the_next_gets_a_new_instance() {
    let server = Server::start(&[]);
    let code = "let calls = 0;
        export default async (i) => {
            calls++;
            if (i.loop) { while (true) {} }
            if (i.bomb) { const a = []; while (true) a.push(new Array(1e6).fill(1)); }
            if (i.wait) { await new Promise(r => setTimeout(r, 30000)); }
            return calls;
        }";
    let (status, _) = put(
        &server,
        "/v1/functions/fragile",
        &json!({"runtime": "node", "code": code, "max_instances": 1, "resources": {"timeout_s": 2}}),
    );
    assert_eq!(status, 201);
    assert_eq!(invoke(&server, "fragile", json!({}))["output"], "1");
    assert_eq!(
        invoke(&server, "fragile", json!({}))["output"],
        "2",
        "the same warm instance"
    );
    let looped = invoke(&server, "fragile", json!({"loop": true}));
    assert_eq!(
        (looped["status"].as_str(), looped["error"].as_str()),
        (Some("failed"), Some("timed out after 2 s"))
    );
    assert_eq!(
        invoke(&server, "fragile", json!({}))["output"],
        "1",
        "a new instance"
    );
    let bomb = invoke(&server, "fragile", json!({"bomb": true}));
    assert_eq!(bomb["status"], "failed");
    assert!(
        bomb["error"]
            .as_str()
            .unwrap()
            .contains("memory limit exceeded"),
        "{bomb}"
    );
    assert_eq!(
        invoke(&server, "fragile", json!({}))["output"],
        "1",
        "replaced again"
    );
    // A kill stops an invocation; the next is served.
    let (status, waiting) = server.post(
        "/v1/functions/fragile/invoke?async=true",
        &json!({"wait": true}),
    );
    assert_eq!(status, 202, "{waiting}");
    let id = waiting["id"].as_str().unwrap();
    server.wait_status(id, "running", Duration::from_secs(10));
    let (status, killed) = server.delete(&format!("/v1/workloads/{id}"));
    assert_eq!(
        (status, killed["status"].as_str()),
        (200, Some("killed")),
        "{killed}"
    );
    assert_eq!(invoke(&server, "fragile", json!({}))["output"], "1");
}

#[test]
fn two_tenants_functions_never_share_an_instance() {
    let admin = "vk_fnadmin_0123456789";
    let server = Server::start(&[("VULCAN_AUTH", "on"), ("VULCAN_ADMIN_KEY", admin)]);
    let key = |tenant: &str| {
        let r = ureq::post(&server.url("/v1/keys"))
            .set("X-API-Key", admin)
            .send_json(json!({"name": tenant, "role": "developer", "tenant": tenant}))
            .unwrap();
        r.into_json::<Value>().unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (a, b) = (key("a"), key("b"));
    let code = json!({"runtime": "node", "code": "globalThis.count = (globalThis.count ?? 0) + 1; let n = 0; export default () => ++n;"});
    for k in [&a, &b] {
        let r = ureq::put(&server.url("/v1/functions/counter"))
            .set("X-API-Key", k)
            .send_json(code.clone())
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let call = |k: &str| -> String {
        let r = ureq::post(&server.url("/v1/functions/counter/invoke"))
            .set("X-API-Key", k)
            .send_string("")
            .unwrap();
        r.into_json::<Value>().unwrap()["output"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let seen: Vec<(String, String)> = (0..4).map(|_| (call(&a), call(&b))).collect();
    let expected: Vec<(String, String)> = (1..=4).map(|n| (n.to_string(), n.to_string())).collect();
    assert_eq!(
        seen, expected,
        "each tenant's instance counts its own invocations only"
    );
}

#[test]
fn the_http_trigger_answers_with_what_the_function_returns() {
    let admin = "vk_trigger_0123456789";
    let server = Server::start(&[("VULCAN_AUTH", "on"), ("VULCAN_ADMIN_KEY", admin)]);
    let deploy_as = |name: &str, body: Value| {
        let r = ureq::put(&server.url(&format!("/v1/functions/{name}")))
            .set("X-API-Key", admin)
            .send_json(body)
            .unwrap();
        assert_eq!(r.status(), 201);
    };
    let echo = "export default (req) => ({status: 201, headers: {'x-seen': req.method + ' ' + req.path + ' ' + (req.query.q ?? '')}, body: 'got ' + req.body})";
    deploy_as("echo", json!({"runtime": "node", "code": echo}));
    deploy_as(
        "open",
        json!({"runtime": "node", "code": "export default (req) => ({hello: req.headers['x-name'] ?? null})", "public": true}),
    );
    deploy_as(
        "broken",
        json!({"runtime": "node", "code": "export default () => { throw new Error('nope') }"}),
    );

    let r = ureq::post(&server.url("/fn/admin/echo/a/b?q=1"))
        .set("X-API-Key", admin)
        .send_string("payload")
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.header("x-seen"), Some("POST /a/b 1"));
    assert!(r
        .header("x-vulcan-workload")
        .is_some_and(|id| id.len() == 26));
    assert_eq!(r.into_string().unwrap(), "got payload");

    // Not public: a key is needed.
    match ureq::get(&server.url("/fn/admin/echo")).call() {
        Err(ureq::Error::Status(code, _)) => assert_eq!(code, 401),
        other => panic!("{other:?}"),
    }
    // Public: no key needed; anything but a response shape comes back as JSON.
    let r = ureq::get(&server.url("/fn/admin/open"))
        .set("X-Name", "vulcan")
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.into_json::<Value>().unwrap(), json!({"hello": "vulcan"}));
    // A failing function is a 502 naming its workload.
    match ureq::get(&server.url("/fn/admin/broken"))
        .set("X-API-Key", admin)
        .call()
    {
        Err(ureq::Error::Status(502, r)) => {
            assert!(r.header("x-vulcan-workload").is_some());
            let body: Value = r.into_json().unwrap();
            assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_functions_http_answer_runs_sandboxed_and_cannot_set_the_origins_headers() {
    let admin = "vk_trigger_0123456789";
    let server = Server::start(&[("VULCAN_AUTH", "on"), ("VULCAN_ADMIN_KEY", admin)]);
    let page = r#"export default (req) => ({status: 200, body: "<script>1</script>", headers: {
        "content-type": "text/html", "service-worker-allowed": "/", "set-cookie": "a=1",
        "content-security-policy": "default-src *", "content-security-policy-report-only": "x",
        "clear-site-data": "\"*\"", "access-control-allow-origin": "*",
        "access-control-allow-credentials": "true", "x-content-type-options": "sniff",
        "x-kept": "yes", "seen-protocol": String(req.headers["sec-websocket-protocol"])}})"#;
    let r = ureq::put(&server.url("/v1/functions/page"))
        .set("X-API-Key", admin)
        .send_json(json!({"runtime": "node", "code": page, "public": true}))
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = ureq::get(&server.url("/fn/admin/page"))
        .set("Sec-WebSocket-Protocol", "vulcan.key.vk_secret_key")
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.starts_with("sandbox") && !csp.contains("allow-same-origin"),
        "the answer runs in an opaque origin: {csp:?}"
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    for dropped in [
        "service-worker-allowed",
        "set-cookie",
        "content-security-policy-report-only",
        "clear-site-data",
        "access-control-allow-origin",
        "access-control-allow-credentials",
    ] {
        assert_eq!(
            r.header(dropped),
            None,
            "{dropped} is the server's, not the function's"
        );
    }
    assert_eq!(r.header("x-kept"), Some("yes"));
    assert_eq!(
        r.header("seen-protocol"),
        Some("undefined"),
        "a key offered as a WebSocket subprotocol never reaches the function"
    );
    // JSON answers are sandboxed too.
    let open = "export default () => ({ok: true})";
    ureq::put(&server.url("/v1/functions/open"))
        .set("X-API-Key", admin)
        .send_json(json!({"runtime": "node", "code": open, "public": true}))
        .unwrap();
    let r = ureq::get(&server.url("/fn/admin/open")).call().unwrap();
    assert!(r
        .header("content-security-policy")
        .is_some_and(|c| c.starts_with("sandbox")));
}

#[test]
fn anonymous_calls_of_a_public_function_are_audited_in_aggregate() {
    let admin = "vk_trigger_0123456789";
    let server = Server::start(&[("VULCAN_AUTH", "on"), ("VULCAN_ADMIN_KEY", admin)]);
    ureq::put(&server.url("/v1/functions/open"))
        .set("X-API-Key", admin)
        .send_json(json!({"runtime": "node", "code": "export default () => 1", "public": true}))
        .unwrap();
    for _ in 0..20 {
        let r = ureq::post(&server.url("/fn/admin/open")).send_string("x");
        assert_eq!(r.unwrap().status(), 200);
    }
    let log: Value = ureq::get(&server.url("/v1/audit?action=function.http&limit=100"))
        .set("X-API-Key", admin)
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    let rows = log.as_array().unwrap();
    let counted: u64 = rows.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 20, "{log}");
    assert!(
        rows.len() <= 2,
        "one row per function and minute, not one per call: {} rows",
        rows.len()
    );
    assert!(rows.iter().all(|r| r["actor"] == "public"), "{log}");
}

#[test]
fn triggers_can_be_served_on_an_address_of_their_own() {
    let admin = "vk_trigger_0123456789";
    let trigger_port = common::free_port();
    let trigger_addr = format!("127.0.0.1:{trigger_port}");
    let server = Server::start(&[
        ("VULCAN_AUTH", "on"),
        ("VULCAN_ADMIN_KEY", admin),
        ("VULCAN_TRIGGER_ADDR", &trigger_addr),
    ]);
    ureq::put(&server.url("/v1/functions/open"))
        .set("X-API-Key", admin)
        .send_json(
            json!({"runtime": "node", "code": "export default () => ({ok: 1})", "public": true}),
        )
        .unwrap();
    let triggers = format!("http://{trigger_addr}");
    let r = ureq::get(&format!("{triggers}/fn/admin/open"))
        .call()
        .unwrap();
    assert_eq!(r.into_json::<Value>().unwrap(), json!({"ok": 1}));
    // The dashboard's origin no longer serves them, and says where they are.
    let (status, body) = common::answer_of(ureq::get(&server.url("/fn/admin/open")).call());
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains(&trigger_addr),
        "{body}"
    );
    // The trigger address serves nothing else: no API, no dashboard.
    for path in ["/v1/workloads", "/", "/sign-in", "/assets/app.js"] {
        let (status, _) = common::answer_of(
            ureq::get(&format!("{triggers}{path}"))
                .set("X-API-Key", admin)
                .call(),
        );
        assert_eq!(status, 404, "{path} on the trigger address");
    }
}
