//! A server whose sandboxes are cleaned up after it, whatever the test did.

use std::time::Duration;

use serde_json::json;

use super::{eventually, Server};

/// A server with its sandboxes: dropped (the test ended, or failed), it is stopped as an
/// operator stops it (SIGTERM: it ends what it holds), and whatever is still there is
/// removed (a container, a mount, a cgroup), so that no test leaves a sandbox behind.
pub struct Host {
    pub server: Server,
}

impl std::ops::Deref for Host {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

impl std::ops::DerefMut for Host {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.server
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.server.stop(Duration::from_secs(30));
        sweep(&self.server.data_dir);
    }
}

/// Removes what sandboxes under `data_dir` left: containers, mounts, cgroups.
pub fn sweep(data_dir: &std::path::Path) {
    let dir = data_dir.join("gvisor/sandboxes");
    let runsc = |args: &[&str]| {
        std::process::Command::new("runsc")
            .arg("--root")
            .arg(dir.join("state"))
            .args(args)
            .output()
    };
    if let Ok(out) = runsc(&["list", "--quiet"]) {
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = runsc(&["kill", "--all", id, "KILL"]);
            let _ = runsc(&["delete", "--force", id]);
        }
    }
    let prefix = data_dir.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut ours: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in ours {
        let _ = std::process::Command::new("umount")
            .args(["-l", mount])
            .status();
    }
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let id = entry.file_name();
        for controller in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(controller.path().join("vulcan-gvisor").join(&id));
        }
    }
}

/// Runs hostile `script` in sandbox `id`: afterwards the sandbox answers (and the script
/// failed), or it ended with `limit_named` in its reason.
pub fn held_to(server: &Server, id: &str, script: &str, limit_named: &str) {
    let (status, answer) = server.post(
        &format!("/v1/sandboxes/{id}/processes"),
        &json!({"cmd": "sh", "args": ["-c", script], "timeout_s": 30}),
    );
    assert!(status == 200 || status == 409, "{status} {answer}");
    let outcome = eventually(
        Duration::from_secs(30),
        "the sandbox to answer or end",
        || {
            let (_, s) = server.get(&format!("/v1/sandboxes/{id}"));
            if s["state"] == "ended" {
                return Some(Err(s));
            }
            let (status, p) = server.post(
                &format!("/v1/sandboxes/{id}/processes"),
                &json!({"cmd": "echo", "args": ["ok"]}),
            );
            (status == 200 && p["stdout"] == "ok\n").then_some(Ok(answer.clone()))
        },
    );
    match outcome {
        Ok(answer) => assert_ne!(
            answer["exit_code"], 0,
            "the hostile process failed: {answer}"
        ),
        Err(ended) => {
            let reason = ended["end_reason"].as_str().unwrap_or_default();
            assert!(reason.contains(limit_named), "{script}: {ended}");
        }
    }
}
