//! Reading a file a sandbox wrote, from the host, without ever leaving the sandbox's
//! directory: the path is resolved by the kernel beneath that directory with no symbolic
//! link followed at any step (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), so a
//! link the sandbox planted (`out -> /etc` or `out -> /proc/self/cwd/...`) is refused, not
//! followed to a file of the host's.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Opens `relative` (a regular file) for reading, beneath `root`.
pub fn open(root: &Path, relative: &Path) -> io::Result<File> {
    let dir = File::open(root)?;
    let path = std::ffi::CString::new(relative.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    // SAFETY: open_how is plain integers; all zeroes is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 reads the path and the open_how struct it is given (with its size)
    // and returns a new descriptor or -1; nothing else is touched.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just opened and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd as i32) };
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", relative.display()),
        ));
    }
    Ok(file)
}

/// The whole of `relative` beneath `root`, at most `max` bytes.
pub fn read(root: &Path, relative: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open(root, relative)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {max} bytes", relative.display()),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_beneath_is_read_and_no_link_is_followed_out_or_in() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("out")).unwrap();
        std::fs::write(root.join("out/main"), b"program").unwrap();
        std::fs::write(dir.path().join("host-file"), b"host").unwrap();
        assert_eq!(read(&root, Path::new("out/main"), 100).unwrap(), b"program");
        // A link to the host's file, a link to a directory (even one inside), `..`.
        std::os::unix::fs::symlink(dir.path().join("host-file"), root.join("to-host")).unwrap();
        std::os::unix::fs::symlink(root.join("out"), root.join("linked-out")).unwrap();
        std::os::unix::fs::symlink("/proc/self/cwd", root.join("cwd")).unwrap();
        for refused in [
            "to-host",
            "linked-out/main",
            "../host-file",
            "cwd/x",
            "/etc/passwd",
        ] {
            assert!(read(&root, Path::new(refused), 100).is_err(), "{refused}");
        }
        assert!(read(&root, Path::new("out"), 100).is_err(), "a directory");
        assert!(
            read(&root, Path::new("out/main"), 3).is_err(),
            "over the bound"
        );
    }
}
