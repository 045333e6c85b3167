//! Cluster figures: how fast an idle cluster starts a workload queued on a node that
//! cannot run it (the claim by another node, woken by LISTEN/NOTIFY), and no-op isolate
//! workloads per second through one node and through three sharing one PostgreSQL.

use std::time::Duration;

use serde_json::json;
use vulcan_store::testing::PgServer;

use super::common::{eventually, Server};
use super::{measure, measure_paced};

/// A node of the cluster on the database at `url` (isolate pool of 2 for this section's
/// figures).
fn node_env<'a>(
    url: &'a str,
    id: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut env = pg_node_env(url, id);
    env.push(("VULCAN_ISOLATE_POOL_SIZE", "2"));
    env.extend_from_slice(extra);
    env
}

/// A node on the PostgreSQL database at `url`, with the settings every node of a cluster
/// shares.
pub(super) fn pg_node_env<'a>(url: &'a str, id: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("VULCAN_DATABASE_URL", url),
        ("VULCAN_NODE_ID", id),
        // Every node of a cluster needs the same key to open secrets.
        (
            "VULCAN_SECRET_KEY",
            "Y2x1c3Rlci10ZXN0LWtleS0zMi1ieXRlcy1sb25nISE=",
        ),
    ]
}

/// Waits until `server` sees `n` live nodes.
pub(super) fn wait_live(server: &Server, n: usize) {
    eventually(Duration::from_secs(30), "the nodes to be live", || {
        let (_, nodes) = server.get("/v1/nodes");
        let live = nodes
            .as_array()?
            .iter()
            .filter(|n| n["state"] == "live")
            .count();
        (live == n).then_some(())
    });
}

/// Milliseconds between two RFC 3339 times.
fn between_ms(from: &serde_json::Value, to: &serde_json::Value) -> f64 {
    let parse = |v: &serde_json::Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    (parse(to) - parse(from)).as_seconds_f64() * 1000.0
}

pub fn run(n: usize) {
    let pg = PgServer::start().expect("PostgreSQL (scripts/setup.sh installs it)");

    // Wake-up: submitted to a node without the isolate backend, claimed by the one with it.
    let url = pg.database().unwrap();
    let a = Server::start(&node_env(&url, "a", &[]));
    let c = Server::start(&node_env(
        &url,
        "c",
        &[("VULCAN_DENO_BIN", "/nonexistent/deno")],
    ));
    wait_live(&c, 2);
    let noop = json!({"runtime": "node", "code": "export default () => 1"});
    for _ in 0..5 {
        c.run(noop.clone());
    }
    let waits = std::sync::Mutex::new(Vec::new());
    let wake = measure_paced(
        "cluster: queued on c, claimed by a: submit → done",
        n,
        1,
        Duration::from_millis(50),
        || {
            let w = c.run(noop.clone());
            assert_eq!(w["node_id"], "a", "{w}");
            let wait = between_ms(&w["created_at"], &w["started_at"]);
            waits.lock().unwrap().push(wait);
        },
    );
    wake.print_latency();
    let mut waits = waits.into_inner().unwrap();
    waits.sort_by(f64::total_cmp);
    let at = |q: f64| waits[((waits.len() as f64 * q).ceil() as usize).clamp(1, waits.len()) - 1];
    println!(
        "{:<46} n={:<6} p50={:>8.2} ms  p95={:>8.2} ms   (created_at → started_at, ms clock)",
        "cluster: queue wake-up (submit → started)",
        waits.len(),
        at(0.5),
        at(0.95)
    );
    drop((a, c));

    // Throughput: one node, then three, four clients back to back.
    for nodes in [1usize, 3] {
        let url = pg.database().unwrap();
        let servers: Vec<Server> = ["a", "b", "c"][..nodes]
            .iter()
            .map(|id| Server::start(&node_env(&url, id, &[])))
            .collect();
        wait_live(&servers[0], nodes);
        for s in &servers {
            s.run(noop.clone());
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        measure(
            &format!("cluster: no-op isolate via {nodes} node(s), 4 clients"),
            n,
            4,
            || {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let w = servers[i % nodes].run(noop.clone());
                assert_eq!(w["status"], "completed", "{w}");
            },
        )
        .print();
    }
}
