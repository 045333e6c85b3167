//! Versioned schema migrations, tracked in `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry upgrades the schema by one version. Never edit one that has shipped: add more.
const MIGRATIONS: &[&str] = &[
    // 1: workloads, their log lines, and the counters behind /v1/stats.
    r#"
    CREATE TABLE workloads (
        id                  TEXT PRIMARY KEY,
        status              TEXT NOT NULL,
        isolation           TEXT NOT NULL,
        requested_isolation TEXT NOT NULL,
        runtime             TEXT NOT NULL,
        node_id             TEXT NOT NULL,
        input_hash          TEXT NOT NULL,
        output              TEXT,
        exit_code           INTEGER,
        error               TEXT,
        cpu_limit           INTEGER NOT NULL,
        mem_limit           INTEGER NOT NULL,
        timeout_s           INTEGER NOT NULL,
        duration_ms         INTEGER,
        created_at          INTEGER NOT NULL,
        started_at          INTEGER,
        finished_at         INTEGER,
        spec                TEXT NOT NULL,
        code_archive        BLOB
    );
    CREATE INDEX workloads_by_status ON workloads (status, id);
    CREATE INDEX workloads_by_isolation ON workloads (isolation, id);
    CREATE INDEX workloads_by_isolation_status ON workloads (isolation, status, id);
    CREATE INDEX workloads_unfinished ON workloads (node_id, status)
        WHERE status IN ('pending', 'running');

    CREATE TABLE log_lines (
        workload_id TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        stream      TEXT NOT NULL,
        line        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (workload_id, seq)
    ) WITHOUT ROWID;

    CREATE TABLE workload_counts (
        isolation TEXT NOT NULL,
        status    TEXT NOT NULL,
        n         INTEGER NOT NULL,
        PRIMARY KEY (isolation, status)
    ) WITHOUT ROWID;

    CREATE TABLE duration_buckets (
        isolation TEXT NOT NULL,
        bucket    INTEGER NOT NULL,
        n         INTEGER NOT NULL,
        sum_ms    INTEGER NOT NULL,
        PRIMARY KEY (isolation, bucket)
    ) WITHOUT ROWID;
    "#,
    // 2: benchmark reports, kept whole as JSON.
    r#"
    CREATE TABLE benchmarks (
        id         TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        report     TEXT NOT NULL
    );
    "#,
];

/// Brings the schema up to the latest version, one transaction per migration.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The schema version this build writes.
pub fn latest_version() -> usize {
    MIGRATIONS.len()
}
