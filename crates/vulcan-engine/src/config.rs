//! The engine's knobs.

use std::time::Duration;

use vulcan_domain::{Quota, Resources};

/// Upper bounds a request's resources are validated against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_cpus: u32,
    pub min_mem_mb: u32,
    pub max_mem_mb: u32,
    pub max_timeout_s: u32,
    /// Largest `code` (or decoded `code_archive`) accepted.
    pub max_code_bytes: usize,
    /// Largest `output` a workload may produce; beyond it the workload fails.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_cpus: 8,
            min_mem_mb: 16,
            max_mem_mb: 4096,
            max_timeout_s: 600,
            max_code_bytes: 4 * 1024 * 1024,
            max_output_bytes: 1024 * 1024,
        }
    }
}

impl Limits {
    /// Whether `resources` are within these limits; the error names the field to change.
    pub fn check(&self, resources: &Resources) -> Result<(), String> {
        let checks = [
            ("cpus", resources.cpus, 1, self.max_cpus),
            ("mem_mb", resources.mem_mb, self.min_mem_mb, self.max_mem_mb),
            ("timeout_s", resources.timeout_s, 1, self.max_timeout_s),
        ];
        for (name, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(format!(
                    "\"resources.{name}\" is {value}; it must be between {min} and {max}"
                ));
            }
        }
        Ok(())
    }
}

/// What tenants may ask their workloads to reach (`VULCAN_EGRESS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EgressMode {
    /// No workload has a network (the default).
    #[default]
    Off,
    /// Only what the tenant's quota lists in `egress_allow`.
    AllowListed,
    /// Any public destination; never-reachable ranges only where the tenant's quota lists them.
    Open,
}

impl std::str::FromStr for EgressMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(EgressMode::Off),
            "allow-listed" => Ok(EgressMode::AllowListed),
            "open" => Ok(EgressMode::Open),
            other => Err(format!(
                "{other:?} is not an egress mode: use off, allow-listed or open"
            )),
        }
    }
}

/// How much log one workload may keep. Past either bound one marker line is recorded and
/// further lines are counted and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    pub max_lines: u64,
    pub max_bytes: u64,
    /// Longer lines are cut to this length.
    pub max_line_bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_lines: 10_000,
            max_bytes: 1024 * 1024,
            max_line_bytes: 16 * 1024,
        }
    }
}

/// Everything the engine is configured with.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This node's id, recorded on every workload it runs.
    pub node_id: String,
    pub defaults: Resources,
    pub limits: Limits,
    pub logs: LogLimits,
    /// The quota of tenants that have none of their own.
    pub default_quota: Quota,
    /// Workloads that may wait for a slot per backend (across the cluster); beyond it
    /// submissions get 503.
    pub max_queue: usize,
    /// How often this node says it is alive, does housekeeping and looks for kill requests.
    pub heartbeat: Duration,
    /// A node without a heartbeat for this long is lost; a node that could not reach the
    /// store for this long stops what it runs.
    pub lease: Duration,
    /// How often the queue and the workloads others run are looked at when no signal came
    /// (signals are the fast path; this is the fallback).
    pub poll: Duration,
    /// The key secrets are sealed with (and the previous one, during a rotation); `None`:
    /// secrets cannot be stored or used.
    pub keyring: Option<crate::secrets::Keyring>,
    /// What tenants may ask their workloads to reach.
    pub egress: EgressMode,
    /// This node's host addresses, published for the other nodes' egress rules.
    pub addresses: Vec<std::net::Ipv4Addr>,
    /// Where this node's API answers the other nodes (`http://host:port`).
    pub api_url: String,
    /// Queues a tenant may have at most.
    pub max_queues_per_tenant: u32,
}

impl EngineConfig {
    pub fn new(node_id: impl Into<String>) -> Self {
        EngineConfig {
            node_id: node_id.into(),
            defaults: Resources::default(),
            limits: Limits::default(),
            logs: LogLimits::default(),
            default_quota: Quota {
                max_concurrent: 64,
                per_minute: 600,
                max_cpus: 64,
                max_mem_mb: 16 * 1024,
                max_schedules: Some(100),
                min_schedule_interval_s: Some(1),
                egress_allow: Vec::new(),
            },
            max_queue: 256,
            heartbeat: Duration::from_secs(1),
            lease: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            keyring: None,
            egress: EgressMode::Off,
            addresses: Vec::new(),
            api_url: String::new(),
            max_queues_per_tenant: 100,
        }
    }
}
