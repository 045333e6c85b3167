//! For tests and benchmarks (feature `testing`): a real local OCI registry (Debian's
//! docker-registry) on a free loopback port, and real images pushed to it by
//! scripts/oci-image.sh (umoci + skopeo). Stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (scripts/setup.sh installs it)");
        let registry = Registry {
            host: format!("127.0.0.1:{port}"),
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while ureq::get(&format!("http://{}/v2/", registry.host))
            .call()
            .is_err()
        {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// Builds and pushes `name:tag` (busybox, or busybox + python3 with `flavour`).
    pub fn push(&self, name_tag: &str, flavour: &str) -> String {
        let reference = format!("{}/{name_tag}", self.host);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/oci-image.sh");
        let status = Command::new("bash")
            .arg(script)
            .arg(&reference)
            .arg(flavour)
            .status()
            .expect("run scripts/oci-image.sh");
        assert!(status.success(), "pushing {reference} failed");
        reference
    }

    /// The manifest of `name:tag` as the registry serves it, and its digest.
    pub fn manifest(&self, name: &str, tag: &str) -> (serde_json::Value, String) {
        let resp = ureq::get(&format!("http://{}/v2/{name}/manifests/{tag}", self.host))
            .set("Accept", "application/vnd.oci.image.manifest.v1+json")
            .call()
            .expect("manifest");
        let digest = resp.header("docker-content-digest").unwrap().to_owned();
        (resp.into_json().unwrap(), digest)
    }

    /// Where the registry keeps the content of `digest` on disk.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
