//! What happens after an async workload ends, kept in the store so that it survives a
//! crash: a failed one is submitted again (`retry`, within `max_age_s`), the last failure
//! is sent to a queue (`on_failure`), and the final workload is POSTed to `callback_url`.
//! A topic's url subscriptions are the same signed, retried POST.
//!
//! A workload admitted with an [`AsyncPolicy`] gets a follow-up row in the transaction that
//! admits it ([`crate::WorkloadStore::enqueue`]); any node takes it once the workload has
//! ended (or waited past its age), under a lease, and settles it. Every step is at least
//! once: a retry's id is fixed before it is submitted, a queue message carries the
//! workload's id as its dedup id, and a POST carries its delivery id for the receiver.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::StoreError;

/// The most attempts a workload may be given (the first included).
pub const MAX_ATTEMPTS: u32 = 10;
/// The longest first wait between two attempts, in seconds.
pub const MAX_BACKOFF_S: u32 = 3_600;
/// The longest `max_age_s`: a day.
pub const MAX_AGE_S: u32 = 86_400;
/// A callback URL's longest length.
pub const MAX_URL_BYTES: usize = 2_048;
/// The secret of the tenant's that signs its callbacks and url subscriptions' calls.
pub const SIGNING_SECRET: &str = "CALLBACK_SIGNING_KEY";

/// Retries of a failed async workload.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all, the first included (1–10).
    #[serde(deserialize_with = "crate::whole::int")]
    pub max_attempts: u32,
    /// The wait before the second attempt, in seconds; it doubles for each one after
    /// (0–3600; default 1).
    #[serde(default = "one")]
    #[serde(deserialize_with = "crate::whole::int")]
    pub backoff_s: u32,
}

fn one() -> u32 {
    1
}

/// Where a workload's last failure goes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnFailure {
    /// A queue of the tenant's: it gets `{"workload": …}` with the failed workload.
    pub queue: String,
}

/// What a request for an async workload (or invocation) may ask to happen after it ends.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncOptions {
    /// Submit it again when it fails, up to `max_attempts` in all.
    #[serde(default)]
    pub retry: Option<Retry>,
    /// No attempt starts (and none waits in the queue) later than this many seconds after
    /// the request: one still waiting then fails, and no retry follows.
    #[serde(default)]
    #[serde(deserialize_with = "crate::whole::opt")]
    pub max_age_s: Option<u32>,
    /// A queue of the tenant's that gets the workload when its last attempt failed (or it
    /// was killed).
    #[serde(default)]
    pub on_failure: Option<OnFailure>,
    /// POSTed the final workload's JSON when it has ended for good, signed with the
    /// tenant's secret `CALLBACK_SIGNING_KEY` (header `X-Vulcan-Signature: t=<unix
    /// seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`), retried with backoff until it
    /// answers 2xx.
    #[serde(default)]
    pub callback_url: Option<String>,
}

impl AsyncOptions {
    pub fn is_empty(&self) -> bool {
        *self == AsyncOptions::default()
    }
}

/// What an async workload asked to happen after it ends. Kept in its spec; a retry carries
/// it on with `attempt` one more.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// No attempt starts (and none waits in the queue) later than this after the first was
    /// submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_s: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// When the first attempt was submitted.
    #[serde(with = "time::serde::rfc3339")]
    pub first_submitted_at: OffsetDateTime,
    /// Whether the callback may reach a never-reachable range (loopback, private): its
    /// submitter was an admin, or the tenant's quota lists the destination.
    #[serde(default)]
    pub private_ok: bool,
}

impl AsyncPolicy {
    /// When attempts may no longer start, if ever.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.max_age_s
            .map(|s| self.first_submitted_at + time::Duration::seconds(s.into()))
    }

    /// When the next attempt after a failure at `failed_at` is due, if there is one.
    pub fn next_attempt(&self, failed_at: OffsetDateTime) -> Option<OffsetDateTime> {
        let retry = self.retry?;
        if self.attempt >= retry.max_attempts {
            return None;
        }
        let wait = u64::from(retry.backoff_s) << (self.attempt - 1).min(16);
        let due = failed_at + time::Duration::seconds(wait.min(86_400) as i64);
        match self.expires_at() {
            Some(end) if due > end => None,
            _ => Some(due),
        }
    }

    /// Checks the numbers; the error says what to change.
    pub fn check(&self) -> Result<(), String> {
        if let Some(r) = self.retry {
            if !(1..=MAX_ATTEMPTS).contains(&r.max_attempts) {
                return Err(format!(
                    "\"retry.max_attempts\" is {}; it counts every attempt, the first included: 1 to {MAX_ATTEMPTS}",
                    r.max_attempts
                ));
            }
            if r.backoff_s > MAX_BACKOFF_S {
                return Err(format!(
                    "\"retry.backoff_s\" is {}; at most {MAX_BACKOFF_S} (it doubles after each attempt)",
                    r.backoff_s
                ));
            }
        }
        if let Some(age) = self.max_age_s {
            if !(1..=MAX_AGE_S).contains(&age) {
                return Err(format!(
                    "\"max_age_s\" is {age}; it must be 1 to {MAX_AGE_S} (a day)"
                ));
            }
        }
        if let Some(url) = &self.callback_url {
            check_url(url)?;
        }
        Ok(())
    }
}

/// Checks that `url` is an absolute `http`/`https` URL with a host; the error says what to
/// change. Where it leads is checked when it is called.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!(
            "the callback URL is {} bytes; at most {MAX_URL_BYTES}",
            url.len()
        ));
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if authority.contains('@') {
        return Err(format!(
            "{url:?} carries credentials; sign-in is by the X-Vulcan-Signature header"
        ));
    }
    if host.is_empty() || host.starts_with(':') || url.chars().any(char::is_whitespace) {
        return Err(format!("{url:?} has no host, or has spaces in it"));
    }
    Ok(())
}

/// A POST waiting to be made (a callback, or a topic's message to a url subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPost {
    /// The delivery's id, sent as `X-Vulcan-Delivery`: the same for every try.
    pub id: String,
    pub tenant: String,
    pub url: String,
    pub body: String,
    pub private_ok: bool,
    pub due_at: OffsetDateTime,
}

/// A follow-up a node has taken (under a lease: no other node takes it until the lease
/// ends).
#[derive(Debug, Clone, PartialEq)]
pub struct Followup {
    pub id: String,
    pub tenant: String,
    /// How many times it was taken, this time included.
    pub attempts: u32,
    pub kind: FollowupKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FollowupKind {
    /// An async workload (the follow-up's id is the workload's) that has ended, or waited
    /// past its `max_age_s`.
    Workload { policy: Box<AsyncPolicy> },
    Post {
        url: String,
        body: String,
        private_ok: bool,
    },
}

/// How a taken follow-up ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// Done: removed, with the POST it leads to (if any) stored in the same transaction.
    Done { then: Option<NewPost> },
    /// Taken again no sooner than `due_at`; `error` is why (kept for the next try).
    Later {
        due_at: OffsetDateTime,
        error: Option<String>,
    },
}

/// Keeps follow-ups.
#[async_trait]
pub trait FollowupStore: Send + Sync {
    /// Takes up to `limit` follow-ups that are due at `now` until `lease_until`: POSTs whose
    /// time has come, and workloads' that ended (or are still pending past their
    /// `max_age_s`). Two nodes never hold the same one at once.
    async fn take_followups(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Followup>, StoreError>;

    /// The id the retry that follows `id` is submitted with: `fresh` the first time, the
    /// same one ever after (so a retry submitted twice is stored once).
    async fn retry_id(&self, id: &str, fresh: &str) -> Result<String, StoreError>;

    async fn settle_followup(&self, id: &str, settle: &Settle) -> Result<(), StoreError>;

    /// Stores POSTs to be made (a topic's url subscriptions).
    async fn add_posts(&self, posts: &[NewPost]) -> Result<(), StoreError>;

    /// How many follow-ups wait, of each kind (`workload`, `post`).
    async fn followup_counts(&self) -> Result<Vec<(String, u64)>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(attempt: u32, retry: Option<Retry>, max_age_s: Option<u32>) -> AsyncPolicy {
        AsyncPolicy {
            retry,
            max_age_s,
            on_failure: None,
            callback_url: None,
            attempt,
            first_submitted_at: OffsetDateTime::UNIX_EPOCH,
            private_ok: false,
        }
    }

    #[test]
    fn attempts_back_off_doubling_until_the_last_or_the_age_limit() {
        let r = Some(Retry {
            max_attempts: 3,
            backoff_s: 2,
        });
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(10);
        assert_eq!(
            policy(1, r, None).next_attempt(t),
            Some(t + time::Duration::seconds(2))
        );
        assert_eq!(
            policy(2, r, None).next_attempt(t),
            Some(t + time::Duration::seconds(4))
        );
        assert_eq!(policy(3, r, None).next_attempt(t), None);
        assert_eq!(policy(1, None, None).next_attempt(t), None);
        // Due at 12 s, past an age limit of 11 s from the first submission.
        assert_eq!(policy(1, r, Some(11)).next_attempt(t), None);
        assert!(policy(1, r, Some(12)).next_attempt(t).is_some());
    }

    #[test]
    fn bad_numbers_and_urls_are_refused_saying_what_to_change() {
        let bad = |p: AsyncPolicy| p.check().unwrap_err();
        let r = |max_attempts, backoff_s| {
            Some(Retry {
                max_attempts,
                backoff_s,
            })
        };
        assert!(bad(policy(1, r(0, 1), None)).contains("1 to 10"));
        assert!(bad(policy(1, r(11, 1), None)).contains("1 to 10"));
        assert!(bad(policy(1, r(3, 4000), None)).contains("at most 3600"));
        assert!(bad(policy(1, None, Some(0))).contains("1 to 86400"));
        for url in [
            "ftp://x/",
            "http://",
            "https:///path",
            "http://user:pw@host/",
            "http://a b/",
        ] {
            let mut p = policy(1, None, None);
            p.callback_url = Some(url.into());
            assert!(p.check().is_err(), "{url} accepted");
        }
        let mut p = policy(1, r(3, 0), Some(60));
        p.callback_url = Some("https://hooks.example.com:8443/vulcan?x=1".into());
        p.check().unwrap();
    }
}
