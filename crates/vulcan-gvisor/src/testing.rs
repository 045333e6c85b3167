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

    /// Pushes `name:tag` made of `layers` (each a tar stream, gzip-compressed here, base
    /// first) with `config` as the image configuration's `config`: for images no tool
    /// would build (a hostile layer). Returns the reference.
    pub fn push_layers(
        &self,
        name_tag: &str,
        layers: &[Vec<u8>],
        config: serde_json::Value,
    ) -> String {
        use sha2::Digest as _;
        use std::io::Write as _;
        let (name, tag) = name_tag.split_once(':').expect("name:tag");
        let digest = |bytes: &[u8]| format!("sha256:{:x}", sha2::Sha256::digest(bytes));
        let mut described = Vec::new();
        let mut diff_ids = Vec::new();
        for tar in layers {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(tar).unwrap();
            let gz = gz.finish().unwrap();
            diff_ids.push(digest(tar));
            described.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": self.put_blob(name, &gz),
                "size": gz.len(),
            }));
        }
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux", "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        })
        .to_string();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": self.put_blob(name, config.as_bytes()), "size": config.len()},
            "layers": described,
        });
        ureq::put(&format!("http://{}/v2/{name}/manifests/{tag}", self.host))
            .set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .send_string(&manifest.to_string())
            .expect("put the manifest");
        format!("{}/{name_tag}", self.host)
    }

    /// Uploads a blob (one monolithic PUT) and returns its digest.
    fn put_blob(&self, name: &str, bytes: &[u8]) -> String {
        use sha2::Digest as _;
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(bytes));
        let started = ureq::post(&format!("http://{}/v2/{name}/blobs/uploads/", self.host))
            .call()
            .expect("start an upload");
        let location = started
            .header("location")
            .expect("an upload location")
            .to_owned();
        let url = if location.starts_with("http") {
            location
        } else {
            format!("http://{}{location}", self.host)
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        ureq::put(&format!("{url}{sep}digest={digest}"))
            .set("Content-Type", "application/octet-stream")
            .send_bytes(bytes)
            .expect("upload a blob");
        digest
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
