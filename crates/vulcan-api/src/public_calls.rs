//! Calls of public functions by anyone, audited in aggregate: one record per function,
//! outcome and minute with a count, so that a flood of anonymous calls costs a few rows,
//! not one per request. Written as [`crate::login_failures`] writes failed logins: when
//! the minute is over, before the log is read, and at shutdown.

use std::collections::BTreeMap;
use std::sync::Mutex;

use time::OffsetDateTime;
use vulcan_domain::AuditEntry;

/// Distinct (minute, function, status) counted at once; past it, calls are counted under
/// one record for "other functions".
const MAX_KEPT: usize = 10_000;

/// What one record counts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Tally {
    minute: i64,
    /// `tenant/function`.
    target: String,
    status: u16,
}

/// The anonymous calls counted and not written yet.
#[derive(Default)]
pub struct PublicCalls(Mutex<BTreeMap<Tally, (u64, String)>>);

impl PublicCalls {
    fn counts(&self) -> std::sync::MutexGuard<'_, BTreeMap<Tally, (u64, String)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one anonymous call of `tenant`'s `function` answered with `status`;
    /// `action` is the audit action of the route.
    pub fn record(&self, target: &str, action: &str, status: u16, now: OffsetDateTime) {
        let mut counts = self.counts();
        let mut tally = Tally {
            minute: now.unix_timestamp().div_euclid(60),
            target: target.to_owned(),
            status,
        };
        if !counts.contains_key(&tally) && counts.len() >= MAX_KEPT {
            tally.target = "other functions".into();
        }
        counts.entry(tally).or_insert((0, action.to_owned())).0 += 1;
    }

    /// Takes the records to write: those of minutes before `now`'s, or every one with
    /// `all` (before the log is read, and at shutdown).
    pub fn drain(&self, now: OffsetDateTime, all: bool) -> Vec<AuditEntry> {
        let minute = now.unix_timestamp().div_euclid(60);
        let mut counts = self.counts();
        let taken: Vec<(Tally, (u64, String))> = if all {
            std::mem::take(&mut *counts).into_iter().collect()
        } else {
            let later = counts.split_off(&Tally {
                minute,
                target: String::new(),
                status: 0,
            });
            std::mem::replace(&mut *counts, later).into_iter().collect()
        };
        taken
            .into_iter()
            .map(|(t, (n, action))| entry(t, n, action))
            .collect()
    }
}

fn entry(t: Tally, count: u64, action: String) -> AuditEntry {
    let from =
        OffsetDateTime::from_unix_timestamp(t.minute * 60).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let tenant = t.target.split('/').next().map(str::to_owned);
    AuditEntry {
        seq: 0,
        at: OffsetDateTime::now_utc(),
        actor: "public".into(),
        role: None,
        tenant,
        action,
        detail: Some(format!(
            "{count} call(s) without a key, answered {}, in the minute from {}",
            t.status,
            from.time()
        )),
        outcome: crate::auth::outcome_of(t.status).into(),
        status: t.status,
        target: Some(t.target),
        count,
        request_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64, second: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(minute * 60 + second).unwrap()
    }

    #[test]
    fn calls_are_counted_per_function_status_and_minute() {
        let calls = PublicCalls::default();
        for s in 0..30 {
            calls.record("t/f", "function.http", 200, at(100, s));
        }
        calls.record("t/f", "function.http", 502, at(100, 40));
        calls.record("t/g", "function.http", 200, at(101, 1));
        // Only the minute that is over is written.
        let over = calls.drain(at(101, 5), false);
        assert_eq!(over.len(), 2, "{over:?}");
        let ok = over.iter().find(|e| e.status == 200).unwrap();
        assert_eq!((ok.count, ok.target.as_deref()), (30, Some("t/f")));
        assert_eq!(
            (ok.actor.as_str(), ok.tenant.as_deref()),
            ("public", Some("t"))
        );
        let rest = calls.drain(at(101, 6), true);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].target.as_deref(), Some("t/g"));
        assert!(calls.drain(at(102, 0), true).is_empty());
    }
}
