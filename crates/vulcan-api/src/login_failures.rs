//! Failed authentications, bounded: counted per source address and minute, refused with
//! `429` past a threshold, and written to the audit log in aggregate — one record per
//! source and minute with a count — so that a flood of bad keys costs a few rows, not one
//! per request.
//!
//! A record is written when its minute is over (the upkeep task looks every few seconds),
//! before `GET /v1/audit` answers (so a reader is never behind), and at shutdown; each
//! writes the failures counted since the last one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use time::OffsetDateTime;
use vulcan_domain::AuditEntry;

/// Sources tracked at once; past it, new sources share one entry (and one limit).
const MAX_SOURCES: usize = 10_000;
/// Distinct key ids and reasons kept per record.
const MAX_DETAILS: usize = 8;

/// Where failed attempts come from: an IPv4 address, or an IPv6 /64 (one host's usual
/// allocation), so that a host cannot dodge the limit by changing its low address bits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(String);

impl Source {
    pub fn of(ip: Option<IpAddr>) -> Source {
        Source(match ip {
            Some(IpAddr::V4(v4)) => v4.to_string(),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
            None => "unknown".into(),
        })
    }

    fn overflow() -> Source {
        Source("other sources".into())
    }
}

#[derive(Debug, Default)]
struct Window {
    /// Unix minute this window counts.
    minute: i64,
    failures: u64,
    /// Attempts answered 429 without being checked.
    refused: u64,
    keys: BTreeSet<String>,
    reasons: BTreeMap<String, u64>,
}

impl Window {
    fn is_empty(&self) -> bool {
        self.failures == 0 && self.refused == 0
    }
}

/// Failed authentications per source, and the threshold past which they are refused.
pub struct LoginFailures {
    per_minute: u32,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    windows: HashMap<Source, Window>,
    /// Records of minutes that are over, not written yet.
    finished: Vec<AuditEntry>,
}

fn minute_of(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(60)
}

impl LoginFailures {
    /// `per_minute` failed attempts from one source are answered; further ones in the same
    /// minute get 429 (0: no limit).
    pub fn new(per_minute: u32) -> Self {
        LoginFailures {
            per_minute,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// The entry of `source` for the current minute; an entry of an earlier minute is
    /// set aside to be written.
    fn window(&mut self, source: &Source, now: OffsetDateTime) -> &mut Window {
        let minute = minute_of(now);
        let windows = &mut self.windows;
        let key = if windows.contains_key(source) || windows.len() < MAX_SOURCES {
            source.clone()
        } else {
            Source::overflow()
        };
        let window = windows.entry(key.clone()).or_insert_with(|| Window {
            minute,
            ..Window::default()
        });
        if window.minute != minute {
            let old = std::mem::replace(
                window,
                Window {
                    minute,
                    ..Window::default()
                },
            );
            if !old.is_empty() {
                self.finished.push(entry(&key, old));
            }
        }
        window
    }
}

impl LoginFailures {
    /// Seconds `source` must wait before its next attempt is checked, if it is over the
    /// threshold this minute (and counts this attempt as refused).
    pub fn refuse(&self, source: &Source, now: OffsetDateTime) -> Option<u64> {
        if self.per_minute == 0 {
            return None;
        }
        let mut state = self.state();
        let window = state.window(source, now);
        if window.failures < u64::from(self.per_minute) {
            return None;
        }
        window.refused += 1;
        let into_minute = now.unix_timestamp().rem_euclid(60) as u64;
        Some((60 - into_minute).max(1))
    }

    /// Counts one failed attempt.
    pub fn record(&self, source: &Source, now: OffsetDateTime, key_id: Option<&str>, reason: &str) {
        let mut state = self.state();
        let window = state.window(source, now);
        window.failures += 1;
        if let Some(key) = key_id {
            if window.keys.len() < MAX_DETAILS {
                window.keys.insert(key.to_owned());
            }
        }
        if window.reasons.len() < MAX_DETAILS || window.reasons.contains_key(reason) {
            *window.reasons.entry(reason.to_owned()).or_default() += 1;
        }
    }

    /// Takes the records to write: those of minutes before `now`'s, or every one with
    /// `all` (before the log is read, and at shutdown).
    pub fn drain(&self, now: OffsetDateTime, all: bool) -> Vec<AuditEntry> {
        let minute = minute_of(now);
        let mut state = self.state();
        let mut out = std::mem::take(&mut state.finished);
        state.windows.retain(|source, window| {
            let done = window.minute < minute;
            if (done || all) && !window.is_empty() {
                let taken = std::mem::replace(
                    window,
                    Window {
                        minute: window.minute,
                        ..Window::default()
                    },
                );
                out.push(entry(source, taken));
            }
            !done
        });
        out
    }
}

/// The audit record of one source's failures in one minute.
fn entry(source: &Source, w: Window) -> AuditEntry {
    let from =
        OffsetDateTime::from_unix_timestamp(w.minute * 60).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let reasons: Vec<String> = w
        .reasons
        .iter()
        .map(|(reason, n)| format!("{reason} ×{n}"))
        .collect();
    let mut detail = format!(
        "{} failed authentication(s) from {} in the minute from {}",
        w.failures,
        source.0,
        from.time()
    );
    if w.refused > 0 {
        detail.push_str(&format!(
            ", and {} attempt(s) refused unchecked by the rate limit",
            w.refused
        ));
    }
    if !reasons.is_empty() {
        detail.push_str(&format!("; {}", reasons.join("; ")));
    }
    if !w.keys.is_empty() {
        let keys: Vec<&str> = w.keys.iter().map(String::as_str).collect();
        detail.push_str(&format!("; keys named: {}", keys.join(", ")));
    }
    // One key behind every failure is named as the actor; otherwise nobody is known.
    let actor = match (w.keys.len(), w.keys.iter().next()) {
        (1, Some(key)) if w.reasons.values().sum::<u64>() == w.failures => key.clone(),
        _ => "anonymous".to_owned(),
    };
    AuditEntry {
        seq: 0,
        at: OffsetDateTime::now_utc(),
        actor,
        role: None,
        tenant: None,
        action: "auth.failure".into(),
        target: Some(source.0.clone()),
        outcome: "denied".into(),
        status: if w.failures > 0 { 401 } else { 429 },
        detail: Some(detail),
        count: w.failures + w.refused,
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
    fn a_flood_becomes_one_record_per_source_and_minute_and_is_refused_past_the_limit() {
        let f = LoginFailures::new(3);
        let a = Source::of(Some("10.0.0.1".parse().unwrap()));
        let b = Source::of(Some("10.0.0.2".parse().unwrap()));
        let mut refused = 0;
        for i in 0..100 {
            let now = at(1000, i % 50);
            match f.refuse(&a, now) {
                Some(wait) => {
                    refused += 1;
                    assert!((10..=60).contains(&wait), "{wait}");
                }
                None => f.record(&a, now, None, "not valid"),
            }
        }
        assert_eq!(refused, 97, "three failures are answered, the rest refused");
        assert!(
            f.refuse(&b, at(1000, 1)).is_none(),
            "sources are counted apart"
        );
        f.record(&b, at(1000, 1), Some("k1"), "revoked");
        assert!(
            f.drain(at(1000, 59), false).is_empty(),
            "the minute is not over"
        );
        let mut written = f.drain(at(1001, 0), false);
        written.sort_by(|x, y| x.target.cmp(&y.target));
        assert_eq!(written.len(), 2);
        assert_eq!(written[0].count, 100);
        assert_eq!(written[0].actor, "anonymous");
        assert!(written[0]
            .detail
            .as_ref()
            .unwrap()
            .contains("97 attempt(s) refused"));
        assert_eq!((written[1].count, written[1].actor.as_str()), (1, "k1"));
        assert!(
            f.refuse(&a, at(1001, 0)).is_none(),
            "a new minute starts afresh"
        );
    }

    #[test]
    fn reading_the_log_writes_what_is_counted_so_far_and_nothing_twice() {
        let f = LoginFailures::new(0);
        let a = Source::of(Some("::1".parse().unwrap()));
        f.record(&a, at(5, 1), None, "no key");
        assert_eq!(f.drain(at(5, 2), true).len(), 1);
        assert!(f.drain(at(5, 3), true).is_empty());
        f.record(&a, at(5, 4), None, "no key");
        f.record(&a, at(6, 0), None, "no key");
        let later = f.drain(at(6, 1), false);
        assert_eq!(later.len(), 1, "minute 5 is over, minute 6 is not");
        assert_eq!(later[0].count, 1, "only what came after the first write");
        let refused_only = LoginFailures::new(1);
        refused_only.record(&a, at(7, 0), None, "no key");
        assert!(refused_only.refuse(&a, at(7, 1)).is_some());
        // A new minute's first refusal check sets the old one aside; nothing is lost.
        assert!(refused_only.refuse(&a, at(8, 0)).is_none());
        let written = refused_only.drain(at(8, 1), false);
        assert_eq!(written.iter().map(|e| e.count).sum::<u64>(), 2);
    }

    #[test]
    fn ipv6_hosts_are_grouped_by_their_64_bit_prefix() {
        let x = Source::of(Some("2001:db8:1:2::1".parse().unwrap()));
        let y = Source::of(Some("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert_eq!(x, y);
        let mapped = Source::of(Some("::ffff:10.1.1.1".parse().unwrap()));
        assert_eq!(mapped.0, "10.1.1.1");
    }
}
