//! Status changes on PostgreSQL, each in its caller's transaction: checked against the
//! state machine and what the writer expects ([`Expect`]), with the counters behind the
//! figures (everyone's and each tenant's, rows locked in the order pending → running →
//! terminal: no deadlocks) and the tenant's share of active usage moved in the same
//! transaction.

use deadpool_postgres::Transaction;
use vulcan_domain::{Expect, StoreError, TerminalUpdate, Workload, WorkloadStatus};

use super::workloads::{get_workload, parse, to_ms};
use super::Fail;
use crate::{stats, DurationHistogram};

/// The row facts a transition needs, the row locked.
pub(super) struct Current {
    status: WorkloadStatus,
    isolation: String,
    tenant: String,
    cpus: i64,
    mem_mb: i64,
    claimed_by: Option<String>,
}

/// Adds `delta` to everyone's count of (isolation, status); returns the new count.
pub(super) async fn count_all(
    tx: &Transaction<'_>,
    isolation: &str,
    status: WorkloadStatus,
    delta: i64,
) -> Result<i64, Fail> {
    let st = tx
        .prepare_cached(
            "INSERT INTO workload_counts (isolation, status, n) VALUES ($1, $2, $3)
             ON CONFLICT (isolation, status) DO UPDATE SET n = workload_counts.n + EXCLUDED.n
             RETURNING n",
        )
        .await?;
    Ok(tx
        .query_one(&st, &[&isolation, &status.as_str(), &delta])
        .await?
        .get(0))
}

pub(super) async fn count_tenant(
    tx: &Transaction<'_>,
    tenant: &str,
    isolation: &str,
    status: WorkloadStatus,
    delta: i64,
) -> Result<(), Fail> {
    let st = tx
        .prepare_cached(
            "INSERT INTO tenant_counts (tenant, isolation, status, n) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, isolation, status) DO UPDATE SET n = tenant_counts.n + EXCLUDED.n",
        )
        .await?;
    tx.execute(&st, &[&tenant, &isolation, &status.as_str(), &delta])
        .await?;
    Ok(())
}

pub(super) async fn use_share(
    tx: &Transaction<'_>,
    tenant: &str,
    cpus: i64,
    mem_mb: i64,
    sign: i64,
) -> Result<(), Fail> {
    let st = tx
        .prepare_cached(
            "INSERT INTO tenant_usage (tenant, active, cpus, mem_mb) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant) DO UPDATE SET active = tenant_usage.active + EXCLUDED.active,
                 cpus = tenant_usage.cpus + EXCLUDED.cpus, mem_mb = tenant_usage.mem_mb + EXCLUDED.mem_mb",
        )
        .await?;
    tx.execute(&st, &[&tenant, &sign, &(sign * cpus), &(sign * mem_mb)])
        .await?;
    Ok(())
}

/// Moves `id` to `to` if the state machine allows it and the workload is still as
/// `expect` says; the caller writes the row's new fields.
pub(super) async fn transition(
    tx: &Transaction<'_>,
    id: &str,
    to: WorkloadStatus,
    expect: &Expect,
) -> Result<Current, Fail> {
    let st = tx
        .prepare_cached(
            "SELECT status, isolation, tenant, cpu_limit, mem_limit, claimed_by, node_id
             FROM workloads WHERE id = $1 FOR UPDATE",
        )
        .await?;
    let row = tx
        .query_opt(&st, &[&id])
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    let current = Current {
        status: parse(&row, 0)?,
        isolation: row.get(1),
        tenant: row.get(2),
        cpus: row.get(3),
        mem_mb: row.get(4),
        claimed_by: row.get(5),
    };
    let node: Option<String> = row.get(6);
    current.status.transition(to)?;
    if !expect.holds(
        current.status,
        current.claimed_by.as_deref(),
        node.as_deref(),
    ) {
        // It moved on since the caller read it (another node claimed or started it).
        return Err(vulcan_domain::InvalidTransition {
            from: current.status,
            to,
        }
        .into());
    }
    // Counter rows in a fixed order (pending, running, then terminal): no deadlocks.
    count_all(tx, &current.isolation, current.status, -1).await?;
    count_all(tx, &current.isolation, to, 1).await?;
    count_tenant(tx, &current.tenant, &current.isolation, current.status, -1).await?;
    count_tenant(tx, &current.tenant, &current.isolation, to, 1).await?;
    if to.is_terminal() {
        use_share(tx, &current.tenant, current.cpus, current.mem_mb, -1).await?;
    }
    Ok(current)
}

/// Records a terminal status, with its duration in the counters if it ran.
pub(super) async fn finish_in(
    tx: &Transaction<'_>,
    id: &str,
    u: &TerminalUpdate,
    expect: &Expect,
) -> Result<Workload, Fail> {
    if !u.status.is_terminal() {
        return Err(vulcan_domain::InvalidTransition {
            from: WorkloadStatus::Running,
            to: u.status,
        }
        .into());
    }
    let current = transition(tx, id, u.status, expect).await?;
    let duration = u
        .duration_ms
        .filter(|_| current.status == WorkloadStatus::Running)
        .map(|d| d as i64);
    let usage = u
        .usage
        .filter(|_| current.status == WorkloadStatus::Running);
    let st = tx
        .prepare_cached(
            "UPDATE workloads SET status = $2, output = $3, exit_code = $4, error = $5,
                 finished_at = $6, duration_ms = $7, prepare_ms = $8, cpu_time_ms = $9,
                 peak_memory_bytes = $10, max_processes = $11
             WHERE id = $1",
        )
        .await?;
    tx.execute(
        &st,
        &[
            &id,
            &u.status.as_str(),
            &u.output,
            &u.exit_code.map(i64::from),
            &u.error,
            &to_ms(u.finished_at),
            &duration,
            &u.prepare_ms.map(|d| d as i64),
            &usage.map(|x| x.cpu_time_ms as i64),
            &usage.map(|x| x.peak_memory_bytes as i64),
            &usage.and_then(|x| x.max_processes).map(|v| v as i64),
        ],
    )
    .await?;
    if let Some(x) = usage {
        let st = tx
            .prepare_cached(&stats::usage_upsert(|n| format!("${n}")))
            .await?;
        tx.execute(
            &st,
            &[
                &current.tenant,
                &current.isolation,
                &(x.cpu_time_ms as i64),
                &(x.peak_memory_bytes as i64),
            ],
        )
        .await?;
    }
    if let Some(ms) = duration {
        let bucket = DurationHistogram::bucket_of(ms as u64);
        let st = tx
            .prepare_cached(
                "INSERT INTO duration_buckets (isolation, bucket, n, sum_ms) VALUES ($1, $2, 1, $3)
                 ON CONFLICT (isolation, bucket) DO UPDATE SET n = duration_buckets.n + 1,
                     sum_ms = duration_buckets.sum_ms + EXCLUDED.sum_ms",
            )
            .await?;
        tx.execute(&st, &[&current.isolation, &bucket, &ms]).await?;
        let st = tx
            .prepare_cached(
                "INSERT INTO tenant_durations (tenant, isolation, bucket, n, sum_ms) VALUES ($1, $2, $3, 1, $4)
                 ON CONFLICT (tenant, isolation, bucket) DO UPDATE SET n = tenant_durations.n + 1,
                     sum_ms = tenant_durations.sum_ms + EXCLUDED.sum_ms",
            )
            .await?;
        tx.execute(&st, &[&current.tenant, &current.isolation, &bucket, &ms])
            .await?;
    }
    get_workload(tx, id).await
}

/// Puts a claimed, not started workload back in the queue.
pub(super) async fn unclaim_one(tx: &Transaction<'_>, id: &str) -> Result<u64, Fail> {
    let st = tx
        .prepare_cached(
            "UPDATE workloads SET claimed_by = NULL, claimed_at = NULL, node_id = ''
             WHERE id = $1 AND status = 'pending'",
        )
        .await?;
    Ok(tx.execute(&st, &[&id]).await?)
}
