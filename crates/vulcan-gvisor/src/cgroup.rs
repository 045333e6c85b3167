//! Each sandbox's cgroups are made by Vulcan before runsc joins them, limits already
//! set: the memory and pids bounds hold whatever runsc does with the spec, and after the
//! run the kernel's counters tell an OOM kill or a fork bomb from a plain failure.

use std::io;
use std::path::{Path, PathBuf};

const PARENT: &str = "vulcan-gvisor";

/// Where sandbox cgroups go: one directory on cgroup v2, one per controller on v1.
#[derive(Debug, Clone)]
pub struct CgroupBase {
    memory: PathBuf,
    /// `None` on v2, where `memory` holds the pids files too.
    pids: Option<PathBuf>,
}

/// The cgroup of one sandbox.
#[derive(Debug)]
pub struct SandboxCgroup {
    memory: PathBuf,
    pids: Option<PathBuf>,
}

/// What the kernel counted while the sandbox ran.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Events {
    pub oom_kills: u64,
    pub pids_refused: u64,
}

fn counter(path: &Path, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}

impl CgroupBase {
    /// Creates `vulcan-gvisor` under the memory (and, on v1, pids) hierarchy.
    pub fn detect() -> Result<CgroupBase, String> {
        let root = Path::new("/sys/fs/cgroup");
        let make = |dir: PathBuf| {
            std::fs::create_dir_all(&dir)
                .map(|()| dir.clone())
                .map_err(|e| format!("cannot create cgroup {}: {e}", dir.display()))
        };
        if root.join("cgroup.controllers").exists() {
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory +pids +cpu");
            let base = make(root.join(PARENT))?;
            let _ = std::fs::write(base.join("cgroup.subtree_control"), "+memory +pids +cpu");
            return Ok(CgroupBase {
                memory: base,
                pids: None,
            });
        }
        if !root.join("memory").is_dir() || !root.join("pids").is_dir() {
            return Err("the memory and pids cgroup controllers are not mounted under /sys/fs/cgroup: sandboxes would have no memory or process bound".into());
        }
        Ok(CgroupBase {
            memory: make(root.join("memory").join(PARENT))?,
            pids: Some(make(root.join("pids").join(PARENT))?),
        })
    }

    /// Memory charged to every sandbox now, in bytes.
    pub fn usage(&self) -> Option<u64> {
        let file = if self.pids.is_none() {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        std::fs::read_to_string(self.memory.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The `cgroupsPath` runsc is given for sandbox `id`.
    pub fn runsc_path(id: &str) -> String {
        format!("/{PARENT}/{id}")
    }

    fn dirs(&self, id: &str) -> (PathBuf, Option<PathBuf>) {
        (self.memory.join(id), self.pids.as_ref().map(|p| p.join(id)))
    }

    /// Makes sandbox `id`'s cgroup with its memory and pids limits.
    pub fn create(&self, id: &str, memory_bytes: u64, pids: u32) -> io::Result<SandboxCgroup> {
        let (memory, pids_dir) = self.dirs(id);
        std::fs::create_dir(&memory)?;
        let v2 = pids_dir.is_none();
        let group = SandboxCgroup {
            memory,
            pids: pids_dir,
        };
        if let Some(p) = &group.pids {
            std::fs::create_dir(p)?;
        }
        let memory_file = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        std::fs::write(group.memory.join(memory_file), memory_bytes.to_string())?;
        std::fs::write(group.pids_dir().join("pids.max"), pids.to_string())?;
        Ok(group)
    }

    /// Removes sandbox `id`'s cgroup once its processes are gone (waits up to ~1 s).
    pub fn remove(&self, id: &str) {
        let (memory, pids) = self.dirs(id);
        for dir in std::iter::once(memory).chain(pids) {
            for _ in 0..50 {
                if !dir.exists() || std::fs::remove_dir(&dir).is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }

    /// Removes empty sandbox cgroups a previous server left.
    pub fn sweep(&self) {
        for base in std::iter::once(&self.memory).chain(&self.pids) {
            if let Ok(entries) = std::fs::read_dir(base) {
                for entry in entries.flatten().filter(|e| e.path().is_dir()) {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
    }
}

impl SandboxCgroup {
    fn pids_dir(&self) -> &Path {
        self.pids.as_deref().unwrap_or(&self.memory)
    }

    pub fn events(&self) -> Events {
        let oom_file = if self.pids.is_none() {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        Events {
            oom_kills: counter(&self.memory.join(oom_file), "oom_kill"),
            pids_refused: counter(&self.pids_dir().join("pids.events"), "max"),
        }
    }
}
