//! The filesystem a workload's Deno process sees: a chroot holding Deno, the shared
//! libraries it links, and the runner script — no host file, no writable directory.
//!
//! Deno's permission system does not gate module loading: without this jail,
//! `import("file:///etc/passwd")` would read host files.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a jailed process runs and as whom.
#[derive(Debug, Clone)]
pub struct Jail {
    root: PathBuf,
    root_c: CString,
    uid: u32,
    gid: u32,
}

/// Paths inside the jail.
pub const DENO_IN_JAIL: &str = "/bin/deno";
pub const RUNNER_IN_JAIL: &str = "/runner.js";

fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(to);
    // Libraries are often symlinks (ld-linux's is absolute): link the file itself.
    let from = std::fs::canonicalize(from)?;
    // A hard link shares the page cache with the original: no second 100 MB read.
    std::fs::hard_link(&from, to).or_else(|_| std::fs::copy(&from, to).map(drop))
}

/// The absolute paths of the shared libraries `binary` needs, as `ldd` lists them.
fn shared_libraries(binary: &Path) -> io::Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect())
}

impl Jail {
    /// Builds (or rebuilds) the jail under `root` for the Deno binary `deno`.
    pub fn build(root: &Path, deno: &Path, runner_js: &str) -> io::Result<Jail> {
        std::fs::create_dir_all(root)?;
        link_or_copy(deno, &root.join(DENO_IN_JAIL.trim_start_matches('/')))?;
        for lib in shared_libraries(deno)? {
            let inside = root.join(lib.strip_prefix("/").unwrap_or(&lib));
            link_or_copy(&lib, &inside)?;
        }
        std::fs::write(root.join(RUNNER_IN_JAIL.trim_start_matches('/')), runner_js)?;
        let root_c = CString::new(root.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::other("the jail path contains a NUL byte"))?;
        Ok(Jail {
            root: root.to_path_buf(),
            root_c,
            uid: 65534,
            gid: 65534,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn uid(&self) -> u32 {
        self.uid
    }

    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// Confines a child between fork and exec: chroot into the jail, then drop to
    /// nobody:nogroup with no supplementary groups.
    pub fn confine(&self, cmd: &mut tokio::process::Command) {
        let root = self.root_c.clone();
        let (uid, gid) = (self.uid, self.gid);
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls on memory prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}
