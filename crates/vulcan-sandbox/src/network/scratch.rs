//! The namespace a VM booted to be snapshotted attaches its NIC to.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use super::tools::run;
use super::TAP;

/// A namespace holding only an unconnected tap named [`TAP`]: what a VM that is booted to be
/// snapshotted attaches its NIC to, so that the VMs restored from it (each on its own
/// sandbox's tap) have the NIC too. Nothing reaches anything through it. Removed when
/// dropped; one a dead server left is removed at the next [`Egress::start`].
pub struct ScratchTap {
    name: String,
}

/// Scratch namespaces' names start with this, then the server's process id.
const SCRATCH: &str = "vulcan-scratch-";

impl ScratchTap {
    pub fn new() -> Result<ScratchTap, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{SCRATCH}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name], None)?;
        let tap = ScratchTap { name };
        run(
            "ip",
            &["-n", &tap.name, "tuntap", "add", "dev", TAP, "mode", "tap"],
            None,
        )?;
        Ok(tap)
    }

    /// The namespace's path, for a VMM to join.
    pub fn namespace_path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }
}

impl Drop for ScratchTap {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name], None);
    }
}

/// Removes the scratch namespaces of servers that are gone.
pub(super) fn remove_dead_scratch() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(SCRATCH)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = run("ip", &["netns", "del", &name], None);
        }
    }
}
