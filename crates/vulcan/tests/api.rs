//! The HTTP API end to end: the real binary, a real SQLite file, real Deno isolates.

mod common;

use std::time::Duration;

use common::{sum_workload, Server};
use serde_json::{json, Value};

#[test]
fn a_sync_workload_completes_with_every_documented_field() {
    let server = Server::start(&[]);
    let w = server.run(sum_workload(1, 2));
    assert_eq!(w["status"], "completed", "{w}");
    assert_eq!(w["output"], "{\"sum\":3}");
    assert_eq!(w["isolation"], "isolate");
    assert_eq!(w["requested_isolation"], "auto");
    assert_eq!(w["runtime"], "node");
    assert_eq!(w["id"].as_str().unwrap().len(), 26, "a ULID");
    assert_eq!(w["input_hash"].as_str().unwrap().len(), 64);
    for field in [
        "node_id",
        "created_at",
        "started_at",
        "finished_at",
        "duration_ms",
    ] {
        assert!(!w[field].is_null(), "{field} missing in {w}");
    }
    assert_eq!(
        (
            w["cpu_limit"].as_u64(),
            w["mem_limit"].as_u64(),
            w["timeout_s"].as_u64()
        ),
        (Some(1), Some(128), Some(30))
    );
    for field in ["exit_code", "error"] {
        assert!(w.get(field).is_some(), "{field} absent in {w}");
    }
    let (status, again) = server.get(&format!("/v1/workloads/{}", w["id"].as_str().unwrap()));
    assert_eq!(status, 200);
    assert_eq!(again, w, "GET shows what POST answered");
}

#[test]
fn an_async_workload_is_started_at_admission_then_completes() {
    let server = Server::start(&[]);
    let (status, w) = server.post("/v1/workloads/async", &sum_workload(20, 22));
    assert_eq!(status, 202);
    // A free slot: claimed and started by the node that admitted it, in one step.
    assert_eq!(w["status"], "running", "{w}");
    assert!(w["node_id"].is_string(), "{w}");
    assert_eq!(w["started_at"], w["created_at"], "{w}");
    let done = server.wait_terminal(w["id"].as_str().unwrap(), Duration::from_secs(20));
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"], "{\"sum\":42}");
}

#[test]
fn bad_input_gets_a_clear_4xx() {
    let server = Server::start(&[
        ("VULCAN_MAX_BODY_BYTES", "4096"),
        ("VULCAN_QEMU_BIN", "/nonexistent/qemu"),
    ]);
    let cases: Vec<(&str, u16, &str)> = vec![
        ("{not json", 400, "invalid JSON"),
        ("", 400, "empty"),
        (r#"{"code":"1"}"#, 400, "\"runtime\" is required"),
        (
            r#"{"runtime":"ruby","code":"1"}"#,
            400,
            "unknown runtime \"ruby\"",
        ),
        (
            r#"{"runtime":"node","isolation":"docker","code":"1"}"#,
            400,
            "unknown isolation \"docker\"",
        ),
        (
            r#"{"runtime":"node","code":"1","code_archive":"H4sI"}"#,
            400,
            "not both",
        ),
        (
            r#"{"runtime":"python","code_archive":"!!!"}"#,
            400,
            "not valid base64",
        ),
        (
            r#"{"runtime":"node","code":"1","resources":{"mem_mb":999999}}"#,
            400,
            "resources.mem_mb",
        ),
        (
            r#"{"runtime":"node","code":"1","resources":{"timeout_s":0}}"#,
            400,
            "resources.timeout_s",
        ),
        (
            r#"{"runtime":"node","code":"1","resources":{"cpus":-1}}"#,
            400,
            "invalid JSON",
        ),
        (
            r#"{"runtime":"node","code":"1","timeout":5}"#,
            400,
            "unknown field `timeout`",
        ),
        (r#"{"runtime":"oci"}"#, 400, "needs \"image\""),
        (
            r#"{"runtime":"node","isolation":"isolate","code":"1","image":"x"}"#,
            400,
            "use isolation microvm",
        ),
        (
            r#"{"runtime":"node","code":"1","command":["x"]}"#,
            400,
            "only for runtime oci",
        ),
        (
            r#"{"runtime":"python","isolation":"isolate","code":"print(1)"}"#,
            400,
            "cannot run runtime python",
        ),
        (
            r#"{"runtime":"python","isolation":"microvm","code":"print(1)"}"#,
            422,
            "/nonexistent/qemu",
        ),
    ];
    for (body, want, says) in cases {
        let (status, err) = server.post_raw("/v1/workloads", body);
        assert_eq!(status, want, "{body} -> {err}");
        let message = err["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field: {err}"));
        assert!(
            message.contains(says),
            "{body}: {message:?} should mention {says:?}"
        );
    }
    let big = json!({"runtime": "node", "code": "x".repeat(8000)});
    let (status, err) = server.post("/v1/workloads", &big);
    assert_eq!(status, 413, "{err}");
    assert!(err["error"]
        .as_str()
        .unwrap()
        .contains("over the limit of 4096 bytes"));

    let (status, err) = server.get("/v1/workloads/01NOPE");
    assert_eq!(status, 404);
    assert!(err["error"].as_str().unwrap().contains("01NOPE"));
    assert_eq!(server.delete("/v1/workloads/01NOPE").0, 404);
    assert_eq!(server.get("/v1/workloads/01NOPE/logs/history").0, 404);
    assert_eq!(server.get("/v1/nowhere").0, 404);
    for query in [
        "limit=0",
        "limit=101",
        "limit=x",
        "offset=-1",
        "status=done",
        "isolation=docker",
    ] {
        let (status, err) = server.get(&format!("/v1/workloads?{query}"));
        assert_eq!(status, 400, "{query}: {err}");
        assert!(err["error"].is_string());
    }
    // Nothing above was stored.
    assert_eq!(server.get("/v1/stats").1["total"], 0);
}

#[test]
fn kill_stops_a_running_workload_and_a_finished_one_answers_409() {
    let server = Server::start(&[]);
    let id = server
        .submit(json!({"runtime": "node", "code": "console.log('spinning'); while (true) {}"}));
    let mut sse = server.sse(&format!("/v1/workloads/{id}/logs"));
    let first = sse.next_event().expect("a log event");
    assert!(first.data.contains("spinning"), "{first:?}");
    let (status, killed) = server.delete(&format!("/v1/workloads/{id}"));
    assert_eq!(status, 200, "{killed}");
    assert_eq!(killed["status"], "killed");
    assert_eq!(killed["error"], "killed by request");
    let (_, done) = sse.collect();
    assert_eq!(done["status"], "killed");

    let (status, err) = server.delete(&format!("/v1/workloads/{id}"));
    assert_eq!(status, 409);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("already ended: it is killed"),
        "{err}"
    );
    let finished = server.run(sum_workload(1, 1));
    let (status, _) = server.delete(&format!(
        "/v1/workloads/{}",
        finished["id"].as_str().unwrap()
    ));
    assert_eq!(status, 409);
}

#[test]
fn a_pending_workload_can_be_killed_before_it_starts() {
    let server = Server::start(&[("VULCAN_ISOLATE_CONCURRENCY", "1")]);
    let busy = server.submit(
        json!({"runtime": "node", "code": "while (true) {}", "resources": {"timeout_s": 20}}),
    );
    let queued = server.submit(sum_workload(1, 2));
    server.wait_status(&busy, "running", Duration::from_secs(10));
    assert_eq!(
        server.get(&format!("/v1/workloads/{queued}")).1["status"],
        "pending"
    );
    let (status, killed) = server.delete(&format!("/v1/workloads/{queued}"));
    assert_eq!(status, 200, "{killed}");
    assert_eq!(killed["status"], "killed");
    assert!(killed["started_at"].is_null(), "it never started: {killed}");
    assert_eq!(server.delete(&format!("/v1/workloads/{busy}")).0, 200);
}

#[test]
fn a_timed_out_workload_is_stopped_and_failed_with_the_reason() {
    let server = Server::start(&[]);
    let w = server
        .run(json!({"runtime": "node", "code": "while (true) {}", "resources": {"timeout_s": 1}}));
    assert_eq!(w["status"], "failed");
    assert_eq!(w["error"], "timed out after 1 s");
    // Stopped at its timeout, not left running: the code ran for at least the second it
    // was given, and was not let run on (the bound is loose for a loaded machine).
    let ran = w["duration_ms"].as_u64().unwrap() - w["prepare_ms"].as_u64().unwrap_or(0);
    assert!(
        (1000..10_000).contains(&ran),
        "stopped near its timeout: {ran} ms"
    );
    // The server is fine and runs the next one.
    assert_eq!(server.run(sum_workload(2, 2))["output"], "{\"sum\":4}");
}

#[test]
fn list_pages_newest_first_and_filters_by_status_and_isolation() {
    let server = Server::start(&[]);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            server.run(sum_workload(i, i))["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    server.run(json!({"runtime": "node", "code": "throw new Error('no')"}));
    let (status, page) = server.get("/v1/workloads");
    assert_eq!(status, 200);
    assert_eq!(
        (
            page["total"].as_u64(),
            page["limit"].as_u64(),
            page["offset"].as_u64()
        ),
        (Some(6), Some(20), Some(0))
    );
    let (_, page) = server.get("/v1/workloads?limit=2&offset=1&status=completed&isolation=isolate");
    let got: Vec<_> = page["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        got,
        [ids[3].clone(), ids[2].clone()],
        "newest first, after skipping one"
    );
    assert_eq!(page["total"], 5);
    let (_, failed) = server.get("/v1/workloads?status=failed");
    assert_eq!(failed["total"], 1);
    assert_eq!(failed["workloads"][0]["status"], "failed");
}

#[test]
fn stats_backends_health_and_metrics_report_what_happened() {
    let server = Server::start(&[]);
    server.run(sum_workload(1, 2));
    server.run(sum_workload(3, 4));
    server.run(json!({"runtime": "node", "code": "throw new Error('boom')"}));

    let (status, stats) = server.get("/v1/stats");
    assert_eq!(status, 200);
    assert_eq!(stats["total"], 3);
    assert_eq!(stats["by_status"]["completed"], 2);
    assert_eq!(stats["by_status"]["failed"], 1);
    assert_eq!(stats["by_isolation"]["isolate"], 3);
    let isolate = &stats["backends"]["isolate"];
    assert_eq!(isolate["finished"], 3);
    assert!(
        isolate["p95_duration_ms"].as_f64().unwrap()
            >= isolate["p50_duration_ms"].as_f64().unwrap()
    );
    assert!(stats["avg_duration_ms"].as_f64().unwrap() > 0.0);

    let (_, backends) = server.get("/v1/backends");
    let isolate = &backends.as_array().unwrap()[0];
    assert_eq!(isolate["name"], "isolate");
    assert_eq!(isolate["available"], true);
    assert!(isolate["reason"].is_null());
    assert_eq!(
        isolate["capabilities"]["supported_runtimes"],
        json!(["node", "wasm"])
    );
    assert_eq!(
        isolate["capabilities"]["supported_isolations"],
        json!(["isolate"])
    );
    assert!(isolate["capabilities"]["max_concurrency"].as_u64().unwrap() >= 1);

    let (status, health) = server.get("/healthz");
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));

    let metrics = ureq::get(&server.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains(
            "vulcan_workloads_finished_total{backend=\"isolate\",status=\"completed\"} 2"
        ),
        "{metrics}"
    );
    assert!(metrics
        .contains("vulcan_workloads_finished_total{backend=\"isolate\",status=\"failed\"} 1"));
    assert!(metrics.contains(
        "vulcan_http_requests_total{method=\"POST\",route=\"/v1/workloads\",status=\"200\"} 3"
    ));
    assert!(metrics.contains("vulcan_workload_duration_seconds_count{backend=\"isolate\"} 3"));
    assert!(metrics.contains("vulcan_workloads_running{backend=\"isolate\"} 0"));
    // Usage per run, and this node's view of the cluster (refreshed every heartbeat).
    assert!(metrics.contains("vulcan_workload_cpu_seconds_count{backend=\"isolate\"} 3"));
    assert!(metrics.contains("vulcan_workload_peak_memory_bytes_count{backend=\"isolate\"} 3"));
    // Each run's preparation (its cold start), by how it was made: a process from the
    // pool, or one started for it.
    let prepared = |path: &str| {
        common::metric(
            &server,
            &format!(
                "vulcan_workload_preparation_seconds_count{{backend=\"isolate\",path=\"{path}\"}}"
            ),
        )
    };
    assert_eq!(prepared("pool") + prepared("boot"), 3.0, "{metrics}");
    common::eventually(Duration::from_secs(5), "the cluster gauges", || {
        let m = ureq::get(&server.url("/metrics"))
            .call()
            .ok()?
            .into_string()
            .ok()?;
        (m.contains("vulcan_nodes{state=\"live\"} 1")
            && m.contains("vulcan_backend_available{backend=\"isolate\"} 1")
            && m.contains("vulcan_queue_pending{backend=\"isolate\"} 0"))
        .then_some(())
    });
}

#[test]
fn an_unavailable_backend_is_listed_with_its_reason_and_the_server_still_starts() {
    // No Deno, and no QEMU for the microvm backend that could also run node.
    let server = Server::start(&[
        ("VULCAN_DENO_BIN", "/nonexistent/deno"),
        ("VULCAN_QEMU_BIN", "/nonexistent/qemu"),
    ]);
    let (_, backends) = server.get("/v1/backends");
    assert_eq!(backends[0]["available"], false);
    assert!(
        backends[0]["reason"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/deno"),
        "{backends}"
    );
    let (status, err) = server.post("/v1/workloads", &sum_workload(1, 2));
    assert_eq!(status, 422);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("isolate is not available here"),
        "{err}"
    );
}

#[test]
fn metrics_labels_never_take_a_value_a_client_invented() {
    let server = Server::start(&[]);
    for method in ["FOO1", "FOO2", "BAR"] {
        let answer = ureq::request(method, &server.url("/v1/workloads")).call();
        let status = match answer {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(status, 405, "{method}");
    }
    let _ = server.get("/no/such/route/abc123");
    let metrics = ureq::get(&server.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for invented in ["FOO1", "FOO2", "BAR", "abc123"] {
        assert!(
            !metrics.contains(invented),
            "{invented} became a label:\n{metrics}"
        );
    }
    assert!(
        metrics.contains(r#"method="other",route="/v1/workloads",status="405"} 3"#),
        "{metrics}"
    );
}

#[test]
fn request_ids_round_trip_into_errors_logs_audit_and_workloads() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let admin = "vk_reqid_0123456789";
    let server = Server::start_logged(
        &[
            ("VULCAN_AUTH", "on"),
            ("VULCAN_ADMIN_KEY", admin),
            ("VULCAN_LOG_LEVEL", "warn,vulcan_api=debug"),
        ],
        &log,
    );
    // The caller's id comes back, and the workload it created carries it.
    let r = ureq::post(&server.url("/v1/workloads"))
        .set("X-API-Key", admin)
        .set("X-Request-Id", "trace-42.a_b:c")
        .send_json(sum_workload(2, 3))
        .unwrap();
    assert_eq!(r.header("x-request-id"), Some("trace-42.a_b:c"));
    let w: serde_json::Value = r.into_json().unwrap();
    assert_eq!(w["request_id"], "trace-42.a_b:c", "{w}");

    // An error body names the request; an unusable id is replaced by a new one.
    let err = ureq::post(&server.url("/v1/workloads"))
        .set("X-API-Key", admin)
        .set("X-Request-Id", "not a sane id!")
        .send_string("{\"runtime\": \"cobol\"}")
        .unwrap_err();
    let ureq::Error::Status(400, r) = err else {
        panic!("{err}")
    };
    let id = r.header("x-request-id").unwrap().to_owned();
    assert_eq!(id.len(), 26, "a new ULID: {id}");
    let body: serde_json::Value = r.into_json().unwrap();
    assert_eq!(body["request_id"], id.as_str(), "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("runtime"),
        "{body}"
    );
    let unauthorized = ureq::get(&server.url("/v1/workloads")).call().unwrap_err();
    let ureq::Error::Status(401, r) = unauthorized else {
        panic!()
    };
    let body: serde_json::Value = r.into_json().unwrap();
    assert!(body["request_id"].as_str().is_some_and(|s| s.len() == 26));

    // The audit entry and the server's log line of the failed request carry its id.
    let r = ureq::get(&server.url("/v1/audit?limit=10"))
        .set("X-API-Key", admin)
        .call()
        .unwrap();
    let audit: serde_json::Value = r.into_json().unwrap();
    let entries = audit.as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["request_id"] == id.as_str() && e["status"] == 400),
        "{audit}"
    );
    assert!(entries.iter().any(|e| e["request_id"] == "trace-42.a_b:c"));
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains(&id) && l.contains("request")),
        "{text}"
    );
}

#[test]
fn every_malformed_request_part_is_a_json_400_and_whole_numbers_are_integers() {
    let server = Server::start(&[("VULCAN_QEMU_BIN", "/nonexistent/qemu")]);
    let json_400 = |(status, body): (u16, Value), says: &str| {
        assert_eq!(status, 400, "{body}");
        let error = body["error"].as_str().unwrap_or_else(|| panic!("{body}"));
        assert!(error.contains(says), "{error}");
    };
    // A query parameter given twice, a query or path part of the wrong type.
    json_400(
        server.get("/v1/workloads?limit=5&limit=6"),
        "more than once",
    );
    json_400(server.get("/v1/benchmarks?limit=-1e-05"), "limit");
    json_400(
        server.get("/v1/sandboxes/sb1/processes/notanumber"),
        "notanumber",
    );
    // A plain request to a WebSocket route is told what it speaks.
    json_400(server.get("/ws/stats"), "speaks WebSocket");
    // A body that is an array, not an object (serde would read a struct from it).
    json_400(
        server.post_raw("/v1/queues", r#"["jobs", null]"#),
        "not a JSON object",
    );
    // 2.0 is the integer 2 wherever an integer is taken; 2.5 is not one.
    let (status, queue) = server.post(
        "/v1/queues",
        &json!({"name": "jobs", "visibility_timeout_s": 2.0, "max_receives": 3.0}),
    );
    assert_eq!(status, 201, "{queue}");
    assert_eq!(queue["visibility_timeout_s"], 2);
    assert_eq!(queue["max_receives"], 3);
    json_400(
        server.post("/v1/queues", &json!({"name": "more", "max_receives": 2.5})),
        "expected a whole number",
    );
    // The document states the patterns the server checks, and the async invocation route.
    let (_, doc) = server.get("/openapi.json");
    let put_secret = &doc["paths"]["/v1/secrets/{name}"]["put"]["parameters"];
    assert!(
        put_secret
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "name" && p["schema"]["pattern"] == "^[A-Z_][A-Z0-9_]{0,63}$"),
        "{put_secret}"
    );
    assert!(doc["paths"]["/v1/functions/{name}/invoke/async"]["post"].is_object());
}
