//! [`WorkloadStore`] on PostgreSQL. The same contract as the SQLite store; what differs is
//! how it holds across nodes: a claim is one `UPDATE … FOR UPDATE SKIP LOCKED` (two nodes
//! never claim the same workload), the queue limit is checked on the counter row it
//! bumps (row-locked until commit), a tenant's quota on its usage row (locked by the upsert
//! that reads it). Counter rows are always locked in one order ([`Counters`]). Log lines,
//! figures and benchmark reports are in files of their own.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use time::OffsetDateTime;
use tokio_postgres::{Row, Statement};
use vulcan_domain::{
    Admission, Claimed, Expect, Isolation, ListFilter, StoreError, TerminalUpdate, Workload,
    WorkloadPage, WorkloadSpec, WorkloadStatus, WorkloadStore,
};

use super::transitions::{finish_in, start_in, Counters};
use super::{io, Fail, PgStore};
use crate::admission::{self, Usage};
use crate::stats;

pub(super) const WORKLOAD_COLUMNS: &str = "id, status, isolation, requested_isolation, runtime, \
    node_id, input_hash, output, exit_code, error, cpu_limit, mem_limit, timeout_s, duration_ms, \
    created_at, started_at, finished_at, tenant, prepare_ms, function, function_version, \
    trigger_kind, trigger_id, cpu_time_ms, peak_memory_bytes, max_processes, request_id, net_tx_bytes, net_rx_bytes, trace_id";

pub(crate) fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(super) fn parse<T: std::str::FromStr>(row: &Row, idx: usize) -> Result<T, Fail>
where
    T::Err: std::fmt::Display,
{
    row.get::<_, String>(idx)
        .parse()
        .map_err(|e: T::Err| Fail::Store(io(e)))
}

fn count_of(v: Option<i64>) -> Option<u64> {
    v.map(|d| d.max(0) as u64)
}

/// How many columns [`WORKLOAD_COLUMNS`] names.
const WORKLOAD_FIELDS: usize = 30;

pub(super) fn workload_from_row(row: &Row) -> Result<Workload, Fail> {
    let node: String = row.get(5);
    Ok(Workload {
        id: row.get(0),
        status: parse(row, 1)?,
        isolation: parse(row, 2)?,
        requested_isolation: parse(row, 3)?,
        runtime: parse(row, 4)?,
        node_id: (!node.is_empty()).then_some(node),
        input_hash: row.get(6),
        output: row.get(7),
        exit_code: row.get::<_, Option<i64>>(8).map(|c| c as i32),
        error: row.get(9),
        cpu_limit: row.get::<_, i64>(10) as u32,
        mem_limit: row.get::<_, i64>(11) as u32,
        timeout_s: row.get::<_, i64>(12) as u32,
        duration_ms: count_of(row.get(13)),
        created_at: from_ms(row.get(14)),
        started_at: row.get::<_, Option<i64>>(15).map(from_ms),
        finished_at: row.get::<_, Option<i64>>(16).map(from_ms),
        tenant: row.get(17),
        prepare_ms: count_of(row.get(18)),
        function: row.get(19),
        function_version: row.get::<_, Option<i64>>(20).map(|v| v.max(0) as u32),
        trigger: crate::trigger_of(row.get(21), row.get(22)),
        cpu_time_ms: count_of(row.get(23)),
        peak_memory_bytes: count_of(row.get(24)),
        max_processes: count_of(row.get(25)),
        request_id: row.get(26),
        net_tx_bytes: count_of(row.get(27)),
        net_rx_bytes: count_of(row.get(28)),
        trace_id: row.get(29),
    })
}

pub(super) async fn get_workload(c: &impl GenericClient, id: &str) -> Result<Workload, Fail> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {WORKLOAD_COLUMNS} FROM workloads WHERE id = $1"
        ))
        .await?;
    match c.query_opt(&st, &[&id]).await? {
        Some(row) => workload_from_row(&row),
        None => Err(StoreError::NotFound(id.to_owned()).into()),
    }
}

async fn get_spec(c: &impl GenericClient, id: &str) -> Result<WorkloadSpec, Fail> {
    let st = c
        .prepare_cached("SELECT spec, code_archive FROM workloads WHERE id = $1")
        .await?;
    let row = c
        .query_opt(&st, &[&id])
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    spec_of(&row.get::<_, String>(0), row.get(1))
}

/// A spec from its stored JSON and the archive kept beside it.
fn spec_of(json: &str, archive: Option<Vec<u8>>) -> Result<WorkloadSpec, Fail> {
    let mut spec: WorkloadSpec = serde_json::from_str(json).map_err(|e| Fail::Store(io(e)))?;
    spec.run.code_archive = archive;
    Ok(spec)
}

/// What admission reads of a tenant: its usage row (locked until the transaction ends;
/// made if it is new) and its workloads of the last minute: two statements, sent together.
struct UsageStatements {
    row: Statement,
    recent: Statement,
}

impl UsageStatements {
    async fn prepare(tx: &Transaction<'_>) -> Result<Self, Fail> {
        Ok(UsageStatements {
            row: tx
                .prepare_cached(
                    "INSERT INTO tenant_usage (tenant, active, cpus, mem_mb) VALUES ($1, 0, 0, 0)
                     ON CONFLICT (tenant) DO UPDATE SET active = tenant_usage.active
                     RETURNING active, cpus, mem_mb",
                )
                .await?,
            recent: tx
                .prepare_cached(
                    "SELECT COUNT(*), MIN(created_at) FROM workloads WHERE tenant = $1 AND created_at > $2",
                )
                .await?,
        })
    }

    async fn usage(&self, tx: &Transaction<'_>, tenant: &str, now_ms: i64) -> Result<Usage, Fail> {
        let since = now_ms - 60_000;
        let (of_tenant, in_window) = ([&tenant as _], [&tenant as _, &since as _]);
        let (row, recent) = tokio::try_join!(
            biased;
            tx.query_one(&self.row, &of_tenant),
            tx.query_one(&self.recent, &in_window),
        )?;
        let oldest: Option<i64> = recent.get(1);
        Ok(Usage {
            active: row.get::<_, i64>(0).max(0) as u64,
            cpus: row.get::<_, i64>(1).max(0) as u64,
            mem_mb: row.get::<_, i64>(2).max(0) as u64,
            last_minute: recent.get::<_, i64>(0).max(0) as u64,
            oldest_leaves_in_s: oldest.map_or(0, |o| ((o + 60_000 - now_ms).max(0) / 1000) as u64),
        })
    }
}

/// What [`WorkloadStore::enqueue`] writes.
struct Stored<'a> {
    w: &'a Workload,
    spec_json: &'a str,
    archive: Option<&'a [u8]>,
    admission: &'a Admission,
    /// Its follow-up's (policy JSON, expires_at), for an async workload that has one.
    followup: Option<(String, Option<i64>)>,
    /// The volumes it mounts (their JSON, and the mounts), and their node.
    volumes: Option<(String, &'a [vulcan_domain::VolumeMount])>,
    node: Option<&'a str>,
}

/// Admits and inserts a workload in two round trips: what admission reads (the pending
/// counter, locked to commit so that two nodes admitting to the same backend take turns
/// and the limit holds across them, with the running one when it may start at once; the
/// tenant's usage; whether older work waits), then every write together. Whether it was
/// claimed and started for `claim_for`.
async fn enqueue_in(tx: &Transaction<'_>, s: &Stored<'_>) -> Result<bool, Fail> {
    let (w, admission) = (s.w, s.admission);
    let isolation = w.isolation.as_str();
    let pending = WorkloadStatus::Pending.as_str();
    // The counter rows this admission may move, locked in the order every writer locks
    // them: its own, bumped at once when it cannot start here; else pending and running,
    // the one it lands in bumped with the writes.
    let bumped = admission.claim_for.is_none();
    let locked: (&[&str], &[i64]) = if bumped {
        (&[w.status.as_str()], &[1])
    } else {
        (&[pending, WorkloadStatus::Running.as_str()], &[0, 0])
    };
    // Everything prepared before anything is sent: the statements go out in this order.
    let counters = Counters::prepare(tx).await?;
    let usage_st = UsageStatements::prepare(tx).await?;
    // Its volumes are held from here to its end: one writer, or readers only.
    if let Some((_, mounts)) = &s.volumes {
        super::sandboxes::check_workload_volumes(tx, &w.tenant, mounts).await?;
    }
    let waiting_st = tx
        .prepare_cached(
            "SELECT 1 FROM workloads WHERE status = 'pending' AND claimed_by IS NULL
               AND isolation = $1 AND (volume_node IS NULL OR volume_node = $2) LIMIT 1",
        )
        .await?;
    let now_ms = to_ms(w.created_at);
    let (counts, usage, waiting) = tokio::try_join!(
        biased;
        counters.count_all(tx, isolation, locked.0, locked.1),
        async {
            match &admission.quota {
                Some(_) => usage_st.usage(tx, &w.tenant, now_ms).await.map(Some),
                None => Ok(None),
            }
        },
        async {
            match &admission.claim_for {
                Some(node) => Ok(tx
                    .query_opt(&waiting_st, &[&isolation, node])
                    .await?
                    .is_some()),
                None => Ok::<_, Fail>(true),
            }
        },
    )?;
    let claim = admission.claim_for.clone().filter(|_| !waiting);
    // Started at once, or in the queue: only then does the queue's limit apply.
    let status = match claim {
        Some(_) => WorkloadStatus::Running,
        None => w.status,
    };
    if let (Some(max), WorkloadStatus::Pending) = (admission.max_queue, status) {
        let queued = counts
            .iter()
            .find(|(s, _)| s == pending)
            .map_or(0, |(_, n)| *n)
            + i64::from(!bumped);
        admission::queue(w.isolation, queued.max(0) as u64, max)?;
    }
    if let (Some(quota), Some(usage)) = (&admission.quota, usage) {
        let resources = vulcan_domain::Resources {
            cpus: w.cpu_limit,
            mem_mb: w.mem_limit,
            timeout_s: w.timeout_s,
            net_mbps: None,
        };
        admission::quota(&w.tenant, quota, usage, resources)?;
    }
    let claimed_at = claim.as_ref().map(|_| to_ms(OffsetDateTime::now_utc()));
    let started_at = match claim {
        Some(_) => Some(to_ms(w.created_at)),
        None => w.started_at.map(to_ms),
    };

    // Prepared before anything is sent, so that the writes go out in this order.
    let insert_st = tx
        .prepare_cached(&format!(
            "INSERT INTO workloads ({WORKLOAD_COLUMNS}, spec, code_archive, claimed_by, claimed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                     $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27,
                     $28, $29, $30, $31, $32, $33, $34)
             ON CONFLICT (id) DO NOTHING"
        ))
        .await?;
    let schedule_st = tx
        .prepare_cached(
            "UPDATE schedules SET next_run_at = $1, last_run_at = $2, last_workload_id = $3, updated_at = $4
             WHERE id = $5 AND enabled AND next_run_at = $2",
        )
        .await?;
    let function_st = tx
        .prepare_cached(
            "UPDATE functions SET invocations = invocations + 1 WHERE tenant = $1 AND name = $2",
        )
        .await?;
    let followup_st = match &s.followup {
        Some(_) => Some(
            tx.prepare_cached(
                "INSERT INTO followups (id, tenant, kind, policy, due_at, expires_at)
                 VALUES ($1, $2, 'workload', $3, $4, $5)",
            )
            .await?,
        ),
        None => None,
    };
    let followup = async {
        if let (Some(st), Some((policy, expires_at))) = (&followup_st, &s.followup) {
            tx.execute(
                st,
                &[&w.id, &w.tenant, policy, &to_ms(w.created_at), expires_at],
            )
            .await?;
        }
        Ok::<_, Fail>(())
    };
    let insert = async {
        let inserted = tx
            .execute(
                &insert_st,
                &[
                    &w.id,
                    &status.as_str(),
                    &isolation,
                    &w.requested_isolation.as_str(),
                    &w.runtime.as_str(),
                    &claim.as_deref().unwrap_or(""),
                    &w.input_hash,
                    &w.output,
                    &w.exit_code.map(i64::from),
                    &w.error,
                    &i64::from(w.cpu_limit),
                    &i64::from(w.mem_limit),
                    &i64::from(w.timeout_s),
                    &w.duration_ms.map(|d| d as i64),
                    &to_ms(w.created_at),
                    &started_at,
                    &w.finished_at.map(to_ms),
                    &w.tenant,
                    &w.prepare_ms.map(|d| d as i64),
                    &w.function,
                    &w.function_version.map(i64::from),
                    &w.trigger.as_ref().map(|t| t.kind.as_str()),
                    &w.trigger.as_ref().map(|t| t.id.as_str()),
                    &w.cpu_time_ms.map(|v| v as i64),
                    &w.peak_memory_bytes.map(|v| v as i64),
                    &w.max_processes.map(|v| v as i64),
                    &w.request_id,
                    &w.net_tx_bytes.map(|v| v as i64),
                    &w.net_rx_bytes.map(|v| v as i64),
                    &w.trace_id,
                    &s.spec_json,
                    &s.archive,
                    &claim,
                    &claimed_at,
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::Duplicate(w.id.clone()).into());
        }
        if let Some((json, _)) = &s.volumes {
            tx.execute(
                "UPDATE workloads SET volumes = $2, volume_node = $3 WHERE id = $1",
                &[&w.id, json, &s.node],
            )
            .await?;
        }
        Ok::<_, Fail>(())
    };
    let fire = async {
        if let Some(tick) = &admission.fire {
            let moved = tx
                .execute(
                    &schedule_st,
                    &[
                        &tick.next.map(to_ms),
                        &to_ms(tick.at),
                        &w.id,
                        &to_ms(OffsetDateTime::now_utc()),
                        &tick.schedule_id,
                    ],
                )
                .await?;
            if moved == 0 {
                return Err(crate::schedules::tick_taken(&tick.schedule_id).into());
            }
        }
        Ok::<_, Fail>(())
    };
    let share = async {
        if !status.is_terminal() {
            let (cpus, mem_mb) = (w.cpu_limit.into(), w.mem_limit.into());
            counters.use_share(tx, &w.tenant, cpus, mem_mb, 1).await?;
        }
        Ok::<_, Fail>(())
    };
    let invoked = async {
        if let Some(function) = &w.function {
            tx.execute(&function_st, &[&w.tenant, function]).await?;
        }
        Ok::<_, Fail>(())
    };
    let counted = async {
        if !bumped {
            counters
                .count_all(tx, isolation, &[status.as_str()], &[1])
                .await?;
        }
        Ok::<_, Fail>(())
    };
    tokio::try_join!(
        biased;
        insert,
        fire,
        counted,
        share,
        counters.count_tenant(tx, &w.tenant, isolation, status, 1),
        invoked,
        followup
    )?;
    Ok(claim.is_some())
}

#[async_trait]
impl WorkloadStore for PgStore {
    async fn enqueue(
        &self,
        workload: &Workload,
        spec: &WorkloadSpec,
        admission: &Admission,
    ) -> Result<bool, StoreError> {
        let (spec_json, archive) = crate::specs::stored(spec).map_err(io)?;
        let stored = Stored {
            w: workload,
            spec_json: &spec_json,
            archive,
            admission,
            followup: crate::followups::policy_row(spec)?,
            volumes: crate::sandboxes::workload_volumes(spec)?
                .map(|json| (json, &spec.volumes[..])),
            node: spec.node.as_deref(),
        };
        self.run(|c, _| {
            let stored = &stored;
            Box::pin(async move {
                let tx = c.transaction().await?;
                let claimed = enqueue_in(&tx, stored).await?;
                tx.commit().await?;
                Ok(claimed)
            })
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Workload, StoreError> {
        self.run(|c, _| Box::pin(async move { get_workload(&*c, id).await }))
            .await
    }

    async fn spec(&self, id: &str) -> Result<WorkloadSpec, StoreError> {
        self.run(|c, _| Box::pin(async move { get_spec(&*c, id).await }))
            .await
    }

    async fn list(&self, filter: &ListFilter) -> Result<WorkloadPage, StoreError> {
        self.run(|c, _| {
            let filter = filter.clone();
            Box::pin(async move {
                let status = filter.status.map(|s| s.as_str());
                let isolation = filter.isolation.map(|i| i.as_str());
                let (clause, values) = stats::list_filter(&filter, |n| format!("${n}"));
                let n = values.len();
                let st = c
                    .prepare_cached(&format!(
                        "SELECT {WORKLOAD_COLUMNS} FROM workloads {clause} ORDER BY id DESC LIMIT ${} OFFSET ${}",
                        n + 1,
                        n + 2
                    ))
                    .await?;
                let (limit, offset) = (i64::from(filter.limit), filter.offset as i64);
                let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
                    .iter()
                    .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                params.push(&limit);
                params.push(&offset);
                let rows = c.query(&st, &params).await?;
                let workloads = rows.iter().map(workload_from_row).collect::<Result<_, _>>()?;
                // A function's invocations are counted on its index (not in the counters).
                if filter.function.is_some() || filter.schedule.is_some() {
                    let (clause, values) = stats::list_filter(
                        &ListFilter {
                            after: None,
                            ..filter.clone()
                        },
                        |n| format!("${n}"),
                    );
                    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
                        .iter()
                        .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
                        .collect();
                    let st = c
                        .prepare_cached(&format!("SELECT COUNT(*) FROM workloads {clause}"))
                        .await?;
                    let total: i64 = c.query_one(&st, &params).await?.get(0);
                    return Ok(WorkloadPage {
                        workloads,
                        total: total.max(0) as u64,
                    });
                }
                let st = c
                    .prepare_cached(
                        "SELECT COALESCE(SUM(n), 0)::BIGINT FROM workload_counts
                         WHERE $3::TEXT IS NULL AND ($1::TEXT IS NULL OR status = $1) AND ($2::TEXT IS NULL OR isolation = $2)
                         UNION ALL
                         SELECT COALESCE(SUM(n), 0)::BIGINT FROM tenant_counts
                         WHERE tenant = $3 AND ($1::TEXT IS NULL OR status = $1) AND ($2::TEXT IS NULL OR isolation = $2)",
                    )
                    .await?;
                let total: i64 = c
                    .query(&st, &[&status, &isolation, &filter.tenant])
                    .await?
                    .iter()
                    .map(|r| r.get::<_, i64>(0))
                    .sum();
                Ok(WorkloadPage {
                    workloads,
                    total: total.max(0) as u64,
                })
            })
        })
        .await
    }

    async fn claim(&self, node: &str, isolation: Isolation) -> Result<Option<Claimed>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(&format!(
                        "UPDATE workloads SET claimed_by = $1, claimed_at = $2, node_id = $1
                         WHERE id = (SELECT id FROM workloads
                                     WHERE status = 'pending' AND claimed_by IS NULL AND isolation = $3
                                       AND (volume_node IS NULL OR volume_node = $1)
                                     ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                         RETURNING {WORKLOAD_COLUMNS}, spec, code_archive"
                    ))
                    .await?;
                let now = to_ms(OffsetDateTime::now_utc());
                let Some(row) = c.query_opt(&st, &[&node, &now, &isolation.as_str()]).await?
                else {
                    return Ok(None);
                };
                Ok(Some(Claimed {
                    workload: workload_from_row(&row)?,
                    spec: spec_of(&row.get::<_, String>(WORKLOAD_FIELDS), row.get(WORKLOAD_FIELDS + 1))?,
                }))
            })
        })
        .await
    }

    async fn start(
        &self,
        id: &str,
        node: &str,
        started_at: OffsetDateTime,
    ) -> Result<Workload, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let w = start_in(&tx, id, node, to_ms(started_at)).await?;
                tx.commit().await?;
                Ok(w)
            })
        })
        .await
    }

    async fn finish(
        &self,
        id: &str,
        update: &TerminalUpdate,
        expect: &Expect,
    ) -> Result<Workload, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let w = finish_in(&tx, id, update, expect).await?;
                tx.commit().await?;
                Ok(w)
            })
        })
        .await
    }

    async fn request_kill(&self, id: &str) -> Result<Workload, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "UPDATE workloads SET kill_requested_at = $2
                         WHERE id = $1 AND status IN ('pending', 'running') AND kill_requested_at IS NULL",
                    )
                    .await?;
                c.execute(&st, &[&id, &to_ms(OffsetDateTime::now_utc())])
                    .await?;
                get_workload(&*c, id).await
            })
        })
        .await
    }

    async fn kill_requests(&self, node: &str) -> Result<Vec<String>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "SELECT id FROM workloads WHERE node_id = $1 AND status IN ('pending', 'running')
                           AND kill_requested_at IS NOT NULL",
                    )
                    .await?;
                Ok(c.query(&st, &[&node])
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect())
            })
        })
        .await
    }

    async fn unclaim(
        &self,
        node: &str,
        keep: &[String],
        claimed_before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let before = to_ms(claimed_before);
        self.run(|c, _| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "UPDATE workloads SET claimed_by = NULL, claimed_at = NULL, node_id = ''
                         WHERE claimed_by = $1 AND status = 'pending' AND NOT (id = ANY($2))
                           AND claimed_at < $3",
                    )
                    .await?;
                Ok(c.execute(&st, &[&node, &keep, &before]).await?)
            })
        })
        .await
    }

    async fn running_on(&self, node: &str) -> Result<Vec<Workload>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(&format!(
                        "SELECT {WORKLOAD_COLUMNS} FROM workloads WHERE node_id = $1 AND status = 'running' ORDER BY id"
                    ))
                    .await?;
                c.query(&st, &[&node])
                    .await?
                    .iter()
                    .map(workload_from_row)
                    .collect()
            })
        })
        .await
    }
}
