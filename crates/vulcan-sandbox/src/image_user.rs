//! What an image's configuration says about its process, resolved the same way by every
//! backend that runs images (gVisor sandboxes, microVMs).

use std::path::Path;

/// The largest `/etc/passwd` read to resolve a user name.
const MAX_PASSWD: u64 = 1 << 20;

/// The process's argv: the image's entrypoint followed by `command` (or the image's cmd).
pub fn argv(entrypoint: &[String], cmd: &[String], command: Option<&[String]>) -> Vec<String> {
    let tail = command.unwrap_or(cmd);
    entrypoint.iter().chain(tail).cloned().collect()
}

/// Resolves the image's `User` (`uid[:gid]`, or a name in the image's `/etc/passwd`, read
/// inside `rootfs` without following a link out of it).
pub fn user(rootfs: &Path, spec: &str) -> Result<(u32, u32), String> {
    if spec.is_empty() {
        return Ok((0, 0));
    }
    let (name, group) = spec.split_once(':').unwrap_or((spec, ""));
    let (uid, primary_gid) = match name.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) => {
            let passwd = crate::beneath::read(rootfs, Path::new("etc/passwd"), MAX_PASSWD)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            passwd
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() > 3 && f[0] == name)
                        .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                        .flatten()
                })
                .ok_or_else(|| format!("the image's user {name:?} is not in its /etc/passwd"))?
        }
    };
    let gid = if group.is_empty() {
        primary_gid
    } else {
        group
            .parse()
            .map_err(|_| format!("the image's group {group:?} must be numeric"))?
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_from_the_image_and_never_through_a_link_out_of_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/app:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(user(dir.path(), "").unwrap(), (0, 0));
        assert_eq!(user(dir.path(), "app").unwrap(), (1000, 1001));
        assert_eq!(user(dir.path(), "5:6").unwrap(), (5, 6));
        assert!(user(dir.path(), "ghost")
            .unwrap_err()
            .contains("not in its /etc/passwd"));
        // An /etc that leads to the host's: the host's users are not the image's.
        let linked = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", linked.path().join("etc")).unwrap();
        assert!(user(linked.path(), "root").is_err());
    }

    #[test]
    fn a_command_replaces_cmd_and_keeps_the_entrypoint() {
        let (entry, cmd) = (vec!["/entry".to_owned()], vec!["default".to_owned()]);
        assert_eq!(argv(&entry, &cmd, None), ["/entry", "default"]);
        let command = ["other".to_owned()];
        assert_eq!(argv(&entry, &cmd, Some(&command)), ["/entry", "other"]);
    }
}
