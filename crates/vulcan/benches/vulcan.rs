//! `cargo bench -p vulcan`: figures for the core API and the isolate backend, measured
//! against the real release binary on loopback. Prints one table; nothing is asserted.
//! A figure taken back to back ends with what the whole machine's CPU spent per operation
//! (`CPU/op`, from `/proc/stat`: the clients, the server, its sandboxes and database).
//!
//! - isolate warm: sequential `POST /v1/workloads` of the sum function (pool on), and
//!   throughput with two clients;
//! - isolate cold (pool off) next to a bare `deno run` of the same function;
//! - isolate one-shots back to back and with four clients, next to a bare `deno run` and
//!   to what a fresh Worker costs this host outside Vulcan;
//! - API overhead: `POST /v1/workloads/async` + `GET /v1/workloads/{id}`;
//! - the store with 1,000,000 workloads, on SQLite and on PostgreSQL: list and stats for
//!   an admin and for a tenant's key, a page deep in the list by offset and by cursor;
//! - the cluster: queue wake-up on an idle cluster, no-op throughput via 1 and 3 nodes;
//! - gvisor: `echo hi` through the API next to a bare `runsc run` of the same bundle
//!   (same image root, same spec), and throughput with both cores busy.
//!
//! - microvm: cold and warm-pool end-to-end latency of a python workload, the boot time to
//!   the agent's Ready frame, next to a bare QEMU boot of the same kernel and initramfs to a
//!   trivial init; python and node `6*7` one-shots through the boot path and through the
//!   restore path (snapshots), the restore-to-running time next to a bare QEMU `-incoming`
//!   of the same snapshot file, each interpreter's own start in the guest, and the pool of
//!   restored VMs back to back.
//!
//! - egress: the start cost of a network policy on gvisor, isolates and microVMs (with and
//!   without, side by side, on a server with the default warm pools), a fetch by name
//!   through the sandbox's resolver, and what a thousand workloads with a policy leave
//!   behind (the stock made ahead; nothing once the server stopped), against the tests' fake
//!   internet.
//!
//! - templates: a ~230 MB Debian image with numpy as a microVM's root: its first run on a
//!   fresh node (convert + boot + snapshot), then `import numpy` through the template's
//!   restore next to a built-in python one-shot through its own, one client, pool off.
//!
//! - sandboxes (gVisor): create → first answer, back to back and with two clients; the round
//!   trip of `true` in a running sandbox with one and four clients; 50 held at once, with the
//!   memory each costs.
//!
//! - schedules: one tenant's 5,000 one-second schedules beside another tenant's one: how
//!   late the other's ticks fire.
//!
//! - queues: messages per second into a warm node function fed by a queue (batch 1 and 10)
//!   on SQLite and on PostgreSQL, and send → invocation start on an idle node.
//!
//! `VULCAN_BENCH_N` sets the samples per figure (microvm takes at most 10, egress's microVMs
//! at most 30);
//! `VULCAN_BENCH_ONLY=isolate,cold,oneshot,gvisor,sandboxes,egress,templates,microvm,gosource,wasm,api,traces,store,database,cluster,functions,schedules,queues` picks sections.

#[path = "vulcan/cluster.rs"]
mod cluster;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "vulcan/database.rs"]
mod database;
#[path = "vulcan/egress.rs"]
mod egress;
#[path = "vulcan/functions.rs"]
mod functions;
#[path = "vulcan/gvisor.rs"]
mod gvisor;
#[path = "../tests/common/internet.rs"]
mod internet;
#[path = "vulcan/microvm.rs"]
mod microvm;
#[path = "vulcan/queues.rs"]
mod queues;
#[path = "vulcan/sandboxes.rs"]
mod sandboxes;
#[path = "vulcan/schedules.rs"]
mod schedules;
#[path = "vulcan/store.rs"]
mod store;
#[path = "vulcan/templates.rs"]
mod templates;
#[path = "vulcan/traces.rs"]
mod traces;

use std::time::{Duration, Instant};

use common::{sum_workload, Server};

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

struct Figures {
    name: String,
    samples: Vec<Duration>,
    wall: Duration,
    /// The whole machine's busy CPU time over the figure's window (every process: the
    /// clients, the server, its sandboxes, the database), for samples taken back to back.
    cpu: Option<Duration>,
}

/// The whole machine's busy CPU time so far (all cores: `/proc/stat`, less idle and
/// iowait): the difference over a window is what everything running then cost.
fn busy_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .enumerate()
        // user nice system idle iowait irq softirq steal: all but idle and iowait.
        .filter(|(i, _)| ![3, 4].contains(i) && *i < 8)
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no memory preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / per_second)
}

impl Figures {
    /// Latency only (for samples taken with pauses between them).
    fn print_latency(mut self) {
        self.samples.sort();
        println!(
            "{:<46} n={:<6} p50={:>8.2} ms  p95={:>8.2} ms  p99={:>8.2} ms",
            self.name,
            self.samples.len(),
            percentile(&self.samples, 0.50),
            percentile(&self.samples, 0.95),
            percentile(&self.samples, 0.99),
        );
    }

    /// The machine's CPU time per sample, in ms.
    fn cpu_per_op(&self) -> Option<f64> {
        self.cpu
            .map(|cpu| cpu.as_secs_f64() * 1000.0 / self.samples.len().max(1) as f64)
    }

    /// Latency, throughput and (when measured) the machine's CPU time per operation.
    fn print(mut self) {
        self.samples.sort();
        let n = self.samples.len();
        let cpu = self
            .cpu_per_op()
            .map_or(String::new(), |ms| format!("  {ms:>6.2} ms CPU/op"));
        println!(
            "{:<46} n={:<6} p50={:>8.2} ms  p95={:>8.2} ms  p99={:>8.2} ms  {:>8.1} /s{cpu}",
            self.name,
            n,
            percentile(&self.samples, 0.50),
            percentile(&self.samples, 0.95),
            percentile(&self.samples, 0.99),
            n as f64 / self.wall.as_secs_f64()
        );
    }
}

/// Prints both figures and Vulcan's overhead over the bare run at p50.
fn print_overhead(label: &str, vulcan: Figures, bare: Figures) {
    let (mut v, mut b) = (vulcan.samples.clone(), bare.samples.clone());
    v.sort();
    b.sort();
    let overhead = (percentile(&v, 0.5) / percentile(&b, 0.5) - 1.0) * 100.0;
    vulcan.print();
    bare.print();
    println!("{label:<46} {overhead:+.1}% at p50");
}

/// Runs `f` `n` times on each of `clients` threads.
fn measure(name: &str, n: usize, clients: usize, f: impl Fn() + Sync) -> Figures {
    measure_paced(name, n, clients, Duration::ZERO, f)
}

/// Like [`measure`], pausing `pause` (not measured) between calls.
fn measure_paced(
    name: &str,
    n: usize,
    clients: usize,
    pause: Duration,
    f: impl Fn() + Sync,
) -> Figures {
    let (started, busy) = (Instant::now(), busy_cpu());
    let samples = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    (0..n)
                        .map(|_| {
                            std::thread::sleep(pause);
                            let t = Instant::now();
                            f();
                            t.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    Figures {
        name: name.into(),
        samples,
        wall: started.elapsed(),
        cpu: Some(busy_cpu().saturating_sub(busy)),
    }
}

fn sum_ok(server: &Server) {
    let w = server.run(sum_workload(1, 2));
    assert_eq!(w["output"], "{\"sum\":3}", "{w}");
}

fn isolate(n: usize) {
    let server = Server::start(&[("VULCAN_ISOLATE_POOL_SIZE", "4")]);
    std::thread::sleep(Duration::from_secs(1));
    for _ in 0..20 {
        sum_ok(&server);
    }
    // Leave the pool time to refill between requests, as a steady trickle of traffic would.
    measure_paced(
        "isolate warm: POST /v1/workloads (sum)",
        n,
        1,
        Duration::from_millis(30),
        || sum_ok(&server),
    )
    .print();
    measure("isolate warm: 2 clients back to back", n, 2, || {
        sum_ok(&server)
    })
    .print();
}

fn cold(n: usize) {
    let server = Server::start(&[("VULCAN_ISOLATE_POOL_SIZE", "0")]);
    for _ in 0..5 {
        sum_ok(&server);
    }
    let vulcan = measure("isolate cold (pool 0): POST /v1/workloads", n, 1, || {
        sum_ok(&server)
    });

    let bare = bare_deno_run(&server, n);
    print_overhead("cold overhead over bare deno run", vulcan, bare);
}

/// `clients` threads running `f` back to back for `secs` seconds.
fn for_seconds(name: &str, clients: usize, secs: u64, f: impl Fn() + Sync) -> Figures {
    let stop = Instant::now() + Duration::from_secs(secs);
    let (started, busy) = (Instant::now(), busy_cpu());
    let samples = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let mut v = Vec::new();
                    while Instant::now() < stop {
                        let t = Instant::now();
                        f();
                        v.push(t.elapsed());
                    }
                    v
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    Figures {
        name: name.into(),
        samples,
        wall: started.elapsed(),
        cpu: Some(busy_cpu().saturating_sub(busy)),
    }
}

/// A WASI command that reads its input from stdin and prints it.
const WASI_ECHO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 1000))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 16) (i32.const 100))
    (i32.store (i32.const 20) (i32.load (i32.const 8)))
    (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))"#;

/// Fresh wasm workloads (a new instance each) on wasmtime, over HTTP.
fn wasm(n: usize) {
    use base64::Engine as _;
    let server = Server::start(&[]);
    let code = base64::engine::general_purpose::STANDARD.encode(wat::parse_str(WASI_ECHO).unwrap());
    let body = serde_json::json!({"runtime": "wasm", "code": code, "input": {"n": 42}});
    let run = || {
        let w = server.run(body.clone());
        assert_eq!(w["output"], "{\"n\":42}", "{w}");
    };
    for _ in 0..50 {
        run();
    }
    measure("wasm (WASI, fresh instance): 1 client", n, 1, run).print();
    for_seconds("wasm (WASI, fresh instance): 4 clients, 10 s", 4, 10, run).print();
}

/// The Deno binary `server`'s isolate backend runs.
fn deno_path(server: &Server) -> String {
    server.get("/v1/backends").1[0]["details"]["deno_path"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A bare `deno run` of the sum function (with the flags Vulcan's processes get), `n` times.
fn bare_deno_run(server: &Server, n: usize) -> Figures {
    let deno = deno_path(server);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("sum.js");
    std::fs::write(
        &script,
        "const f = (i) => ({sum: i.a + i.b});\nconsole.log(JSON.stringify(f({a: 1, b: 2})));\n",
    )
    .unwrap();
    measure("bare `deno run` of the same function", n, 1, || {
        let out = std::process::Command::new(&deno)
            .arg("run")
            .args(vulcan_isolate::process::DENO_RUN_FLAGS)
            .arg(&script)
            .env("DENO_DIR", dir.path().join("cache"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "{\"sum\":3}");
    })
}

/// What a fresh V8 isolate costs this host, outside Vulcan: one Deno process (the flags
/// and heap of a pooled one) makes `n` Workers one after another as the runner does
/// (`type: "module"` from its own file, no permissions), each waited for until it answers
/// and then ended. The samples are `new Worker` to its first answer; the CPU is the whole
/// machine's over the run, per Worker. Every one-shot job costs one such Worker.
fn bare_workers(server: &Server, n: usize) -> Figures {
    let deno = deno_path(server);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("workers.js");
    std::fs::write(
        &script,
        r#"if (typeof WorkerGlobalScope !== "undefined" && self instanceof WorkerGlobalScope) {
  self.onmessage = () => self.postMessage("ready");
} else {
  const took = [];
  for (let i = 0; i < Number(Deno.args[0]); i++) {
    const t = performance.now();
    const w = new Worker(import.meta.url, { type: "module", name: "vulcan-job", deno: { permissions: "none" } });
    await new Promise((resolve) => { w.onmessage = resolve; w.postMessage(0); });
    took.push(performance.now() - t);
    w.terminate();
  }
  console.log(JSON.stringify(took));
}
"#,
    )
    .unwrap();
    let (started, busy) = (Instant::now(), busy_cpu());
    let out = std::process::Command::new(&deno)
        .arg("run")
        .args(vulcan_isolate::process::DENO_RUN_FLAGS)
        .arg("--v8-flags=--max-old-space-size=128")
        .arg("--unstable-worker-options")
        .arg(format!("--allow-read={}", script.display()))
        .arg(&script)
        .arg(n.to_string())
        .env("DENO_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    let (wall, cpu) = (started.elapsed(), busy_cpu().saturating_sub(busy));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took: Vec<f64> = serde_json::from_slice(&out.stdout).unwrap();
    Figures {
        name: "bare Deno: a fresh Worker, made to ready".into(),
        samples: took
            .iter()
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
            .collect(),
        wall,
        cpu: Some(cpu),
    }
}

/// Runs `round` with the build `VULCAN_BENCH_BEFORE` names first (labelled `before`), if
/// set, then with this one (labelled `label`): a before-and-after in one run.
fn before_and_after(label: &str, round: impl Fn(&str)) {
    if let Ok(before) = std::env::var("VULCAN_BENCH_BEFORE") {
        let this = common::vulcan_bin();
        std::env::set_var("VULCAN_TEST_BIN", &before);
        round("before");
        std::env::set_var("VULCAN_TEST_BIN", this);
    }
    round(label);
}

/// One-shot node workloads as users drive them: back to back from one client (next to a
/// bare `deno run` of the same code, in the same run), what a fresh Worker costs this
/// host outside Vulcan (every job has one), then four clients for 10 s. Each figure run
/// back to back says what the whole machine's CPU spent per operation.
fn oneshot(n: usize) {
    before_and_after("isolate one-shot", |label| oneshot_round(label, n));
}

fn oneshot_round(label: &str, n: usize) {
    let server = Server::start(&[]);
    std::thread::sleep(Duration::from_secs(1));
    for _ in 0..20 {
        sum_ok(&server);
    }
    let vulcan = measure(&format!("{label}: 1 client back to back"), n, 1, || {
        sum_ok(&server)
    });
    let bare = bare_deno_run(&server, n);
    let (mut v, mut b) = (vulcan.samples.clone(), bare.samples.clone());
    v.sort();
    b.sort();
    let ratio = percentile(&v, 0.5) / percentile(&b, 0.5);
    vulcan.print();
    bare.print();
    println!("{label:<46} {ratio:.2}x a bare deno run at p50");
    // The floor under both: every job has a fresh Worker made for it.
    bare_workers(&server, n).print();
    for_seconds(&format!("{label}: 4 clients, 10 s"), 4, 10, || {
        sum_ok(&server)
    })
    .print();
}

/// Go from source, its build kept, next to the same program sent prebuilt (microVMs).
fn gosource(n: usize) {
    use base64::Engine as _;
    const SOURCE: &str =
        "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.go"), SOURCE).unwrap();
    std::fs::write(dir.path().join("go.mod"), "module hello\n\ngo 1.19\n").unwrap();
    let built = std::process::Command::new("go")
        .args(["build", "-o", "main", "."])
        .current_dir(dir.path())
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", dir.path().join("cache"))
        .env("HOME", dir.path())
        .status()
        .unwrap();
    assert!(built.success());
    let binary = std::fs::read(dir.path().join("main")).unwrap();
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(binary.len() as u64);
    header.set_mode(0o755);
    archive
        .append_data(&mut header, "main", &binary[..])
        .unwrap();
    let archive = base64::engine::general_purpose::STANDARD
        .encode(archive.into_inner().unwrap().finish().unwrap());
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    let source =
        serde_json::json!({"runtime": "go", "code": SOURCE, "resources": {"timeout_s": 120}});
    let prebuilt = serde_json::json!({"runtime": "go", "code_archive": archive, "resources": {"timeout_s": 120}});
    let run = |body: &serde_json::Value| {
        let w = server.run(body.clone());
        assert_eq!(w["output"], "hello", "{w}");
    };
    let first = Instant::now();
    run(&source);
    println!(
        "{:<46} {:>8.0} ms",
        "go source: first run (build + run)",
        first.elapsed().as_secs_f64() * 1000.0
    );
    run(&prebuilt);
    measure("go source: later runs (build kept)", n, 1, || run(&source)).print();
    measure("go prebuilt main (same program)", n, 1, || run(&prebuilt)).print();
    // The same source deployed as a function: its warm VM runs the program again.
    let (status, f) = server.put(
        "/v1/functions/hello-go",
        &serde_json::json!({"runtime": "go", "code": SOURCE, "resources": {"timeout_s": 120}}),
    );
    assert_eq!(status, 201, "{f}");
    let invoke = || {
        let (status, w) = server.post("/v1/functions/hello-go/invoke", &serde_json::json!({}));
        assert_eq!((status, w["output"].as_str()), (200, Some("hello")), "{w}");
    };
    invoke();
    measure("go function from source: warm invocations", n, 1, invoke).print();
}

fn api_overhead(n: usize) {
    let server = Server::start(&[("VULCAN_ISOLATE_POOL_SIZE", "1")]);
    measure("API: POST async + GET by id", n, 1, || {
        let id = server.submit(sum_workload(1, 2));
        assert_eq!(server.get(&format!("/v1/workloads/{id}")).0, 200);
    })
    .print();
}

fn main() {
    let n: usize = std::env::var("VULCAN_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    println!(
        "vulcan benchmark: n={n} per figure, {} CPUs, /sys/kernel/rcu_expedited={}",
        std::thread::available_parallelism().map_or(1, |c| c.get()),
        std::fs::read_to_string("/sys/kernel/rcu_expedited")
            .map_or_else(|_| "?".into(), |v| v.trim().to_owned())
    );
    let only = std::env::var("VULCAN_BENCH_ONLY").unwrap_or_default();
    let run = |section: &str| only.is_empty() || only.split(',').any(|s| s.trim() == section);
    if run("isolate") {
        isolate(n);
    }
    if run("cold") {
        cold(n.min(100));
    }
    if run("gvisor") {
        gvisor::run(n.min(60));
    }
    if run("egress") {
        egress::run(n.min(60), n.clamp(1, 30), 1000);
    }
    if run("sandboxes") {
        sandboxes::run(n.min(60), 50);
    }
    if run("sandboxes-microvm") {
        sandboxes::run_microvm(n.min(60), 50);
    }
    if run("templates") {
        templates::run(n.clamp(1, 10), n.clamp(1, 3));
    }
    if run("microvm") {
        microvm::run(n.clamp(1, 10));
    }
    if run("oneshot") {
        oneshot(n);
    }
    if run("gosource") {
        gosource(n.clamp(1, 7));
    }
    if run("wasm") {
        wasm(n);
    }
    if run("api") {
        api_overhead(n);
    }
    if run("traces") {
        traces::run(n);
    }
    if run("store") {
        store::run(n);
    }
    if run("functions") {
        functions::run(n);
    }
    if run("database") {
        database::run(n);
    }
    if run("cluster") {
        cluster::run(n.min(200));
    }
    if run("schedules") {
        schedules::run(5000, 20);
    }
    if run("queues") {
        queues::run(n.max(100) * 10, n.clamp(1, 50));
    }
}
