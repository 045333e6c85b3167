//! Sandboxes held across many steps in microVMs: the real binary over real HTTP, a real
//! local registry and image, real QEMU microVMs (TCG here) each on a disk of its own, a
//! real SQLite file. Slow: its own target.

mod common;

use std::time::Duration;

use common::sandbox_host::{
    a_terminal_has_its_size, background, download, held_to, hex, sh, upload,
    watch_sees_changes_below, Host,
};
use common::{eventually, Server};
use serde_json::{json, Value};
use sha2::Digest;
use vulcan_gvisor::testing::Registry;

fn create(server: &Server, body: Value) -> String {
    let (status, sandbox) = server.post("/v1/sandboxes", &body);
    assert_eq!(status, 201, "{sandbox}");
    assert_eq!(sandbox["state"], "running");
    assert_eq!(sandbox["isolation"], "microvm");
    sandbox["id"].as_str().unwrap().to_owned()
}

fn process(server: &Server, id: &str, pid: u64) -> Value {
    server.get(&format!("/v1/sandboxes/{id}/processes/{pid}")).1
}

/// The QEMU processes whose command line names `needle`.
fn vmms_naming(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains("qemu-system") && text.contains(needle) {
            found.push(text);
        }
    }
    found
}

#[test]
fn a_microvm_sandbox_runs_processes_keeps_files_and_pauses_with_its_processes_running() {
    let registry = Registry::start();
    let image = registry.push("busybox:vm-sandboxes", "busybox");
    let server = Host {
        server: Server::start(&[("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())]),
    };
    let id = create(
        &server,
        json!({"isolation": "microvm", "image": image, "env": {"WHO": "vulcan"},
               "resources": {"disk_mb": 128, "mem_mb": 256}}),
    );
    let dir = server.data_dir.join("microvm/sandboxes").join(&id);
    assert!(dir.join("disk.img").is_file(), "its own disk");

    assert_eq!(
        sh(&server, &id, "echo hi"),
        (0, "hi\n".into(), String::new())
    );
    assert_eq!(sh(&server, &id, "exit 7").0, 7);
    assert_eq!(sh(&server, &id, "echo $WHO").1, "vulcan\n");
    assert_eq!(
        sh(&server, &id, "echo oops >&2; exit 3"),
        (3, String::new(), "oops\n".into())
    );
    // Its own kernel, not the host's.
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let (_, guest_kernel, _) = sh(&server, &id, "uname -r");
    assert_ne!(guest_kernel.trim(), host_kernel.trim());
    let (status, body) = server.post(
        &format!("/v1/sandboxes/{id}/processes"),
        &json!({"cmd": "no-such-program"}),
    );
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(
        body["error"].as_str().unwrap().contains("no-such-program"),
        "{body}"
    );

    // A background process outlives its request and ends by a signal.
    let sleeper = background(
        &server,
        &id,
        json!({"cmd": "sleep", "args": ["1000"], "background": true}),
    );
    let (status, body) = server.post(
        &format!("/v1/sandboxes/{id}/processes/{sleeper}/signal"),
        &json!({"signal": "SIGKILL"}),
    );
    assert_eq!(status, 204, "{body}");
    let ended = eventually(Duration::from_secs(20), "the sleeper to end", || {
        let p = process(&server, &id, sleeper);
        (p["state"] == "exited").then_some(p)
    });
    assert_eq!(ended["signal"], 9, "{ended}");

    // stdin is echoed back by cat.
    let cat = background(
        &server,
        &id,
        json!({"cmd": "cat", "background": true, "stdin": true}),
    );
    let (status, body) = server.post(
        &format!("/v1/sandboxes/{id}/processes/{cat}/input"),
        &json!({"data": "echoed back\n", "close": true}),
    );
    assert_eq!(status, 204, "{body}");
    let done = eventually(Duration::from_secs(20), "cat to end", || {
        let p = process(&server, &id, cat);
        (p["state"] == "exited").then_some(p)
    });
    assert_eq!(done["exit_code"], 0, "{done}");
    assert_eq!(done["output_bytes"], 12, "{done}");

    // 3 MB up (in pieces), checked inside, and down again with the same digest.
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let digest = hex(&sha2::Sha256::digest(&big));
    let (status, entry) = upload(&server, &id, "/home/user/big.bin", &big);
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["size"], big.len());
    let (code, inside, _) = sh(&server, &id, "sha256sum /home/user/big.bin");
    assert_eq!(code, 0);
    assert!(inside.starts_with(&digest), "{inside} vs {digest}");
    let back = download(&server, &id, "/home/user/big.bin").expect("a download");
    assert_eq!(hex(&sha2::Sha256::digest(&back)), digest);

    // Written inside, read through the API; listed, moved, made, removed.
    sh(
        &server,
        &id,
        "mkdir -p /work/out && echo result > /work/out/r.txt",
    );
    assert_eq!(
        download(&server, &id, "/work/out/r.txt").unwrap(),
        b"result\n"
    );
    let (_, list) = server.get(&format!("/v1/sandboxes/{id}/files/list?path=/work&depth=2"));
    let paths: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/work/out", "/work/out/r.txt"], "{list}");
    let (status, moved) = server.post(
        &format!("/v1/sandboxes/{id}/files/move"),
        &json!({"from": "/work/out/r.txt", "to": "/work/r2.txt"}),
    );
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["path"], "/work/r2.txt");
    assert_eq!(sh(&server, &id, "cat /work/r2.txt").1, "result\n");
    let (status, _) = server.post(
        &format!("/v1/sandboxes/{id}/files/mkdir"),
        &json!({"path": "/a/b/c"}),
    );
    assert_eq!(status, 200);
    assert_eq!(sh(&server, &id, "test -d /a/b/c && echo yes").1, "yes\n");
    let (status, _) = server.delete(&format!("/v1/sandboxes/{id}/files?path=/a"));
    assert_eq!(status, 204);
    assert_eq!(sh(&server, &id, "test -e /a || echo gone").1, "gone\n");
    let (status, _) = server.get(&format!("/v1/sandboxes/{id}/files/stat?path=/nothing"));
    assert_eq!(status, 404);

    // A watch of a directory sees changes below it, those made inside included.
    watch_sees_changes_below(&server, &id, "/work", Duration::from_secs(20));
    a_terminal_has_its_size(&server, &id);

    // No path leads out: `..` is refused, and a link to / means the sandbox's root.
    let (status, body) = server.get(&format!(
        "/v1/sandboxes/{id}/files/stat?path=/../../etc/shadow"
    ));
    assert_eq!(status, 400, "{body}");
    sh(
        &server,
        &id,
        "ln -s / /escape && echo sandbox-only > /marker",
    );
    assert_eq!(
        download(&server, &id, "/escape/marker").unwrap(),
        b"sandbox-only\n"
    );
    // A directory is not downloaded; a file past the disk limit is refused, whole.
    assert_eq!(download(&server, &id, "/work").unwrap_err().0, 400);
    let huge = vec![1u8; 160 * 1024 * 1024];
    let (status, body) = upload(&server, &id, "/huge.bin", &huge);
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("disk"), "{body}");
    let (status, _) = server.get(&format!("/v1/sandboxes/{id}/files/stat?path=/huge.bin"));
    assert_eq!(status, 404, "nothing half-written is left");
    let (code, _, _) = sh(&server, &id, "ls -a / | grep -c vulcan-upload");
    assert_ne!(code, 0, "no temporary upload file is left either");
    // A disk filler inside meets the end of its disk, not the host's.
    let (code, _, err) = sh(
        &server,
        &id,
        "dd if=/dev/zero of=/filler bs=1M count=200 2>&1 >/dev/null | head -1 >&2; rm -f /filler; exit 1",
    );
    assert_eq!(code, 1);
    assert!(err.contains("No space"), "{err}");

    let usage = eventually(Duration::from_secs(20), "a usage sample", || {
        let (_, m) = server.get(&format!("/v1/sandboxes/{id}/metrics"));
        (m["memory_bytes"].as_u64().unwrap_or(0) > 0).then_some(m)
    });
    assert!(usage["disk_bytes"].as_u64().unwrap() >= 3 << 20, "{usage}");

    // Paused with a process Vulcan follows still running: it goes on after the resume,
    // its output still streaming to the API.
    let ticker = background(
        &server,
        &id,
        json!({"cmd": "sh", "args": ["-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"], "background": true}),
    );
    let before = eventually(Duration::from_secs(20), "the ticker to tick", || {
        let n = process(&server, &id, ticker)["output_bytes"].as_u64()?;
        (n > 20).then_some(n)
    });
    sh(&server, &id, "echo kept > /home/file.txt");
    let (status, paused) = server.post(&format!("/v1/sandboxes/{id}/pause"), &json!({}));
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["state"], "paused");
    assert!(
        vmms_naming(&dir.to_string_lossy()).is_empty(),
        "no VM runs while it is paused"
    );
    assert!(dir.join("state").is_file(), "its devices' state is saved");
    let (status, body) = server.post(
        &format!("/v1/sandboxes/{id}/processes"),
        &json!({"cmd": "true"}),
    );
    assert_eq!(status, 409, "{body}");
    let (status, resumed) = server.post(&format!("/v1/sandboxes/{id}/resume"), &json!({}));
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["state"], "running");
    assert_eq!(sh(&server, &id, "cat /home/file.txt").1, "kept\n");
    let ticking = process(&server, &id, ticker);
    assert_eq!(ticking["state"], "running", "{ticking}");
    eventually(
        Duration::from_secs(20),
        "the ticker's output to go on",
        || {
            let n = process(&server, &id, ticker)["output_bytes"].as_u64()?;
            (n > before + 40).then_some(())
        },
    );
    // The clock was set again: not where it stood when it was paused.
    let (_, guest_now, _) = sh(&server, &id, "date +%s");
    let host_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let guest_now: i64 = guest_now.trim().parse().unwrap();
    assert!(
        (guest_now - host_now).abs() <= 5,
        "{guest_now} vs {host_now}"
    );
    server.post(
        &format!("/v1/sandboxes/{id}/processes/{ticker}/signal"),
        &json!({"signal": 15}),
    );
    let ended = eventually(Duration::from_secs(20), "the ticker to end", || {
        let p = process(&server, &id, ticker);
        (p["state"] == "exited").then_some(p)
    });
    assert_eq!(ended["signal"], 15, "{ended}");

    let (status, ended) = server.delete(&format!("/v1/sandboxes/{id}"));
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["state"], "ended");
    eventually(Duration::from_secs(15), "nothing of it to be left", || {
        (!dir.exists() && vmms_naming(&dir.to_string_lossy()).is_empty()).then_some(())
    });
}

#[test]
fn a_server_that_stops_pauses_its_microvm_sandboxes_and_takes_them_back_and_a_crash_loses_them() {
    let registry = Registry::start();
    let image = registry.push("busybox:vm-sandbox-restart", "busybox");
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("VULCAN_INSECURE_REGISTRIES", registry.host.as_str()),
        ("VULCAN_SANDBOX_ISOLATION", "microvm"),
    ];
    let mut server = Host {
        server: Server::start_in(dir.path(), &env),
    };
    let kept = create(
        &server,
        json!({"image": image, "resources": {"mem_mb": 128}}),
    );
    sh(&server, &kept, "mkdir -p /data && echo kept > /data/f");
    sh(
        &server,
        &kept,
        "(i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done) >/dev/null 2>&1 </dev/null &",
    );
    let before: u64 = eventually(Duration::from_secs(20), "the counter to count", || {
        sh(&server, &kept, "cat /tmp/count")
            .1
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 2)
    });

    // SIGTERM: paused on the way down, taken back paused, resumed with its files and its
    // processes.
    server.stop(Duration::from_secs(60));
    server.server = Server::start_in(dir.path(), &env);
    let (_, s) = server.get(&format!("/v1/sandboxes/{kept}"));
    assert_eq!(s["state"], "paused", "{s}");
    let (status, resumed) = server.post(&format!("/v1/sandboxes/{kept}/resume"), &json!({}));
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(sh(&server, &kept, "cat /data/f").1, "kept\n");
    eventually(
        Duration::from_secs(20),
        "the counter to go on after the restart",
        || {
            let n: u64 = sh(&server, &kept, "cat /tmp/count").1.trim().parse().ok()?;
            (n > before + 3).then_some(())
        },
    );

    // Killed outright: the next start records it lost and removes what it left.
    let killed = create(
        &server,
        json!({"image": image, "resources": {"mem_mb": 128}}),
    );
    let killed_dir = server.data_dir.join("microvm/sandboxes").join(&killed);
    assert!(killed_dir.is_dir());
    server.kill9();
    server.server = Server::start_in(dir.path(), &env);
    let (_, s) = server.get(&format!("/v1/sandboxes/{killed}"));
    assert_eq!(s["state"], "lost", "{s}");
    assert!(
        s["end_reason"]
            .as_str()
            .unwrap()
            .contains("stopped while it was running"),
        "{s}"
    );
    assert!(!killed_dir.exists(), "what it left is removed");
    assert!(vmms_naming(&killed_dir.to_string_lossy()).is_empty());
    // The one taken back earlier was running too: lost as well, nothing of it left.
    let (_, s) = server.get(&format!("/v1/sandboxes/{kept}"));
    assert_eq!(s["state"], "lost", "{s}");
    assert!(!server
        .data_dir
        .join("microvm/sandboxes")
        .join(&kept)
        .exists());
}

#[test]
fn hostile_code_in_a_microvm_sandbox_is_held_to_its_limits() {
    let registry = Registry::start();
    let image = registry.push("busybox:vm-sandbox-hostile", "busybox");
    let server = Host {
        server: Server::start(&[("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())]),
    };
    let small = json!({"isolation": "microvm", "image": image,
                       "resources": {"mem_mb": 128, "disk_mb": 64}});
    let id = create(&server, small.clone());
    held_to(&server, &id, "x=a; while true; do x=$x$x; done", "memory");
    // A fork bomb meets the sandbox's task limit; then everything in the sandbox is killed
    // (the bomb would hold it at the limit for ever), and the sandbox answers.
    held_to(
        &server,
        &id,
        "bomb() { bomb | bomb & }; bomb; sleep 2",
        "task limit",
    );
    // What the kill left is reaped by the agent (PID 1) within moments: no zombie holds a
    // task of the sandbox.
    eventually(Duration::from_secs(20), "the bomb to be gone", || {
        let (code, out, _) = sh(
            &server,
            &id,
            "cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^sh$'",
        );
        (code == 0 && out.trim().parse::<u32>().ok()? <= 3).then_some(())
    });
    // A process left running by one that ended is reaped when it ends, too.
    for _ in 0..80 {
        sh(&server, &id, "(true &)");
    }
    assert_eq!(sh(&server, &id, "echo still forking").1, "still forking\n");
    let (status, _) = server.get("/healthz");
    assert_eq!(status, 200, "the server stays healthy");
    let other = create(&server, small);
    assert_eq!(sh(&server, &other, "echo beside").1, "beside\n");
}

#[test]
fn a_volume_written_in_a_microvm_is_read_by_the_next_sandboxes_of_either_isolation() {
    let registry = Registry::start();
    let image = registry.push("busybox:vm-volumes", "busybox");
    let server = Host {
        server: Server::start(&[("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())]),
    };
    let (status, made) = server.post("/v1/volumes", &json!({"name": "notes", "size_mb": 64}));
    assert_eq!(status, 201, "{made}");
    let mount =
        |read_only: bool| json!([{"name": "notes", "path": "/notes", "read_only": read_only}]);
    let writer = create(
        &server,
        json!({"isolation": "microvm", "image": image, "volumes": mount(false)}),
    );
    assert_eq!(
        sh(
            &server,
            &writer,
            "echo from a microvm > /notes/a && cat /notes/a"
        )
        .1,
        "from a microvm\n"
    );
    // A filler meets the volume's size, not the sandbox's disk.
    let (code, _, _) = sh(
        &server,
        &writer,
        "dd if=/dev/zero of=/notes/big bs=1M count=100",
    );
    assert_ne!(code, 0, "100 MiB fit in a 64 MiB volume");
    assert_eq!(sh(&server, &writer, "rm /notes/big").0, 0);
    // Across a pause and resume the volume is still there, and still written to.
    let (status, body) = server.post(&format!("/v1/sandboxes/{writer}/pause"), &json!({}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.post(&format!("/v1/sandboxes/{writer}/resume"), &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(sh(&server, &writer, "echo again >> /notes/a").0, 0);
    let (status, body) = server.post(
        "/v1/sandboxes",
        &json!({"isolation": "microvm", "image": image, "volumes": mount(true)}),
    );
    assert_eq!(status, 409, "a reader beside the writer: {body}");
    let (status, _) = server.delete(&format!("/v1/sandboxes/{writer}"));
    assert_eq!(status, 200);

    // Read by a read-only microVM and a read-only gVisor sandbox together.
    let vm_reader = create(
        &server,
        json!({"isolation": "microvm", "image": image, "volumes": mount(true)}),
    );
    let (status, gvisor) = server.post(
        "/v1/sandboxes",
        &json!({"isolation": "gvisor", "image": image, "volumes": mount(true)}),
    );
    assert_eq!(status, 201, "{gvisor}");
    let gvisor_reader = gvisor["id"].as_str().unwrap().to_owned();
    for reader in [&vm_reader, &gvisor_reader] {
        assert_eq!(
            sh(&server, reader, "cat /notes/a").1,
            "from a microvm\nagain\n",
            "read in {reader}"
        );
        assert_ne!(
            sh(&server, reader, "echo no > /notes/b").0,
            0,
            "a read-only volume was written"
        );
    }
    for reader in [&vm_reader, &gvisor_reader] {
        let (status, _) = server.delete(&format!("/v1/sandboxes/{reader}"));
        assert_eq!(status, 200);
    }
    let (status, body) = server.delete("/v1/volumes/notes");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn microvm_workloads_mount_volumes_and_what_they_write_outlives_their_vm() {
    let registry = Registry::start();
    let image = registry.push("busybox:vm-workload-volumes", "busybox");
    let server = Server::start(&[("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())]);
    let (status, made) = server.post("/v1/volumes", &json!({"name": "jobs", "size_mb": 32}));
    assert_eq!(status, 201, "{made}");
    let mount =
        |read_only: bool| json!([{"name": "jobs", "path": "/jobs", "read_only": read_only}]);

    // A Python workload in a microVM writes; the VM is gone when it has ended, its file is
    // not.
    let wrote = server.run(json!({
        "runtime": "python", "isolation": "microvm", "volumes": mount(false),
        "code": "import os\nopen('/jobs/py.txt', 'w').write('from python')\nprint(sorted(os.listdir('/jobs')))",
    }));
    assert_eq!(wrote["status"], "completed", "{wrote}");
    assert!(
        wrote["output"].as_str().unwrap().contains("py.txt"),
        "{wrote}"
    );
    let disk = format!("{}.ext4", made["id"].as_str().unwrap());
    assert!(vmms_naming(&disk).is_empty(), "its VM is gone");

    // Read by a gVisor workload, and read-only in a microVM (where writing fails).
    let read = server.run(json!({
        "runtime": "oci", "isolation": "gvisor", "image": image,
        "command": ["cat", "/jobs/py.txt"], "volumes": mount(true),
    }));
    assert_eq!(read["output"], "from python", "{read}");
    let read_only = server.run(json!({
        "runtime": "python", "isolation": "microvm", "volumes": mount(true),
        "code": "print(open('/jobs/py.txt').read(), flush=True)\nopen('/jobs/other', 'w')",
    }));
    assert_eq!(read_only["status"], "failed", "{read_only}");
    assert!(
        read_only["output"]
            .as_str()
            .unwrap()
            .contains("from python"),
        "{read_only}"
    );
    let (status, body) = server.delete("/v1/volumes/jobs");
    assert_eq!(status, 200, "{body}");
}
