//! Schedules: a deployed function fired on a cron, each tick exactly once.
//!
//! Every node runs the scheduler ([`run_scheduler`]): it sleeps until the earliest next
//! tick (at most a second, so schedules made on other nodes are seen), then fires what is
//! due. Firing claims the tick in the store in the same transaction that enqueues the
//! invocation, so when several nodes try, one run is stored and the others store nothing;
//! a crash between the two halves cannot happen. A tick whose previous run still goes
//! (`overlap: skip`), whose tenant is at its quota or whose function is gone is recorded as
//! skipped, with why. After downtime the missed ticks fire once, not once each: the tick
//! after a fired one is computed from now.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use croner::parser::{CronParser, Seconds, Year};
use serde::Deserialize;
use time::OffsetDateTime;
use vulcan_domain::{Overlap, Schedule, StoreError, Tick, Trigger};

use crate::engine::{now, Inner};
use crate::{Engine, SubmitError};

/// A parsed cron expression in its time zone.
#[derive(Debug)]
pub struct Cron {
    cron: croner::Cron,
    zone: chrono_tz::Tz,
}

impl Cron {
    /// Five fields (minute hour day-of-month month day-of-week) or six with seconds first;
    /// `zone` is an IANA name.
    pub fn parse(expression: &str, zone: &str) -> Result<Cron, String> {
        let fields = expression.split_whitespace().count();
        let seconds = match fields {
            5 => Seconds::Disallowed,
            6 => Seconds::Required,
            n => {
                return Err(format!(
                    "\"cron\" has {n} fields: give 5 (minute hour day-of-month month day-of-week, like \"*/5 * * * *\") or 6 with seconds first (like \"*/2 * * * * *\")"
                ))
            }
        };
        let cron = CronParser::builder()
            .seconds(seconds)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| format!("\"cron\" {expression:?} is not valid: {e}"))?;
        let zone = chrono_tz::Tz::from_str(zone).map_err(|_| {
            format!("\"timezone\" {zone:?} is not an IANA time zone name (like \"UTC\" or \"Europe/Paris\")")
        })?;
        Ok(Cron { cron, zone })
    }

    /// The shortest time between two consecutive ticks over the next 1,000 ticks after
    /// `from` (`None`: fewer than two ticks ever come).
    pub fn shortest_gap(&self, from: OffsetDateTime) -> Option<time::Duration> {
        let mut last = self.next_after(from)?;
        let mut shortest: Option<time::Duration> = None;
        for _ in 0..1000 {
            let Some(next) = self.next_after(last) else {
                break;
            };
            let gap = next - last;
            shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
            if gap <= time::Duration::SECOND {
                break;
            }
            last = next;
        }
        shortest
    }

    /// The first tick strictly after `t`: a whole second.
    pub fn next_after(&self, t: OffsetDateTime) -> Option<OffsetDateTime> {
        // Ticks fall on whole seconds; the search starts from the second `t` is in.
        let at = chrono::DateTime::from_timestamp(t.unix_timestamp(), 0)?.with_timezone(&self.zone);
        let next = self.cron.find_next_occurrence(&at, false).ok()?;
        OffsetDateTime::from_unix_timestamp(next.timestamp()).ok()
    }
}

/// `POST /v1/schedules`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    pub function: String,
    pub cron: String,
    #[serde(default)]
    pub input: serde_json::Value,
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default)]
    pub overlap: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// `PATCH /v1/schedules/{id}`: what to change.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    pub function: Option<String>,
    pub cron: Option<String>,
    pub input: Option<serde_json::Value>,
    pub timezone: Option<String>,
    pub overlap: Option<String>,
    pub enabled: Option<bool>,
}

fn utc() -> String {
    "UTC".into()
}

fn yes() -> bool {
    true
}

fn overlap_of(value: Option<&str>) -> Result<Overlap, SubmitError> {
    match value {
        None => Ok(Overlap::Skip),
        Some(v) => Overlap::parse(v).ok_or_else(|| {
            SubmitError::Invalid(format!(
                "\"overlap\" is {v:?}; it is \"skip\" (the default: no run starts while the last one goes) or \"allow\""
            ))
        }),
    }
}

/// The IANA time zone names a schedule's `timezone` may be.
pub fn time_zone_names() -> impl Iterator<Item = &'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())
}

impl Engine {
    /// Refuses a cron that ticks more often than `tenant`'s quota allows.
    async fn check_interval(
        &self,
        tenant: &str,
        cron: &Cron,
        text: &str,
    ) -> Result<(), SubmitError> {
        let min = self
            .quota_of(tenant)
            .await?
            .min_schedule_interval_s
            .unwrap_or(1);
        match cron.shortest_gap(now()) {
            Some(gap) if gap < time::Duration::seconds(i64::from(min)) => {
                Err(SubmitError::Invalid(format!(
                    "\"cron\" {text:?} ticks {} s apart at times; tenant {tenant}'s quota allows a tick every {min} s at most (min_schedule_interval_s)",
                    gap.whole_seconds()
                )))
            }
            _ => Ok(()),
        }
    }

    /// The function must exist in `tenant` when a schedule names it.
    async fn check_function(&self, tenant: &str, name: &str) -> Result<(), SubmitError> {
        match self.inner.functions.store.function(tenant, name).await {
            Ok(_) => Ok(()),
            Err(StoreError::Missing(_)) => Err(SubmitError::Invalid(format!(
                "function {name} does not exist in tenant {tenant}: deploy it first (PUT /v1/functions/{name})"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn create_schedule(
        &self,
        tenant: &str,
        request: ScheduleRequest,
    ) -> Result<Schedule, SubmitError> {
        let cron = Cron::parse(&request.cron, &request.timezone).map_err(SubmitError::Invalid)?;
        let overlap = overlap_of(request.overlap.as_deref())?;
        self.check_interval(tenant, &cron, &request.cron).await?;
        self.check_function(tenant, &request.function).await?;
        let max = self
            .quota_of(tenant)
            .await?
            .max_schedules
            .unwrap_or(u32::MAX);
        let at = now();
        let schedule = Schedule {
            id: self.inner.new_id(),
            tenant: tenant.to_owned(),
            function: request.function,
            cron: request.cron.trim().to_owned(),
            timezone: request.timezone,
            input: request.input,
            overlap,
            enabled: request.enabled,
            next_run_at: request.enabled.then(|| cron.next_after(at)).flatten(),
            last_run_at: None,
            last_workload_id: None,
            skipped_ticks: 0,
            last_skipped_at: None,
            last_skip_reason: None,
            created_at: at,
            updated_at: at,
        };
        self.inner.schedules.create_schedule(&schedule, max).await?;
        self.inner.schedule_changed.notify_one();
        Ok(schedule)
    }

    pub async fn schedule(&self, tenant: Option<&str>, id: &str) -> Result<Schedule, StoreError> {
        self.inner.schedules.schedule(tenant, id).await
    }

    pub async fn schedules(&self, tenant: Option<&str>) -> Result<Vec<Schedule>, StoreError> {
        self.inner.schedules.schedules(tenant).await
    }

    /// Changes a schedule; its next tick is computed again from now when its cron, zone or
    /// state changed. The change is written only if no node fired or skipped a tick since
    /// it was read (else it is read and applied again): a patch never re-arms a tick that
    /// was just fired.
    pub async fn patch_schedule(
        &self,
        tenant: Option<&str>,
        id: &str,
        patch: SchedulePatch,
    ) -> Result<Schedule, SubmitError> {
        for _ in 0..PATCH_ATTEMPTS {
            let read = self.inner.schedules.schedule(tenant, id).await?;
            let read_next = read.next_run_at;
            let schedule = self.patched(read, &patch).await?;
            if self
                .inner
                .schedules
                .update_schedule(&schedule, read_next)
                .await?
            {
                self.inner.schedule_changed.notify_one();
                return Ok(schedule);
            }
        }
        Err(SubmitError::Store(StoreError::Conflict(format!(
            "schedule {id} fires faster than it can be changed: disable it first ({{\"enabled\": false}}), then change it"
        ))))
    }

    /// `schedule` with `patch` applied, checked.
    async fn patched(
        &self,
        mut schedule: Schedule,
        patch: &SchedulePatch,
    ) -> Result<Schedule, SubmitError> {
        let retime = patch.cron.is_some()
            || patch.timezone.is_some()
            || patch.enabled.is_some_and(|e| e != schedule.enabled);
        if let Some(function) = &patch.function {
            self.check_function(&schedule.tenant, function).await?;
            schedule.function = function.clone();
        }
        if let Some(cron) = &patch.cron {
            schedule.cron = cron.trim().to_owned();
        }
        if let Some(zone) = &patch.timezone {
            schedule.timezone = zone.clone();
        }
        let cron = Cron::parse(&schedule.cron, &schedule.timezone).map_err(SubmitError::Invalid)?;
        if patch.cron.is_some() {
            self.check_interval(&schedule.tenant, &cron, &schedule.cron)
                .await?;
        }
        if let Some(input) = &patch.input {
            schedule.input = input.clone();
        }
        if patch.overlap.is_some() {
            schedule.overlap = overlap_of(patch.overlap.as_deref())?;
        }
        if let Some(enabled) = patch.enabled {
            schedule.enabled = enabled;
        }
        let at = now();
        if !schedule.enabled {
            schedule.next_run_at = None;
        } else if retime || schedule.next_run_at.is_none() {
            schedule.next_run_at = cron.next_after(at);
        }
        schedule.updated_at = at;
        Ok(schedule)
    }

    pub async fn delete_schedule(&self, tenant: Option<&str>, id: &str) -> Result<(), StoreError> {
        self.inner.schedules.delete_schedule(tenant, id).await
    }
}

/// The longest the scheduler sleeps: schedules made on other nodes are seen this fast.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Due ticks read at once; they are taken fairly between tenants.
const DUE_BATCH: u32 = 64;
/// Ticks of one batch fired at once.
const FIRING_AT_ONCE: usize = 8;
/// How often a patch is read and applied again when ticks keep moving under it.
const PATCH_ATTEMPTS: usize = 5;

/// Fires due ticks until the engine stops.
pub(crate) async fn run_scheduler(inner: Arc<Inner>) {
    let engine = Engine {
        inner: inner.clone(),
    };
    let mut stopping = inner.stopping.subscribe();
    loop {
        if *stopping.borrow() {
            return;
        }
        if !inner.is_isolated() {
            match inner.schedules.due_schedules(now(), DUE_BATCH).await {
                Ok(due) => {
                    use futures_util::StreamExt as _;
                    futures_util::stream::iter(due)
                        .for_each_concurrent(FIRING_AT_ONCE, |schedule| fire(&engine, schedule))
                        .await;
                }
                Err(e) => tracing::warn!(error = %e, "cannot read due schedules"),
            }
        }
        let wait = match inner.schedules.next_tick().await {
            Ok(Some(next)) => {
                let until = next - now();
                Duration::try_from(until)
                    .unwrap_or(Duration::ZERO)
                    .min(LOOK_EVERY)
            }
            _ => LOOK_EVERY,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.schedule_changed.notified() => {}
            _ = stopping.changed() => {}
        }
    }
}

/// Fires (or skips) the due tick of `schedule`.
async fn fire(engine: &Engine, schedule: Schedule) {
    let Some(at) = schedule.next_run_at else {
        return;
    };
    let next = match Cron::parse(&schedule.cron, &schedule.timezone) {
        // Missed ticks are not made up one by one: the next is after now.
        Ok(cron) => cron.next_after(now().max(at)),
        Err(e) => {
            tracing::warn!(schedule = %schedule.id, error = %e, "a stored schedule does not parse");
            None
        }
    };
    let tick = Tick {
        schedule_id: schedule.id.clone(),
        at,
        next,
    };
    let skip = |reason: String| {
        let tick = &tick;
        async move {
            if let Err(e) = engine.inner.schedules.skip_tick(tick, &reason).await {
                tracing::warn!(schedule = %tick.schedule_id, error = %e, "cannot record a skipped tick");
            }
        }
    };
    if schedule.overlap == Overlap::Skip {
        if let Some(last) = &schedule.last_workload_id {
            match engine.inner.store.get(last).await {
                Ok(w) if !w.status.is_terminal() => {
                    return skip(format!("the previous run {last} is still {}", w.status)).await;
                }
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(schedule = %schedule.id, error = %e, "cannot read the previous run");
                    return;
                }
            }
        }
    }
    let quota = match engine.quota_of(&schedule.tenant).await {
        Ok(quota) => quota,
        Err(e) => {
            tracing::warn!(schedule = %schedule.id, error = %e, "cannot read the tenant's quota");
            return;
        }
    };
    let fired = engine
        .invoke_as(
            &schedule.tenant,
            &schedule.function,
            schedule.input.clone(),
            Some(quota),
            Some((
                Trigger {
                    kind: "schedule".into(),
                    id: schedule.id.clone(),
                },
                Some(tick.clone()),
            )),
            Default::default(),
        )
        .await;
    match fired {
        Ok(w) => {
            tracing::debug!(schedule = %schedule.id, workload = %w.id, "schedule fired");
            engine.inner.publish(crate::events::Event::fired(
                &engine.inner,
                &schedule.tenant,
                &schedule.id,
                &w,
            ));
        }
        // Another node fired this tick.
        Err(SubmitError::Store(StoreError::Conflict(_))) => {}
        Err(SubmitError::ShuttingDown) => {}
        Err(e) => skip(format!("not fired: {e}")).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn five_and_six_field_expressions_tick_in_their_zone() {
        let every_2s = Cron::parse("*/2 * * * * *", "UTC").unwrap();
        assert_eq!(
            every_2s.next_after(datetime!(2026-01-01 00:00:01.500 UTC)),
            Some(datetime!(2026-01-01 00:00:02 UTC))
        );
        assert_eq!(
            every_2s.next_after(datetime!(2026-01-01 00:00:02 UTC)),
            Some(datetime!(2026-01-01 00:00:04 UTC)),
            "strictly after"
        );
        let every_5s = Cron::parse("*/5 * * * * *", "UTC").unwrap();
        assert_eq!(
            every_5s.next_after(datetime!(2026-01-01 00:00:12.575 UTC)),
            Some(datetime!(2026-01-01 00:00:15 UTC)),
            "on whole seconds"
        );
        let nine_in_paris = Cron::parse("0 9 * * *", "Europe/Paris").unwrap();
        assert_eq!(
            nine_in_paris.next_after(datetime!(2026-07-01 00:00 UTC)),
            Some(datetime!(2026-07-01 07:00 UTC)),
            "09:00 in Paris is 07:00 UTC in summer"
        );
    }

    #[test]
    fn the_shortest_gap_between_ticks_is_found() {
        let from = datetime!(2026-01-01 00:00:00 UTC);
        let gap = |expr: &str| Cron::parse(expr, "UTC").unwrap().shortest_gap(from);
        assert_eq!(gap("* * * * * *"), Some(time::Duration::SECOND));
        assert_eq!(gap("*/5 * * * * *"), Some(time::Duration::seconds(5)));
        assert_eq!(
            gap("0,1 * * * * *"),
            Some(time::Duration::SECOND),
            "uneven: the shortest"
        );
        assert_eq!(gap("0 9 * * *"), Some(time::Duration::DAY));
    }

    #[test]
    fn bad_expressions_and_zones_say_what_is_wrong() {
        assert!(Cron::parse("* * * *", "UTC")
            .unwrap_err()
            .contains("4 fields"));
        assert!(Cron::parse("61 * * * *", "UTC")
            .unwrap_err()
            .contains("not valid"));
        assert!(Cron::parse("* * * * *", "Mars/Olympus")
            .unwrap_err()
            .contains("IANA"));
    }
}
