//! Schedules and secrets end to end: the real binary, real Deno isolates (and a real runsc
//! sandbox for a secret in an image), a real SQLite file.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, Server};
use serde_json::{json, Value};
use time::OffsetDateTime;
use vulcan_gvisor::testing::Registry;

fn put(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    server.put(path, body)
}

fn patch(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    common::answer_of(
        ureq::request("PATCH", &server.url(path))
            .set("Content-Type", "application/json")
            .send_string(&body.to_string()),
    )
}

fn deploy(server: &Server, name: &str, code: &str) {
    let (status, v) = put(
        server,
        &format!("/v1/functions/{name}"),
        &json!({"runtime": "node", "code": code}),
    );
    assert!(status == 200 || status == 201, "{v}");
}

fn schedule(server: &Server, body: Value) -> Value {
    let (status, s) = server.post("/v1/schedules", &body);
    assert_eq!(status, 201, "{s}");
    s
}

/// The runs a schedule fired, oldest first.
fn runs(server: &Server, id: &str) -> Vec<Value> {
    let (status, page) = server.get(&format!("/v1/workloads?schedule={id}&limit=100"));
    assert_eq!(status, 200, "{page}");
    let mut list = page["workloads"].as_array().unwrap().clone();
    list.reverse();
    list
}

fn time_of(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(
        v.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

#[test]
fn a_schedule_fires_on_its_ticks_each_run_a_workload_until_disabled() {
    let server = Server::start(&[]);
    deploy(
        &server,
        "tick",
        "let n = 0; export default (i) => ({n: ++n, hello: i.hello})",
    );
    let s = schedule(
        &server,
        json!({"function": "tick", "cron": "*/2 * * * * *", "input": {"hello": "world"}}),
    );
    let id = s["id"].as_str().unwrap().to_owned();
    assert!(s["next_run_at"].is_string(), "{s}");
    std::thread::sleep(Duration::from_secs(7));
    let fired = runs(&server, &id);
    assert!(
        (3..=4).contains(&fired.len()),
        "a */2 s schedule fires 3 or 4 times in 7 s: {}",
        fired.len()
    );
    for w in &fired {
        assert_eq!(w["trigger"], json!({"kind": "schedule", "id": id}));
        assert_eq!(w["function"], "tick");
        let done = server.wait_terminal(w["id"].as_str().unwrap(), Duration::from_secs(10));
        let out: Value = serde_json::from_str(done["output"].as_str().unwrap()).unwrap();
        assert_eq!(out["hello"], "world", "{done}");
    }
    // Ticks are two seconds apart: never two runs for one tick.
    let created: Vec<OffsetDateTime> = fired.iter().map(|w| time_of(&w["created_at"])).collect();
    for pair in created.windows(2) {
        assert!(
            pair[1] - pair[0] > time::Duration::milliseconds(1500),
            "{created:?}"
        );
    }
    // The schedule names its last run. Read between two ticks: a tick may fire between
    // reading the runs and reading the schedule.
    let (last, newest) = eventually(Duration::from_secs(5), "a read between ticks", || {
        let newest = runs(&server, &id).last()?["id"].clone();
        let (_, shown) = server.get(&format!("/v1/schedules/{id}"));
        let again = runs(&server, &id).last()?["id"].clone();
        (again == newest).then(|| (shown["last_workload_id"].clone(), newest))
    });
    assert_eq!(last, newest);

    let (status, off) = patch(
        &server,
        &format!("/v1/schedules/{id}"),
        &json!({"enabled": false}),
    );
    assert_eq!(
        (status, off["enabled"].as_bool()),
        (200, Some(false)),
        "{off}"
    );
    assert!(off["next_run_at"].is_null());
    let before = runs(&server, &id).len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        runs(&server, &id).len(),
        before,
        "a disabled schedule fires nothing"
    );

    // Bad requests say what is wrong.
    for (body, says) in [
        (json!({"function": "tick", "cron": "* * *"}), "3 fields"),
        (
            json!({"function": "tick", "cron": "99 * * * *"}),
            "not valid",
        ),
        (
            json!({"function": "tick", "cron": "* * * * *", "timezone": "Nowhere/City"}),
            "IANA",
        ),
        (
            json!({"function": "ghost", "cron": "* * * * *"}),
            "does not exist",
        ),
        (
            json!({"function": "tick", "cron": "* * * * *", "overlap": "maybe"}),
            "overlap",
        ),
    ] {
        let (status, e) = server.post("/v1/schedules", &body);
        assert_eq!(status, 400, "{body}: {e}");
        assert!(e["error"].as_str().unwrap().contains(says), "{e}");
    }
    assert_eq!(server.delete(&format!("/v1/schedules/{id}")).0, 204);
    assert_eq!(server.get(&format!("/v1/schedules/{id}")).0, 404);
}

#[test]
fn overlap_skip_starts_no_run_while_the_last_one_goes() {
    let server = Server::start(&[]);
    deploy(
        &server,
        "slow",
        "export default async () => { await new Promise(r => setTimeout(r, 5000)); return 1; }",
    );
    let s = schedule(&server, json!({"function": "slow", "cron": "* * * * * *"}));
    let id = s["id"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(6500));
    let fired = runs(&server, &id);
    assert!(!fired.is_empty() && fired.len() <= 2, "{fired:?}");
    // No run started before the one before it had finished.
    let done: Vec<Value> = fired
        .iter()
        .map(|w| server.wait_terminal(w["id"].as_str().unwrap(), Duration::from_secs(15)))
        .collect();
    for pair in done.windows(2) {
        assert!(
            time_of(&pair[1]["started_at"]) >= time_of(&pair[0]["finished_at"]),
            "{pair:?}"
        );
    }
    let (_, shown) = server.get(&format!("/v1/schedules/{id}"));
    assert!(shown["skipped_ticks"].as_u64().unwrap() >= 3, "{shown}");
    assert!(
        shown["last_skip_reason"]
            .as_str()
            .unwrap()
            .contains("is still running"),
        "{shown}"
    );
}

#[test]
fn after_downtime_the_missed_ticks_fire_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    deploy(&server, "beat", "export default () => 1");
    let s = schedule(
        &server,
        json!({"function": "beat", "cron": "*/5 * * * * *"}),
    );
    let id = s["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(8), "a first run, finished", || {
        runs(&server, &id)
            .first()
            .filter(|w| w["status"] == "completed")
            .map(|_| ())
    });
    server.kill9();
    std::thread::sleep(Duration::from_secs(12));
    let restarted = OffsetDateTime::now_utc();
    let server = Server::start_in(dir.path(), &[]);
    let had = runs(&server, &id)
        .iter()
        .filter(|w| time_of(&w["created_at"]) < restarted)
        .count();
    // The catch-up run, at once; the next tick is then the first after now.
    let shown = eventually(Duration::from_secs(3), "the catch-up run", || {
        let (_, s) = server.get(&format!("/v1/schedules/{id}"));
        let last = s["last_run_at"]
            .as_str()
            .map(|_| time_of(&s["last_run_at"]))?;
        (last < restarted && runs(&server, &id).len() > had).then_some(s)
    });
    let next = time_of(&shown["next_run_at"]);
    assert!(next > restarted, "{shown}");
    let wait = next - OffsetDateTime::now_utc() - time::Duration::milliseconds(300);
    if wait.is_positive() {
        std::thread::sleep(Duration::try_from(wait).unwrap());
    }
    let after = runs(&server, &id);
    let caught_up = after
        .iter()
        .filter(|w| time_of(&w["created_at"]) >= restarted)
        .count();
    assert_eq!(
        caught_up, 1,
        "two or three ticks were missed; one run makes up for them: {after:?}"
    );
}

/// Starts `vulcan serve` expecting it to refuse; returns what it said.
fn refused_start(data_dir: &Path, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vulcan"));
    cmd.arg("serve")
        .env(
            "VULCAN_LISTEN_ADDR",
            format!("127.0.0.1:{}", common::free_port()),
        )
        .env("VULCAN_DATA_DIR", data_dir)
        .env("VULCAN_AUTH", "off")
        .env("VULCAN_MICROVM_POOL", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success());
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return err;
        }
        assert!(Instant::now() < deadline, "the server started anyway");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every byte of the database, its WAL and its shared memory.
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["vulcan.db", "vulcan.db-wal", "vulcan.db-shm"] {
        all.extend(std::fs::read(dir.join(name)).unwrap_or_default());
    }
    all
}

const KEY_1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
const KEY_3: &str = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=";

#[test]
fn secrets_reach_the_code_masked_never_stored_in_clear_and_survive_a_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let plain = "s3cr3t-Vulcan-Value-42";
    let server = Server::start_in(dir.path(), &[("VULCAN_SECRET_KEY", KEY_1)]);
    let (status, info) = put(&server, "/v1/secrets/DB_PASSWORD", &json!({"value": plain}));
    assert_eq!((status, info["version"].as_u64()), (200, Some(1)), "{info}");
    assert!(!info.to_string().contains(plain));
    let (status, e) = put(&server, "/v1/secrets/db-password", &json!({"value": "x"}));
    assert_eq!(status, 400, "{e}");

    // The code reads it (and a plain env value) through Deno.env and process.env; what it
    // prints or returns is masked in the logs, SSE and output.
    let code = "export default () => { console.log('the password is ' + Deno.env.get('DB_PASSWORD')); return {p: process.env.DB_PASSWORD, mode: Deno.env.get('MODE')}; }";
    let id = server.submit(json!({"runtime": "node", "code": code,
        "secrets": ["DB_PASSWORD"], "env": {"MODE": "test"}}));
    let (names, _) = server.sse(&format!("/v1/workloads/{id}/logs")).collect();
    assert!(!names.is_empty());
    let w = server.wait_terminal(&id, Duration::from_secs(20));
    assert_eq!(w["status"], "completed", "{w}");
    let output: Value = serde_json::from_str(w["output"].as_str().unwrap()).unwrap();
    assert_eq!(output, json!({"p": "[secret:DB_PASSWORD]", "mode": "test"}));
    let (_, logs) = server.get(&format!("/v1/workloads/{id}/logs/history"));
    assert!(
        logs.to_string()
            .contains("the password is [secret:DB_PASSWORD]"),
        "{logs}"
    );
    let mut stream = server.sse(&format!("/v1/workloads/{id}/logs"));
    let mut streamed = String::new();
    while let Some(event) = stream.next_event() {
        streamed.push_str(&event.data.to_string());
    }
    assert!(
        streamed.contains("[secret:DB_PASSWORD]") && !streamed.contains(plain),
        "{streamed}"
    );
    let (_, spec_view) = server.get(&format!("/v1/workloads/{id}"));
    assert!(!spec_view.to_string().contains(plain));

    // Functions reference secrets too; a reference to a missing one (another tenant's
    // included: these are all of tenant "default") is refused.
    let (status, _) = put(
        &server,
        "/v1/functions/reader",
        &json!({"runtime": "node", "secrets": ["DB_PASSWORD"], "code": "export default () => Deno.env.get('DB_PASSWORD').length"}),
    );
    assert_eq!(status, 201);
    let (_, invoked) = server.post("/v1/functions/reader/invoke", &json!({}));
    assert_eq!(invoked["output"], plain.len().to_string(), "{invoked}");
    let (status, e) = server.post(
        "/v1/workloads",
        &json!({"runtime": "node", "code": "export default () => 1", "secrets": ["NOPE"]}),
    );
    assert_eq!(status, 400);
    assert!(
        e["error"].as_str().unwrap().contains("NOPE does not exist"),
        "{e}"
    );
    let (_, listed) = server.get("/v1/secrets");
    assert_eq!(listed[0]["name"], "DB_PASSWORD");
    assert!(!listed.to_string().contains(plain));
    let (_, audit) = server.get("/v1/audit?limit=100");
    assert!(!audit.to_string().contains(plain));
    drop(server);
    let bytes = database_bytes(dir.path());
    assert!(!bytes.is_empty());
    assert!(
        !contains(&bytes, plain.as_bytes()),
        "the plaintext is in the database files"
    );

    // A wrong key is refused at start, with what to do.
    let said = refused_start(dir.path(), &[("VULCAN_SECRET_KEY", KEY_3)]);
    assert!(said.contains("does not fit the stored secrets"), "{said}");

    // Rotation: the new key with the old one as previous, then rotate-key.
    let server = Server::start_in(
        dir.path(),
        &[
            ("VULCAN_SECRET_KEY", KEY_2),
            ("VULCAN_SECRET_KEY_PREVIOUS", KEY_1),
        ],
    );
    let (status, rotated) = server.post("/v1/secrets/rotate-key", &json!({}));
    assert_eq!(
        (status, rotated["resealed"].as_u64()),
        (200, Some(1)),
        "{rotated}"
    );
    drop(server);
    // Only the new key now: every value opens; the old key alone is refused.
    let said = refused_start(dir.path(), &[("VULCAN_SECRET_KEY", KEY_1)]);
    assert!(said.contains("does not fit the stored secrets"), "{said}");
    let server = Server::start_in(dir.path(), &[("VULCAN_SECRET_KEY", KEY_2)]);
    let (_, invoked) = server.post("/v1/functions/reader/invoke", &json!({}));
    assert_eq!(invoked["output"], plain.len().to_string(), "{invoked}");
}

#[test]
fn a_node_alone_makes_its_key_once_and_a_secret_reaches_an_image() {
    let registry = Registry::start();
    let image = registry.push("busybox:1", "busybox");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(
        dir.path(),
        &[("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())],
    );
    let key = dir.path().join("secret.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let made = std::fs::read_to_string(&key).unwrap();
    let (status, _) = put(
        &server,
        "/v1/secrets/TOKEN",
        &json!({"value": "tok-123456"}),
    );
    assert_eq!(status, 200);
    let w = server.run(
        json!({"runtime": "oci", "image": image, "secrets": ["TOKEN"],
        "command": ["sh", "-c", "echo token=$TOKEN; echo ${#TOKEN}"]}),
    );
    assert_eq!(w["output"], "token=[secret:TOKEN]\n10", "{w}");
    drop(server);
    let server = Server::start_in(
        dir.path(),
        &[("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())],
    );
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        made,
        "the key is kept"
    );
    let w = server.run(
        json!({"runtime": "oci", "image": image, "secrets": ["TOKEN"],
        "command": ["sh", "-c", "echo ${#TOKEN}"]}),
    );
    assert_eq!(w["output"], "10", "{w}");
}

#[test]
fn a_patch_stores_the_function_it_names() {
    let server = Server::start(&[]);
    deploy(&server, "first", "export default () => 'first'");
    deploy(&server, "second", "export default () => 'second'");
    let s = schedule(
        &server,
        json!({"function": "first", "cron": "0 0 1 1 *", "enabled": false}),
    );
    let id = s["id"].as_str().unwrap();
    let (status, changed) = patch(
        &server,
        &format!("/v1/schedules/{id}"),
        &json!({"function": "second"}),
    );
    assert_eq!(
        (status, &changed["function"]),
        (200, &json!("second")),
        "{changed}"
    );
    let (_, stored) = server.get(&format!("/v1/schedules/{id}"));
    assert_eq!(
        stored["function"], "second",
        "what was answered is what is kept: {stored}"
    );
    // An unknown function is refused, and the schedule keeps its own.
    let (status, e) = patch(
        &server,
        &format!("/v1/schedules/{id}"),
        &json!({"function": "ghost"}),
    );
    assert_eq!(status, 400, "{e}");
    assert_eq!(
        server.get(&format!("/v1/schedules/{id}")).1["function"],
        "second"
    );
}

#[test]
fn a_tenant_is_held_to_its_schedule_quota_and_shortest_interval() {
    let server = Server::start(&[
        ("VULCAN_TENANT_MAX_SCHEDULES", "3"),
        ("VULCAN_TENANT_MIN_SCHEDULE_INTERVAL_S", "10"),
    ]);
    deploy(&server, "f", "export default () => 1");
    let quiet = json!({"function": "f", "cron": "0 0 1 1 *", "enabled": false});
    for _ in 0..3 {
        schedule(&server, quiet.clone());
    }
    let (status, e) = server.post("/v1/schedules", &quiet);
    assert_eq!(status, 403, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("max_schedules"),
        "{e}"
    );
    // Too often for the quota: 400 naming the minimum.
    let (status, e) = server.post(
        "/v1/schedules?tenant=other",
        &json!({"function": "f", "cron": "*/5 * * * * *"}),
    );
    assert_eq!(status, 400, "{e}");
    let error = e["error"].as_str().unwrap();
    assert!(
        error.contains("every 10 s") && error.contains("min_schedule_interval_s"),
        "{error}"
    );
    // Both are in the quota API, per tenant.
    let (status, q) = server.get("/v1/tenants/default/quota");
    assert_eq!(status, 200);
    assert_eq!(
        (&q["max_schedules"], &q["min_schedule_interval_s"]),
        (&json!(3), &json!(10)),
        "{q}"
    );
    let (status, q) = put(
        &server,
        "/v1/tenants/default/quota",
        &json!({"max_concurrent": 64, "per_minute": 600, "max_cpus": 64, "max_mem_mb": 16384,
                "max_schedules": 4, "min_schedule_interval_s": 2}),
    );
    assert_eq!(status, 200, "{q}");
    schedule(&server, quiet.clone());
    assert_eq!(server.post("/v1/schedules", &quiet).0, 403);
    let (status, e) = put(
        &server,
        "/v1/tenants/default/quota",
        &json!({"max_concurrent": 64, "per_minute": 600, "max_cpus": 64, "max_mem_mb": 16384,
                "max_schedules": 100, "min_schedule_interval_s": 2}),
    );
    assert_eq!(status, 200, "{e}");
    assert_eq!(
        server
            .post(
                "/v1/schedules",
                &json!({"function": "f", "cron": "*/2 * * * * *", "enabled": false})
            )
            .0,
        201
    );
    assert_eq!(
        server
            .post(
                "/v1/schedules",
                &json!({"function": "f", "cron": "* * * * * *"})
            )
            .0,
        400
    );
}

#[test]
fn one_tenants_many_schedules_never_hold_back_anothers_tick() {
    let server = Server::start(&[("VULCAN_TENANT_MAX_SCHEDULES", "5000")]);
    let b = common::schedules_beside_a_flood(&server, 2000, "*/2 * * * * *");
    std::thread::sleep(Duration::from_secs(9));
    let fired = runs(&server, &b);
    assert!(fired.len() >= 3, "b's schedule fired: {}", fired.len());
    // Each of b's runs was created within a second of its tick (ticks fall on even seconds).
    for w in &fired {
        let created = time_of(&w["created_at"]);
        let tick = created.unix_timestamp() - created.unix_timestamp().rem_euclid(2);
        let late = created - OffsetDateTime::from_unix_timestamp(tick).unwrap();
        assert!(
            late < time::Duration::seconds(1),
            "b's tick was held back {late} by a's schedules"
        );
    }
    let (_, shown) = server.get(&format!("/v1/schedules/{b}"));
    assert_eq!(
        shown["skipped_ticks"], 0,
        "none of b's ticks was skipped: {shown}"
    );
}

#[test]
fn a_secret_that_is_not_text_is_refused_without_repeating_it() {
    let server = Server::start(&[
        ("VULCAN_AUTH", "on"),
        ("VULCAN_ADMIN_KEY", "vk_sec_0123456789"),
    ]);
    for body in [
        json!({"value": 987654321}),
        json!({"value": {"nested": "s3cr3t-in-an-object"}}),
        json!({"value": ["s3cr3t-in-a-list"]}),
    ] {
        let (status, e) = common::answer_of(
            ureq::put(&server.url("/v1/secrets/TOKEN"))
                .set("X-API-Key", "vk_sec_0123456789")
                .send_json(body.clone()),
        );
        assert_eq!(status, 400, "{e}");
        let text = e.to_string();
        assert!(text.contains("must be a string"), "{text}");
        for secret in ["987654321", "s3cr3t"] {
            assert!(
                !text.contains(secret),
                "the error repeats the value: {text}"
            );
        }
    }
    let (_, audit) = common::answer_of(
        ureq::get(&server.url("/v1/audit?action=secret.put"))
            .set("X-API-Key", "vk_sec_0123456789")
            .call(),
    );
    let audit = audit.to_string();
    assert!(
        audit.contains("must be a string"),
        "the refusals are audited: {audit}"
    );
    for secret in ["987654321", "s3cr3t"] {
        assert!(
            !audit.contains(secret),
            "the audit log repeats the value: {audit}"
        );
    }
}
