//! A server whose sandboxes are cleaned up after it, whatever the test did.

use std::io::Read;
use std::time::Duration;

use serde_json::{json, Value};

use super::{eventually, Server};

/// A server with its sandboxes: dropped (the test ended, or failed), it is stopped as an
/// operator stops it (SIGTERM: it ends what it holds), and whatever is still there is
/// removed (a container, a mount, a cgroup), so that no test leaves a sandbox behind.
pub struct Host {
    pub server: Server,
}

impl std::ops::Deref for Host {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

impl std::ops::DerefMut for Host {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.server
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.server.stop(Duration::from_secs(30));
        sweep(&self.server.data_dir);
    }
}

/// Removes what sandboxes under `data_dir` left: containers, mounts, cgroups.
pub fn sweep(data_dir: &std::path::Path) {
    let dir = data_dir.join("gvisor/sandboxes");
    let runsc = |args: &[&str]| {
        std::process::Command::new("runsc")
            .arg("--root")
            .arg(dir.join("state"))
            .args(args)
            .output()
    };
    if let Ok(out) = runsc(&["list", "--quiet"]) {
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            // A frozen one is thawed first: it could be neither killed nor deleted.
            let _ = runsc(&["resume", id]);
            let _ = runsc(&["kill", "--all", id, "KILL"]);
            let _ = runsc(&["delete", "--force", id]);
        }
    }
    let prefix = data_dir.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut ours: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in ours {
        let _ = std::process::Command::new("umount")
            .args(["-l", mount])
            .status();
    }
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let id = entry.file_name();
        for controller in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(controller.path().join("vulcan-gvisor").join(&id));
        }
    }
}

/// Runs hostile `script` in sandbox `id`: afterwards the sandbox answers (and the script
/// failed), or it ended with `limit_named` in its reason.
pub fn held_to(server: &Server, id: &str, script: &str, limit_named: &str) {
    let (status, answer) = server.post(
        &format!("/v1/sandboxes/{id}/processes"),
        &json!({"cmd": "sh", "args": ["-c", script], "timeout_s": 30}),
    );
    assert!(status == 200 || status == 409, "{status} {answer}");
    let outcome = eventually(
        Duration::from_secs(30),
        "the sandbox to answer or end",
        || {
            let (_, s) = server.get(&format!("/v1/sandboxes/{id}"));
            if s["state"] == "ended" {
                return Some(Err(s));
            }
            let (status, p) = server.post(
                &format!("/v1/sandboxes/{id}/processes"),
                &json!({"cmd": "echo", "args": ["ok"]}),
            );
            (status == 200 && p["stdout"] == "ok\n").then_some(Ok(answer.clone()))
        },
    );
    match outcome {
        Ok(answer) => assert_ne!(
            answer["exit_code"], 0,
            "the hostile process failed: {answer}"
        ),
        Err(ended) => {
            let reason = ended["end_reason"].as_str().unwrap_or_default();
            assert!(reason.contains(limit_named), "{script}: {ended}");
        }
    }
}

/// Runs `sh -c script` in the foreground: (exit code, stdout, stderr).
pub fn sh(server: &Server, id: &str, script: &str) -> (i64, String, String) {
    let (status, p) = server.post(
        &format!("/v1/sandboxes/{id}/processes"),
        &json!({"cmd": "sh", "args": ["-c", script]}),
    );
    assert_eq!(status, 200, "{p}");
    (
        p["exit_code"].as_i64().unwrap_or(-1),
        p["stdout"].as_str().unwrap_or_default().to_owned(),
        p["stderr"].as_str().unwrap_or_default().to_owned(),
    )
}

pub fn background(server: &Server, id: &str, body: Value) -> u64 {
    let (status, p) = server.post(&format!("/v1/sandboxes/{id}/processes"), &body);
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["state"], "running");
    p["pid"].as_u64().unwrap()
}

pub fn upload(server: &Server, id: &str, path: &str, bytes: &[u8]) -> (u16, Value) {
    super::answer_of(
        ureq::put(&server.url(&format!("/v1/sandboxes/{id}/files?path={path}")))
            .set("Content-Type", "application/octet-stream")
            .send_bytes(bytes),
    )
}

pub fn download(server: &Server, id: &str, path: &str) -> Result<Vec<u8>, (u16, Value)> {
    match ureq::get(&server.url(&format!("/v1/sandboxes/{id}/files?path={path}"))).call() {
        Ok(r) => {
            let mut bytes = Vec::new();
            r.into_reader().read_to_end(&mut bytes).unwrap();
            Ok(bytes)
        }
        Err(e) => Err(super::answer_of(Err(e))),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Watches directory `dir` of sandbox `id` over a WebSocket while `sh` makes `seen` there,
/// then writes and removes `seen/w.txt`: every step is seen, below the directory too.
pub fn watch_sees_changes_below(server: &Server, id: &str, dir: &str, within: Duration) {
    let url = server
        .url(&format!(
            "/ws/sandboxes/{id}/files/watch?path={dir}&recursive=true"
        ))
        .replace("http://", "ws://");
    let (mut watch, _) = tungstenite::connect(url).expect("a watch");
    if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = watch.get_ref() {
        tcp.set_read_timeout(Some(within)).unwrap();
    }
    let mut seen = Vec::new();
    let until = |watch: &mut tungstenite::WebSocket<_>, wanted: &str, seen: &mut Vec<String>| {
        while !seen.iter().any(|s| s == wanted) {
            match watch.read() {
                Ok(tungstenite::Message::Text(message)) => {
                    let m: Value = serde_json::from_str(&message).unwrap();
                    seen.push(format!(
                        "{} {}",
                        m["type"].as_str().unwrap(),
                        m["name"].as_str().unwrap()
                    ));
                }
                Ok(_) => {}
                Err(e) => panic!("the watch ended early ({e}); saw {seen:?}"),
            }
        }
    };
    // The new directory first: a file made and removed in it before the watch follows it
    // (inotify adds a directory's watch after hearing of it) would be missed by any
    // watcher.
    sh(server, id, &format!("mkdir {dir}/seen"));
    until(&mut watch, "create seen", &mut seen);
    sh(
        server,
        id,
        &format!("echo hi > {dir}/seen/w.txt && rm {dir}/seen/w.txt"),
    );
    until(&mut watch, "remove seen/w.txt", &mut seen);
    assert!(seen.contains(&"create seen".to_owned()), "{seen:?}");
    assert!(seen.contains(&"create seen/w.txt".to_owned()), "{seen:?}");
}

pub fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

/// Reads process output events from `events` into `text` until it holds `want`; `None`
/// then, or the exit if the process ended first.
fn output_until(events: &mut super::SseReader, text: &mut String, want: &str) -> Option<Value> {
    while !text.contains(want) {
        let event = events
            .next_event()
            .expect("the stream goes on until the exit");
        let data: Value = serde_json::from_str(&event.data).unwrap();
        match event.event.as_str() {
            "stdout" => text.push_str(&String::from_utf8_lossy(&base64_decode(
                data["data"].as_str().unwrap(),
            ))),
            "exit" => return Some(data),
            other => panic!("unexpected event {other} on a terminal: {data}"),
        }
    }
    None
}

/// A process on a terminal sees the size it was started with and the one set while it
/// runs, and reads what is typed (echoed, as a terminal does); sizes that are not one,
/// a terminal without `background`, and resizing a process without one are `400`.
pub fn a_terminal_has_its_size(server: &Server, id: &str) {
    let script = "stty size; read go; stty size; echo got $go; exit 3";
    let pid = background(
        server,
        id,
        json!({"cmd": "sh", "args": ["-c", script], "background": true, "pty": {"rows": 33, "cols": 101}}),
    );
    let (_, info) = server.get(&format!("/v1/sandboxes/{id}/processes/{pid}"));
    assert_eq!(info["pty"], json!({"rows": 33, "cols": 101}), "{info}");
    let mut events = server.sse(&format!("/v1/sandboxes/{id}/processes/{pid}/output"));
    let mut text = String::new();
    assert_eq!(
        output_until(&mut events, &mut text, "33 101\r\n"),
        None,
        "{text:?}"
    );
    let resize = format!("/v1/sandboxes/{id}/processes/{pid}/resize");
    let (status, info) = server.post(&resize, &json!({"rows": 44, "cols": 120}));
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["pty"], json!({"rows": 44, "cols": 120}), "{info}");
    let (status, body) = server.post(
        &format!("/v1/sandboxes/{id}/processes/{pid}/input"),
        &json!({"data": "go\n"}),
    );
    assert!(status < 300, "{status} {body}");
    let exit = output_until(&mut events, &mut text, "\u{1}never").expect("its exit");
    assert_eq!(exit["exit_code"], 3, "{exit}");
    assert!(
        text.contains("go\r\n44 120\r\ngot go\r\n"),
        "typed input echoed, then the new size: {text:?}"
    );
    let (status, body) = server.post(&resize, &json!({"rows": 10, "cols": 10}));
    assert_eq!(status, 409, "an ended process: {body}");

    let plain = background(
        server,
        id,
        json!({"cmd": "sleep", "args": ["30"], "background": true}),
    );
    let (status, body) = server.post(
        &format!("/v1/sandboxes/{id}/processes/{plain}/resize"),
        &json!({"rows": 10, "cols": 10}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("terminal"),
        "{body}"
    );
    server.post(
        &format!("/v1/sandboxes/{id}/processes/{plain}/signal"),
        &json!({"signal": 9}),
    );
    for (body, why) in [
        (
            json!({"cmd": "sh", "background": true, "pty": {"rows": 0, "cols": 80}}),
            "1-1000",
        ),
        (
            json!({"cmd": "sh", "pty": {"rows": 24, "cols": 80}}),
            "background",
        ),
    ] {
        let (status, answer) = server.post(&format!("/v1/sandboxes/{id}/processes"), &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(why), "{answer}");
    }
}
