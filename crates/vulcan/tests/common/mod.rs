//! Starts the real `vulcan` binary on a free loopback port with a fresh SQLite file, and
//! talks to it over real HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod queues;
pub mod receiver;
pub mod sandbox_host;

pub struct Server {
    pub base: String,
    pub child: Child,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// The `vulcan` binary to start: this build's, or `VULCAN_TEST_BIN` (the benchmark runs
/// an earlier build beside this one that way).
pub fn vulcan_bin() -> String {
    std::env::var("VULCAN_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_vulcan").to_owned())
}

/// The server's `/metrics` text.
pub fn metrics(server: &Server) -> String {
    ureq::get(&server.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
}

/// The value of one series in `/metrics` (0 if it is not there yet), e.g.
/// `vulcan_workloads_running{backend="isolate"}`.
pub fn metric(server: &Server, series: &str) -> f64 {
    metrics(server)
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Whether process `pid` holds the socket listening on loopback port `port`.
fn listens_on(pid: u32, port: u16) -> bool {
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let wanted = format!(":{port:04X}");
    let inodes: Vec<String> = tcp
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 9 && f[1].ends_with(&wanted) && f[3] == "0A")
        .map(|f| format!("socket:[{}]", f[9]))
        .collect();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|link| inodes.iter().any(|i| link.to_string_lossy() == *i))
}

/// A path in the repository (`clients/generate.sh`, `docs/api.md`).
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// A file scripts/setup.sh installs under .tools (the SDKs and tools the tests drive).
pub fn tool(path: &str) -> PathBuf {
    let tool = repo(".tools").join(path);
    assert!(
        tool.exists(),
        "{} is missing: run scripts/setup.sh (it installs what the tests drive under .tools)",
        tool.display()
    );
    tool
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Server {
    /// A server on a new data directory, with extra `VULCAN_*` settings.
    pub fn start(env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_in(&dir, env);
        s._tmp = Some(tmp);
        s
    }

    /// A server on an existing data directory (for restarts).
    pub fn start_in(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::start_logging_to(data_dir, env, None)
    }

    /// A server on a new data directory whose log (stderr) goes to `log`.
    pub fn start_logged(env: &[(&str, &str)], log: &Path) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_logging_to(&dir, env, Some(log));
        s._tmp = Some(tmp);
        s
    }

    /// A server started the README's way: from a working directory of its own (a new
    /// temporary one) with the default, relative data directory `.vulcan`, auth on; and its
    /// admin key (from `.vulcan/admin.key`). The directory is kept while the server lives.
    pub fn start_readme_way(env: &[(&str, &str)]) -> (Server, String) {
        Server::start_with_cwd(env, false)
    }

    /// [`Server::start_readme_way`], but with the data directory given as an absolute path
    /// (`<working directory>/.vulcan`).
    pub fn start_with_absolute_data_dir(env: &[(&str, &str)]) -> (Server, String) {
        Server::start_with_cwd(env, true)
    }

    fn start_with_cwd(env: &[(&str, &str)], absolute: bool) -> (Server, String) {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().join(".vulcan");
        let mut cmd = Command::new(vulcan_bin());
        cmd.current_dir(tmp.path()).env_remove("VULCAN_DATA_DIR");
        if absolute {
            cmd.env("VULCAN_DATA_DIR", &data_dir);
        }
        let mut env = env.to_vec();
        env.push(("VULCAN_AUTH", "on"));
        let mut s = Server::spawn(cmd, &data_dir, &env, None);
        s._tmp = Some(tmp);
        let key = std::fs::read_to_string(s.data_dir.join("admin.key"))
            .expect("the first admin key in .vulcan/admin.key")
            .trim()
            .to_owned();
        (s, key)
    }

    fn start_logging_to(data_dir: &Path, env: &[(&str, &str)], log: Option<&Path>) -> Server {
        let mut cmd = Command::new(vulcan_bin());
        cmd.env("VULCAN_DATA_DIR", data_dir);
        Server::spawn(cmd, data_dir, env, log)
    }

    fn spawn(
        mut cmd: Command,
        data_dir: &Path,
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> Server {
        cmd.arg("serve")
            .env("VULCAN_LOG_LEVEL", "warn")
            // Most tests are about something else; tests/auth.rs turns auth on.
            .env("VULCAN_AUTH", "off")
            // No warm VMs unless a test asks: they would compete for the CPUs.
            .env("VULCAN_MICROVM_POOL", "0")
            .stdout(Stdio::null())
            .stderr(match log {
                Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
                None => Stdio::inherit(),
            });
        for (k, v) in env {
            cmd.env(k, v);
        }
        // A port found free may be taken by another test's server before this one binds
        // it: then this one exits, and another server would answer for it. Its answer
        // counts only once this server is seen listening there; else a new port is tried.
        for _ in 0..5 {
            let port = free_port();
            cmd.env("VULCAN_LISTEN_ADDR", format!("127.0.0.1:{port}"));
            let child = cmd.spawn().expect("start vulcan serve");
            let mut server = Server {
                base: format!("http://127.0.0.1:{port}"),
                child,
                data_dir: data_dir.to_path_buf(),
                _tmp: None,
            };
            if server.wait_healthy(port) {
                return server;
            }
        }
        panic!("vulcan serve never got a port of its own");
    }

    /// Waits until this server answers on `port` as the one listening there; `false` if it
    /// exited first (its port was taken).
    fn wait_healthy(&mut self, port: u16) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if let Ok(r) = ureq::get(&format!("{}/healthz", self.base)).call() {
                if r.status() == 200 && listens_on(self.child.id(), port) {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("vulcan did not become healthy at {}", self.base);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        answer_of(ureq::get(&self.url(path)).call())
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        answer_of(ureq::delete(&self.url(path)).call())
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, &body.to_string())
    }

    pub fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        answer_of(
            ureq::put(&self.url(path))
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
        )
    }

    pub fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        answer_of(
            ureq::post(&self.url(path))
                .set("Content-Type", "application/json")
                .send_string(body),
        )
    }

    /// Runs a workload synchronously and returns it; panics unless the API answered 200.
    pub fn run(&self, body: Value) -> Value {
        let (status, w) = self.post("/v1/workloads", &body);
        assert_eq!(status, 200, "{w}");
        w
    }

    pub fn submit(&self, body: Value) -> String {
        let (status, w) = self.post("/v1/workloads/async", &body);
        assert_eq!(status, 202, "{w}");
        w["id"].as_str().expect("an id").to_owned()
    }

    /// Polls a workload until it has `status` (panics after `within`).
    pub fn wait_status(&self, id: &str, status: &str, within: Duration) -> Value {
        eventually(within, &format!("workload {id} to be {status}"), || {
            let (_, w) = self.get(&format!("/v1/workloads/{id}"));
            (w["status"] == status).then_some(w)
        })
    }

    /// Polls a workload until it is terminal.
    pub fn wait_terminal(&self, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, w) = self.get(&format!("/v1/workloads/{id}"));
            assert_eq!(status, 200, "{w}");
            if ["completed", "failed", "killed"].contains(&w["status"].as_str().unwrap_or("")) {
                return w;
            }
            assert!(
                Instant::now() < deadline,
                "workload {id} still {} after {within:?}",
                w["status"]
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Opens the SSE log stream of a workload.
    pub fn sse(&self, path: &str) -> SseReader {
        let response = ureq::get(&self.url(path)).call().expect("SSE stream");
        assert_eq!(response.header("content-type"), Some("text/event-stream"));
        SseReader {
            lines: BufReader::new(response.into_reader()),
        }
    }

    /// Stops the server as an operator does (SIGTERM), so that it removes what it made
    /// ahead of time; killed if it has not stopped `within`.
    pub fn stop(&mut self, within: Duration) {
        if let Ok(None) = self.child.try_wait() {
            send_sigterm(self.child.id());
            let deadline = Instant::now() + within;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.kill9();
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (status, JSON body) of a request's result, whatever its status.
pub fn answer_of(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("HTTP transport error: {e}"),
    };
    let status = response.status();
    let text = response.into_string().expect("a body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

/// Polls `check` every 20 ms until it gives a value; panics naming `what` after `within`.
/// Tests wait for a state this way, never with a fixed sleep.
pub fn eventually<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "waited {within:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, as a service manager sends it.
pub fn send_sigterm(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

pub struct SseReader {
    lines: BufReader<Box<dyn std::io::Read + Send + Sync + 'static>>,
}

impl SseReader {
    /// The next event, skipping keep-alive comments; `None` at end of stream.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        let (mut event, mut data) = (String::from("message"), String::new());
        let mut seen = false;
        loop {
            let mut line = String::new();
            if self.lines.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if seen {
                    return Some(SseEvent { event, data });
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_owned();
                seen = true;
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
                seen = true;
            }
        }
    }

    /// The log lines (text) until `done`, and the `done` event's data.
    pub fn collect(&mut self) -> (Vec<String>, Value) {
        let mut lines = Vec::new();
        while let Some(e) = self.next_event() {
            match e.event.as_str() {
                "log" => {
                    let v: Value = serde_json::from_str(&e.data).expect("log event JSON");
                    lines.push(v["line"].as_str().unwrap_or_default().to_owned());
                }
                "done" => return (lines, serde_json::from_str(&e.data).expect("done JSON")),
                _ => {}
            }
        }
        panic!("the stream ended without a done event; lines so far: {lines:?}");
    }
}

/// The sum function of the acceptance criteria.
pub fn sum_workload(a: i64, b: i64) -> Value {
    serde_json::json!({
        "runtime": "node",
        "code": "export default (i) => ({sum: i.a + i.b})",
        "input": {"a": a, "b": b}
    })
}

/// Tenant `a` with `flood` one-second schedules and a quota that refuses nearly all their
/// runs (each tick still costs the scheduler a refusal and a skip), beside one schedule of
/// tenant `b` on `b_cron`, all of function `f`; the id of `b`'s schedule.
pub fn schedules_beside_a_flood(server: &Server, flood: usize, b_cron: &str) -> String {
    let (status, q) = server.put(
        "/v1/tenants/a/quota",
        &serde_json::json!({"max_concurrent": 1, "per_minute": 1, "max_cpus": 1, "max_mem_mb": 128}),
    );
    assert_eq!(status, 200, "{q}");
    for tenant in ["a", "b"] {
        let (status, v) = server.put(
            &format!("/v1/functions/f?tenant={tenant}"),
            &serde_json::json!({"runtime": "node", "code": "export default () => 1"}),
        );
        assert_eq!(status, 201, "{v}");
    }
    for _ in 0..flood {
        let (status, s) = server.post(
            "/v1/schedules?tenant=a",
            &serde_json::json!({"function": "f", "cron": "* * * * * *"}),
        );
        assert_eq!(status, 201, "{s}");
    }
    let (status, b) = server.post(
        "/v1/schedules?tenant=b",
        &serde_json::json!({"function": "f", "cron": b_cron}),
    );
    assert_eq!(status, 201, "{b}");
    b["id"].as_str().expect("a schedule's id").to_owned()
}

/// Deploys function `name` (`PUT /v1/functions/{name}`), which must answer 201.
pub fn deploy_function(server: &Server, name: &str, body: Value) -> Value {
    let (status, deployed) = answer_of(
        ureq::put(&server.url(&format!("/v1/functions/{name}")))
            .set("Content-Type", "application/json")
            .send_string(&body.to_string()),
    );
    assert_eq!(status, 201, "{deployed}");
    deployed
}
