//! What follows an async workload, and POSTs to make: every node takes due follow-ups from
//! the store under a lease ([`vulcan_domain::FollowupStore`]) and settles them — a failed
//! workload submitted again after its backoff, the last failure sent to the `on_failure`
//! queue, the final workload POSTed to its `callback_url` — so that none is lost when a
//! node stops or dies (another takes it when the lease ends) and each step is at least once.
//! The POSTs themselves (callbacks, url subscriptions) are `callbacks.rs`.

use std::time::Duration;

use vulcan_domain::{
    AsyncOptions, AsyncPolicy, Expect, Followup, FollowupKind, NewPost, Quota, Settle, StoreError,
    Trigger, Workload, WorkloadStatus,
};

use crate::engine::{ended, now};
use crate::{Engine, SubmitError};

/// How often a node looks for due follow-ups (at once when one of its own workloads with a
/// policy ended, and when a POST was stored here).
const POLL: Duration = Duration::from_millis(250);
/// How long a taken follow-up is a node's alone.
const LEASE: Duration = Duration::from_secs(60);
/// Follow-ups taken at once.
const BATCH: u32 = 32;
/// Follow-ups being settled at once, at most.
const IN_FLIGHT: usize = 64;
/// A retry that cannot be admitted now (the queue is full) is tried again this much later.
pub(crate) const READMIT_AFTER: time::Duration = time::Duration::seconds(5);

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
                        inner.publish(crate::events::Event::workload(inner, "finished", &w));
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
        let mut spec = inner.store.spec(&f.id).await?;
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
