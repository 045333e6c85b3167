//! Warm instances of deployed functions, one pool per key (tenant, function, version,
//! digest — never shared across keys): an invocation takes an idle instance or the right to
//! start one (up to the function's `max_instances`), or waits for one; it gives the
//! instance back when it ended well, or drops it (the instance is then destroyed, and its
//! place freed) when it timed out, ran out of memory, crashed or was killed. Idle instances
//! are handed back to their owner to stop once they have been idle for their timeout.
//!
//! Instance lifecycle: started → warm (idle in the pool) → serving (leased) → warm … →
//! retired (idle too long, function deleted, or broken). Every backend keeps its warm
//! instances here ([`Instances::reaped`]), whatever an instance is: a Deno process, a
//! gVisor sandbox, a microVM.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// One function version's instances.
struct Entry<I> {
    idle: Vec<(I, Instant)>,
    /// Instances in existence (idle and serving) or being started.
    live: usize,
    idle_timeout: Duration,
}

/// The pools of every key.
pub struct Instances<I> {
    state: Mutex<HashMap<String, Entry<I>>>,
    /// Wakes invocations waiting for an instance of a full pool.
    freed: Notify,
}

/// What an invocation got: an idle instance, or the right to start one.
pub struct Lease<I: Send + 'static> {
    pool: Arc<Instances<I>>,
    key: String,
    instance: Option<I>,
    returned: bool,
}

impl<I: Send + 'static> Default for Instances<I> {
    fn default() -> Self {
        Instances {
            state: Mutex::new(HashMap::new()),
            freed: Notify::new(),
        }
    }
}

impl<I: Send + 'static> Instances<I> {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// New pools whose instances idle past their timeout are stopped (dropped: each
    /// instance stops itself when dropped), looked for every second while the pools live.
    pub fn reaped() -> Arc<Self> {
        let pools = Self::new();
        let weak = Arc::downgrade(&pools);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(pools) = weak.upgrade() else {
                    return;
                };
                drop(pools.expired());
            }
        });
        pools
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<I>>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle instance of `key`, or the right to start one if fewer than `max` exist;
    /// waits for one otherwise.
    pub async fn lease(
        self: &Arc<Self>,
        key: &str,
        max: usize,
        idle_timeout: Duration,
    ) -> Lease<I> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut state = self.state();
                let entry = state.entry(key.to_owned()).or_insert_with(|| Entry {
                    idle: Vec::new(),
                    live: 0,
                    idle_timeout,
                });
                entry.idle_timeout = idle_timeout;
                // The most recently used first: its caches are the warmest.
                if let Some((instance, _)) = entry.idle.pop() {
                    return self.lease_of(key, Some(instance));
                }
                if entry.live < max.max(1) {
                    entry.live += 1;
                    return self.lease_of(key, None);
                }
            }
            freed.await;
        }
    }

    fn lease_of(self: &Arc<Self>, key: &str, instance: Option<I>) -> Lease<I> {
        Lease {
            pool: self.clone(),
            key: key.to_owned(),
            instance,
            returned: false,
        }
    }

    /// Idle instances past their idle timeout, out of the pool: the caller stops them.
    pub fn expired(&self) -> Vec<I> {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut state = self.state();
        for entry in state.values_mut() {
            let timeout = entry.idle_timeout;
            let (old, kept): (Vec<_>, Vec<_>) = entry
                .idle
                .drain(..)
                .partition(|(_, since)| now.duration_since(*since) >= timeout);
            entry.idle = kept;
            entry.live -= old.len();
            out.extend(old.into_iter().map(|(i, _)| i));
        }
        state.retain(|_, e| e.live > 0);
        drop(state);
        if !out.is_empty() {
            self.freed.notify_waiters();
        }
        out
    }

    /// Every idle instance of the keys starting with `prefix` (a deleted function's), out
    /// of the pool: the caller stops them. Serving ones are dropped when they end.
    pub fn retire(&self, prefix: &str) -> Vec<I> {
        let mut out = Vec::new();
        let mut state = self.state();
        for (key, entry) in state.iter_mut() {
            if key.starts_with(prefix) {
                entry.live -= entry.idle.len();
                out.extend(entry.idle.drain(..).map(|(i, _)| i));
            }
        }
        state.retain(|_, e| e.live > 0);
        drop(state);
        self.freed.notify_waiters();
        out
    }

    /// Instances in existence per key (serving and idle).
    pub fn counts(&self) -> HashMap<String, usize> {
        self.state()
            .iter()
            .map(|(k, e)| (k.clone(), e.live))
            .collect()
    }
}

impl<I: Send + 'static> Lease<I> {
    /// Takes the idle instance it got, if it got one (`None`: start one).
    pub fn take(&mut self) -> Option<I> {
        self.instance.take()
    }

    /// Gives an instance that served well back to the pool, warm.
    pub fn give_back(mut self, instance: I) {
        let mut state = self.pool.state();
        if let Some(entry) = state.get_mut(&self.key) {
            entry.idle.push((instance, Instant::now()));
            self.returned = true;
        }
        drop(state);
        self.pool.freed.notify_one();
    }
}

impl<I: Send + 'static> Drop for Lease<I> {
    /// A lease not given back: its instance is destroyed (dropped by its holder), and its
    /// place in the pool freed.
    fn drop(&mut self) {
        if self.returned {
            return;
        }
        // An idle instance taken but never used goes back as it was.
        if let Some(instance) = self.instance.take() {
            let mut state = self.pool.state();
            if let Some(entry) = state.get_mut(&self.key) {
                entry.idle.push((instance, Instant::now()));
            }
            drop(state);
            self.pool.freed.notify_one();
            return;
        }
        let mut state = self.pool.state();
        if let Some(entry) = state.get_mut(&self.key) {
            entry.live = entry.live.saturating_sub(1);
            if entry.live == 0 {
                state.remove(&self.key);
            }
        }
        drop(state);
        self.pool.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_warm_instance_serves_again_and_a_full_pool_makes_callers_wait() {
        let pool: Arc<Instances<u32>> = Instances::new();
        let t = Duration::from_secs(60);
        let mut first = pool.lease("f/1", 1, t).await;
        assert!(first.take().is_none(), "nothing warm yet: start one");
        // The pool is full (one instance): a second caller waits.
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move {
                let mut lease = pool.lease("f/1", 1, t).await;
                (lease.take(), lease)
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        first.give_back(7);
        let (got, lease) = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, Some(7), "the warm instance, not a new one");
        // This one broke: dropped, its place freed, the next caller starts a new one.
        drop(lease);
        assert_eq!(pool.counts().get("f/1"), None);
        let mut next = pool.lease("f/1", 1, t).await;
        assert!(next.take().is_none());
    }

    #[tokio::test]
    async fn keys_never_share_and_idle_ones_expire_or_retire() {
        let pool: Arc<Instances<&'static str>> = Instances::new();
        let a = pool.lease("tenant-a/f/1", 2, Duration::ZERO).await;
        a.give_back("a");
        let mut b = pool.lease("tenant-b/f/1", 2, Duration::from_secs(60)).await;
        assert!(
            b.take().is_none(),
            "another tenant's key gets its own instance"
        );
        b.give_back("b");
        assert_eq!(pool.expired(), ["a"], "idle past its timeout");
        assert_eq!(pool.retire("tenant-b/"), ["b"]);
        assert!(pool.counts().is_empty());
    }
}
