//! The engine's handling of runs that go wrong in the backend: a kill that arrives after
//! the code has finished, a backend that panics, a backend that never gets the code
//! started. Fake backends (this is a test of the engine alone) against a real SQLite file.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use vulcan_domain::{
    Availability, Backend, BackendCapabilities, BackendError, Isolation, LogSink, Runtime,
    WorkloadResult, WorkloadSpec, WorkloadStatus,
};
use vulcan_engine::{
    BackendRegistry, CodeRequest, Engine, EngineConfig, KillError, LogEvent, Metrics, Stores,
    Submission,
};
use vulcan_store::SqliteStore;

/// What the fake backend does with a workload.
#[derive(Clone, Copy)]
enum Act {
    /// Starts the code, returns "done", then holds `cleanup` until released.
    FinishThenSlowCleanup,
    /// Panics in the middle of the run.
    Panic,
    /// Never says the code started, and never returns.
    NeverStarts,
}

struct Fake {
    act: Act,
    release_cleanup: Arc<Notify>,
    in_cleanup: Arc<Notify>,
}

#[async_trait]
impl Backend for Fake {
    fn isolation(&self) -> Isolation {
        Isolation::Isolate
    }
    fn capabilities(&self) -> BackendCapabilities {
        BackendCapabilities {
            name: "fake".into(),
            supported_runtimes: vec![Runtime::Node],
            supported_isolations: vec![Isolation::Isolate],
            max_concurrency: 1,
        }
    }
    fn availability(&self) -> Availability {
        Availability::ready(serde_json::Value::Null)
    }
    fn preparation_timeout(&self) -> Duration {
        Duration::from_millis(300)
    }
    async fn execute(
        &self,
        _: WorkloadSpec,
        logs: Arc<dyn LogSink>,
    ) -> Result<WorkloadResult, BackendError> {
        match self.act {
            Act::FinishThenSlowCleanup => {
                logs.code_started(vulcan_domain::Preparation::Boot);
                Ok(WorkloadResult {
                    exit_code: Some(0),
                    output: "done".into(),
                    error: None,
                    usage: None,
                })
            }
            Act::Panic => {
                logs.code_started(vulcan_domain::Preparation::Boot);
                tokio::task::yield_now().await;
                panic!("the fake backend lost its mind");
            }
            Act::NeverStarts => std::future::pending().await,
        }
    }
    async fn cleanup(&self, _: &str) -> Result<(), BackendError> {
        if let Act::FinishThenSlowCleanup = self.act {
            self.in_cleanup.notify_one();
            self.release_cleanup.notified().await;
        }
        Ok(())
    }
}

struct Setup {
    engine: Engine,
    release_cleanup: Arc<Notify>,
    in_cleanup: Arc<Notify>,
    _dir: tempfile::TempDir,
}

fn engine(act: Act) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("vulcan.db")).unwrap();
    let release_cleanup = Arc::new(Notify::new());
    let in_cleanup = Arc::new(Notify::new());
    let mut registry = BackendRegistry::new();
    registry.register(Arc::new(Fake {
        act,
        release_cleanup: release_cleanup.clone(),
        in_cleanup: in_cleanup.clone(),
    }));
    let stores = Stores::of(store, Arc::new(vulcan_domain::Alone));
    let engine = Engine::new(
        EngineConfig::new("test-node"),
        stores,
        registry,
        Metrics::new(),
    );
    engine.start();
    Setup {
        engine,
        release_cleanup,
        in_cleanup,
        _dir: dir,
    }
}

fn node(timeout_s: u32) -> Submission {
    Submission {
        code: CodeRequest {
            runtime: Some(Runtime::Node),
            code: Some("1".into()),
            timeout_s: Some(timeout_s),
            ..CodeRequest::default()
        },
        ..Submission::default()
    }
}

const WITHIN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_kill_after_the_code_finished_is_refused_and_the_result_kept() {
    let s = engine(Act::FinishThenSlowCleanup);
    let w = s.engine.submit(node(5)).await.unwrap();
    // The code has returned; the run is winding up (cleanup) when the kill arrives.
    tokio::time::timeout(WITHIN, s.in_cleanup.notified())
        .await
        .unwrap();
    let engine = s.engine.clone();
    let id = w.id.clone();
    let kill = tokio::spawn(async move { engine.kill(&id).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.release_cleanup.notify_one();
    let answer = tokio::time::timeout(WITHIN, kill).await.unwrap().unwrap();
    match answer {
        Err(KillError::AlreadyEnded(ended)) => {
            assert_eq!(ended.status, WorkloadStatus::Completed);
            assert_eq!(ended.output.as_deref(), Some("done"));
        }
        other => panic!("the kill must be refused with the real result: {other:?}"),
    }
    let stored = s.engine.workload(&w.id).await.unwrap();
    assert_eq!(stored.status, WorkloadStatus::Completed, "{stored:?}");
    assert_eq!(stored.output.as_deref(), Some("done"));
}

#[tokio::test]
async fn a_backend_that_panics_fails_its_workload_and_frees_everything() {
    let s = engine(Act::Panic);
    let w = s.engine.submit(node(5)).await.unwrap();
    let mut live = s.engine.broker().subscribe(&w.id).expect("a live topic");
    let done = tokio::time::timeout(WITHIN, s.engine.wait(&w.id))
        .await
        .expect("wait returns")
        .unwrap();
    assert_eq!(done.status, WorkloadStatus::Failed);
    let error = done.error.unwrap_or_default();
    assert!(
        error.contains("backend failed unexpectedly") && error.contains("lost its mind"),
        "{error}"
    );
    // Subscribers are told the stream is over; the run left the active map.
    let last = tokio::time::timeout(WITHIN, async {
        loop {
            match live.receiver.recv().await {
                Ok(LogEvent::Done) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap();
    assert!(last, "subscribers get done");
    assert_eq!(s.engine.active_count(), 0);
    // The slot is free: the next workload runs (and fails the same way, promptly).
    let next = s.engine.submit(node(5)).await.unwrap();
    let next = tokio::time::timeout(WITHIN, s.engine.wait(&next.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.status, WorkloadStatus::Failed);
}

#[tokio::test]
async fn preparation_has_its_own_bound_and_error() {
    let s = engine(Act::NeverStarts);
    let w = s.engine.submit(node(600)).await.unwrap();
    let done = tokio::time::timeout(WITHIN, s.engine.wait(&w.id))
        .await
        .expect("bounded by the preparation timeout, not the 600 s one")
        .unwrap();
    assert_eq!(done.status, WorkloadStatus::Failed);
    let error = done.error.unwrap_or_default();
    assert!(
        error.starts_with("preparation took longer than 300 ms") && error.contains("never started"),
        "{error}"
    );
    assert!(done.prepare_ms.is_none(), "the code never started");
}
