//! [`ScheduleStore`] on PostgreSQL: a tick is claimed by moving `next_run_at` from it (here
//! when skipped; in `enqueue` when fired), so two nodes never both claim one.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::Row;
use vulcan_domain::{Schedule, ScheduleStore, StoreError, Tick};

use super::workloads::{from_ms, to_ms};
use super::{Fail, PgStore};
use crate::schedules::{missing_schedule, parsed, SCHEDULE_COLUMNS};

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
    async fn create_schedule(&self, s: &Schedule) -> Result<(), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                c.execute(
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

    async fn update_schedule(&self, s: &Schedule) -> Result<(), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "UPDATE schedules SET cron = $2, timezone = $3, input = $4, overlap = $5,
                             enabled = $6, next_run_at = $7, updated_at = $8
                         WHERE id = $1",
                        &[
                            &s.id,
                            &s.cron,
                            &s.timezone,
                            &s.input.to_string(),
                            &s.overlap.as_str(),
                            &s.enabled,
                            &s.next_run_at.map(to_ms),
                            &to_ms(s.updated_at),
                        ],
                    )
                    .await?;
                if n == 0 {
                    return Err(missing_schedule(&s.id).into());
                }
                Ok(())
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
                        "SELECT {SCHEDULE_COLUMNS} FROM schedules
                         WHERE enabled AND next_run_at <= $1 ORDER BY next_run_at LIMIT $2"
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
