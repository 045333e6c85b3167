//! The `runsc` command line: how a sandbox is run, and how leftovers are removed.

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// How `runsc` is invoked.
#[derive(Debug, Clone)]
pub struct Runsc {
    pub bin: PathBuf,
    /// runsc's state directory (`--root`): only Vulcan's containers live there.
    pub state_dir: PathBuf,
    /// `ptrace` (works everywhere), `systrap` or `kvm`.
    pub platform: String,
    /// Whether the host changes a sandbox's root while it runs (a long-lived sandbox's
    /// files written from the host): gVisor then revalidates what it cached.
    pub shared_root: bool,
}

impl Runsc {
    /// runsc with its global flags: no network but loopback.
    fn base(&self) -> std::process::Command {
        self.with_network("none")
    }

    fn with_network(&self, network: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.bin);
        cmd.arg("--root")
            .arg(&self.state_dir)
            .arg(format!("--platform={}", self.platform))
            .arg(format!("--network={network}"));
        if self.shared_root {
            cmd.arg("--file-access=shared");
        }
        cmd
    }

    /// [`Runsc::run`] for a sandbox with a network: gVisor's own network stack on the
    /// interface of the namespace the bundle names (see [`sandbox_network`]).
    pub fn run_networked(&self, bundle: &Path, id: &str) -> tokio::process::Command {
        let mut cmd = self.with_network("sandbox");
        cmd.arg("run").arg("--bundle").arg(bundle).arg(id);
        sandbox_network(&mut cmd);
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// `runsc --version`'s first line, or why runsc cannot run.
    pub fn version(&self) -> Result<String, String> {
        let out = std::process::Command::new(&self.bin)
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .filter(|_| out.status.success())
            .map(|l| l.trim().to_owned())
            .ok_or_else(|| format!("{} --version failed", self.bin.display()))
    }

    /// The command that creates, starts and waits for container `id` from `bundle`,
    /// with its stdio being the container's, and deletes it when it exits.
    pub fn run(&self, bundle: &Path, id: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::from(self.base());
        cmd.arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// The command that creates and starts container `id` from `bundle` and returns once
    /// it runs (a warm instance's sandbox). The sandbox keeps the stdio it is given, so
    /// its errors go to `errors` (a file), never to a pipe someone waits on.
    /// With `networked`, the sandbox has gVisor's network stack on the interface of the
    /// namespace the bundle names (as [`Runsc::run_networked`]).
    pub fn detached(
        &self,
        bundle: &Path,
        id: &str,
        errors: std::fs::File,
        networked: bool,
    ) -> std::process::Command {
        let mut cmd = if networked {
            let mut cmd = self.with_network("sandbox");
            sandbox_network(&mut cmd);
            cmd
        } else {
            self.base()
        };
        cmd.arg("run")
            .arg("--detach")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errors);
        cmd
    }

    /// The command that saves container `id` (memory and all) into directory `image` and
    /// stops it.
    pub fn checkpoint(&self, id: &str, image: &Path) -> std::process::Command {
        let mut cmd = self.base();
        cmd.arg("checkpoint")
            .arg(format!("--image-path={}", image.display()))
            .arg(id)
            .stdin(Stdio::null());
        cmd
    }

    /// The command that starts container `id` again from `bundle` and the state saved in
    /// `image` by [`Runsc::checkpoint`], returning once it runs (as [`Runsc::detached`]).
    pub fn restore(
        &self,
        bundle: &Path,
        id: &str,
        image: &Path,
        errors: std::fs::File,
    ) -> std::process::Command {
        let mut cmd = self.base();
        cmd.arg("restore")
            .arg("--detach")
            .arg(format!("--image-path={}", image.display()))
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errors);
        cmd
    }

    /// The command that freezes container `id` (`pause`) where it is, in memory, or lets
    /// it go on (`resume`).
    pub fn freeze(&self, id: &str, freeze: bool) -> std::process::Command {
        let mut cmd = self.base();
        cmd.arg(if freeze { "pause" } else { "resume" })
            .arg(id)
            .stdin(Stdio::null());
        cmd
    }

    /// The command that removes a stopped container `id`'s state.
    pub fn delete(&self, id: &str) -> std::process::Command {
        let mut cmd = self.base();
        cmd.args(["delete", id]).stdin(Stdio::null());
        cmd
    }

    /// The command that prints container `id`'s state as JSON.
    pub fn state(&self, id: &str) -> std::process::Command {
        let mut cmd = self.base();
        cmd.arg("state").arg(id).stdin(Stdio::null());
        cmd
    }

    /// The command that runs `process` (an OCI process spec) in the running container
    /// `id` and waits for it, with its stdio being the process's.
    pub fn exec(&self, id: &str, process: &Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::from(self.base());
        cmd.arg("exec")
            .arg("--process")
            .arg(process)
            .arg(id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// [`Runsc::exec`] that writes the process's pid inside the sandbox to `pid_file`.
    pub fn exec_noting_pid(
        &self,
        id: &str,
        process: &Path,
        pid_file: &Path,
    ) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::from(self.base());
        cmd.arg("exec")
            .arg("--process")
            .arg(process)
            .arg("--internal-pid-file")
            .arg(pid_file)
            .arg(id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// The command that sends `signal` to process `pid` (as the sandbox numbers it) of
    /// container `id`.
    pub fn signal(&self, id: &str, pid: u32, signal: i32) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::from(self.base());
        cmd.arg("kill")
            .arg("--pid")
            .arg(pid.to_string())
            .arg(id)
            .arg(signal.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    /// Whether runsc still has state for container `id`.
    pub fn exists(&self, id: &str) -> bool {
        std::fs::read_dir(&self.state_dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().contains(id))
        })
    }

    /// Kills and deletes container `id` (a no-op if it is gone). A delete that fails is
    /// logged: the container may be left in `runsc list`.
    pub fn destroy(&self, id: &str) {
        let kill = || {
            let mut kill = self.base();
            kill.args(["kill", "--all", id, "KILL"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        // A container that already exited cannot be signalled: not worth a line. A frozen
        // one cannot either (nor be deleted): it is thawed first.
        if !kill() {
            let thawed = self
                .freeze(id, false)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if thawed {
                kill();
            }
        }
        let mut delete = self.base();
        delete.args(["delete", "--force", id]).stdin(Stdio::null());
        match delete.output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => tracing::warn!(
                container = id,
                status = %out.status,
                stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                "runsc delete failed"
            ),
            Err(e) => tracing::warn!(container = id, error = %e, "cannot run runsc delete"),
        }
    }

    /// Ids of the containers in runsc's state directory; a failure is logged and counts as
    /// none.
    pub fn list(&self) -> Vec<String> {
        let mut cmd = self.base();
        cmd.args(["list", "--quiet"]);
        match cmd.output() {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            Ok(out) => {
                tracing::warn!(
                    status = %out.status,
                    stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                    "runsc list failed"
                );
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot run runsc list");
                Vec::new()
            }
        }
    }
}

/// Lets runsc set up a sandbox's network in the namespace its bundle names.
///
/// runsc (Debian's, 2022) refuses to set up a network when
/// `/proc/sys/net/core/rmem_default` exists, its test for "this is the host's namespace";
/// kernels since 6.x have that file in every namespace. So runsc runs in a mount namespace
/// of its own where `/proc/sys/net` is an empty tmpfs (runsc reads nothing else there; the
/// sandbox has its own /proc).
fn sandbox_network(cmd: &mut std::process::Command) {
    // SAFETY: between fork and exec the closure only makes system calls (unshare, mount)
    // on constant, NUL-terminated arguments; it allocates nothing.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let none = c"none".as_ptr();
            let root = c"/".as_ptr();
            if libc::mount(
                none,
                root,
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            let target = c"/proc/sys/net".as_ptr();
            let fstype = c"tmpfs".as_ptr();
            let options = c"size=4k,mode=555".as_ptr();
            if libc::mount(none, target, fstype, libc::MS_RDONLY, options.cast()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
