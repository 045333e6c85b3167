//! What follows an async workload, and POSTs to make: every node takes due follow-ups from
//! the store under a lease ([`vulcan_domain::FollowupStore`]) and settles them — a failed
//! workload submitted again after its backoff, the last failure sent to the `on_failure`
//! queue, the final workload POSTed to its `callback_url` — so that none is lost when a
//! node stops or dies (another takes it when the lease ends) and each step is at least once.
//!
//! A POST is signed with the tenant's secret `CALLBACK_SIGNING_KEY`:
//! `X-Vulcan-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, with
//! `X-Vulcan-Delivery` (the same for every try of one delivery) and `X-Vulcan-Attempt`. It
//! is made to public addresses only, unless the tenant's quota lists the destination in
//! `egress_allow` or an admin asked for it; names are resolved and checked at each try.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use vulcan_domain::{
    never_reachable, AsyncOptions, AsyncPolicy, Expect, Followup, FollowupKind, NetRule, NewPost,
    Quota, Settle, StoreError, Trigger, Workload, WorkloadStatus, SIGNING_SECRET,
};

use crate::engine::{ended, now};
use crate::{EgressMode, Engine, SubmitError};

/// How often a node looks for due follow-ups (at once when one of its own workloads with a
/// policy ended, and when a POST was stored here).
const POLL: Duration = Duration::from_millis(250);
/// How long a taken follow-up is a node's alone.
const LEASE: Duration = Duration::from_secs(60);
/// Follow-ups taken at once.
const BATCH: u32 = 32;
/// Follow-ups being settled at once, at most.
const IN_FLIGHT: usize = 64;
/// How long a POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries of one POST before it is given up (backoff 1, 2, 4 … 300 s: about half an hour).
pub const MAX_POST_ATTEMPTS: u32 = 15;
/// A retry that cannot be admitted now (the queue is full) is tried again this much later.
const READMIT_AFTER: time::Duration = time::Duration::seconds(5);

impl Engine {
    /// Turns what a request asked for into the policy its workload keeps, checked: the
    /// numbers, the failure queue (it must exist), the callback (the tenant must have its
    /// signing secret; a never-reachable destination needs an admin or the quota's
    /// `egress_allow`). `quota` is `None` for admins.
    pub(crate) async fn async_policy(
        &self,
        tenant: &str,
        quota: Option<&Quota>,
        options: AsyncOptions,
    ) -> Result<Option<AsyncPolicy>, SubmitError> {
        if options.is_empty() {
            return Ok(None);
        }
        let mut policy = AsyncPolicy {
            retry: options.retry,
            max_age_s: options.max_age_s,
            on_failure: options.on_failure,
            callback_url: options.callback_url,
            attempt: 1,
            first_submitted_at: now(),
            private_ok: false,
        };
        policy.check().map_err(SubmitError::Invalid)?;
        if let Some(q) = &policy.on_failure {
            match self.inner.queues.definition(tenant, &q.queue).await {
                Ok(_) => {}
                Err(StoreError::Missing(_)) => {
                    return Err(SubmitError::Invalid(format!(
                        "\"on_failure.queue\": tenant {tenant} has no queue {:?}; create it with POST /v1/queues first",
                        q.queue
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(url) = &policy.callback_url {
            policy.private_ok = self.check_destination(tenant, quota, url).await?;
        }
        Ok(Some(policy))
    }

    /// Checks that `tenant` may have `url` called (see [`Engine::async_policy`]); answers
    /// whether it may reach a never-reachable range.
    pub(crate) async fn check_destination(
        &self,
        tenant: &str,
        quota: Option<&Quota>,
        url: &str,
    ) -> Result<bool, SubmitError> {
        vulcan_domain::check_url(url).map_err(SubmitError::Invalid)?;
        match self.inner.secrets.secret(tenant, SIGNING_SECRET).await {
            Ok(_) => {}
            Err(StoreError::Missing(_)) => {
                return Err(SubmitError::Invalid(format!(
                    "calls to a URL are signed with the tenant's secret {SIGNING_SECRET}, and tenant {tenant} has none: PUT /v1/secrets/{SIGNING_SECRET} (any long random string) first; the receiver checks X-Vulcan-Signature with it"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        let (host, port) = host_port(url)?;
        let Some(quota) = quota else {
            return Ok(true);
        };
        let rule: Option<NetRule> = format!("{host}:{port}").parse().ok();
        let listed = rule
            .as_ref()
            .is_some_and(|r| quota.egress_allow.iter().any(|own| own.contains(r)));
        let forbidden = |m: String| Err(SubmitError::Refused(vulcan_domain::Refusal::Forbidden(m)));
        if self.inner.config.egress == EgressMode::AllowListed && !listed {
            return forbidden(format!(
                "{host}:{port} is not in this tenant's egress allow-list (quota \"egress_allow\"; VULCAN_EGRESS=allow-listed): the server calls only listed destinations"
            ));
        }
        if let Ok(IpAddr::V4(ip)) = host.parse::<IpAddr>() {
            if let (Some(range), false) = (never_reachable(ip), listed) {
                return forbidden(format!(
                    "{host} is {range}, which the server calls only when an admin lists it in the tenant's quota \"egress_allow\""
                ));
            }
        }
        Ok(listed)
    }

    /// Settles one taken follow-up.
    async fn settle(&self, f: Followup) {
        let settle = match &f.kind {
            FollowupKind::Workload { policy } => self.after_workload(&f, policy).await,
            FollowupKind::Post {
                url,
                body,
                private_ok,
            } => Ok(self.post(&f, url, body, *private_ok).await),
        };
        let settle = settle.unwrap_or_else(|e| {
            tracing::warn!(followup = %f.id, error = %e, "a follow-up could not be settled; tried again later");
            Settle::Later {
                due_at: now() + READMIT_AFTER,
                error: Some(e.to_string()),
            }
        });
        match self.inner.followups.settle_followup(&f.id, &settle).await {
            // A callback stored now is due now.
            Ok(()) if matches!(settle, Settle::Done { then: Some(_) }) => {
                self.inner.followup_due.notify_one()
            }
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(followup = %f.id, error = %e, "cannot settle a follow-up; it is taken again when its lease ends")
            }
        }
    }

    /// What follows the end of async workload `f.id` (or its wait past `max_age_s`).
    async fn after_workload(
        &self,
        f: &Followup,
        policy: &AsyncPolicy,
    ) -> Result<Settle, SubmitError> {
        let inner = &self.inner;
        let mut workload = match inner.store.get(&f.id).await {
            Ok(w) => w,
            Err(StoreError::NotFound(_)) => return Ok(Settle::Done { then: None }),
            Err(e) => return Err(e.into()),
        };
        let t = now();
        match workload.status {
            WorkloadStatus::Pending => {
                let why = format!(
                    "not started within max_age_s ({} s) of its first submission",
                    policy.max_age_s.unwrap_or_default()
                );
                match inner
                    .store
                    .finish(&f.id, &ended(WorkloadStatus::Failed, why), &Expect::Pending)
                    .await
                {
                    Ok(w) => {
                        inner.signal(vulcan_domain::Signal::Ended(f.id.clone()));
                        return Ok(self.last(f, policy, w).await);
                    }
                    // Claimed meanwhile: it runs after all, and is followed when it ends.
                    Err(StoreError::InvalidTransition(_)) => {
                        return Ok(Settle::Later {
                            due_at: t + time::Duration::seconds(1),
                            error: None,
                        })
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            WorkloadStatus::Running => {
                return Ok(Settle::Later {
                    due_at: t + time::Duration::seconds(1),
                    error: None,
                })
            }
            WorkloadStatus::Failed => {}
            WorkloadStatus::Completed | WorkloadStatus::Killed => {
                return Ok(self.last(f, policy, workload).await)
            }
        }
        let failed_at = workload.finished_at.unwrap_or(t);
        let Some(due) = policy.next_attempt(failed_at) else {
            return Ok(self.last(f, policy, workload).await);
        };
        if due > t {
            return Ok(Settle::Later {
                due_at: due,
                error: None,
            });
        }
        let next_id = inner.followups.retry_id(&f.id, &self.new_id()).await?;
        let mut spec = match inner.store.spec(&f.id).await {
            Ok(spec) => spec,
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = crate::functions::fill_code(&inner.functions, &mut spec).await {
            // Its version is gone: no attempt can follow.
            workload.error = Some(format!(
                "{}; not retried: {e}",
                workload.error.unwrap_or_default()
            ));
            return Ok(self.last(f, policy, workload).await);
        }
        spec.id = next_id.clone();
        spec.async_policy = Some(AsyncPolicy {
            attempt: policy.attempt + 1,
            ..policy.clone()
        });
        let retry = Workload {
            function: workload.function.clone(),
            function_version: workload.function_version,
            trigger: Some(Trigger {
                kind: "retry".into(),
                id: workload.id.clone(),
            }),
            ..Workload::pending(
                next_id,
                workload.tenant.clone(),
                &spec.run,
                workload.requested_isolation,
                workload.input_hash.clone(),
                now(),
                workload.request_id.clone(),
            )
        };
        match self.admit(retry, spec, None, None).await {
            Ok(_) | Err(SubmitError::Store(StoreError::Duplicate(_))) => {
                inner.metrics.workload_retried();
                Ok(Settle::Done { then: None })
            }
            Err(e @ (SubmitError::Refused(_) | SubmitError::Unavailable(_))) => Ok(Settle::Later {
                due_at: t + READMIT_AFTER,
                error: Some(e.to_string()),
            }),
            Err(e) => Err(e),
        }
    }

    /// The end for good of an async workload: its failure to the `on_failure` queue, then
    /// its callback (stored with the follow-up's removal).
    async fn last(&self, f: &Followup, policy: &AsyncPolicy, workload: Workload) -> Settle {
        let json = serde_json::to_value(&workload).unwrap_or_default();
        if let (Some(q), true) = (
            &policy.on_failure,
            matches!(
                workload.status,
                WorkloadStatus::Failed | WorkloadStatus::Killed
            ),
        ) {
            // The workload's id as dedup id: a second send (after a crash) is the same
            // message. One too large for the queue goes without its output.
            let message = |body| crate::queues::Outgoing {
                body,
                delay_s: 0,
                dedup_id: Some(workload.id.clone()),
            };
            let mut sent = self
                .send_messages(
                    &f.tenant,
                    &q.queue,
                    vec![message(serde_json::json!({ "workload": json }))],
                )
                .await;
            if let Err(crate::queues::QueueError::TooLarge(_)) = sent {
                let mut lean = json.clone();
                lean["output"] = serde_json::Value::Null;
                sent = self
                    .send_messages(
                        &f.tenant,
                        &q.queue,
                        vec![message(
                            serde_json::json!({ "workload": lean, "output_omitted": true }),
                        )],
                    )
                    .await;
            }
            match sent {
                Ok(_) => {}
                Err(crate::queues::QueueError::Store(e))
                    if !matches!(e, StoreError::Missing(_)) =>
                {
                    return Settle::Later {
                        due_at: now() + READMIT_AFTER,
                        error: Some(format!("on_failure queue {}: {e}", q.queue)),
                    };
                }
                Err(e) => tracing::warn!(
                    workload = %workload.id, queue = %q.queue, error = %e,
                    "an async workload's failure could not be sent to its on_failure queue"
                ),
            }
        }
        let then = policy.callback_url.as_ref().map(|url| NewPost {
            id: format!("cb-{}", workload.id),
            tenant: f.tenant.clone(),
            url: url.clone(),
            body: json.to_string(),
            private_ok: policy.private_ok,
            due_at: now(),
        });
        Settle::Done { then }
    }

    /// Makes one try of a POST and says what follows it.
    async fn post(&self, f: &Followup, url: &str, body: &str, private_ok: bool) -> Settle {
        let outcome = self.try_post(f, url, body, private_ok).await;
        let metrics = &self.inner.metrics;
        match outcome {
            Ok(()) => {
                metrics.post_made("delivered");
                Settle::Done { then: None }
            }
            Err(PostError::Refused(why)) => {
                metrics.post_made("refused");
                tracing::warn!(delivery = %f.id, url, error = %why, "a POST to a URL was refused and is not tried again");
                Settle::Done { then: None }
            }
            Err(PostError::Failed(why)) if f.attempts >= MAX_POST_ATTEMPTS => {
                metrics.post_made("given_up");
                tracing::warn!(delivery = %f.id, url, error = %why, attempts = f.attempts, "a POST to a URL failed every try and is given up");
                Settle::Done { then: None }
            }
            Err(PostError::Failed(why)) => {
                metrics.post_made("failed");
                let wait = crate::consumers::backoff_s(f.attempts);
                Settle::Later {
                    due_at: now() + time::Duration::seconds(wait.into()),
                    error: Some(why),
                }
            }
        }
    }

    async fn try_post(
        &self,
        f: &Followup,
        url: &str,
        body: &str,
        private_ok: bool,
    ) -> Result<(), PostError> {
        let inner = &self.inner;
        let key = crate::secrets::open_for_run(
            &*inner.secrets,
            inner.config.keyring.as_ref(),
            &f.tenant,
            &[SIGNING_SECRET.to_owned()],
        )
        .await
        .map_err(PostError::Refused)?
        .env
        .remove(SIGNING_SECRET)
        .unwrap_or_default();
        let at = OffsetDateTime::now_utc().unix_timestamp();
        let signature = format!("t={at},v1={}", sign(key.as_bytes(), at, body));
        let (url, body, id, attempt) = (
            url.to_owned(),
            body.to_owned(),
            f.id.clone(),
            f.attempts.to_string(),
        );
        tokio::task::spawn_blocking(move || {
            let (host, port) = host_port(&url).map_err(|e| PostError::Refused(e.to_string()))?;
            let allowed = resolve(&host, port, private_ok)?;
            if allowed.is_empty() {
                return Err(PostError::Refused(format!(
                    "{host} resolves only to never-reachable addresses (loopback, private, link-local): an admin must list it in the tenant's quota \"egress_allow\""
                )));
            }
            let agent = ureq::AgentBuilder::new()
                .timeout(POST_TIMEOUT)
                .redirects(0)
                // The addresses checked above, and no others.
                .resolver(move |_: &str| Ok(allowed.clone()))
                .build();
            let answer = agent
                .post(&url)
                .set("content-type", "application/json")
                .set("x-vulcan-signature", &signature)
                .set("x-vulcan-delivery", &id)
                .set("x-vulcan-attempt", &attempt)
                .send_string(&body);
            match answer {
                Ok(r) if (200..300).contains(&r.status()) => Ok(()),
                Ok(r) => Err(PostError::Failed(format!("answered {}", r.status()))),
                Err(ureq::Error::Status(code, _)) => {
                    Err(PostError::Failed(format!("answered {code}")))
                }
                Err(e) => Err(PostError::Failed(e.to_string())),
            }
        })
        .await
        .map_err(|e| PostError::Failed(e.to_string()))?
    }

    /// Stores a POST of `body` to each of `urls` (a topic's url subscriptions).
    pub(crate) async fn add_posts(
        &self,
        tenant: &str,
        urls: &[(String, bool)],
        body: &str,
    ) -> Result<(), StoreError> {
        let posts: Vec<NewPost> = urls
            .iter()
            .map(|(url, private_ok)| NewPost {
                id: format!("post-{}", self.new_id().to_lowercase()),
                tenant: tenant.to_owned(),
                url: url.clone(),
                body: body.to_owned(),
                private_ok: *private_ok,
                due_at: now(),
            })
            .collect();
        if posts.is_empty() {
            return Ok(());
        }
        self.inner.followups.add_posts(&posts).await?;
        self.inner.followup_due.notify_one();
        Ok(())
    }
}

/// Why a POST did not land.
enum PostError {
    /// Never to be tried again (a forbidden destination, no signing secret).
    Refused(String),
    /// Tried again later.
    Failed(String),
}

/// The hex HMAC-SHA256 of `"<at>.<body>"` under `key`.
pub fn sign(key: &[u8], at: i64, body: &str) -> String {
    hmac_hex(key, &[at.to_string().as_bytes(), b".", body.as_bytes()])
}

fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The host and port `url` leads to.
fn host_port(url: &str) -> Result<(String, u16), SubmitError> {
    let parsed = url::Url::parse(url).map_err(|e| SubmitError::Invalid(format!("{url:?}: {e}")))?;
    let host = match parsed.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(h) => h.to_string(),
        None => return Err(SubmitError::Invalid(format!("{url:?} has no host"))),
    };
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| SubmitError::Invalid(format!("{url:?} has no port")))?;
    Ok((host, port))
}

/// `host`'s addresses that may be called: public ones, and the rest only when `private_ok`.
fn resolve(host: &str, port: u16, private_ok: bool) -> Result<Vec<SocketAddr>, PostError> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| PostError::Failed(format!("cannot resolve {host}: {e}")))?;
    Ok(addrs.filter(|a| private_ok || public(a.ip())).collect())
}

/// Whether `ip` is outside every never-reachable range.
fn public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => never_reachable(v4).is_none(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => never_reachable(v4).is_none(),
            // Global unicast only (2000::/3).
            None => v6.segments()[0] & 0xe000 == 0x2000,
        },
    }
}

/// Takes due follow-ups and settles them until the server stops.
pub(crate) async fn run(engine: Engine) {
    let mut stopping = engine.inner.stopping.subscribe();
    // Follow-ups settled at once, at most: a receiver that hangs holds its POSTs' places,
    // not every blocking thread.
    let places = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    loop {
        if *stopping.borrow() {
            break;
        }
        let free = places.available_permits().min(BATCH as usize) as u32;
        let taken = if free == 0 {
            Vec::new()
        } else {
            let t = now();
            let lease = t + time::Duration::try_from(LEASE).unwrap_or(time::Duration::MINUTE);
            match engine.inner.followups.take_followups(t, lease, free).await {
                Ok(taken) => taken,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the follow-ups");
                    Vec::new()
                }
            }
        };
        let full = free > 0 && taken.len() as u32 == free;
        for f in taken {
            let Ok(place) = places.clone().try_acquire_owned() else {
                break;
            };
            let engine = engine.clone();
            tokio::spawn(async move {
                engine.settle(f).await;
                drop(place);
            });
        }
        if full {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = engine.inner.followup_due.notified() => {}
            _ = stopping.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_hmac_of_the_time_and_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_hex(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            sign(b"k", 1_700_000_000, "{}"),
            hmac_hex(b"k", &[b"1700000000.{}"])
        );
        assert_ne!(
            sign(b"k", 1_700_000_000, "{}"),
            sign(b"k", 1_700_000_001, "{}")
        );
        assert_ne!(
            sign(b"k", 1_700_000_000, "{}"),
            sign(b"j", 1_700_000_000, "{}")
        );
    }

    #[test]
    fn only_public_addresses_are_called_unless_allowed() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "192.168.1.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!public(private.parse().unwrap()), "{private}");
        }
        for open in ["203.0.113.7", "8.8.8.8", "2001:db8::1"] {
            assert!(public(open.parse().unwrap()), "{open}");
        }
        assert!(resolve("127.0.0.1", 80, false).ok().unwrap().is_empty());
        assert_eq!(resolve("127.0.0.1", 80, true).ok().unwrap().len(), 1);
        assert_eq!(
            host_port("https://h.example:8443/x").unwrap(),
            ("h.example".into(), 8443)
        );
        assert_eq!(
            host_port("http://127.0.0.1/x").unwrap(),
            ("127.0.0.1".into(), 80)
        );
    }
}
