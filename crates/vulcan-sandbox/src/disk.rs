//! A sandbox's own disk: a sparse file of its size, formatted ext4, so that a disk filler
//! meets ENOSPC at that size and nothing it writes reaches the host's disk beyond it.

use std::path::Path;
use std::process::{Command, Stdio};

/// Makes `image`, `mb` MiB of empty ext4 (sparse: it takes what is written). Blocking.
pub fn make_ext4(image: &Path, mb: u32) -> Result<(), String> {
    let file = std::fs::File::create(image)
        .map_err(|e| format!("cannot create {}: {e}", image.display()))?;
    file.set_len(u64::from(mb) * 1024 * 1024)
        .map_err(|e| format!("cannot size {}: {e}", image.display()))?;
    drop(file);
    // No journal: the disk lives no longer than its sandbox, and the space is the user's.
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-m", "0", "-O", "^has_journal"])
        .args(["-E", "lazy_itable_init=1"])
        .arg(image)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run mkfs.ext4 (Debian's e2fsprogs): {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "mkfs.ext4 {} failed ({}): {}",
        image.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

#[cfg(test)]
mod tests {
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
