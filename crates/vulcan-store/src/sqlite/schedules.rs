//! [`ScheduleStore`] on SQLite: a tick is claimed by moving `next_run_at` from it (here when
//! skipped; in `enqueue` when fired).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};
use time::OffsetDateTime;
use vulcan_domain::{Schedule, ScheduleStore, StoreError, Tick};

use super::{from_ms, io, to_ms, SqliteStore};
use crate::schedules::{missing_schedule, parsed, too_many_schedules, SCHEDULE_COLUMNS};

fn schedule_from_row(row: &Row) -> rusqlite::Result<(Schedule, String, String)> {
    let input: String = row.get(5)?;
    let overlap: String = row.get(6)?;
    Ok((
        Schedule {
            id: row.get(0)?,
            tenant: row.get(1)?,
            function: row.get(2)?,
            cron: row.get(3)?,
            timezone: row.get(4)?,
            input: serde_json::Value::Null,
            overlap: Default::default(),
            enabled: row.get(7)?,
            next_run_at: row.get::<_, Option<i64>>(8)?.map(from_ms),
            last_run_at: row.get::<_, Option<i64>>(9)?.map(from_ms),
            last_workload_id: row.get(10)?,
            skipped_ticks: row.get::<_, i64>(11)?.max(0) as u64,
            last_skipped_at: row.get::<_, Option<i64>>(12)?.map(from_ms),
            last_skip_reason: row.get(13)?,
            created_at: from_ms(row.get(14)?),
            updated_at: from_ms(row.get(15)?),
        },
        input,
        overlap,
    ))
}

fn finish(raw: (Schedule, String, String)) -> Result<Schedule, StoreError> {
    let (mut schedule, input, overlap) = raw;
    (schedule.input, schedule.overlap) = parsed(&input, &overlap)?;
    Ok(schedule)
}

fn query_schedules(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Schedule>, StoreError> {
    conn.prepare_cached(sql)
        .map_err(io)?
        .query_map(params, schedule_from_row)
        .map_err(io)?
        .map(|r| r.map_err(io).and_then(finish))
        .collect()
}

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn create_schedule(&self, s: &Schedule, max_per_tenant: u32) -> Result<(), StoreError> {
        let s = s.clone();
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(io)?;
            let has: u32 = tx
                .prepare_cached("SELECT COUNT(*) FROM schedules WHERE tenant = ?1")
                .map_err(io)?
                .query_row([&s.tenant], |r| r.get(0))
                .map_err(io)?;
            if has >= max_per_tenant {
                return Err(too_many_schedules(&s.tenant, max_per_tenant));
            }
            tx.prepare_cached(&format!(
                "INSERT INTO schedules ({SCHEDULE_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ))
            .map_err(io)?
            .execute(params![
                s.id,
                s.tenant,
                s.function,
                s.cron,
                s.timezone,
                s.input.to_string(),
                s.overlap.as_str(),
                s.enabled,
                s.next_run_at.map(to_ms),
                s.last_run_at.map(to_ms),
                s.last_workload_id,
                s.skipped_ticks as i64,
                s.last_skipped_at.map(to_ms),
                s.last_skip_reason,
                to_ms(s.created_at),
                to_ms(s.updated_at),
            ])
            .map_err(io)?;
            tx.commit().map_err(io)
        })
        .await
    }

    async fn schedule(&self, tenant: Option<&str>, id: &str) -> Result<Schedule, StoreError> {
        let (tenant, id) = (tenant.map(str::to_owned), id.to_owned());
        self.read(move |conn| {
            query_schedules(
                conn,
                &format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = ?1 AND (?2 IS NULL OR tenant = ?2)"
                ),
                params![id, tenant],
            )?
            .pop()
            .ok_or_else(|| missing_schedule(&id))
        })
        .await
    }

    async fn schedules(&self, tenant: Option<&str>) -> Result<Vec<Schedule>, StoreError> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |conn| {
            query_schedules(
                conn,
                &format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE ?1 IS NULL OR tenant = ?1 ORDER BY id"
                ),
                params![tenant],
            )
        })
        .await
    }

    async fn update_schedule(
        &self,
        s: &Schedule,
        read_next: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let s = s.clone();
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE schedules SET function = ?2, cron = ?3, timezone = ?4, input = ?5,
                         overlap = ?6, enabled = ?7, next_run_at = ?8, updated_at = ?9
                     WHERE id = ?1 AND next_run_at IS ?10",
                )
                .map_err(io)?
                .execute(params![
                    s.id,
                    s.function,
                    s.cron,
                    s.timezone,
                    s.input.to_string(),
                    s.overlap.as_str(),
                    s.enabled,
                    s.next_run_at.map(to_ms),
                    to_ms(s.updated_at),
                    read_next.map(to_ms),
                ])
                .map_err(io)?;
            if n == 0 {
                let exists: bool = conn
                    .query_row("SELECT 1 FROM schedules WHERE id = ?1", [&s.id], |_| Ok(()))
                    .optional()
                    .map_err(io)?
                    .is_some();
                return if exists {
                    Ok(false)
                } else {
                    Err(missing_schedule(&s.id))
                };
            }
            Ok(true)
        })
        .await
    }

    async fn delete_schedule(&self, tenant: Option<&str>, id: &str) -> Result<(), StoreError> {
        let (tenant, id) = (tenant.map(str::to_owned), id.to_owned());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM schedules WHERE id = ?1 AND (?2 IS NULL OR tenant = ?2)",
                    params![id, tenant],
                )
                .map_err(io)?;
            if n == 0 {
                return Err(missing_schedule(&id));
            }
            Ok(())
        })
        .await
    }

    async fn due_schedules(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Schedule>, StoreError> {
        self.read(move |conn| {
            query_schedules(
                conn,
                &format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM (
                       SELECT *, ROW_NUMBER() OVER (PARTITION BY tenant ORDER BY next_run_at, id) AS turn
                       FROM schedules WHERE enabled = 1 AND next_run_at <= ?1)
                     ORDER BY turn, next_run_at, id LIMIT ?2"
                ),
                params![to_ms(now), limit],
            )
        })
        .await
    }

    async fn next_tick(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        self.read(|conn| {
            let next: Option<i64> = conn
                .query_row(
                    "SELECT MIN(next_run_at) FROM schedules WHERE enabled = 1",
                    [],
                    |r| r.get(0),
                )
                .map_err(io)?;
            Ok(next.map(from_ms))
        })
        .await
    }

    async fn skip_tick(&self, tick: &Tick, reason: &str) -> Result<bool, StoreError> {
        let (tick, reason) = (tick.clone(), reason.to_owned());
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE schedules SET next_run_at = ?1, skipped_ticks = skipped_ticks + 1,
                         last_skipped_at = ?2, last_skip_reason = ?3, updated_at = ?4
                     WHERE id = ?5 AND enabled = 1 AND next_run_at = ?2",
                )
                .map_err(io)?
                .execute(params![
                    tick.next.map(to_ms),
                    to_ms(tick.at),
                    reason,
                    to_ms(OffsetDateTime::now_utc()),
                    tick.schedule_id,
                ])
                .map_err(io)?;
            Ok(n == 1)
        })
        .await
    }
}
