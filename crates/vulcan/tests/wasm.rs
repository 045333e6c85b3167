//! WebAssembly on wasmtime, end to end: the real binary, its real helper process
//! (`vulcan wasm-helper`, confined, in its own memory cgroup), modules built here from WAT.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::Server;
use serde_json::{json, Value};

fn module(wat: &str) -> String {
    let bytes = wat::parse_str(wat).expect("valid WAT");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn wasm(code: &str, input: Value, timeout_s: u32) -> Value {
    json!({"runtime": "wasm", "code": code, "input": input,
           "resources": {"timeout_s": timeout_s, "mem_mb": 32}})
}

fn logs(server: &Server, id: &str) -> Vec<(String, String)> {
    let (_, history) = server.get(&format!("/v1/workloads/{id}/logs/history"));
    history["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            (
                l["stream"].as_str().unwrap_or_default().to_owned(),
                l["line"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The helper process of the server whose data directory is `data_dir`.
fn helper_pid(data_dir: &std::path::Path) -> Option<u32> {
    let root = data_dir.join("wasm-root");
    let root = root.to_string_lossy();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains("wasm-helper") && cmdline.contains(root.as_ref())).then_some(pid)
        })
}

/// User plus system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the helper's stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Reads stdin (the input, one line of JSON) and prints it after a greeting; prints a
/// line to stderr first.
const ECHO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 2000) "hello ")
  (data (i32.const 2100) "to stderr\n")
  (func $out (param $fd i32) (param $at i32) (param $len i32)
    (i32.store (i32.const 16) (local.get $at))
    (i32.store (i32.const 20) (local.get $len))
    (drop (call $write (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 24))))
  (func (export "_start")
    (call $out (i32.const 2) (i32.const 2100) (i32.const 10))
    (call $out (i32.const 1) (i32.const 2000) (i32.const 6))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 1000))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $out (i32.const 1) (i32.const 100) (i32.load (i32.const 8)))))"#;

const EXIT_3: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))"#;

/// Grows its memory a MiB at a time, for ever.
const MEMORY_BOMB: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $more (drop (memory.grow (i32.const 16))) (br $more))))"#;

const SPIN: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $l (br $l))))"#;

const UNKNOWN_IMPORT: &str = r#"(module
  (import "env" "launch_missiles" (func $f))
  (func (export "_start") (call $f)))"#;

#[test]
fn a_wasi_command_reads_its_input_on_stdin_and_prints_with_its_exit_code() {
    let server = Server::start(&[]);
    let code = module(ECHO);
    let w = server.run(wasm(&code, json!({"name": "Ada"}), 10));
    assert_eq!(w["status"], "completed", "{w}");
    assert_eq!(w["exit_code"], 0, "{w}");
    assert_eq!(w["output"], r#"hello {"name":"Ada"}"#, "{w}");
    let id = w["id"].as_str().unwrap();
    let lines = logs(&server, id);
    assert!(
        lines.contains(&("stdout".into(), r#"hello {"name":"Ada"}"#.into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&("stderr".into(), "to stderr".into())),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|(s, l)| s == "backend" && l.contains("compiled")),
        "the first run compiles: {lines:?}"
    );
    // The same module again: served from the cache, not compiled.
    let again = server.run(wasm(&code, json!("again"), 10));
    assert_eq!(again["output"], r#"hello "again""#, "{again}");
    let lines = logs(&server, again["id"].as_str().unwrap());
    assert!(
        !lines.iter().any(|(_, l)| l.contains("compiled")),
        "a repeated module is not compiled again: {lines:?}"
    );
    assert!(again["cpu_time_ms"].is_u64(), "{again}");

    let exited = server.run(wasm(&module(EXIT_3), json!(null), 10));
    assert_eq!(exited["status"], "failed", "{exited}");
    assert_eq!(exited["exit_code"], 3, "{exited}");
}

#[test]
fn memory_bombs_loops_and_unknown_imports_fail_with_what_happened() {
    let server = Server::start(&[]);
    let bomb = server.run(wasm(&module(MEMORY_BOMB), json!(null), 10));
    assert_eq!(bomb["status"], "failed", "{bomb}");
    let error = bomb["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("memory limit exceeded") && error.contains("32 MiB"),
        "{bomb}"
    );
    assert!(
        bomb["peak_memory_bytes"].as_u64().unwrap_or(0) <= 32 << 20,
        "{bomb}"
    );

    let started = Instant::now();
    let spin = server.run(wasm(&module(SPIN), json!(null), 1));
    assert_eq!(spin["status"], "failed", "{spin}");
    assert!(
        spin["error"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out after 1 s"),
        "{spin}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{spin}");

    let unknown = server.run(wasm(&module(UNKNOWN_IMPORT), json!(null), 10));
    assert_eq!(unknown["status"], "failed", "{unknown}");
    let error = unknown["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("env.launch_missiles") && error.contains("WASI preview 1"),
        "{unknown}"
    );

    // A kill stops `loop {}` at once: the helper's CPU stays still after it.
    let id = server.submit(wasm(&module(SPIN), json!(null), 60));
    server.wait_status(&id, "running", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let (status, killed) = server.delete(&format!("/v1/workloads/{id}"));
    assert_eq!(status, 200, "{killed}");
    server.wait_status(&id, "killed", Duration::from_secs(5));
    let pid = helper_pid(&server.data_dir).expect("the helper is running");
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(pid) - before;
    assert!(
        spent < 20,
        "the killed loop still spins: {spent} ticks in 1 s"
    );
    // The server is fine, and so is the helper.
    let ok = server.run(wasm(&module(ECHO), json!(1), 10));
    assert_eq!(ok["status"], "completed", "{ok}");
}

#[test]
fn a_helper_killed_mid_run_fails_only_its_runs_and_the_next_gets_a_new_one() {
    let server = Server::start(&[]);
    // The helper starts with the first wasm run.
    let first = server.run(wasm(&module(ECHO), json!("first"), 10));
    assert_eq!(first["status"], "completed", "{first}");
    let id = server.submit(wasm(&module(SPIN), json!(null), 60));
    server.wait_status(&id, "running", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let pid = helper_pid(&server.data_dir).expect("the helper is running");
    // SAFETY: a signal to a process this test found by its command line.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let failed = server.wait_terminal(&id, Duration::from_secs(10));
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("wasm helper process ended"),
        "{failed}"
    );
    let next = server.run(wasm(&module(ECHO), json!("next"), 10));
    assert_eq!(next["status"], "completed", "{next}");
    assert_eq!(next["output"], r#"hello "next""#, "{next}");
    let new_pid = helper_pid(&server.data_dir).expect("a new helper");
    assert_ne!(new_pid, pid);
    let (_, health) = server.get("/healthz");
    assert_eq!(health["status"], "ok");
}

#[test]
fn the_helper_is_confined_to_an_empty_root_without_network_as_nobody() {
    let server = Server::start(&[]);
    let w = server.run(wasm(&module(ECHO), json!(1), 10));
    assert_eq!(w["status"], "completed", "{w}");
    let pid = helper_pid(&server.data_dir).expect("the helper is running");
    let root = std::fs::read_link(format!("/proc/{pid}/root")).expect("its root");
    assert_eq!(root, server.data_dir.join("wasm-root"));
    assert_eq!(
        std::fs::read_dir(&root).expect("the root").count(),
        0,
        "nothing in its root"
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|u| u == "65534"),
        "{uid}"
    );
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let its = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_ne!(own, its, "a network namespace of its own");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let memory = cgroup
        .lines()
        .find(|l| l.contains(":memory:") || l.starts_with("0::"))
        .unwrap_or_default();
    assert!(
        memory.contains("vulcan-isolate"),
        "a memory cgroup of its own: {cgroup}"
    );
}

/// Sleeps a minute in a host call (WASI's `poll_oneoff` on a clock): no wasm instruction
/// runs meanwhile, so epoch interruption alone cannot stop it.
const SLEEPER: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 60000000000))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"#;

#[test]
fn runs_asleep_in_a_host_call_free_their_slots_when_timed_out() {
    let slots = 3;
    let server = Server::start(&[("VULCAN_ISOLATE_CONCURRENCY", "3")]);
    let sleeper = module(SLEEPER);
    let started = Instant::now();
    let ids: Vec<String> = (0..slots)
        .map(|_| server.submit(wasm(&sleeper, Value::Null, 1)))
        .collect();
    for id in &ids {
        let w = server.wait_terminal(id, Duration::from_secs(20));
        assert_eq!(w["status"], "failed", "{w}");
        assert!(
            w["error"]
                .as_str()
                .unwrap_or_default()
                .contains("timed out"),
            "{w}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // As many new runs as there are slots, at once: each gets one within a second.
    let echo = module(ECHO);
    let freed_by = Instant::now();
    let runs: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..slots)
            .map(|i| {
                let (server, echo) = (&server, &echo);
                s.spawn(move || server.run(wasm(echo, json!({"n": i}), 10)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for w in &runs {
        assert_eq!(w["status"], "completed", "{w}");
    }
    assert!(
        freed_by.elapsed() < Duration::from_secs(5),
        "the slots were free at once: {:?}",
        freed_by.elapsed()
    );
}

/// A module whose compilation is made slow on purpose: one function of many thousands of
/// nested blocks.
fn heavy_module(blocks: usize) -> String {
    let mut body = String::new();
    for _ in 0..blocks {
        body.push_str("(block ");
    }
    body.push_str("(nop)");
    for _ in 0..blocks {
        body.push(')');
    }
    let mut funcs = String::new();
    for i in 0..40 {
        funcs.push_str(&format!("(func $f{i} {body})\n"));
    }
    module(&format!(
        "(module (memory (export \"memory\") 1) {funcs} (func (export \"main\") (result i32) (i32.const 7)))"
    ))
}

#[test]
fn compiling_a_module_has_bounds_of_its_own() {
    let server = Server::start(&[("VULCAN_WASM_COMPILE_TIMEOUT_S", "1")]);
    let heavy = heavy_module(20_000);
    let started = Instant::now();
    let w = server.run(wasm(&heavy, json!({"fn": "main"}), 30));
    assert_eq!(w["status"], "failed", "{w}");
    let error = w["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("compiling the module took longer than 1 s"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The helper is fine: other modules compile and run.
    let fine = server.run(wasm(&module(ECHO), json!({"n": 1}), 10));
    assert_eq!(fine["status"], "completed", "{fine}");
}
