//! The warm pool: Deno processes started ahead of time. Each runs its jobs one at a time,
//! every job in a fresh Worker (a V8 isolate no other job has touched); after its first job
//! a process belongs to that job's tenant and serves later jobs of that tenant only.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use vulcan_domain::NetworkPolicy;
use vulcan_sandbox::network::Egress;

use crate::process::{DenoProcess, Launcher, ProcessNetwork};

/// How long a new process may take to load the runner.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// How long the pool waits after the last job ended before it refills, so that the
/// finished job's answer goes out before a process start takes the CPU.
const AFTER_LAST_JOB: Duration = Duration::from_millis(2);

/// Keeps `size` idle processes with a `heap_mb` heap, refilled in the background.
///
/// Starting a Deno process costs more CPU than running a small job, so a refill competes
/// with the jobs running beside it. While at least half the pool is idle, a refill waits
/// for a moment with no job running; below that it starts at once.
pub struct WarmPool {
    launcher: Arc<Launcher>,
    size: usize,
    heap_mb: u32,
    /// Where each process's network comes from, for a pool of processes with one.
    network: Option<PoolNetwork>,
    idle: Mutex<VecDeque<DenoProcess>>,
    /// Processes that have served a tenant, waiting for its next job (oldest first).
    bound: Mutex<VecDeque<(String, DenoProcess)>>,
    /// Processes of each tenant between a job's result and their next Worker being ready.
    returning: Mutex<std::collections::HashMap<String, usize>>,
    /// Signalled when a process comes back.
    back: Notify,
    /// Jobs of this backend now running, pooled or not.
    running: AtomicUsize,
    wanted: Notify,
    closed: AtomicBool,
}

/// A running job, counted by the pool until dropped.
pub struct Running(Arc<WarmPool>);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.wanted.notify_one();
        }
    }
}

impl WarmPool {
    pub fn new(launcher: Arc<Launcher>, size: usize, heap_mb: u32) -> Arc<Self> {
        Self::with_network(launcher, size, heap_mb, None)
    }

    /// A pool whose processes each run in a network of their own opened for `network`'s
    /// policy (their Workers have its `--allow-net`), so that the network is made ahead of
    /// time too; what a tenant's jobs share in one is as for every pooled process.
    pub fn with_network(
        launcher: Arc<Launcher>,
        size: usize,
        heap_mb: u32,
        network: Option<PoolNetwork>,
    ) -> Arc<Self> {
        let pool = Arc::new(WarmPool {
            launcher,
            size,
            heap_mb,
            network,
            idle: Mutex::new(VecDeque::new()),
            bound: Mutex::new(VecDeque::new()),
            returning: Mutex::new(std::collections::HashMap::new()),
            back: Notify::new(),
            running: AtomicUsize::new(0),
            wanted: Notify::new(),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(pool.clone().run());
        pool
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, VecDeque<DenoProcess>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn idle_count(&self) -> usize {
        self.idle().len()
    }

    /// Counts a job as running until the guard is dropped.
    pub fn running(self: &Arc<Self>) -> Running {
        self.running.fetch_add(1, Ordering::SeqCst);
        Running(self.clone())
    }

    /// Whether a refill should start now rather than wait for the running jobs.
    fn refill_now(&self, idle: usize) -> bool {
        idle * 2 < self.size || self.running.load(Ordering::SeqCst) == 0
    }

    fn bound(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, DenoProcess)>> {
        self.bound.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The longest idle process that served `tenant`, if one is alive.
    fn take_bound(&self, tenant: &str) -> Option<DenoProcess> {
        loop {
            let found = {
                let mut bound = self.bound();
                let at = bound.iter().position(|(t, _)| t == tenant);
                at.and_then(|at| bound.remove(at))
            };
            let (_, mut process) = found?;
            if process.alive() {
                process.promote();
                return Some(process);
            }
        }
    }

    /// A fresh process (one that has served no tenant), if one is idle.
    fn take_fresh(&self) -> Option<DenoProcess> {
        let taken = loop {
            let Some(mut process) = self.idle().pop_front() else {
                break None;
            };
            if process.alive() {
                process.promote();
                break Some(process);
            }
        };
        self.wanted.notify_one();
        taken
    }

    fn returning(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, usize>> {
        self.returning.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ready process with a `heap_mb` heap for a job of `tenant`: one that served the
    /// tenant before (the longest idle), else a fresh one. When none is idle and some of the
    /// tenant's processes are making their next Worker, waits up to `within` for one rather
    /// than have the caller start a process cold (which costs more CPU than a Worker).
    pub async fn take(&self, heap_mb: u32, tenant: &str, within: Duration) -> Option<DenoProcess> {
        if heap_mb != self.heap_mb || self.size == 0 {
            return None;
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let back = self.back.notified();
            if let Some(process) = self.take_bound(tenant) {
                return Some(process);
            }
            let coming = self.returning().get(tenant).copied().unwrap_or(0);
            // A tenant with processes enough on their way back waits for one of them; one
            // with fewer takes a fresh process.
            if coming < self.size {
                if let Some(process) = self.take_fresh() {
                    return Some(process);
                }
            }
            if coming == 0 || tokio::time::timeout_at(deadline, back).await.is_err() {
                return self.take_bound(tenant).or_else(|| self.take_fresh());
            }
        }
    }

    /// After a job of `tenant` in `process`: gives the process back once its next Worker is
    /// ready (or retires it if that does not come within `within`), off the job's path.
    pub fn come_back(self: &Arc<Self>, tenant: &str, mut process: DenoProcess, within: Duration) {
        *self.returning().entry(tenant.to_owned()).or_default() += 1;
        let (pool, tenant) = (self.clone(), tenant.to_owned());
        process.demote();
        tokio::spawn(async move {
            let ready = process.next_job_ready(within).await;
            {
                let mut returning = pool.returning();
                if let Some(n) = returning.get_mut(&tenant) {
                    *n -= 1;
                    if *n == 0 {
                        returning.remove(&tenant);
                    }
                }
            }
            if ready {
                pool.give_back(&tenant, process);
            } else {
                process.retire();
            }
            pool.back.notify_waiters();
        });
    }

    /// Keeps a process that has served `tenant` for that tenant's next job. At most twice
    /// the pool's size are kept per tenant and four times in all; past that the oldest goes.
    pub fn give_back(&self, tenant: &str, process: DenoProcess) {
        if self.closed.load(Ordering::SeqCst) {
            process.retire();
            return;
        }
        let mut bound = self.bound();
        bound.push_back((tenant.to_owned(), process));
        let theirs = bound.iter().filter(|(t, _)| t == tenant).count();
        if theirs > self.size * 2 {
            if let Some(at) = bound.iter().position(|(t, _)| t == tenant) {
                if let Some((_, old)) = bound.remove(at) {
                    old.retire();
                }
            }
        }
        while bound.len() > self.size * 4 {
            if let Some((_, old)) = bound.pop_front() {
                old.retire();
            }
        }
    }

    /// Stops refilling and kills the idle processes.
    pub fn close(&self) {
        drop(self.close_taking());
    }

    /// Stops refilling and hands over the idle processes (to remove their networks now).
    pub fn close_taking(&self) -> Vec<DenoProcess> {
        self.closed.store(true, Ordering::SeqCst);
        let mut idle: Vec<DenoProcess> = self.idle().drain(..).collect();
        idle.extend(self.bound().drain(..).map(|(_, p)| p));
        self.wanted.notify_one();
        idle
    }

    /// The pool's background work: primes the cache template (which every process, pooled
    /// or not, starts from), then keeps the pool filled.
    async fn run(self: Arc<Self>) {
        // The backend's own pool primes it; a pool with a network comes later.
        if self.network.is_none() {
            if let Err(e) = self.launcher.prime_template(self.heap_mb).await {
                tracing::warn!(error = %e, "deno processes start without a primed cache");
            }
        }
        if self.size > 0 {
            self.refill().await;
        }
    }

    async fn refill(self: Arc<Self>) {
        while !self.closed.load(Ordering::SeqCst) {
            let idle = self.idle().len();
            if idle >= self.size || !self.refill_now(idle) {
                self.wanted.notified().await;
                continue;
            }
            if idle > 0 {
                tokio::time::sleep(AFTER_LAST_JOB).await;
                if !self.refill_now(self.idle().len()) {
                    continue;
                }
            }
            let started = match &self.network {
                None => self
                    .launcher
                    .spawn(self.heap_mb, true)
                    .map_err(|e| format!("cannot start deno: {e}")),
                Some(network) => network.spawn(&self.launcher, self.heap_mb).await,
            };
            let outcome = match started {
                Ok(mut process) => match process.ready(READY_WITHIN).await {
                    Ok(()) => {
                        process.settle().await;
                        if !self.closed.load(Ordering::SeqCst) {
                            self.idle().push_back(process);
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "isolate warm pool could not start a process");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The network policy a pool's processes are started in, each in a network of its own.
pub struct PoolNetwork {
    pub egress: Arc<Egress>,
    pub policy: NetworkPolicy,
    pub cap_mbps: Option<u32>,
}

impl PoolNetwork {
    /// Opens a network for the policy and starts a pooled process in it.
    async fn spawn(&self, launcher: &Launcher, heap_mb: u32) -> Result<DenoProcess, String> {
        let network = self.egress.open(&self.policy, self.cap_mbps).await?;
        let namespace = std::fs::File::open(network.namespace_path())
            .map_err(|e| format!("cannot open the sandbox's namespace: {e}"))?;
        let mut process = launcher
            .spawn_in(
                heap_mb,
                true,
                Some(ProcessNetwork {
                    namespace,
                    allow_net: crate::allow_net(&self.policy),
                }),
            )
            .map_err(|e| format!("cannot start deno: {e}"))?;
        process.network = Some(network);
        Ok(process)
    }
}
