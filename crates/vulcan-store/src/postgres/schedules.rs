//! [`ScheduleStore`] on PostgreSQL: a tick is claimed by moving `next_run_at` from it (here
//! when skipped; in `enqueue` when fired), so two nodes never both claim one.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::Row;
use vulcan_domain::{Schedule, ScheduleStore, StoreError, Tick};

use super::workloads::{from_ms, to_ms};
use super::{Fail, PgStore};
use crate::schedules::{missing_schedule, parsed, too_many_schedules, SCHEDULE_COLUMNS};

fn schedule_from_row(row: &Row) -> Result<Schedule, Fail> {
    let (input, overlap) = parsed(row.get(5), row.get(6))?;
    Ok(Schedule {
        id: row.get(0),
        tenant: row.get(1),
        function: row.get(2),
        cron: row.get(3),
        timezone: row.get(4),
        input,
        overlap,
        enabled: row.get(7),
        next_run_at: row.get::<_, Option<i64>>(8).map(from_ms),
        last_run_at: row.get::<_, Option<i64>>(9).map(from_ms),
        last_workload_id: row.get(10),
        skipped_ticks: row.get::<_, i64>(11).max(0) as u64,
        last_skipped_at: row.get::<_, Option<i64>>(12).map(from_ms),
        last_skip_reason: row.get(13),
        created_at: from_ms(row.get(14)),
        updated_at: from_ms(row.get(15)),
    })
}

#[async_trait]
impl ScheduleStore for PgStore {
    async fn create_schedule(&self, s: &Schedule, max_per_tenant: u32) -> Result<(), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                // One creation per tenant at a time, across the nodes: the count holds.
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('vulcan.schedules.' || $1))",
                    &[&s.tenant],
                )
                .await?;
                let has: i64 = tx
                    .query_one("SELECT COUNT(*) FROM schedules WHERE tenant = $1", &[&s.tenant])
                    .await?
                    .get(0);
                if has >= i64::from(max_per_tenant) {
                    return Err(too_many_schedules(&s.tenant, max_per_tenant).into());
                }
                tx.execute(
                    &format!(
                        "INSERT INTO schedules ({SCHEDULE_COLUMNS})
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
                    ),
                    &[
                        &s.id,
                        &s.tenant,
                        &s.function,
                        &s.cron,
                        &s.timezone,
                        &s.input.to_string(),
                        &s.overlap.as_str(),
                        &s.enabled,
                        &s.next_run_at.map(to_ms),
                        &s.last_run_at.map(to_ms),
                        &s.last_workload_id,
                        &(s.skipped_ticks as i64),
                        &s.last_skipped_at.map(to_ms),
                        &s.last_skip_reason,
                        &to_ms(s.created_at),
                        &to_ms(s.updated_at),
                    ],
                )
                .await?;
                tx.commit().await?;
                Ok(())
            })
        })
        .await
    }

    async fn schedule(&self, tenant: Option<&str>, id: &str) -> Result<Schedule, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        &format!(
                            "SELECT {SCHEDULE_COLUMNS} FROM schedules
                             WHERE id = $1 AND ($2::TEXT IS NULL OR tenant = $2)"
                        ),
                        &[&id, &tenant],
                    )
                    .await?
                    .ok_or_else(|| missing_schedule(id))?;
                schedule_from_row(&row)
            })
        })
        .await
    }

    async fn schedules(&self, tenant: Option<&str>) -> Result<Vec<Schedule>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                c.query(
                    &format!(
                        "SELECT {SCHEDULE_COLUMNS} FROM schedules
                         WHERE $1::TEXT IS NULL OR tenant = $1 ORDER BY id"
                    ),
                    &[&tenant],
                )
                .await?
                .iter()
                .map(schedule_from_row)
                .collect()
            })
        })
        .await
    }

    async fn update_schedule(
        &self,
        s: &Schedule,
        read_next: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "UPDATE schedules SET function = $2, cron = $3, timezone = $4, input = $5,
                             overlap = $6, enabled = $7, next_run_at = $8, updated_at = $9
                         WHERE id = $1 AND next_run_at IS NOT DISTINCT FROM $10",
                        &[
                            &s.id,
                            &s.function,
                            &s.cron,
                            &s.timezone,
                            &s.input.to_string(),
                            &s.overlap.as_str(),
                            &s.enabled,
                            &s.next_run_at.map(to_ms),
                            &to_ms(s.updated_at),
                            &read_next.map(to_ms),
                        ],
                    )
                    .await?;
                if n == 0 {
                    let exists = c
                        .query_opt("SELECT 1 FROM schedules WHERE id = $1", &[&s.id])
                        .await?
                        .is_some();
                    return if exists {
                        Ok(false)
                    } else {
                        Err(missing_schedule(&s.id).into())
                    };
                }
                Ok(true)
            })
        })
        .await
    }

    async fn delete_schedule(&self, tenant: Option<&str>, id: &str) -> Result<(), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "DELETE FROM schedules WHERE id = $1 AND ($2::TEXT IS NULL OR tenant = $2)",
                        &[&id, &tenant],
                    )
                    .await?;
                if n == 0 {
                    return Err(missing_schedule(id).into());
                }
                Ok(())
            })
        })
        .await
    }

    async fn due_schedules(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Schedule>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                c.query(
                    &format!(
                        "SELECT {SCHEDULE_COLUMNS} FROM (
                           SELECT *, ROW_NUMBER() OVER (PARTITION BY tenant ORDER BY next_run_at, id) AS turn
                           FROM schedules WHERE enabled AND next_run_at <= $1) due
                         ORDER BY turn, next_run_at, id LIMIT $2"
                    ),
                    &[&to_ms(now), &i64::from(limit)],
                )
                .await?
                .iter()
                .map(schedule_from_row)
                .collect()
            })
        })
        .await
    }

    async fn next_tick(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let next: Option<i64> = c
                    .query_one("SELECT MIN(next_run_at) FROM schedules WHERE enabled", &[])
                    .await?
                    .get(0);
                Ok(next.map(from_ms))
            })
        })
        .await
    }

    async fn skip_tick(&self, tick: &Tick, reason: &str) -> Result<bool, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "UPDATE schedules SET next_run_at = $1, skipped_ticks = skipped_ticks + 1,
                             last_skipped_at = $2, last_skip_reason = $3, updated_at = $4
                         WHERE id = $5 AND enabled AND next_run_at = $2",
                        &[
                            &tick.next.map(to_ms),
                            &to_ms(tick.at),
                            &reason,
                            &to_ms(OffsetDateTime::now_utc()),
                            &tick.schedule_id,
                        ],
                    )
                    .await?;
                Ok(n == 1)
            })
        })
        .await
    }
}
