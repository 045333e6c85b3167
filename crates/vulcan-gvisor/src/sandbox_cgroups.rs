//! Each sandbox's cgroups are made by Vulcan before runsc joins them, limits already
//! set (the policy is [`vulcan_sandbox::cgroup`]'s): the memory and pids bounds hold
//! whatever runsc does with the spec, and after the run the kernel's counters tell an OOM
//! kill or a fork bomb from a plain failure.

use std::io;
use std::path::Path;

use vulcan_sandbox::cgroup::{Cgroup, CgroupParent};

const PARENT: &str = "vulcan-gvisor";

/// Where sandbox cgroups go: `vulcan-gvisor` under the memory and pids hierarchies.
#[derive(Debug, Clone)]
pub struct CgroupBase {
    parent: CgroupParent,
}

pub use vulcan_sandbox::cgroup::Events;

impl CgroupBase {
    pub fn detect() -> Result<CgroupBase, String> {
        Ok(CgroupBase {
            parent: CgroupParent::create(Path::new(PARENT), true)?,
        })
    }

    /// Memory charged to every sandbox now, in bytes.
    pub fn usage(&self) -> Option<u64> {
        self.parent.usage()
    }

    /// The `cgroupsPath` runsc is given for sandbox `id`.
    pub fn runsc_path(id: &str) -> String {
        format!("/{PARENT}/{id}")
    }

    /// Makes sandbox `id`'s cgroup with its memory and pids limits.
    pub fn create(&self, id: &str, memory_bytes: u64, pids: u32) -> io::Result<Cgroup> {
        let group = self.parent.group(id)?;
        group.set_memory_max(memory_bytes)?;
        group.set_pids_max(pids.into())?;
        Ok(group)
    }

    /// Bounds sandbox `id` to `cpus` CPUs in the cpu group runsc made for it from its
    /// spec (a pod's, whose bound was set before its workload was known). A host without
    /// the cpu controller has no such group and no CPU bound for any sandbox: nothing to do.
    pub fn set_cpus(&self, id: &str, cpus: u32) -> io::Result<()> {
        let quota = u64::from(cpus) * crate::bundle::CPU_PERIOD;
        let mount = Path::new(vulcan_sandbox::cgroup::MOUNT);
        let (file, value) = if self.parent.is_v2() {
            (
                self.parent.dir().join(id).join("cpu.max"),
                format!("{quota} {}", crate::bundle::CPU_PERIOD),
            )
        } else {
            (
                mount
                    .join("cpu")
                    .join(PARENT)
                    .join(id)
                    .join("cpu.cfs_quota_us"),
                quota.to_string(),
            )
        };
        if !file.exists() {
            return Ok(());
        }
        std::fs::write(&file, value)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", file.display())))
    }

    /// Removes sandbox `id`'s cgroup once its processes are gone (waits up to ~1 s).
    pub fn remove(&self, id: &str) {
        if !self.parent.handle(id).remove() {
            tracing::warn!(
                sandbox = id,
                "a sandbox cgroup still has processes; left in place"
            );
        }
    }

    /// Removes empty sandbox cgroups a previous server left.
    pub fn sweep(&self) {
        self.parent.sweep();
    }
}
