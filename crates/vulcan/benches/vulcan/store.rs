//! Store figures with a million stored workloads, on each store: the list and stats, for
//! an admin and for a tenant's own key (half the rows are one tenant's), and a page deep
//! in the list by offset and by cursor. The rows are written in bulk with SQL (what a
//! year of use would leave), the counters filled from them as the migrations would.

use std::process::Command;
use std::time::Instant;

use vulcan_store::testing::PgServer;
use vulcan_store::DurationHistogram;

use super::common::Server;
use super::measure;

const ROWS: usize = 1_000_000;
const ADMIN: &str = "vk_benchadmin_0123456789abcdef";

/// The row of workload `i`: id, status, isolation, tenant, duration.
const ROW_SQL: &str = "'01BENCH' || {pad}, \
    CASE WHEN {i} % 10 = 0 THEN 'failed' ELSE 'completed' END, \
    CASE {i} % 3 WHEN 0 THEN 'isolate' WHEN 1 THEN 'gvisor' ELSE 'microvm' END, \
    'auto', 'node', 'bench', 'x', '3', 0, 1, 128, 30, {i} % 500, 1700000000000 + {i}, \
    1700000000000 + {i}, 1700000000000 + {i}, '{{}}', \
    CASE WHEN {i} % 2 = 0 THEN 'big' ELSE 't' || ({i} % 50) END";

const COLUMNS: &str = "id, status, isolation, requested_isolation, runtime, node_id, input_hash, \
    output, exit_code, cpu_limit, mem_limit, timeout_s, duration_ms, created_at, started_at, \
    finished_at, spec, tenant";

/// The counters, from the rows (durations bucketed as the stores bucket them).
fn counter_sql(durations: &[(String, String, i64, i64)]) -> Vec<String> {
    let mut sql = vec![
        "INSERT INTO workload_counts (isolation, status, n) SELECT isolation, status, COUNT(*) FROM workloads GROUP BY isolation, status".to_owned(),
        "INSERT INTO tenant_counts (tenant, isolation, status, n) SELECT tenant, isolation, status, COUNT(*) FROM workloads GROUP BY tenant, isolation, status".to_owned(),
    ];
    let mut all: std::collections::BTreeMap<(String, i64), (i64, i64)> = Default::default();
    let mut per: std::collections::BTreeMap<(String, String, i64), (i64, i64)> = Default::default();
    for (tenant, isolation, ms, n) in durations {
        let bucket = DurationHistogram::bucket_of(*ms as u64);
        let a = all.entry((isolation.clone(), bucket)).or_default();
        a.0 += n;
        a.1 += ms * n;
        let t = per
            .entry((tenant.clone(), isolation.clone(), bucket))
            .or_default();
        t.0 += n;
        t.1 += ms * n;
    }
    for ((isolation, bucket), (n, sum)) in all {
        sql.push(format!(
            "INSERT INTO duration_buckets (isolation, bucket, n, sum_ms) VALUES ('{isolation}', {bucket}, {n}, {sum})"
        ));
    }
    for chunk in per.into_iter().collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|((t, i, b), (n, s))| format!("('{t}', '{i}', {b}, {n}, {s})"))
            .collect();
        sql.push(format!(
            "INSERT INTO tenant_durations (tenant, isolation, bucket, n, sum_ms) VALUES {}",
            values.join(", ")
        ));
    }
    sql
}

fn seed_sqlite(dir: &std::path::Path) {
    let path = dir.join("vulcan.db");
    drop(vulcan_store::SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let row = ROW_SQL
        .replace("{pad}", "printf('%019d', i)")
        .replace("{i}", "i")
        .replace("{{}}", "{}");
    conn.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {})
         INSERT INTO workloads ({COLUMNS}) SELECT {row} FROM s;",
        ROWS - 1
    ))
    .unwrap();
    let durations: Vec<(String, String, i64, i64)> = conn
        .prepare("SELECT tenant, isolation, duration_ms, COUNT(*) FROM workloads GROUP BY 1, 2, 3")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for sql in counter_sql(&durations) {
        conn.execute_batch(&sql).unwrap();
    }
    conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
}

fn psql(pg: &PgServer, database: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "postgres",
            "-d",
            database,
        ])
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-A",
            "-t",
            "-F",
            "|",
            "-c",
            sql,
        ])
        .output()
        .expect("psql (PostgreSQL's client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn seed_postgres(pg: &PgServer, url: &str) {
    let database = url.rsplit('/').next().unwrap();
    // Migrate the schema first, as a node would.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(vulcan_store::PgStore::connect(url)).unwrap();
    let row = ROW_SQL
        .replace("{pad}", "lpad(i::text, 19, '0')")
        .replace("{i}", "i")
        .replace("{{}}", "{}");
    psql(
        pg,
        database,
        &format!(
            "INSERT INTO workloads ({COLUMNS}) SELECT {row} FROM generate_series(0, {}) AS i",
            ROWS - 1
        ),
    );
    let durations: Vec<(String, String, i64, i64)> = psql(
        pg,
        database,
        "SELECT tenant, isolation, duration_ms, COUNT(*) FROM workloads GROUP BY 1, 2, 3",
    )
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        Some((
            f.first()?.to_string(),
            f.get(1)?.to_string(),
            f.get(2)?.parse().ok()?,
            f.get(3)?.parse().ok()?,
        ))
    })
    .collect();
    for sql in counter_sql(&durations) {
        psql(pg, database, &sql);
    }
    psql(pg, database, "ANALYZE");
}

/// The figures against one server holding the rows.
fn figures(label: &str, server: &Server, n: usize) {
    let get = |path: &str, key: &str| {
        let r = ureq::get(&server.url(path))
            .set("X-API-Key", key)
            .call()
            .unwrap();
        r.into_json::<serde_json::Value>().unwrap()
    };
    let key = {
        let r = ureq::post(&server.url("/v1/keys"))
            .set("X-API-Key", ADMIN)
            .send_json(serde_json::json!({"name": "big", "role": "viewer", "tenant": "big"}))
            .unwrap();
        r.into_json::<serde_json::Value>().unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = get("/v1/workloads?limit=20", ADMIN);
    assert_eq!(first["total"], ROWS as u64);
    let middle = format!("01BENCH{:019}", ROWS / 2);
    let cases: [(&str, String, &str); 8] = [
        ("GET /v1/workloads", "/v1/workloads".into(), ADMIN),
        (
            "GET /v1/workloads (tenant key)",
            "/v1/workloads".into(),
            &key,
        ),
        ("GET /v1/stats", "/v1/stats".into(), ADMIN),
        ("GET /v1/stats (tenant key)", "/v1/stats".into(), &key),
        (
            "GET /v1/workloads?status=failed&isolation=gvisor",
            "/v1/workloads?status=failed&isolation=gvisor".into(),
            ADMIN,
        ),
        (
            "GET /v1/workloads?offset=500000",
            "/v1/workloads?offset=500000".into(),
            ADMIN,
        ),
        (
            "GET /v1/workloads?after=<middle>",
            format!("/v1/workloads?after={middle}"),
            ADMIN,
        ),
        (
            "GET /v1/workloads?after=<middle> (tenant key)",
            format!("/v1/workloads?after={middle}"),
            &key,
        ),
    ];
    for (name, path, key) in cases {
        measure(&format!("{label}: {name}"), n, 1, || {
            let page = get(&path, key);
            assert!(page.is_object(), "{page}");
        })
        .print();
    }
}

pub fn run(n: usize) {
    let t = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    seed_sqlite(tmp.path());
    println!(
        "{:<46} {:.1} s",
        "seeding 1,000,000 workloads (SQLite)",
        t.elapsed().as_secs_f64()
    );
    let env = [
        ("VULCAN_AUTH", "on"),
        ("VULCAN_ADMIN_KEY", ADMIN),
        ("VULCAN_ISOLATE_POOL_SIZE", "0"),
    ];
    let server = Server::start_in(tmp.path(), &env);
    figures("sqlite 1M", &server, n);
    drop(server);

    let pg = PgServer::start().expect("PostgreSQL (scripts/setup.sh installs it)");
    let url = pg.database().unwrap();
    let t = Instant::now();
    seed_postgres(&pg, &url);
    println!(
        "{:<46} {:.1} s",
        "seeding 1,000,000 workloads (PostgreSQL)",
        t.elapsed().as_secs_f64()
    );
    let mut env = env.to_vec();
    env.push(("VULCAN_DATABASE_URL", &url));
    env.push((
        "VULCAN_SECRET_KEY",
        "Y2x1c3Rlci10ZXN0LWtleS0zMi1ieXRlcy1sb25nISE=",
    ));
    let server = Server::start(&env);
    figures("postgres 1M", &server, n);
}
