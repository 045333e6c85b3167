//! sandboxes (gVisor): create → first command answered, back to back and with two clients;
//! the round trip of `true` in a running sandbox, one and four clients; pause and resume of
//! a 256 MB sandbox with ~200 MB in use, and frozen (a followed process running); 50
//! sandboxes held at once with what each costs in memory (its cgroup's, and the host's
//! available memory).
//!
//! sandboxes-microvm: the same for microVM sandboxes (create, `true` round trips, pause and
//! resume, and fifty of 128 MB held at once).

use std::time::{Duration, Instant};

use crate::common::Server;
use crate::{measure, percentile};
use serde_json::json;
use vulcan_gvisor::testing::Registry;

fn create(server: &Server, image: &str) -> String {
    create_in(server, image, "gvisor", 512)
}

fn create_in(server: &Server, image: &str, isolation: &str, mem_mb: u32) -> String {
    let (status, s) = server.post(
        "/v1/sandboxes",
        // An hour: fifty microVMs made one after another under TCG take minutes, and the
        // first must not reach their deadline before the last is made.
        &json!({"image": image, "isolation": isolation, "resources": {"mem_mb": mem_mb}, "timeout_s": 3600}),
    );
    assert_eq!(status, 201, "{s}");
    s["id"].as_str().unwrap().to_owned()
}

fn echo(server: &Server, id: &str) {
    let (status, p) = server.post(
        &format!("/v1/sandboxes/{id}/processes"),
        &json!({"cmd": "echo", "args": ["hi"]}),
    );
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["stdout"], "hi\n", "{p}");
}

fn remove(server: &Server, id: &str) {
    let (status, s) = server.delete(&format!("/v1/sandboxes/{id}"));
    assert_eq!(status, 200, "{s}");
}

fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn run(n: usize, held: usize) {
    let registry = Registry::start();
    let image = registry.push("busybox:bench-sandboxes", "busybox");
    let mut server = Server::start(&[
        ("VULCAN_INSECURE_REGISTRIES", registry.host.as_str()),
        ("VULCAN_SANDBOX_MAX_PER_TENANT", "200"),
        ("VULCAN_SANDBOX_TENANT_MEM_MB", "65536"),
    ]);
    // The image is pulled and unpacked once, before anything is timed.
    let first = create(&server, &image);
    echo(&server, &first);
    remove(&server, &first);

    let mut created = Vec::new();
    let mut deleted = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let id = create(&server, &image);
        echo(&server, &id);
        created.push(t.elapsed());
        let t = Instant::now();
        remove(&server, &id);
        deleted.push(t.elapsed());
    }
    created.sort();
    deleted.sort();
    println!(
        "{:<46} n={:<6} p50={:>8.2} ms  p95={:>8.2} ms   (delete p50 {:.2} ms)",
        "sandbox: create → first answer (alone)",
        n,
        percentile(&created, 0.5),
        percentile(&created, 0.95),
        percentile(&deleted, 0.5),
    );
    measure(
        "sandbox: create + answer + delete, 2 clients",
        n.div_ceil(2),
        2,
        || {
            let id = create(&server, &image);
            echo(&server, &id);
            remove(&server, &id);
        },
    )
    .print();

    let id = create(&server, &image);
    round_trips(&server, &id, n, "sandbox");
    remove(&server, &id);

    let python = registry.push("python:bench-sandboxes", "python");
    let image_size = |server: &Server, id: &str| {
        std::fs::metadata(
            server
                .data_dir
                .join("gvisor/sandboxes")
                .join(id)
                .join("checkpoint/checkpoint.img"),
        )
        .map_or(0, |m| m.len())
    };
    let big = create_in(&server, &python, "gvisor", 256);
    pause_and_resume(&server, &big, "sandbox", REPEATED, image_size);
    frozen_pause_and_resume(&server, &big);
    remove(&server, &big);
    // The worst case for the checkpoint's compression: memory full of random bytes.
    let big = create_in(&server, &python, "gvisor", 256);
    pause_and_resume(&server, &big, "sandbox, random bytes", RANDOM, image_size);
    remove(&server, &big);

    hold_many(&server, held, "sandbox (128 MB)", || {
        create_in(&server, &image, "gvisor", 128)
    });
    server.stop(Duration::from_secs(60));
}

/// `held` sandboxes made by `make` held at once: how long they took, that each answers,
/// and what each costs in memory while it idles (its usage as reported, and the drop of the
/// host's available memory); then deleted.
fn hold_many(server: &Server, held: usize, what: &str, make: impl Fn() -> String) {
    let before = mem_available_kib();
    let t = Instant::now();
    let ids: Vec<String> = (0..held).map(|_| make()).collect();
    let made = t.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let after = mem_available_kib();
    let used_bytes: u64 = ids
        .iter()
        .map(|id| {
            let (_, usage) = server.get(&format!("/v1/sandboxes/{id}/metrics"));
            usage["memory_bytes"].as_u64().unwrap_or(0)
        })
        .sum();
    for id in &ids {
        echo(server, id);
    }
    println!(
        "{what}: {held} held at once: made in {:.1} s; each answers; memory per sandbox {:.1} MiB (its usage), {:.1} MiB (host MemAvailable drop / {held})",
        made.as_secs_f64(),
        used_bytes as f64 / held as f64 / 1048576.0,
        before.saturating_sub(after) as f64 / held as f64 / 1024.0,
    );
    let t = Instant::now();
    for id in &ids {
        remove(server, id);
    }
    println!(
        "{what}: {held} deleted in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// The round trip of `true` in sandbox `id`: one client, then four.
fn round_trips(server: &Server, id: &str, n: usize, what: &str) {
    let true_once = || {
        let (status, p) = server.post(
            &format!("/v1/sandboxes/{id}/processes"),
            &json!({"cmd": "true"}),
        );
        assert_eq!(status, 200, "{p}");
        assert_eq!(p["exit_code"], 0, "{p}");
    };
    for _ in 0..3 {
        true_once();
    }
    measure(&format!("{what}: exec `true` round trip"), n, 1, true_once).print();
    measure(
        &format!("{what}: exec `true`, 4 clients"),
        n.div_ceil(4),
        4,
        true_once,
    )
    .print();
}

/// Pause and resume of python sandbox `big` (256 MB) with about 200 MB of it in use by a
/// process started detached, five times; `saved` says what a pause wrote.
fn pause_and_resume(
    server: &Server,
    big: &str,
    what: &str,
    fill: &str,
    saved: impl Fn(&Server, &str) -> u64,
) {
    let script = format!(
        "python3 -c \"import os, time; x = {fill}; open('/tmp/held', 'w').write('1'); time.sleep(1e6)\" >/dev/null 2>&1 </dev/null &"
    );
    let (status, p) = server.post(
        &format!("/v1/sandboxes/{big}/processes"),
        &json!({"cmd": "sh", "args": ["-c", script]}),
    );
    assert_eq!(status, 200, "{p}");
    let t = Instant::now();
    while server
        .get(&format!("/v1/sandboxes/{big}/files/stat?path=/tmp/held"))
        .0
        != 200
    {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "the memory was never filled"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The sample of its usage comes every few seconds.
    std::thread::sleep(Duration::from_secs(3));
    let (_, usage) = server.get(&format!("/v1/sandboxes/{big}/metrics"));
    let in_use = usage["memory_bytes"].as_u64().unwrap_or(0);
    let (pauses, resumes) = pause_and_resume_five(server, big, "saved");
    println!(
        "{what}: pause of {:.0} MiB in use: p50 {:.0} ms ({:.2} s per GB), resume p50 {:.0} ms; saved {:.0} MiB (n=5)",
        in_use as f64 / 1048576.0,
        percentile(&pauses, 0.5),
        percentile(&pauses, 0.5) / 1000.0 / (in_use.max(1) as f64 / 1e9),
        percentile(&resumes, 0.5),
        saved(server, big) as f64 / 1048576.0,
    );
}

/// What fills a sandbox's memory before its pause: one byte repeated (it compresses to
/// almost nothing), or random bytes (it does not compress).
const REPEATED: &str = "b'a' * 190_000_000";
const RANDOM: &str = "os.urandom(190_000_000)";

/// Pauses sandbox `id` (kept as `mode`) and resumes it, five times: the times of each,
/// sorted.
fn pause_and_resume_five(server: &Server, id: &str, mode: &str) -> (Vec<Duration>, Vec<Duration>) {
    let (mut pauses, mut resumes) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t = Instant::now();
        let (status, s) = server.post(&format!("/v1/sandboxes/{id}/pause"), &json!({}));
        assert_eq!(status, 200, "{s}");
        assert_eq!(s["pause_mode"], mode, "{s}");
        pauses.push(t.elapsed());
        let t = Instant::now();
        let (status, s) = server.post(&format!("/v1/sandboxes/{id}/resume"), &json!({}));
        assert_eq!(status, 200, "{s}");
        resumes.push(t.elapsed());
    }
    pauses.sort();
    resumes.sort();
    (pauses, resumes)
}

/// Pause and resume of gVisor sandbox `big` while a process Vulcan follows runs: frozen
/// in memory (`runsc pause`), not saved; five times.
fn frozen_pause_and_resume(server: &Server, big: &str) {
    let (status, p) = server.post(
        &format!("/v1/sandboxes/{big}/processes"),
        &json!({"cmd": "sleep", "args": ["600"], "background": true}),
    );
    assert_eq!(status, 201, "{p}");
    let (pauses, resumes) = pause_and_resume_five(server, big, "frozen");
    println!(
        "sandbox, a followed process running: frozen in p50 {:.1} ms, thawed in p50 {:.1} ms (n=5; its memory stays held)",
        percentile(&pauses, 0.5),
        percentile(&resumes, 0.5),
    );
}

/// microVM sandboxes: create → first answer, `true` round trips, pause and resume, `held`
/// at once.
pub fn run_microvm(n: usize, held: usize) {
    let registry = Registry::start();
    let image = registry.push("busybox:bench-vm-sandboxes", "busybox");
    let mut server = Server::start(&[
        ("VULCAN_INSECURE_REGISTRIES", registry.host.as_str()),
        ("VULCAN_SANDBOX_MAX_PER_TENANT", "200"),
        ("VULCAN_SANDBOX_TENANT_MEM_MB", "65536"),
    ]);
    // The image is converted once, before anything is timed.
    let first = create_in(&server, &image, "microvm", 256);
    echo(&server, &first);
    remove(&server, &first);
    let mut created = Vec::new();
    for _ in 0..n.min(5) {
        let t = Instant::now();
        let id = create_in(&server, &image, "microvm", 256);
        echo(&server, &id);
        created.push(t.elapsed());
        remove(&server, &id);
    }
    created.sort();
    println!(
        "{:<46} n={:<6} p50={:>8.2} ms  p95={:>8.2} ms",
        "microVM sandbox: create → first answer",
        created.len(),
        percentile(&created, 0.5),
        percentile(&created, 0.95),
    );
    let id = create_in(&server, &image, "microvm", 256);
    round_trips(&server, &id, n, "microVM sandbox");
    remove(&server, &id);

    let python = registry.push("python:bench-vm-sandboxes", "python");
    let big = create_in(&server, &python, "microvm", 256);
    pause_and_resume(&server, &big, "microVM sandbox", REPEATED, |server, id| {
        let dir = server.data_dir.join("microvm/sandboxes").join(id);
        // The devices' state is written at each pause, and the RAM file kept.
        let blocks = |name: &str| {
            std::fs::metadata(dir.join(name))
                .map_or(0, |m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
        };
        blocks("memory") + blocks("state")
    });
    remove(&server, &big);
    hold_many(&server, held, "microVM sandbox (128 MB)", || {
        create_in(&server, &image, "microvm", 128)
    });
    server.stop(Duration::from_secs(60));
}
