//! Status changes on PostgreSQL, each in its caller's transaction: checked against the
//! state machine and what the writer expects ([`Expect`]), with the counters behind the
//! figures (everyone's and each tenant's, rows locked in one order everywhere:
//! [`Counters`]) and the tenant's share of active usage moved in the same transaction.

use deadpool_postgres::Transaction;
use tokio_postgres::Statement;
use vulcan_domain::{Expect, StoreError, TerminalUpdate, Workload, WorkloadStatus};

use super::workloads::{parse, to_ms, workload_from_row, WORKLOAD_COLUMNS};
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

/// The statements that keep the counters: prepared together before any is sent, so that
/// pipelined statements go out in the order they are written (a statement prepared on its
/// first use would go out after those behind it). Counter rows are locked in one order
/// everywhere: everyone's counts (pending → running → terminal), the tenant's usage, the
/// tenant's counts (in the same status order), then the figures of finished runs.
pub(super) struct Counters {
    all: Statement,
    share: Statement,
    tenant: Statement,
}

impl Counters {
    pub(super) async fn prepare(tx: &Transaction<'_>) -> Result<Counters, Fail> {
        Ok(Counters {
            all: tx
                .prepare_cached(
                    "INSERT INTO workload_counts (isolation, status, n)
                     SELECT $1, * FROM UNNEST($2::TEXT[], $3::BIGINT[])
                     ON CONFLICT (isolation, status) DO UPDATE SET n = workload_counts.n + EXCLUDED.n
                     RETURNING status, n",
                )
                .await?,
            share: tx
                .prepare_cached(
                    "INSERT INTO tenant_usage (tenant, active, cpus, mem_mb) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (tenant) DO UPDATE SET active = tenant_usage.active + EXCLUDED.active,
                         cpus = tenant_usage.cpus + EXCLUDED.cpus, mem_mb = tenant_usage.mem_mb + EXCLUDED.mem_mb",
                )
                .await?,
            tenant: tx
                .prepare_cached(
                    "INSERT INTO tenant_counts (tenant, isolation, status, n)
                     SELECT $1, $2, * FROM UNNEST($3::TEXT[], $4::BIGINT[])
                     ON CONFLICT (tenant, isolation, status) DO UPDATE SET n = tenant_counts.n + EXCLUDED.n",
                )
                .await?,
        })
    }

    /// Adds `deltas` to everyone's counts of (isolation, each of `statuses`), locking
    /// their rows in that order; the new count of each.
    pub(super) async fn count_all(
        &self,
        tx: &Transaction<'_>,
        isolation: &str,
        statuses: &[&str],
        deltas: &[i64],
    ) -> Result<Vec<(String, i64)>, Fail> {
        let rows = tx
            .query(&self.all, &[&isolation, &statuses, &deltas])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Adds `delta` to the tenant's count of (isolation, status).
    pub(super) async fn count_tenant(
        &self,
        tx: &Transaction<'_>,
        tenant: &str,
        isolation: &str,
        status: WorkloadStatus,
        delta: i64,
    ) -> Result<(), Fail> {
        let (statuses, deltas): (&[&str], &[i64]) = (&[status.as_str()], &[delta]);
        tx.execute(&self.tenant, &[&tenant, &isolation, &statuses, &deltas])
            .await?;
        Ok(())
    }

    /// Adds `sign` workloads of `cpus` and `mem_mb` to the tenant's share of active usage.
    pub(super) async fn use_share(
        &self,
        tx: &Transaction<'_>,
        tenant: &str,
        cpus: i64,
        mem_mb: i64,
        sign: i64,
    ) -> Result<(), Fail> {
        tx.execute(
            &self.share,
            &[&tenant, &sign, &(sign * cpus), &(sign * mem_mb)],
        )
        .await?;
        Ok(())
    }

    /// Moves the counters of the workload `current` is about from its status to `to` (and
    /// gives back its share of active usage when `to` is terminal): the statements go out
    /// together, one round trip.
    pub(super) async fn moved(
        &self,
        tx: &Transaction<'_>,
        current: &Current,
        to: WorkloadStatus,
    ) -> Result<(), Fail> {
        let (statuses, deltas): (&[&str], &[i64]) =
            (&[current.status.as_str(), to.as_str()], &[-1, 1]);
        let share = async {
            if to.is_terminal() {
                self.use_share(tx, &current.tenant, current.cpus, current.mem_mb, -1)
                    .await?;
            }
            Ok(())
        };
        tokio::try_join!(
            biased;
            async {
                tx.execute(&self.all, &[&current.isolation, &statuses, &deltas])
                    .await
                    .map_err(Fail::from)
            },
            share,
            async {
                tx.execute(
                    &self.tenant,
                    &[&current.tenant, &current.isolation, &statuses, &deltas],
                )
                .await
                .map_err(Fail::from)
            },
        )?;
        Ok(())
    }
}

/// Locks `id`'s row and checks that it may move to `to` and is still as `expect` says.
pub(super) async fn lock(
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
    Ok(current)
}

/// Marks `id` running on `node` at `started_at`; the workload as it is now.
pub(super) async fn start_in(
    tx: &Transaction<'_>,
    id: &str,
    node: &str,
    started_at: i64,
) -> Result<Workload, Fail> {
    let current = lock(
        tx,
        id,
        WorkloadStatus::Running,
        &Expect::ClaimedBy(node.to_owned()),
    )
    .await?;
    let counters = Counters::prepare(tx).await?;
    let st = tx
        .prepare_cached(&format!(
            "UPDATE workloads SET status = 'running', started_at = $2, node_id = $3 WHERE id = $1
             RETURNING {WORKLOAD_COLUMNS}"
        ))
        .await?;
    let (row, ()) = tokio::try_join!(
        biased;
        async {
            tx.query_one(&st, &[&id, &started_at, &node])
                .await
                .map_err(Fail::from)
        },
        counters.moved(tx, &current, WorkloadStatus::Running),
    )?;
    workload_from_row(&row)
}

/// Records a terminal status, with its duration in the counters if it ran: the row's
/// update, the counters and the figures go out together, one round trip.
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
    let current = lock(tx, id, u.status, expect).await?;
    let ran = current.status == WorkloadStatus::Running;
    let duration = u.duration_ms.filter(|_| ran).map(|d| d as i64);
    let usage = u.usage.filter(|_| ran);
    let update = tx
        .prepare_cached(&format!(
            "UPDATE workloads SET status = $2, output = $3, exit_code = $4, error = $5,
                 finished_at = $6, duration_ms = $7, prepare_ms = $8, cpu_time_ms = $9,
                 peak_memory_bytes = $10, max_processes = $11,
                 net_tx_bytes = $12, net_rx_bytes = $13
             WHERE id = $1 RETURNING {WORKLOAD_COLUMNS}"
        ))
        .await?;
    let (cpu_ms, peak, processes) = (
        usage.map(|x| x.cpu_time_ms as i64),
        usage.map(|x| x.peak_memory_bytes as i64),
        usage.and_then(|x| x.max_processes).map(|v| v as i64),
    );
    let (net_tx, net_rx) = (
        usage.and_then(|x| x.net_tx_bytes).map(|v| v as i64),
        usage.and_then(|x| x.net_rx_bytes).map(|v| v as i64),
    );
    let (exit_code, finished_at, prepare_ms) = (
        u.exit_code.map(i64::from),
        to_ms(u.finished_at),
        u.prepare_ms.map(|d| d as i64),
    );
    // Prepared before anything is sent, so that the statements go out in this order.
    let counters = Counters::prepare(tx).await?;
    let usage_st = tx
        .prepare_cached(&stats::usage_upsert(|n| format!("${n}")))
        .await?;
    let all_st = tx
        .prepare_cached(
            "INSERT INTO duration_buckets (isolation, bucket, n, sum_ms) VALUES ($1, $2, 1, $3)
             ON CONFLICT (isolation, bucket) DO UPDATE SET n = duration_buckets.n + 1,
                 sum_ms = duration_buckets.sum_ms + EXCLUDED.sum_ms",
        )
        .await?;
    let tenant_st = tx
        .prepare_cached(
            "INSERT INTO tenant_durations (tenant, isolation, bucket, n, sum_ms) VALUES ($1, $2, $3, 1, $4)
             ON CONFLICT (tenant, isolation, bucket) DO UPDATE SET n = tenant_durations.n + 1,
                 sum_ms = tenant_durations.sum_ms + EXCLUDED.sum_ms",
        )
        .await?;
    let lines_st = if u.last_lines.is_empty() {
        None
    } else {
        Some(tx.prepare_cached(super::logs::INSERT_LINES).await?)
    };
    let notify_st = tx.prepare_cached("SELECT pg_notify($1, $2)").await?;
    // History is complete before the status turns terminal: the last lines go first.
    let lines = async {
        if let Some(st) = &lines_st {
            let batch = super::logs::Batch::of(&u.last_lines);
            tx.execute(st, &batch.params(&id)).await?;
        }
        Ok::<_, Fail>(())
    };
    let row = async {
        tx.query_one(
            &update,
            &[
                &id,
                &u.status.as_str(),
                &u.output,
                &exit_code,
                &u.error,
                &finished_at,
                &duration,
                &prepare_ms,
                &cpu_ms,
                &peak,
                &processes,
                &net_tx,
                &net_rx,
            ],
        )
        .await
        .map_err(Fail::from)
    };
    let figures = async {
        if let (Some(cpu_ms), Some(peak)) = (cpu_ms, peak) {
            tx.execute(
                &usage_st,
                &[&current.tenant, &current.isolation, &cpu_ms, &peak],
            )
            .await?;
        }
        Ok::<_, Fail>(())
    };
    let durations = async {
        if let Some(ms) = duration {
            let bucket = DurationHistogram::bucket_of(ms as u64);
            let everyone = [&current.isolation as _, &bucket as _, &ms as _];
            let theirs = [
                &current.tenant as _,
                &current.isolation as _,
                &bucket as _,
                &ms as _,
            ];
            tokio::try_join!(
                biased;
                tx.execute(&all_st, &everyone),
                tx.execute(&tenant_st, &theirs)
            )?;
        }
        Ok::<_, Fail>(())
    };
    // Delivered to every node when (and only if) the transaction commits.
    let ended = vulcan_domain::Signal::Ended(id.to_owned()).encode();
    let told = async {
        tx.execute(&notify_st, &[&super::CHANNEL, &ended]).await?;
        Ok::<_, Fail>(())
    };
    let ((), row, (), (), (), ()) = tokio::try_join!(
        biased;
        lines,
        row,
        counters.moved(tx, &current, u.status),
        figures,
        durations,
        told
    )?;
    workload_from_row(&row)
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
