//! Names the commit the binary was built from, for `vulcan --version`: `git` when the
//! source is a checkout, `VULCAN_COMMIT` when a packager sets it, `unknown` otherwise.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=VULCAN_COMMIT");
    let commit = std::env::var("VULCAN_COMMIT").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .filter(|c| !c.is_empty())
    });
    // A new commit changes HEAD (or the branch it points at): rebuild to name it.
    if let Ok(out) = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !dir.is_empty() {
            println!("cargo:rerun-if-changed={dir}/HEAD");
            println!("cargo:rerun-if-changed={dir}/refs/heads");
        }
    }
    let commit = commit.unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=VULCAN_COMMIT={commit}");
}
