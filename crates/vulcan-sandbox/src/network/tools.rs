//! The tools a network is made with (`ip`, `tc`, `nft`), and the low priority of work done
//! off the sandboxes' path.

/// Work off every sandbox's path (making slots ahead, removing them) on this thread, and
/// the tools it runs (a child keeps its thread's priority), at low priority while this
/// lives: it does not take the CPU from the sandboxes running beside it. Public for the
/// backends' own work made ahead (a gVisor sandbox booted before its workload).
pub struct Behind;

impl Behind {
    pub fn enter() -> Behind {
        // SAFETY: setpriority on the calling thread (who 0) only.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
        Behind
    }
}

impl Drop for Behind {
    fn drop(&mut self) {
        // The thread is the runtime's, for other work next: its priority back (root may).
        // SAFETY: as in `new`.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 0) };
    }
}

/// Runs `tool args` with `input` on stdin; the error is its stderr.
pub(super) fn run(tool: &str, args: &[&str], input: Option<&str>) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(tool)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {tool}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("writing to {tool}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for {tool}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
