//! runsc's sandbox and gofer processes outlive the `runsc run --detach` that started them:
//! orphans, they go to the host's init, which reaps them when it gets to it — on some hosts
//! over a second after they died — and `runsc delete` waits until they are reaped. Made the
//! server's child subreaper, the orphans come to the server instead, which reaps them at
//! once: a pause (checkpoint, then delete) or a removal no longer waits on the host's init.
//!
//! Only runsc's own re-executed processes are reaped here (their name is `exe`: runsc runs
//! its sandbox, gofer and stubs from `/proc/self/exe`); every other child is tokio's, which
//! waits for each of its own by pid, so taking their exit status here would break it.

use std::sync::Once;
use std::time::Duration;

/// How often the reaper looks for dead runsc processes.
const LOOK_EVERY: Duration = Duration::from_millis(20);

/// Makes this process the subreaper of its descendants and reaps runsc's dead orphans from
/// now on, on a thread of its own (once per process; later calls do nothing).
pub fn start() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        // Without a list of its children (a kernel without CONFIG_PROC_CHILDREN) the server
        // could not find the orphans it adopted: it leaves them to init.
        let listed = format!("/proc/self/task/{}/children", std::process::id());
        if std::fs::metadata(&listed).is_err() {
            tracing::info!("this kernel does not list a process's children: runsc's processes are left to init to reap");
            return;
        }
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and changes only this
        // process's own attribute.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "cannot become the subreaper of runsc's processes: removing a sandbox waits for the host's init to reap them"
            );
            return;
        }
        // A thread, not a task: it must outlive any one runtime (tests make one per test).
        let spawned = std::thread::Builder::new()
            .name("runsc-reaper".into())
            .spawn(|| loop {
                reap_dead_runsc(Children::Adopted);
                std::thread::sleep(LOOK_EVERY);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the reaper of runsc's processes");
        }
    });
}

/// Whose children to look at.
#[derive(Clone, Copy)]
pub enum Children {
    /// The orphans this process adopted: the kernel gives them to its main thread.
    Adopted,
    /// Those of every thread.
    All,
}

/// Reaps every child of this process (of `whose`) that is a dead runsc process; answers
/// how many.
pub fn reap_dead_runsc(whose: Children) -> usize {
    let mut reaped = 0;
    for pid in children(whose) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if is_dead_runsc(&stat) {
            // SAFETY: waits for one given child, without blocking; its status is dropped.
            if unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == pid {
                reaped += 1;
            }
        }
    }
    reaped
}

/// Whether a `/proc/<pid>/stat` line is that of a dead (zombie) runsc process: named
/// `exe`, state `Z`.
fn is_dead_runsc(stat: &str) -> bool {
    let Some((head, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let name = head.split_once('(').map_or("", |(_, n)| n);
    name == "exe" && rest.split_whitespace().next() == Some("Z")
}

/// This process's children: its main thread's, or every thread's.
fn children(whose: Children) -> Vec<i32> {
    let tasks: Vec<std::path::PathBuf> = match whose {
        Children::Adopted => vec![format!("/proc/self/task/{}", std::process::id()).into()],
        Children::All => std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
            .map(|t| t.path())
            .collect(),
    };
    let mut pids = Vec::new();
    for task in tasks {
        let listed = std::fs::read_to_string(task.join("children")).unwrap_or_default();
        pids.extend(
            listed
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dead_runsc_process_is_taken() {
        assert!(is_dead_runsc("4242 (exe) Z 1 4242 4242 0 -1 4194560"));
        assert!(!is_dead_runsc("4242 (exe) S 1 4242 4242 0 -1 4194560"));
        assert!(!is_dead_runsc("4243 (deno) Z 1 4243 4243 0 -1 4194560"));
        // A name may hold spaces and parentheses: the state follows the last ')'.
        assert!(!is_dead_runsc("4244 (a) Z (exe) S 1 4244"));
        assert!(!is_dead_runsc(""));
    }

    #[test]
    fn a_dead_child_named_exe_is_reaped_and_others_are_left() {
        // A child that re-executes itself as `exe`, as runsc does, and exits at once.
        let child = std::process::Command::new("/proc/self/exe")
            .arg("--help")
            .stdout(std::process::Stdio::null())
            .spawn();
        let Ok(mut child) = child else { return };
        let pid = child.id() as i32;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if is_dead_runsc(&stat) || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(reap_dead_runsc(Children::All), 1, "the dead `exe` child");
        assert!(std::fs::metadata(format!("/proc/{pid}")).is_err(), "gone");
        // Its exit status went to the reaper: the owner's wait finds no child.
        assert!(child.wait().is_err());
        // A child of another name is left to its owner.
        let mut other = std::process::Command::new("true").spawn().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(reap_dead_runsc(Children::All), 0);
        assert!(other.wait().unwrap().success());
    }
}
