//! Warm instances of deployed oci functions: a sandbox started ahead for the function's
//! image, held open by a tiny init ([`hold_program`]), into which each invocation's
//! process is executed with `runsc exec` (about a fifth of the cost of a `runsc run`).
//!
//! An instance belongs to one tenant's function version (the pool's key says so); it is
//! destroyed when its invocation timed out, was killed, ran out of memory or hit the
//! process limit, or when the sandbox itself is gone, and when it has been idle too long.
//! What the process leaves in `/tmp` or `/work` stays for the next invocation.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use vulcan_sandbox::cgroup::{Cgroup, Events};

use crate::image::catalog::RootLease;
use crate::runsc::Runsc;
use crate::sandbox_cgroups::CgroupBase;

/// The init of a warm sandbox: a static x86-64 ELF whose only code is `pause(2)` in a
/// loop. It needs nothing from the image, so any image can be held open.
pub fn hold_program() -> Vec<u8> {
    // mov eax, 34 (pause); syscall; jmp back to the mov.
    const CODE: [u8; 9] = [0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7];
    const BASE: u64 = 0x40_0000;
    const HEADERS: u64 = 64 + 56;
    let size = HEADERS + CODE.len() as u64;
    let mut elf = Vec::with_capacity(size as usize);
    // The ELF header: 64-bit, little-endian, an executable for x86-64.
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    elf.extend_from_slice(&(BASE + HEADERS).to_le_bytes()); // entry: the code
    elf.extend_from_slice(&64u64.to_le_bytes()); // program headers follow this one
    elf.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    for half in [64u16, 56, 1, 0, 0, 0] {
        // header size, program header size and count, section header size, count, names
        elf.extend_from_slice(&half.to_le_bytes());
    }
    // One loadable, readable and executable segment: the whole file.
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    for word in [0, BASE, BASE, size, size, 0x1000u64] {
        // offset, virtual and physical address, size in the file and in memory, alignment
        elf.extend_from_slice(&word.to_le_bytes());
    }
    elf.extend_from_slice(&CODE);
    elf
}

/// Writes [`hold_program`] to `path` (executable, read-only).
pub fn install_hold(path: &Path) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, hold_program())?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o555))?;
    std::fs::rename(tmp, path)
}

/// Writes out every file under `dir` and drops its pages from the page cache.
fn drop_cached(dir: &Path) {
    use std::os::fd::AsRawFd;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            drop_cached(&path);
            continue;
        }
        if let Ok(file) = std::fs::File::open(&path) {
            let _ = file.sync_data();
            // SAFETY: posix_fadvise only advises the kernel about this open descriptor.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

/// How long starting a sandbox may take.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// One warm sandbox. Dropping it destroys the sandbox (off the async runtime).
pub struct Sandbox {
    pub id: String,
    runsc: Runsc,
    /// The sandbox's process on the host: alive while the sandbox is.
    pid: i32,
    bundle: PathBuf,
    pub group: Cgroup,
    cgroups: CgroupBase,
    /// Keeps the image's root on disk for as long as the sandbox uses it (a pod, see
    /// [`crate::pods`], has a root of its own).
    _image: Option<RootLease>,
    destroyed: bool,
}

impl Sandbox {
    /// Starts sandbox `id` from `bundle` (whose `config.json` runs the hold program and
    /// whose `process.json` is the invocation's process), in `group`; `networked`: with
    /// gVisor's network stack on the interface of the namespace the bundle names.
    pub async fn start(
        runsc: Runsc,
        id: String,
        bundle: PathBuf,
        group: Cgroup,
        cgroups: CgroupBase,
        image: Option<RootLease>,
        networked: bool,
    ) -> Result<Sandbox, String> {
        let mut sandbox = Sandbox {
            id,
            runsc,
            pid: 0,
            bundle,
            group,
            cgroups,
            _image: image,
            destroyed: false,
        };
        let log = sandbox.bundle.join("runsc.log");
        let errors = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let cmd = sandbox
            .runsc
            .detached(&sandbox.bundle, &sandbox.id, errors, networked);
        sandbox.launch(cmd, &log).await?;
        Ok(sandbox)
    }

    /// Sandbox `id`, saved by [`Sandbox::checkpoint`] before the server last stopped, taken
    /// back: it runs again with [`Sandbox::restore`].
    pub fn saved(
        runsc: Runsc,
        id: String,
        bundle: PathBuf,
        group: Cgroup,
        cgroups: CgroupBase,
        image: Option<RootLease>,
    ) -> Sandbox {
        Sandbox {
            id,
            runsc,
            pid: 0,
            bundle,
            group,
            cgroups,
            _image: image,
            destroyed: false,
        }
    }

    /// Lets go of the sandbox without destroying it (it is saved, to be taken back by the
    /// next server).
    pub fn release(mut self) {
        self.destroyed = true;
    }

    /// Runs `cmd` (which starts the sandbox and returns), then notes the sandbox's pid;
    /// a failure is runsc's last word in `log`.
    async fn launch(&mut self, cmd: std::process::Command, log: &Path) -> Result<(), String> {
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let status = tokio::time::timeout(START_TIMEOUT, cmd.status())
            .await
            .map_err(|_| format!("runsc did not start the sandbox within {START_TIMEOUT:?}"))?
            .map_err(|e| format!("cannot start runsc: {e}"))?;
        if !status.success() {
            let said = std::fs::read_to_string(log).unwrap_or_default();
            let last = said
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(format!(
                "runsc could not start the sandbox ({status}): {last}"
            ));
        }
        let mut state = tokio::process::Command::from(self.runsc.state(&self.id));
        let out = state
            .output()
            .await
            .map_err(|e| format!("cannot run runsc state: {e}"))?;
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        self.pid = state["pid"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                format!(
                    "runsc state did not give the sandbox's pid: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            })?;
        Ok(())
    }

    /// Saves the sandbox (its memory, its processes) into directory `image` and stops it:
    /// it holds no memory until [`Sandbox::restore`].
    pub async fn checkpoint(&mut self, image: &Path) -> Result<(), String> {
        // The last save (the sandbox was restored from it) makes way for this one.
        let _ = std::fs::remove_dir_all(image);
        std::fs::create_dir_all(image)
            .map_err(|e| format!("cannot create {}: {e}", image.display()))?;
        let out = tokio::process::Command::from(self.runsc.checkpoint(&self.id, image))
            .output()
            .await
            .map_err(|e| format!("cannot run runsc checkpoint: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "runsc could not save the sandbox: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        self.pid = 0;
        // The stopped container's state goes: the restore makes it again.
        let _ = tokio::process::Command::from(self.runsc.delete(&self.id))
            .output()
            .await;
        // The image was written from inside the sandbox's cgroup: its pages in the page
        // cache count against the sandbox until the kernel reclaims them. Written out and
        // dropped now, a paused sandbox holds no memory.
        let image = image.to_path_buf();
        let _ = tokio::task::spawn_blocking(move || drop_cached(&image)).await;
        Ok(())
    }

    /// Starts the sandbox again from what [`Sandbox::checkpoint`] saved in `image`.
    pub async fn restore(&mut self, image: &Path) -> Result<(), String> {
        let log = self.bundle.join("runsc.log");
        let errors = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let cmd = self.runsc.restore(&self.bundle, &self.id, image, errors);
        self.launch(cmd, &log).await
    }

    /// Whether the sandbox still runs.
    pub fn alive(&self) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        self.pid > 0 && unsafe { libc::kill(self.pid, 0) } == 0
    }

    /// Kills the sandbox's host process at once: everything in it stops (its removal,
    /// [`Sandbox::destroy`], may follow later).
    pub fn kill_now(&self) {
        if self.pid > 0 {
            // SAFETY: kill only sends a signal to the sandbox's own process.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }

    /// The command that runs one invocation in the sandbox, its stdio piped.
    pub fn exec(&self) -> tokio::process::Command {
        self.runsc.exec(&self.id, &self.bundle.join("process.json"))
    }

    /// The cgroup's counters now.
    pub fn events(&self) -> Events {
        self.group.events()
    }
}

impl Sandbox {
    /// Kills and removes the sandbox now (blocking).
    pub fn destroy(&mut self) {
        self.runsc.destroy(&self.id);
        let _ = std::fs::remove_dir_all(&self.bundle);
        self.cgroups.remove(&self.id);
        self.destroyed = true;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.destroyed {
            return;
        }
        let (runsc, id, bundle, cgroups) = (
            self.runsc.clone(),
            self.id.clone(),
            self.bundle.clone(),
            self.cgroups.clone(),
        );
        std::thread::spawn(move || {
            runsc.destroy(&id);
            let _ = std::fs::remove_dir_all(bundle);
            cgroups.remove(&id);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hold_program_is_a_static_elf_that_pauses() {
        let elf = hold_program();
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!(elf.len(), 64 + 56 + 9);
        let entry = u64::from_le_bytes(elf[24..32].try_into().unwrap());
        assert_eq!(entry, 0x40_0000 + 120, "the entry point is the code");
        assert_eq!(&elf[120..127], &[0xb8, 0x22, 0, 0, 0, 0x0f, 0x05]);
    }

    #[test]
    fn the_hold_program_runs_and_waits_for_a_signal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hold");
        install_hold(&path).unwrap();
        let mut child = std::process::Command::new(&path).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(child.try_wait().unwrap().is_none(), "it is still paused");
        child.kill().unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
