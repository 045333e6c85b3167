//! Status changes on SQLite, each in its caller's transaction: checked against the state
//! machine and what the writer expects ([`Expect`]), with the counters behind the figures
//! (everyone's and each tenant's) and the tenant's share of active usage moved in the same
//! transaction.

use rusqlite::{params, OptionalExtension, Transaction};
use vulcan_domain::{Expect, StoreError, TerminalUpdate, Workload, WorkloadStatus};

use super::workloads::get_workload;
use super::{io, to_ms};
use crate::{stats, DurationHistogram};

/// Adds `delta` workloads of (isolation, status) to everyone's and the tenant's counters.
pub(super) fn count(
    tx: &Transaction,
    tenant: &str,
    isolation: &str,
    status: WorkloadStatus,
    delta: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO workload_counts (isolation, status, n) VALUES (?1, ?2, ?3)
         ON CONFLICT (isolation, status) DO UPDATE SET n = n + excluded.n",
    )?
    .execute(params![isolation, status.as_str(), delta])?;
    tx.prepare_cached(
        "INSERT INTO tenant_counts (tenant, isolation, status, n) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, isolation, status) DO UPDATE SET n = n + excluded.n",
    )?
    .execute(params![tenant, isolation, status.as_str(), delta])?;
    Ok(())
}

/// Adds (or with `sign` -1 takes back) one active workload's share of its tenant's usage.
pub(super) fn use_share(
    tx: &Transaction,
    tenant: &str,
    cpus: i64,
    mem_mb: i64,
    sign: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO tenant_usage (tenant, active, cpus, mem_mb) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant) DO UPDATE SET active = active + excluded.active,
             cpus = cpus + excluded.cpus, mem_mb = mem_mb + excluded.mem_mb",
    )?
    .execute(params![tenant, sign, sign * cpus, sign * mem_mb])?;
    Ok(())
}

/// Moves `id` from its current status to `to`, only if the state machine allows it and the
/// workload is still as `expect` says. The check and the write happen in
/// the caller's transaction, so a stale writer loses.
pub(super) fn transition(
    tx: &Transaction,
    id: &str,
    to: WorkloadStatus,
    expect: &Expect,
    apply: impl FnOnce(&Transaction, WorkloadStatus, &str) -> rusqlite::Result<()>,
) -> Result<Workload, StoreError> {
    type Row = (
        String,
        String,
        String,
        i64,
        i64,
        Option<String>,
        Option<String>,
    );
    let current: Option<Row> = tx
        .prepare_cached(
            "SELECT status, isolation, tenant, cpu_limit, mem_limit, claimed_by, node_id
             FROM workloads WHERE id = ?1",
        )
        .map_err(io)?
        .query_row([id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .optional()
        .map_err(io)?;
    let (from, isolation, tenant, cpus, mem_mb, claimed_by, node) =
        current.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    let from: WorkloadStatus = from.parse().map_err(io)?;
    from.transition(to)?;
    if !expect.holds(from, claimed_by.as_deref(), node.as_deref()) {
        // It moved on since the caller read it (another node claimed or started it).
        return Err(vulcan_domain::InvalidTransition { from, to }.into());
    }
    apply(tx, from, &isolation).map_err(io)?;
    count(tx, &tenant, &isolation, from, -1).map_err(io)?;
    count(tx, &tenant, &isolation, to, 1).map_err(io)?;
    if to.is_terminal() {
        use_share(tx, &tenant, cpus, mem_mb, -1).map_err(io)?;
    }
    get_workload(tx, id)
}

/// Records a terminal status (with its duration in the counters, if it ran).
pub(super) fn finish_in(
    tx: &Transaction,
    id: &str,
    u: &TerminalUpdate,
    expect: &Expect,
) -> Result<Workload, StoreError> {
    if !u.status.is_terminal() {
        return Err(vulcan_domain::InvalidTransition {
            from: WorkloadStatus::Running,
            to: u.status,
        }
        .into());
    }
    let w = transition(tx, id, u.status, expect, |tx, from, isolation| {
        // A workload that never ran has no duration worth counting.
        let duration = u.duration_ms.filter(|_| from == WorkloadStatus::Running);
        let usage = u.usage.filter(|_| from == WorkloadStatus::Running);
        tx.prepare_cached(
            "UPDATE workloads SET status = ?2, output = ?3, exit_code = ?4, error = ?5,
                 finished_at = ?6, duration_ms = ?7, prepare_ms = ?8, cpu_time_ms = ?9,
                 peak_memory_bytes = ?10, max_processes = ?11,
                 net_tx_bytes = ?12, net_rx_bytes = ?13
             WHERE id = ?1",
        )?
        .execute(params![
            id,
            u.status.as_str(),
            u.output,
            u.exit_code,
            u.error,
            to_ms(u.finished_at),
            duration.map(|d| d as i64),
            u.prepare_ms.map(|d| d as i64),
            usage.map(|x| x.cpu_time_ms as i64),
            usage.map(|x| x.peak_memory_bytes as i64),
            usage.and_then(|x| x.max_processes).map(|v| v as i64),
            usage.and_then(|x| x.net_tx_bytes).map(|v| v as i64),
            usage.and_then(|x| x.net_rx_bytes).map(|v| v as i64),
        ])?;
        if let Some(x) = usage {
            let tenant: String =
                tx.query_row("SELECT tenant FROM workloads WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
            tx.prepare_cached(&stats::usage_upsert(|n| format!("?{n}")))?
                .execute(params![
                    tenant,
                    isolation,
                    x.cpu_time_ms as i64,
                    x.peak_memory_bytes as i64
                ])?;
        }
        if let Some(ms) = duration {
            let tenant: String =
                tx.query_row("SELECT tenant FROM workloads WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
            let bucket = DurationHistogram::bucket_of(ms);
            tx.prepare_cached(
                "INSERT INTO duration_buckets (isolation, bucket, n, sum_ms) VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT (isolation, bucket) DO UPDATE SET n = n + 1, sum_ms = sum_ms + excluded.sum_ms",
            )?
            .execute(params![isolation, bucket, ms as i64])?;
            tx.prepare_cached(
                "INSERT INTO tenant_durations (tenant, isolation, bucket, n, sum_ms) VALUES (?1, ?2, ?3, 1, ?4)
                 ON CONFLICT (tenant, isolation, bucket) DO UPDATE SET n = n + 1, sum_ms = sum_ms + excluded.sum_ms",
            )?
            .execute(params![tenant, isolation, bucket, ms as i64])?;
        }
        Ok(())
    })?;
    // Its history is complete when the status turns terminal: in the same transaction.
    super::logs::insert_lines(tx, id, &u.last_lines)?;
    Ok(w)
}

/// Puts a claimed, not started workload back in the queue.
pub(super) fn unclaim_one(tx: &Transaction, id: &str) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "UPDATE workloads SET claimed_by = NULL, claimed_at = NULL, node_id = ''
         WHERE id = ?1 AND status = 'pending'",
    )?
    .execute([id])
}
