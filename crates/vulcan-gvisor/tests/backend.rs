//! The gvisor backend driven as a library: a real local registry, a real image pushed
//! to it, the real image catalog over a real SQLite index, real runsc sandboxes, and a
//! recording sink in place of the engine. The HTTP tests in `crates/vulcan/tests/gvisor.rs`
//! are the acceptance tests; these pin the backend's own contract.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vulcan_domain::testing::{run, spec, RecordingSink};
use vulcan_domain::{
    Backend, Invocation, Isolation, LogStream, Preparation, Runtime, WorkloadSpec,
};
use vulcan_gvisor::image::{RegistryClient, RegistryOptions};
use vulcan_gvisor::testing::Registry;
use vulcan_gvisor::{GvisorBackend, GvisorConfig, ImageStore};
use vulcan_store::SqliteStore;

/// A backend of its own under `dir`, pulling from `registry` over plain HTTP.
async fn backend(registry: &Registry, dir: &Path) -> GvisorBackend {
    let client = RegistryClient::new(RegistryOptions {
        insecure: vec![registry.host.clone()],
        allowed: vec![registry.host.clone()],
        ..RegistryOptions::default()
    });
    let index = SqliteStore::open(dir.join("vulcan.db")).expect("a SQLite store");
    let images = ImageStore::open(
        dir.join("images"),
        client,
        512 * 1024 * 1024,
        Arc::new(index),
        "node-1".into(),
    )
    .await
    .expect("an image store");
    let backend = GvisorBackend::start(
        GvisorConfig::new(Some("runsc".into()), dir.join("gvisor")),
        images,
    );
    let available = backend.availability();
    assert!(available.available, "gvisor unavailable: {available:?}");
    backend
}

fn shell(id: &str, image: &str, script: &str) -> WorkloadSpec {
    let mut s = spec(id, Runtime::Oci, Isolation::Gvisor, "");
    s.run.code = None;
    s.run.image = Some(image.to_owned());
    s.run.command = Some(vec!["sh".into(), "-c".into(), script.into()]);
    s
}

/// Containers in runsc's state and bundle directories the backend has under `dir`.
fn left_behind(dir: &Path) -> (String, Vec<std::ffi::OsString>) {
    let out = std::process::Command::new("runsc")
        .arg("--root")
        .arg(dir.join("gvisor/state"))
        .args(["list", "--quiet"])
        .output()
        .expect("runsc list");
    let bundles = std::fs::read_dir(dir.join("gvisor/bundles"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        bundles,
    )
}

/// The sandboxes of this process (`warm-<pid>-<n>`) that have a cgroup left in any
/// hierarchy (cgroup v1 or v2).
fn warm_cgroups() -> std::collections::BTreeSet<String> {
    let prefix = format!("warm-{}-", std::process::id());
    let top = std::fs::read_dir("/sys/fs/cgroup").expect("/sys/fs/cgroup");
    let parents = top
        .flatten()
        .map(|h| h.path().join("vulcan-gvisor"))
        .chain([Path::new("/sys/fs/cgroup/vulcan-gvisor").to_path_buf()]);
    parents
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flat_map(|entries| entries.flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

#[tokio::test]
async fn a_program_runs_from_a_pulled_image_its_streams_apart_and_nothing_is_left() {
    let registry = Registry::start();
    let image = registry.push("busybox:lib", "busybox");
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = backend(&registry, dir.path()).await;

    let (result, sink) = run(
        &backend,
        shell("g1", &image, "echo out; echo err >&2; echo more; exit 3"),
    )
    .await;
    assert_eq!(result.exit_code, Some(3), "{result:?}");
    assert_eq!(result.output, "out\nmore\n");
    assert!(result.error.is_some(), "a non-zero exit fails the run");
    assert_eq!(sink.stream(LogStream::Stdout), ["out", "more"]);
    assert_eq!(sink.stream(LogStream::Stderr), ["err"]);
    let backend_lines = sink.stream(LogStream::Backend).join("\n");
    assert!(
        backend_lines.contains(&image),
        "the implicit pull is in the log: {backend_lines}"
    );
    assert_eq!(sink.preparations(), [Preparation::Boot]);
    assert_eq!(left_behind(dir.path()), (String::new(), Vec::new()));

    // The host's files are not the sandbox's: the image has no /etc/hostname of the host.
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let (result, _) = run(&backend, shell("g2", &image, "cat /etc/hostname; uname -r")).await;
    assert!(
        host.trim().is_empty() || !result.output.contains(host.trim()),
        "the host's hostname file leaked in: {result:?}"
    );
}

/// Waits until `check` holds, or fails saying `what`.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn dropping_a_run_destroys_its_sandbox() {
    let registry = Registry::start();
    let image = registry.push("busybox:drop", "busybox");
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = Arc::new(backend(&registry, dir.path()).await);
    let sink = Arc::new(RecordingSink::default());
    let sleeper = tokio::spawn({
        let (backend, sink) = (backend.clone(), sink.clone());
        let spec = shell("sleeper", &image, "echo up; sleep 600");
        async move { backend.execute(spec, sink).await }
    });
    until("the sleeper says it is up", || {
        sink.stream(LogStream::Stdout) == ["up"]
    })
    .await;
    assert!(
        !left_behind(dir.path()).0.is_empty(),
        "its container is listed"
    );
    sleeper.abort();
    assert!(sleeper.await.unwrap_err().is_cancelled());
    backend.cleanup("sleeper").await.expect("cleanup");
    until("no container or bundle is left", || {
        left_behind(dir.path()) == (String::new(), Vec::new())
    })
    .await;
}

fn invocation(tenant: &str, version: u32) -> Invocation {
    Invocation {
        tenant: tenant.into(),
        function: "count".into(),
        version,
        digest: format!("d{version}"),
        reuse: true,
        handler: false,
        max_instances: 2,
        idle_timeout_s: 60,
        secrets_seen: String::new(),
    }
}

#[tokio::test]
async fn a_warm_sandbox_serves_its_own_key_only_and_is_retired_by_prefix() {
    let registry = Registry::start();
    let image = registry.push("busybox:warm", "busybox");
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = backend(&registry, dir.path()).await;
    // Each invocation adds a line to a file in /tmp, which stays for the instance's next.
    let count = |id: &str, tenant: &str| {
        let mut s = shell(id, &image, "echo x >> /tmp/count; wc -l < /tmp/count");
        s.tenant = tenant.into();
        s.invocation = Some(invocation(tenant, 1));
        s
    };
    let key = invocation("acme", 1).instance_key();

    let (first, _) = run(&backend, count("f1", "acme")).await;
    assert_eq!(first.output.trim(), "1", "{first:?}");
    assert_eq!(backend.warm_instances().get(&key), Some(&1));
    let (second, _) = run(&backend, count("f2", "acme")).await;
    assert_eq!(second.output.trim(), "2", "the same sandbox served again");
    let (other, _) = run(&backend, count("f3", "globex")).await;
    assert_eq!(
        other.output.trim(),
        "1",
        "another tenant gets a sandbox of its own"
    );

    backend.retire("acme/");
    // The cgroups go last, after runsc destroyed the sandbox: they are looked at first,
    // so that `runsc list` does not contend with the destroy for the sandbox's state.
    until("acme's sandbox is destroyed", || {
        warm_cgroups().len() == 1
            && !backend.warm_instances().contains_key(&key)
            && left_behind(dir.path()).0.lines().count() == 1
    })
    .await;
    let (fresh, _) = run(&backend, count("f4", "acme")).await;
    assert_eq!(
        fresh.output.trim(),
        "1",
        "a retired sandbox does not serve again"
    );
    // Shutting down destroys the warm sandboxes before it returns.
    backend.shutdown().await;
    assert_eq!(left_behind(dir.path()), (String::new(), Vec::new()));
    until("no cgroup of a warm sandbox is left", || {
        warm_cgroups().is_empty()
    })
    .await;
}
