//! A backend's run slots on this node. A workload is claimed from the queue only with a
//! slot in hand, so nothing waits here: the queue (and its order) is the store's. A slot
//! given back after a run wakes the backend's dispatcher, which claims the next workload
//! if anything may be queued: a claim that finds the queue empty is not repeated until a
//! workload is queued (a signal), the poll interval passes, or a claim failed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

pub(crate) struct Slots {
    total: usize,
    free: Mutex<usize>,
    /// The dispatcher of this backend waits on it.
    pub(crate) wake: Notify,
    /// Whether the queue may hold a workload of this backend that nobody claimed.
    maybe_queued: AtomicBool,
}

/// The right to run one workload; given back on drop.
pub(crate) struct Slot {
    slots: Arc<Slots>,
    /// Whether giving it back should wake the dispatcher (after a run, not after a claim
    /// that found nothing).
    wake: bool,
}

impl Slots {
    pub(crate) fn new(total: usize) -> Arc<Self> {
        Arc::new(Slots {
            total,
            free: Mutex::new(total),
            wake: Notify::new(),
            maybe_queued: AtomicBool::new(true),
        })
    }

    /// Something may be queued (a workload was, a claim failed, or it is time to look
    /// again): the next claim goes to the store.
    pub(crate) fn queued(&self) {
        self.maybe_queued.store(true, Ordering::SeqCst);
    }

    /// Wakes the dispatcher to claim: something was queued.
    pub(crate) fn wake_to_claim(&self) {
        self.queued();
        self.wake.notify_one();
    }

    /// Whether a claim is worth asking the store for; the answer is taken (a claim that
    /// finds something says so again with [`Slots::queued`]).
    pub(crate) fn take_maybe_queued(&self) -> bool {
        self.maybe_queued.swap(false, Ordering::SeqCst)
    }

    fn free_count(&self) -> std::sync::MutexGuard<'_, usize> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot, if one is free now.
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let mut free = self.free_count();
        if *free == 0 {
            return None;
        }
        *free -= 1;
        Some(Slot {
            slots: self.clone(),
            wake: true,
        })
    }

    /// Slots in all, and free now.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.total, *self.free_count())
    }
}

impl Slot {
    /// Gives the slot back without waking the dispatcher.
    pub(crate) fn release_quietly(mut self) {
        self.wake = false;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *self.slots.free_count() += 1;
        if self.wake {
            self.slots.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_are_bounded_and_a_run_that_ends_wakes_the_dispatcher() {
        let slots = Slots::new(2);
        let a = slots.try_take().unwrap();
        let b = slots.try_take().unwrap();
        assert!(slots.try_take().is_none(), "both are taken");
        assert_eq!(slots.counts(), (2, 0));
        b.release_quietly();
        assert_eq!(slots.counts(), (2, 1));
        drop(a);
        let woken = tokio::time::timeout(std::time::Duration::from_secs(1), slots.wake.notified());
        assert!(woken.await.is_ok(), "the end of a run wakes the dispatcher");
        assert_eq!(slots.counts(), (2, 2));
    }

    #[test]
    fn a_claim_is_asked_for_once_per_hint() {
        let slots = Slots::new(1);
        assert!(slots.take_maybe_queued(), "at start anything may be queued");
        assert!(
            !slots.take_maybe_queued(),
            "an empty queue is not asked twice"
        );
        slots.wake_to_claim();
        assert!(slots.take_maybe_queued(), "a queued workload is looked for");
        assert!(!slots.take_maybe_queued());
    }
}
