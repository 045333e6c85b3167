//! An OS-level memory bound per workload: a memory cgroup holding its Deno process (the
//! policy itself is [`vulcan_sandbox::cgroup`]'s). V8's heap limit covers the JavaScript
//! heap; this also covers array buffers, Wasm memory and Deno's own allocations.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use vulcan_sandbox::cgroup::{self, Cgroup, CgroupParent};

/// Where Vulcan keeps its per-process memory cgroups, and the empty ones kept for reuse:
/// the first process moved into a new cgroup costs ~10 ms of kernel work; a reused one
/// costs ~20 µs.
#[derive(Debug)]
pub struct CgroupRoot {
    parent: CgroupParent,
    free: Mutex<Vec<Cgroup>>,
    next: AtomicU64,
}

/// The memory cgroup of one process; handed back with [`CgroupRoot::release`].
#[derive(Debug)]
pub struct MemoryCgroup {
    group: Cgroup,
    /// The group's OOM-kill count when it was handed out.
    oom_base: u64,
}

impl CgroupRoot {
    /// Finds a writable place for per-workload memory cgroups, creating `vulcan-isolate`.
    pub fn detect() -> Result<CgroupRoot, String> {
        let rel = if cgroup::is_v2() {
            PathBuf::from("vulcan-isolate")
        } else {
            cgroup::own_path(Some("memory"))
                .unwrap_or_default()
                .join("vulcan-isolate")
        };
        let shared = CgroupParent::create(&rel, false)?;
        Self::sweep_dead_servers(&shared);
        let parent = shared.nested(&std::process::id().to_string())?;
        Ok(CgroupRoot {
            parent,
            free: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
        })
    }

    /// Servers sharing a host keep apart under `<shared>/<pid>`; removes what servers that
    /// are gone left behind.
    fn sweep_dead_servers(shared: &CgroupParent) {
        for name in shared.children() {
            let gone = name
                .parse::<u32>()
                .is_ok_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            if gone {
                if let Ok(server) = shared.nested(&name) {
                    server.sweep();
                }
                shared.handle(&name).remove();
            }
        }
    }

    /// Memory charged to every group under this root, in bytes.
    pub fn usage(&self) -> Option<u64> {
        self.parent.usage()
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Vec<Cgroup>> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An empty memory cgroup, reused if one is free, with no limit set yet.
    pub fn acquire(&self) -> std::io::Result<MemoryCgroup> {
        let reused = self.free().pop();
        let group = match reused {
            Some(group) => group,
            None => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                self.parent.group(&format!("slot-{n}"))?
            }
        };
        let oom_base = group.events().oom_kills;
        Ok(MemoryCgroup { group, oom_base })
    }

    /// Takes back a group once its process has exited (waits briefly for that).
    pub async fn release(&self, group: MemoryCgroup) {
        for _ in 0..100 {
            if group.group.is_empty() {
                self.free().push(group.group);
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tracing::warn!(dir = %group.group.dir().display(), "a workload cgroup still has processes; not reused");
    }
}

impl MemoryCgroup {
    pub fn add(&self, pid: u32) -> std::io::Result<()> {
        self.group.add(pid)
    }

    /// Sets the hard memory limit of the group.
    pub fn limit(&self, bytes: u64) -> std::io::Result<()> {
        self.group.set_memory_max(bytes)
    }

    /// Starts measuring what the group's process uses from now.
    pub fn mark(&self) -> cgroup::UsageMark {
        self.group.mark()
    }

    /// What the group's process used since `mark`.
    pub fn usage_since(&self, mark: cgroup::UsageMark) -> vulcan_domain::Usage {
        let used = self.group.usage_since(mark);
        vulcan_domain::Usage {
            cpu_time_ms: used.cpu_time_ms,
            peak_memory_bytes: used.peak_memory_bytes,
            // One Deno process: workloads cannot start others.
            max_processes: Some(1),
            net_tx_bytes: None,
            net_rx_bytes: None,
        }
    }

    /// Whether the kernel killed a process of this group for exceeding its limit since
    /// the group was handed out.
    pub fn oom_killed(&self) -> bool {
        self.group.events().oom_kills > self.oom_base
    }
}
