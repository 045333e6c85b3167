//! Cluster mode end to end: three real `vulcan serve` nodes sharing one real PostgreSQL
//! server of the test's own, running real Deno isolates.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{eventually, Server};
use serde_json::{json, Value};
use vulcan_store::testing::PgServer;

/// Settings every node of a test cluster gets.
fn node_env<'a>(
    url: &'a str,
    id: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("VULCAN_DATABASE_URL", url),
        ("VULCAN_NODE_ID", id),
        // Every node of a cluster needs the same key to open secrets.
        (
            "VULCAN_SECRET_KEY",
            "Y2x1c3Rlci10ZXN0LWtleS0zMi1ieXRlcy1sb25nISE=",
        ),
        // Three nodes share two cores: few warm processes each.
        ("VULCAN_ISOLATE_POOL_SIZE", "1"),
    ];
    env.extend_from_slice(extra);
    env
}

/// Three nodes, A, B and C, on one new database.
fn cluster(pg: &PgServer, extra: &[(&str, &str)]) -> (String, Vec<Server>) {
    let url = pg.database().unwrap();
    let nodes = ["a", "b", "c"]
        .iter()
        .map(|id| Server::start(&node_env(&url, id, extra)))
        .collect();
    (url, nodes)
}

/// Waits until every one of `ids` is listed live.
fn wait_live(server: &Server, ids: &[&str]) {
    eventually(Duration::from_secs(20), "the nodes to be live", || {
        let (_, nodes) = server.get("/v1/nodes");
        let live: Vec<&str> = nodes
            .as_array()?
            .iter()
            .filter(|n| n["state"] == "live")
            .filter_map(|n| n["id"].as_str())
            .collect();
        ids.iter().all(|id| live.contains(id)).then_some(())
    });
}

/// Runs of workloads a node handed to its backends, from its metrics.
fn runs(server: &Server) -> u64 {
    common::metrics(server)
        .lines()
        .filter(|l| l.starts_with("vulcan_workload_runs_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn node(code: &str) -> Value {
    json!({"runtime": "node", "code": code})
}

#[test]
fn three_hundred_workloads_over_three_nodes_each_run_exactly_once() {
    let pg = PgServer::start().unwrap();
    let (_, nodes) = cluster(&pg, &[]);
    wait_live(&nodes[0], &["a", "b", "c"]);
    let ids: Vec<String> = (0..300)
        .map(|i| {
            nodes[i % 3].submit(json!({"runtime": "node",
                "code": "export default (i) => i.n * 2", "input": {"n": i}}))
        })
        .collect();
    let mut ran_on: HashMap<String, usize> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let w = nodes[(i + 1) % 3].wait_terminal(id, Duration::from_secs(120));
        assert_eq!(
            (w["status"].as_str(), w["output"].as_str()),
            (Some("completed"), Some((i * 2).to_string().as_str())),
            "{w}"
        );
        *ran_on
            .entry(w["node_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    // Each ran once: the nodes' own counts of what they handed to a backend add up to 300.
    let counted: u64 = nodes.iter().map(runs).sum();
    assert_eq!(
        counted,
        300,
        "runs per node: {:?}",
        nodes.iter().map(runs).collect::<Vec<_>>()
    );
    assert_eq!(ran_on.values().sum::<usize>(), 300);
    assert!(ran_on.len() >= 2, "the work was spread: {ran_on:?}");
    for n in &nodes {
        assert_eq!(n.get("/v1/stats").1["by_status"]["completed"], 300);
    }
}

#[test]
fn a_node_without_a_backend_never_claims_its_workloads_but_routes_them() {
    let pg = PgServer::start().unwrap();
    let url = pg.database().unwrap();
    let _a = Server::start(&node_env(&url, "a", &[]));
    let c = Server::start(&node_env(
        &url,
        "c",
        &[("VULCAN_DENO_BIN", "/nonexistent/deno")],
    ));
    wait_live(&c, &["a", "c"]);
    let (_, backends) = c.get("/v1/backends");
    let isolate = backends
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "isolate")
        .unwrap();
    assert_eq!(isolate["available"], false, "{isolate}");
    let ids: Vec<String> = (0..20)
        .map(|_| c.submit(node("export default () => 1")))
        .collect();
    for id in &ids {
        let w = c.wait_terminal(id, Duration::from_secs(60));
        assert_eq!(
            (w["status"].as_str(), w["node_id"].as_str()),
            (Some("completed"), Some("a")),
            "{w}"
        );
    }
    assert_eq!(runs(&c), 0, "c ran nothing");
}

#[test]
fn logs_stream_live_to_another_node_and_a_kill_from_it_stops_the_run() {
    let pg = PgServer::start().unwrap();
    let (_, nodes) = cluster(&pg, &[]);
    wait_live(&nodes[2], &["a", "b", "c"]);
    let (b, c) = (&nodes[1], &nodes[2]);
    // Submitted to B with free slots: B runs it.
    let id = b.submit(node(
        "for (let i = 0; ; i++) { console.log('tick ' + i); await new Promise(r => setTimeout(r, 200)); }",
    ));
    let running = c.wait_status(&id, "running", Duration::from_secs(20));
    assert_eq!(running["node_id"], "b");
    let mut sse = c.sse(&format!("/v1/workloads/{id}/logs"));
    let opened = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let e = sse.next_event().expect("events while it runs");
        if e.event == "log" {
            let line: Value = serde_json::from_str(&e.data).unwrap();
            seen.push(line["line"].as_str().unwrap().to_owned());
        }
    }
    assert!(seen.iter().any(|l| l.starts_with("tick")), "{seen:?}");
    assert!(
        opened.elapsed() < Duration::from_secs(10),
        "lines came while it ran"
    );
    // Kill from C: the code on B stops within a second.
    let asked = Instant::now();
    let (status, killed) = c.delete(&format!("/v1/workloads/{id}"));
    assert_eq!(status, 200, "{killed}");
    assert_eq!(killed["status"], "killed");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    let (_, done) = sse.collect();
    assert_eq!(done["status"], "killed");
    assert_eq!(
        b.get("/healthz").1["active_workloads"],
        0,
        "nothing left running on b"
    );
    // A sync submission to C waits on a workload another node runs.
    let long_on_b = b.submit(node("await new Promise(r => setTimeout(r, 60000));"));
    let _ = long_on_b;
    let w = c.run(node("export default () => 'waited'"));
    assert_eq!(w["status"], "completed", "{w}");
}

#[test]
fn a_node_that_dies_fails_its_running_work_naming_it_and_the_queue_moves_on() {
    let pg = PgServer::start().unwrap();
    let (_, mut nodes) = cluster(
        &pg,
        &[
            ("VULCAN_NODE_LEASE_S", "3"),
            ("VULCAN_ISOLATE_CONCURRENCY", "1"),
        ],
    );
    wait_live(&nodes[0], &["a", "b", "c"]);
    let forever = "await new Promise(r => setTimeout(r, 120000));";
    // One slot per node: B runs one forever, A and C too; more queue behind them.
    let on_b = nodes[1].submit(node(forever));
    nodes[1].wait_status(&on_b, "running", Duration::from_secs(20));
    let on_a = nodes[0].submit(node(forever));
    let on_c = nodes[2].submit(node(forever));
    let queued: Vec<String> = (0..4)
        .map(|i| nodes[i % 2].submit(node("export default () => 'after'")))
        .collect();
    nodes[1].kill9();
    drop(nodes.remove(1));
    let lost = nodes[0].wait_terminal(&on_b, Duration::from_secs(20));
    assert_eq!(lost["status"], "failed");
    assert!(
        lost["error"].as_str().unwrap().contains("node b was lost"),
        "{lost}"
    );
    // Free the other slots: the queue drains on A and C.
    for id in [&on_a, &on_c] {
        assert_eq!(nodes[0].delete(&format!("/v1/workloads/{id}")).0, 200);
    }
    for id in &queued {
        let w = nodes[1].wait_terminal(id, Duration::from_secs(30));
        assert_eq!(w["status"], "completed", "{w}");
        assert_ne!(w["node_id"], "b");
    }
    let (_, list) = nodes[0].get("/v1/nodes");
    let states: HashMap<&str, &str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states["b"], "lost", "{list}");
    assert_eq!((states["a"], states["c"]), ("live", "live"));
    // A clean shutdown says so.
    let mut c = nodes.remove(1);
    common::send_sigterm(c.child.id());
    let _ = c.child.wait();
    eventually(Duration::from_secs(10), "c to be listed as left", || {
        let (_, list) = nodes[0].get("/v1/nodes");
        list.as_array()?
            .iter()
            .any(|n| n["id"] == "c" && n["state"] == "left")
            .then_some(())
    });
}

#[test]
fn a_postgres_restart_under_load_loses_nothing_accepted() {
    let pg = PgServer::start().unwrap();
    let (_, nodes) = cluster(&pg, &[]);
    wait_live(&nodes[0], &["a", "b", "c"]);
    let submitter = std::thread::scope(|s| {
        let handle = s.spawn(|| {
            (0..90)
                .map(|i| {
                    let body = json!({"runtime": "node",
                        "code": "export default async (i) => { await new Promise(r => setTimeout(r, 50)); return i.n; }",
                        "input": {"n": i}});
                    let (status, w) = nodes[i % 3].post("/v1/workloads/async", &body);
                    assert_eq!(status, 202, "submission {i} during the restart: {w}");
                    w["id"].as_str().unwrap().to_owned()
                })
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(300));
        pg.restart().expect("PostgreSQL restarts");
        handle.join().unwrap()
    });
    for (i, id) in submitter.iter().enumerate() {
        let w = nodes[(i + 2) % 3].wait_terminal(id, Duration::from_secs(90));
        assert_eq!(
            (w["status"].as_str(), w["output"].as_str()),
            (Some("completed"), Some(i.to_string().as_str())),
            "{w}"
        );
    }
    let total = nodes[0].get("/v1/stats").1["total"].as_u64().unwrap();
    assert_eq!(total, 90, "every accepted workload stored once");
}

#[test]
fn a_tenants_quota_holds_across_the_nodes() {
    let pg = PgServer::start().unwrap();
    let admin = CLUSTER_ADMIN;
    let (_, nodes) = cluster(&pg, &[("VULCAN_AUTH", "on"), ("VULCAN_ADMIN_KEY", admin)]);
    wait_live_with(&nodes[0], admin, &["a", "b", "c"]);
    let (status, key) = authed(
        &nodes[0],
        "POST",
        "/v1/keys",
        admin,
        Some(json!({"name": "t", "role": "developer", "tenant": "t"})),
    );
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();
    let quota = json!({"max_concurrent": 2, "per_minute": 100, "max_cpus": 8, "max_mem_mb": 4096});
    assert_eq!(
        authed(&nodes[1], "PUT", "/v1/tenants/t/quota", admin, Some(quota)).0,
        200
    );
    let long = node("await new Promise(r => setTimeout(r, 30000));");
    assert_eq!(
        authed(
            &nodes[0],
            "POST",
            "/v1/workloads/async",
            &key,
            Some(long.clone())
        )
        .0,
        202
    );
    assert_eq!(
        authed(
            &nodes[1],
            "POST",
            "/v1/workloads/async",
            &key,
            Some(long.clone())
        )
        .0,
        202
    );
    let (status, refused) = authed(&nodes[2], "POST", "/v1/workloads/async", &key, Some(long));
    assert_eq!(
        status, 429,
        "two at once across the nodes, a third anywhere is over: {refused}"
    );
    assert!(refused["error"]
        .as_str()
        .unwrap()
        .contains("2 workloads at once"));
}

/// (status, JSON body) of a request to `server` with `key`.
fn authed(
    server: &Server,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let req = ureq::request(method, &server.url(path)).set("X-API-Key", key);
    let result = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let status = resp.status();
    (status, resp.into_json::<Value>().unwrap_or(Value::Null))
}

const CLUSTER_ADMIN: &str = "vk_clusteradmin_0123456789abcdef";

#[test]
fn a_revoked_key_is_refused_by_every_node_within_a_second() {
    let pg = PgServer::start().unwrap();
    let (url, nodes) = cluster(
        &pg,
        &[("VULCAN_AUTH", "on"), ("VULCAN_ADMIN_KEY", CLUSTER_ADMIN)],
    );
    wait_live_with(&nodes[0], CLUSTER_ADMIN, &["a", "b", "c"]);
    let new_key = |name: &str| {
        let (status, body) = authed(
            &nodes[0],
            "POST",
            "/v1/keys",
            CLUSTER_ADMIN,
            Some(json!({"name": name, "role": "developer", "tenant": "t"})),
        );
        assert_eq!(status, 201, "{body}");
        (
            body["id"].as_str().unwrap().to_owned(),
            body["key"].as_str().unwrap().to_owned(),
        )
    };
    let (revoked_id, revoked) = new_key("revoked-by-the-api");
    let (_, unsignalled) = new_key("revoked-in-the-database");
    // Both keys work on every node (a key made on A is known on B and C at once), and
    // every node now has them in memory.
    for n in &nodes {
        for key in [&revoked, &unsignalled] {
            let (status, body) = authed(n, "GET", "/v1/workloads", key, None);
            assert_eq!(status, 200, "{body}");
        }
    }
    let (status, body) = authed(
        &nodes[0],
        "DELETE",
        &format!("/v1/keys/{revoked_id}"),
        CLUSTER_ADMIN,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let revoked_at = Instant::now();
    for n in &nodes {
        eventually(Duration::from_secs(5), "the revoked key refused", || {
            let (status, _) = authed(n, "GET", "/v1/workloads", &revoked, None);
            (status == 401).then_some(())
        });
    }
    assert!(
        revoked_at.elapsed() < Duration::from_secs(1),
        "every node refused the revoked key within a second, not {:?}",
        revoked_at.elapsed()
    );
    for n in &nodes {
        let (status, body) = authed(
            n,
            "POST",
            "/v1/workloads",
            &revoked,
            Some(node("export default () => 1")),
        );
        assert_eq!(status, 401, "no node runs work for a revoked key: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("revoked"),
            "{body}"
        );
    }
    // A revocation no node was told of (as if every signal were lost) holds within the
    // few seconds after which each node reads the keys again anyway.
    let psql = std::process::Command::new("psql")
        .arg(&url)
        .args(["-v", "ON_ERROR_STOP=1", "-qc"])
        .arg("UPDATE api_keys SET revoked_at = 1 WHERE name = 'revoked-in-the-database'")
        .status()
        .unwrap();
    assert!(psql.success());
    let changed_at = Instant::now();
    for n in &nodes {
        eventually(
            Duration::from_secs(10),
            "the key revoked unsignalled refused",
            || {
                let (status, _) = authed(n, "GET", "/v1/workloads", &unsignalled, None);
                (status == 401).then_some(())
            },
        );
    }
    assert!(
        changed_at.elapsed() < Duration::from_secs(5),
        "read again within a few seconds, not {:?}",
        changed_at.elapsed()
    );
}

/// [`wait_live`] with auth on.
fn wait_live_with(server: &Server, key: &str, ids: &[&str]) {
    eventually(Duration::from_secs(20), "the nodes to be live", || {
        let nodes: Value = ureq::get(&server.url("/v1/nodes"))
            .set("X-API-Key", key)
            .call()
            .ok()?
            .into_json()
            .ok()?;
        let live: Vec<&str> = nodes
            .as_array()?
            .iter()
            .filter(|n| n["state"] == "live")
            .filter_map(|n| n["id"].as_str())
            .collect();
        ids.iter().all(|id| live.contains(id)).then_some(())
    });
}

#[test]
fn an_image_registered_on_one_node_is_pulled_by_another_on_first_use() {
    let registry = vulcan_gvisor::testing::Registry::start();
    let image = registry.push("busybox:1", "busybox");
    let pg = PgServer::start().unwrap();
    let url = pg.database().unwrap();
    let insecure = [("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())];
    let a = Server::start(&node_env(&url, "a", &insecure));
    let b = Server::start(&node_env(&url, "b", &insecure));
    let (status, record) = a.post("/v1/images", &json!({"reference": image, "default": true}));
    assert_eq!(status, 201, "{record}");
    let nodes_of = |server: &Server| {
        let (_, images) = server.get("/v1/images");
        images[0]["nodes"].clone()
    };
    assert_eq!(
        nodes_of(&b),
        json!(["a"]),
        "registered once, for every node"
    );
    // B runs it (submitted to B: B claims it) and pulls it first, the same digest.
    let w = b.run(json!({"runtime": "oci", "command": ["echo", "from b"]}));
    assert_eq!(
        (w["status"].as_str(), w["output"].as_str()),
        (Some("completed"), Some("from b")),
        "{w}"
    );
    assert_eq!(w["node_id"], "b");
    assert_eq!(nodes_of(&a), json!(["a", "b"]));
    let (_, on_b) = b.get(&format!("/v1/images/{image}"));
    assert_eq!(on_b["digest"], record["digest"]);

    // A workload that mounts a volume made on B runs on B, wherever it is submitted.
    let (status, volume) = b.post("/v1/volumes", &json!({"name": "on-b", "size_mb": 16}));
    assert_eq!(status, 201, "{volume}");
    assert_eq!(volume["node_id"], "b");
    for (server, text) in [(&a, "via a"), (&b, "via b")] {
        let w = server.run(json!({
            "runtime": "oci", "command": ["sh", "-c", format!("echo {text} >> /v/f; cat /v/f")],
            "volumes": [{"name": "on-b", "path": "/v"}],
        }));
        assert_eq!(
            (w["status"].as_str(), w["node_id"].as_str()),
            (Some("completed"), Some("b")),
            "{w}"
        );
        assert!(w["output"].as_str().unwrap().ends_with(text), "{w}");
    }
}

/// A TCP proxy in front of PostgreSQL that can cut one node off: every connection through
/// it is closed at once, and new ones are refused, until it is mended.
struct Proxy {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cut2, open2) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if cut2.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut sockets = open2.lock().unwrap();
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                sockets.push(client);
                sockets.push(server);
            }
        });
        Proxy { port, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn mend(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_node_cut_off_from_the_database_stops_its_work_and_rejoins_without_overwriting() {
    let pg = PgServer::start().unwrap();
    let url = pg.database().unwrap();
    let proxy = Proxy::start(pg.port);
    let via_proxy = url.replace(&format!(":{}/", pg.port), &format!(":{}/", proxy.port));
    let lease = [("VULCAN_NODE_LEASE_S", "3")];
    let a = Server::start(&node_env(&url, "a", &lease));
    let b = Server::start(&node_env(&via_proxy, "b", &lease));
    wait_live(&a, &["a", "b"]);
    let on_b = b.submit(node("await new Promise(r => setTimeout(r, 120000));"));
    b.wait_status(&on_b, "running", Duration::from_secs(20));
    proxy.cut();
    // The others find B lost and fail its work, naming it.
    let failed = a.wait_terminal(&on_b, Duration::from_secs(30));
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("node b was lost"),
        "{failed}"
    );
    // B, past its lease without the database, stops the run it could not record.
    eventually(Duration::from_secs(20), "b to stop its run", || {
        (b.get("/healthz").1["active_workloads"] == 0).then_some(())
    });
    proxy.mend();
    wait_live(&a, &["a", "b"]);
    let after = a.get(&format!("/v1/workloads/{on_b}")).1;
    assert_eq!(
        after["error"], failed["error"],
        "the recorded ending stands: {after}"
    );
    // And B runs work again.
    let w = b.run(node("export default () => 'back'"));
    assert_eq!(
        (w["status"].as_str(), w["node_id"].as_str()),
        (Some("completed"), Some("b")),
        "{w}"
    );
}

#[test]
fn a_function_deployed_on_one_node_is_invoked_warm_on_every_node() {
    let pg = PgServer::start().unwrap();
    let (_, nodes) = cluster(&pg, &[]);
    wait_live(&nodes[0], &["a", "b", "c"]);
    let deploy = |node: &Server, code: &str| {
        let r = ureq::put(&node.url("/v1/functions/sum"))
            .send_json(json!({"runtime": "node", "code": code}))
            .unwrap();
        r.into_json::<Value>().unwrap()["version"].as_u64().unwrap()
    };
    let invoke = |node: &Server, a: i64| -> (String, String, u64) {
        let (status, w) = node.post("/v1/functions/sum/invoke", &json!({"a": a, "b": 1}));
        assert_eq!(
            (status, w["status"].as_str()),
            (200, Some("completed")),
            "{w}"
        );
        (
            w["output"].as_str().unwrap().to_owned(),
            w["node_id"].as_str().unwrap().to_owned(),
            w["function_version"].as_u64().unwrap(),
        )
    };
    assert_eq!(deploy(&nodes[0], "export default (i) => i.a + i.b"), 1);
    for (i, node) in nodes.iter().enumerate() {
        for a in 0..3 {
            let (output, ran_on, version) = invoke(node, a);
            assert_eq!((output, version), ((a + 1).to_string(), 1));
            assert_eq!(
                ran_on,
                ["a", "b", "c"][i],
                "the invoking node runs it: its slot was free"
            );
        }
    }
    // Each node's warm instance is counted, from any node.
    eventually(Duration::from_secs(10), "three warm instances", || {
        let (_, f) = nodes[1].get("/v1/functions/sum");
        (f["instances"] == 3 && f["invocations"] == 9).then_some(())
    });

    // A redeploy on one node is what every node invokes next; so is a rollback.
    assert_eq!(deploy(&nodes[2], "export default (i) => i.a * 10"), 2);
    assert_eq!(invoke(&nodes[0], 4), ("40".into(), "a".into(), 2));
    let r = ureq::put(&nodes[1].url("/v1/functions/sum/active"))
        .send_json(json!({"version": 1}))
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(invoke(&nodes[2], 4), ("5".into(), "c".into(), 1));

    // A delete on one node stops every node's instances.
    assert_eq!(nodes[0].delete("/v1/functions/sum").0, 204);
    eventually(Duration::from_secs(10), "no warm instance left", || {
        let (_, list) = nodes[0].get("/v1/nodes");
        let total: u64 = list
            .as_array()?
            .iter()
            .filter_map(|n| n["instances"].as_object())
            .flat_map(|m| m.values().filter_map(Value::as_u64))
            .sum();
        (total == 0).then_some(())
    });
    let (status, _) = nodes[1].post("/v1/functions/sum/invoke", &json!({}));
    assert_eq!(status, 404);
}

#[test]
fn two_nodes_fire_each_tick_of_a_schedule_exactly_once() {
    let pg = PgServer::start().unwrap();
    let url = pg.database().unwrap();
    let nodes: Vec<Server> = ["a", "b"]
        .iter()
        .map(|id| Server::start(&node_env(&url, id, &[])))
        .collect();
    wait_live(&nodes[0], &["a", "b"]);
    // Each instance counts the runs it served; their sum is every run that happened.
    let r = ureq::put(&nodes[0].url("/v1/functions/count"))
        .send_json(json!({"runtime": "node", "code": "let n = 0; export default () => ++n"}))
        .unwrap();
    assert_eq!(r.status(), 201);
    let (status, s) = nodes[1].post(
        "/v1/schedules",
        &json!({"function": "count", "cron": "* * * * * *", "overlap": "allow"}),
    );
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_secs(8));
    let (_, off) = {
        let r = ureq::request("PATCH", &nodes[0].url(&format!("/v1/schedules/{id}")))
            .send_json(json!({"enabled": false}))
            .unwrap();
        (r.status(), r.into_json::<Value>().unwrap())
    };
    assert_eq!(off["enabled"], false);
    std::thread::sleep(Duration::from_millis(500));
    let (_, page) = nodes[0].get(&format!("/v1/workloads?schedule={id}&limit=100"));
    let runs: Vec<Value> = page["workloads"].as_array().unwrap().clone();
    assert!(
        (7..=9).contains(&runs.len()),
        "8 ticks in 8 s: {}",
        runs.len()
    );
    // One run per tick: each second has one run.
    let mut seconds: Vec<String> = runs
        .iter()
        .map(|w| w["created_at"].as_str().unwrap()[..19].to_owned())
        .collect();
    seconds.sort();
    let distinct = {
        let mut d = seconds.clone();
        d.dedup();
        d.len()
    };
    assert_eq!(distinct, runs.len(), "two runs in one second: {seconds:?}");
    // Counted inside the function: per node, its instance's counts run 1..=n with no gap
    // or repeat, and they add up to the runs recorded.
    let mut by_node: HashMap<String, Vec<u64>> = HashMap::new();
    for w in &runs {
        let done = nodes[0].wait_terminal(w["id"].as_str().unwrap(), Duration::from_secs(10));
        assert_eq!(done["status"], "completed", "{done}");
        by_node
            .entry(done["node_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(done["output"].as_str().unwrap().parse().unwrap());
    }
    let mut counted = 0;
    for (node, mut counts) in by_node {
        counts.sort();
        let expected: Vec<u64> = (1..=counts.len() as u64).collect();
        assert_eq!(counts, expected, "node {node}");
        counted += counts.len();
    }
    assert_eq!(counted, runs.len());
}

#[test]
fn every_node_streams_the_events_of_workloads_another_node_runs() {
    let pg = PgServer::start().unwrap();
    let url = pg.database().unwrap();
    let a = Server::start(&node_env(&url, "a", &[]));
    // B cannot run isolates: what it is given runs on A, and A's client hears of it.
    let b = Server::start(&node_env(
        &url,
        "b",
        &[("VULCAN_DENO_BIN", "/nonexistent/deno")],
    ));
    wait_live(&a, &["a", "b"]);
    let ws_url = b
        .url("/ws/events?kind=workload")
        .replace("http://", "ws://");
    let (mut socket, _) = tungstenite::connect(ws_url.as_str()).unwrap();
    let id = b.submit(node("export default () => 1"));
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let tungstenite::Message::Text(text) = socket.read().unwrap() else {
            continue;
        };
        let e: Value = serde_json::from_str(&text).unwrap();
        if e["id"] == id.as_str() {
            seen.push((
                e["type"].as_str().unwrap().to_owned(),
                e["node"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert_eq!(
        seen,
        [
            ("created".to_owned(), "b".to_owned()),
            ("started".to_owned(), "a".to_owned()),
            ("finished".to_owned(), "a".to_owned())
        ]
    );
}

#[test]
fn a_sandbox_is_reached_through_any_node() {
    let registry = vulcan_gvisor::testing::Registry::start();
    let image = registry.push("busybox:cluster-sandbox", "busybox");
    let pg = PgServer::start().unwrap();
    let url = pg.database().unwrap();
    let insecure = [("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())];
    let a = common::sandbox_host::Host {
        server: Server::start(&node_env(&url, "a", &insecure)),
    };
    let b = common::sandbox_host::Host {
        server: Server::start(&node_env(&url, "b", &insecure)),
    };
    wait_live(&b, &["a", "b"]);
    let (status, made) = a.post("/v1/sandboxes", &json!({"image": image}));
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    assert_eq!(made["node_id"], "a");

    // Through B: a command, its answer from A.
    let (status, ran) = b.post(
        &format!("/v1/sandboxes/{id}/processes"),
        &json!({"cmd": "sh", "args": ["-c", "echo hi from $(hostname); exit 3"]}),
    );
    assert_eq!(status, 200, "{ran}");
    assert_eq!(
        (ran["stdout"].as_str(), ran["exit_code"].as_i64()),
        (Some("hi from vulcan\n"), Some(3))
    );
    // A file up and down, streamed both ways.
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let (status, body) = common::sandbox_host::upload(&b, &id, "/data/blob", &bytes);
    assert!(status < 300, "{status} {body}");
    assert_eq!(
        common::sandbox_host::download(&a, &id, "/data/blob").unwrap(),
        bytes
    );
    assert_eq!(
        common::sandbox_host::download(&b, &id, "/data/blob").unwrap(),
        bytes
    );
    // A background process's output live over server-sent events and a WebSocket.
    let pid = common::sandbox_host::background(
        &b,
        &id,
        json!({"cmd": "sh", "args": ["-c", "for i in 1 2 3; do echo tick $i; sleep 0.2; done"], "background": true}),
    );
    let mut events = b.sse(&format!("/v1/sandboxes/{id}/processes/{pid}/output"));
    let mut seen = String::new();
    loop {
        let event = events.next_event().expect("the stream goes on to the exit");
        let data: Value = serde_json::from_str(&event.data).unwrap();
        match event.event.as_str() {
            "stdout" => seen.push_str(&String::from_utf8_lossy(
                &common::sandbox_host::base64_decode(data["data"].as_str().unwrap()),
            )),
            "exit" => break,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(seen, "tick 1\ntick 2\ntick 3\n");
    let ws = b
        .url(&format!("/ws/sandboxes/{id}/processes/{pid}?offset=7"))
        .replace("http://", "ws://");
    let (mut socket, _) = tungstenite::connect(ws).expect("a WebSocket through B");
    let first: Value = match socket.read().expect("a message") {
        tungstenite::Message::Text(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("not text: {other:?}"),
    };
    assert_eq!(
        (first["type"].as_str(), first["offset"].as_u64()),
        (Some("stdout"), Some(7))
    );
    // Paused, resumed and deleted through B; nothing of it on B.
    for verb in ["pause", "resume"] {
        let (status, s) = b.post(&format!("/v1/sandboxes/{id}/{verb}"), &json!({}));
        assert_eq!(status, 200, "{verb}: {s}");
    }
    assert_eq!(
        common::sandbox_host::sh(&b, &id, "cat /data/blob | wc -c")
            .1
            .trim(),
        "3000000"
    );
    let (status, gone) = b.delete(&format!("/v1/sandboxes/{id}"));
    assert_eq!(status, 200, "{gone}");
    assert_eq!(gone["state"], "ended");
    assert!(!b.data_dir.join("gvisor/sandboxes").join(&id).exists());
    // An unknown sandbox is B's own answer.
    let (status, _) = b.get("/v1/sandboxes/sbnope");
    assert_eq!(status, 404);
}
