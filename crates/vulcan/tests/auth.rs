//! Authentication, roles, tenants, audit and limits: real HTTP against the real binary,
//! with auth on, a real SQLite file and real Deno isolates.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Server;
use serde_json::{json, Value};

fn secured(extra: &[(&str, &str)]) -> (Server, String) {
    let mut env = vec![("VULCAN_AUTH", "on")];
    env.extend_from_slice(extra);
    let server = Server::start(&env);
    let key = std::fs::read_to_string(server.data_dir.join("admin.key"))
        .expect("the first admin key is written to <data dir>/admin.key")
        .trim()
        .to_owned();
    (server, key)
}

/// (status, body, Retry-After) of one request with `key` (as X-API-Key).
fn call(
    server: &Server,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value, Option<String>) {
    let mut req = ureq::request(method, &server.url(path));
    if let Some(k) = key {
        req = req.set("X-API-Key", k);
    }
    let result = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    let retry = resp.header("retry-after").map(str::to_owned);
    let text = resp.into_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        retry,
    )
}

fn create_key(
    server: &Server,
    admin: &str,
    name: &str,
    role: &str,
    tenant: &str,
) -> (String, String) {
    let (status, body, _) = call(
        server,
        "POST",
        "/v1/keys",
        Some(admin),
        Some(&json!({"name": name, "role": role, "tenant": tenant})),
    );
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["key"].as_str().unwrap().to_owned(),
    )
}

fn sum() -> Value {
    json!({"runtime": "node", "code": "export default (i) => i.a + i.b", "input": {"a": 1, "b": 2}})
}

#[test]
fn no_key_is_401_a_wrong_role_is_403_and_revocation_holds_at_once() {
    let (server, admin) = secured(&[]);
    let mode = std::fs::metadata(server.data_dir.join("admin.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the admin key file is readable by its owner only"
    );

    let (status, body, _) = call(&server, "GET", "/v1/workloads", None, None);
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("X-API-Key"));
    assert_eq!(
        call(&server, "GET", "/v1/workloads", Some("vk_nope_nope"), None).0,
        401
    );
    assert_eq!(
        call(&server, "GET", "/healthz", None, None).0,
        200,
        "health stays open"
    );

    let (_, viewer) = create_key(&server, &admin, "ro", "viewer", "team-a");
    let (status, body, _) = call(
        &server,
        "POST",
        "/v1/workloads",
        Some(&viewer),
        Some(&sum()),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("workloads:create"),
        "{body}"
    );
    assert_eq!(
        call(&server, "GET", "/v1/workloads", Some(&viewer), None).0,
        200
    );
    assert_eq!(call(&server, "GET", "/v1/keys", Some(&viewer), None).0, 403);

    let (dev_id, dev) = create_key(&server, &admin, "ci", "developer", "team-a");
    // Bearer works as well as X-API-Key.
    let resp = ureq::post(&server.url("/v1/workloads"))
        .set("Authorization", &format!("Bearer {dev}"))
        .send_json(sum())
        .unwrap();
    let w: Value = resp.into_json().unwrap();
    assert_eq!(
        (
            w["status"].as_str(),
            w["output"].as_str(),
            w["tenant"].as_str()
        ),
        (Some("completed"), Some("3"), Some("team-a"))
    );
    let (status, body, _) = call(
        &server,
        "POST",
        "/v1/images",
        Some(&dev),
        Some(&json!({"reference": "127.0.0.1:1/x:1"})),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("images:write"));

    assert_eq!(
        call(
            &server,
            "DELETE",
            &format!("/v1/keys/{dev_id}"),
            Some(&admin),
            None
        )
        .0,
        200
    );
    let (status, body, _) = call(&server, "GET", "/v1/workloads", Some(&dev), None);
    assert_eq!(
        status, 401,
        "a revoked key fails on its next request: {body}"
    );
    assert!(body["error"].as_str().unwrap().contains("revoked"));

    let (status, body, _) = call(
        &server,
        "POST",
        "/v1/keys",
        Some(&admin),
        Some(&json!({"name": "x", "role": "root", "tenant": "a"})),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body, _) = call(
        &server,
        "POST",
        "/v1/keys",
        Some(&admin),
        Some(&json!({"name": "soon", "role": "viewer", "tenant": "a", "expires_in_s": 1})),
    );
    assert_eq!(status, 201, "{body}");
    std::thread::sleep(Duration::from_millis(1100));
    let (status, body, _) = call(
        &server,
        "GET",
        "/v1/workloads",
        Some(body["key"].as_str().unwrap()),
        None,
    );
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("expired"));
}

#[test]
fn tenants_cannot_see_or_touch_each_others_workloads() {
    let (server, admin) = secured(&[]);
    let (_, a) = create_key(&server, &admin, "a", "developer", "tenant-a");
    let (_, b) = create_key(&server, &admin, "b", "developer", "tenant-b");
    let (status, w, _) = call(
        &server,
        "POST",
        "/v1/workloads/async",
        Some(&a),
        Some(&json!({"runtime": "node",
        "code": "console.log('secret'); await new Promise(r => setTimeout(r, 20000));"})),
    );
    assert_eq!(status, 202, "{w}");
    let id = w["id"].as_str().unwrap();

    for (method, path) in [
        ("GET", format!("/v1/workloads/{id}")),
        ("GET", format!("/v1/workloads/{id}/logs/history")),
        ("GET", format!("/v1/workloads/{id}/logs")),
        ("DELETE", format!("/v1/workloads/{id}")),
    ] {
        let (status, body, _) = call(&server, method, &path, Some(&b), None);
        assert_eq!(status, 404, "{method} {path} as another tenant: {body}");
        assert_eq!(
            body["error"],
            format!("workload {id} not found"),
            "no hint that it exists"
        );
    }
    let (_, mine, _) = call(&server, "GET", "/v1/workloads", Some(&b), None);
    assert_eq!(mine["total"], 0);
    let (_, stats_b, _) = call(&server, "GET", "/v1/stats", Some(&b), None);
    assert_eq!(stats_b["total"], 0);
    let (_, stats_a, _) = call(&server, "GET", "/v1/stats", Some(&a), None);
    assert_eq!(stats_a["total"], 1);
    // A node's host addresses are the operator's to see, not a tenant's.
    let (_, nodes, _) = call(&server, "GET", "/v1/nodes", Some(&admin), None);
    assert!(
        !nodes[0]["addresses"].as_array().unwrap().is_empty(),
        "{nodes}"
    );
    let (_, nodes, _) = call(&server, "GET", "/v1/nodes", Some(&b), None);
    assert_eq!(nodes[0]["addresses"], json!([]), "{nodes}");

    let (status, seen, _) = call(
        &server,
        "GET",
        &format!("/v1/workloads/{id}"),
        Some(&admin),
        None,
    );
    assert_eq!(
        (status, seen["tenant"].as_str()),
        (200, Some("tenant-a")),
        "admins see every tenant"
    );
    let (status, killed, _) = call(
        &server,
        "DELETE",
        &format!("/v1/workloads/{id}"),
        Some(&a),
        None,
    );
    assert_eq!((status, killed["status"].as_str()), (200, Some("killed")));
}

#[test]
fn keys_cannot_be_recovered_from_the_database() {
    let (server, admin) = secured(&[]);
    let (_, key) = create_key(&server, &admin, "k", "developer", "t");
    assert_eq!(
        call(&server, "GET", "/v1/workloads", Some(&key), None).0,
        200
    );
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&server.data_dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("vulcan.db") {
            bytes.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    assert!(!bytes.is_empty());
    for secret in [&key, &admin] {
        let tail = secret.rsplit('_').next().unwrap();
        let found = bytes.windows(tail.len()).any(|w| w == tail.as_bytes());
        assert!(!found, "a key's secret is stored in the database files");
    }
}

#[test]
fn auth_off_is_refused_beyond_loopback_and_the_admin_key_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vulcan"))
        .arg("serve")
        .env("VULCAN_AUTH", "off")
        .env("VULCAN_LISTEN_ADDR", "0.0.0.0:0")
        .env("VULCAN_DATA_DIR", dir.path())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("VULCAN_AUTH=off is only allowed on a loopback address"),
        "{err}"
    );

    let (server, _) = {
        let server = Server::start(&[
            ("VULCAN_AUTH", "on"),
            ("VULCAN_ADMIN_KEY", "an-operator-chosen-admin-key-0123"),
        ]);
        (server, ())
    };
    assert!(
        !server.data_dir.join("admin.key").exists(),
        "no key file when the key comes from the environment"
    );
    assert_eq!(
        call(
            &server,
            "GET",
            "/v1/keys",
            Some("an-operator-chosen-admin-key-0123"),
            None
        )
        .0,
        200
    );
    assert_eq!(
        call(
            &server,
            "GET",
            "/v1/keys",
            Some("an-operator-chosen-admin-key-0124"),
            None
        )
        .0,
        401
    );
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// `n` submissions of `body` with `key`, released at once by a barrier: (status,
/// Retry-After, id) of each.
fn at_once(
    server: &Server,
    n: usize,
    key: &str,
    body: &Value,
) -> Vec<(u16, Option<String>, Option<String>)> {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let (status, body, retry) =
                        call(server, "POST", "/v1/workloads/async", Some(key), Some(body));
                    (status, retry, body["id"].as_str().map(str::to_owned))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn a_thousand_concurrent_submissions_are_accepted_throttled_or_shed_and_none_is_lost() {
    let (server, admin) = secured(&[
        ("VULCAN_TENANT_MAX_CONCURRENT", "40"),
        ("VULCAN_TENANT_PER_MINUTE", "2000"),
        ("VULCAN_QUEUE_LIMIT", "24"),
        ("VULCAN_ISOLATE_CONCURRENCY", "4"),
    ]);
    let (_, key) = create_key(&server, &admin, "load", "developer", "load");
    let (_, other) = create_key(&server, &admin, "other", "developer", "other");

    // Throttled: a tenant at its quota of one workload at once gets 429 for each of 100
    // concurrent submissions, while the queue has room.
    let tight = json!({"max_concurrent": 1, "per_minute": 600, "max_cpus": 4, "max_mem_mb": 1024});
    let set = call(
        &server,
        "PUT",
        "/v1/tenants/other/quota",
        Some(&admin),
        Some(&tight),
    );
    assert_eq!(set.0, 200);
    let holding =
        json!({"runtime": "node", "code": "await new Promise(r => setTimeout(r, 60000));"});
    let (status, held, _) = call(
        &server,
        "POST",
        "/v1/workloads/async",
        Some(&other),
        Some(&holding),
    );
    assert_eq!(status, 202, "{held}");
    let throttled = at_once(&server, 100, &other, &sum());
    for (status, retry, _) in &throttled {
        assert_eq!(*status, 429, "over its quota of one at once");
        assert!(
            retry.as_deref().is_some_and(|r| r.parse::<u64>().is_ok()),
            "429 without Retry-After"
        );
    }
    let id = held["id"].as_str().unwrap();
    assert_eq!(
        call(
            &server,
            "DELETE",
            &format!("/v1/workloads/{id}"),
            Some(&admin),
            None
        )
        .0,
        200
    );

    // Shed: a thousand at once from one tenant fill the isolate backend's four slots and
    // queue of 24; the rest get 503, and nothing is queued past the limit.
    let results = at_once(&server, 1000, &key, &sum());
    let accepted: Vec<&String> = results
        .iter()
        .filter(|r| r.0 == 202)
        .filter_map(|r| r.2.as_ref())
        .collect();
    let count = |code: u16| results.iter().filter(|r| r.0 == code).count();
    for (status, retry, _) in &results {
        assert!([202, 503].contains(status), "unexpected status {status}");
        if *status == 503 {
            assert!(
                retry.as_deref().is_some_and(|r| r.parse::<u64>().is_ok()),
                "503 without Retry-After"
            );
        }
    }
    assert!(
        !accepted.is_empty() && count(503) > 0,
        "202: {}, 503: {}",
        accepted.len(),
        count(503)
    );
    let rss = rss_kb(server.child.id());
    eprintln!(
        "1000 submissions: {} accepted, {} shed (503); 100 over quota (429); server RSS {rss} kB",
        accepted.len(),
        count(503)
    );
    assert!(
        rss < 400 * 1024,
        "the server's memory stays bounded: {rss} kB"
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    for id in &accepted {
        loop {
            let (_, w, _) = call(
                &server,
                "GET",
                &format!("/v1/workloads/{id}"),
                Some(&admin),
                None,
            );
            if w["status"] == "completed" {
                break;
            }
            assert!(
                ["pending", "running"].contains(&w["status"].as_str().unwrap()),
                "{w}"
            );
            assert!(std::time::Instant::now() < deadline, "{id} did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let (_, all, _) = call(&server, "GET", "/v1/workloads?limit=1", Some(&admin), None);
    assert_eq!(
        all["total"].as_u64().unwrap() as usize,
        accepted.len() + 1,
        "every accepted workload is stored (and the one held), none more"
    );
    assert_eq!(call(&server, "GET", "/healthz", None, None).0, 200);
}

#[test]
fn every_mutation_is_audited_once() {
    let (server, admin) = secured(&[]);
    let (dev_id, dev) = create_key(&server, &admin, "dev", "developer", "t1");
    let (_, w, _) = call(&server, "POST", "/v1/workloads", Some(&dev), Some(&sum()));
    let sync_id = w["id"].as_str().unwrap().to_owned();
    let (_, w, _) = call(
        &server,
        "POST",
        "/v1/workloads/async",
        Some(&dev),
        Some(&json!({"runtime": "node",
        "code": "await new Promise(r => setTimeout(r, 20000));"})),
    );
    let async_id = w["id"].as_str().unwrap().to_owned();
    assert_eq!(
        call(
            &server,
            "DELETE",
            &format!("/v1/workloads/{async_id}"),
            Some(&dev),
            None
        )
        .0,
        200
    );
    assert_eq!(
        call(
            &server,
            "POST",
            "/v1/images",
            Some(&dev),
            Some(&json!({"reference": "x"}))
        )
        .0,
        403
    );
    assert_eq!(
        call(
            &server,
            "POST",
            "/v1/images",
            Some(&admin),
            Some(&json!({"reference": "Bad Ref"}))
        )
        .0,
        400
    );
    let quota = json!({"max_concurrent": 5, "per_minute": 50, "max_cpus": 2, "max_mem_mb": 512});
    assert_eq!(
        call(
            &server,
            "PUT",
            "/v1/tenants/t1/quota",
            Some(&admin),
            Some(&quota)
        )
        .0,
        200
    );
    assert_eq!(
        call(&server, "GET", "/v1/tenants/t1/quota", Some(&dev), None).1["max_concurrent"],
        5
    );
    assert_eq!(
        call(&server, "GET", "/v1/workloads", Some("vk_bad_key"), None).0,
        401
    );
    assert_eq!(
        call(
            &server,
            "DELETE",
            &format!("/v1/keys/{dev_id}"),
            Some(&admin),
            None
        )
        .0,
        200
    );
    assert_eq!(
        call(&server, "GET", "/v1/audit", Some(&dev), None).0,
        401,
        "revoked"
    );

    let (status, log, _) = call(&server, "GET", "/v1/audit?limit=1000", Some(&admin), None);
    assert_eq!(status, 200, "{log}");
    let entries = log.as_array().unwrap();
    let find = |action: &str, target: &str| {
        entries
            .iter()
            .filter(|e| {
                e["action"] == action && e["target"].as_str().is_some_and(|t| t.contains(target))
            })
            .collect::<Vec<_>>()
    };
    let expect_once = |action: &str, target: &str, outcome: &str| {
        let hits: Vec<_> = find(action, target)
            .into_iter()
            .filter(|e| e["outcome"] == outcome)
            .collect();
        assert_eq!(hits.len(), 1, "{action} {target} {outcome}: {entries:?}");
    };
    expect_once("key.create", &dev_id, "ok");
    expect_once("workload.create", &sync_id, "ok");
    expect_once("workload.create", &async_id, "ok");
    expect_once("workload.kill", &async_id, "ok");
    // Refused before the body was read: the target is the route.
    expect_once("image.pull", "/v1/images", "denied");
    expect_once("image.pull", "/v1/images", "failed");
    let denied = find("image.pull", "/v1/images")
        .into_iter()
        .find(|e| e["outcome"] == "denied")
        .unwrap();
    assert!(
        denied["detail"].as_str().unwrap().contains("images:write"),
        "{denied}"
    );
    expect_once("quota.set", "t1", "ok");
    expect_once("key.revoke", &dev_id, "ok");
    // Failed logins are recorded in aggregate: per source address and minute, with a
    // count (two rows if the minute turned between the two attempts).
    let failures = find("auth.failure", "127.0.0.1");
    let counted: u64 = failures.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 2, "the bad key and the revoked key: {failures:?}");
    let details: String = failures
        .iter()
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert!(
        details.contains("GET /v1/workloads: the API key is not valid"),
        "{details}"
    );
    assert!(
        details.contains("GET /v1/audit: the API key has been revoked")
            && details.contains(&dev_id),
        "{details}"
    );
    let workload_creates = entries
        .iter()
        .filter(|e| e["action"] == "workload.create")
        .count();
    assert_eq!(workload_creates, 2, "each mutation once");
    let by_actor = call(
        &server,
        "GET",
        &format!("/v1/audit?actor={dev_id}&action=workload.kill"),
        Some(&admin),
        None,
    )
    .1;
    assert_eq!(by_actor.as_array().unwrap().len(), 1);
}

#[test]
fn the_cli_manages_keys_and_takes_them_from_the_flag_or_the_environment() {
    let (server, admin) = secured(&[]);
    let cli = |key: Option<(&str, &str)>, args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vulcan"));
        cmd.args(args)
            .env("VULCAN_URL", &server.base)
            .env_remove("VULCAN_API_KEY");
        if let Some((name, value)) = key {
            cmd.env(name, value);
        }
        cmd.output().unwrap()
    };
    let created = cli(
        None,
        &[
            "--api-key",
            &admin,
            "keys",
            "create",
            "--name",
            "ci",
            "--role",
            "developer",
            "--tenant",
            "team",
            "-o",
            "json",
        ],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );

    let run = cli(
        Some(("VULCAN_API_KEY", key)),
        &[
            "run",
            "--runtime",
            "node",
            "--code",
            "export default () => 'ok'",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout), "\"ok\"\n");
    let anonymous = cli(None, &["ls"]);
    assert_eq!(anonymous.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("401"));

    let listed = cli(Some(("VULCAN_API_KEY", &admin)), &["keys", "ls"]);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        table.contains(id)
            && table.contains("developer")
            && !table.contains(key.rsplit('_').next().unwrap()),
        "{table}"
    );
    assert!(
        cli(Some(("VULCAN_API_KEY", &admin)), &["keys", "revoke", id])
            .status
            .success()
    );
    let after = cli(Some(("VULCAN_API_KEY", key)), &["ls"]);
    assert!(String::from_utf8_lossy(&after.stderr).contains("revoked"));
}

/// Bytes of the database file and its write-ahead log.
fn database_bytes(server: &Server) -> u64 {
    ["vulcan.db", "vulcan.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(server.data_dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn a_flood_of_bad_keys_is_rate_limited_and_costs_the_database_almost_nothing() {
    let (server, admin) = secured(&[]);
    // The admin key is in use before the flood: it keeps working from the same address.
    assert_eq!(call(&server, "GET", "/v1/stats", Some(&admin), None).0, 200);
    let before = database_bytes(&server);
    let stop = std::time::Instant::now() + Duration::from_secs(10);
    let statuses: Vec<Vec<u16>> = std::thread::scope(|s| {
        let flooders: Vec<_> = (0..4)
            .map(|i| {
                let server = &server;
                s.spawn(move || {
                    let mut seen = Vec::new();
                    let mut n = 0u64;
                    while std::time::Instant::now() < stop {
                        let bad = format!("vk_{i:04x}{n:012x}_not-a-secret");
                        seen.push(call(server, "GET", "/v1/workloads", Some(&bad), None).0);
                        n += 1;
                    }
                    seen
                })
            })
            .collect();
        let during = call(&server, "GET", "/v1/stats", Some(&admin), None).0;
        assert_eq!(during, 200, "a key in use is still served during the flood");
        flooders.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<u16> = statuses.into_iter().flatten().collect();
    let (n401, n429) = (
        all.iter().filter(|s| **s == 401).count(),
        all.iter().filter(|s| **s == 429).count(),
    );
    assert_eq!(n401 + n429, all.len(), "only 401 and 429");
    assert!(n429 > 0, "the flood was limited: {n401} × 401");
    // Reading the log writes what was counted; the failures are there, in a few rows.
    let (status, log, _) = call(
        &server,
        "GET",
        "/v1/audit?action=auth.failure&limit=1000",
        Some(&admin),
        None,
    );
    assert_eq!(status, 200);
    let rows = log.as_array().unwrap();
    let counted: u64 = rows.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    // Every attempt is counted (the client library may resend a GET whose pooled
    // connection had closed: the server then saw a few more than were answered).
    assert!(
        (all.len()..all.len() + 8).contains(&(counted as usize)),
        "{counted} counted for {} attempts",
        all.len()
    );
    assert!(
        rows.len() <= 4,
        "one row per source and minute: {}",
        rows.len()
    );
    let grown = database_bytes(&server).saturating_sub(before);
    eprintln!(
        "bad-key flood: {} requests ({n401} × 401, {n429} × 429), {} audit rows, database grew {grown} bytes",
        all.len(),
        rows.len()
    );
    assert!(grown < 5 * 1024 * 1024, "the database grew {grown} bytes");
}

/// A TCP listener that counts the connections made to it.
struct Witness {
    port: u16,
    seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Witness {
    fn start() -> Witness {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(conn);
            }
        });
        Witness { port, seen }
    }

    fn connections(&self) -> usize {
        self.seen.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn no_key_but_an_admins_makes_the_server_dial_a_registry_off_the_allow_list() {
    let witness = Witness::start();
    let closed = common::free_port();
    let allowed = format!("127.0.0.1:{closed}");
    let (server, admin) = secured(&[
        ("VULCAN_ALLOWED_REGISTRIES", allowed.as_str()),
        ("VULCAN_INSECURE_REGISTRIES", allowed.as_str()),
    ]);
    let (_, dev) = create_key(&server, &admin, "dev", "developer", "t");
    let (_, op) = create_key(&server, &admin, "op", "operator", "t");
    let image = format!("127.0.0.1:{}/x:1", witness.port);
    let run = json!({"runtime": "oci", "image": image, "command": ["true"]});

    let (status, body, _) = call(
        &server,
        "POST",
        "/v1/workloads/async",
        Some(&dev),
        Some(&run),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("images:write"),
        "{body}"
    );
    let (status, body, _) = call(
        &server,
        "POST",
        "/v1/workloads/async",
        Some(&op),
        Some(&run),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("VULCAN_ALLOWED_REGISTRIES"),
        "{body}"
    );
    let pull = json!({"reference": image});
    let (status, body, _) = call(&server, "POST", "/v1/images", Some(&op), Some(&pull));
    assert_eq!(status, 403, "{body}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(witness.connections(), 0, "the server opened no connection");

    // An allowed registry that refuses: the operator learns which image failed, never
    // what the network said; the admin gets the detail.
    let refused = json!({"reference": format!("{allowed}/x:1")});
    let (status, body, _) = call(&server, "POST", "/v1/images", Some(&op), Some(&refused));
    assert_eq!(status, 502, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("could not be reached or refused"),
        "{message}"
    );
    assert!(!message.to_lowercase().contains("connection"), "{message}");
    let (status, body, _) = call(&server, "POST", "/v1/images", Some(&admin), Some(&refused));
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach registry"),
        "{body}"
    );
}

/// (status) of `GET /v1/workloads` with `key`, as forwarded for `client` by a proxy.
fn forwarded(server: &Server, client: &str, key: &str) -> u16 {
    let result = ureq::get(&server.url("/v1/workloads"))
        .set("X-API-Key", key)
        .set("X-Forwarded-For", client)
        .call();
    match result {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn other_clients_failed_logins_never_lock_out_a_valid_key() {
    let (server, admin) = secured(&[]);
    let (_, fresh) = create_key(&server, &admin, "fresh", "developer", "t");
    let statuses: Vec<u16> = (0..40)
        .map(|i| {
            let bad = format!("vk_{i:016x}_not-a-secret");
            call(&server, "GET", "/v1/workloads", Some(&bad), None).0
        })
        .collect();
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // The address is over its limit, but a valid key from it, never used before, is served:
    // the limit bounds what bad keys cost, not access.
    let (status, body, _) = call(&server, "GET", "/v1/workloads", Some(&fresh), None);
    assert_eq!(status, 200, "{body}");
    // Bad keys from that address are still refused unchecked.
    let (status, _, retry) = call(&server, "GET", "/v1/workloads", Some("vk_x_y"), None);
    assert_eq!((status, retry.is_some()), (429, true));
}

#[test]
fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let (server, admin) = secured(&[("VULCAN_TRUSTED_PROXIES", "127.0.0.1")]);
    let (_, key) = create_key(&server, &admin, "k", "developer", "t");
    let flood: Vec<u16> = (0..40)
        .map(|i| forwarded(&server, "203.0.113.5", &format!("vk_{i:016x}_bad")))
        .collect();
    assert_eq!(flood.last(), Some(&429), "{flood:?}");
    // Another client behind the same proxy is not held to the first one's failures.
    assert_eq!(forwarded(&server, "203.0.113.6", "vk_0_bad"), 401);
    assert_eq!(forwarded(&server, "203.0.113.6", &key), 200);
    // A forwarded address from a peer that is not a trusted proxy is not believed: on a
    // server trusting no proxy, the two clients are one address.
    let (plain, admin) = secured(&[]);
    let (_, key) = create_key(&plain, &admin, "k", "developer", "t");
    for i in 0..40 {
        forwarded(&plain, "203.0.113.5", &format!("vk_{i:016x}_bad"));
    }
    assert_eq!(forwarded(&plain, "203.0.113.6", "vk_0_bad"), 429);
    assert_eq!(forwarded(&plain, "203.0.113.6", &key), 200);
}

#[test]
fn the_first_admin_key_is_never_written_through_a_file_already_there() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::symlink(&victim, data.join("admin.key")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vulcan"))
        .arg("serve")
        .env("VULCAN_AUTH", "on")
        .env(
            "VULCAN_LISTEN_ADDR",
            format!("127.0.0.1:{}", common::free_port()),
        )
        .env("VULCAN_DATA_DIR", &data)
        .env_remove("VULCAN_ADMIN_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = common::eventually(
        Duration::from_secs(30),
        "the server to refuse to start",
        || child.try_wait().unwrap(),
    );
    assert!(!exited.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("admin.key exists") && err.contains("Remove it"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

/// (status, body) of a request to a server with auth off, with extra headers.
fn raw_local(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = ureq::request(method, &server.url(path));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    common::answer_of(match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    })
}

#[test]
fn with_auth_off_a_web_page_cannot_drive_the_api() {
    let server = Server::start(&[]);
    let body = sum().to_string();
    let json = ("Content-Type", "application/json");
    // DNS rebinding: a name of the page's own that resolves to this machine.
    let (status, e) = raw_local(
        &server,
        "POST",
        "/v1/workloads",
        &[json, ("Host", "evil.example:8080")],
        Some(&body),
    );
    assert_eq!(status, 403, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("loopback host"),
        "{e}"
    );
    let (status, _) = raw_local(
        &server,
        "GET",
        "/v1/workloads",
        &[("Host", "evil.example")],
        None,
    );
    assert_eq!(status, 403);
    // A cross-site request: another origin, or a form's content type.
    let (status, e) = raw_local(
        &server,
        "POST",
        "/v1/workloads",
        &[json, ("Origin", "http://evil.example")],
        Some(&body),
    );
    assert_eq!(status, 403, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("another web origin"),
        "{e}"
    );
    for form in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
    ] {
        let (status, e) = raw_local(
            &server,
            "POST",
            "/v1/workloads",
            &[("Content-Type", form)],
            Some(&body),
        );
        assert_eq!(status, 415, "{form}: {e}");
        assert!(
            e["error"].as_str().unwrap().contains("application/json"),
            "{e}"
        );
    }
    // Nothing of that ran.
    assert_eq!(server.get("/v1/stats").1["total"], 0);
    // The same origin, and plain clients, are served.
    let origin = server.base.clone();
    let (status, w) = raw_local(
        &server,
        "POST",
        "/v1/workloads",
        &[json, ("Origin", &origin)],
        Some(&body),
    );
    assert_eq!(status, 200, "{w}");
    let (status, w) = raw_local(
        &server,
        "POST",
        "/v1/workloads",
        &[json, ("Host", "localhost")],
        Some(&body),
    );
    assert_eq!(status, 200, "{w}");
}
