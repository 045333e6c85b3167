//! The isolate backend driven as a library: real Deno processes in the real jail and
//! memory cgroups, a recording sink in place of the engine. The HTTP tests in
//! `crates/vulcan/tests/isolate.rs` are the acceptance tests; these pin the backend's own
//! contract (what `execute` answers and emits, dropping a run stops it, warm instances
//! are kept per key and retired by prefix).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use vulcan_domain::testing::{run, spec, RecordingSink};
use vulcan_domain::{
    Backend, Invocation, Isolation, LogStream, Preparation, Runtime, WorkloadSpec,
};
use vulcan_isolate::{IsolateBackend, IsolateConfig};

/// Deno where scripts/setup.sh puts it.
fn deno() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.tools/deno/node_modules/@deno/linux-x64-glibc/deno");
    assert!(
        path.is_file(),
        "no Deno at {} (run scripts/setup.sh)",
        path.display()
    );
    path
}

/// A backend of its own in a temporary directory, with `pool` warm processes.
fn backend(pool: usize) -> (IsolateBackend, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = IsolateConfig::new(Some(deno()), dir.path().join("isolate"));
    config.pool_size = pool;
    let backend = IsolateBackend::start(config);
    let available = backend.availability();
    assert!(available.available, "isolate unavailable: {available:?}");
    (backend, dir)
}

fn node(id: &str, code: &str) -> WorkloadSpec {
    spec(id, Runtime::Node, Isolation::Isolate, code)
}

#[tokio::test]
async fn a_modules_answer_is_its_json_and_its_lines_stream_in_order() {
    let (backend, _dir) = backend(1);
    let mut s = node(
        "m1",
        "export default (input) => { console.log('one'); console.error('two'); console.log('three'); return { sum: input.a + input.b }; }",
    );
    s.input = serde_json::json!({"a": 2, "b": 3});
    let (result, sink) = run(&backend, s).await;
    assert_eq!(result.error, None, "{result:?}");
    let output: serde_json::Value = serde_json::from_str(&result.output).expect("JSON output");
    assert_eq!(output, serde_json::json!({"sum": 5}));
    assert_eq!(sink.stream(LogStream::Stdout), ["one", "three"]);
    assert_eq!(sink.stream(LogStream::Stderr), ["two"]);
    assert_eq!(
        sink.code_started_calls(),
        1,
        "code_started exactly once per run"
    );
}

#[tokio::test]
async fn a_scripts_output_is_what_it_printed_and_a_throw_is_the_error() {
    let (backend, _dir) = backend(0);
    let (result, sink) = run(&backend, node("s1", "console.log('a'); console.log('b');")).await;
    assert_eq!(result.error, None, "{result:?}");
    assert_eq!(
        sink.preparations(),
        [Preparation::Boot],
        "no pool: a process of its own"
    );
    assert_eq!(result.output, "a\nb\n");
    assert_eq!(sink.stream(LogStream::Stdout), ["a", "b"]);

    let (result, _) = run(
        &backend,
        node("s2", "throw new Error('broken on purpose');"),
    )
    .await;
    let error = result.error.expect("a thrown error fails the run");
    assert!(error.contains("broken on purpose"), "{error}");
}

#[tokio::test]
async fn a_memory_bomb_fails_alone_and_the_backend_runs_the_next() {
    let (backend, _dir) = backend(1);
    let mut bomb = node(
        "bomb",
        "const keep = []; while (true) { keep.push(new Array(1e6).fill(Math.random())); }",
    );
    bomb.run.resources.mem_mb = 64;
    let (result, _) = run(&backend, bomb).await;
    let error = result.error.expect("a memory bomb fails");
    assert!(error.contains("memory"), "the error says memory: {error}");

    let (result, _) = run(&backend, node("after", "export default () => 'still here'")).await;
    assert_eq!(result.error, None, "{result:?}");
    assert_eq!(result.output, "\"still here\"");
}

/// Processes confined to the jail under `dir` (their root is there): this backend's Deno.
fn jailed_in(dir: &std::path::Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let root = std::fs::read_link(entry.path().join("root")).ok()?;
            root.starts_with(dir).then_some(pid)
        })
        .collect()
}

/// Waits until `check` holds, or fails saying `what`.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn dropping_a_run_kills_its_endless_loop() {
    let (backend, dir) = backend(0);
    let backend = Arc::new(backend);
    let sink = Arc::new(RecordingSink::default());
    let spin = tokio::spawn({
        let (backend, sink) = (backend.clone(), sink.clone());
        async move { backend.execute(node("spin", "while (true) {}"), sink).await }
    });
    until("the loop runs in a jailed deno", || {
        !jailed_in(dir.path()).is_empty() && sink.code_started_calls() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !spin.is_finished(),
        "an endless loop does not end by itself"
    );
    spin.abort();
    assert!(spin.await.unwrap_err().is_cancelled());
    backend.cleanup("spin").await.expect("cleanup");
    until("deno is gone once its run was dropped", || {
        jailed_in(dir.path()).is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_wasm_modules_export_is_called_with_the_inputs_args() {
    let (backend, _dir) = backend(0);
    let bytes = wat::parse_str(
        r#"(module (func (export "add") (param i32 i32) (result i32)
               local.get 0 local.get 1 i32.add))"#,
    )
    .expect("valid WAT");
    let code = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut s = spec("w1", Runtime::Wasm, Isolation::Isolate, &code);
    s.input = serde_json::json!({"fn": "add", "args": [40, 2]});
    let (result, _) = run(&backend, s).await;
    assert_eq!(result.error, None, "{result:?}");
    assert_eq!(result.output, "42");
}

fn invocation(tenant: &str, function: &str, version: u32) -> Invocation {
    Invocation {
        tenant: tenant.into(),
        function: function.into(),
        version,
        digest: format!("d{version}"),
        reuse: true,
        handler: true,
        max_instances: 2,
        idle_timeout_s: 60,
        secrets_seen: String::new(),
    }
}

/// A counter kept in the module: an instance that served before answers more than 1.
const COUNTER: &str = "let n = 0; export default () => ++n;";

fn invoke(id: &str, tenant: &str, version: u32) -> WorkloadSpec {
    let mut s = node(id, COUNTER);
    s.tenant = tenant.into();
    s.invocation = Some(invocation(tenant, "counter", version));
    s
}

#[tokio::test]
async fn a_warm_instance_serves_its_own_key_only_and_is_retired_by_prefix() {
    let (backend, _dir) = backend(1);
    let key = invocation("acme", "counter", 1).instance_key();

    let (first, started) = run(&backend, invoke("i1", "acme", 1)).await;
    assert_eq!(first.output, "1", "{first:?}");
    assert_eq!(started.preparations(), [Preparation::Boot]);
    assert_eq!(backend.warm_instances().get(&key), Some(&1));
    let (second, served) = run(&backend, invoke("i2", "acme", 1)).await;
    assert_eq!(
        second.output, "2",
        "the same instance served again: {second:?}"
    );
    assert_eq!(served.preparations(), [Preparation::Warm]);

    let (other_tenant, _) = run(&backend, invoke("i3", "globex", 1)).await;
    assert_eq!(
        other_tenant.output, "1",
        "another tenant gets its own instance"
    );
    let (next_version, _) = run(&backend, invoke("i4", "acme", 2)).await;
    assert_eq!(
        next_version.output, "1",
        "another version gets its own instance"
    );

    backend.retire("acme/counter/");
    let left = backend.warm_instances();
    assert!(
        left.keys().all(|k| !k.starts_with("acme/counter/")),
        "acme's instances retired: {left:?}"
    );
    assert_eq!(
        left.values().sum::<usize>(),
        1,
        "globex's instance kept: {left:?}"
    );
    let (fresh, _) = run(&backend, invoke("i5", "acme", 1)).await;
    assert_eq!(fresh.output, "1", "a retired instance does not serve again");
}
