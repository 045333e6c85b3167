//! Versioned schema migrations for PostgreSQL, tracked in `schema_migrations`. Nodes that
//! start together take an advisory lock first: one migrates, the others then find the
//! schema current. Times are milliseconds since the epoch (BIGINT), as in the SQLite
//! store; JSON is kept as text.

use deadpool_postgres::Client;

use super::Fail;

/// The advisory lock key of migrations ("vulcan" in ASCII).
const MIGRATION_LOCK: i64 = 0x76756c63616e;

/// Each entry upgrades the schema by one version. Never edit one that has shipped: add more.
const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite store has at its version 5, in one step.
    r#"
    CREATE TABLE workloads (
        id                  TEXT PRIMARY KEY,
        status              TEXT NOT NULL,
        isolation           TEXT NOT NULL,
        requested_isolation TEXT NOT NULL,
        runtime             TEXT NOT NULL,
        node_id             TEXT NOT NULL DEFAULT '',
        tenant              TEXT NOT NULL,
        input_hash          TEXT NOT NULL,
        output              TEXT,
        exit_code           BIGINT,
        error               TEXT,
        cpu_limit           BIGINT NOT NULL,
        mem_limit           BIGINT NOT NULL,
        timeout_s           BIGINT NOT NULL,
        duration_ms         BIGINT,
        prepare_ms          BIGINT,
        created_at          BIGINT NOT NULL,
        started_at          BIGINT,
        finished_at         BIGINT,
        spec                TEXT NOT NULL,
        code_archive        BYTEA,
        claimed_by          TEXT,
        claimed_at          BIGINT,
        kill_requested_at   BIGINT
    );
    CREATE INDEX workloads_by_status ON workloads (status, id);
    CREATE INDEX workloads_by_isolation ON workloads (isolation, id);
    CREATE INDEX workloads_by_isolation_status ON workloads (isolation, status, id);
    CREATE INDEX workloads_by_tenant ON workloads (tenant, id);
    CREATE INDEX workloads_by_tenant_status ON workloads (tenant, status, isolation, id);
    CREATE INDEX workloads_by_tenant_time ON workloads (tenant, created_at);
    CREATE INDEX workloads_queue ON workloads (isolation, id)
        WHERE status = 'pending' AND claimed_by IS NULL;
    CREATE INDEX workloads_claimed ON workloads (claimed_by)
        WHERE status = 'pending' AND claimed_by IS NOT NULL;
    CREATE INDEX workloads_running ON workloads (node_id) WHERE status = 'running';

    CREATE TABLE log_lines (
        workload_id TEXT NOT NULL,
        seq         BIGINT NOT NULL,
        stream      TEXT NOT NULL,
        line        TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        PRIMARY KEY (workload_id, seq)
    );

    CREATE TABLE workload_counts (
        isolation TEXT NOT NULL,
        status    TEXT NOT NULL,
        n         BIGINT NOT NULL,
        PRIMARY KEY (isolation, status)
    );
    CREATE TABLE duration_buckets (
        isolation TEXT NOT NULL,
        bucket    BIGINT NOT NULL,
        n         BIGINT NOT NULL,
        sum_ms    BIGINT NOT NULL,
        PRIMARY KEY (isolation, bucket)
    );
    CREATE TABLE tenant_counts (
        tenant    TEXT NOT NULL,
        isolation TEXT NOT NULL,
        status    TEXT NOT NULL,
        n         BIGINT NOT NULL,
        PRIMARY KEY (tenant, isolation, status)
    );
    CREATE TABLE tenant_durations (
        tenant    TEXT NOT NULL,
        isolation TEXT NOT NULL,
        bucket    BIGINT NOT NULL,
        n         BIGINT NOT NULL,
        sum_ms    BIGINT NOT NULL,
        PRIMARY KEY (tenant, isolation, bucket)
    );
    CREATE TABLE tenant_usage (
        tenant TEXT PRIMARY KEY,
        active BIGINT NOT NULL,
        cpus   BIGINT NOT NULL,
        mem_mb BIGINT NOT NULL
    );

    CREATE TABLE benchmarks (
        id         TEXT PRIMARY KEY,
        created_at BIGINT NOT NULL,
        report     TEXT NOT NULL
    );

    CREATE TABLE api_keys (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        role        TEXT NOT NULL,
        tenant      TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        expires_at  BIGINT,
        revoked_at  BIGINT,
        created_by  TEXT NOT NULL
    );

    CREATE TABLE audit_log (
        seq     BIGSERIAL PRIMARY KEY,
        at      BIGINT NOT NULL,
        actor   TEXT NOT NULL,
        role    TEXT,
        tenant  TEXT,
        action  TEXT NOT NULL,
        target  TEXT,
        outcome TEXT NOT NULL,
        status  BIGINT NOT NULL,
        detail  TEXT,
        count   BIGINT NOT NULL DEFAULT 1
    );
    CREATE INDEX audit_by_action ON audit_log (action, seq);
    CREATE INDEX audit_by_actor ON audit_log (actor, seq);
    CREATE INDEX audit_by_time ON audit_log (at);
    CREATE TABLE audit_prune_gate (cutoff BIGINT NOT NULL);
    CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_prune_gate WHERE cutoff > OLD.at) THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'the audit log is append-only';
    END
    $$ LANGUAGE plpgsql;
    CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
    CREATE FUNCTION audit_log_no_truncate() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'the audit log is append-only';
    END
    $$ LANGUAGE plpgsql;
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_no_truncate();

    CREATE TABLE tenant_quotas (
        tenant         TEXT PRIMARY KEY,
        max_concurrent BIGINT NOT NULL,
        per_minute     BIGINT NOT NULL,
        max_cpus       BIGINT NOT NULL,
        max_mem_mb     BIGINT NOT NULL
    );

    CREATE TABLE nodes (
        id           TEXT PRIMARY KEY,
        record       TEXT NOT NULL,
        heartbeat_at BIGINT NOT NULL,
        left_at      BIGINT,
        lost_at      BIGINT
    );

    CREATE TABLE images (
        reference     TEXT PRIMARY KEY,
        record        TEXT NOT NULL,
        registered_at BIGINT NOT NULL
    );
    CREATE TABLE image_nodes (
        reference TEXT NOT NULL,
        node_id   TEXT NOT NULL,
        pulled_at BIGINT NOT NULL,
        PRIMARY KEY (reference, node_id)
    );
    "#,
    // 2: functions, their immutable versions, and the invocations among the workloads.
    r#"
    ALTER TABLE workloads ADD COLUMN function TEXT;
    ALTER TABLE workloads ADD COLUMN function_version BIGINT;
    CREATE INDEX workloads_by_function ON workloads (function, id) WHERE function IS NOT NULL;
    CREATE INDEX workloads_by_tenant_function ON workloads (tenant, function, id)
        WHERE function IS NOT NULL;

    CREATE TABLE functions (
        tenant         TEXT NOT NULL,
        name           TEXT NOT NULL,
        active_version BIGINT NOT NULL,
        latest_version BIGINT NOT NULL,
        runtime        TEXT NOT NULL,
        public         BOOLEAN NOT NULL,
        invocations    BIGINT NOT NULL DEFAULT 0,
        created_at     BIGINT NOT NULL,
        updated_at     BIGINT NOT NULL,
        deleted_at     BIGINT,
        PRIMARY KEY (tenant, name)
    );
    CREATE TABLE function_versions (
        tenant       TEXT NOT NULL,
        name         TEXT NOT NULL,
        version      BIGINT NOT NULL,
        digest       TEXT NOT NULL,
        record       TEXT NOT NULL,
        code_archive BYTEA,
        created_at   BIGINT NOT NULL,
        PRIMARY KEY (tenant, name, version)
    );
    "#,
    // 3: schedules and the runs they fire; secrets, sealed.
    r#"
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
        enabled          BOOLEAN NOT NULL,
        next_run_at      BIGINT,
        last_run_at      BIGINT,
        last_workload_id TEXT,
        skipped_ticks    BIGINT NOT NULL DEFAULT 0,
        last_skipped_at  BIGINT,
        last_skip_reason TEXT,
        created_at       BIGINT NOT NULL,
        updated_at       BIGINT NOT NULL
    );
    CREATE INDEX schedules_due ON schedules (next_run_at) WHERE enabled;

    CREATE TABLE secrets (
        tenant     TEXT NOT NULL,
        name       TEXT NOT NULL,
        version    BIGINT NOT NULL,
        key_id     TEXT NOT NULL,
        nonce      BYTEA NOT NULL,
        ciphertext BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (tenant, name)
    );
    "#,
    // 4: what each run used, per-tenant usage totals behind /v1/stats, and request ids.
    r#"
    ALTER TABLE workloads ADD COLUMN cpu_time_ms BIGINT;
    ALTER TABLE workloads ADD COLUMN peak_memory_bytes BIGINT;
    ALTER TABLE workloads ADD COLUMN max_processes BIGINT;
    ALTER TABLE workloads ADD COLUMN request_id TEXT;
    ALTER TABLE audit_log ADD COLUMN request_id TEXT;
    CREATE TABLE usage_totals (
        tenant     TEXT NOT NULL,
        isolation  TEXT NOT NULL,
        n          BIGINT NOT NULL,
        cpu_ms     BIGINT NOT NULL,
        peak_bytes BIGINT NOT NULL,
        PRIMARY KEY (tenant, isolation)
    );
    "#,
    // 5: a tenant's schedule quota (how many, how often); NULL is the server's default.
    r#"
    ALTER TABLE tenant_quotas ADD COLUMN max_schedules BIGINT;
    ALTER TABLE tenant_quotas ADD COLUMN min_schedule_interval_s BIGINT;
    CREATE INDEX schedules_by_tenant ON schedules (tenant, id);
    "#,
    // 6: network egress: bytes a run sent and received, and what a tenant may reach.
    r#"
    ALTER TABLE workloads ADD COLUMN net_tx_bytes BIGINT;
    ALTER TABLE workloads ADD COLUMN net_rx_bytes BIGINT;
    ALTER TABLE tenant_quotas ADD COLUMN egress_allow TEXT;
    "#,
    // 7: what each node keeps of an image for microVMs (JSON: root and snapshot sizes).
    r#"
    ALTER TABLE image_nodes ADD COLUMN microvm TEXT;
    "#,
    // 8: sandboxes, each kept whole as JSON beside what lists filter on.
    r#"
    CREATE TABLE sandboxes (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        node_id TEXT NOT NULL,
        state TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX sandboxes_by_tenant ON sandboxes (tenant, id);
    CREATE INDEX sandboxes_by_node ON sandboxes (node_id, state);
    "#,
    // 9: volumes, each kept whole as JSON, by tenant and name.
    r#"
    CREATE TABLE volumes (
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (tenant, name)
    );
    "#,
    // 10: queues (each kept whole as JSON, with its dead-letter queue's id and counters),
    // their messages, the dedup ids remembered for a window, and topics: the same SQL as
    // SQLite's 14.
    crate::queues::SCHEMA,
    // 11: follow-ups of async workloads (retries, failure queues, callbacks) and POSTs to
    // make: the same SQL as SQLite's 15.
    crate::followups::SCHEMA,
    // 12: the volumes a workload mounts, and the node they are on (which runs it): the
    // same SQL as SQLite's 16.
    crate::sandboxes::WORKLOAD_VOLUMES_SCHEMA,
    // 13: the trace a workload is part of: the same SQL as SQLite's 17.
    crate::sandboxes::WORKLOAD_TRACE_SCHEMA,
];

/// Brings the schema up to the latest version, one transaction per migration, under the
/// migration lock.
pub(crate) async fn migrate(client: &mut Client) -> Result<(), Fail> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result?;
    unlocked?;
    Ok(())
}

async fn apply(client: &mut Client) -> Result<(), Fail> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
    let current: i64 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let version = index as i64 + 1;
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// The schema version this build writes.
pub(crate) fn latest_version() -> usize {
    MIGRATIONS.len()
}
