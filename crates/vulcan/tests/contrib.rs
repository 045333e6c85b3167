//! What ships beside the binary for operators: the systemd unit, the Grafana dashboard,
//! the Prometheus alert rules and the man pages, each checked by the tool that will
//! read it (systemd-analyze, promtool, man) and against a running server.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{repo, Server};
use serde_json::Value;

fn vulcan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vulcan"))
        .args(args)
        .output()
        .expect("run vulcan")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `promtool` as scripts/setup.sh installs it (from Debian's prometheus package).
fn promtool() -> PathBuf {
    let path = repo(".tools/prometheus/promtool");
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}

/// Every sample name the server can export, from its `# TYPE` lines: a counter `x` is
/// sampled as `x_total`, a histogram as `x_bucket`, `x_sum` and `x_count`.
fn exported_names(server: &Server) -> BTreeSet<String> {
    let metrics = ureq::get(&server.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("#") || words.next() != Some("TYPE") {
            continue;
        }
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// The `vulcan_*` names a text uses.
fn vulcan_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("vulcan_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The dashboard's panels and their queries (`expr` of each target).
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{panel}");
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().expect("a title").to_owned();
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} queries nothing");
        for target in targets {
            assert_eq!(target["datasource"]["type"], "prometheus", "{title}");
            let expr = target["expr"].as_str().expect("an expr");
            queries.push((title.clone(), expr.to_owned()));
        }
    }
    queries
}

#[test]
fn the_dashboard_and_the_alerts_query_only_metrics_the_server_exports() {
    let server = Server::start(&[]);
    // A family shows in /metrics once it has a series: serve a request and run a workload.
    let ran = server.run(common::sum_workload(1, 2));
    assert_eq!(ran["status"], "completed", "{ran}");
    // And a queue with a message: its families have a series once there is one.
    let (status, q) = server.post("/v1/queues", &serde_json::json!({"name": "jobs"}));
    assert_eq!(status, 201, "{q}");
    let (status, m) = server.post("/v1/queues/jobs/messages", &serde_json::json!({"body": 1}));
    assert_eq!(status, 201, "{m}");
    let exported = exported_names(&server);
    assert!(
        exported.contains("vulcan_http_requests_total"),
        "{exported:?}"
    );
    // Every family is in the reference's table of metrics.
    let reference = std::fs::read_to_string(repo("docs/operations.md")).unwrap();
    let listed = vulcan_names(&reference);
    for name in &exported {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            listed.contains(name) || listed.contains(family),
            "{name} is exported but not in docs/operations.md's metrics"
        );
    }

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("contrib/grafana/vulcan.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    assert_eq!(dashboard["title"], "Vulcan");
    assert!(dashboard["uid"].is_string() && dashboard["schemaVersion"].is_u64());
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 15, "{} queries", queries.len());
    let mut used = BTreeSet::new();
    for (title, expr) in &queries {
        let names = vulcan_names(expr);
        assert!(!names.is_empty(), "panel {title:?}: {expr}");
        for name in names {
            assert!(
                exported.contains(&name),
                "panel {title:?} queries {name}, which /metrics does not export"
            );
            used.insert(name);
        }
    }
    // What the dashboard promises to show is all there.
    for needed in [
        "vulcan_http_requests_total",
        "vulcan_http_request_duration_seconds_bucket",
        "vulcan_workloads_finished_total",
        "vulcan_workload_duration_seconds_bucket",
        "vulcan_workload_preparation_seconds_bucket",
        "vulcan_queue_pending",
        "vulcan_nodes",
        "vulcan_queue_depth",
        "vulcan_queue_dead_lettered",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard does not show {needed}"
        );
    }

    // Every query is valid PromQL: promtool parses them as recording rules.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("dashboard-rules.yml");
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in queries.iter().enumerate() {
        let expr = expr.replace("$__rate_interval", "5m");
        yaml.push_str(&format!(
            "      - record: vulcan:dashboard_{i}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    std::fs::write(&rules, yaml).unwrap();
    let checked = Command::new(promtool())
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );

    let alerts = repo("contrib/prometheus/alerts.yml");
    let checked = Command::new(promtool())
        .args(["check", "rules"])
        .arg(&alerts)
        .output()
        .unwrap();
    let out = text(&checked.stdout);
    assert!(checked.status.success(), "{out}{}", text(&checked.stderr));
    assert!(out.contains("SUCCESS: 7 rules found"), "{out}");
    let alert_text = std::fs::read_to_string(&alerts).unwrap();
    for name in vulcan_names(&alert_text) {
        assert!(
            exported.contains(&name),
            "an alert uses {name}, which /metrics does not export"
        );
    }
    for alert in [
        "VulcanBackendUnavailable",
        "VulcanNodeLost",
        "VulcanQueueNearLimit",
        "VulcanHighErrorRate",
        "VulcanDeadLetterQueueGrowing",
        "VulcanCallbacksGivenUp",
    ] {
        assert!(alert_text.contains(&format!("alert: {alert}")), "{alert}");
    }
}

/// Every command path under `vulcan`, from each command's `--help`.
fn commands(path: &mut Vec<String>, found: &mut Vec<Vec<String>>) {
    found.push(path.clone());
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let help = text(&vulcan(&args).stdout);
    let Some((_, listed)) = help.split_once("Commands:\n") else {
        return;
    };
    for line in listed.lines() {
        if !line.starts_with("  ") {
            break;
        }
        let name = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        if name.is_empty() || name == "help" {
            continue;
        }
        path.push(name);
        commands(path, found);
        path.pop();
    }
}

#[test]
fn man_writes_a_page_for_every_command() {
    let mut found = Vec::new();
    commands(&mut Vec::new(), &mut found);
    assert!(found.len() > 30, "{found:?}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let written = vulcan(&["man", out.to_str().unwrap()]);
    assert!(written.status.success(), "{}", text(&written.stderr));
    let pages = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(pages, found.len(), "{found:?}");
    for path in &found {
        let name = std::iter::once("vulcan".to_owned())
            .chain(path.iter().cloned())
            .collect::<Vec<_>>()
            .join("-");
        let page = out.join(format!("{name}.1"));
        let roff = std::fs::read_to_string(&page)
            .unwrap_or_else(|e| panic!("no page for `{}`: {e}", path.join(" ")));
        assert!(roff.contains(".TH"), "{name}");
        // `man` reads it: the page renders, naming the command.
        let rendered = Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .expect("man");
        let shown = text(&rendered.stdout);
        assert!(
            rendered.status.success(),
            "{name}: {}",
            text(&rendered.stderr)
        );
        assert!(shown.contains(&name), "{name}: {shown}");
    }
    let deploy = std::fs::read_to_string(out.join("vulcan-fn-deploy.1")).unwrap();
    assert!(deploy.contains("secret"), "{deploy}");
}

#[test]
fn the_systemd_unit_verifies_with_the_binary_and_its_man_pages() {
    let unit = std::fs::read_to_string(repo("contrib/systemd/vulcan.service")).unwrap();
    for needed in [
        "ExecStart=/usr/local/bin/vulcan serve",
        "Restart=on-failure",
        "StateDirectory=vulcan",
        "Delegate=yes",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    // The unit as installed, with the binary where this build put it (the README installs
    // it as /usr/local/bin/vulcan), and the pages `vulcan man` writes on the MANPATH.
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man");
    assert!(vulcan(&["man", man.join("man1").to_str().unwrap()])
        .status
        .success());
    let here = unit.replace(
        "ExecStart=/usr/local/bin/vulcan",
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_vulcan")),
    );
    let path = dir.path().join("vulcan.service");
    std::fs::write(&path, here).unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("MANPATH", &man)
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let said = format!("{}{}", text(&verified.stdout), text(&verified.stderr));
    assert!(verified.status.success(), "{said}");
    assert!(
        !said.contains("vulcan.service"),
        "systemd-analyze has something to say about the unit: {said}"
    );
}

#[test]
fn version_names_the_release_and_the_commit() {
    let out = vulcan(&["--version"]);
    let version = text(&out.stdout);
    assert!(
        version.starts_with(&format!("vulcan {} (", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = text(&head.stdout).trim().to_owned();
    assert_eq!(head.len(), 12, "the tests run in a git checkout");
    assert!(
        version.contains(&format!("({head})")),
        "{version} vs {head}"
    );
}

/// `VULCAN_*` names in `text`.
fn settings_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("VULCAN_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if name.len() > "VULCAN_".len() && !name.ends_with('_') {
            names.insert(name);
        }
    }
    names
}

/// The text of every file under `dir` whose name ends with one of `exts`.
fn sources(dir: &Path, exts: &[&str], out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if entry.file_name() != "target"
                && !entry.file_name().to_string_lossy().starts_with('.')
            {
                sources(&path, exts, out);
            }
        } else if exts.iter().any(|e| path.to_string_lossy().ends_with(e)) {
            out.push((
                path.clone(),
                std::fs::read_to_string(&path).unwrap_or_default(),
            ));
        }
    }
}

#[test]
fn every_setting_the_server_reads_is_documented_and_every_documented_one_is_read() {
    let mut code = Vec::new();
    sources(&repo("crates"), &[".rs"], &mut code);
    // What the binary reads: its settings (clap's `env = "…"`) and direct reads.
    let mut read = BTreeSet::new();
    let mut anywhere = BTreeSet::new();
    for (path, text) in &code {
        anywhere.extend(settings_in(text));
        let in_tests = path.components().any(|c| {
            let c = c.as_os_str();
            c == "tests" || c == "benches"
        });
        if in_tests {
            continue;
        }
        for marker in ["env = \"VULCAN_", "var(\"VULCAN_", "var_os(\"VULCAN_"] {
            for (at, _) in text.match_indices(marker) {
                read.extend(
                    settings_in(
                        &text[at..at + marker.len() + 64.min(text.len() - at - marker.len())],
                    )
                    .into_iter()
                    .take(1),
                );
            }
        }
    }
    let mut scripts = Vec::new();
    sources(&repo("scripts"), &[".sh"], &mut scripts);
    sources(
        &repo("contrib"),
        &[".service", ".yml", ".json"],
        &mut scripts,
    );
    for (_, text) in &scripts {
        anywhere.extend(settings_in(text));
    }
    let mut docs = vec![(
        repo("README.md"),
        std::fs::read_to_string(repo("README.md")).unwrap(),
    )];
    sources(&repo("docs"), &[".md"], &mut docs);
    let documented: BTreeSet<String> = docs.iter().flat_map(|(_, t)| settings_in(t)).collect();
    assert!(read.len() > 40, "found only {read:?}");
    let undocumented: Vec<_> = read.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "read by the server but documented nowhere: {undocumented:?}"
    );
    let unknown: Vec<_> = documented.difference(&anywhere).collect();
    assert!(
        unknown.is_empty(),
        "documented but read by nothing: {unknown:?}"
    );
}

/// A heading's anchor, as GitHub makes it.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn the_readme_and_the_docs_link_only_to_pages_and_headings_that_exist() {
    let mut pages = vec![(
        repo("README.md"),
        std::fs::read_to_string(repo("README.md")).unwrap(),
    )];
    sources(&repo("docs"), &[".md"], &mut pages);
    assert!(pages.len() >= 10, "the reference pages are in docs/");
    let anchors = |path: &Path| -> BTreeSet<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with('#'))
            .map(|l| anchor(l.trim_start_matches('#')))
            .collect()
    };
    let mut broken = Vec::new();
    for (page, text) in &pages {
        for (at, _) in text.match_indices("](") {
            let Some(end) = text[at + 2..].find(')') else {
                continue;
            };
            let target = &text[at + 2..at + 2 + end];
            if target.contains("://") || target.contains(' ') {
                continue;
            }
            let (file, heading) = target.split_once('#').unwrap_or((target, ""));
            let path = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            if !path.exists() || (!heading.is_empty() && !anchors(&path).contains(heading)) {
                broken.push(format!("{}: {target}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:#?}");
}
