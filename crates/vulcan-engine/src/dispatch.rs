//! One dispatcher per backend this node can run: while the backend has a free slot, it
//! claims the oldest queued workload of that backend and launches it. It wakes when a
//! workload is queued (a signal, from this node or another), when a run here ends and
//! gives its slot back, and every poll interval in case a signal was lost. A run that ends
//! asks the store for the next workload only if one may be queued ([`Slots`]): on a node
//! whose workloads are claimed as they are submitted, a finished run costs no claim.

use std::sync::Arc;

use vulcan_domain::Isolation;

use crate::engine::Inner;
use crate::slots::Slots;

/// Starts the dispatchers of the backends available on this node.
pub(crate) fn start(inner: &Arc<Inner>) {
    for (isolation, slots) in &inner.slots {
        if inner.registry.available(*isolation) {
            tokio::spawn(dispatch(inner.clone(), *isolation, slots.clone()));
        }
    }
}

async fn dispatch(inner: Arc<Inner>, isolation: Isolation, slots: Arc<Slots>) {
    let mut stopping = inner.stopping.subscribe();
    loop {
        if *stopping.borrow() {
            return;
        }
        claim_while_free(&inner, isolation, &slots).await;
        tokio::select! {
            _ = slots.wake.notified() => {}
            _ = tokio::time::sleep(inner.config.poll) => slots.queued(),
            _ = stopping.changed() => {}
        }
    }
}

/// Claims and launches queued workloads until the slots or the queue run out.
async fn claim_while_free(inner: &Arc<Inner>, isolation: Isolation, slots: &Arc<Slots>) {
    while !inner.is_isolated() && !*inner.stopping.borrow() {
        let Some(slot) = slots.try_take() else {
            return;
        };
        if !slots.take_maybe_queued() {
            slot.release_quietly();
            return;
        }
        let asked = std::time::SystemTime::now();
        match inner.store.claim(&inner.config.node_id, isolation).await {
            Ok(Some(claimed)) => {
                // There may be more behind it.
                slots.queued();
                crate::traces::claimed(
                    &inner.config.node_id,
                    &claimed.spec,
                    claimed.workload.created_at.into(),
                    asked,
                );
                let mut workload = claimed.workload;
                workload.node_id = Some(inner.config.node_id.clone());
                crate::run::launch(inner, workload, claimed.spec, slot);
            }
            Ok(None) => {
                slot.release_quietly();
                return;
            }
            Err(e) => {
                tracing::warn!(backend = %isolation, error = %e, "could not claim from the queue");
                slots.queued();
                slot.release_quietly();
                return;
            }
        }
    }
}
