//! Waiting for what happens to a workload this node does not run (another node's, or one
//! still in the queue): its end, its new log lines. Signals wake the waiters at once; a
//! slow poll of the store covers a signal that was lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// One `Notify` per workload someone is waiting on.
#[derive(Default)]
pub(crate) struct Watches {
    map: Mutex<HashMap<String, Arc<Notify>>>,
}

/// A wait on one workload; removed from the map when the last holder drops it.
pub struct Watch {
    id: String,
    notify: Arc<Notify>,
    watches: Arc<Watches>,
    poll: Duration,
}

impl Watches {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn watch(self: &Arc<Self>, id: &str, poll: Duration) -> Watch {
        let notify = self
            .map()
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone();
        Watch {
            id: id.to_owned(),
            notify,
            watches: self.clone(),
            poll,
        }
    }

    /// Something happened to `id`: wake whoever waits on it.
    pub(crate) fn touch(&self, id: &str) {
        if let Some(n) = self.map().get(id) {
            n.notify_waiters();
        }
    }

    /// Signals may have been missed: wake everyone to look again.
    pub(crate) fn touch_all(&self) {
        for n in self.map().values() {
            n.notify_waiters();
        }
    }
}

impl Watch {
    /// Waits until something may have happened: a signal for this workload, or the poll
    /// interval. The caller then looks at the store; a change between its look and this
    /// wait is not missed, as the wait is registered by [`Watch::armed`] before the look.
    pub async fn changed(&self, armed: Armed<'_>) {
        tokio::select! {
            _ = armed.0 => {}
            _ = tokio::time::sleep(self.poll) => {}
        }
    }

    /// Registers interest now; look at the store, then [`Watch::changed`].
    pub fn armed(&self) -> Armed<'_> {
        let mut notified = Box::pin(self.notify.notified());
        notified.as_mut().enable();
        Armed(notified)
    }
}

/// A wait registered before the caller looks at the store.
pub struct Armed<'a>(std::pin::Pin<Box<tokio::sync::futures::Notified<'a>>>);

impl Drop for Watch {
    fn drop(&mut self) {
        let mut map = self.watches.map();
        // The map's own reference and ours: nobody else waits any more.
        if Arc::strong_count(&self.notify) <= 2 {
            map.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_touch_after_arming_is_not_missed_and_entries_go_away() {
        let watches = Arc::new(Watches::default());
        let w = watches.watch("a", Duration::from_secs(30));
        let armed = w.armed();
        watches.touch("a");
        let woke = tokio::time::timeout(Duration::from_secs(1), w.changed(armed)).await;
        assert!(woke.is_ok(), "the touch between arming and waiting counts");
        drop(w);
        assert!(watches.map().is_empty());
    }
}
