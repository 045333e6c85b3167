//! `cargo bench -p vulcan`: figures for the core API and the isolate backend, measured
//! against the real release binary on loopback. Prints one table; nothing is asserted.
//!
//! - isolate warm: sequential `POST /v1/workloads` of the sum function (pool on), and
//!   throughput with two clients;
//! - isolate cold (pool off) next to a bare `deno run` of the same function;
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
//!   of the same snapshot file, and the pool of restored VMs back to back.
//!
//! - schedules: one tenant's 5,000 one-second schedules beside another tenant's one: how
//!   late the other's ticks fire.
//!
//! `VULCAN_BENCH_N` sets the samples per figure (microvm takes at most 10);
//! `VULCAN_BENCH_ONLY=isolate,cold,oneshot,gvisor,microvm,gosource,wasm,api,store,cluster,functions,schedules` picks sections.

#[path = "vulcan/cluster.rs"]
mod cluster;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "vulcan/functions.rs"]
mod functions;
#[path = "vulcan/schedules.rs"]
mod schedules;
#[path = "vulcan/store.rs"]
mod store;

use std::time::{Duration, Instant};

use common::registry::Registry;
use common::{sum_workload, Server};

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

struct Figures {
    name: String,
    samples: Vec<Duration>,
    wall: Duration,
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

    fn print(mut self) {
        self.samples.sort();
        let n = self.samples.len();
        println!(
            "{:<46} n={:<6} p50={:>8.2} ms  p95={:>8.2} ms  p99={:>8.2} ms  {:>8.1} /s",
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
    let started = Instant::now();
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
    let started = Instant::now();
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

/// A bare `deno run` of the sum function (with the flags Vulcan's processes get), `n` times.
fn bare_deno_run(server: &Server, n: usize) -> Figures {
    let deno = server.get("/v1/backends").1[0]["details"]["deno_path"]
        .as_str()
        .unwrap()
        .to_owned();
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

/// One-shot node workloads as users drive them: back to back from one client (next to a
/// bare `deno run` of the same code, in the same run), then four clients for 10 s.
fn oneshot(n: usize) {
    let server = Server::start(&[]);
    std::thread::sleep(Duration::from_secs(1));
    for _ in 0..20 {
        sum_ok(&server);
    }
    let vulcan = measure("isolate one-shot: 1 client back to back", n, 1, || {
        sum_ok(&server)
    });
    let bare = bare_deno_run(&server, n);
    let (mut v, mut b) = (vulcan.samples.clone(), bare.samples.clone());
    v.sort();
    b.sort();
    let ratio = percentile(&v, 0.5) / percentile(&b, 0.5);
    vulcan.print();
    bare.print();
    println!(
        "{:<46} {ratio:.2}x a bare deno run at p50",
        "isolate one-shot"
    );
    for_seconds("isolate one-shot: 4 clients, 10 s", 4, 10, || {
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
}

fn api_overhead(n: usize) {
    let server = Server::start(&[("VULCAN_ISOLATE_POOL_SIZE", "1")]);
    measure("API: POST async + GET by id", n, 1, || {
        let id = server.submit(sum_workload(1, 2));
        assert_eq!(server.get(&format!("/v1/workloads/{id}")).0, 200);
    })
    .print();
}

fn gvisor(n: usize) {
    let registry = Registry::start();
    let image = registry.push("busybox:bench", "busybox");
    let server = Server::start(&[("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())]);
    let body = serde_json::json!({"runtime": "oci", "image": image, "command": ["echo", "hi"]});
    let echo = || {
        let w = server.run(body.clone());
        assert_eq!(w["output"], "hi", "{w}");
    };
    for _ in 0..3 {
        echo();
    }
    let vulcan = measure("gvisor: POST /v1/workloads (echo hi)", n, 1, echo);

    // The same run without Vulcan: the image root Vulcan unpacked, the spec Vulcan writes.
    let record = &server.get(&format!("/v1/images/{image}")).1;
    let hex = record["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let rootfs = server.data_dir.join("images/rootfs").join(hex);
    let config: vulcan_domain::ImageConfig =
        serde_json::from_value(record["config"].clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let command = ["echo".to_owned(), "hi".to_owned()];
    let env = Default::default();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let bare = measure("bare `runsc run` of the same bundle", n, 1, || {
        let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("bench-{}-{i}", std::process::id());
        let spec = vulcan_gvisor::bundle::config(
            &vulcan_gvisor::bundle::RunSpec {
                rootfs: &rootfs,
                image: &config,
                command: Some(&command),
                env: &env,
                resources: vulcan_domain::Resources::default(),
                pids_limit: 512,
                cgroup: &format!("/vulcan-bench/{id}"),
                work: None,
                hold: None,
            },
            0,
            0,
        )
        .unwrap();
        let bundle = dir.path().join(&id);
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec(&spec).unwrap(),
        )
        .unwrap();
        let out = std::process::Command::new("runsc")
            .arg("--root")
            .arg(dir.path().join("state"))
            .args(["--platform=ptrace", "--network=none", "run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    });
    let mut bare_sorted = bare.samples.clone();
    bare_sorted.sort();
    print_overhead("gvisor overhead over bare runsc run", vulcan, bare);
    measure("gvisor: 4 clients back to back", n.div_ceil(2), 4, echo).print();

    // The same image and command deployed as a function: invocations are executed into a
    // warm sandbox.
    let r = ureq::put(&server.url("/v1/functions/echo")).send_json(body.clone());
    assert!(r.is_ok_and(|r| r.status() < 300));
    let invoke = || {
        let (status, w) = server.post("/v1/functions/echo/invoke", &serde_json::Value::Null);
        assert_eq!((status, w["output"].as_str()), (200, Some("hi")), "{w}");
    };
    invoke();
    let warm = measure(
        "gvisor function, warm sandbox: 1 client back to back",
        n,
        1,
        invoke,
    );
    let mut warm_sorted = warm.samples.clone();
    warm_sorted.sort();
    warm.print();
    println!(
        "{:<46} {:.2}x at p50",
        "warm function / bare runsc run",
        percentile(&warm_sorted, 0.5) / percentile(&bare_sorted, 0.5)
    );
    measure(
        "gvisor function: 4 clients back to back",
        n.div_ceil(2),
        4,
        invoke,
    )
    .print();
}

/// A time Vulcan logged in a microvm workload's `backend` lines: the number after
/// `marker` ("booted to its agent in N ms", ": restored in N ms").
fn logged_ms(server: &Server, id: &str, marker: &str) -> f64 {
    let (_, logs) = server.get(&format!("/v1/workloads/{id}/logs/history?stream=backend"));
    logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|l| {
            let line = l["line"].as_str()?;
            let rest = line.split(marker).nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no line with {marker:?}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A bare QEMU started with `-incoming` from a snapshot's state (the same machine as
/// Vulcan's restore: `spec`), timed until QMP says it runs.
fn bare_incoming_ms(spec: &vulcan_microvm::vmm::VmSpec) -> f64 {
    use std::io::{BufRead, Write};
    use vulcan_microvm::vmm::Vmm;
    let vmm = vulcan_microvm::vmm::QemuMicrovm {
        bin: "qemu-system-x86_64".into(),
    };
    let t = Instant::now();
    let mut child = vmm.command(spec).as_std_mut().spawn().unwrap();
    let qmp = spec.qmp.clone().unwrap();
    let stream = loop {
        match std::os::unix::net::UnixStream::connect(&qmp) {
            Ok(s) => break s,
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    };
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut ask = |command: &str| -> String {
        writeln!(writer, "{{\"execute\":\"{command}\"}}").unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.contains("\"return\"") || line.contains("\"error\"") {
                return line;
            }
        }
    };
    ask("qmp_capabilities");
    // `{"return": {"status": "inmigrate", "running": false}}` while the state loads: the
    // status is what says it runs, not the key.
    let running = |answer: String| {
        serde_json::from_str::<serde_json::Value>(&answer)
            .is_ok_and(|v| v["return"]["status"] == "running")
    };
    while !running(ask("query-status")) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = t.elapsed().as_secs_f64() * 1000.0;
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

/// A microvm one-shot workload's end-to-end latency through `server`, one client back to
/// back, after one unmeasured run (which makes the snapshot where snapshots are on).
fn microvm_one_shot(server: &Server, name: &str, n: usize, body: &serde_json::Value) -> Figures {
    let first = server.run(body.clone());
    assert_eq!(first["output"], "42", "{first}");
    measure(name, n, 1, || {
        let w = server.run(body.clone());
        assert_eq!(w["output"], "42", "{w}");
    })
}

fn microvm(n: usize) {
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/guest");
    let python = serde_json::json!({"runtime": "python", "code": "print(1 + 2)"});
    let cold_server = Server::start(&[
        ("VULCAN_MICROVM_POOL", "0"),
        ("VULCAN_MICROVM_SNAPSHOTS", "off"),
    ]);
    let (_, backends) = cold_server.get("/v1/backends");
    let accel = backends
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "microvm")
        .unwrap()["details"]["accelerator"]
        .as_str()
        .unwrap_or("unavailable")
        .to_owned();
    let boots = std::sync::Mutex::new(Vec::new());
    let cold = measure(
        &format!("microvm cold boot ({accel}): POST python"),
        n,
        1,
        || {
            let w = cold_server.run(python.clone());
            assert_eq!(w["output"], "3", "{w}");
            boots.lock().unwrap().push(logged_ms(
                &cold_server,
                w["id"].as_str().unwrap(),
                "booted to its agent in ",
            ));
        },
    );
    // Boot path vs restore path: `print(6*7)` and `console.log(6*7)`, pool off.
    let six_by_seven = [
        (
            "python",
            serde_json::json!({"runtime": "python", "code": "print(6*7)"}),
        ),
        (
            "node",
            serde_json::json!({"runtime": "node", "isolation": "microvm", "code": "console.log(6*7)"}),
        ),
    ];
    let booted: Vec<Figures> = six_by_seven
        .iter()
        .map(|(rt, body)| {
            microvm_one_shot(
                &cold_server,
                &format!("microvm {rt} 6*7, boot path ({accel})"),
                n,
                body,
            )
        })
        .collect();
    drop(cold_server);
    let restore_server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    let restored: Vec<Figures> = six_by_seven
        .iter()
        .map(|(rt, body)| {
            microvm_one_shot(
                &restore_server,
                &format!("microvm {rt} 6*7, restore path ({accel})"),
                n,
                body,
            )
        })
        .collect();
    let restores: Vec<f64> = (0..n)
        .map(|_| {
            let w = restore_server.run(six_by_seven[0].1.clone());
            logged_ms(&restore_server, w["id"].as_str().unwrap(), ": restored in ")
        })
        .collect();
    // The same snapshot file, restored by a bare QEMU with the same machine.
    let snapshots = restore_server.data_dir.join("microvm/snapshots");
    let python_snapshot = std::fs::read_dir(&snapshots)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("python-")
        })
        .unwrap();
    let bare_dir = tempfile::tempdir().unwrap();
    let accel_kind = if accel == "kvm" {
        vulcan_microvm::vmm::Accel::Kvm
    } else {
        vulcan_microvm::vmm::Accel::Tcg
    };
    let spec = vulcan_microvm::vmm::VmSpec {
        kernel: assets.join("vmlinuz"),
        initramfs: assets.join("initramfs.cpio"),
        rootfs: Some(assets.join("rootfs.ext4")),
        mem_mb: 192,
        cpus: 1,
        accel: accel_kind,
        channel: bare_dir.path().join("channel.sock"),
        console: bare_dir.path().join("console.log"),
        pidfile: bare_dir.path().join("qemu.pid"),
        cmdline_extra: format!(
            "{} vulcan.prewarm=python",
            vulcan_microvm::vmm::accel_cmdline(accel_kind)
        )
        .trim()
        .to_owned(),
        qmp: Some(bare_dir.path().join("qmp.sock")),
        incoming: Some(python_snapshot.join("state")),
    };
    let bare_restores: Vec<f64> = (0..n).map(|_| bare_incoming_ms(&spec)).collect();
    drop(restore_server);
    for (boot, restore) in booted.into_iter().zip(restored) {
        let (name, ratio_of) = (restore.name.clone(), boot.name.clone());
        let mut b = boot.samples.clone();
        let mut r = restore.samples.clone();
        b.sort();
        r.sort();
        let ratio = percentile(&r, 0.5) / percentile(&b, 0.5);
        boot.print_latency();
        restore.print_latency();
        println!(
            "{:<46} {ratio:.2}x of {ratio_of}",
            format!("{name}: p50 ratio")
        );
    }
    println!(
        "{:<46} p50={:>8.1} ms",
        format!("microvm restore to running, Vulcan ({accel})"),
        median(restores)
    );
    println!(
        "{:<46} p50={:>8.1} ms",
        format!("bare QEMU -incoming to running ({accel})"),
        median(bare_restores)
    );

    // The pool (now of restored VMs), back to back: each run takes the idle VM, and the
    // refill restores the next while the run goes — against a restore per run (pool off).
    let pooled = Server::start(&[("VULCAN_MICROVM_POOL", "python=1,node=0,go=0")]);
    let pooled_figures = microvm_one_shot(
        &pooled,
        &format!("microvm python 6*7, pool of 1 back to back ({accel})"),
        n,
        &six_by_seven[0].1,
    );
    pooled_figures.print_latency();
    drop(pooled);

    // Warm: each run takes a VM the pool booted ahead; the pause (not measured) lets it refill.
    let warm_server = Server::start(&[
        ("VULCAN_MICROVM_POOL", "python=1,node=0,go=0"),
        ("VULCAN_MICROVM_SNAPSHOTS", "off"),
    ]);
    let idle = || {
        let (_, b) = warm_server.get("/v1/backends");
        b.as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == "microvm")
            .unwrap()["details"]["warm_pool"]["python"]["idle"]
            .as_u64()
            .unwrap_or(0)
    };
    let mut warm = Vec::new();
    for _ in 0..n {
        while idle() == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        let t = Instant::now();
        let w = warm_server.run(python.clone());
        warm.push(t.elapsed());
        assert_eq!(w["output"], "3", "{w}");
    }
    drop(warm_server);

    // Bare: QEMU with the same kernel and initramfs, booted to a trivial init that prints
    // a marker on the serial console and powers off.
    let bare: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let mut child = std::process::Command::new("qemu-system-x86_64")
                .args([
                    "-M",
                    "microvm,isa-serial=on,rtc=off",
                    "-accel",
                    &accel,
                    "-m",
                    "192",
                    "-smp",
                    "1",
                ])
                .args(["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"])
                .arg("-kernel")
                .arg(assets.join("vmlinuz"))
                .arg("-initrd")
                .arg(assets.join("initramfs.cpio"))
                .arg("-append")
                .arg(format!(
                    "{} {} rdinit=/bin/trivial-init",
                    vulcan_microvm::vmm::KERNEL_CMDLINE,
                    vulcan_microvm::vmm::accel_cmdline(if accel == "kvm" {
                        vulcan_microvm::vmm::Accel::Kvm
                    } else {
                        vulcan_microvm::vmm::Accel::Tcg
                    })
                ))
                .args(["-serial", "stdio"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            loop {
                line.clear();
                if std::io::BufRead::read_line(&mut out, &mut line).unwrap() == 0 {
                    panic!("the trivial init never printed its marker");
                }
                if line.contains("VULCAN-TRIVIAL-INIT") {
                    break;
                }
            }
            let elapsed = t.elapsed().as_secs_f64() * 1000.0;
            let _ = child.kill();
            let _ = child.wait();
            elapsed
        })
        .collect();
    let boot = median(boots.into_inner().unwrap());
    let bare_p50 = median(bare);
    cold.print();
    Figures {
        name: format!("microvm warm booted VM, idle gaps ({accel}): POST python"),
        samples: warm,
        wall: Duration::from_secs(1),
    }
    .print_latency();
    println!(
        "{:<46} p50={boot:>8.1} ms",
        format!("microvm boot to agent ready ({accel})")
    );
    println!(
        "{:<46} p50={bare_p50:>8.1} ms",
        format!("bare QEMU boot to a trivial init ({accel})")
    );
    println!(
        "{:<46} {:+.1}% at p50",
        "microvm boot overhead over the bare boot",
        (boot / bare_p50 - 1.0) * 100.0
    );

    // A python function: its VM boots once; invocations call the loaded handler.
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    let r = ureq::put(&server.url("/v1/functions/sum")).send_json(serde_json::json!({
        "runtime": "python", "isolation": "microvm",
        "code": "def handler(i):\n    return i['a'] + i['b']\n"}));
    assert!(r.is_ok_and(|r| r.status() < 300));
    let invoke = || {
        let (status, w) = server.post(
            "/v1/functions/sum/invoke",
            &serde_json::json!({"a": 1, "b": 2}),
        );
        assert_eq!((status, w["output"].as_str()), (200, Some("3")), "{w}");
    };
    invoke();
    measure(
        &format!("microvm python function, warm VM ({accel})"),
        (n * 5).max(50),
        1,
        invoke,
    )
    .print();
}

fn main() {
    let n: usize = std::env::var("VULCAN_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    println!(
        "vulcan benchmark: n={n} per figure, {} CPUs",
        std::thread::available_parallelism().map_or(1, |c| c.get())
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
        gvisor(n.min(60));
    }
    if run("microvm") {
        microvm(n.clamp(1, 10));
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
    if run("store") {
        store::run(n);
    }
    if run("functions") {
        functions::run(n);
    }
    if run("cluster") {
        cluster::run(n.min(200));
    }
    if run("schedules") {
        schedules::run(5000, 20);
    }
}
