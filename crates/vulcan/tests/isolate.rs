//! The isolate backend's acceptance: real HTTP, real Deno processes.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{sum_workload, Server};
use serde_json::{json, Value};

fn node(code: &str) -> Value {
    json!({"runtime": "node", "code": code})
}

/// CPU time is only what the kernel gives: the test that measures it runs alone, the
/// others beside each other.
static CPU: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    CPU.read().unwrap_or_else(|p| p.into_inner())
}

fn alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    CPU.write().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn the_sum_function_returns_its_json() {
    let _cpu = shared();
    let server = Server::start(&[]);
    let w = server.run(sum_workload(1, 2));
    assert_eq!(
        (
            w["status"].as_str(),
            w["output"].as_str(),
            w["isolation"].as_str()
        ),
        (Some("completed"), Some("{\"sum\":3}"), Some("isolate"))
    );
}

#[test]
fn typescript_async_exports_and_plain_scripts_work() {
    let _cpu = shared();
    let server = Server::start(&[]);
    let ts = server.run(json!({"runtime": "node", "input": {"name": "vulcan"},
        "code": "interface In { name: string }\nexport default (i: In): string => `hello ${i.name}`;"}));
    assert_eq!(ts["output"], "\"hello vulcan\"", "{ts}");
    let asynchronous = server.run(json!({"runtime": "node", "input": 21,
        "code": "export default async (n: number) => { await new Promise(r => setTimeout(r, 10)); return n * 2; }"}));
    assert_eq!(asynchronous["output"], "42", "{asynchronous}");
    let script = server.run(node("console.log('one'); console.log({two: 2});"));
    assert_eq!(script["status"], "completed");
    assert_eq!(
        script["output"], "one\n{ two: 2 }",
        "what it printed, less the final newline"
    );
}

#[test]
fn console_lines_stream_live_over_sse_and_stay_in_the_history() {
    let _cpu = shared();
    let server = Server::start(&[]);
    let id = server.submit(node(
        "export default async () => { console.log('first'); await new Promise(r => setTimeout(r, 1500)); console.error('second'); return 'ok'; }",
    ));
    let mut sse = server.sse(&format!("/v1/workloads/{id}/logs"));
    let first = sse.next_event().expect("an event");
    assert_eq!(first.event, "log");
    let line: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(
        (
            line["line"].as_str(),
            line["stream"].as_str(),
            line["seq"].as_u64()
        ),
        (Some("first"), Some("stdout"), Some(1))
    );
    let (status, w) = server.get(&format!("/v1/workloads/{id}"));
    assert_eq!(
        (status, w["status"].as_str()),
        (200, Some("running")),
        "the line arrived while it ran"
    );
    let (rest, done) = sse.collect();
    assert_eq!(rest, ["second"]);
    assert_eq!(done["status"], "completed");

    let (_, history) = server.get(&format!("/v1/workloads/{id}/logs/history"));
    assert_eq!(history["workload_id"], id);
    let lines: Vec<_> = history["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["seq"].as_u64().unwrap(),
                l["line"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(lines, [(1, "first".to_owned()), (2, "second".to_owned())]);
    assert!(history["lines"][0]["created_at"].is_string());
    let (_, stderr_only) = server.get(&format!("/v1/workloads/{id}/logs/history?stream=stderr"));
    assert_eq!(stderr_only["lines"].as_array().unwrap().len(), 1);
    // A finished workload's stream replays its lines, then done.
    let (replayed, done) = server.sse(&format!("/v1/workloads/{id}/logs")).collect();
    assert_eq!(
        (replayed, done["status"].as_str()),
        (
            vec!["first".to_owned(), "second".to_owned()],
            Some("completed")
        )
    );
}

#[test]
fn a_thrown_error_fails_the_workload_with_message_and_stack() {
    let _cpu = shared();
    let server = Server::start(&[]);
    let w = server.run(node(
        "function inner() { throw new RangeError('bad range'); }\nexport default () => inner();",
    ));
    assert_eq!(w["status"], "failed");
    let error = w["error"].as_str().unwrap();
    assert!(error.starts_with("RangeError: bad range"), "{error}");
    assert!(error.contains("at inner"), "the stack is kept: {error}");
}

#[test]
fn code_is_run_once_and_a_syntax_error_is_reported_with_where_it_is() {
    let _cpu = shared();
    let server = Server::start(&[]);
    // JavaScript is tried first, TypeScript next; a module that throws a SyntaxError of
    // its own while it runs must not be run a second time.
    let w = server.run(node(
        "console.log('module body ran'); JSON.parse('{'); export default () => 1;",
    ));
    assert_eq!(w["status"], "failed", "{w}");
    assert!(
        w["error"].as_str().unwrap().starts_with("SyntaxError"),
        "{w}"
    );
    let id = w["id"].as_str().unwrap();
    let logs = server.get(&format!("/v1/workloads/{id}/logs/history")).1;
    let ran = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["line"] == "module body ran")
        .count();
    assert_eq!(ran, 1, "{logs}");

    let broken = server.run(node("export default (x => x;"));
    assert_eq!(broken["status"], "failed", "{broken}");
    let error = broken["error"].as_str().unwrap();
    assert!(error.contains("SyntaxError"), "{error}");
    assert!(
        error.contains("export default (x => x;"),
        "the line is shown: {error}"
    );
}
#[test]
fn wasm_modules_run_with_the_documented_calling_convention() {
    let _cpu = shared();
    // (module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
    let wasm: [u8; 41] = [
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f,
        0x01, 0x7f, 0x03, 0x02, 0x01, 0x00, 0x07, 0x07, 0x01, 0x03, 0x61, 0x64, 0x64, 0x00, 0x00,
        0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x20, 0x01, 0x6a, 0x0b,
    ];
    let code = base64::engine::general_purpose::STANDARD.encode(wasm);
    let server = Server::start(&[]);
    let w = server
        .run(json!({"runtime": "wasm", "code": code, "input": {"fn": "add", "args": [40, 2]}}));
    assert_eq!(
        (w["status"].as_str(), w["output"].as_str()),
        (Some("completed"), Some("42")),
        "{w}"
    );
    let missing = server.run(json!({"runtime": "wasm", "code": code, "input": {"fn": "nope"}}));
    assert!(
        missing["error"]
            .as_str()
            .unwrap()
            .contains("its functions are: add"),
        "{missing}"
    );
}

/// Each hostile workload must fail with a reason that names what was refused.
#[test]
fn hostile_code_is_contained_and_reported_while_the_server_stays_healthy() {
    let _cpu = shared();
    let server = Server::start(&[("VULCAN_MAX_OUTPUT_BYTES", "100000")]);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "infinite loop",
            json!({"runtime": "node", "code": "while (true) {}", "resources": {"timeout_s": 1}}),
            "timed out after 1 s",
        ),
        (
            "heap bomb",
            node("const a = []; while (true) a.push(new Array(1e6).fill(1));"),
            "memory limit exceeded",
        ),
        (
            "buffer bomb",
            node("const a = []; while (true) a.push(new Uint8Array(1e7).fill(1));"),
            "memory limit exceeded",
        ),
        (
            "read /etc/passwd",
            node("export default () => Deno.readTextFileSync('/etc/passwd')"),
            "Requires read access",
        ),
        (
            "import a host file",
            node("export default async () => (await import('file:///etc/passwd'))"),
            "read access",
        ),
        (
            "fetch",
            node("export default async () => (await fetch('http://127.0.0.1:8080/')).status"),
            "Requires net access",
        ),
        (
            "Deno.run",
            node("export default () => Deno.run({cmd: ['/bin/deno', '--version']})"),
            "Requires run access",
        ),
        (
            "Deno.Command",
            node("export default () => new Deno.Command('/bin/deno').outputSync()"),
            "Requires run access",
        ),
        (
            "output over the limit",
            node("export default () => 'x'.repeat(200000)"),
            "over the limit of 100000 bytes",
        ),
    ];
    // The host's environment is not there: the code sees its own `env` only.
    let env = server.run(node(
        "export default () => [Deno.env.get('HOME'), Deno.env.toObject(), Object.keys(process.env)]",
    ));
    assert_eq!(env["output"], "[null,{},[]]", "{env}");
    for (name, body, says) in cases {
        let w = server.run(body);
        assert_eq!(w["status"], "failed", "{name}: {w}");
        let error = w["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(says),
            "{name}: {error:?} should mention {says:?}"
        );
        assert!(
            !w["output"]
                .as_str()
                .unwrap_or_default()
                .contains("root:x:0"),
            "{name} leaked /etc/passwd"
        );
        assert_eq!(
            server.run(sum_workload(1, 2))["output"],
            "{\"sum\":3}",
            "after {name}"
        );
    }
    assert_eq!(server.get("/healthz").1["status"], "ok");
}

#[test]
fn a_million_line_log_flood_is_truncated_with_a_marker() {
    let _cpu = shared();
    let server = Server::start(&[("VULCAN_MAX_LOG_LINES", "1000")]);
    let started = Instant::now();
    let w = server.run(node(
        "for (let i = 0; i < 1000000; i++) console.log('line ' + i); export default () => 'done';",
    ));
    assert_eq!(
        (w["status"].as_str(), w["output"].as_str()),
        (Some("completed"), Some("\"done\"")),
        "{w}"
    );
    let id = w["id"].as_str().unwrap();
    let (_, history) = server.get(&format!("/v1/workloads/{id}/logs/history"));
    let lines = history["lines"].as_array().unwrap();
    assert_eq!(
        lines.len(),
        1002,
        "1000 lines, the truncation marker and the dropped count"
    );
    assert_eq!(lines[999]["line"], "line 999");
    assert!(lines[1000]["line"]
        .as_str()
        .unwrap()
        .contains("log truncated"));
    assert_eq!(lines[1000]["stream"], "backend");
    assert!(lines[1001]["line"]
        .as_str()
        .unwrap()
        .contains("999000 log lines were dropped"));
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn fifty_concurrent_workloads_complete_with_their_own_outputs() {
    let _cpu = shared();
    let server = Server::start(&[]);
    let results: Vec<(i64, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let server = &server;
                s.spawn(move || (i, server.run(json!({"runtime": "node", "input": {"n": i},
                    "code": "export default async (i) => { console.log('n=' + i.n); await new Promise(r => setTimeout(r, 20)); return {n: i.n, sq: i.n * i.n}; }"}))))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, w) in results {
        assert_eq!(w["status"], "completed", "{w}");
        let out: Value = serde_json::from_str(w["output"].as_str().unwrap()).unwrap();
        assert_eq!(out, json!({"n": i, "sq": i * i}));
        let (_, history) = server.get(&format!(
            "/v1/workloads/{}/logs/history",
            w["id"].as_str().unwrap()
        ));
        assert_eq!(history["lines"][0]["line"], format!("n={i}"));
    }
}

#[test]
fn the_pool_can_be_disabled_and_cold_starts_still_work() {
    let _cpu = shared();
    let server = Server::start(&[("VULCAN_ISOLATE_POOL_SIZE", "0")]);
    let (_, backends) = server.get("/v1/backends");
    assert_eq!(backends[0]["details"]["warm_pool"]["size"], 0);
    assert_eq!(server.run(sum_workload(5, 5))["output"], "{\"sum\":10}");
    let big_heap = server.run(
        json!({"runtime": "node", "code": "export default () => 1", "resources": {"mem_mb": 256}}),
    );
    assert_eq!(big_heap["output"], "1");
}

#[test]
fn each_run_reports_the_cpu_time_and_memory_it_really_used() {
    let _cpu = alone();
    let server = Server::start(&[]);
    let busy = server.run(node(
        "export default () => { const end = Date.now() + 1000; let n = 0; while (Date.now() < end) n++; return n > 0; }",
    ));
    assert_eq!(busy["status"], "completed", "{busy}");
    assert!(busy["cpu_time_ms"].as_u64().unwrap() >= 800, "{busy}");
    let mut big = node(
        "export default () => { const a = new Uint8Array(100 * 1024 * 1024); a.fill(7); return a[12345]; }",
    );
    big["resources"] = serde_json::json!({"mem_mb": 256});
    let big = server.run(big);
    assert_eq!(big["output"], "7", "{big}");
    assert!(
        big["peak_memory_bytes"].as_u64().unwrap() >= 100 << 20,
        "{big}"
    );
    let idle = server.run(node(
        "export default async () => { await new Promise(r => setTimeout(r, 1000)); return 1; }",
    ));
    assert!(idle["cpu_time_ms"].as_u64().unwrap() < 300, "{idle}");
    assert_eq!(idle["max_processes"], 1);
    let (_, stats) = server.get("/v1/stats");
    let isolate = &stats["backends"]["isolate"];
    assert!(isolate["measured_runs"].as_u64().unwrap() >= 3, "{stats}");
    assert!(
        isolate["avg_cpu_time_ms"].as_f64().unwrap() > 250.0,
        "{stats}"
    );
}

/// `body` run with `key` (as X-API-Key), waited for.
fn run_as(server: &Server, key: &str, body: Value) -> Value {
    let resp = ureq::post(&server.url("/v1/workloads"))
        .set("X-API-Key", key)
        .send_json(body);
    common::answer_of(resp).1
}

#[test]
fn a_tenants_one_shot_workloads_share_a_process_but_never_an_isolate() {
    let _cpu = shared();
    let server = Server::start(&[("VULCAN_AUTH", "on")]);
    let admin = std::fs::read_to_string(server.data_dir.join("admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    let key = |tenant: &str| {
        let resp = ureq::post(&server.url("/v1/keys"))
            .set("X-API-Key", &admin)
            .send_json(json!({"name": tenant, "role": "developer", "tenant": tenant}));
        common::answer_of(resp).1["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (a, b) = (key("a"), key("b"));
    let probe = json!({"runtime": "node", "code":
        "export default () => { globalThis.count = (globalThis.count ?? 0) + 1; return { pid: Deno.pid, count: globalThis.count }; }"});
    let out = |w: &Value| -> Value {
        assert_eq!(w["status"], "completed", "{w}");
        serde_json::from_str(w["output"].as_str().unwrap()).unwrap()
    };
    // Each job sees a fresh isolate; a tenant's processes serve its later jobs, and only
    // its own (a process is given back once its next Worker is ready: paced jobs reuse it).
    let pids = |key: &str, n: usize| {
        let mut pids = std::collections::HashSet::new();
        for _ in 0..n {
            let o = out(&run_as(&server, key, probe.clone()));
            assert_eq!(o["count"], 1, "no global survives from an earlier job: {o}");
            pids.insert(o["pid"].as_u64().unwrap());
            std::thread::sleep(Duration::from_millis(150));
        }
        pids
    };
    let a_pids = pids(&a, 6);
    assert!(
        a_pids.len() < 6,
        "a tenant's process serves its next job: {a_pids:?}"
    );
    let b_pids = pids(&b, 3);
    assert!(
        a_pids.is_disjoint(&b_pids),
        "no process serves two tenants: {a_pids:?} {b_pids:?}"
    );

    // A memory bomb ends its process: it fails alone, and the next job gets another.
    let bomb = run_as(
        &server,
        &a,
        json!({"runtime": "node", "code":
        "const keep = []; for (;;) keep.push(new Array(1e6).fill(1));"}),
    );
    assert_eq!(bomb["status"], "failed", "{bomb}");
    assert!(
        bomb["error"]
            .as_str()
            .unwrap()
            .contains("memory limit exceeded"),
        "{bomb}"
    );
    // So does an exit, as it did when each job had its own process.
    let exit = run_as(
        &server,
        &a,
        json!({"runtime": "node", "code": "Deno.exit(3);"}),
    );
    assert_eq!(exit["status"], "failed", "{exit}");
    assert!(exit["error"].as_str().unwrap().contains("3"), "{exit}");
    let after = pids(&a, 2);
    assert!(after.is_disjoint(&b_pids), "{after:?} {b_pids:?}");
}

/// Writes frames the way the runner does, straight to the process's stdout, by whatever
/// way a job's isolate finds: the runner's frames are then forged, and must fool nobody.
const FORGER: &str = r#"
const enc = new TextEncoder();
const ways = [];
const f = (o) => JSON.stringify(o) + "\n";
const write = async (text) => {
  const bytes = enc.encode(text);
  try { Deno.stdout.writeSync(bytes); ways.push("Deno.stdout"); return; } catch (_) {}
  try { const p = (await import("node:process")).default; p.stdout.write(text); ways.push("node:process"); return; } catch (_) {}
  ways.push("none");
};
await write(f({ t: "r", v: JSON.stringify("forged") }) + f({ t: "n" }));
for (let i = 1; i <= 5; i++) {
  await new Promise((r) => setTimeout(r, 400));
  await write(f({ t: "o", l: "FORGED LINE" }) + f({ t: "e", l: "FORGED ERROR" }) +
    f({ t: "r", v: JSON.stringify("forged later") }) + f({ t: "n" }));
}
console.log("ways: " + ways.join(","));
"#;

#[test]
fn a_job_that_forges_the_runners_frames_cannot_answer_for_the_next_job() {
    let _cpu = shared();
    let server = Server::start(&[("VULCAN_AUTH", "on"), ("VULCAN_ISOLATE_POOL_SIZE", "2")]);
    let admin = std::fs::read_to_string(server.data_dir.join("admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    let resp = ureq::post(&server.url("/v1/keys"))
        .set("X-API-Key", &admin)
        .send_json(json!({"name": "t", "role": "developer", "tenant": "t"}));
    let key = common::answer_of(resp).1["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // The tenant's jobs run in pooled processes from now on (paced: each is given back
    // once its next Worker is ready), so the forger runs in one another job may get next.
    for _ in 0..4 {
        let w = run_as(
            &server,
            &key,
            json!({"runtime": "node", "code": "export default () => 1"}),
        );
        assert_eq!(w["status"], "completed", "{w}");
        std::thread::sleep(Duration::from_millis(150));
    }
    std::thread::scope(|s| {
        let forger = s.spawn(|| run_as(&server, &key, json!({"runtime": "node", "code": FORGER})));
        std::thread::sleep(Duration::from_millis(150));
        // The tenant's next jobs, back to back while the forger still runs and writes.
        for i in 0..12 {
            let marker = format!("honest {i}");
            let w = run_as(
                &server,
                &key,
                json!({"runtime": "node", "code": format!(
                    "export default async () => {{ await new Promise((r) => setTimeout(r, 200)); console.log('line of {i}'); return '{marker}'; }}"
                )}),
            );
            assert_eq!(w["status"], "completed", "{w}");
            assert_eq!(
                w["output"],
                json!(format!("\"{marker}\"")),
                "a job's result is its own: {w}"
            );
            let id = w["id"].as_str().unwrap();
            let (_, logs) = common::answer_of(
                ureq::get(&server.url(&format!("/v1/workloads/{id}/logs/history")))
                    .set("X-API-Key", &key)
                    .call(),
            );
            let text = logs.to_string();
            assert!(!text.contains("FORGED"), "a job's log is its own: {text}");
            assert!(text.contains(&format!("line of {i}")), "{text}");
        }
        let forger = forger.join().unwrap();
        // The forger's own run ends (what it wrote is its own business).
        assert_eq!(forger["status"], "completed", "{forger}");
    });
}
