//! Functions fed by queues ([`vulcan_domain::QueueTrigger`]): every node runs a consumer
//! per trigger of each function's active version, which receives batches of the queue's
//! messages and invokes the function with each. The invocation is a workload like any
//! other (`trigger: {kind: "queue", id: <queue>}`), admitted under the tenant's quota.
//!
//! A batch is acknowledged only once its invocation completed, so a node that dies with
//! a batch in hand loses nothing: the messages come back after the queue's visibility
//! timeout, to whichever node receives first. What did not go through is given back with a
//! delay that doubles with each receive (1 s, 2 s, 4 s … at most 300 s, plus up to half as
//! much again at random, so retries of a burst do not come back as one burst); a message
//! past the queue's `max_receives` then moves to its dead-letter queue, with the error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use vulcan_domain::{Delivery, QueueTrigger, Refusal, Trigger, WorkloadStatus};

use crate::Engine;

/// How often the triggers of the functions are read again (at once after a deploy
/// through this node; within this for one through another).
const RECONCILE: Duration = Duration::from_secs(2);

/// How long one receive waits for a first message (then the consumer looks whether it
/// should still run).
const WAIT_S: u32 = 1;

/// One trigger of one function, as consumed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    tenant: String,
    function: String,
    trigger: QueueTrigger,
}

/// Runs a consumer for each queue trigger of every function's active version until the
/// server stops: started and stopped as deploys and deletions change them.
pub(crate) async fn run(engine: Engine) {
    let mut stopping = engine.inner.stopping.subscribe();
    let mut running: HashMap<Key, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        if *stopping.borrow() {
            break;
        }
        match wanted(&engine).await {
            Ok(keys) => {
                running.retain(|key, task| {
                    let keep = keys.contains(key) && !task.is_finished();
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                for key in keys {
                    if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(key) {
                        let task = tokio::spawn(consume(engine.clone(), slot.key().clone()));
                        slot.insert(task);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the functions' queue triggers"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONCILE) => {}
            _ = engine.inner.triggers_changed.notified() => {}
            _ = stopping.changed() => {}
        }
    }
    for (_, task) in running {
        task.abort();
    }
}

/// Every trigger of every function's active version.
async fn wanted(engine: &Engine) -> Result<Vec<Key>, vulcan_domain::StoreError> {
    let mut keys = Vec::new();
    for f in engine.functions(None).await? {
        let version = engine
            .inner
            .functions
            .version(&f.tenant, &f.name, f.active_version)
            .await?;
        for trigger in version.code.triggers.iter().cloned() {
            keys.push(Key {
                tenant: f.tenant.clone(),
                function: f.name.clone(),
                trigger,
            });
        }
    }
    Ok(keys)
}

/// Receives batches from the trigger's queue and invokes the function with each, up to
/// `max_concurrency` at once.
async fn consume(engine: Engine, key: Key) {
    let t = &key.trigger;
    let slots = Arc::new(tokio::sync::Semaphore::new(t.max_concurrency as usize));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let batch = match receive_batch(&engine, &key).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::debug!(queue = %t.queue, function = %key.function, error = %e, "cannot receive");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        let (engine, key) = (engine.clone(), key.clone());
        tokio::spawn(async move {
            invoke_with(&engine, &key, batch).await;
            drop(slot);
        });
    }
}

/// A first message (waiting up to [`WAIT_S`]), then more until the batch is full or
/// `max_wait_ms` has passed.
async fn receive_batch(
    engine: &Engine,
    key: &Key,
) -> Result<Vec<Delivery>, crate::queues::QueueError> {
    let t = &key.trigger;
    let mut batch = engine
        .receive_messages(&key.tenant, &t.queue, t.batch_size, WAIT_S, None)
        .await?;
    if batch.is_empty() || t.max_wait_ms == 0 {
        return Ok(batch);
    }
    let until = tokio::time::Instant::now() + Duration::from_millis(t.max_wait_ms.into());
    while (batch.len() as u32) < t.batch_size && tokio::time::Instant::now() < until {
        let more = engine
            .receive_messages(
                &key.tenant,
                &t.queue,
                t.batch_size - batch.len() as u32,
                0,
                None,
            )
            .await?;
        if more.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        batch.extend(more);
    }
    Ok(batch)
}

/// Seconds before a message received `receive_count` times is tried again.
pub(crate) fn backoff_s(receive_count: u32) -> u32 {
    let base = 1u32 << receive_count.saturating_sub(1).min(9);
    let base = base.min(300);
    base + rand_below(base / 2 + 1)
}

/// A number below `n`, from the clock's nanoseconds (jitter, not secrecy).
fn rand_below(n: u32) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos % n.max(1)
}

/// Invokes the function with `batch` and acknowledges or gives back each message.
async fn invoke_with(engine: &Engine, key: &Key, batch: Vec<Delivery>) {
    let t = &key.trigger;
    let input = json!({
        "queue": t.queue,
        "messages": batch.iter().map(|d| json!({
            "id": d.id,
            "body": serde_json::from_str::<serde_json::Value>(&d.body)
                .unwrap_or_else(|_| serde_json::Value::String(d.body.clone())),
            "receive_count": d.receive_count,
            "sent_at": d.sent_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        })).collect::<Vec<_>>(),
    });
    let trigger = Trigger {
        kind: "queue".into(),
        id: t.queue.clone(),
    };
    // Over the tenant's quota (or the queue full), the batch waits for room while half of
    // its visibility timeout is left, instead of spending a receive on an invocation that
    // never ran.
    let now = time::OffsetDateTime::now_utc();
    let end = batch.iter().map(|d| d.visible_at).min().unwrap_or(now);
    let wait_until = now + (end - now) / 2;
    let outcome = loop {
        let quota = engine.quota_of(&key.tenant).await.ok();
        let invoked = engine
            .invoke_as(
                &key.tenant,
                &key.function,
                input.clone(),
                quota,
                Some((trigger.clone(), None)),
                Default::default(),
            )
            .await;
        match invoked {
            Ok(accepted) => break engine.wait(&accepted.id).await.map_err(|e| e.to_string()),
            Err(crate::SubmitError::Refused(
                Refusal::OverQuota { retry_after_s, .. }
                | Refusal::Overloaded { retry_after_s, .. },
            )) if time::OffsetDateTime::now_utc() < wait_until => {
                let pause = Duration::from_secs(retry_after_s.clamp(1, 5));
                tokio::time::sleep(pause).await;
            }
            Err(e) => break Err(format!("not invoked: {e}")),
        }
    };
    let (done, failed): (Vec<&Delivery>, Vec<(&Delivery, String)>) = match &outcome {
        Ok(w) if w.status == WorkloadStatus::Completed => {
            let failed_ids = failed_ids(w.output.as_deref());
            let (failed, done): (Vec<&Delivery>, Vec<&Delivery>) =
                batch.iter().partition(|d| failed_ids.contains(&d.id));
            let why = format!("workload {} reported it failed", w.id);
            (done, failed.into_iter().map(|d| (d, why.clone())).collect())
        }
        Ok(w) => {
            let why = format!(
                "workload {} {}: {}",
                w.id,
                w.status.as_str(),
                w.error.as_deref().unwrap_or("no error given")
            );
            (Vec::new(), batch.iter().map(|d| (d, why.clone())).collect())
        }
        Err(why) => (Vec::new(), batch.iter().map(|d| (d, why.clone())).collect()),
    };
    if !done.is_empty() {
        let receipts: Vec<String> = done.iter().map(|d| d.receipt.clone()).collect();
        if let Err(e) = engine.ack_messages(&key.tenant, &t.queue, &receipts).await {
            tracing::warn!(queue = %t.queue, error = %e, "cannot acknowledge a batch; it will be delivered again");
        }
    }
    for (d, why) in failed {
        let delay = backoff_s(d.receive_count).min(crate::queues::MAX_DELAY_S);
        if let Err(e) = engine
            .nack_message(&key.tenant, &t.queue, &d.receipt, delay, Some(&why))
            .await
        {
            tracing::debug!(queue = %t.queue, message = %d.id, error = %e, "cannot give a message back; it comes back after its visibility timeout");
        }
    }
}

/// The ids a completed invocation reports as failed: `{"failed": ["msg…", …]}` in its
/// output (anything else: none).
fn failed_ids(output: Option<&str>) -> Vec<String> {
    output
        .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
        .and_then(|v| v.get("failed").cloned())
        .and_then(|f| serde_json::from_value::<Vec<String>>(f).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_each_receive_up_to_five_minutes_with_jitter() {
        for (count, base) in [(1, 1), (2, 2), (3, 4), (5, 16), (20, 300)] {
            let s = backoff_s(count);
            assert!((base..=base + base / 2).contains(&s), "{count}: {s}");
        }
    }

    #[test]
    fn failed_ids_come_from_the_output_or_are_none() {
        assert_eq!(failed_ids(Some(r#"{"failed": ["a", "b"]}"#)), ["a", "b"]);
        assert!(failed_ids(Some(r#"{"ok": true}"#)).is_empty());
        assert!(failed_ids(Some("not json")).is_empty());
        assert!(failed_ids(None).is_empty());
    }
}
