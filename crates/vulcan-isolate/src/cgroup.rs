//! An OS-level memory bound per workload: a memory cgroup (v2 or v1) holding its process.
//! V8's heap limit covers the JavaScript heap; this also covers array buffers, Wasm
//! memory and Deno's own allocations.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Where Vulcan keeps its per-process memory cgroups, and the empty ones kept for reuse:
/// the first process moved into a new cgroup costs ~10 ms of kernel work; a reused one
/// costs ~20 µs.
#[derive(Debug)]
pub struct CgroupRoot {
    base: PathBuf,
    v2: bool,
    free: Mutex<Vec<PathBuf>>,
    next: AtomicU64,
}

/// The memory cgroup of one process; handed back with [`CgroupRoot::release`].
#[derive(Debug)]
pub struct MemoryCgroup {
    dir: PathBuf,
    v2: bool,
    /// The group's OOM-kill count when it was handed out.
    oom_base: u64,
}

fn own_path(controller: Option<&str>) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = match controller {
            None => controllers.is_empty(),
            Some(c) => controllers.split(',').any(|x| x == c),
        };
        matches.then(|| path.trim_start_matches('/').to_owned())
    })
}

impl CgroupRoot {
    /// Finds a writable place for per-workload memory cgroups, creating `vulcan-isolate`.
    pub fn detect() -> Result<CgroupRoot, String> {
        let v2_mount = Path::new("/sys/fs/cgroup");
        if v2_mount.join("cgroup.controllers").exists() {
            let base = v2_mount.join("vulcan-isolate");
            let setup = || -> io::Result<()> {
                std::fs::create_dir_all(&base)?;
                std::fs::write(v2_mount.join("cgroup.subtree_control"), "+memory")?;
                std::fs::write(base.join("cgroup.subtree_control"), "+memory")
            };
            return setup()
                .map(|_| CgroupRoot::at(base.clone(), true))
                .map_err(|e| format!("cannot set up cgroup v2 at {}: {e}", base.display()));
        }
        let v1_mount = Path::new("/sys/fs/cgroup/memory");
        if v1_mount.is_dir() {
            let own = own_path(Some("memory")).unwrap_or_default();
            let base = v1_mount.join(own).join("vulcan-isolate");
            return std::fs::create_dir_all(&base)
                .map(|_| CgroupRoot::at(base.clone(), false))
                .map_err(|e| format!("cannot set up cgroup v1 at {}: {e}", base.display()));
        }
        Err("no cgroup memory controller is mounted".into())
    }

    /// Uses `<shared>/<our pid>`, so that servers sharing a host keep apart, after
    /// removing what servers that are gone left behind.
    fn at(shared: PathBuf, v2: bool) -> CgroupRoot {
        if let Ok(entries) = std::fs::read_dir(&shared) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let gone = name
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
                if gone {
                    if let Ok(slots) = std::fs::read_dir(entry.path()) {
                        for slot in slots.flatten() {
                            let _ = std::fs::remove_dir(slot.path());
                        }
                    }
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
        let base = shared.join(std::process::id().to_string());
        CgroupRoot {
            base,
            v2,
            free: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
        }
    }

    /// Memory charged to every group under this root, in bytes.
    pub fn usage(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        std::fs::read_to_string(self.base.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An empty memory cgroup, reused if one is free, with no limit set yet.
    pub fn acquire(&self) -> io::Result<MemoryCgroup> {
        let reused = self.free().pop();
        let dir = match reused {
            Some(dir) => dir,
            None => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                let dir = self.base.join(format!("slot-{n}"));
                std::fs::create_dir_all(&dir)?;
                if !self.v2 {
                    // Charge the pages a process already has to the group it moves into.
                    let _ = std::fs::write(dir.join("memory.move_charge_at_immigrate"), "1");
                }
                dir
            }
        };
        let mut group = MemoryCgroup {
            dir,
            v2: self.v2,
            oom_base: 0,
        };
        group.oom_base = group.oom_kills();
        Ok(group)
    }

    /// Takes back a group once its process has exited (waits briefly for that).
    pub async fn release(&self, group: MemoryCgroup) {
        for _ in 0..100 {
            if group.is_empty() {
                self.free().push(group.dir);
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tracing::warn!(dir = %group.dir.display(), "a workload cgroup still has processes; not reused");
    }
}

impl MemoryCgroup {
    pub fn add(&self, pid: u32) -> io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }

    /// Sets the hard memory limit of the group.
    pub fn limit(&self, bytes: u64) -> io::Result<()> {
        if self.v2 {
            let _ = std::fs::write(self.dir.join("memory.swap.max"), "0");
            std::fs::write(self.dir.join("memory.max"), bytes.to_string())
        } else {
            std::fs::write(self.dir.join("memory.limit_in_bytes"), bytes.to_string())
        }
    }

    fn is_empty(&self) -> bool {
        std::fs::read_to_string(self.dir.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty())
    }

    fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse().ok())
                })
            })
            .unwrap_or(0)
    }

    /// Whether the kernel killed a process of this group for exceeding its limit since
    /// the group was handed out.
    pub fn oom_killed(&self) -> bool {
        self.oom_kills() > self.oom_base
    }
}
