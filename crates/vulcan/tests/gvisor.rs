//! The gvisor backend's acceptance: a real local registry (docker-registry), real images
//! built by umoci and pushed by skopeo, real runsc sandboxes, over real HTTP.

mod common;

use std::time::Duration;

use common::Server;
use serde_json::{json, Value};
use vulcan_gvisor::testing::Registry;

fn server_for(registry: &Registry) -> Server {
    Server::start(&[("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())])
}

fn oci(image: &str, script: &str) -> Value {
    json!({"runtime": "oci", "image": image, "command": ["sh", "-c", script]})
}

/// Nothing of a run is left: no container in runsc's state, no bundle directory.
fn assert_nothing_left(server: &Server) {
    let gvisor = server.data_dir.join("gvisor");
    let out = std::process::Command::new("runsc")
        .arg("--root")
        .arg(gvisor.join("state"))
        .args(["list", "--quiet"])
        .output()
        .expect("runsc list");
    let containers = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(containers, "", "containers left in runsc list");
    let bundles: Vec<_> = std::fs::read_dir(gvisor.join("bundles"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(bundles.is_empty(), "bundles left: {bundles:?}");
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
fn busybox_runs_under_gvisors_kernel_and_logs_the_pull() {
    let _cpu = shared();
    let registry = Registry::start();
    let image = registry.push("busybox:1", "busybox");
    let server = server_for(&registry);
    let w = server.run(oci(&image, "echo hi; uname -r"));
    assert_eq!(w["status"], "completed", "{w}");
    assert_eq!(w["isolation"], "gvisor");
    assert_eq!(w["exit_code"], 0);
    let output = w["output"].as_str().unwrap();
    let mut lines = output.lines();
    assert_eq!(lines.next(), Some("hi"), "{output}");
    let release = lines.next().expect("a kernel release");
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_ne!(
        release,
        host.trim(),
        "the sandbox must not see the host's kernel"
    );

    let (_, logs) = server.get(&format!(
        "/v1/workloads/{}/logs/history",
        w["id"].as_str().unwrap()
    ));
    let lines: Vec<(String, String)> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["stream"].as_str().unwrap().to_owned(),
                l["line"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        lines
            .iter()
            .any(|(s, l)| s == "backend" && l.contains("pulling image") && l.contains(&image)),
        "{lines:?}"
    );
    assert!(lines.contains(&("stdout".into(), "hi".into())), "{lines:?}");
    assert_nothing_left(&server);
}

#[test]
fn exit_codes_stdin_and_env() {
    let _cpu = shared();
    let registry = Registry::start();
    let image = registry.push("busybox:1", "busybox");
    let server = server_for(&registry);
    let failed = server.run(oci(&image, "echo oops >&2; exit 3"));
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["exit_code"], 3);
    assert_eq!(failed["error"], "exited with code 3: oops");

    let echoed = server.run(json!({"runtime": "oci", "image": image, "command": ["cat"],
        "input": {"a": [1, 2], "b": "x"}}));
    assert_eq!(echoed["status"], "completed", "{echoed}");
    let parsed: Value = serde_json::from_str(echoed["output"].as_str().unwrap()).unwrap();
    assert_eq!(parsed, json!({"a": [1, 2], "b": "x"}));

    let mut with_env = oci(&image, "echo $GREETING; id -u; pwd");
    with_env["env"] = json!({"GREETING": "hello"});
    let w = server.run(with_env);
    assert_eq!(w["output"], "hello\n0\n/", "{w}");
}

#[test]
fn hostile_workloads_are_contained_and_the_server_stays_healthy() {
    let _cpu = shared();
    let registry = Registry::start();
    let image = registry.push("busybox:1", "busybox");
    let server = server_for(&registry);

    let fork_bomb = server.run(oci(&image, "f(){ f|f& }; f; sleep 5; echo survived"));
    assert_eq!(fork_bomb["status"], "failed", "{fork_bomb}");
    assert!(
        fork_bomb["error"]
            .as_str()
            .unwrap()
            .contains("process limit"),
        "{fork_bomb}"
    );

    let mut bomb = oci(&image, "x=a; while true; do x=$x$x; done");
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

    let mut spin = oci(&image, "while true; do :; done");
    spin["resources"] = json!({"timeout_s": 2});
    let spin = server.run(spin);
    assert_eq!(
        (spin["status"].as_str(), spin["error"].as_str()),
        (Some("failed"), Some("timed out after 2 s"))
    );

    // The registry listens on the host's loopback: the sandbox's loopback is its own.
    let port = registry.host.rsplit(':').next().unwrap();
    let net = server.run(oci(
        &image,
        &format!("nc -w 2 127.0.0.1 {port} </dev/null && echo reached || echo unreachable; nc -w 2 10.0.2.2 80 </dev/null || echo unreachable; ls /sys/class/net"),
    ));
    assert_eq!(net["status"], "completed", "{net}");
    assert_eq!(net["output"], "unreachable\nunreachable\nlo", "{net}");

    let writes = server.run(oci(
        &image,
        "echo x > /bin/evil 2>/dev/null || echo root-read-only; echo y > /tmp/scratch && cat /tmp/scratch",
    ));
    assert_eq!(writes["output"], "root-read-only\ny", "{writes}");
    let again = server.run(oci(&image, "ls /tmp; ls /bin/evil 2>&1 || true"));
    assert!(
        !again["output"].as_str().unwrap().contains("scratch"),
        "scratch must not leak between runs: {again}"
    );

    let (status, _) = server.get("/healthz");
    assert_eq!(status, 200);
    let fine = server.run(oci(&image, "echo still fine"));
    assert_eq!(fine["output"], "still fine");
    assert_nothing_left(&server);
}

#[test]
fn a_killed_sandbox_is_destroyed() {
    let _cpu = shared();
    let registry = Registry::start();
    let image = registry.push("busybox:1", "busybox");
    let server = server_for(&registry);
    let id = server.submit(oci(&image, "echo started; sleep 60"));
    let mut sse = server.sse(&format!("/v1/workloads/{id}/logs"));
    loop {
        let event = sse.next_event().expect("a log line before the end");
        if event.data.contains("started") {
            break;
        }
    }
    let (status, _) = server.delete(&format!("/v1/workloads/{id}"));
    assert_eq!(status, 200);
    let w = server.wait_terminal(&id, Duration::from_secs(10));
    assert_eq!(w["status"], "killed", "{w}");
    assert_nothing_left(&server);
}

#[test]
fn layers_are_cached_and_tampered_content_is_refused() {
    let _cpu = shared();
    let first = Registry::start();
    let registry = Registry::start();
    let insecure = format!("{},{}", first.host, registry.host);
    let server = Server::start(&[("VULCAN_INSECURE_REGISTRIES", insecure.as_str())]);
    let image = first.push("busybox:1", "busybox");
    assert_eq!(server.run(oci(&image, "echo one"))["status"], "completed");
    // Second run with the registry gone: everything it needs is local.
    drop(first);
    let w = server.run(oci(&image, "echo two"));
    assert_eq!(
        (w["status"].as_str(), w["output"].as_str()),
        (Some("completed"), Some("two")),
        "{w}"
    );

    let bad_layer = registry.push("tampered:1", "busybox");
    let (manifest, _) = registry.manifest("tampered", "1");
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let file = registry.blob_file(layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let (status, body) = server.post("/v1/images", &json!({"reference": bad_layer}));
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("does not match its digest"),
        "{body}"
    );

    registry.push("manifest:1", "busybox");
    let (_, digest) = registry.manifest("manifest", "1");
    let file = registry.blob_file(&digest);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(b"\n ");
    std::fs::write(&file, bytes).unwrap();
    let pinned = format!("{}/manifest@{digest}", registry.host);
    let (status, body) = server.post("/v1/images", &json!({"reference": pinned}));
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("manifest"),
        "{body}"
    );

    let (_, images) = server.get("/v1/images");
    assert_eq!(
        images.as_array().unwrap().len(),
        1,
        "only the good image is registered: {images}"
    );
}

#[test]
fn the_image_api_registers_defaults_and_removes() {
    let _cpu = shared();
    let registry = Registry::start();
    let image = registry.push("busybox:2", "busybox");
    let server = server_for(&registry);

    let (status, record) = server.post(
        "/v1/images",
        &json!({"reference": image, "default": true, "resources": {"cpus": 1, "mem_mb": 96, "timeout_s": 20}}),
    );
    assert_eq!(status, 201, "{record}");
    assert_eq!(record["reference"], image.as_str());
    assert!(record["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(record["config"]["cmd"], json!(["sh"]));

    let (status, one) = server.get(&format!("/v1/images/{image}"));
    assert_eq!((status, &one["digest"]), (200, &record["digest"]));
    let (_, all) = server.get("/v1/images");
    assert_eq!(all.as_array().unwrap().len(), 1);

    // No image named: the default image runs, with its registered resources.
    let w = server.run(json!({"runtime": "oci", "command": ["sh", "-c", "echo default"]}));
    assert_eq!(
        (w["status"].as_str(), w["output"].as_str()),
        (Some("completed"), Some("default")),
        "{w}"
    );
    assert_eq!(w["mem_limit"], 96);

    let (status, body) = server.post("/v1/images", &json!({"reference": "Not A Ref"}));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not valid"));
    let (status, body) = server.post(
        "/v1/images",
        &json!({"reference": format!("{}/missing:1", registry.host)}),
    );
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].as_str().unwrap().contains("404"), "{body}");
    let (status, body) = server.post("/v1/images", &json!({"reference": "127.0.0.1:1/nothing:1"}));
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("VULCAN_INSECURE_REGISTRIES"),
        "{body}"
    );

    let (status, _) = server.delete(&format!("/v1/images/{image}"));
    assert_eq!(status, 204);
    let (status, body) = server.get(&format!("/v1/images/{image}"));
    assert_eq!(status, 404, "{body}");
    let rootfs: Vec<_> = std::fs::read_dir(server.data_dir.join("images/rootfs"))
        .unwrap()
        .flatten()
        .collect();
    assert!(
        rootfs.is_empty(),
        "the unpacked root is removed with its image"
    );
    let (status, body) = server.post(
        "/v1/workloads",
        &json!({"runtime": "oci", "command": ["true"]}),
    );
    assert_eq!(
        status, 400,
        "without a default image, \"image\" is required: {body}"
    );
}

/// A registry that lies: a valid manifest whose layer, declared as 1 KiB, streams without
/// end, and a second manifest that never ends either. Returns its host and how many layer
/// bytes it managed to send.
fn lying_registry() -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use sha2::Digest as _;
    use std::io::{BufRead, BufReader, Write};
    let config = br#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = format!("sha256:{:x}", sha2::Sha256::digest(config));
    let layer_digest = format!("sha256:{:x}", sha2::Sha256::digest(b"a kilobyte"));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest, "size": 1024}]
    })
    .to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (manifest, config, counter) = (manifest.clone(), config, counter.clone());
            let config_digest = config_digest.clone();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(conn.try_clone().unwrap()).lines();
                let path = lines
                    .next()
                    .and_then(Result::ok)
                    .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
                    .unwrap_or_default();
                for line in lines.by_ref() {
                    if line.map_or(true, |l| l.is_empty()) {
                        break;
                    }
                }
                let mut conn = conn;
                let head = |conn: &mut std::net::TcpStream, kind: &str, length: Option<usize>| {
                    let length =
                        length.map_or(String::new(), |n| format!("Content-Length: {n}\r\n"));
                    write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\n{length}Connection: close\r\n\r\n")
                };
                let chunk = vec![b'x'; 64 * 1024];
                let _ = if path == "/v2/" {
                    head(&mut conn, "application/json", Some(2))
                        .and_then(|()| conn.write_all(b"{}"))
                } else if path.ends_with("/manifests/endless") {
                    // A manifest that never ends.
                    head(
                        &mut conn,
                        "application/vnd.oci.image.manifest.v1+json",
                        None,
                    )
                    .and_then(|()| loop {
                        conn.write_all(&chunk)?;
                    })
                } else if path.contains("/manifests/") {
                    head(
                        &mut conn,
                        "application/vnd.oci.image.manifest.v1+json",
                        Some(manifest.len()),
                    )
                    .and_then(|()| conn.write_all(manifest.as_bytes()))
                } else if path.ends_with(&config_digest) {
                    head(&mut conn, "application/octet-stream", Some(config.len()))
                        .and_then(|()| conn.write_all(config))
                } else {
                    // The layer: 1 KiB declared, no end sent.
                    head(&mut conn, "application/octet-stream", None).and_then(|()| loop {
                        conn.write_all(&chunk)?;
                        counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    })
                };
            });
        }
    });
    (host, sent)
}

fn disk_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[test]
fn a_registry_that_sends_more_than_it_declared_is_cut_off_at_the_declared_size() {
    let _cpu = shared();
    let (host, sent) = lying_registry();
    let server = Server::start(&[("VULCAN_INSECURE_REGISTRIES", host.as_str())]);
    let (status, body) = server.post(
        "/v1/images",
        &json!({"reference": format!("{host}/liar:1")}),
    );
    assert!(
        (400..600).contains(&status) && status != 500,
        "{status} {body}"
    );
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("larger than the 1024 bytes its manifest says"),
        "{error}"
    );
    // It stopped reading at the declared size: what the registry got out is what fills
    // socket buffers, not the endless stream, and nothing of it stayed on disk.
    std::thread::sleep(Duration::from_millis(500));
    let pushed = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(pushed < 64 << 20, "the registry sent {pushed} bytes");
    let kept = disk_bytes(&server.data_dir.join("images"));
    assert!(kept < 1 << 20, "{kept} bytes of images on disk");

    let (status, body) = server.post(
        "/v1/images",
        &json!({"reference": format!("{host}/liar:endless")}),
    );
    assert!(
        (400..600).contains(&status) && status != 500,
        "{status} {body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("larger than 4194304 bytes"),
        "{body}"
    );
    assert_eq!(server.get("/healthz").0, 200);
}

#[test]
fn a_registry_that_never_answers_fails_the_pull_at_its_own_deadline() {
    let _cpu = shared();
    // Accepts connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let server = Server::start(&[
        ("VULCAN_INSECURE_REGISTRIES", host.as_str()),
        ("VULCAN_IMAGE_PULL_TIMEOUT_S", "2"),
    ]);
    let started = std::time::Instant::now();
    let (status, body) = server.post(
        "/v1/images",
        &json!({"reference": format!("{host}/silent:1")}),
    );
    assert_eq!(status, 504, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("did not finish within 2 s"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // A run naming it: the pull's deadline, not the workload's timeout, ends it.
    let w = server.run(
        json!({"runtime": "oci", "image": format!("{host}/silent:2"),
        "command": ["true"], "resources": {"timeout_s": 1}}),
    );
    assert_eq!(w["status"], "failed", "{w}");
    assert!(
        w["error"]
            .as_str()
            .unwrap()
            .contains("did not finish within 2 s"),
        "{w}"
    );
    assert_eq!(server.get("/healthz").0, 200);
}

#[test]
fn a_failed_program_is_reported_by_its_last_error_line_however_much_it_printed() {
    let _cpu = shared();
    let registry = Registry::start();
    let image = registry.push("busybox:1", "busybox");
    let server = server_for(&registry);
    let w = server.run(json!({"runtime": "oci", "image": image, "command": ["sh", "-c",
        "i=0; while [ $i -lt 3000 ]; do echo noise $i >&2; i=$((i+1)); done; echo the real error >&2; exit 3"]}));
    assert_eq!(w["status"], "failed", "{w}");
    assert_eq!(w["exit_code"], 3);
    assert_eq!(w["error"], "exited with code 3: the real error", "{w}");
}

/// An oci function that counts its invocations in the sandbox's `/tmp`, answers with its
/// input, and loops or eats memory when asked.
const COUNTING: &str = r#"read x
n=$(cat /tmp/n 2>/dev/null || echo 0); n=$((n+1)); echo $n >/tmp/n
case "$x" in *loop*) while :; do :; done;; *bomb*) y=a; while true; do y=$y$y; done;; esac
echo "got $x"
echo "call $n""#;

#[test]
fn an_oci_function_is_served_from_a_warm_sandbox_with_the_answers_of_fresh_runs() {
    let _cpu = shared();
    let registry = Registry::start();
    let image = registry.push("busybox:1", "busybox");
    let server = server_for(&registry);
    let mut function = oci(&image, COUNTING);
    function["max_instances"] = json!(1);
    function["resources"] = json!({"mem_mb": 64, "timeout_s": 3});
    let (status, deployed) = common::answer_of(
        ureq::put(&server.url("/v1/functions/count"))
            .set("Content-Type", "application/json")
            .send_string(&function.to_string()),
    );
    assert_eq!(status, 201, "{deployed}");
    let invoke = |input: Value| {
        let (status, w) = server.post("/v1/functions/count/invoke", &input);
        assert_eq!(status, 200, "{w}");
        w
    };
    for n in 1..=5 {
        let input = json!({"n": n});
        let warm = invoke(input.clone());
        assert_eq!(
            (warm["status"].as_str(), warm["isolation"].as_str()),
            (Some("completed"), Some("gvisor")),
            "{warm}"
        );
        assert_eq!(
            warm["output"],
            format!("got {input}\ncall {n}"),
            "one sandbox serves every invocation, /tmp kept"
        );
        let mut fresh = oci(&image, COUNTING);
        fresh["input"] = input.clone();
        let fresh = server.run(fresh);
        assert_eq!(
            fresh["output"],
            format!("got {input}\ncall 1"),
            "a fresh run answers alike: {fresh}"
        );
    }
    let (_, f) = server.get("/v1/functions/count");
    assert_eq!(f["instances"], 1, "{f}");

    let looped = invoke(json!({"loop": true}));
    assert_eq!(
        (looped["status"].as_str(), looped["error"].as_str()),
        (Some("failed"), Some("timed out after 3 s")),
        "{looped}"
    );
    assert_eq!(invoke(json!(1))["output"], "got 1\ncall 1", "a new sandbox");
    let bomb = invoke(json!({"bomb": true}));
    assert_eq!(bomb["status"], "failed", "{bomb}");
    assert!(
        bomb["error"]
            .as_str()
            .unwrap()
            .contains("memory limit exceeded"),
        "{bomb}"
    );
    assert_eq!(
        invoke(json!(2))["output"],
        "got 2\ncall 1",
        "replaced again"
    );

    // A kill stops an invocation; the next is served.
    let (status, looping) = server.post(
        "/v1/functions/count/invoke?async=true",
        &json!({"loop": true}),
    );
    assert_eq!(status, 202, "{looping}");
    let id = looping["id"].as_str().unwrap();
    server.wait_status(id, "running", Duration::from_secs(30));
    let (status, killed) = server.delete(&format!("/v1/workloads/{id}"));
    assert_eq!((status, killed["status"].as_str()), (200, Some("killed")));
    assert_eq!(invoke(json!(3))["output"], "got 3\ncall 1");

    // Deleting the function stops its sandbox; nothing is left.
    assert_eq!(server.delete("/v1/functions/count").0, 204);
    common::eventually(Duration::from_secs(10), "the warm sandbox to go", || {
        let out = std::process::Command::new("runsc")
            .arg("--root")
            .arg(server.data_dir.join("gvisor/state"))
            .args(["list", "--quiet"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .is_empty()
            .then_some(())
    });
    assert_nothing_left(&server);
}

#[test]
fn each_run_reports_the_cpu_time_and_memory_it_really_used() {
    let _cpu = alone();
    let registry = Registry::start();
    let image = registry.push("busybox:1", "busybox");
    let server = server_for(&registry);
    let busy = server.run(oci(
        &image,
        "timeout 1 sh -c 'while :; do :; done'; echo done",
    ));
    assert_eq!(busy["output"], "done", "{busy}");
    let mut big = oci(
        &image,
        "dd if=/dev/zero of=/tmp/fill bs=1M count=100 2>/dev/null; ls -l /tmp/fill | wc -l",
    );
    big["resources"] = json!({"mem_mb": 256});
    let big = server.run(big);
    assert_eq!(big["output"], "1", "{big}");
    let idle = server.run(oci(&image, "sleep 1"));
    eprintln!(
        "gvisor usage: busy {} ms, big {} bytes, idle {} ms",
        busy["cpu_time_ms"], big["peak_memory_bytes"], idle["cpu_time_ms"]
    );
    assert!(busy["cpu_time_ms"].as_u64().unwrap() >= 800, "{busy}");
    assert!(
        big["peak_memory_bytes"].as_u64().unwrap() >= 100 << 20,
        "{big}"
    );
    let idle_ms = idle["cpu_time_ms"].as_u64().unwrap();
    assert!(
        idle_ms < busy["cpu_time_ms"].as_u64().unwrap() / 2,
        "an idle run uses little CPU (the sandbox's own start included): {idle}"
    );
}

#[test]
fn only_an_admin_sets_what_every_tenant_gets_from_an_image() {
    let _cpu = shared();
    let registry = Registry::start();
    let image = registry.push("busybox:3", "busybox");
    let admin = "vk_images_0123456789";
    let server = Server::start(&[
        ("VULCAN_INSECURE_REGISTRIES", registry.host.as_str()),
        ("VULCAN_ALLOWED_REGISTRIES", registry.host.as_str()),
        ("VULCAN_AUTH", "on"),
        ("VULCAN_ADMIN_KEY", admin),
    ]);
    let call = |key: &str, method: &str, path: &str, body: Option<Value>| {
        let req = ureq::request(method, &server.url(path)).set("X-API-Key", key);
        common::answer_of(match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        })
    };
    let (status, created) = call(
        admin,
        "POST",
        "/v1/keys",
        Some(json!({"name": "op", "role": "operator", "tenant": "team-a"})),
    );
    assert_eq!(status, 201, "{created}");
    let operator = created["key"].as_str().unwrap().to_owned();
    // An operator registers an image for its runs, but makes it nobody's default, sets no
    // resources for everyone's runs of it, and removes it for nobody.
    for body in [
        json!({"reference": image, "default": true}),
        json!({"reference": image, "resources": {"cpus": 1, "mem_mb": 32, "timeout_s": 5}}),
    ] {
        let (status, e) = call(&operator, "POST", "/v1/images", Some(body));
        assert_eq!(status, 403, "{e}");
        assert!(
            e["error"].as_str().unwrap().contains("only an admin"),
            "{e}"
        );
    }
    let (status, record) = call(
        &operator,
        "POST",
        "/v1/images",
        Some(json!({"reference": image})),
    );
    assert_eq!(status, 201, "{record}");
    assert_eq!(record["default"], false, "{record}");
    let (status, e) = call(&operator, "DELETE", &format!("/v1/images/{image}"), None);
    assert_eq!(status, 403, "{e}");
    assert_eq!(
        call(admin, "GET", &format!("/v1/images/{image}"), None).0,
        200
    );
    // An admin does both.
    let (status, record) = call(
        admin,
        "POST",
        "/v1/images",
        Some(json!({"reference": image, "default": true})),
    );
    assert_eq!(
        (status, &record["default"]),
        (201, &json!(true)),
        "{record}"
    );
    assert_eq!(
        call(admin, "DELETE", &format!("/v1/images/{image}"), None).0,
        204
    );
}
