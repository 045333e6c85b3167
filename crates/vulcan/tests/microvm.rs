//! The microvm backend's acceptance: real QEMU (TCG here, KVM where it boots), the real
//! Debian cloud kernel, the real vulcan-agent as init. Slow under TCG: its own target.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use common::{eventually, Server};
use serde_json::{json, Value};

/// VMs under TCG need the CPUs: these tests run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/guest")
}

/// QEMU processes started for `server` (their command lines name its data directory).
fn qemu_processes(server: &Server) -> usize {
    let dir = server.data_dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains("qemu-system") && cmd.contains(&dir)
        })
        .count()
}

fn wait_for_no_qemu(server: &Server) {
    for _ in 0..100 {
        if qemu_processes(server) == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "QEMU processes outlived their workloads: {}",
        qemu_processes(server)
    );
}

fn tar_gz(files: &[(&str, &[u8], u32)]) -> String {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, data, mode) in files {
        let mut h = tar::Header::new_gnu();
        let raw = h.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_cksum();
        tar.append(&h, *data).unwrap();
    }
    base64::engine::general_purpose::STANDARD.encode(tar.into_inner().unwrap().finish().unwrap())
}

fn python(code: &str) -> Value {
    json!({"runtime": "python", "code": code})
}

#[test]
fn python_node_and_go_archives_run_in_a_microvm() {
    let _serial = serial();
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    let (_, backends) = server.get("/v1/backends");
    let microvm = backends
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "microvm")
        .unwrap();
    assert_eq!(microvm["available"], true, "{microvm}");
    assert!(
        ["kvm", "tcg"].contains(&microvm["details"]["accelerator"].as_str().unwrap()),
        "{microvm}"
    );

    let w = server.run(json!({"runtime": "python",
        "code": "import json,sys; d=json.load(sys.stdin); print(d['a']+d['b'])", "input": {"a": 1, "b": 2}}));
    assert_eq!(
        (
            w["status"].as_str(),
            w["isolation"].as_str(),
            w["output"].as_str()
        ),
        (Some("completed"), Some("microvm"), Some("3")),
        "{w}"
    );

    let node = server.run(json!({"runtime": "node", "isolation": "microvm", "input": {"a": 6, "b": 7},
        "code": "let s = ''; process.stdin.on('data', d => s += d); process.stdin.on('end', () => { const i = JSON.parse(s); console.log(i.a * i.b); });"}));
    assert_eq!(
        (node["status"].as_str(), node["output"].as_str()),
        (Some("completed"), Some("42")),
        "{node}"
    );

    // A Go program, built here as a static binary and shipped as a code_archive.
    let binary = go_binary(
        r#"package main

import (
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	var in struct{ Name string `json:"name"` }
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Printf("hello %s from go\n", in.Name)
}
"#,
    );
    let go = server.run(json!({"runtime": "go", "code_archive": tar_gz(&[("main", &binary, 0o755)]), "input": {"name": "vulcan"}}));
    assert_eq!(
        (
            go["status"].as_str(),
            go["isolation"].as_str(),
            go["output"].as_str()
        ),
        (
            Some("completed"),
            Some("microvm"),
            Some("hello vulcan from go")
        ),
        "{go}"
    );

    // Archives: files land in /work; entries that climb out are refused before a VM starts.
    let archived = server.run(json!({"runtime": "python",
        "code_archive": tar_gz(&[("main.py", b"import helper\nprint(helper.VALUE)\n", 0o644), ("helper.py", b"VALUE = 'from the archive'\n", 0o644)])}));
    assert_eq!(archived["output"], "from the archive", "{archived}");
    let evil = server.run(
        json!({"runtime": "python", "code_archive": tar_gz(&[("../evil.py", b"print(1)", 0o644)])}),
    );
    assert_eq!(evil["status"], "failed");
    assert!(
        evil["error"]
            .as_str()
            .unwrap()
            .contains("escapes the work directory"),
        "{evil}"
    );
    wait_for_no_qemu(&server);
}

fn node(code: &str) -> Value {
    json!({"runtime": "node", "isolation": "microvm", "code": code})
}

/// The log lines of `w` from `stream` (`stdout`, `stderr`, `backend`).
fn lines(server: &Server, w: &Value, stream: &str) -> Vec<String> {
    let (_, logs) = server.get(&format!(
        "/v1/workloads/{}/logs/history?stream={stream}",
        w["id"].as_str().unwrap()
    ));
    logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap().to_owned())
        .collect()
}

/// Node tells the agent its exit code as it exits (its preload), so the workload ends
/// before the guest has torn node down: every line still arrives, the workload's own exit
/// listeners still run, and a fatal error (printed after 'exit') is waited for as before.
#[test]
fn node_reports_its_exit_early_without_losing_a_line_or_its_code() {
    let _serial = serial();
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    let version = server.run(node("console.log(process.version)"));
    assert_eq!(version["status"], "completed", "{version}");
    assert!(
        version["output"].as_str().unwrap().starts_with("v22."),
        "the guest's node is Node.js's own build from npm: {version}"
    );

    let flood = server.run(node(
        "for (let i = 0; i < 3000; i++) console.log('line', i); console.error('to stderr'); process.exitCode = 4",
    ));
    assert_eq!(
        (flood["status"].as_str(), flood["exit_code"].as_i64()),
        (Some("failed"), Some(4)),
        "{flood}"
    );
    let out = lines(&server, &flood, "stdout");
    assert_eq!(out.len(), 3000, "every line arrives");
    assert_eq!(out.last().map(String::as_str), Some("line 2999"));
    assert_eq!(lines(&server, &flood, "stderr"), ["to stderr"]);

    let listener = server.run(node(
        "process.on('exit', c => console.log('exit listener saw', c)); console.log('main'); process.exit(5)",
    ));
    assert_eq!(
        (listener["exit_code"].as_i64(), listener["output"].as_str()),
        (Some(5), Some("main\nexit listener saw 5")),
        "{listener}"
    );

    let later = server.run(node(
        "setTimeout(() => console.log('later'), 200); console.log('now')",
    ));
    assert_eq!(
        (later["status"].as_str(), later["output"].as_str()),
        (Some("completed"), Some("now\nlater")),
        "{later}"
    );

    let fatal = server.run(node("console.log('before'); throw new Error('boom')"));
    assert_eq!(
        (fatal["status"].as_str(), fatal["exit_code"].as_i64()),
        (Some("failed"), Some(1)),
        "{fatal}"
    );
    assert_eq!(
        fatal["error"], "exited with code 1: Error: boom",
        "node's stack and version lines are not the error"
    );
    assert!(
        lines(&server, &fatal, "stderr")
            .iter()
            .any(|l| l.contains("at Object.<anonymous> (/work/main.js:1")),
        "the stack is in the log"
    );
    wait_for_no_qemu(&server);
}

#[test]
fn the_guest_has_its_own_kernel_no_host_files_and_no_network() {
    let _serial = serial();
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    let marker = std::env::temp_dir().join(format!("vulcan-host-marker-{}", std::process::id()));
    std::fs::write(&marker, "host only").unwrap();
    let code = format!(
        "import os, json\nprint(json.dumps({{'release': os.uname().release, 'boot_id': open('/proc/sys/kernel/random/boot_id').read().strip(), 'net': sorted(os.listdir('/sys/class/net')), 'marker': os.path.exists({:?}), 'uid': os.getuid()}}))",
        marker.to_string_lossy()
    );
    let w = server.run(python(&code));
    assert_eq!(w["status"], "completed", "{w}");
    let seen: Value = serde_json::from_str(w["output"].as_str().unwrap()).unwrap();
    let guest_kernel = std::fs::read_to_string(assets().join("kernel.version")).unwrap();
    assert_eq!(
        seen["release"],
        guest_kernel.trim(),
        "the guest runs its own kernel"
    );
    // Another kernel instance, whatever its version: its own boot id.
    let host_boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(seen["boot_id"].as_str().map(str::len), Some(36), "{seen}");
    assert_ne!(seen["boot_id"], host_boot.trim(), "a kernel of its own");
    assert_eq!(
        seen["net"],
        json!(["lo"]),
        "no network interface but loopback"
    );
    assert_eq!(seen["marker"], false, "no host files");
    assert_ne!(seen["uid"], 0, "the workload is not root in the guest");
    std::fs::remove_file(marker).unwrap();
}

#[test]
fn hostile_code_is_contained_and_the_server_stays_healthy() {
    let _serial = serial();
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    let fork_bomb = server.run(python("import os\nwhile True:\n    os.fork()"));
    eprintln!(
        "fork bomb: {} in {} ms",
        fork_bomb["error"], fork_bomb["duration_ms"]
    );
    assert_eq!(fork_bomb["status"], "failed", "{fork_bomb}");
    // Stopped by the process limit, or by the guest's OOM killer first: contained either way.
    let error = fork_bomb["error"].as_str().unwrap();
    assert!(
        error.contains("process limit reached")
            || error.contains("Resource temporarily unavailable")
            || error.contains("memory limit exceeded"),
        "{fork_bomb}"
    );

    let mut bomb = python("x = []\nwhile True:\n    x.append(' ' * 10**6)");
    bomb["resources"] = json!({"mem_mb": 64});
    let bomb = server.run(bomb);
    assert_eq!(bomb["status"], "failed", "{bomb}");
    assert!(
        bomb["error"]
            .as_str()
            .unwrap()
            .contains("memory limit exceeded"),
        "{bomb}"
    );

    let mut spin = python("while True:\n    pass");
    spin["resources"] = json!({"timeout_s": 5});
    let spin = server.run(spin);
    assert_eq!(
        (spin["status"].as_str(), spin["error"].as_str()),
        (Some("failed"), Some("timed out after 5 s"))
    );

    let id = server.submit(python(
        "import time\nprint('started', flush=True)\ntime.sleep(60)",
    ));
    let mut sse = server.sse(&format!("/v1/workloads/{id}/logs"));
    while !sse
        .next_event()
        .expect("a line before the end")
        .data
        .contains("started")
    {}
    assert_eq!(server.delete(&format!("/v1/workloads/{id}")).0, 200);
    assert_eq!(
        server.wait_terminal(&id, Duration::from_secs(10))["status"],
        "killed"
    );

    wait_for_no_qemu(&server);
    assert_eq!(server.get("/healthz").0, 200);
    assert_eq!(server.run(python("print('fine')"))["output"], "fine");
}

/// An initramfs whose /init is `script` instead of the agent (appended cpio entries
/// replace earlier ones).
fn hostile_initramfs(dir: &Path, name: &str, script: &str) -> PathBuf {
    let root = dir.join(name);
    std::fs::create_dir_all(&root).unwrap();
    let init = root.join("init");
    std::fs::write(&init, script).unwrap();
    std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let overlay = Command::new("sh")
        .arg("-c")
        .arg("echo init | cpio -o -H newc --quiet")
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(overlay.status.success());
    let mut image = std::fs::read(assets().join("initramfs.cpio")).unwrap();
    image.extend_from_slice(&overlay.stdout);
    let path = dir.join(format!("{name}.cpio"));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&image)
        .unwrap();
    path
}

const GUEST_SETUP: &str = "#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
for m in $(cat /etc/vulcan/modules); do insmod $m; done
sleep 1
port=/dev/$(basename $(dirname $(grep -l vulcan.0 /sys/class/virtio-ports/*/name)))
";

#[test]
fn a_guest_that_floods_garbage_or_never_answers_fails_its_workload_only() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let garbage = hostile_initramfs(
        dir.path(),
        "garbage",
        &format!("{GUEST_SETUP}cat /dev/urandom > $port\n"),
    );
    let server = Server::start(&[("VULCAN_MICROVM_INITRAMFS", garbage.to_str().unwrap())]);
    let w = server.run(python("print(1)"));
    assert_eq!(w["status"], "failed", "{w}");
    assert!(
        w["error"].as_str().unwrap().contains("broke the protocol"),
        "{w}"
    );
    assert_eq!(server.get("/healthz").0, 200);
    wait_for_no_qemu(&server);
    drop(server);

    let silent = hostile_initramfs(dir.path(), "silent", &format!("{GUEST_SETUP}sleep 3600\n"));
    let server = Server::start(&[
        ("VULCAN_MICROVM_INITRAMFS", silent.to_str().unwrap()),
        ("VULCAN_MICROVM_BOOT_TIMEOUT_S", "8"),
    ]);
    let w = server.run(python("print(1)"));
    assert_eq!(w["status"], "failed", "{w}");
    assert!(
        w["error"]
            .as_str()
            .unwrap()
            .contains("did not become ready within 8 s"),
        "{w}"
    );
    assert_eq!(server.get("/healthz").0, 200);
    wait_for_no_qemu(&server);
}

#[test]
fn ten_workloads_in_a_row_leave_no_qemu_behind_and_vms_die_with_the_server() {
    let _serial = serial();
    let mut server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    for i in 0..10 {
        let w = server.run(python(&format!("print({i} * 2)")));
        assert_eq!(
            (w["status"].as_str(), w["output"].as_str()),
            (Some("completed"), Some((i * 2).to_string().as_str())),
            "{w}"
        );
    }
    wait_for_no_qemu(&server);
    let vms = std::fs::read_dir(server.data_dir.join("microvm/vms"))
        .unwrap()
        .count();
    assert_eq!(vms, 0, "VM directories (sockets, console logs) left behind");

    // A crash of the server takes its VMs with it.
    let sleeper = server.submit(python("import time\ntime.sleep(60)"));
    server.wait_status(&sleeper, "running", Duration::from_secs(10));
    eventually(Duration::from_secs(10), "the running workload's VM", || {
        (qemu_processes(&server) == 1).then_some(())
    });
    server.kill9();
    wait_for_no_qemu(&server);
}

/// The idle VMs of the pool, as `GET /v1/backends` reports them.
fn idle_vms(server: &Server, runtime: &str) -> u64 {
    let (_, backends) = server.get("/v1/backends");
    backends
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "microvm")
        .unwrap()["details"]["warm_pool"][runtime]["idle"]
        .as_u64()
        .unwrap_or(0)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The python program [`two_guests_differ`] runs: it reads the clock straight away, then
/// what it takes to differ between guests.
const PYTHON_DIFFERS: &str = "import time\nt = time.time()\nimport os, uuid, random, json\nprint(json.dumps({'time': t, 'urandom': os.urandom(16).hex(), 'uuid': str(uuid.uuid4()), 'random': random.random(), 'hash': hash('vulcan')}))";

/// Runs `body` (printing JSON with `time` in seconds and each of `keys`) twice and checks
/// that `keys` differ between the two guests (restored from one snapshot, or booted) and
/// that each guest's clock is the host's.
fn two_guests_differ(server: &Server, body: &Value, keys: &[&str]) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let before = unix_now();
        let w = server.run(body.clone());
        let after = unix_now();
        assert_eq!(w["status"], "completed", "{w}");
        let guest: Value = serde_json::from_str(w["output"].as_str().unwrap()).unwrap();
        let t = guest["time"].as_f64().unwrap();
        // The guest read its clock between the submission and the answer (1 s of slack).
        assert!(
            t >= before - 1.0 && t <= after + 1.0,
            "guest clock {t}, host {before}..{after}"
        );
        seen.push(guest);
        runs.push(w);
    }
    for key in keys {
        assert_ne!(seen[0][key], seen[1][key], "{key} repeats across guests");
    }
    runs
}

fn backend_log(server: &Server, w: &Value) -> String {
    lines(server, w, "backend").join("\n")
}

#[test]
fn a_guest_has_the_hosts_clock_and_randomness_no_other_guest_has() {
    let _serial = serial();
    // Restored from one snapshot, one per workload.
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    let python_keys = ["urandom", "uuid", "random", "hash"];
    for w in two_guests_differ(&server, &python(PYTHON_DIFFERS), &python_keys) {
        assert!(
            backend_log(&server, &w).contains("restored from snapshot python-"),
            "{}",
            backend_log(&server, &w)
        );
    }
    // Node the same: its CSPRNG (OpenSSL's), its UUIDs and its Math.random.
    let node = json!({"runtime": "node", "isolation": "microvm", "code":
        "const t = Date.now() / 1000; const c = require('crypto'); console.log(JSON.stringify({time: t, urandom: c.randomBytes(16).toString('hex'), uuid: c.randomUUID(), random: Math.random()}))"});
    for w in two_guests_differ(&server, &node, &["urandom", "uuid", "random"]) {
        assert!(
            backend_log(&server, &w).contains("restored from snapshot node-"),
            "{}",
            backend_log(&server, &w)
        );
    }
    drop(server);
    // Booted, from the warm pool: a VM waits, booted, for its run; its clock is set when
    // the run is handed over.
    let server = Server::start(&[
        ("VULCAN_MICROVM_POOL", "python=1,node=0,go=0"),
        ("VULCAN_MICROVM_SNAPSHOTS", "off"),
    ]);
    for _ in 0..600 {
        if idle_vms(&server, "python") == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(idle_vms(&server, "python"), 1, "the pool did not fill");
    let runs = two_guests_differ(&server, &python(PYTHON_DIFFERS), &python_keys);
    assert!(
        backend_log(&server, &runs[0]).contains("a warm VM: booted"),
        "{}",
        backend_log(&server, &runs[0])
    );
}

fn go_binary(source: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.go"), source).unwrap();
    std::fs::write(dir.path().join("go.mod"), "module hello\n\ngo 1.19\n").unwrap();
    let built = Command::new("go")
        .args(["build", "-o", "main", "."])
        .current_dir(dir.path())
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", dir.path().join("cache"))
        .env("HOME", dir.path())
        .status()
        .expect("go (scripts/setup.sh installs golang-go)");
    assert!(built.success());
    std::fs::read(dir.path().join("main")).unwrap()
}

fn snapshots(server: &Server) -> Value {
    let (_, backends) = server.get("/v1/backends");
    backends
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "microvm")
        .unwrap()["details"]["snapshots"]
        .clone()
}

#[test]
fn python_node_and_go_run_in_vms_restored_from_snapshots() {
    let _serial = serial();
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    let go = go_binary(
        "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello from go\") }\n",
    );
    let cases = [
        (python("print(6*7)"), "42", "python"),
        (
            json!({"runtime": "node", "isolation": "microvm", "code": "console.log(6*7)"}),
            "42",
            "node",
        ),
        (
            json!({"runtime": "go", "code_archive": tar_gz(&[("main", &go, 0o755)])}),
            "hello from go",
            "go",
        ),
    ];
    for (body, output, runtime) in &cases {
        for round in 0..2 {
            let w = server.run(body.clone());
            assert_eq!(
                (w["status"].as_str(), w["output"].as_str()),
                (Some("completed"), Some(*output)),
                "{w}"
            );
            let log = backend_log(&server, &w);
            assert!(
                log.contains(&format!("restored from snapshot {runtime}-")),
                "round {round}: {log}"
            );
        }
    }
    let snapshots = snapshots(&server);
    let list = snapshots["list"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{snapshots}");
    for s in list {
        assert_eq!(s["valid"], true, "{s}");
        assert!(s["size_bytes"].as_u64().unwrap() > 1 << 20, "{s}");
        assert_eq!(s["shape"]["mem_mb"], 192, "{s}");
    }
    assert_eq!(snapshots["made"], 3, "{snapshots}");
    assert_eq!(snapshots["restored"], 6, "{snapshots}");
    assert_eq!(snapshots["booted"], 0, "{snapshots}");
    let metrics = ureq::get(&server.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("vulcan_backend_events_total{backend=\"microvm\",event=\"restored\"} 6"),
        "{metrics}"
    );
    // Their cold starts are counted as restores.
    assert!(
        metrics.contains(
            "vulcan_workload_preparation_seconds_count{backend=\"microvm\",path=\"restore\"} 6"
        ),
        "{metrics}"
    );
    wait_for_no_qemu(&server);
}

fn snapshot_dirs(server: &Server) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(server.data_dir.join("microvm/snapshots"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_damaged_or_stale_snapshot_is_never_loaded_and_a_crash_leaves_nothing_half_made() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[("VULCAN_MICROVM_POOL", "0")]);
    let first = server.run(python("print(1)"));
    assert_eq!(first["output"], "1", "{first}");
    let names = snapshot_dirs(&server);
    assert_eq!(names.len(), 1, "{names:?}");

    // Damaged in place, same size: the next restore checks it, removes it, makes a new one.
    let state = server
        .data_dir
        .join("microvm/snapshots")
        .join(&names[0])
        .join("state");
    let mut bytes = std::fs::read(&state).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 4096] {
        *b ^= 0x5a;
    }
    std::fs::write(&state, &bytes).unwrap();
    let after = server.run(python("print(2)"));
    assert_eq!(after["output"], "2", "{after}");
    let log = backend_log(&server, &after);
    assert!(log.contains("failed its digest check"), "{log}");
    assert!(log.contains("never loaded"), "{log}");
    assert!(log.contains("restored from snapshot python-"), "{log}");
    let remade = std::fs::read(&state).unwrap();
    assert_ne!(remade, bytes, "the damaged state was replaced");

    // A crash while a snapshot is being made (node's, the first of its shape): no QEMU is
    // left, and what was half-written is gone at the next start, never used.
    let node = json!({"runtime": "node", "isolation": "microvm", "code": "console.log(3)"});
    let id = server.submit(node.clone());
    eventually(Duration::from_secs(30), "a snapshot being made", || {
        std::fs::read_dir(server.data_dir.join("microvm/snapshots"))
            .ok()?
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains(".partial-"))
            .then_some(())
    });
    server.kill9();
    wait_for_no_qemu(&server);
    // Stale: the same data directory with another initramfs (the same guest, padded).
    let assets = assets();
    let padded = dir.path().join("initramfs-padded.cpio");
    let mut initramfs = std::fs::read(assets.join("initramfs.cpio")).unwrap();
    initramfs.extend_from_slice(&[0u8; 512]);
    std::fs::write(&padded, initramfs).unwrap();
    let server = Server::start_in(
        dir.path(),
        &[
            ("VULCAN_MICROVM_POOL", "0"),
            ("VULCAN_MICROVM_INITRAMFS", padded.to_str().unwrap()),
        ],
    );
    assert!(
        snapshot_dirs(&server)
            .iter()
            .all(|n| !n.contains(".partial-")),
        "{:?}",
        snapshot_dirs(&server)
    );
    let (_, lost) = server.get(&format!("/v1/workloads/{id}"));
    assert_ne!(lost["status"], "running", "{lost}");
    let fresh = server.run(python("print(4)"));
    assert_eq!(fresh["output"], "4", "{fresh}");
    let now = snapshot_dirs(&server);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(
        now[0], names[0],
        "the stale snapshot was replaced, not restored"
    );
    assert!(backend_log(&server, &fresh).contains("restored from snapshot python-"));
    wait_for_no_qemu(&server);
}

#[test]
fn the_warm_pool_hands_out_booted_vms_once_and_refills() {
    let _serial = serial();
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "python=1,node=0,go=0")]);
    let wait_idle = || {
        for _ in 0..600 {
            if idle_vms(&server, "python") == 1 {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the pool did not fill");
    };
    for round in 0..2 {
        wait_idle();
        let w = server.run(python("print('warm')"));
        assert_eq!(w["output"], "warm", "{w}");
        let (_, logs) = server.get(&format!(
            "/v1/workloads/{}/logs/history?stream=backend",
            w["id"].as_str().unwrap()
        ));
        let line = logs["lines"][0]["line"].as_str().unwrap().to_owned();
        // The pool holds VMs restored from the python snapshot.
        assert!(
            line.starts_with("a warm VM: restored in"),
            "round {round}: {line}"
        );
    }
    // A non-default size cannot use the pool: it boots its own VM.
    wait_idle();
    let mut big = python("print('cold')");
    big["resources"] = json!({"mem_mb": 200});
    let w = server.run(big);
    let (_, logs) = server.get(&format!(
        "/v1/workloads/{}/logs/history?stream=backend",
        w["id"].as_str().unwrap()
    ));
    assert!(
        logs["lines"][0]["line"]
            .as_str()
            .unwrap()
            .starts_with("a VM restored from snapshot python-264m-"),
        "{logs}"
    );
    eventually(
        Duration::from_secs(10),
        "only the idle pool VM to be left",
        || (qemu_processes(&server) == 1).then_some(()),
    );
}

#[test]
fn the_timeout_counts_from_when_the_code_starts_and_a_boot_has_its_own_deadline() {
    let _serial = serial();
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    // A cold boot takes seconds under emulation; the 2 s are the code's own.
    let mut quick = python("print(1)");
    quick["resources"] = json!({"timeout_s": 2});
    let w = server.run(quick);
    assert_eq!(
        (w["status"].as_str(), w["output"].as_str()),
        (Some("completed"), Some("1")),
        "{w}"
    );
    let prepared = w["prepare_ms"].as_u64().expect("prepare_ms");
    assert!(
        prepared > 0 && prepared <= w["duration_ms"].as_u64().unwrap(),
        "{w}"
    );
    let (_, logs) = server.get(&format!(
        "/v1/workloads/{}/logs/history?stream=backend",
        w["id"].as_str().unwrap()
    ));
    let lines = logs["lines"].to_string();
    assert!(lines.contains("prepared in"), "{lines}");

    // An archive that inflates past the one budget every code archive has is refused
    // before a VM is spent on it.
    let gz = {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let mut tar = tar::Builder::new(&mut gz);
        let mut header = tar::Header::new_gnu();
        header.set_size(300 << 20);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "zeros", std::io::repeat(0).take(300 << 20))
            .unwrap();
        tar.finish().unwrap();
        drop(tar);
        gz.finish().unwrap()
    };
    let bomb = server.run(json!({"runtime": "python",
        "code_archive": base64::engine::general_purpose::STANDARD.encode(gz)}));
    assert_eq!(bomb["status"], "failed");
    assert!(
        bomb["error"]
            .as_str()
            .unwrap()
            .contains("more than 268435456 bytes"),
        "{bomb}"
    );
    assert_eq!(qemu_processes(&server), 0, "no VM was booted for it");
    drop(server);

    // A boot that misses its deadline fails with an error of its own.
    let slow = Server::start(&[
        ("VULCAN_MICROVM_POOL", "0"),
        ("VULCAN_MICROVM_BOOT_TIMEOUT_S", "1"),
    ]);
    let w = slow.run(python("print(1)"));
    assert_eq!(w["status"], "failed", "{w}");
    let error = w["error"].as_str().unwrap();
    assert!(
        error.contains("did not boot") && error.contains("did not become ready within 1 s"),
        "{error}"
    );
    wait_for_no_qemu(&slow);
}

fn invoke(server: &Server, name: &str, input: Value) -> Value {
    let (status, w) = server.post(&format!("/v1/functions/{name}/invoke"), &input);
    assert_eq!(status, 200, "{w}");
    w
}

const PY_COUNTER: &str = "count = 0

def handler(input):
    global count
    count += 1
    print('call', count)
    if input.get('bomb'):
        hog = [bytearray(1 << 20) for _ in range(4096)]
    if input.get('loop'):
        while True:
            pass
    return {'sum': input['a'] + input['b'], 'count': count}
";

#[test]
fn a_python_function_is_served_warm_in_a_microvm_with_the_answers_of_fresh_runs() {
    let _serial = serial();
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    let body = |reuse: bool| {
        json!({"runtime": "python", "isolation": "microvm", "code": PY_COUNTER, "reuse": reuse,
               "max_instances": 1, "resources": {"timeout_s": 5}})
    };
    common::deploy_function(&server, "warm", body(true));
    common::deploy_function(&server, "fresh", body(false));
    for i in 0..5 {
        let warm = invoke(&server, "warm", json!({"a": i, "b": 10}));
        assert_eq!(warm["status"], "completed", "{warm}");
        let answer: Value = serde_json::from_str(warm["output"].as_str().unwrap()).unwrap();
        assert_eq!(
            answer,
            json!({"sum": i + 10, "count": i + 1}),
            "one instance serves them all, in turn"
        );
        let (_, logs) = server.get(&format!(
            "/v1/workloads/{}/logs/history?stream=stdout",
            warm["id"].as_str().unwrap()
        ));
        assert_eq!(
            logs["lines"].as_array().unwrap().len(),
            1,
            "each invocation's log holds its own lines: {logs}"
        );
        assert_eq!(logs["lines"][0]["line"], format!("call {}", i + 1));
        if i < 2 {
            let fresh = invoke(&server, "fresh", json!({"a": i, "b": 10}));
            let answer: Value = serde_json::from_str(fresh["output"].as_str().unwrap()).unwrap();
            assert_eq!(
                answer,
                json!({"sum": i + 10, "count": 1}),
                "a fresh VM each time: {fresh}"
            );
        }
    }
    let (_, f) = server.get("/v1/functions/warm");
    assert_eq!(f["instances"], 1, "{f}");

    // An invocation that loops or eats its memory fails alone; the next gets a new VM.
    let looped = invoke(&server, "warm", json!({"a": 0, "b": 0, "loop": true}));
    assert_eq!(
        (looped["status"].as_str(), looped["error"].as_str()),
        (Some("failed"), Some("timed out after 5 s")),
        "{looped}"
    );
    let next = invoke(&server, "warm", json!({"a": 1, "b": 1}));
    assert_eq!(next["output"], r#"{"sum": 2, "count": 1}"#, "{next}");
    let bomb = invoke(&server, "warm", json!({"a": 0, "b": 0, "bomb": true}));
    assert_eq!(bomb["status"], "failed", "{bomb}");
    assert!(bomb["error"].as_str().unwrap().contains("memory"), "{bomb}");
    let next = invoke(&server, "warm", json!({"a": 2, "b": 2}));
    assert_eq!(next["output"], r#"{"sum": 4, "count": 1}"#, "{next}");

    // A kill stops an invocation; the next one is served.
    let (status, looping) = server.post(
        "/v1/functions/warm/invoke?async=true",
        &json!({"a": 0, "b": 0, "loop": true}),
    );
    assert_eq!(status, 202, "{looping}");
    let id = looping["id"].as_str().unwrap();
    server.wait_status(id, "running", Duration::from_secs(60));
    let (status, killed) = server.delete(&format!("/v1/workloads/{id}"));
    assert_eq!((status, killed["status"].as_str()), (200, Some("killed")));
    let next = invoke(&server, "warm", json!({"a": 3, "b": 3}));
    assert_eq!(next["output"], r#"{"sum": 6, "count": 1}"#, "{next}");

    // Deleting the function stops its instance.
    let (status, _) = server.delete("/v1/functions/warm");
    assert_eq!(status, 204);
    wait_for_no_qemu(&server);
}

#[test]
fn node_and_go_functions_are_served_warm_in_a_microvm() {
    let _serial = serial();
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    common::deploy_function(
        &server,
        "node",
        json!({"runtime": "node", "isolation": "microvm",
               "code": "let n = 0; export default (i) => { console.log('hi'); return {n: ++n, twice: i.x * 2}; }"}),
    );
    for n in 1..=3 {
        let w = invoke(&server, "node", json!({"x": n}));
        assert_eq!(
            (w["status"].as_str(), w["isolation"].as_str()),
            (Some("completed"), Some("microvm")),
            "{w}"
        );
        assert_eq!(w["output"], json!({"n": n, "twice": n * 2}).to_string());
    }
    let thrown = common::deploy_function(
        &server,
        "thrower",
        json!({"runtime": "node", "isolation": "microvm", "code": "export default () => { throw new Error('no way') }"}),
    );
    assert_eq!(thrown["version"], 1);
    let w = invoke(&server, "thrower", json!({}));
    assert_eq!(w["status"], "failed", "{w}");
    assert!(w["error"].as_str().unwrap().contains("no way"), "{w}");

    // Go: the program runs once per invocation, in a VM kept warm.
    let binary = go_binary(
        "package main\n\nimport (\n\t\"fmt\"\n\t\"io\"\n\t\"os\"\n)\n\nfunc main() {\n\tb, _ := io.ReadAll(os.Stdin)\n\tfmt.Printf(\"go got %s\", b)\n}\n",
    );
    common::deploy_function(
        &server,
        "go",
        json!({"runtime": "go", "code_archive": tar_gz(&[("main", &binary, 0o755)])}),
    );
    let mut boots_seen = Vec::new();
    for n in 0..3 {
        let w = invoke(&server, "go", json!({"n": n}));
        assert_eq!(w["output"], format!("go got {{\"n\":{n}}}"), "{w}");
        let (_, logs) = server.get(&format!(
            "/v1/workloads/{}/logs/history?stream=backend",
            w["id"].as_str().unwrap()
        ));
        let boots = logs["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| {
                let line = l["line"].as_str().unwrap();
                line.contains("booted to its agent") || line.contains(": restored in")
            })
            .count();
        boots_seen.push(boots);
    }
    assert_eq!(
        boots_seen,
        [1, 0, 0],
        "only the first invocation starts a VM"
    );
}

#[test]
fn each_run_reports_the_cpu_time_and_memory_it_really_used_in_the_guest() {
    let _serial = serial();
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    let busy = server.run(python(
        "import time\nend = time.time() + 1\nn = 0\nwhile time.time() < end:\n    n += 1\nprint('done')",
    ));
    assert_eq!(busy["output"], "done", "{busy}");
    let mut big = python("b = b'x' * (100 * 1024 * 1024)\nprint(len(b) >> 20)");
    big["resources"] = json!({"mem_mb": 256});
    let big = server.run(big);
    assert_eq!(big["output"], "100", "{big}");
    let idle = server.run(python("import time\ntime.sleep(1)"));
    // Python's own start-up is real CPU time, and under TCG a lot of it: an idle second
    // must add little to what a program that does nothing uses.
    let nothing = server.run(python("pass"));
    let ms = |w: &Value| w["cpu_time_ms"].as_u64().unwrap();
    eprintln!(
        "microvm usage: busy {} ms, big {} bytes, idle {} ms, nothing {} ms, processes {}",
        ms(&busy),
        big["peak_memory_bytes"],
        ms(&idle),
        ms(&nothing),
        idle["max_processes"]
    );
    assert!(ms(&busy) >= 800, "{busy}");
    assert!(ms(&busy) >= ms(&nothing) + 700, "the loop's second: {busy}");
    assert!(
        big["peak_memory_bytes"].as_u64().unwrap() >= 100 << 20,
        "{big}"
    );
    assert!(
        ms(&idle) < ms(&nothing) + 300,
        "an idle second costs little: {idle} vs {nothing}"
    );
}

const HELLO_GO: &str =
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hello\")\n}\n";

#[test]
fn go_source_is_built_in_a_sandbox_once_and_runs_in_a_microvm() {
    let _one = serial();
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    let first =
        server.run(json!({"runtime": "go", "code": HELLO_GO, "resources": {"timeout_s": 60}}));
    assert_eq!(
        (first["status"].as_str(), first["output"].as_str()),
        (Some("completed"), Some("hello")),
        "{first}"
    );
    assert_eq!(first["isolation"], "microvm", "{first}");
    let log = lines(&server, &first, "backend");
    assert!(
        log.iter().any(|l| l.contains("go build: built in")),
        "{log:?}"
    );
    // The same source again: the build is skipped, and says so.
    let second =
        server.run(json!({"runtime": "go", "code": HELLO_GO, "resources": {"timeout_s": 60}}));
    assert_eq!(second["output"], "hello", "{second}");
    let log = lines(&server, &second, "backend");
    assert!(
        log.iter().any(|l| l.contains("go build skipped")),
        "{log:?}"
    );
    assert!(!log.iter().any(|l| l.contains("built in")), "{log:?}");

    // A module with a package of its own, sent as an archive.
    let archive = tar_gz(&[
        ("go.mod", b"module example.com/app\n\ngo 1.19\n", 0o644),
        (
            "main.go",
            b"package main\n\nimport (\n\t\"fmt\"\n\t\"example.com/app/greet\"\n)\n\nfunc main() { fmt.Println(greet.Hi(\"Ada\")) }\n",
            0o644,
        ),
        (
            "greet/greet.go",
            b"package greet\n\nfunc Hi(n string) string { return \"hi \" + n }\n",
            0o644,
        ),
    ]);
    let module = server
        .run(json!({"runtime": "go", "code_archive": archive, "resources": {"timeout_s": 60}}));
    assert_eq!(module["output"], "hi Ada", "{module}");
}

#[test]
fn a_compile_error_or_a_reach_for_host_files_fails_with_the_compilers_words() {
    let _one = serial();
    let server = Server::start(&[("VULCAN_MICROVM_POOL", "0")]);
    let broken = server.run(json!({"runtime": "go",
        "code": "package main\n\nfunc main() {\n\tundefinedThing()\n}\n"}));
    assert_eq!(broken["status"], "failed", "{broken}");
    let error = broken["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("go build failed") && error.contains("undefined: undefinedThing"),
        "{broken}"
    );
    let id = broken["id"].as_str().unwrap();
    let (_, stderr) = server.get(&format!("/v1/workloads/{id}/logs/history?stream=stderr"));
    assert!(
        stderr.to_string().contains("undefined: undefinedThing"),
        "the compiler's message is in the stderr log: {stderr}"
    );
    // Embedding a host file: refused by the compiler, and the sandbox has none to give.
    for pattern in ["../../../../etc/passwd", "/etc/passwd"] {
        let embed = server.run(json!({"runtime": "go", "code": format!(
            "package main\n\nimport (\n\t_ \"embed\"\n\t\"fmt\"\n)\n\n//go:embed {pattern}\nvar secret string\n\nfunc main() {{ fmt.Print(secret) }}\n"
        )}));
        assert_eq!(embed["status"], "failed", "{embed}");
        let error = embed["error"].as_str().unwrap_or_default();
        assert!(error.contains("go build failed"), "{embed}");
        assert!(!embed.to_string().contains("root:x:0:0"), "{embed}");
    }
}

/// `POST /v1/workloads` with `key`: the finished workload (panics unless 200).
fn run_as(server: &Server, key: &str, body: Value) -> Value {
    let (status, w) = common::answer_of(
        ureq::post(&server.url("/v1/workloads"))
            .set("X-API-Key", key)
            .send_json(body),
    );
    assert_eq!(status, 200, "{w}");
    w
}

/// A new key of `tenant` (developer), made with `admin`.
fn developer_key(server: &Server, admin: &str, tenant: &str) -> String {
    let (status, created) = common::answer_of(
        ureq::post(&server.url("/v1/keys"))
            .set("X-API-Key", admin)
            .send_json(json!({"name": tenant, "role": "developer", "tenant": tenant})),
    );
    assert_eq!(status, 201, "{created}");
    created["key"].as_str().unwrap().to_owned()
}

#[test]
fn go_source_builds_with_the_readmes_relative_data_dir() {
    let _one = serial();
    let (server, admin) = Server::start_readme_way(&[]);
    let w = run_as(
        &server,
        &admin,
        json!({"runtime": "go", "code": HELLO_GO, "resources": {"timeout_s": 60}}),
    );
    assert_eq!(
        (w["status"].as_str(), w["output"].as_str()),
        (Some("completed"), Some("hello")),
        "{w}"
    );
    // And the next Go workload too (the toolchain root was made once, where it belongs).
    let again = run_as(
        &server,
        &admin,
        json!({"runtime": "go", "code": HELLO_GO.replace("hello", "again"), "resources": {"timeout_s": 60}}),
    );
    assert_eq!(again["output"], "again", "{again}");
    assert!(server.data_dir.join("go/toolchain").is_dir());
}

/// One entry of a hand-made archive.
enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Link(&'a str, &'a str),
}

fn tar_gz_entries(entries: &[Entry]) -> String {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for entry in entries {
        let mut h = tar::Header::new_gnu();
        match entry {
            Entry::File(name, data) => {
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut h, name, *data).unwrap();
            }
            Entry::Dir(name) => {
                h.set_size(0);
                h.set_mode(0o755);
                h.set_entry_type(tar::EntryType::Directory);
                tar.append_data(&mut h, name, &[][..]).unwrap();
            }
            Entry::Link(name, target) => {
                h.set_size(0);
                h.set_mode(0o777);
                h.set_entry_type(tar::EntryType::Symlink);
                tar.append_link(&mut h, name, target).unwrap();
            }
        }
    }
    base64::engine::general_purpose::STANDARD.encode(tar.into_inner().unwrap().finish().unwrap())
}

/// `go1.19.8` → `1.19`: the language version Vulcan writes into a one-file module.
fn go_language_version() -> String {
    let out = Command::new("go")
        .args(["env", "GOVERSION"])
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    version
        .trim_start_matches("go")
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
}

#[test]
fn no_tenant_can_plant_its_program_as_another_tenants_go_build() {
    let _one = serial();
    let (server, admin) = Server::start_with_absolute_data_dir(&[]);
    let mallory = developer_key(&server, &admin, "mallory");
    let alice = developer_key(&server, &admin, "alice");
    let go = |key: &str, body: Value| {
        let mut body = body;
        body["runtime"] = json!("go");
        body["resources"] = json!({"timeout_s": 60});
        run_as(&server, key, body)
    };
    // Mallory builds her program: it is kept under the digest of its source.
    let evil = "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"pwned\")\n}\n";
    let planted = go(&mallory, json!({"code": evil}));
    assert_eq!(planted["output"], "pwned", "{planted}");
    let builds: Vec<String> = std::fs::read_dir(server.data_dir.join("go/builds"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(builds.len(), 1, "{builds:?}");
    let evil_key = &builds[0];
    // Then Alice's exact source, with a link where the build's output is read: in the
    // sandbox it leads into the archive itself (the build succeeds there), on the host
    // to Mallory's kept program (the server's working directory is the data dir's parent).
    let module = format!("module main\n\ngo {}\n", go_language_version());
    let dir = format!(".vulcan/go/builds/{evil_key}");
    let link = format!("/proc/self/cwd/{dir}");
    let archive = tar_gz_entries(&[
        Entry::File("main.go", HELLO_GO.as_bytes()),
        Entry::File("go.mod", module.as_bytes()),
        Entry::Dir(".vulcan"),
        Entry::Dir(".vulcan/go"),
        Entry::Dir(".vulcan/go/builds"),
        Entry::Dir(&dir),
        Entry::Link(".vulcan-build", &link),
    ]);
    let poisoned = go(&mallory, json!({"code_archive": archive}));
    assert_ne!(
        poisoned["output"], "pwned",
        "the host never reads a program through a link the source holds: {poisoned}"
    );
    // Alice's own build of that source is hers.
    let mine = go(&alice, json!({"code": HELLO_GO}));
    assert_eq!(
        (mine["status"].as_str(), mine["output"].as_str()),
        (Some("completed"), Some("hello")),
        "{mine}"
    );
}
