//! Versioned schema migrations, tracked in `PRAGMA user_version`.

use rusqlite::{Connection, Transaction};

use crate::DurationHistogram;

/// One step of the schema: SQL, or SQL then a Rust backfill.
enum Step {
    Sql(&'static str),
    SqlThen(&'static str, fn(&Transaction) -> rusqlite::Result<()>),
}

use Step::{Sql, SqlThen};

/// Each entry upgrades the schema by one version. Never edit one that has shipped: add more.
const MIGRATIONS: &[Step] = &[
    // 1: workloads, their log lines, and the counters behind /v1/stats.
    Sql(r#"
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
    "#),
    // 2: benchmark reports, kept whole as JSON.
    Sql(r#"
    CREATE TABLE benchmarks (
        id         TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        report     TEXT NOT NULL
    );
    "#),
    // 3: tenants, API keys (hashes only), the append-only audit log, tenant quotas.
    Sql(r#"
    ALTER TABLE workloads ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
    CREATE INDEX workloads_by_tenant ON workloads (tenant, id);
    CREATE INDEX workloads_by_tenant_status ON workloads (tenant, status, isolation, id);

    CREATE TABLE api_keys (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        role        TEXT NOT NULL,
        tenant      TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER,
        revoked_at  INTEGER,
        created_by  TEXT NOT NULL
    );

    CREATE TABLE audit_log (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        at      INTEGER NOT NULL,
        actor   TEXT NOT NULL,
        role    TEXT,
        tenant  TEXT,
        action  TEXT NOT NULL,
        target  TEXT,
        outcome TEXT NOT NULL,
        status  INTEGER NOT NULL,
        detail  TEXT
    );
    CREATE INDEX audit_by_action ON audit_log (action, seq);
    CREATE INDEX audit_by_actor ON audit_log (actor, seq);
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

    CREATE TABLE tenant_quotas (
        tenant         TEXT PRIMARY KEY,
        max_concurrent INTEGER NOT NULL,
        per_minute     INTEGER NOT NULL,
        max_cpus       INTEGER NOT NULL,
        max_mem_mb     INTEGER NOT NULL
    );
    "#),
    // 4: preparation time; failed logins recorded in aggregate (a count per row); the
    // audit log's retention, enforced by the server alone: a delete is refused unless the
    // pruning transaction has opened the gate, and only for rows older than its cutoff.
    Sql(r#"
    ALTER TABLE workloads ADD COLUMN prepare_ms INTEGER;
    ALTER TABLE audit_log ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX audit_by_time ON audit_log (at);
    CREATE TABLE audit_prune_gate (cutoff INTEGER NOT NULL);
    DROP TRIGGER audit_log_no_delete;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        WHEN NOT EXISTS (SELECT 1 FROM audit_prune_gate WHERE cutoff > old.at)
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#),
    // 5: the cluster's queue (claims, kill requests; `node_id` is '' until a node claims
    // a workload), counters per tenant (its stats and list totals never scan), what each
    // tenant's active workloads use (its quota, checked in the inserting transaction),
    // nodes and their heartbeats, and images registered once for every node.
    SqlThen(
        r#"
    ALTER TABLE workloads ADD COLUMN claimed_by TEXT;
    ALTER TABLE workloads ADD COLUMN claimed_at INTEGER;
    ALTER TABLE workloads ADD COLUMN kill_requested_at INTEGER;
    UPDATE workloads SET claimed_by = node_id WHERE status = 'running';
    UPDATE workloads SET node_id = '' WHERE status = 'pending';
    CREATE INDEX workloads_queue ON workloads (isolation, id)
        WHERE status = 'pending' AND claimed_by IS NULL;
    CREATE INDEX workloads_claimed ON workloads (claimed_by)
        WHERE status = 'pending' AND claimed_by IS NOT NULL;
    CREATE INDEX workloads_running ON workloads (node_id) WHERE status = 'running';
    CREATE INDEX workloads_by_tenant_time ON workloads (tenant, created_at);

    CREATE TABLE tenant_counts (
        tenant    TEXT NOT NULL,
        isolation TEXT NOT NULL,
        status    TEXT NOT NULL,
        n         INTEGER NOT NULL,
        PRIMARY KEY (tenant, isolation, status)
    ) WITHOUT ROWID;
    INSERT INTO tenant_counts (tenant, isolation, status, n)
        SELECT tenant, isolation, status, COUNT(*) FROM workloads
        GROUP BY tenant, isolation, status;

    CREATE TABLE tenant_durations (
        tenant    TEXT NOT NULL,
        isolation TEXT NOT NULL,
        bucket    INTEGER NOT NULL,
        n         INTEGER NOT NULL,
        sum_ms    INTEGER NOT NULL,
        PRIMARY KEY (tenant, isolation, bucket)
    ) WITHOUT ROWID;

    CREATE TABLE tenant_usage (
        tenant TEXT PRIMARY KEY,
        active INTEGER NOT NULL,
        cpus   INTEGER NOT NULL,
        mem_mb INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO tenant_usage (tenant, active, cpus, mem_mb)
        SELECT tenant, COUNT(*), SUM(cpu_limit), SUM(mem_limit) FROM workloads
        WHERE status IN ('pending', 'running') GROUP BY tenant;

    CREATE TABLE nodes (
        id           TEXT PRIMARY KEY,
        record       TEXT NOT NULL,
        heartbeat_at INTEGER NOT NULL,
        left_at      INTEGER,
        lost_at      INTEGER
    );

    CREATE TABLE images (
        reference     TEXT PRIMARY KEY,
        record        TEXT NOT NULL,
        registered_at INTEGER NOT NULL
    );
    CREATE TABLE image_nodes (
        reference TEXT NOT NULL,
        node_id   TEXT NOT NULL,
        pulled_at INTEGER NOT NULL,
        PRIMARY KEY (reference, node_id)
    ) WITHOUT ROWID;
    "#,
        backfill_tenant_durations,
    ),
    // 6: functions, their immutable versions, and the invocations among the workloads.
    Sql(r#"
    ALTER TABLE workloads ADD COLUMN function TEXT;
    ALTER TABLE workloads ADD COLUMN function_version INTEGER;
    CREATE INDEX workloads_by_function ON workloads (function, id) WHERE function IS NOT NULL;
    CREATE INDEX workloads_by_tenant_function ON workloads (tenant, function, id)
        WHERE function IS NOT NULL;

    CREATE TABLE functions (
        tenant         TEXT NOT NULL,
        name           TEXT NOT NULL,
        active_version INTEGER NOT NULL,
        latest_version INTEGER NOT NULL,
        runtime        TEXT NOT NULL,
        public         INTEGER NOT NULL,
        invocations    INTEGER NOT NULL DEFAULT 0,
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        deleted_at     INTEGER,
        PRIMARY KEY (tenant, name)
    );
    CREATE TABLE function_versions (
        tenant       TEXT NOT NULL,
        name         TEXT NOT NULL,
        version      INTEGER NOT NULL,
        digest       TEXT NOT NULL,
        record       TEXT NOT NULL,
        code_archive BLOB,
        created_at   INTEGER NOT NULL,
        PRIMARY KEY (tenant, name, version)
    );
    "#),
    // 7: schedules and the runs they fire; secrets, sealed.
    Sql(r#"
    ALTER TABLE workloads ADD COLUMN trigger_kind TEXT;
    ALTER TABLE workloads ADD COLUMN trigger_id TEXT;
    CREATE INDEX workloads_by_trigger ON workloads (trigger_id, id) WHERE trigger_id IS NOT NULL;

    CREATE TABLE schedules (
        id               TEXT PRIMARY KEY,
        tenant           TEXT NOT NULL,
        function         TEXT NOT NULL,
        cron             TEXT NOT NULL,
        timezone         TEXT NOT NULL,
        input            TEXT NOT NULL,
        overlap          TEXT NOT NULL,
        enabled          INTEGER NOT NULL,
        next_run_at      INTEGER,
        last_run_at      INTEGER,
        last_workload_id TEXT,
        skipped_ticks    INTEGER NOT NULL DEFAULT 0,
        last_skipped_at  INTEGER,
        last_skip_reason TEXT,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL
    );
    CREATE INDEX schedules_due ON schedules (next_run_at) WHERE enabled = 1;

    CREATE TABLE secrets (
        tenant     TEXT NOT NULL,
        name       TEXT NOT NULL,
        version    INTEGER NOT NULL,
        key_id     TEXT NOT NULL,
        nonce      BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, name)
    ) WITHOUT ROWID;
    "#),
    // 8: what each run used, per-tenant usage totals behind /v1/stats, and request ids.
    Sql(r#"
    ALTER TABLE workloads ADD COLUMN cpu_time_ms INTEGER;
    ALTER TABLE workloads ADD COLUMN peak_memory_bytes INTEGER;
    ALTER TABLE workloads ADD COLUMN max_processes INTEGER;
    ALTER TABLE workloads ADD COLUMN request_id TEXT;
    ALTER TABLE audit_log ADD COLUMN request_id TEXT;
    CREATE TABLE usage_totals (
        tenant     TEXT NOT NULL,
        isolation  TEXT NOT NULL,
        n          INTEGER NOT NULL,
        cpu_ms     INTEGER NOT NULL,
        peak_bytes INTEGER NOT NULL,
        PRIMARY KEY (tenant, isolation)
    ) WITHOUT ROWID;
    "#),
    // 9: a tenant's schedule quota (how many, how often); NULL is the server's default.
    Sql(r#"
    ALTER TABLE tenant_quotas ADD COLUMN max_schedules INTEGER;
    ALTER TABLE tenant_quotas ADD COLUMN min_schedule_interval_s INTEGER;
    CREATE INDEX schedules_by_tenant ON schedules (tenant, id);
    "#),
    // 10: network egress: bytes a run sent and received, and what a tenant may reach.
    Sql(r#"
    ALTER TABLE workloads ADD COLUMN net_tx_bytes INTEGER;
    ALTER TABLE workloads ADD COLUMN net_rx_bytes INTEGER;
    ALTER TABLE tenant_quotas ADD COLUMN egress_allow TEXT;
    "#),
    // 11: what each node keeps of an image for microVMs (JSON: root and snapshot sizes).
    Sql(r#"
    ALTER TABLE image_nodes ADD COLUMN microvm TEXT;
    "#),
    // 12: sandboxes, each kept whole as JSON beside what lists filter on.
    Sql(r#"
    CREATE TABLE sandboxes (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        node_id TEXT NOT NULL,
        state TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX sandboxes_by_tenant ON sandboxes (tenant, id);
    CREATE INDEX sandboxes_by_node ON sandboxes (node_id, state);
    "#),
    // 13: volumes, each kept whole as JSON, by tenant and name.
    Sql(r#"
    CREATE TABLE volumes (
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (tenant, name)
    );
    "#),
    // 14: queues (each kept whole as JSON, with its dead-letter queue's id and counters),
    // their messages, the dedup ids remembered for a window, and topics: the same SQL as
    // PostgreSQL's 10.
    Sql(crate::queues::SCHEMA),
    // 15: follow-ups of async workloads (retries, failure queues, callbacks) and POSTs to
    // make: the same SQL as PostgreSQL's 11.
    Sql(crate::followups::SCHEMA),
    // 16: the volumes a workload mounts, and the node they are on (which runs it): the
    // same SQL as PostgreSQL's 12.
    Sql(crate::sandboxes::WORKLOAD_VOLUMES_SCHEMA),
    // 17: the trace a workload is part of: the same SQL as PostgreSQL's 13.
    Sql(crate::sandboxes::WORKLOAD_TRACE_SCHEMA),
];

/// Each tenant's duration buckets, from the workloads already finished.
fn backfill_tenant_durations(tx: &Transaction) -> rusqlite::Result<()> {
    let mut rows = tx.prepare(
        "SELECT tenant, isolation, duration_ms FROM workloads WHERE duration_ms IS NOT NULL",
    )?;
    let mut add = tx.prepare(
        "INSERT INTO tenant_durations (tenant, isolation, bucket, n, sum_ms) VALUES (?1, ?2, ?3, 1, ?4)
         ON CONFLICT (tenant, isolation, bucket) DO UPDATE SET n = n + 1, sum_ms = sum_ms + excluded.sum_ms",
    )?;
    let mut cursor = rows.query([])?;
    while let Some(row) = cursor.next()? {
        let (tenant, isolation, ms): (String, String, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        let ms = ms.max(0);
        add.execute(rusqlite::params![
            tenant,
            isolation,
            DurationHistogram::bucket_of(ms as u64),
            ms
        ])?;
    }
    Ok(())
}

/// Brings the schema up to the latest version, one transaction per migration.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, step) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        match step {
            Sql(sql) => tx.execute_batch(sql)?,
            SqlThen(sql, backfill) => {
                tx.execute_batch(sql)?;
                backfill(&tx)?;
            }
        }
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The schema version this build writes.
pub fn latest_version() -> usize {
    MIGRATIONS.len()
}
