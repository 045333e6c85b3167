//! The admission rules both stores apply inside the transaction that records a new
//! workload, so that they hold across every node sharing the store: a backend's queue
//! limit, and a tenant's quota (workloads at once, submissions per rolling minute, CPUs and
//! memory of its active workloads together).

use vulcan_domain::{Isolation, Quota, Refusal, Resources};

/// What a tenant is using when a new workload asks to be admitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Workloads pending or running.
    pub active: u64,
    pub cpus: u64,
    pub mem_mb: u64,
    /// Submissions accepted in the last minute.
    pub last_minute: u64,
    /// Seconds until the oldest of those leaves the minute.
    pub oldest_leaves_in_s: u64,
}

/// Refuses a workload when its backend already has `pending` workloads waiting (counting
/// this one) past `max`.
pub(crate) fn queue(isolation: Isolation, pending: u64, max: u64) -> Result<(), Refusal> {
    if pending > max {
        return Err(Refusal::Overloaded {
            message: format!(
                "the {isolation} backend has {max} workloads waiting, its limit; retry shortly"
            ),
            retry_after_s: 1,
        });
    }
    Ok(())
}

/// Refuses a workload of `tenant` that its quota does not allow now (or ever).
pub(crate) fn quota(
    tenant: &str,
    quota: &Quota,
    usage: Usage,
    resources: Resources,
) -> Result<(), Refusal> {
    if resources.cpus > quota.max_cpus || resources.mem_mb > quota.max_mem_mb {
        return Err(Refusal::Forbidden(format!(
            "tenant {tenant} may use at most {} CPUs and {} MB at once; this workload asks for {} CPUs and {} MB",
            quota.max_cpus, quota.max_mem_mb, resources.cpus, resources.mem_mb
        )));
    }
    if usage.last_minute >= u64::from(quota.per_minute) {
        return Err(Refusal::OverQuota {
            message: format!(
                "tenant {tenant} has submitted {} workloads in the last minute, its quota; retry later",
                quota.per_minute
            ),
            retry_after_s: usage.oldest_leaves_in_s.max(1),
        });
    }
    let over = if usage.active + 1 > u64::from(quota.max_concurrent) {
        Some(format!("{} workloads at once", quota.max_concurrent))
    } else if usage.cpus + u64::from(resources.cpus) > u64::from(quota.max_cpus) {
        Some(format!("{} CPUs at once", quota.max_cpus))
    } else if usage.mem_mb + u64::from(resources.mem_mb) > u64::from(quota.max_mem_mb) {
        Some(format!("{} MB at once", quota.max_mem_mb))
    } else {
        None
    };
    match over {
        Some(limit) => Err(Refusal::OverQuota {
            message: format!(
                "tenant {tenant} is at its quota of {limit}; retry when some of its workloads have finished"
            ),
            retry_after_s: 1,
        }),
        None => Ok(()),
    }
}

/// A tenant's egress allow-list as its column keeps it: the rules as JSON, `NULL` for none.
pub(crate) fn egress_column(rules: &[vulcan_domain::NetRule]) -> Option<String> {
    (!rules.is_empty()).then(|| serde_json::to_string(rules).unwrap_or_default())
}

/// The allow-list back from its column; a rule this build cannot read is left out (and
/// logged), so a stored list never locks a tenant out of everything else.
pub(crate) fn egress_rules(column: Option<String>) -> Vec<vulcan_domain::NetRule> {
    let Some(text) = column else {
        return Vec::new();
    };
    let strings: Vec<String> = serde_json::from_str(&text).unwrap_or_default();
    strings
        .iter()
        .filter_map(|s| match s.parse() {
            Ok(rule) => Some(rule),
            Err(e) => {
                tracing::warn!(rule = %s, error = %e, "a stored egress rule cannot be read");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> Quota {
        Quota {
            max_concurrent: 2,
            per_minute: 3,
            max_cpus: 4,
            max_mem_mb: 512,
            max_schedules: None,
            min_schedule_interval_s: None,
            egress_allow: Vec::new(),
        }
    }

    fn small() -> Resources {
        Resources {
            cpus: 1,
            mem_mb: 128,
            timeout_s: 5,
            net_mbps: None,
        }
    }

    #[test]
    fn each_limit_refuses_with_its_reason_and_a_time_to_come_back() {
        let ok = Usage::default();
        assert!(quota("t", &q(), ok, small()).is_ok());
        let busy = Usage { active: 2, ..ok };
        assert!(matches!(
            quota("t", &q(), busy, small()),
            Err(Refusal::OverQuota {
                retry_after_s: 1,
                ..
            })
        ));
        let rate = Usage {
            last_minute: 3,
            oldest_leaves_in_s: 42,
            ..ok
        };
        match quota("t", &q(), rate, small()) {
            Err(Refusal::OverQuota {
                retry_after_s,
                message,
            }) => {
                assert_eq!(retry_after_s, 42);
                assert!(message.contains("last minute"));
            }
            other => panic!("{other:?}"),
        }
        let memory = Usage { mem_mb: 400, ..ok };
        assert!(quota("t", &q(), memory, small())
            .unwrap_err()
            .to_string()
            .contains("512 MB at once"));
        let huge = Resources { cpus: 8, ..small() };
        assert!(matches!(
            quota("t", &q(), ok, huge),
            Err(Refusal::Forbidden(_))
        ));
        assert!(queue(Isolation::Isolate, 24, 24).is_ok());
        assert!(matches!(
            queue(Isolation::Isolate, 25, 24),
            Err(Refusal::Overloaded { .. })
        ));
    }
}
