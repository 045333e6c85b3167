//! The CLI's acceptance: the real `vulcan` binary as a client of a real server.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;
use vulcan_gvisor::testing::Registry;

fn vulcan(server: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vulcan"))
        .args(args)
        .env("VULCAN_URL", server)
        .env_remove("VULCAN_API_KEY")
        .output()
        .expect("run vulcan")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

#[test]
fn run_inline_file_directory_and_image_with_exit_statuses() {
    let registry = Registry::start();
    let image = registry.push("busybox:1", "busybox");
    let server = Server::start(&[("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())]);
    let url = server.base.as_str();

    let inline = vulcan(
        url,
        &[
            "run",
            "--runtime",
            "node",
            "--code",
            "export default (i) => i.a * 2",
            "--input",
            "{\"a\": 21}",
        ],
    );
    assert_eq!(
        (inline.status.code(), stdout(&inline).as_str()),
        (Some(0), "42\n"),
        "{}",
        stderr(&inline)
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sum.ts");
    std::fs::write(
        &file,
        "export default (i: {a: number, b: number}) => ({sum: i.a + i.b});\n",
    )
    .unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(&input, "{\"a\": 1, \"b\": 2}").unwrap();
    let from_file = vulcan(
        url,
        &[
            "run",
            "--file",
            file.to_str().unwrap(),
            "--input",
            &format!("@{}", input.display()),
        ],
    );
    assert_eq!(
        stdout(&from_file),
        "{\"sum\":3}\n",
        "{}",
        stderr(&from_file)
    );

    let script = vulcan(
        url,
        &[
            "run",
            "--runtime",
            "node",
            "--code",
            "console.log('line one'); console.error('to stderr')",
        ],
    );
    assert_eq!(
        stdout(&script),
        "line one\n",
        "printed once, not again as output"
    );
    assert!(stderr(&script).contains("to stderr"));

    let thrown = vulcan(
        url,
        &[
            "run",
            "--runtime",
            "node",
            "--code",
            "export default () => { throw new Error('boom') }",
        ],
    );
    assert_eq!(thrown.status.code(), Some(1));
    assert!(stderr(&thrown).contains("boom"), "{}", stderr(&thrown));

    let exit3 = vulcan(
        url,
        &["run", "--image", &image, "--cmd", "sh -c 'echo hi; exit 3'"],
    );
    assert_eq!(
        (exit3.status.code(), stdout(&exit3).as_str()),
        (Some(3), "hi\n")
    );

    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("lib")).unwrap();
    std::fs::write(
        project.join("main.sh"),
        "cat lib/greeting.txt; cat | wc -c\n",
    )
    .unwrap();
    std::fs::write(project.join("lib/greeting.txt"), "hello from a directory\n").unwrap();
    let packed = vulcan(
        url,
        &[
            "run",
            "--image",
            &image,
            "--file",
            project.to_str().unwrap(),
            "--cmd",
            "sh main.sh",
            "--input",
            "[1,2,3]",
        ],
    );
    assert_eq!(
        stdout(&packed),
        "hello from a directory\n8\n",
        "{}",
        stderr(&packed)
    );

    let as_json = vulcan(
        url,
        &[
            "run",
            "--runtime",
            "node",
            "--code",
            "export default () => 7",
            "-o",
            "json",
        ],
    );
    let w = json_of(&as_json);
    assert_eq!(
        (w["status"].as_str(), w["output"].as_str()),
        (Some("completed"), Some("7"))
    );

    let bad = vulcan(url, &["run", "--code", "1"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(stderr(&bad).contains("--runtime"), "{}", stderr(&bad));
    let refused = vulcan(url, &["run", "--runtime", "cobol", "--code", "1"]);
    assert_eq!(refused.status.code(), Some(125));
    assert!(stderr(&refused).contains("400"), "{}", stderr(&refused));
}

#[test]
fn async_status_ls_kill_nodes_and_json_output() {
    let server = Server::start(&[]);
    let url = server.base.as_str();
    let submitted = vulcan(
        url,
        &[
            "run",
            "--async",
            "--runtime",
            "node",
            "--code",
            "export default async () => { await new Promise(r => setTimeout(r, 30000)); }",
        ],
    );
    let id = stdout(&submitted).trim().to_owned();
    assert_eq!(id.len(), 26, "an id: {id:?}");

    let status = json_of(&vulcan(url, &["status", &id, "-o", "json"]));
    assert_eq!(status["id"], id.as_str());
    let table = stdout(&vulcan(url, &["status", &id]));
    assert!(table.contains(&id) && table.contains("isolate"), "{table}");

    let listed = json_of(&vulcan(url, &["ls", "-o", "json", "--limit", "5"]));
    assert!(listed["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["id"] == id.as_str()));
    let filtered = json_of(&vulcan(url, &["ls", "-o", "json", "--status", "completed"]));
    assert_eq!(filtered["total"], 0);

    let killed = vulcan(url, &["kill", &id]);
    assert!(stdout(&killed).contains("killed"), "{}", stdout(&killed));
    let again = vulcan(url, &["kill", &id]);
    assert_eq!(again.status.code(), Some(125));
    assert!(stderr(&again).contains("409"), "{}", stderr(&again));

    // `run` mirrors a kill that happens while it follows the workload.
    let mut follower = Command::new(env!("CARGO_BIN_EXE_vulcan"))
        .args([
            "run",
            "--runtime",
            "node",
            "--code",
            "console.log('waiting'); await new Promise(r => setTimeout(r, 30000));",
        ])
        .env("VULCAN_URL", url)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(follower.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "waiting\n");
    let running = json_of(&vulcan(url, &["ls", "-o", "json", "--status", "running"]));
    let running_id = running["workloads"][0]["id"].as_str().unwrap().to_owned();
    vulcan(url, &["kill", &running_id]);
    assert_eq!(follower.wait().unwrap().code(), Some(137));

    let nodes = json_of(&vulcan(url, &["nodes", "-o", "json"]));
    let node = &nodes[0];
    assert!(
        node["cpus"].as_u64().unwrap() >= 1 && node["memory_total_mb"].as_u64().unwrap() > 0,
        "{node}"
    );
    assert!(node["backends"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["name"] == "isolate"));
    let (status, one) = server.get(&format!("/v1/nodes/{}", node["id"].as_str().unwrap()));
    assert_eq!((status, &one["id"]), (200, &node["id"]));
    assert_eq!(server.get("/v1/nodes/elsewhere").0, 404);

    for command in [&["backends"][..], &["stats"], &["nodes"], &["images", "ls"]] {
        let out = vulcan(url, command);
        assert!(
            out.status.success() && !stdout(&out).is_empty(),
            "{command:?}: {}",
            stderr(&out)
        );
        let json = vulcan(url, &[command, &["-o", "json"]].concat());
        json_of(&json);
    }
    let completions = vulcan(url, &["completions", "bash"]);
    assert!(stdout(&completions).contains("vulcan"), "bash completions");
}

#[test]
fn logs_follow_prints_lines_as_they_are_produced() {
    let server = Server::start(&[]);
    let url = server.base.as_str();
    let id = server.submit(serde_json::json!({"runtime": "node",
        "code": "console.log('first'); await new Promise(r => setTimeout(r, 2000)); console.log('second');"}));
    let mut child = Command::new(env!("CARGO_BIN_EXE_vulcan"))
        .args(["logs", "-f", &id])
        .env("VULCAN_URL", url)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    assert_eq!(lines.next().unwrap().unwrap(), "first");
    let (_, w) = server.get(&format!("/v1/workloads/{id}"));
    assert_eq!(
        w["status"], "running",
        "the first line arrived while the workload ran"
    );
    assert_eq!(lines.next().unwrap().unwrap(), "second");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the second line came later"
    );
    assert!(
        child.wait().unwrap().success(),
        "logs -f ends when the workload does"
    );

    let history = vulcan(url, &["logs", &id]);
    assert_eq!(stdout(&history), "first\nsecond\n");
    let as_json = json_of(&vulcan(url, &["logs", &id, "-o", "json"]));
    assert_eq!(as_json["lines"].as_array().unwrap().len(), 2);
}

#[test]
fn a_server_that_is_down_is_a_clear_error() {
    let out = vulcan("http://127.0.0.1:9", &["ls"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach the Vulcan server at http://127.0.0.1:9"),
        "{err}"
    );
    assert!(err.contains("VULCAN_URL"), "{err}");
}

#[test]
fn benchmark_covers_every_available_backend_as_workloads_and_functions_and_its_report_renders_in_chromium(
) {
    let registry = Registry::start();
    let image = registry.push("busybox:1", "busybox");
    let server = Server::start(&[("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())]);
    let url = server.base.as_str();
    let pulled = vulcan(url, &["images", "pull", &image, "--default"]);
    assert!(pulled.status.success(), "{}", stderr(&pulled));

    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let out = vulcan(
        url,
        &[
            "benchmark",
            "--json",
            "--iterations",
            "2",
            "--concurrency",
            "2",
            "--report",
            page.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json_of(&out);
    assert_eq!(report["status"], "completed");
    let (_, backends) = server.get("/v1/backends");
    let available: Vec<&str> = backends
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["available"] == true)
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert!(
        available.contains(&"isolate") && available.contains(&"gvisor"),
        "{backends}"
    );
    for (name, mode) in available
        .iter()
        .flat_map(|name| [(name, "workload"), (name, "function")])
    {
        let r = report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["backend"] == *name && r["mode"] == mode)
            .unwrap_or_else(|| panic!("no {mode} figures for {name}"));
        assert!(r["skipped"].is_null(), "{r}");
        assert_eq!(r["failed_runs"], 0, "{r}");
        if *name == "microvm" && mode == "workload" {
            // Boot (the snapshot's) and restore side by side.
            let (boot, restore) = (
                r["start_ms"]["boot"].as_f64().unwrap_or(0.0),
                r["start_ms"]["restore"].as_f64().unwrap_or(0.0),
            );
            assert!(boot > 0.0 && restore > 0.0 && restore < boot, "{r}");
        }
        for key in [
            "cold_start_ms",
            "warm_start_ms",
            "p50_ms",
            "p95_ms",
            "throughput_per_s",
        ] {
            assert!(
                r[key].as_f64().is_some_and(|v| v > 0.0),
                "{name} {mode} {key}: {r}"
            );
        }
        assert!(r["memory_per_workload_mb"].as_f64().is_some(), "{r}");
    }
    let (status, kept) = server.get("/v1/benchmarks");
    assert_eq!(status, 200);
    assert_eq!(kept[0]["id"], report["id"], "the report is kept and listed");
    let (status, body) = server.post("/v1/benchmarks", &serde_json::json!({"iterations": 0}));
    assert_eq!(status, 400, "{body}");

    let dom = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (scripts/setup.sh installs it)");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("data-charts=\"6\""), "the charts' script ran");
    let bars = dom.matches("<rect class=\"bar\"").count();
    assert_eq!(
        bars,
        6 * 2 * available.len(),
        "one bar per backend and mode (workload, function) in each of the six charts"
    );
    assert_eq!(
        dom.matches("data-mode=\"function\"").count(),
        6 * available.len()
    );
    for name in &available {
        assert!(dom.contains(&format!("data-backend=\"{name}\"")));
    }
}

#[test]
fn fn_deploys_invokes_lists_rolls_back_and_removes() {
    let server = Server::start(&[]);
    let url = server.base.as_str();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("double.js");
    std::fs::write(&file, "export default (i) => i.x * 2").unwrap();
    let file = file.to_str().unwrap();

    let deployed = vulcan(url, &["fn", "deploy", "double", "--file", file]);
    assert!(deployed.status.success(), "{}", stderr(&deployed));
    assert!(
        stdout(&deployed).starts_with("double deployed version 1 (digest "),
        "{}",
        stdout(&deployed)
    );
    let again = vulcan(url, &["fn", "deploy", "double", "--file", file]);
    assert!(
        stdout(&again).starts_with("double unchanged, still version 1"),
        "{}",
        stdout(&again)
    );
    let invoked = vulcan(url, &["fn", "invoke", "double", "--input", "{\"x\": 21}"]);
    assert_eq!(
        (invoked.status.code(), stdout(&invoked).as_str()),
        (Some(0), "42\n"),
        "{}",
        stderr(&invoked)
    );

    std::fs::write(
        dir.path().join("double.js"),
        "export default (i) => i.x * 3",
    )
    .unwrap();
    let v2 = vulcan(
        url,
        &["fn", "deploy", "double", "--file", file, "-o", "json"],
    );
    assert_eq!(json_of(&v2)["version"], 2);
    assert_eq!(
        stdout(&vulcan(
            url,
            &["fn", "invoke", "double", "--input", "{\"x\": 2}"]
        )),
        "6\n"
    );
    let versions = stdout(&vulcan(url, &["fn", "versions", "double"]));
    let rows: Vec<&str> = versions.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{versions}");
    assert!(
        rows[0].starts_with('2') && rows[0].contains('*'),
        "{versions}"
    );

    let back = vulcan(url, &["fn", "rollback", "double", "1"]);
    assert_eq!(
        stdout(&back),
        "double now runs version 1\n",
        "{}",
        stderr(&back)
    );
    assert_eq!(
        stdout(&vulcan(
            url,
            &["fn", "invoke", "double", "--input", "{\"x\": 2}"]
        )),
        "4\n"
    );
    let listed = json_of(&vulcan(url, &["fn", "ls", "-o", "json"]));
    assert_eq!(
        (
            listed[0]["name"].as_str(),
            listed[0]["active_version"].as_u64(),
            listed[0]["invocations"].as_u64()
        ),
        (Some("double"), Some(1), Some(3)),
        "{listed}"
    );

    // A failed invocation exits as it did; a missing handler is refused with the fix.
    let thrower = vulcan(
        url,
        &[
            "fn",
            "deploy",
            "boom",
            "--runtime",
            "node",
            "--code",
            "export default () => { throw new Error('bang') }",
        ],
    );
    assert!(thrower.status.success());
    let failed = vulcan(url, &["fn", "invoke", "boom"]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(stderr(&failed).contains("bang"), "{}", stderr(&failed));
    let script = vulcan(
        url,
        &[
            "fn",
            "deploy",
            "plain",
            "--runtime",
            "node",
            "--code",
            "console.log(1)",
        ],
    );
    assert_eq!(script.status.code(), Some(125));
    assert!(
        stderr(&script).contains("\"reuse\": false"),
        "{}",
        stderr(&script)
    );
    let fresh = vulcan(
        url,
        &[
            "fn",
            "deploy",
            "plain",
            "--runtime",
            "node",
            "--code",
            "console.log(1)",
            "--no-reuse",
        ],
    );
    assert!(fresh.status.success(), "{}", stderr(&fresh));

    let removed = vulcan(url, &["fn", "rm", "double"]);
    assert!(removed.status.success());
    let gone = vulcan(url, &["fn", "invoke", "double"]);
    assert_eq!(gone.status.code(), Some(125));
    assert!(stderr(&gone).contains("404"), "{}", stderr(&gone));
}

#[test]
fn secrets_are_set_from_stdin_and_schedules_added_listed_toggled_and_removed() {
    let server = Server::start(&[]);
    let url = server.base.as_str();
    let mut set = Command::new(env!("CARGO_BIN_EXE_vulcan"))
        .args(["secrets", "set", "API_TOKEN"])
        .env("VULCAN_URL", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    set.stdin
        .take()
        .unwrap()
        .write_all(b"tok-from-stdin\n")
        .unwrap();
    let out = set.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "API_TOKEN is at version 1\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = stdout(&vulcan(url, &["secrets", "ls"]));
    assert!(
        listed.contains("API_TOKEN") && !listed.contains("tok-from-stdin"),
        "{listed}"
    );
    let run = vulcan(
        url,
        &[
            "run",
            "--runtime",
            "node",
            "--secret",
            "API_TOKEN",
            "--code",
            "export default () => Deno.env.get('API_TOKEN').length",
        ],
    );
    assert_eq!(stdout(&run), "14\n", "{}", stderr(&run));

    let deployed = vulcan(
        url,
        &[
            "fn",
            "deploy",
            "noop",
            "--runtime",
            "node",
            "--code",
            "export default () => 1",
        ],
    );
    assert!(deployed.status.success(), "{}", stderr(&deployed));
    let added = json_of(&vulcan(
        url,
        &[
            "schedules",
            "add",
            "noop",
            "--cron",
            "0 0 1 1 *",
            "--input",
            "{\"x\":1}",
            "-o",
            "json",
        ],
    ));
    let id = added["id"].as_str().unwrap().to_owned();
    assert!(
        added["next_run_at"]
            .as_str()
            .unwrap()
            .contains("-01-01T00:00:00"),
        "{added}"
    );
    let table = stdout(&vulcan(url, &["schedules", "ls"]));
    assert!(
        table.contains(&id) && table.contains("0 0 1 1 *"),
        "{table}"
    );
    let off = vulcan(url, &["schedules", "disable", &id]);
    assert_eq!(stdout(&off), format!("{id} disabled\n"));
    let on = vulcan(url, &["schedules", "enable", &id]);
    assert!(
        stdout(&on).starts_with(&format!("{id} enabled: next at ")),
        "{}",
        stdout(&on)
    );
    let bad = vulcan(url, &["schedules", "add", "noop", "--cron", "nope"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(stderr(&bad).contains("400"), "{}", stderr(&bad));
    assert!(vulcan(url, &["schedules", "rm", &id]).status.success());
    assert_eq!(
        json_of(&vulcan(url, &["schedules", "ls", "-o", "json"])),
        serde_json::json!([])
    );
}
