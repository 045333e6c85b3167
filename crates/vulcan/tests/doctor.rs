//! `vulcan doctor` against this host as the setup left it (real Deno, runsc, QEMU and guest
//! assets), with a tier taken away, and with a real PostgreSQL server; and the summary
//! `vulcan serve` logs at start.

mod common;

use std::process::Command;

use common::Server;
use serde_json::Value;
use vulcan_store::testing::PgServer;

/// `vulcan doctor -o json` with `env` and `args`: its exit code and report.
fn doctor(env: &[(&str, &str)], args: &[&str]) -> (i32, Value) {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(common::vulcan_bin())
        .args(["doctor", "-o", "json"])
        .args(args)
        .env("VULCAN_DATA_DIR", data.path())
        .env_remove("VULCAN_DATABASE_URL")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn check<'a>(report: &'a Value, tier: &str, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["tier"] == tier && c["check"] == name)
        .unwrap_or_else(|| panic!("no {tier} {name} check in {report}"))
}

#[test]
fn every_tier_the_setup_installed_can_run_and_a_missing_one_says_how_to_fix_it() {
    let (code, report) = doctor(&[], &["--require", "isolate,gvisor,microvm"]);
    assert_eq!(code, 0, "{report:#}");
    for tier in ["isolate", "gvisor", "microvm"] {
        assert_eq!(report["tiers"][tier], "ok", "{report:#}");
        assert_eq!(check(&report, tier, "program")["state"], "ok", "{report:#}");
    }
    assert!(check(&report, "isolate", "program")["detail"]
        .as_str()
        .unwrap()
        .contains("deno"));
    assert!(check(&report, "gvisor", "program")["detail"]
        .as_str()
        .unwrap()
        .contains("runsc version"));
    // TCG here (this host's KVM boots no standard guest): it runs, with a warning and a fix.
    let accel = check(&report, "microvm", "accelerator");
    assert!(
        accel["state"] == "ok" || accel["fix"].is_string(),
        "{accel}"
    );
    assert!(check(&report, "database", "store")["detail"]
        .as_str()
        .unwrap()
        .contains("SQLite"));

    // No QEMU: microVMs cannot run, the fix says what to install; isolates still can.
    let gone = [("VULCAN_QEMU_BIN", "/nonexistent/qemu")];
    let (code, report) = doctor(&gone, &["--require", "microvm"]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["tiers"]["microvm"], "fail");
    let qemu = check(&report, "microvm", "program");
    assert_eq!(qemu["state"], "fail");
    assert!(
        qemu["fix"].as_str().unwrap().contains("qemu-system-x86"),
        "{qemu}"
    );
    assert_eq!(doctor(&gone, &["--require", "isolate"]).0, 0);
    assert_eq!(
        doctor(&gone, &[]).0,
        0,
        "nothing required: a report, not a verdict"
    );
    // No guest assets: the fix names the script that builds them.
    let (_, report) = doctor(&[("VULCAN_MICROVM_ASSETS", "/nonexistent")], &[]);
    let guest = check(&report, "microvm", "guest");
    assert!(
        guest["fix"].as_str().unwrap().contains("scripts/guest.sh"),
        "{guest}"
    );
}

#[test]
fn the_database_is_reached_and_its_version_and_clock_reported() {
    let pg = PgServer::start().unwrap();
    let url = pg.database().unwrap();
    let (code, report) = doctor(&[("VULCAN_DATABASE_URL", &url)], &["--require", "isolate"]);
    assert_eq!(code, 0, "{report:#}");
    let store = check(&report, "database", "store");
    assert_eq!(store["state"], "ok", "{store}");
    let detail = store["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("PostgreSQL 15") && detail.contains("clock"),
        "{detail}"
    );

    // A database that does not answer stops every tier.
    let port = common::free_port();
    let closed = format!("postgres://postgres@127.0.0.1:{port}/vulcan");
    let (code, report) = doctor(
        &[("VULCAN_DATABASE_URL", &closed)],
        &["--require", "isolate"],
    );
    assert_eq!(code, 1, "{report:#}");
    let store = check(&report, "database", "store");
    assert_eq!(store["state"], "fail", "{store}");
    assert!(
        store["fix"]
            .as_str()
            .unwrap()
            .contains("VULCAN_DATABASE_URL"),
        "{store}"
    );
}

#[test]
fn serve_logs_the_same_checks_when_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let server = Server::start_logged(
        &[("VULCAN_LOG_LEVEL", "info"), ("VULCAN_LOG_FORMAT", "json")],
        &log,
    );
    let (status, _) = server.get("/healthz");
    assert_eq!(status, 200);
    let text = std::fs::read_to_string(&log).unwrap();
    let checks: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "doctor")
        .collect();
    for tier in ["host", "isolate", "gvisor", "microvm"] {
        assert!(
            checks.iter().any(|c| c["fields"]["tier"] == tier),
            "no doctor line for {tier} in:\n{text}"
        );
    }
    // What is not ok comes with its fix; only what cannot run is a warning.
    for c in &checks {
        let state = &c["fields"]["state"];
        assert!(state == "ok" || c["fields"]["fix"].is_string(), "{c}");
        assert_eq!(c["level"] == "WARN", state == "fail", "{c}");
    }
}
