//! What the database costs a workload: the same loads (fresh WASI modules, a warm node
//! function, one-shot node isolates; four clients back to back for ten seconds each)
//! through one node on SQLite, one node on PostgreSQL and three nodes sharing one
//! PostgreSQL, with PostgreSQL's rate as a share of SQLite's; then what one sync workload
//! costs PostgreSQL: committed transactions (`pg_stat_database`) and statements
//! (`pg_stat_statements`) per workload, one client back to back, the commits of the same
//! time idle subtracted.
//!
//! `VULCAN_BENCH_BEFORE=path/to/an/earlier/vulcan` runs everything with that build too,
//! first, for a before-and-after in one run.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vulcan_store::testing::PgServer;

use super::cluster::{pg_node_env, wait_live};
use super::common::Server;
use super::{for_seconds, Figures, WASI_ECHO};

const SECS: u64 = 10;

fn start_nodes(url: &str, n: usize) -> Vec<Server> {
    let nodes: Vec<Server> = ["a", "b", "c"][..n]
        .iter()
        .map(|id| Server::start(&pg_node_env(url, id)))
        .collect();
    wait_live(&nodes[0], n);
    nodes
}

fn wasi_body() -> Value {
    use base64::Engine as _;
    let code = base64::engine::general_purpose::STANDARD.encode(wat::parse_str(WASI_ECHO).unwrap());
    json!({"runtime": "wasm", "code": code, "input": {"n": 42}})
}

/// Rates (per second) of the three loads through `nodes`, clients spread over them.
struct Rates {
    wasm: f64,
    function: f64,
    oneshot: f64,
}

fn rate(f: &Figures) -> f64 {
    f.samples.len() as f64 / f.wall.as_secs_f64()
}

fn loads(label: &str, nodes: &[Server]) -> Rates {
    let wasm = wasi_body();
    let oneshot = super::common::sum_workload(1, 2);
    let (status, f) = nodes[0].put(
        "/v1/functions/dbsum",
        &json!({"runtime": "node", "code": "export default (i) => ({sum: i.a + i.b})", "max_instances": 4}),
    );
    assert!(status < 300, "{f}");
    let next = std::sync::atomic::AtomicUsize::new(0);
    let node = || &nodes[next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % nodes.len()];
    let run_wasm = || {
        let w = node().run(wasm.clone());
        assert_eq!(w["output"], "{\"n\":42}", "{w}");
    };
    let invoke = || {
        let (status, w) = node().post("/v1/functions/dbsum/invoke", &json!({"a": 1, "b": 2}));
        assert_eq!(
            (status, w["output"].as_str()),
            (200, Some("{\"sum\":3}")),
            "{w}"
        );
    };
    let run_oneshot = || {
        let w = node().run(oneshot.clone());
        assert_eq!(w["output"], "{\"sum\":3}", "{w}");
    };
    for _ in 0..30 {
        run_wasm();
        invoke();
        run_oneshot();
    }
    let mut rates = Vec::new();
    for (what, f) in [
        ("fresh WASI", &run_wasm as &(dyn Fn() + Sync)),
        ("warm function", &invoke),
        ("one-shot isolate", &run_oneshot),
    ] {
        let figures = for_seconds(&format!("{label}: {what}, 4 clients"), 4, SECS, f);
        rates.push(rate(&figures));
        figures.print();
    }
    Rates {
        wasm: rates[0],
        function: rates[1],
        oneshot: rates[2],
    }
}

fn number(pg: &PgServer, url: &str, sql: &str) -> f64 {
    pg.psql(url, sql).unwrap().parse().unwrap()
}

/// Committed transactions and statements so far in the database at `url`.
fn counts(pg: &PgServer, url: &str) -> (f64, f64) {
    // A backend reports its figures when idle, at most once a second.
    std::thread::sleep(Duration::from_millis(1500));
    (
        number(
            pg,
            url,
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        ),
        number(
            pg,
            url,
            "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        ),
    )
}

/// Transactions and statements one sync fresh-WASI workload costs PostgreSQL, from `n`
/// back to back on one node, less what the node commits idle in the same time.
fn per_workload(label: &str, pg: &PgServer, n: usize) {
    let url = pg.database().unwrap();
    let node = &start_nodes(&url, 1)[0];
    let wasm = wasi_body();
    for _ in 0..20 {
        node.run(wasm.clone());
    }
    let idle_for = Duration::from_secs(5);
    let before = counts(pg, &url);
    std::thread::sleep(idle_for);
    let idle = counts(pg, &url);
    pg.psql(&url, "SELECT pg_stat_statements_reset()").unwrap();
    let started = Instant::now();
    for _ in 0..n {
        let w = node.run(wasm.clone());
        assert_eq!(w["status"], "completed", "{w}");
    }
    let busy = started.elapsed() + Duration::from_millis(1500);
    let after = counts(pg, &url);
    // The idle window includes one wait for the figures (1.5 s) as the busy one does.
    let idle_secs = (idle_for + Duration::from_millis(1500)).as_secs_f64();
    let per = |of: fn(&(f64, f64)) -> f64| {
        let idle_rate = (of(&idle) - of(&before)) / idle_secs;
        (of(&after) - of(&idle) - idle_rate * busy.as_secs_f64()) / n as f64
    };
    println!(
        "{:<46} n={n:<6} {:>6.1} transactions, {:>6.1} statements per workload",
        format!("{label}: PostgreSQL per sync WASI workload"),
        per(|c| c.0),
        per(|c| c.1),
    );
    // Where the statements went (the idle ones included): the most called, per workload.
    let top = pg
        .psql(
            &url,
            "SELECT calls, regexp_replace(left(query, 90), '\\s+', ' ', 'g') FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY calls DESC LIMIT 12",
        )
        .unwrap();
    for line in top.lines() {
        if let Some((calls, query)) = line.split_once('|') {
            let calls: f64 = calls.parse().unwrap_or(0.0);
            println!("{:>8.2} per workload  {query}", calls / n as f64);
        }
    }
}

fn round(label: &str, n: usize) {
    let pg = PgServer::start_counting_statements().expect("PostgreSQL (scripts/setup.sh)");
    let sqlite = {
        let server = Server::start(&[]);
        loads(
            &format!("{label}: SQLite, 1 node"),
            std::slice::from_ref(&server),
        )
    };
    let one = loads(
        &format!("{label}: PostgreSQL, 1 node"),
        &start_nodes(&pg.database().unwrap(), 1),
    );
    let three = loads(
        &format!("{label}: PostgreSQL, 3 nodes"),
        &start_nodes(&pg.database().unwrap(), 3),
    );
    for (what, s, o, t) in [
        ("fresh WASI", sqlite.wasm, one.wasm, three.wasm),
        (
            "warm function",
            sqlite.function,
            one.function,
            three.function,
        ),
        (
            "one-shot isolate",
            sqlite.oneshot,
            one.oneshot,
            three.oneshot,
        ),
    ] {
        println!(
            "{:<46} PostgreSQL 1 node {:.2}x SQLite, 3 nodes {:.2}x 1 node",
            format!("{label}: {what}"),
            o / s,
            t / o
        );
    }
    per_workload(label, &pg, n);
}

pub fn run(n: usize) {
    super::before_and_after("db", |label| round(label, n));
}
