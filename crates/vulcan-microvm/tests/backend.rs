//! The microvm backend driven as a library: real QEMU (KVM where a guest boots under it,
//! TCG otherwise), the real guest kernel and the real vulcan-agent as init, a recording
//! sink in place of the engine. Slow under TCG: a target of its own, one VM at a time.
//! The HTTP tests in `crates/vulcan/tests/microvm.rs` are the acceptance tests; these pin
//! the backend's own contract.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vulcan_domain::testing::{run, spec, RecordingSink};
use vulcan_domain::{Backend, Invocation, Isolation, LogStream, Runtime, WorkloadSpec};
use vulcan_microvm::{MicrovmBackend, MicrovmConfig};

/// VMs under TCG need both CPUs: one test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The guest scripts/setup.sh builds.
fn assets() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/guest");
    assert!(
        dir.join("vmlinuz").is_file(),
        "no guest in {} (run scripts/setup.sh)",
        dir.display()
    );
    dir
}

/// A backend of its own under `dir`: no warm pool, no snapshots (every run boots).
async fn backend(dir: &Path) -> MicrovmBackend {
    let mut config = MicrovmConfig::new(
        Some("qemu-system-x86_64".into()),
        assets(),
        dir.join("microvm"),
    );
    config.pool = Default::default();
    config.snapshots = false;
    config.boot_timeout = Duration::from_secs(60);
    let backend = MicrovmBackend::start(config).await;
    let available = backend.availability();
    assert!(available.available, "microvm unavailable: {available:?}");
    backend
}

fn python(id: &str, code: &str) -> WorkloadSpec {
    let mut s = spec(id, Runtime::Python, Isolation::Microvm, code);
    s.run.resources.timeout_s = 120;
    s
}

/// QEMU processes started under `dir` (their command lines name it).
fn qemu_under(dir: &Path) -> usize {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains("qemu-system") && cmd.contains(&dir)
        })
        .count()
}

/// Waits until `check` holds, or fails saying `what`.
async fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_script_runs_in_a_fresh_vm_its_streams_apart_and_the_vm_is_gone() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = backend(dir.path()).await;
    let (result, sink) = run(
        &backend,
        python(
            "p1",
            "import sys\nprint('out')\nprint('err', file=sys.stderr)\nprint(6 * 7)\nsys.exit(3)",
        ),
    )
    .await;
    assert_eq!(result.exit_code, Some(3), "{result:?}");
    assert_eq!(result.output, "out\n42\n");
    assert!(result.error.is_some(), "a non-zero exit fails the run");
    assert_eq!(sink.stream(LogStream::Stdout), ["out", "42"]);
    assert_eq!(sink.stream(LogStream::Stderr), ["err"]);
    assert_eq!(sink.code_started_calls(), 1);
    until("its QEMU is gone", Duration::from_secs(10), || {
        qemu_under(dir.path()) == 0
    })
    .await;
}

#[tokio::test]
async fn dropping_a_run_stops_its_vm() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = Arc::new(backend(dir.path()).await);
    let sink = Arc::new(RecordingSink::default());
    let sleeper = tokio::spawn({
        let (backend, sink) = (backend.clone(), sink.clone());
        let spec = python(
            "sleeper",
            "import time\nprint('up', flush=True)\ntime.sleep(600)",
        );
        async move { backend.execute(spec, sink).await }
    });
    until("the guest says it is up", Duration::from_secs(120), || {
        sink.stream(LogStream::Stdout) == ["up"]
    })
    .await;
    assert_eq!(qemu_under(dir.path()), 1, "its QEMU runs");
    sleeper.abort();
    assert!(sleeper.await.unwrap_err().is_cancelled());
    backend.cleanup("sleeper").await.expect("cleanup");
    until(
        "QEMU is gone once its run was dropped",
        Duration::from_secs(10),
        || qemu_under(dir.path()) == 0,
    )
    .await;
}

fn invocation(tenant: &str) -> Invocation {
    Invocation {
        tenant: tenant.into(),
        function: "count".into(),
        version: 1,
        digest: "d1".into(),
        reuse: true,
        handler: true,
        max_instances: 1,
        idle_timeout_s: 60,
        secrets_seen: String::new(),
    }
}

#[tokio::test]
async fn a_warm_vm_keeps_its_handler_loaded_for_its_own_key_only() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = backend(dir.path()).await;
    let count = |id: &str, tenant: &str| {
        let mut s = python(
            id,
            "n = 0\ndef handler(input):\n    global n\n    n += input['by']\n    return n",
        );
        s.tenant = tenant.into();
        s.input = serde_json::json!({"by": 2});
        s.invocation = Some(invocation(tenant));
        s
    };
    let key = invocation("acme").instance_key();

    let (first, _) = run(&backend, count("c1", "acme")).await;
    assert_eq!(first.output, "2", "{first:?}");
    assert_eq!(backend.warm_instances().get(&key), Some(&1));
    let (second, _) = run(&backend, count("c2", "acme")).await;
    assert_eq!(second.output, "4", "the same VM served again: {second:?}");
    let (other, _) = run(&backend, count("c3", "globex")).await;
    assert_eq!(other.output, "2", "another tenant gets a VM of its own");
    assert_eq!(qemu_under(dir.path()), 2, "one VM per key");

    backend.retire("");
    until("retired VMs are stopped", Duration::from_secs(10), || {
        qemu_under(dir.path()) == 0
    })
    .await;
    backend.shutdown().await;
}
