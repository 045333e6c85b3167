//! A workload's memory and process bounds as a cgroup, on cgroup v2 or v1, with one policy
//! wherever Vulcan makes one (the isolate and gvisor backends on the host, the agent in a
//! microVM's guest):
//!
//! - memory: a hard limit, and no swap beyond it (`memory.swap.max = 0` on v2, the
//!   memory+swap limit equal to the memory limit on v1, where the host accounts swap);
//! - processes: a `pids.max` where the caller asks for one;
//! - setting a limit that the kernel refuses is an error, never ignored: a sandbox without
//!   its bound must not run;
//! - afterwards the kernel's own counters say whether the group was OOM-killed or refused
//!   a fork, so a memory bomb and a fork bomb are reported as such.
//!
//! - usage: the CPU time the group used and its peak memory (and, where the kernel counts
//!   it, its most processes at once), measured from a [`UsageMark`] so a group that serves
//!   several workloads in turn reports each one's own.
//!
//! A [`CgroupParent`] is where one backend's groups live; each [`Cgroup`] is one workload's.

use std::io;
use std::path::{Path, PathBuf};

/// Where cgroup hierarchies are mounted.
pub const MOUNT: &str = "/sys/fs/cgroup";

/// The directory under which one user's per-workload cgroups are made.
#[derive(Debug, Clone)]
pub struct CgroupParent {
    /// The memory hierarchy's directory (v1), or the one directory (v2).
    memory: PathBuf,
    /// The pids hierarchy's directory on v1, if pids are bounded.
    pids: Option<PathBuf>,
    /// The cpuacct hierarchy's directory on v1, where it is mounted (CPU time).
    cpu: Option<PathBuf>,
    v2: bool,
    with_pids: bool,
}

/// One workload's cgroup.
#[derive(Debug, Clone)]
pub struct Cgroup {
    memory: PathBuf,
    pids: Option<PathBuf>,
    cpu: Option<PathBuf>,
    v2: bool,
}

/// What a group used since a [`UsageMark`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub cpu_time_ms: u64,
    pub peak_memory_bytes: u64,
    /// Most processes at once, where the kernel counts it (`pids.peak`, cgroup v2).
    pub max_processes: Option<u64>,
}

/// Where a measurement starts: the group's CPU time then (its memory peak is reset).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UsageMark {
    cpu_ns: u64,
}

/// What the kernel counted in a group.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Events {
    /// Processes killed for exceeding the memory limit.
    pub oom_kills: u64,
    /// Forks refused at the process limit.
    pub pids_refused: u64,
}

/// The value of `key` in a flat-keyed cgroup file (`oom_kill 3`).
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

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Memory charged to the group at `dir` now, in bytes.
fn memory_usage(dir: &Path, v2: bool) -> Option<u64> {
    let file = if v2 {
        "memory.current"
    } else {
        "memory.usage_in_bytes"
    };
    read_u64(&dir.join(file))
}

fn annotate(what: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value).map_err(|e| annotate("cannot write", path, e))
}

/// This process's own cgroup path in the hierarchy of `controller` (v1), or in the unified
/// hierarchy (`None`), relative to its mount.
pub fn own_path(controller: Option<&str>) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = match controller {
            None => controllers.is_empty(),
            Some(c) => controllers.split(',').any(|x| x == c),
        };
        matches.then(|| PathBuf::from(path.trim_start_matches('/')))
    })
}

/// Whether the host mounts the unified (v2) hierarchy at [`MOUNT`].
pub fn is_v2() -> bool {
    Path::new(MOUNT).join("cgroup.controllers").exists()
}

/// Makes the controllers in `wanted` available to the children of every directory from
/// `mount` down to `dir` (v2). A controller that cannot be delegated is an error; `cpu` is
/// asked for too, where it can be had (runsc sets CPU limits with it).
fn delegate(mount: &Path, dir: &Path, wanted: &[&str]) -> Result<(), String> {
    let rel = dir.strip_prefix(mount).unwrap_or(Path::new(""));
    let mut current = mount.to_path_buf();
    let levels = std::iter::once(None).chain(rel.components().map(Some));
    for component in levels {
        if let Some(c) = component {
            current.push(c);
        }
        let control = current.join("cgroup.subtree_control");
        let _ = std::fs::write(&control, "+cpu");
        let request: Vec<String> = wanted.iter().map(|c| format!("+{c}")).collect();
        let _ = std::fs::write(&control, request.join(" "));
        let enabled = std::fs::read_to_string(&control).unwrap_or_default();
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the {} cgroup controller cannot be enabled in {}",
                missing.join(" and "),
                current.display()
            ));
        }
    }
    Ok(())
}

/// How old an empty child group must be before [`CgroupParent::sweep`] removes it.
pub const SWEEP_AGE: std::time::Duration = std::time::Duration::from_secs(60);

impl CgroupParent {
    /// Makes (or reuses) the parent at `rel` under [`MOUNT`] — under the memory and, with
    /// `pids`, the pids hierarchy on v1. Errors say what is missing.
    pub fn create(rel: &Path, pids: bool) -> Result<CgroupParent, String> {
        Self::create_at(Path::new(MOUNT), rel, pids)
    }

    /// [`CgroupParent::create`] under another mount point (the guest's own, or a test's).
    pub fn create_at(mount: &Path, rel: &Path, pids: bool) -> Result<CgroupParent, String> {
        let make = |dir: PathBuf| {
            std::fs::create_dir_all(&dir)
                .map(|()| dir.clone())
                .map_err(|e| format!("cannot create cgroup {}: {e}", dir.display()))
        };
        if mount.join("cgroup.controllers").exists() {
            let dir = make(mount.join(rel))?;
            let wanted: &[&str] = if pids {
                &["memory", "pids"]
            } else {
                &["memory"]
            };
            // The parent's own children get the controllers: delegate down to it.
            delegate(mount, &dir, wanted)?;
            return Ok(CgroupParent {
                memory: dir,
                pids: None,
                cpu: None,
                v2: true,
                with_pids: pids,
            });
        }
        let memory_root = mount.join("memory");
        let pids_root = mount.join("pids");
        if !memory_root.is_dir() || (pids && !pids_root.is_dir()) {
            return Err(format!(
                "the memory{} cgroup controller is not mounted under {}: workloads would have no bound",
                if pids { " and pids" } else { "" },
                mount.display()
            ));
        }
        // CPU time is measured where cpuacct is mounted; a host without it reports none.
        let cpu_root = mount.join("cpuacct");
        Ok(CgroupParent {
            memory: make(memory_root.join(rel))?,
            pids: if pids {
                Some(make(pids_root.join(rel))?)
            } else {
                None
            },
            cpu: cpu_root
                .is_dir()
                .then(|| make(cpu_root.join(rel)).ok())
                .flatten(),
            v2: false,
            with_pids: pids,
        })
    }

    pub fn is_v2(&self) -> bool {
        self.v2
    }

    /// The parent's memory directory (v1) or its one directory (v2).
    pub fn dir(&self) -> &Path {
        &self.memory
    }

    /// The parent of `name` at a new path below this one (its own pid, a backend's slot).
    pub fn nested(&self, name: &str) -> Result<CgroupParent, String> {
        let mut nested = self.clone();
        nested.memory = self.memory.join(name);
        nested.pids = self.pids.as_ref().map(|p| p.join(name));
        nested.cpu = self.cpu.as_ref().map(|p| p.join(name));
        for dir in std::iter::once(&nested.memory)
            .chain(&nested.pids)
            .chain(&nested.cpu)
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create cgroup {}: {e}", dir.display()))?;
        }
        if self.v2 {
            let wanted: &[&str] = if self.with_pids {
                &["memory", "pids"]
            } else {
                &["memory"]
            };
            delegate(&self.memory, &nested.memory, wanted)?;
        }
        Ok(nested)
    }

    /// Memory charged to every group under this parent now, in bytes.
    pub fn usage(&self) -> Option<u64> {
        memory_usage(&self.memory, self.v2)
    }

    /// The group `name` under this parent, made now (or found, if it exists).
    pub fn group(&self, name: &str) -> io::Result<Cgroup> {
        let group = self.handle(name);
        for dir in std::iter::once(&group.memory)
            .chain(&group.pids)
            .chain(&group.cpu)
        {
            std::fs::create_dir_all(dir).map_err(|e| annotate("cannot create", dir, e))?;
        }
        if !self.v2 {
            // Charge the pages a process already has to the group it moves into.
            let _ = std::fs::write(group.memory.join("memory.move_charge_at_immigrate"), "1");
        }
        Ok(group)
    }

    /// The group `name` under this parent, whether or not it exists.
    pub fn handle(&self, name: &str) -> Cgroup {
        Cgroup {
            memory: self.memory.join(name),
            pids: self.pids.as_ref().map(|p| p.join(name)),
            cpu: self.cpu.as_ref().map(|p| p.join(name)),
            v2: self.v2,
        }
    }

    /// Child groups, by name.
    pub fn children(&self) -> Vec<String> {
        std::fs::read_dir(&self.memory)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes every child group that has no process left (a crashed server's) and was made
    /// more than [`SWEEP_AGE`] ago: a group just made is empty until its sandbox joins it,
    /// and may be another server's on the same host (two servers' tests, or a restart
    /// overlapping the old process) — sweeping it would leave that sandbox in a group of
    /// runsc's making, unmeasured.
    pub fn sweep(&self) {
        for name in self.children() {
            let group = self.handle(&name);
            let age = std::fs::metadata(&group.memory)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok());
            if age.is_some_and(|age| age >= SWEEP_AGE) && group.is_empty() {
                group.remove();
            }
        }
    }
}

impl Cgroup {
    fn pids_dir(&self) -> &Path {
        self.pids.as_deref().unwrap_or(&self.memory)
    }

    /// The group's memory directory (v1) or its one directory (v2).
    pub fn dir(&self) -> &Path {
        &self.memory
    }

    /// The files a process's pid is written to, to join the group (one per hierarchy).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        std::iter::once(self.memory.join("cgroup.procs"))
            .chain(self.pids.iter().map(|p| p.join("cgroup.procs")))
            .chain(self.cpu.iter().map(|p| p.join("cgroup.procs")))
            .collect()
    }

    /// CPU time the group's processes have used, in nanoseconds.
    fn cpu_ns(&self) -> Option<u64> {
        if self.v2 {
            let usec = counter(&self.memory.join("cpu.stat"), "usage_usec");
            return self.memory.join("cpu.stat").exists().then_some(usec * 1000);
        }
        read_u64(&self.cpu.as_ref()?.join("cpuacct.usage"))
    }

    /// Starts a measurement: resets the memory peak (where the kernel allows it) and notes
    /// the CPU time so far.
    pub fn mark(&self) -> UsageMark {
        let peak = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        let _ = std::fs::write(self.memory.join(peak), "0");
        UsageMark {
            cpu_ns: self.cpu_ns().unwrap_or(0),
        }
    }

    /// What the group used since `mark`. On a kernel that cannot reset the memory peak the
    /// peak is the group's since it was made.
    pub fn usage_since(&self, mark: UsageMark) -> Usage {
        let peak = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        Usage {
            cpu_time_ms: self.cpu_ns().unwrap_or(0).saturating_sub(mark.cpu_ns) / 1_000_000,
            peak_memory_bytes: read_u64(&self.memory.join(peak)).unwrap_or(0),
            max_processes: read_u64(&self.pids_dir().join("pids.peak")),
        }
    }

    /// Sets the hard memory limit, with no swap beyond it.
    pub fn set_memory_max(&self, bytes: u64) -> io::Result<()> {
        let value = bytes.to_string();
        if self.v2 {
            write(&self.memory.join("memory.max"), &value)?;
            let swap = self.memory.join("memory.swap.max");
            if swap.exists() {
                write(&swap, "0")?;
            }
            return Ok(());
        }
        let limit = self.memory.join("memory.limit_in_bytes");
        let memsw = self.memory.join("memory.memsw.limit_in_bytes");
        if !memsw.exists() {
            return write(&limit, &value);
        }
        // memory+swap may never be below memory: raise it first, lower it last.
        let current = read_u64(&limit).unwrap_or(u64::MAX);
        if bytes > current {
            write(&memsw, &value)?;
            write(&limit, &value)
        } else {
            write(&limit, &value)?;
            write(&memsw, &value)
        }
    }

    /// Sets the most processes (tasks) the group may have.
    pub fn set_pids_max(&self, max: u64) -> io::Result<()> {
        write(&self.pids_dir().join("pids.max"), &max.to_string())
    }

    /// On an OOM, the kernel kills the whole group, not one process of it (v2 only; on v1
    /// the group's processes are killed one at a time).
    pub fn kill_all_on_oom(&self) -> io::Result<()> {
        if self.v2 {
            write(&self.memory.join("memory.oom.group"), "1")
        } else {
            Ok(())
        }
    }

    /// Moves process `pid` into the group.
    pub fn add(&self, pid: u32) -> io::Result<()> {
        for file in self.procs_files() {
            write(&file, &pid.to_string())?;
        }
        Ok(())
    }

    /// What the kernel counted since the group was made.
    pub fn events(&self) -> Events {
        let oom_file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        Events {
            oom_kills: counter(&self.memory.join(oom_file), "oom_kill"),
            pids_refused: counter(&self.pids_dir().join("pids.events"), "max"),
        }
    }

    /// Memory charged to the group now, in bytes.
    pub fn usage(&self) -> Option<u64> {
        memory_usage(&self.memory, self.v2)
    }

    /// Whether no process is left in the group.
    pub fn is_empty(&self) -> bool {
        self.procs_files()
            .iter()
            .all(|f| std::fs::read_to_string(f).map_or(true, |p| p.trim().is_empty()))
    }

    /// Removes the group once its processes are gone (waits up to ~1 s for them). Returns
    /// whether it is gone.
    pub fn remove(&self) -> bool {
        let mut gone = true;
        for dir in std::iter::once(&self.memory)
            .chain(&self.pids)
            .chain(&self.cpu)
        {
            let mut removed = false;
            for _ in 0..50 {
                if !dir.exists() || std::fs::remove_dir(dir).is_ok() {
                    removed = true;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            gone &= removed;
        }
        gone
    }
}

#[cfg(test)]
mod tests;
