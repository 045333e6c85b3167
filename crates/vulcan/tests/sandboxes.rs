//! Sandboxes held across many steps, on gVisor: the real binary over real HTTP, a real
//! local registry and image, real runsc sandboxes on real loop-mounted disks, a real
//! SQLite file.

mod common;

use std::time::{Duration, Instant};

use common::sandbox_host::{
    a_terminal_has_its_size, background, base64_decode, download, held_to, hex, sh, upload,
    watch_sees_changes_below, Host,
};
use common::{eventually, Server};
use serde_json::{json, Value};
use sha2::Digest;
use vulcan_gvisor::testing::Registry;

fn server_for(registry: &Registry, extra: &[(&str, &str)]) -> Host {
    let mut env = vec![("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())];
    env.extend_from_slice(extra);
    Host {
        server: Server::start(&env),
    }
}

fn create(server: &Server, body: Value) -> String {
    let (status, sandbox) = server.post("/v1/sandboxes", &body);
    assert_eq!(status, 201, "{sandbox}");
    assert_eq!(sandbox["state"], "running");
    assert_eq!(sandbox["isolation"], "gvisor");
    sandbox["id"].as_str().unwrap().to_owned()
}

/// The cgroups of sandbox `id` in any hierarchy.
fn cgroups_of(id: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|c| c.path().join("vulcan-gvisor").join(id))
        .filter(|p| p.exists())
        .collect()
}

/// Nothing of any sandbox is left on the host (no container, no mount, no directory)
/// within a few seconds: a sandbox is killed at once and removed just after.
fn assert_no_sandbox_left(server: &Server) {
    let dir = server.data_dir.join("gvisor/sandboxes");
    let left = || {
        let out = std::process::Command::new("runsc")
            .arg("--root")
            .arg(dir.join("state"))
            .args(["list", "--quiet"])
            .output()
            .expect("runsc list");
        let containers = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let prefix = dir.to_string_lossy().into_owned();
        let mounted: Vec<String> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|m| m.starts_with(&prefix))
            .map(str::to_owned)
            .collect();
        let dirs: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name())
                    .filter(|n| n != "state")
                    .collect()
            })
            .unwrap_or_default();
        (containers, mounted, dirs)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = left();
        if now.0.is_empty() && now.1.is_empty() && now.2.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left behind: {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_sandbox_runs_commands_in_the_foreground_and_background_and_keeps_its_files() {
    let registry = Registry::start();
    let image = registry.push("busybox:sandboxes", "busybox");
    let server = server_for(&registry, &[]);
    let id = create(
        &server,
        json!({"isolation": "gvisor", "image": image, "env": {"WHO": "vulcan"},
               "metadata": {"purpose": "test"}, "resources": {"disk_mb": 256}}),
    );

    assert_eq!(
        sh(&server, &id, "echo hi"),
        (0, "hi\n".into(), String::new())
    );
    assert_eq!(sh(&server, &id, "exit 7").0, 7);
    assert_eq!(sh(&server, &id, "echo $WHO").1, "vulcan\n");

    // A background process outlives its request, is listed, and ends by a signal.
    let sleeper = background(
        &server,
        &id,
        json!({"cmd": "sleep", "args": ["1000"], "background": true, "tag": "napper"}),
    );
    let (_, listed) = server.get(&format!("/v1/sandboxes/{id}/processes"));
    let found = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == sleeper)
        .cloned()
        .expect("the sleeper is listed");
    assert_eq!(found["state"], "running");
    assert_eq!(found["tag"], "napper", "{found}");
    let (status, body) = server.post(
        &format!("/v1/sandboxes/{id}/processes/{sleeper}/signal"),
        &json!({"signal": "SIGKILL"}),
    );
    assert_eq!(status, 204, "{body}");
    let ended = eventually(Duration::from_secs(10), "the sleeper to end", || {
        let (_, p) = server.get(&format!("/v1/sandboxes/{id}/processes/{sleeper}"));
        (p["state"] == "exited").then_some(p)
    });
    assert_eq!(ended["signal"], 9, "{ended}");

    // Output streams live: a line every 200 ms arrives as it is written.
    let ticker = background(
        &server,
        &id,
        json!({"cmd": "sh", "args": ["-c", "for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done"], "background": true}),
    );
    let mut events = server.sse(&format!("/v1/sandboxes/{id}/processes/{ticker}/output"));
    let mut arrivals = Vec::new();
    let mut text = String::new();
    let exit = loop {
        let event = events
            .next_event()
            .expect("the stream goes on until the exit");
        match event.event.as_str() {
            "stdout" => {
                let data: Value = serde_json::from_str(&event.data).unwrap();
                let bytes = base64_decode(data["data"].as_str().unwrap());
                text.push_str(&String::from_utf8_lossy(&bytes));
                arrivals.push(Instant::now());
            }
            "exit" => break serde_json::from_str::<Value>(&event.data).unwrap(),
            other => panic!("unexpected event {other}: {}", event.data),
        }
    };
    assert_eq!(exit["exit_code"], 0);
    assert_eq!(text, "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n");
    assert!(
        arrivals.len() >= 4,
        "line by line, not all at the end: {arrivals:?}"
    );
    let spread = *arrivals.last().unwrap() - arrivals[0];
    assert!(
        spread >= Duration::from_millis(500),
        "arrivals spread over the run: {spread:?}"
    );
    // A reconnect from an offset gets the rest only.
    let mut again = server.sse(&format!(
        "/v1/sandboxes/{id}/processes/{ticker}/output?offset=14"
    ));
    let first = again.next_event().unwrap();
    let data: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(data["offset"], 14);
    assert!(
        String::from_utf8_lossy(&base64_decode(data["data"].as_str().unwrap()))
            .starts_with("tick 3")
    );

    // The same over a WebSocket: every chunk, then the exit, then close; from an offset,
    // the rest only.
    let over_ws = |offset: u64| {
        let url = server
            .url(&format!(
                "/ws/sandboxes/{id}/processes/{ticker}?offset={offset}"
            ))
            .replace("http://", "ws://");
        let (mut socket, _) = tungstenite::connect(url).expect("a WebSocket");
        let mut text = String::new();
        loop {
            match socket.read() {
                Ok(tungstenite::Message::Text(message)) => {
                    let m: Value = serde_json::from_str(&message).unwrap();
                    match m["type"].as_str().unwrap() {
                        "stdout" => text.push_str(&String::from_utf8_lossy(&base64_decode(
                            m["data"].as_str().unwrap(),
                        ))),
                        "exit" => return (text, m),
                        other => panic!("unexpected message {other}: {m}"),
                    }
                }
                Ok(tungstenite::Message::Close(_)) | Err(_) => panic!("closed before the exit"),
                Ok(_) => {}
            }
        }
    };
    let (text, exit) = over_ws(0);
    assert_eq!(text, "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n");
    assert_eq!(exit["exit_code"], 0, "{exit}");
    assert_eq!(over_ws(14).0, "tick 3\ntick 4\ntick 5\n");

    // A directory watch over a WebSocket sees what a command does inside, below too.
    watch_sees_changes_below(&server, &id, "/tmp", Duration::from_secs(10));
    a_terminal_has_its_size(&server, &id);

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
    let done = eventually(Duration::from_secs(10), "cat to end", || {
        let (_, p) = server.get(&format!("/v1/sandboxes/{id}/processes/{cat}"));
        (p["state"] == "exited").then_some(p)
    });
    assert_eq!(done["exit_code"], 0);
    assert_eq!(done["output_bytes"], 12);

    // 50 MB up, checked inside, and down again with the same digest.
    let big: Vec<u8> = (0..50 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let digest = hex(&sha2::Sha256::digest(&big));
    let (status, entry) = upload(&server, &id, "/home/user/big.bin", &big);
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["size"], big.len());
    let (code, inside, _) = sh(&server, &id, "sha256sum /home/user/big.bin");
    assert_eq!(code, 0);
    assert!(inside.starts_with(&digest), "{inside} vs {digest}");
    let back = download(&server, &id, "/home/user/big.bin").expect("a download");
    assert_eq!(hex(&sha2::Sha256::digest(&back)), digest);

    // Written inside, read through the API; listed, moved, removed.
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
    assert_eq!(paths, ["/work/out", "/work/out/r.txt"]);
    let (status, moved) = server.post(
        &format!("/v1/sandboxes/{id}/files/move"),
        &json!({"from": "/work/out/r.txt", "to": "/work/r2.txt"}),
    );
    assert_eq!(status, 200, "{moved}");
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
    let host_hostname = std::fs::read("/etc/hostname").unwrap_or_default();
    if let Ok(seen) = download(&server, &id, "/escape/etc/hostname") {
        assert_ne!(seen, host_hostname, "the host's file leaked through a link");
    }
    // A directory is not downloaded; a file past the disk limit is refused, whole.
    assert_eq!(download(&server, &id, "/work").unwrap_err().0, 400);
    let huge = vec![1u8; 300 * 1024 * 1024];
    let (status, body) = upload(&server, &id, "/huge.bin", &huge);
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("disk"), "{body}");
    let (status, _) = server.get(&format!("/v1/sandboxes/{id}/files/stat?path=/huge.bin"));
    assert_eq!(status, 404, "nothing half-written is left");
    let (code, _, _) = sh(&server, &id, "ls -a / | grep -c vulcan-upload");
    assert_ne!(code, 0, "no temporary upload file is left either");

    let (status, usage) = server.get(&format!("/v1/sandboxes/{id}/metrics"));
    assert_eq!(status, 200, "{usage}");
    assert!(usage["memory_bytes"].as_u64().unwrap() > 0, "{usage}");
    assert!(
        usage["disk_bytes"].as_u64().unwrap() >= 50 * 1024 * 1024,
        "{usage}"
    );
    // Over time: a sample every few seconds, a busy loop's CPU in them.
    background(
        &server,
        &id,
        json!({"cmd": "sh", "args": ["-c", "end=$(($(date +%s)+8)); while [ $(date +%s) -lt $end ]; do :; done"], "background": true}),
    );
    let busy = eventually(Duration::from_secs(25), "a sample of the busy loop", || {
        let (_, m) = server.get(&format!("/v1/sandboxes/{id}/metrics"));
        let samples = m["samples"].as_array().cloned().unwrap_or_default();
        samples
            .iter()
            .any(|s| s["cpu_pct"].as_f64().unwrap_or(0.0) > 30.0)
            .then_some(samples)
    });
    let times: Vec<&str> = busy.iter().map(|s| s["at"].as_str().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "samples oldest first: {times:?}"
    );

    let (_, page) = server.get("/v1/sandboxes?metadata=purpose=test&state=running");
    assert_eq!(page["sandboxes"][0]["id"], id.as_str(), "{page}");
    let (status, ended) = server.delete(&format!("/v1/sandboxes/{id}"));
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["state"], "ended");
    assert_eq!(ended["end_reason"], "deleted by request");
    let (status, body) = server.post(
        &format!("/v1/sandboxes/{id}/processes"),
        &json!({"cmd": "true"}),
    );
    assert_eq!(status, 409, "{body}");
    assert_no_sandbox_left(&server);
    eventually(Duration::from_secs(10), "its cgroups to go", || {
        cgroups_of(&id).is_empty().then_some(())
    });
}

#[test]
fn bad_requests_get_clear_answers_and_change_nothing() {
    let registry = Registry::start();
    let image = registry.push("busybox:sandbox-bad", "busybox");
    let server = server_for(&registry, &[("VULCAN_SANDBOX_MAX_TIMEOUT_S", "600")]);
    for (body, status, says) in [
        (json!({"image": image, "timeout_s": 601}), 400, "600"),
        (
            json!({"image": image, "isolation": "isolate"}),
            400,
            "isolate",
        ),
        (
            json!({"image": image, "resources": {"disk_mb": 1}}),
            400,
            "disk_mb",
        ),
        (json!({"image": image, "env": {"1BAD": "x"}}), 400, "env"),
        (json!({"image": image, "colour": "red"}), 400, "colour"),
    ] {
        let (got, answer) = server.post("/v1/sandboxes", &body);
        assert_eq!(got, status, "{body} -> {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{body}: {error}");
    }
    let (_, page) = server.get("/v1/sandboxes");
    assert_eq!(page["sandboxes"], json!([]), "nothing refused was created");

    for path in [
        "/v1/sandboxes/sbnope",
        "/v1/sandboxes/sbnope/processes",
        "/v1/sandboxes/sbnope/files/stat?path=/",
    ] {
        let (status, body) = server.get(path);
        assert_eq!(status, 404, "{path}: {body}");
    }
    let id = create(&server, json!({"image": image}));
    let (status, body) = server.post(
        &format!("/v1/sandboxes/{id}/timeout"),
        &json!({"timeout_s": 100_000}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("600"), "{body}");
    let (status, body) = server.post(
        &format!("/v1/sandboxes/{id}/processes"),
        &json!({"cmd": ""}),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = server.post(
        &format!("/v1/sandboxes/{id}/processes"),
        &json!({"cmd": "/no/such/program"}),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = server.post(
        &format!("/v1/sandboxes/{id}/processes/999/signal"),
        &json!({"signal": 9}),
    );
    assert_eq!(status, 404, "{body}");
    let (status, body) = server.get(&format!("/v1/sandboxes/{id}/files?path=relative"));
    assert_eq!(status, 400, "{body}");
    let (status, body) = server.get("/v1/sandboxes?state=sleeping");
    assert_eq!(status, 400, "{body}");
    assert_eq!(sh(&server, &id, "echo still fine").1, "still fine\n");
}

#[test]
fn a_tenants_sandboxes_are_held_to_its_memory_and_disk() {
    let registry = Registry::start();
    let image = registry.push("busybox:sandbox-room", "busybox");
    let server = server_for(
        &registry,
        &[
            ("VULCAN_SANDBOX_TENANT_MEM_MB", "700"),
            ("VULCAN_SANDBOX_TENANT_DISK_MB", "1000"),
        ],
    );
    let sized = |mem: u32, disk: u32| json!({"image": image, "resources": {"mem_mb": mem, "disk_mb": disk}});
    let first = create(&server, sized(512, 256));
    let (status, body) = server.post("/v1/sandboxes", &sized(256, 256));
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("VULCAN_SANDBOX_TENANT_MEM_MB"),
        "{body}"
    );
    // A paused sandbox holds no memory (but keeps its disk).
    let (status, _) = server.post(&format!("/v1/sandboxes/{first}/pause"), &json!({}));
    assert_eq!(status, 200);
    let second = create(&server, sized(512, 512));
    let (status, body) = server.post("/v1/sandboxes", &sized(64, 512));
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("VULCAN_SANDBOX_TENANT_DISK_MB"),
        "{body}"
    );
    // Resuming would pass the memory: refused, and the sandbox stays paused.
    let (status, body) = server.post(&format!("/v1/sandboxes/{first}/resume"), &json!({}));
    assert_eq!(status, 429, "{body}");
    let (_, s) = server.get(&format!("/v1/sandboxes/{first}"));
    assert_eq!(s["state"], "paused");
    server.delete(&format!("/v1/sandboxes/{second}"));
    let (status, body) = server.post(&format!("/v1/sandboxes/{first}/resume"), &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(sh(&server, &first, "echo back").1, "back\n");
    server.delete(&format!("/v1/sandboxes/{first}"));
    assert_no_sandbox_left(&server);
}

#[test]
fn the_deadline_ends_a_sandbox_on_time_unless_it_is_moved() {
    let registry = Registry::start();
    let image = registry.push("busybox:sandbox-deadline", "busybox");
    let server = server_for(&registry, &[]);
    let short = create(&server, json!({"image": image, "timeout_s": 2}));
    let kept = create(&server, json!({"image": image, "timeout_s": 2}));
    let (status, moved) = server.post(
        &format!("/v1/sandboxes/{kept}/timeout"),
        &json!({"timeout_s": 60}),
    );
    assert_eq!(status, 200, "{moved}");
    let started = Instant::now();
    let ended = eventually(Duration::from_secs(10), "the short sandbox to end", || {
        let (_, s) = server.get(&format!("/v1/sandboxes/{short}"));
        (s["state"] == "ended").then_some(s)
    });
    assert_eq!(ended["end_reason"], "its timeout passed");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "on time: {:?}",
        started.elapsed()
    );
    let (_, kept_now) = server.get(&format!("/v1/sandboxes/{kept}"));
    assert_eq!(kept_now["state"], "running");
    assert_eq!(sh(&server, &kept, "echo alive").1, "alive\n");
}

/// Runs `script` in the foreground in sandbox `id` of a hostile kind: afterwards the
/// sandbox either answers, or has ended with a reason containing `limit_named`.
#[test]
fn hostile_code_in_a_sandbox_is_held_to_its_limits() {
    let registry = Registry::start();
    let image = registry.push("busybox:sandbox-hostile", "busybox");
    let server = server_for(&registry, &[]);
    let small = json!({"image": image, "resources": {"mem_mb": 128, "disk_mb": 64}});
    // A disk filler meets its own disk, not the host's, and the sandbox answers.
    let id = create(&server, small.clone());
    let (code, _, err) = sh(&server, &id, "dd if=/dev/zero of=/fill bs=1M count=200");
    assert_ne!(code, 0);
    assert!(err.contains("space"), "{err}");
    assert_eq!(sh(&server, &id, "rm -f /fill && echo room").1, "room\n");
    held_to(&server, &id, "x=a; while true; do x=$x$x; done", "memory");
    let id = create(&server, small);
    held_to(
        &server,
        &id,
        "bomb() { bomb | bomb & }; bomb; sleep 2",
        "task limit",
    );
    let (status, _) = server.get("/healthz");
    assert_eq!(status, 200, "the server stays healthy");
    let (status, other) = server.post("/v1/sandboxes", &json!({"image": image}));
    assert_eq!(status, 201, "a new sandbox starts beside them: {other}");
}

#[test]
fn two_tenants_never_see_each_others_sandboxes() {
    let registry = Registry::start();
    let image = registry.push("busybox:sandbox-tenants", "busybox");
    let server = server_for(&registry, &[("VULCAN_AUTH", "on")]);
    let admin = std::fs::read_to_string(server.data_dir.join("admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    let call = |method: &str, path: &str, key: &str, body: Option<Value>| -> (u16, Value) {
        let req = ureq::request(method, &server.url(path)).set("X-API-Key", key);
        common::answer_of(match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        })
    };
    let (status, body) = call(
        "POST",
        "/v1/images",
        &admin,
        Some(json!({"reference": image})),
    );
    assert!(status == 200 || status == 201, "{body}");
    let key = |tenant: &str| {
        let (status, body) = call(
            "POST",
            "/v1/keys",
            &admin,
            Some(json!({"name": tenant, "role": "developer", "tenant": tenant})),
        );
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().unwrap().to_owned()
    };
    let (a, b) = (key("team-a"), key("team-b"));
    let (status, mine) = call("POST", "/v1/sandboxes", &a, Some(json!({"image": image})));
    assert_eq!(status, 201, "{mine}");
    let id = mine["id"].as_str().unwrap();
    assert_eq!(mine["tenant"], "team-a");
    let (status, _) = call(
        "POST",
        &format!("/v1/sandboxes/{id}/files/mkdir"),
        &a,
        Some(json!({"path": "/mine"})),
    );
    assert_eq!(status, 200);
    let proc_body = json!({"cmd": "sleep", "args": ["100"], "background": true});
    let (status, p) = call(
        "POST",
        &format!("/v1/sandboxes/{id}/processes"),
        &a,
        Some(proc_body.clone()),
    );
    assert_eq!(status, 201, "{p}");
    let pid = p["pid"].as_u64().unwrap();
    for (method, path, body) in [
        ("GET", format!("/v1/sandboxes/{id}"), None),
        ("GET", format!("/v1/sandboxes/{id}/processes"), None),
        ("GET", format!("/v1/sandboxes/{id}/processes/{pid}"), None),
        (
            "POST",
            format!("/v1/sandboxes/{id}/processes/{pid}/signal"),
            Some(json!({"signal": 9})),
        ),
        (
            "POST",
            format!("/v1/sandboxes/{id}/processes"),
            Some(proc_body.clone()),
        ),
        (
            "GET",
            format!("/v1/sandboxes/{id}/files/stat?path=/mine"),
            None,
        ),
        ("GET", format!("/v1/sandboxes/{id}/files/list?path=/"), None),
        ("DELETE", format!("/v1/sandboxes/{id}"), None),
    ] {
        let (status, body) = call(method, &path, &b, body);
        assert_eq!(status, 404, "{method} {path} as another tenant: {body}");
    }
    let (_, theirs) = call("GET", "/v1/sandboxes", &b, None);
    assert_eq!(theirs["sandboxes"], json!([]));
    let (_, all) = call("GET", "/v1/sandboxes", &admin, None);
    assert_eq!(
        all["sandboxes"].as_array().unwrap().len(),
        1,
        "an admin sees every tenant's"
    );
    let (_, p) = call(
        "GET",
        &format!("/v1/sandboxes/{id}/processes/{pid}"),
        &a,
        None,
    );
    assert_eq!(
        p["state"], "running",
        "the other tenant's signal reached nothing"
    );
    let (status, _) = call("DELETE", &format!("/v1/sandboxes/{id}"), &a, None);
    assert_eq!(status, 200);

    // Volumes too: one of a's is not b's to see, mount or delete; b's own name is its own.
    let volume = json!({"name": "shared", "size_mb": 32});
    let (status, made) = call("POST", "/v1/volumes", &a, Some(volume.clone()));
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["tenant"], "team-a");
    let (_, listed) = call("GET", "/v1/volumes", &b, None);
    assert_eq!(listed, json!([]));
    for (method, path) in [
        ("GET", "/v1/volumes/shared"),
        ("DELETE", "/v1/volumes/shared"),
    ] {
        let (status, body) = call(method, path, &b, None);
        assert_eq!(status, 404, "{method} {path} as another tenant: {body}");
    }
    let mounting = json!({"image": image, "volumes": [{"name": "shared", "path": "/v"}]});
    let (status, body) = call("POST", "/v1/sandboxes", &b, Some(mounting));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not found"),
        "{body}"
    );
    let (status, body) = call("POST", "/v1/volumes", &b, Some(volume));
    assert_eq!(status, 201, "{body}");
    for key in [&a, &b] {
        let (status, _) = call("DELETE", "/v1/volumes/shared", key, None);
        assert_eq!(status, 200);
    }
}

#[test]
fn a_volumes_data_outlives_its_sandboxes_with_one_writer_at_a_time() {
    let registry = Registry::start();
    let image = registry.push("busybox:sandbox-volumes", "busybox");
    let server = server_for(&registry, &[]);
    for (body, why) in [
        (json!({"name": "Not A Name", "size_mb": 64}), "a-z"),
        (json!({"name": "data", "size_mb": 1}), "size_mb"),
        (json!({"name": "data"}), "size_mb"),
    ] {
        let (status, answer) = server.post("/v1/volumes", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(why), "{answer}");
    }
    let (status, made) = server.post("/v1/volumes", &json!({"name": "data", "size_mb": 64}));
    assert_eq!(status, 201, "{made}");
    let (status, again) = server.post("/v1/volumes", &json!({"name": "data", "size_mb": 64}));
    assert_eq!(status, 409, "{again}");
    let (_, listed) = server.get("/v1/volumes");
    assert_eq!(listed[0]["name"], "data", "{listed}");

    let mount =
        |read_only: bool| json!([{"name": "data", "path": "/mnt/data", "read_only": read_only}]);
    let writer = create(&server, json!({"image": image, "volumes": mount(false)}));
    let (_, shown) = server.get(&format!("/v1/sandboxes/{writer}"));
    assert_eq!(shown["volumes"], mount(false), "{shown}");
    assert_eq!(
        sh(
            &server,
            &writer,
            "echo kept > /mnt/data/f && cat /mnt/data/f"
        )
        .1,
        "kept\n"
    );
    // Its size is the filesystem's: a filler meets ENOSPC there.
    let (code, _, err) = sh(
        &server,
        &writer,
        "dd if=/dev/zero of=/mnt/data/big bs=1M count=100",
    );
    assert_ne!(code, 0, "100 MiB fit in a 64 MiB volume: {err}");
    assert_eq!(sh(&server, &writer, "rm /mnt/data/big").0, 0);
    // One writer, and no reader beside it; not deleted while mounted.
    for read_only in [false, true] {
        let (status, body) = server.post(
            "/v1/sandboxes",
            &json!({"image": image, "volumes": mount(read_only)}),
        );
        assert_eq!(status, 409, "{body}");
        assert!(body["error"].as_str().unwrap().contains(&writer), "{body}");
    }
    let (status, body) = server.delete("/v1/volumes/data");
    assert_eq!(status, 409, "{body}");
    for (volumes, why) in [
        (json!([{"name": "nope", "path": "/x"}]), "not found"),
        (json!([{"name": "data", "path": "/"}]), "absolute path"),
        (
            json!([{"name": "data", "path": "/a/../b"}]),
            "absolute path",
        ),
    ] {
        let (status, body) = server.post(
            "/v1/sandboxes",
            &json!({"image": image, "volumes": volumes}),
        );
        assert_eq!(status, 400, "{volumes}: {body}");
        assert!(body["error"].as_str().unwrap().contains(why), "{body}");
    }

    // Its data outlives the writer: the next sandboxes read it, read-only ones together.
    let (status, _) = server.delete(&format!("/v1/sandboxes/{writer}"));
    assert_eq!(status, 200);
    let readers =
        [(); 2].map(|()| create(&server, json!({"image": image, "volumes": mount(true)})));
    for reader in &readers {
        assert_eq!(sh(&server, reader, "cat /mnt/data/f").1, "kept\n");
        let (code, _, err) = sh(&server, reader, "echo no > /mnt/data/g");
        assert_ne!(code, 0, "a read-only volume was written");
        assert!(err.contains("Read-only"), "{err}");
    }
    for reader in &readers {
        let (status, _) = server.delete(&format!("/v1/sandboxes/{reader}"));
        assert_eq!(status, 200);
    }
    let (status, gone) = server.delete("/v1/volumes/data");
    assert_eq!(status, 200, "{gone}");
    let file = server
        .data_dir
        .join("volumes")
        .join(format!("{}.ext4", made["id"].as_str().unwrap()));
    assert!(!file.exists(), "its data went with it");
    assert_no_sandbox_left(&server);
}

#[test]
fn workloads_mount_volumes_that_outlive_them_held_one_writer_at_a_time_with_sandboxes() {
    let registry = Registry::start();
    let image = registry.push("busybox:workload-volumes", "busybox");
    let host = server_for(&registry, &[]);
    let server = &host.server;
    let (status, made) = server.post("/v1/volumes", &json!({"name": "shared", "size_mb": 32}));
    assert_eq!(status, 201, "{made}");
    let mount =
        |read_only: bool| json!([{"name": "shared", "path": "/data", "read_only": read_only}]);
    let job = |script: &str, read_only: bool| {
        json!({
            "runtime": "oci", "isolation": "gvisor", "image": image,
            "command": ["sh", "-c", script], "volumes": mount(read_only),
        })
    };

    // A workload writes; the next one reads it; a read-only one cannot write.
    let wrote = server.run(job("echo from a workload > /data/f && cat /data/f", false));
    assert_eq!(wrote["status"], "completed", "{wrote}");
    assert_eq!(wrote["output"], "from a workload", "{wrote}");
    let (_, spec) = server.get(&format!(
        "/v1/workloads/{}/spec",
        wrote["id"].as_str().unwrap()
    ));
    assert_eq!(spec["volumes"], mount(false), "{spec}");
    let read = server.run(job("cat /data/f; echo no > /data/g", true));
    assert_eq!(read["output"], "from a workload", "{read}");
    assert_eq!(
        read["status"], "failed",
        "a read-only volume was written: {read}"
    );

    // A sandbox reads what a workload wrote; while it writes, workloads wait their turn:
    // 409 naming it.
    let sandbox = create(server, json!({"image": image, "volumes": mount(false)}));
    assert_eq!(sh(server, &sandbox, "cat /data/f").1, "from a workload\n");
    assert_eq!(sh(server, &sandbox, "echo from a sandbox > /data/f").0, 0);
    for read_only in [false, true] {
        let (status, body) = server.post("/v1/workloads/async", &job("true", read_only));
        assert_eq!(status, 409, "{body}");
        assert!(body["error"].as_str().unwrap().contains(&sandbox), "{body}");
    }
    let (status, _) = server.delete(&format!("/v1/sandboxes/{sandbox}"));
    assert_eq!(status, 200);

    // A running workload holds its volume against sandboxes, other workloads and deletion.
    let long = server.submit(job("cat /data/f; sleep 60", false));
    let mut logs = server.sse(&format!("/v1/workloads/{long}/logs"));
    let line = std::iter::from_fn(|| logs.next_event())
        .take(20)
        .find(|e| e.data.contains("from a"))
        .expect("the workload's first line");
    assert!(line.data.contains("from a sandbox"), "{line:?}");
    let (status, body) = server.post(
        "/v1/sandboxes",
        &json!({"image": image, "volumes": mount(true)}),
    );
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains(&long), "{body}");
    let (status, body) = server.post("/v1/workloads", &job("true", true));
    assert_eq!(status, 409, "{body}");
    let (status, body) = server.delete("/v1/volumes/shared");
    assert_eq!(status, 409, "{body}");
    let (status, _) = server.delete(&format!("/v1/workloads/{long}"));
    assert_eq!(status, 200);
    let killed = server.wait_terminal(&long, Duration::from_secs(30));
    assert_eq!(killed["status"], "killed", "{killed}");

    // Bad mounts are 400s that say what to change, and nothing is stored.
    for (body, why) in [
        (
            json!({"runtime": "node", "isolation": "isolate", "code": "1", "volumes": mount(false)}),
            "gvisor or microvm",
        ),
        (
            json!({"runtime": "oci", "isolation": "gvisor", "image": image, "command": ["true"],
                   "volumes": [{"name": "nope", "path": "/x"}]}),
            "not found",
        ),
        (
            json!({"runtime": "oci", "isolation": "gvisor", "image": image, "command": ["true"],
                   "volumes": [{"name": "shared", "path": "relative"}]}),
            "absolute path",
        ),
    ] {
        let (status, answer) = server.post("/v1/workloads", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(why), "{answer}");
    }

    // Nothing of the runs is left mounted on the host, and the volume is free to delete.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let data = server.data_dir.to_string_lossy().into_owned();
    assert!(
        !mounts
            .lines()
            .any(|l| l.contains(&data) && l.contains("bundles")),
        "{mounts}"
    );
    let (status, gone) = server.delete("/v1/volumes/shared");
    assert_eq!(status, 200, "{gone}");
    assert_no_sandbox_left(server);
}

#[test]
fn a_server_that_stops_pauses_its_sandboxes_and_takes_them_back_and_a_crash_loses_them() {
    let registry = Registry::start();
    let image = registry.push("busybox:sandbox-restart", "busybox");
    let dir = tempfile::tempdir().unwrap();
    let env = [("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())];
    let mut server = Host {
        server: Server::start_in(dir.path(), &env),
    };
    let (status, body) = server.post("/v1/volumes", &json!({"name": "kept", "size_mb": 32}));
    assert_eq!(status, 201, "{body}");
    let kept = create(
        &server,
        json!({"image": image, "volumes": [{"name": "kept", "path": "/vol"}]}),
    );
    sh(
        &server,
        &kept,
        "mkdir -p /data && echo kept > /data/f && echo on the volume > /vol/f",
    );
    sh(
        &server,
        &kept,
        "(i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done) >/dev/null 2>&1 </dev/null &",
    );
    let before: u64 = eventually(Duration::from_secs(10), "the counter to count", || {
        sh(&server, &kept, "cat /tmp/count")
            .1
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 2)
    });
    // One with a process Vulcan follows cannot be saved: it is lost, saying why; so is
    // one paused frozen in memory for such a process.
    let [busy, frozen] = [(); 2].map(|()| {
        let id = create(&server, json!({"image": image}));
        background(
            &server,
            &id,
            json!({"cmd": "sleep", "args": ["600"], "background": true}),
        );
        id
    });
    let (status, body) = server.post(&format!("/v1/sandboxes/{frozen}/pause"), &json!({}));
    assert_eq!(
        (status, &body["pause_mode"]),
        (200, &json!("frozen")),
        "{body}"
    );

    server.stop(Duration::from_secs(60));
    server.server = Server::start_in(dir.path(), &env);
    let (_, s) = server.get(&format!("/v1/sandboxes/{kept}"));
    assert_eq!(s["state"], "paused", "{s}");
    for (id, why) in [(busy, "Vulcan follows still running"), (frozen, "frozen")] {
        let (_, s) = server.get(&format!("/v1/sandboxes/{id}"));
        assert_eq!(s["state"], "lost", "{s}");
        let reason = s["end_reason"].as_str().unwrap();
        assert!(
            reason.contains("could not be saved") && reason.contains(why),
            "{s}"
        );
        assert_eq!(cgroups_of(&id), Vec::<std::path::PathBuf>::new());
    }
    let (status, resumed) = server.post(&format!("/v1/sandboxes/{kept}/resume"), &json!({}));
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(sh(&server, &kept, "cat /data/f").1, "kept\n");
    assert_eq!(
        sh(&server, &kept, "cat /vol/f && echo more >> /vol/f").1,
        "on the volume\n",
        "its volume is mounted again after the restart"
    );
    eventually(
        Duration::from_secs(10),
        "the counter to go on after the restart",
        || {
            let now: u64 = sh(&server, &kept, "cat /tmp/count").1.trim().parse().ok()?;
            (now > before + 3).then_some(())
        },
    );
    let (status, _) = server.delete(&format!("/v1/sandboxes/{kept}"));
    assert_eq!(status, 200);

    // Killed outright: the next start records it lost and removes what it left.
    let killed = create(&server, json!({"image": image}));
    sh(&server, &killed, "echo x > /x");
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
    assert_no_sandbox_left(&server);
    assert_eq!(cgroups_of(&killed), Vec::<std::path::PathBuf>::new());
}

#[test]
fn a_paused_sandbox_holds_no_memory_and_resumes_with_its_files_and_processes() {
    let registry = Registry::start();
    let image = registry.push("busybox:sandbox-pause", "busybox");
    let server = server_for(&registry, &[]);
    let id = create(
        &server,
        json!({"image": image, "resources": {"mem_mb": 256}}),
    );
    assert_eq!(
        sh(&server, &id, "mkdir -p /home && echo kept > /home/file.txt").0,
        0
    );
    // While a process Vulcan follows runs (its pipes are the host's), a pause freezes the
    // sandbox in memory: the process stops where it is and goes on after the resume.
    let followed = background(
        &server,
        &id,
        json!({"cmd": "sh", "args": ["-c", "while true; do echo tick; sleep 0.1; done"], "background": true}),
    );
    let printed = |server: &Server| {
        let (_, p) = server.get(&format!("/v1/sandboxes/{id}/processes/{followed}"));
        p["output_bytes"].as_u64().unwrap()
    };
    eventually(Duration::from_secs(10), "the ticker to tick", || {
        (printed(&server) > 10).then_some(())
    });
    let (status, frozen) = server.post(&format!("/v1/sandboxes/{id}/pause"), &json!({}));
    assert_eq!(status, 200, "{frozen}");
    assert_eq!(frozen["state"], "paused");
    assert_eq!(frozen["pause_mode"], "frozen");
    let at_pause = printed(&server);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(printed(&server), at_pause, "a frozen process printed");
    let (status, body) = server.post(&format!("/v1/sandboxes/{id}/resume"), &json!({}));
    assert_eq!(status, 200, "{body}");
    assert!(body.get("pause_mode").is_none(), "{body}");
    eventually(Duration::from_secs(10), "the ticker to go on", || {
        (printed(&server) > at_pause + 20).then_some(())
    });
    server.post(
        &format!("/v1/sandboxes/{id}/processes/{followed}/signal"),
        &json!({"signal": 9}),
    );
    eventually(
        Duration::from_secs(10),
        "the followed process to end",
        || {
            let (_, p) = server.get(&format!("/v1/sandboxes/{id}/processes/{followed}"));
            (p["state"] == "exited").then_some(())
        },
    );
    // With none running it is saved to disk: one started detached inside goes on after.
    sh(
        &server,
        &id,
        "(i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done) >/dev/null 2>&1 </dev/null &",
    );
    let before: u64 = eventually(Duration::from_secs(10), "the counter to count", || {
        let (_, out, _) = sh(&server, &id, "cat /tmp/count");
        out.trim().parse().ok().filter(|n| *n > 3)
    });

    let (_, running) = server.get(&format!("/v1/sandboxes/{id}/metrics"));
    let (status, paused) = server.post(&format!("/v1/sandboxes/{id}/pause"), &json!({}));
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["state"], "paused");
    assert_eq!(paused["pause_mode"], "saved");
    // Its memory is freed: what the cgroup still counts is page cache of its files.
    let (_, usage) = server.get(&format!("/v1/sandboxes/{id}/metrics"));
    let (was, now) = (
        running["memory_bytes"].as_u64().unwrap(),
        usage["memory_bytes"].as_u64().unwrap(),
    );
    assert!(
        now < 4 << 20 && now * 4 < was,
        "{was} bytes running, {now} paused"
    );
    // Not auto-resumed: a command is refused saying how to resume.
    let (status, body) = server.post(
        &format!("/v1/sandboxes/{id}/processes"),
        &json!({"cmd": "true"}),
    );
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("resume"), "{body}");
    let (status, body) = server.post(&format!("/v1/sandboxes/{id}/pause"), &json!({}));
    assert_eq!(status, 409, "paused twice: {body}");

    let (status, resumed) = server.post(&format!("/v1/sandboxes/{id}/resume"), &json!({}));
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["state"], "running");
    assert_eq!(sh(&server, &id, "cat /home/file.txt").1, "kept\n");
    let after: u64 = eventually(Duration::from_secs(10), "the counter to go on", || {
        let (_, out, _) = sh(&server, &id, "cat /tmp/count");
        out.trim().parse().ok().filter(|n| *n > before + 3)
    });
    assert!(after > before);

    // With auto_resume, a command resumes a paused sandbox.
    let auto = create(&server, json!({"image": image, "auto_resume": true}));
    sh(&server, &auto, "echo before > /x");
    let (status, _) = server.post(&format!("/v1/sandboxes/{auto}/pause"), &json!({}));
    assert_eq!(status, 200);
    assert_eq!(sh(&server, &auto, "cat /x").1, "before\n");
    let (_, s) = server.get(&format!("/v1/sandboxes/{auto}"));
    assert_eq!(s["state"], "running");
    // Paused again (a restored sandbox saves as well), then deleted like any other.
    let (status, body) = server.post(&format!("/v1/sandboxes/{auto}/pause"), &json!({}));
    assert_eq!(status, 200, "{body}");

    // on_timeout: pause: at its deadline it is paused, not ended, and kept paused; a
    // resume gives it its timeout again (then it pauses again).
    let napper = create(
        &server,
        json!({"image": image, "timeout_s": 4, "on_timeout": "pause"}),
    );
    sh(&server, &napper, "echo napped > /nap");
    let paused = eventually(Duration::from_secs(20), "the deadline to pause it", || {
        let (_, s) = server.get(&format!("/v1/sandboxes/{napper}"));
        (s["state"] == "paused").then_some(s)
    });
    let kept_until = time::OffsetDateTime::parse(
        paused["end_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        kept_until > time::OffsetDateTime::now_utc() + Duration::from_secs(60),
        "a sandbox paused by its deadline is kept: {paused}"
    );
    let (status, resumed) = server.post(&format!("/v1/sandboxes/{napper}/resume"), &json!({}));
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(sh(&server, &napper, "cat /nap").1, "napped\n");
    eventually(
        Duration::from_secs(20),
        "its new deadline to pause it again",
        || {
            let (_, s) = server.get(&format!("/v1/sandboxes/{napper}"));
            (s["state"] == "paused").then_some(())
        },
    );
    let (status, _) = server.delete(&format!("/v1/sandboxes/{napper}"));
    assert_eq!(status, 200);
    let (status, ended) = server.delete(&format!("/v1/sandboxes/{auto}"));
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["state"], "ended");
    server.delete(&format!("/v1/sandboxes/{id}"));
    assert_no_sandbox_left(&server);
}

/// The CLI, against `server`.
fn vulcan(server: &Server, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vulcan"))
        .args(args)
        .env("VULCAN_URL", &server.base)
        .env_remove("VULCAN_API_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run vulcan");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_cli_creates_runs_in_copies_to_and_removes_a_sandbox() {
    let registry = Registry::start();
    let image = registry.push("busybox:sandbox-cli", "busybox");
    let server = server_for(&registry, &[]);
    let made = vulcan(
        &server,
        &[
            "sandbox", "create", "--image", &image, "--meta", "via=cli", "--env", "WHO=cli",
        ],
        b"",
    );
    assert!(made.status.success(), "{made:?}");
    let id = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    assert!(id.starts_with("sb"), "{id}");

    let ran = vulcan(
        &server,
        &[
            "sandbox",
            "exec",
            &id,
            "--",
            "sh",
            "-c",
            "echo hi $WHO; echo err >&2; exit 3",
        ],
        b"",
    );
    assert_eq!(ran.status.code(), Some(3), "{ran:?}");
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "hi cli\n");
    assert_eq!(String::from_utf8_lossy(&ran.stderr), "err\n");

    // A terminal: this one's size (24x80 when it is not one), input typed, exit passed on.
    let typed = vulcan(
        &server,
        &["sandbox", "sh", &id],
        b"stty size; echo TERM=$TERM; exit 5\n",
    );
    assert_eq!(typed.status.code(), Some(5), "{typed:?}");
    let shown = String::from_utf8_lossy(&typed.stdout);
    assert!(
        shown.contains("24 80\r\n") && shown.contains("TERM=xterm"),
        "{shown:?}"
    );

    let copied = vulcan(
        &server,
        &["sandbox", "cp", "-", &format!("{id}:/data/in.txt")],
        b"piped in\n",
    );
    assert!(copied.status.success(), "{copied:?}");
    let ran = vulcan(
        &server,
        &["sandbox", "exec", &id, "--", "cat", "/data/in.txt"],
        b"",
    );
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "piped in\n");
    let out = vulcan(
        &server,
        &["sandbox", "cp", &format!("{id}:/data/in.txt"), "-"],
        b"",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped in\n");

    let paused = vulcan(&server, &["sandbox", "pause", &id], b"");
    assert!(
        String::from_utf8_lossy(&paused.stdout).contains("paused"),
        "{paused:?}"
    );
    let resumed = vulcan(&server, &["sandbox", "resume", &id], b"");
    assert!(
        String::from_utf8_lossy(&resumed.stdout).contains("running"),
        "{resumed:?}"
    );
    let listed = vulcan(&server, &["sandbox", "ls", "--meta", "via=cli"], b"");
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&id),
        "{listed:?}"
    );
    let removed = vulcan(&server, &["sandbox", "rm", &id], b"");
    assert!(removed.status.success(), "{removed:?}");
    assert!(String::from_utf8_lossy(&removed.stdout).contains("ended"));
    let again = vulcan(&server, &["sandbox", "exec", &id, "--", "true"], b"");
    assert_eq!(
        again.status.code(),
        Some(125),
        "Vulcan's own failure: {again:?}"
    );
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("409"),
        "{again:?}"
    );

    // Volumes: made, mounted by a sandbox, kept while it is, removed after.
    let made = vulcan(
        &server,
        &["volume", "create", "cli-data", "--size-mb", "32"],
        b"",
    );
    assert!(made.status.success(), "{made:?}");
    let holder = vulcan(
        &server,
        &[
            "sandbox",
            "create",
            "--image",
            &image,
            "--volume",
            "cli-data:/data",
        ],
        b"",
    );
    assert!(holder.status.success(), "{holder:?}");
    let holder = String::from_utf8_lossy(&holder.stdout).trim().to_owned();
    let wrote = vulcan(
        &server,
        &[
            "sandbox",
            "exec",
            &holder,
            "--",
            "sh",
            "-c",
            "echo v > /data/v && cat /data/v",
        ],
        b"",
    );
    assert_eq!(String::from_utf8_lossy(&wrote.stdout), "v\n", "{wrote:?}");
    let listed = vulcan(&server, &["volume", "ls"], b"");
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("cli-data"),
        "{listed:?}"
    );
    let busy = vulcan(&server, &["volume", "rm", "cli-data"], b"");
    assert_eq!(busy.status.code(), Some(125), "{busy:?}");
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains(&holder),
        "{busy:?}"
    );
    assert!(vulcan(&server, &["sandbox", "rm", &holder], b"")
        .status
        .success());
    let removed = vulcan(&server, &["volume", "rm", "cli-data"], b"");
    assert!(removed.status.success(), "{removed:?}");
}
