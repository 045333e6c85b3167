//! A backend's run slots, handed out strictly in the order workloads were accepted.
//!
//! A place in line is taken synchronously when a workload is launched, not when its task
//! is first polled: on a busy runtime a task spawned later can be polled first, and a
//! plain semaphore would then let a later submission overtake an earlier one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

pub(crate) struct Slots {
    state: Mutex<State>,
}

struct State {
    free: usize,
    waiting: VecDeque<oneshot::Sender<Slot>>,
}

/// The right to run one workload; passed to the next in line on drop.
pub(crate) struct Slot {
    slots: Option<Arc<Slots>>,
}

/// A place in line: either a slot already, or the promise of one.
pub(crate) enum Turn {
    Now(Slot),
    Later(oneshot::Receiver<Slot>),
}

impl Turn {
    /// Waits for the slot. A turn given up (this future dropped) passes its slot on.
    pub(crate) async fn ready(self) -> Slot {
        match self {
            Turn::Now(slot) => slot,
            Turn::Later(rx) => match rx.await {
                Ok(slot) => slot,
                // The pool is never dropped while a turn is waiting: it lives in the engine.
                Err(_) => std::future::pending().await,
            },
        }
    }
}

impl Slots {
    pub(crate) fn new(n: usize) -> Arc<Self> {
        Arc::new(Slots {
            state: Mutex::new(State {
                free: n,
                waiting: VecDeque::new(),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the next place in line, now.
    pub(crate) fn line_up(self: &Arc<Self>) -> Turn {
        let mut state = self.state();
        if state.free > 0 && state.waiting.is_empty() {
            state.free -= 1;
            return Turn::Now(Slot {
                slots: Some(self.clone()),
            });
        }
        let (tx, rx) = oneshot::channel();
        state.waiting.push_back(tx);
        Turn::Later(rx)
    }

    fn release(self: Arc<Self>) {
        loop {
            let next = {
                let mut state = self.state();
                match state.waiting.pop_front() {
                    Some(next) => next,
                    None => {
                        state.free += 1;
                        return;
                    }
                }
            };
            let slot = Slot {
                slots: Some(self.clone()),
            };
            match next.send(slot) {
                Ok(()) => return,
                // That one gave up waiting: try the next, without recursing through drop.
                Err(mut slot) => slot.slots = None,
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            slots.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(turn: Turn) -> Option<Slot> {
        match turn {
            Turn::Now(slot) => Some(slot),
            Turn::Later(_) => None,
        }
    }

    #[tokio::test]
    async fn slots_go_out_in_the_order_turns_were_taken() {
        let slots = Slots::new(1);
        let first = now(slots.line_up()).expect("a free slot is taken at once");
        let second = slots.line_up();
        let third = slots.line_up();
        assert!(now(slots.line_up()).is_none(), "no slot while others wait");
        // The third is polled first; the second must still get the slot first.
        let third = tokio::spawn(third.ready());
        tokio::task::yield_now().await;
        let second = tokio::spawn(second.ready());
        tokio::task::yield_now().await;
        drop(first);
        let wait = std::time::Duration::from_secs(2);
        let second = tokio::time::timeout(wait, second)
            .await
            .expect("the second in line got the freed slot")
            .unwrap();
        tokio::task::yield_now().await;
        assert!(
            !third.is_finished(),
            "the third waits while the second runs"
        );
        drop(second);
        let third = tokio::time::timeout(wait, third)
            .await
            .expect("then the third got it")
            .unwrap();
        drop(third);
    }

    #[tokio::test]
    async fn a_turn_given_up_passes_its_slot_on() {
        let slots = Slots::new(1);
        let first = now(slots.line_up()).unwrap();
        let given_up = slots.line_up();
        let next = slots.line_up();
        drop(given_up);
        drop(first);
        let slot = next.ready().await;
        drop(slot);
        assert_eq!(slots.state().free, 1, "the last slot went back to the pool");
        assert!(now(slots.line_up()).is_some());
    }
}
