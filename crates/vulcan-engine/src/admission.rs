//! Admission control: per-tenant quotas (workloads at once, submissions per rolling
//! minute, CPUs and memory of its active workloads together) and a bounded queue per
//! backend, so that load beyond what the node can hold is refused with a time to come
//! back instead of piling up tasks and memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vulcan_domain::{Isolation, Quota, Resources};

use crate::SubmitError;

const MINUTE: Duration = Duration::from_secs(60);
/// Past this many tenant entries, idle ones are dropped on the next admission.
const IDLE_SWEEP_AT: usize = 1024;

#[derive(Default)]
struct Usage {
    active: u32,
    cpus: u32,
    mem_mb: u32,
    /// When recent submissions were accepted, oldest first (at most a minute's worth).
    recent: VecDeque<Instant>,
}

pub(crate) struct Admission {
    tenants: Mutex<HashMap<String, Usage>>,
    queued: HashMap<Isolation, AtomicUsize>,
    max_queue: usize,
}

/// A tenant's share of an active workload; given back on drop.
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    tenant: String,
    resources: Resources,
}

/// A place in a backend's queue, held until the workload starts or ends; freed on drop.
pub(crate) struct QueuePlace {
    admission: Arc<Admission>,
    isolation: Isolation,
}

impl Admission {
    pub(crate) fn new(max_queue: usize) -> Self {
        Admission {
            tenants: Mutex::new(HashMap::new()),
            queued: Isolation::CONCRETE
                .into_iter()
                .map(|i| (i, AtomicUsize::new(0)))
                .collect(),
            max_queue,
        }
    }

    fn tenants(&self) -> std::sync::MutexGuard<'_, HashMap<String, Usage>> {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves a tenant's share of a new workload, or says why not and when to retry.
    pub(crate) fn admit(
        self: &Arc<Self>,
        tenant: &str,
        quota: &Quota,
        resources: Resources,
    ) -> Result<Ticket, SubmitError> {
        if resources.cpus > quota.max_cpus || resources.mem_mb > quota.max_mem_mb {
            return Err(SubmitError::Forbidden(format!(
                "tenant {tenant} may use at most {} CPUs and {} MB at once; this workload asks for {} CPUs and {} MB",
                quota.max_cpus, quota.max_mem_mb, resources.cpus, resources.mem_mb
            )));
        }
        let now = Instant::now();
        let mut tenants = self.tenants();
        // Tenants with nothing active and nothing in the last minute need no entry.
        if tenants.len() > IDLE_SWEEP_AT {
            tenants.retain(|_, u| !u.is_idle(now));
        }
        let usage = tenants.entry(tenant.to_owned()).or_default();
        while usage
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= MINUTE)
        {
            usage.recent.pop_front();
        }
        if usage.recent.len() >= quota.per_minute as usize {
            let oldest = usage.recent.front().copied().unwrap_or(now);
            let wait = MINUTE.saturating_sub(now.duration_since(oldest));
            return Err(SubmitError::OverQuota {
                message: format!(
                    "tenant {tenant} has submitted {} workloads in the last minute, its quota; retry later",
                    quota.per_minute
                ),
                retry_after_s: wait.as_secs().max(1),
            });
        }
        let over = if usage.active + 1 > quota.max_concurrent {
            Some(format!("{} workloads at once", quota.max_concurrent))
        } else if usage.cpus + resources.cpus > quota.max_cpus {
            Some(format!("{} CPUs at once", quota.max_cpus))
        } else if usage.mem_mb + resources.mem_mb > quota.max_mem_mb {
            Some(format!("{} MB at once", quota.max_mem_mb))
        } else {
            None
        };
        if let Some(limit) = over {
            return Err(SubmitError::OverQuota {
                message: format!(
                    "tenant {tenant} is at its quota of {limit}; retry when some of its workloads have finished"
                ),
                retry_after_s: 1,
            });
        }
        usage.active += 1;
        usage.cpus += resources.cpus;
        usage.mem_mb += resources.mem_mb;
        usage.recent.push_back(now);
        Ok(Ticket {
            admission: self.clone(),
            tenant: tenant.to_owned(),
            resources,
        })
    }

    /// Takes a place in `isolation`'s queue, unless it is full.
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        isolation: Isolation,
    ) -> Result<QueuePlace, SubmitError> {
        let counter = &self.queued[&isolation];
        let taken = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < self.max_queue).then_some(n + 1)
        });
        if taken.is_err() {
            return Err(SubmitError::Overloaded {
                message: format!(
                    "the {isolation} backend has {} workloads waiting, its limit; retry shortly",
                    self.max_queue
                ),
                retry_after_s: 1,
            });
        }
        Ok(QueuePlace {
            admission: self.clone(),
            isolation,
        })
    }

    /// Takes a place even if the queue is full: for work accepted before a restart.
    pub(crate) fn enqueue_accepted(self: &Arc<Self>, isolation: Isolation) -> QueuePlace {
        self.queued[&isolation].fetch_add(1, Ordering::SeqCst);
        QueuePlace {
            admission: self.clone(),
            isolation,
        }
    }

    /// Workloads waiting for a slot on `isolation`.
    pub(crate) fn queued(&self, isolation: Isolation) -> usize {
        self.queued[&isolation].load(Ordering::SeqCst)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut tenants = self.admission.tenants();
        if let Some(usage) = tenants.get_mut(&self.tenant) {
            usage.active = usage.active.saturating_sub(1);
            usage.cpus = usage.cpus.saturating_sub(self.resources.cpus);
            usage.mem_mb = usage.mem_mb.saturating_sub(self.resources.mem_mb);
            if usage.is_idle(Instant::now()) {
                tenants.remove(&self.tenant);
            }
        }
    }
}

impl Usage {
    fn is_idle(&self, now: Instant) -> bool {
        self.active == 0
            && self
                .recent
                .back()
                .is_none_or(|t| now.duration_since(*t) >= MINUTE)
    }
}

impl Drop for QueuePlace {
    fn drop(&mut self) {
        self.admission.queued[&self.isolation].fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota() -> Quota {
        Quota {
            max_concurrent: 2,
            per_minute: 3,
            max_cpus: 4,
            max_mem_mb: 512,
        }
    }

    fn small() -> Resources {
        Resources {
            cpus: 1,
            mem_mb: 128,
            timeout_s: 5,
        }
    }

    #[test]
    fn concurrency_is_released_when_tickets_drop() {
        let a = Arc::new(Admission::new(10));
        let t1 = a.admit("t", &quota(), small()).unwrap();
        let _t2 = a.admit("t", &quota(), small()).unwrap();
        assert!(matches!(
            a.admit("t", &quota(), small()),
            Err(SubmitError::OverQuota {
                retry_after_s: 1,
                ..
            })
        ));
        assert!(
            a.admit("other", &quota(), small()).is_ok(),
            "tenants are counted apart"
        );
        drop(t1);
        let _t3 = a.admit("t", &quota(), small()).unwrap();
        // That was the third submission this minute for "t": the fourth waits.
        drop(_t3);
        match a.admit("t", &quota(), small()) {
            Err(SubmitError::OverQuota {
                retry_after_s,
                message,
            }) => {
                assert!(retry_after_s >= 59, "{retry_after_s}");
                assert!(message.contains("last minute"));
            }
            _ => panic!("the rate quota must hold"),
        }
    }

    #[test]
    fn resources_add_up_and_a_workload_that_never_fits_is_forbidden() {
        let a = Arc::new(Admission::new(10));
        let big = Resources {
            cpus: 1,
            mem_mb: 400,
            timeout_s: 5,
        };
        let _t = a.admit("t", &quota(), big).unwrap();
        assert!(matches!(
            a.admit("t", &quota(), big),
            Err(SubmitError::OverQuota { .. })
        ));
        let huge = Resources {
            cpus: 8,
            mem_mb: 128,
            timeout_s: 5,
        };
        assert!(matches!(
            a.admit("u", &quota(), huge),
            Err(SubmitError::Forbidden(_))
        ));
    }

    #[test]
    fn idle_tenants_leave_no_entry_behind() {
        let a = Arc::new(Admission::new(10));
        for i in 0..(IDLE_SWEEP_AT + 10) {
            drop(a.admit(&format!("t{i}"), &quota(), small()).unwrap());
        }
        // Each still has a submission in the last minute, so entries are kept for the rate
        // quota; they are bounded by the sweep once they are idle.
        assert!(a.tenants().len() <= IDLE_SWEEP_AT + 10);
        let mut tenants = a.tenants();
        for usage in tenants.values_mut() {
            usage.recent.clear();
        }
        drop(tenants);
        drop(a.admit("late", &quota(), small()).unwrap());
        assert!(
            a.tenants().len() <= 1,
            "idle tenants were swept: {}",
            a.tenants().len()
        );
    }

    #[test]
    fn queues_are_bounded_per_backend() {
        let a = Arc::new(Admission::new(2));
        let p1 = a.enqueue(Isolation::Isolate).unwrap();
        let _p2 = a.enqueue(Isolation::Isolate).unwrap();
        assert!(matches!(
            a.enqueue(Isolation::Isolate),
            Err(SubmitError::Overloaded { .. })
        ));
        assert!(a.enqueue(Isolation::Gvisor).is_ok());
        let _recovered = a.enqueue_accepted(Isolation::Isolate);
        assert_eq!(a.queued(Isolation::Isolate), 3);
        drop(p1);
        assert_eq!(a.queued(Isolation::Isolate), 2);
    }
}
