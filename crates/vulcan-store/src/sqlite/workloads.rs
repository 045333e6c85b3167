//! [`WorkloadStore`] on SQLite: the queue (enqueue with admission, claim, start fenced by
//! the claim), status changes with their counters (everyone's and each tenant's, in the
//! same transaction). Log lines, figures and benchmark reports are in files of their own.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use time::OffsetDateTime;
use vulcan_domain::{
    Admission, Claimed, Expect, Isolation, ListFilter, Runtime, StoreError, TerminalUpdate,
    Workload, WorkloadPage, WorkloadSpec, WorkloadStatus, WorkloadStore,
};

use super::transitions::{count, finish_in, transition, unclaim_one, use_share};
use super::{from_ms, io, parse_column, to_ms, SqliteStore};
use crate::admission::{self, Usage};
use crate::schedules::tick_taken;
use crate::stats;
use crate::trigger_of;

pub(super) const WORKLOAD_COLUMNS: &str = "id, status, isolation, requested_isolation, runtime, \
    node_id, input_hash, output, exit_code, error, cpu_limit, mem_limit, timeout_s, duration_ms, \
    created_at, started_at, finished_at, tenant, prepare_ms, function, function_version, \
    trigger_kind, trigger_id, cpu_time_ms, peak_memory_bytes, max_processes, request_id, net_tx_bytes, net_rx_bytes, trace_id";

/// How many columns [`WORKLOAD_COLUMNS`] names.
const WORKLOAD_FIELDS: usize = 30;

pub(super) fn workload_from_row(row: &Row) -> rusqlite::Result<Workload> {
    let node: String = row.get(5)?;
    Ok(Workload {
        id: row.get(0)?,
        status: parse_column::<WorkloadStatus>(row, 1)?,
        isolation: parse_column::<Isolation>(row, 2)?,
        requested_isolation: parse_column::<Isolation>(row, 3)?,
        runtime: parse_column::<Runtime>(row, 4)?,
        node_id: (!node.is_empty()).then_some(node),
        input_hash: row.get(6)?,
        output: row.get(7)?,
        exit_code: row.get(8)?,
        error: row.get(9)?,
        cpu_limit: row.get(10)?,
        mem_limit: row.get(11)?,
        timeout_s: row.get(12)?,
        duration_ms: row.get::<_, Option<i64>>(13)?.map(|d| d.max(0) as u64),
        created_at: from_ms(row.get(14)?),
        started_at: row.get::<_, Option<i64>>(15)?.map(from_ms),
        finished_at: row.get::<_, Option<i64>>(16)?.map(from_ms),
        tenant: row.get(17)?,
        prepare_ms: row.get::<_, Option<i64>>(18)?.map(|d| d.max(0) as u64),
        function: row.get(19)?,
        function_version: row.get::<_, Option<i64>>(20)?.map(|v| v.max(0) as u32),
        trigger: trigger_of(row.get(21)?, row.get(22)?),
        cpu_time_ms: row.get::<_, Option<i64>>(23)?.map(|v| v.max(0) as u64),
        peak_memory_bytes: row.get::<_, Option<i64>>(24)?.map(|v| v.max(0) as u64),
        max_processes: row.get::<_, Option<i64>>(25)?.map(|v| v.max(0) as u64),
        request_id: row.get(26)?,
        net_tx_bytes: row.get::<_, Option<i64>>(27)?.map(|v| v.max(0) as u64),
        net_rx_bytes: row.get::<_, Option<i64>>(28)?.map(|v| v.max(0) as u64),
        trace_id: row.get(29)?,
    })
}

pub(super) fn get_workload(conn: &Connection, id: &str) -> Result<Workload, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {WORKLOAD_COLUMNS} FROM workloads WHERE id = ?1"
    ))
    .map_err(io)?
    .query_row([id], workload_from_row)
    .optional()
    .map_err(io)?
    .ok_or_else(|| StoreError::NotFound(id.to_owned()))
}

fn get_spec(conn: &Connection, id: &str) -> Result<WorkloadSpec, StoreError> {
    let (json, archive): (String, Option<Vec<u8>>) = conn
        .prepare_cached("SELECT spec, code_archive FROM workloads WHERE id = ?1")
        .map_err(io)?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(io)?
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    spec_of(&json, archive)
}

/// A spec from its stored JSON and the archive kept beside it.
fn spec_of(json: &str, archive: Option<Vec<u8>>) -> Result<WorkloadSpec, StoreError> {
    let mut spec: WorkloadSpec = serde_json::from_str(json).map_err(io)?;
    spec.run.code_archive = archive;
    Ok(spec)
}

fn usage_of(tx: &Transaction, tenant: &str, now_ms: i64) -> rusqlite::Result<Usage> {
    let (active, cpus, mem_mb): (i64, i64, i64) = tx
        .prepare_cached("SELECT active, cpus, mem_mb FROM tenant_usage WHERE tenant = ?1")?
        .query_row([tenant], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .unwrap_or_default();
    let (last_minute, oldest): (i64, Option<i64>) = tx
        .prepare_cached(
            "SELECT COUNT(*), MIN(created_at) FROM workloads WHERE tenant = ?1 AND created_at > ?2",
        )?
        .query_row(params![tenant, now_ms - 60_000], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(Usage {
        active: active.max(0) as u64,
        cpus: cpus.max(0) as u64,
        mem_mb: mem_mb.max(0) as u64,
        last_minute: last_minute.max(0) as u64,
        oldest_leaves_in_s: oldest.map_or(0, |o| ((o + 60_000 - now_ms).max(0) / 1000) as u64),
    })
}

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(io)
}

#[async_trait]
impl WorkloadStore for SqliteStore {
    async fn enqueue(
        &self,
        workload: &Workload,
        spec: &WorkloadSpec,
        admission: &Admission,
    ) -> Result<bool, StoreError> {
        let w = workload.clone();
        let (spec_json, archive) = crate::specs::stored(spec).map_err(io)?;
        let archive = archive.map(<[u8]>::to_vec);
        let admission = admission.clone();
        let followup = crate::followups::policy_row(spec)?;
        let volumes = crate::sandboxes::workload_volumes(spec)?;
        let (mounts, node) = (spec.volumes.clone(), spec.node.clone());
        let bytes = spec_json.len() + archive.as_ref().map_or(0, Vec::len);
        self.write_small(bytes, move |conn| {
            let tx = immediate(conn)?;
            // Its volumes are held from here to its end: one writer, or readers only.
            if volumes.is_some() {
                let live = super::sandboxes::live_of(&tx, &w.tenant)?;
                let holders = super::sandboxes::holders(&tx, &w.tenant, &live)?;
                crate::sandboxes::check_volumes(&mounts, &holders)?;
            }
            let isolation = w.isolation.as_str();
            // Claimed (and started) at once only if nothing older waits for the same backend.
            let claim = match &admission.claim_for {
                Some(node) => {
                    let waiting = tx
                        .prepare_cached(
                            "SELECT 1 FROM workloads WHERE status = 'pending' AND claimed_by IS NULL AND isolation = ?1
                             AND (volume_node IS NULL OR volume_node = ?2) LIMIT 1",
                        )
                        .map_err(io)?
                        .exists(params![isolation, node])
                        .map_err(io)?;
                    (!waiting).then(|| node.clone())
                }
                None => None,
            };
            let (status, started_at) = match claim {
                Some(_) => (WorkloadStatus::Running, Some(w.created_at)),
                None => (w.status, w.started_at),
            };
            // Only a workload that waits in the queue counts against its limit.
            if let (Some(max), WorkloadStatus::Pending) = (admission.max_queue, status) {
                let pending: i64 = tx
                    .prepare_cached(
                        "SELECT COALESCE(SUM(n), 0) FROM workload_counts WHERE isolation = ?1 AND status = 'pending'",
                    )
                    .map_err(io)?
                    .query_row([isolation], |r| r.get(0))
                    .map_err(io)?;
                admission::queue(w.isolation, pending.max(0) as u64 + 1, max)?;
            }
            if let Some(quota) = &admission.quota {
                let usage = usage_of(&tx, &w.tenant, to_ms(w.created_at)).map_err(io)?;
                let resources = vulcan_domain::Resources {
                    cpus: w.cpu_limit,
                    mem_mb: w.mem_limit,
                    timeout_s: w.timeout_s,
                    net_mbps: None,
                };
                admission::quota(&w.tenant, quota, usage, resources)?;
            }
            let inserted = tx
                .prepare_cached(&format!(
                    "INSERT OR IGNORE INTO workloads ({WORKLOAD_COLUMNS}, spec, code_archive, claimed_by, claimed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                             ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27,
                             ?28, ?29, ?30, ?31, ?32, ?33, ?34)"
                ))
                .map_err(io)?
                .execute(params![
                    w.id,
                    status.as_str(),
                    isolation,
                    w.requested_isolation.as_str(),
                    w.runtime.as_str(),
                    claim.as_deref().unwrap_or(""),
                    w.input_hash,
                    w.output,
                    w.exit_code,
                    w.error,
                    w.cpu_limit,
                    w.mem_limit,
                    w.timeout_s,
                    w.duration_ms.map(|d| d as i64),
                    to_ms(w.created_at),
                    started_at.map(to_ms),
                    w.finished_at.map(to_ms),
                    w.tenant,
                    w.prepare_ms.map(|d| d as i64),
                    w.function,
                    w.function_version,
                    w.trigger.as_ref().map(|t| t.kind.as_str()),
                    w.trigger.as_ref().map(|t| t.id.as_str()),
                    w.cpu_time_ms.map(|v| v as i64),
                    w.peak_memory_bytes.map(|v| v as i64),
                    w.max_processes.map(|v| v as i64),
                    w.request_id,
                    w.net_tx_bytes.map(|v| v as i64),
                    w.net_rx_bytes.map(|v| v as i64),
                    w.trace_id,
                    spec_json,
                    archive,
                    claim,
                    claim.as_ref().map(|_| to_ms(OffsetDateTime::now_utc())),
                ])
                .map_err(io)?;
            if inserted == 0 {
                return Err(StoreError::Duplicate(w.id.clone()));
            }
            if volumes.is_some() {
                tx.prepare_cached("UPDATE workloads SET volumes = ?2, volume_node = ?3 WHERE id = ?1")
                    .map_err(io)?
                    .execute(params![w.id, volumes, node])
                    .map_err(io)?;
            }
            if let Some(followup) = &followup {
                super::followups::insert_workload_followup(
                    &tx,
                    &w.id,
                    &w.tenant,
                    followup,
                    to_ms(w.created_at),
                )?;
            }
            if let Some(tick) = &admission.fire {
                let moved = tx
                    .prepare_cached(
                        "UPDATE schedules SET next_run_at = ?1, last_run_at = ?2, last_workload_id = ?3, updated_at = ?4
                         WHERE id = ?5 AND enabled = 1 AND next_run_at = ?2",
                    )
                    .map_err(io)?
                    .execute(params![
                        tick.next.map(to_ms),
                        to_ms(tick.at),
                        w.id,
                        to_ms(OffsetDateTime::now_utc()),
                        tick.schedule_id
                    ])
                    .map_err(io)?;
                if moved == 0 {
                    return Err(tick_taken(&tick.schedule_id));
                }
            }
            count(&tx, &w.tenant, isolation, status, 1).map_err(io)?;
            if !status.is_terminal() {
                use_share(&tx, &w.tenant, w.cpu_limit.into(), w.mem_limit.into(), 1).map_err(io)?;
            }
            if let Some(function) = &w.function {
                tx.prepare_cached(
                    "UPDATE functions SET invocations = invocations + 1 WHERE tenant = ?1 AND name = ?2",
                )
                .map_err(io)?
                .execute(params![w.tenant, function])
                .map_err(io)?;
            }
            tx.commit().map_err(io)?;
            Ok(claim.is_some())
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Workload, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| get_workload(conn, &id)).await
    }

    async fn spec(&self, id: &str) -> Result<WorkloadSpec, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| get_spec(conn, &id)).await
    }

    async fn list(&self, filter: &ListFilter) -> Result<WorkloadPage, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| {
            let status = filter.status.map(|s| s.as_str());
            let isolation = filter.isolation.map(|i| i.as_str());
            let (clause, values) = stats::list_filter(&filter, |n| format!("?{n}"));
            let n = values.len();
            let sql = format!(
                "SELECT {WORKLOAD_COLUMNS} FROM workloads {clause} ORDER BY id DESC LIMIT ?{} OFFSET ?{}",
                n + 1,
                n + 2
            );
            let mut params: Vec<&dyn rusqlite::ToSql> =
                values.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
            let (limit, offset) = (i64::from(filter.limit), filter.offset as i64);
            params.push(&limit);
            params.push(&offset);
            let workloads = conn
                .prepare_cached(&sql)
                .map_err(io)?
                .query_map(params.as_slice(), workload_from_row)
                .map_err(io)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(io)?;
            // Totals come from the counters: everyone's, or the tenant's. A function's
            // invocations are counted on its index (they are not in the counters).
            if filter.function.is_some() || filter.schedule.is_some() {
                let (clause, values) = stats::list_filter(
                    &ListFilter {
                        after: None,
                        ..filter.clone()
                    },
                    |n| format!("?{n}"),
                );
                let total: i64 = conn
                    .prepare_cached(&format!("SELECT COUNT(*) FROM workloads {clause}"))
                    .map_err(io)?
                    .query_row(rusqlite::params_from_iter(values.iter()), |r| r.get(0))
                    .map_err(io)?;
                return Ok(WorkloadPage {
                    workloads,
                    total: total.max(0) as u64,
                });
            }
            let total: i64 = conn
                .prepare_cached(
                    "SELECT COALESCE(SUM(n), 0) FROM workload_counts
                     WHERE ?3 IS NULL AND (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR isolation = ?2)
                     UNION ALL
                     SELECT COALESCE(SUM(n), 0) FROM tenant_counts
                     WHERE tenant = ?3 AND (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR isolation = ?2)",
                )
                .map_err(io)?
                .query_map(params![status, isolation, filter.tenant], |r| r.get::<_, i64>(0))
                .map_err(io)?
                .sum::<rusqlite::Result<i64>>()
                .map_err(io)?;
            Ok(WorkloadPage {
                workloads,
                total: total.max(0) as u64,
            })
        })
        .await
    }

    async fn claim(&self, node: &str, isolation: Isolation) -> Result<Option<Claimed>, StoreError> {
        let node = node.to_owned();
        self.write_small(0, move |conn| {
            conn.prepare_cached(&format!(
                "UPDATE workloads SET claimed_by = ?2, claimed_at = ?3, node_id = ?2
                 WHERE id = (SELECT id FROM workloads
                             WHERE status = 'pending' AND claimed_by IS NULL AND isolation = ?1
                               AND (volume_node IS NULL OR volume_node = ?2)
                             ORDER BY id LIMIT 1)
                 RETURNING {WORKLOAD_COLUMNS}, spec, code_archive"
            ))
            .map_err(io)?
            .query_row(
                params![isolation.as_str(), node, to_ms(OffsetDateTime::now_utc())],
                |r| {
                    let workload = workload_from_row(r)?;
                    let json: String = r.get(WORKLOAD_FIELDS)?;
                    let archive: Option<Vec<u8>> = r.get(WORKLOAD_FIELDS + 1)?;
                    Ok((workload, json, archive))
                },
            )
            .optional()
            .map_err(io)?
            .map(|(workload, json, archive)| {
                Ok(Claimed {
                    workload,
                    spec: spec_of(&json, archive)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn start(
        &self,
        id: &str,
        node: &str,
        started_at: OffsetDateTime,
    ) -> Result<Workload, StoreError> {
        let (id, node) = (id.to_owned(), node.to_owned());
        self.write_small(0, move |conn| {
            let tx = immediate(conn)?;
            let claimed = Expect::ClaimedBy(node.clone());
            let w = transition(&tx, &id, WorkloadStatus::Running, &claimed, |tx, _, _| {
                tx.prepare_cached(
                    "UPDATE workloads SET status = 'running', started_at = ?2, node_id = ?3 WHERE id = ?1",
                )?
                .execute(params![id, to_ms(started_at), node])
                .map(drop)
            })?;
            tx.commit().map_err(io)?;
            Ok(w)
        })
        .await
    }

    async fn finish(
        &self,
        id: &str,
        update: &TerminalUpdate,
        expect: &Expect,
    ) -> Result<Workload, StoreError> {
        let (id, u, expect) = (id.to_owned(), update.clone(), expect.clone());
        let bytes = u.output.as_ref().map_or(0, String::len)
            + u.error.as_ref().map_or(0, String::len)
            + u.last_lines.iter().map(|l| l.line.len()).sum::<usize>();
        self.write_small(bytes, move |conn| {
            let tx = immediate(conn)?;
            let w = finish_in(&tx, &id, &u, &expect)?;
            tx.commit().map_err(io)?;
            Ok(w)
        })
        .await
    }

    async fn request_kill(&self, id: &str) -> Result<Workload, StoreError> {
        let id = id.to_owned();
        self.write_small(0, move |conn| {
            conn.prepare_cached(
                "UPDATE workloads SET kill_requested_at = ?2
                 WHERE id = ?1 AND status IN ('pending', 'running') AND kill_requested_at IS NULL",
            )
            .map_err(io)?
            .execute(params![id, to_ms(OffsetDateTime::now_utc())])
            .map_err(io)?;
            get_workload(conn, &id)
        })
        .await
    }

    async fn kill_requests(&self, node: &str) -> Result<Vec<String>, StoreError> {
        let node = node.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id FROM workloads WHERE node_id = ?1 AND status IN ('pending', 'running')
                   AND kill_requested_at IS NOT NULL",
            )
            .map_err(io)?
            .query_map([node], |r| r.get(0))
            .map_err(io)?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(io)
        })
        .await
    }

    async fn unclaim(
        &self,
        node: &str,
        keep: &[String],
        claimed_before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let (node, keep, before) = (node.to_owned(), keep.to_vec(), to_ms(claimed_before));
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let claimed = tx
                .prepare_cached(
                    "SELECT id FROM workloads WHERE claimed_by = ?1 AND status = 'pending'
                       AND claimed_at < ?2",
                )
                .map_err(io)?
                .query_map(params![node, before], |r| r.get::<_, String>(0))
                .map_err(io)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(io)?;
            let mut n = 0;
            for id in claimed.iter().filter(|id| !keep.contains(id)) {
                n += unclaim_one(&tx, id).map_err(io)? as u64;
            }
            tx.commit().map_err(io)?;
            Ok(n)
        })
        .await
    }

    async fn running_on(&self, node: &str) -> Result<Vec<Workload>, StoreError> {
        let node = node.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {WORKLOAD_COLUMNS} FROM workloads WHERE node_id = ?1 AND status = 'running' ORDER BY id"
            ))
            .map_err(io)?
            .query_map([node], workload_from_row)
            .map_err(io)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(io)
        })
        .await
    }
}
