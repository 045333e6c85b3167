//! A sandbox's own disk: a sparse file of its size, formatted ext4, so that a disk filler
//! meets ENOSPC at that size and nothing it writes reaches the host's disk beyond it.

use std::path::Path;
use std::process::{Command, Stdio};

/// Makes `image`, `mb` MiB of empty ext4 (sparse: it takes what is written). Blocking.
pub fn make_ext4(image: &Path, mb: u32) -> Result<(), String> {
    // No journal: the disk lives no longer than its sandbox, and the space is the user's.
    mkfs(image, mb, &["-O", "^has_journal"])
}

/// Makes a volume's disk `image`: `mb` MiB of ext4 with a journal (its data outlives every
/// sandbox, and a crash of one), its root open to every user of a sandbox and sticky (as
/// `/tmp`: what each writes is its own). Blocking.
pub fn make_volume(image: &Path, mb: u32) -> Result<(), String> {
    mkfs(image, mb, &[])?;
    run(
        Command::new("debugfs")
            .args(["-w", "-R", "set_inode_field / mode 041777"])
            .arg(image),
        "debugfs (Debian's e2fsprogs)",
    )
}

fn mkfs(image: &Path, mb: u32, features: &[&str]) -> Result<(), String> {
    let file = std::fs::File::create(image)
        .map_err(|e| format!("cannot create {}: {e}", image.display()))?;
    file.set_len(u64::from(mb) * 1024 * 1024)
        .map_err(|e| format!("cannot size {}: {e}", image.display()))?;
    drop(file);
    run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .args(features)
            .args(["-E", "lazy_itable_init=1"])
            .arg(image),
        "mkfs.ext4 (Debian's e2fsprogs)",
    )
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_volume_is_journalled_ext4_whose_root_every_user_may_write() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("volume.ext4");
        super::make_volume(&image, 32).unwrap();
        let out = std::process::Command::new("debugfs")
            .args(["-R", "stat /"])
            .arg(&image)
            .output()
            .unwrap();
        let stat = String::from_utf8_lossy(&out.stdout);
        assert!(stat.contains("Mode:  01777"), "{stat}");
        let out = std::process::Command::new("dumpe2fs")
            .args(["-h"])
            .arg(&image)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("has_journal"));
    }

    #[test]
    fn a_disk_is_sparse_ext4_of_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        super::make_ext4(&image, 64).unwrap();
        let meta = std::fs::metadata(&image).unwrap();
        assert_eq!(meta.len(), 64 << 20);
        let allocated = std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
        assert!(allocated < 16 << 20, "{allocated} bytes allocated");
        // ext4's magic number, at 1080.
        let bytes = std::fs::read(&image).unwrap();
        assert_eq!(&bytes[1080..1082], &[0x53, 0xef]);
    }
}
