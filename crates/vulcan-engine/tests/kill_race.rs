//! A kill racing a start on another node: the kill reads `pending`, and before it writes,
//! the other node starts the workload. The engine must not record `killed` over a run
//! that goes on elsewhere: it asks that node to stop it instead. A real SQLite file under
//! a store that lets the race happen at exactly that moment.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use vulcan_domain::{
    Admission, Claimed, Expect, Isolation, ListFilter, Runtime, StoreError, TerminalUpdate,
    Workload, WorkloadPage, WorkloadSpec, WorkloadStatus, WorkloadStore,
};
use vulcan_engine::{BackendRegistry, Engine, EngineConfig, Metrics, Stores};
use vulcan_store::SqliteStore;

type Hook = Box<dyn FnOnce() -> futures_util::future::BoxFuture<'static, ()> + Send>;

/// The SQLite store, with a hook run once just before the next `finish` writes.
struct Racing {
    inner: SqliteStore,
    before_finish: Mutex<Option<Hook>>,
}

#[async_trait]
impl WorkloadStore for Racing {
    async fn enqueue(
        &self,
        w: &Workload,
        s: &WorkloadSpec,
        a: &Admission,
    ) -> Result<bool, StoreError> {
        self.inner.enqueue(w, s, a).await
    }
    async fn get(&self, id: &str) -> Result<Workload, StoreError> {
        self.inner.get(id).await
    }
    async fn spec(&self, id: &str) -> Result<WorkloadSpec, StoreError> {
        self.inner.spec(id).await
    }
    async fn list(&self, f: &ListFilter) -> Result<WorkloadPage, StoreError> {
        self.inner.list(f).await
    }
    async fn claim(&self, node: &str, i: Isolation) -> Result<Option<Claimed>, StoreError> {
        self.inner.claim(node, i).await
    }
    async fn start(
        &self,
        id: &str,
        node: &str,
        at: OffsetDateTime,
    ) -> Result<Workload, StoreError> {
        self.inner.start(id, node, at).await
    }
    async fn finish(
        &self,
        id: &str,
        u: &TerminalUpdate,
        expect: &Expect,
    ) -> Result<Workload, StoreError> {
        let hook = self
            .before_finish
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(hook) = hook {
            hook().await;
        }
        self.inner.finish(id, u, expect).await
    }
    async fn request_kill(&self, id: &str) -> Result<Workload, StoreError> {
        self.inner.request_kill(id).await
    }
    async fn kill_requests(&self, node: &str) -> Result<Vec<String>, StoreError> {
        self.inner.kill_requests(node).await
    }
    async fn unclaim(
        &self,
        node: &str,
        keep: &[String],
        before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.inner.unclaim(node, keep, before).await
    }
    async fn running_on(&self, node: &str) -> Result<Vec<Workload>, StoreError> {
        self.inner.running_on(node).await
    }
}

/// A pending workload claimed by node `b`, which this test plays.
fn claimed_elsewhere(id: &str) -> (Workload, WorkloadSpec) {
    let spec = vulcan_domain::testing::spec(id, Runtime::Node, Isolation::Isolate, "1");
    let workload = Workload::pending(
        id.into(),
        "default".into(),
        &spec.run,
        Isolation::Isolate,
        "0".repeat(64),
        OffsetDateTime::now_utc(),
        None,
    );
    (workload, spec)
}

#[tokio::test]
async fn a_kill_that_loses_the_race_to_a_start_elsewhere_asks_that_node_to_stop_it() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path().join("vulcan.db")).unwrap();
    let racing = Arc::new(Racing {
        inner: sqlite.clone(),
        before_finish: Mutex::new(None),
    });
    let stores = Stores {
        workloads: racing.clone(),
        ..Stores::of(sqlite.clone(), Arc::new(vulcan_domain::Alone))
    };
    // This node (`a`) has no backend: it never runs the workload itself.
    let engine = Engine::new(
        EngineConfig::new("a"),
        stores,
        BackendRegistry::new(),
        Metrics::new(),
    );
    let id = "01KILLRACE0000000000000000";
    let (w, spec) = claimed_elsewhere(id);
    // Queued, then claimed by b from the queue (pending, claimed: not started yet).
    assert!(!sqlite
        .enqueue(&w, &spec, &Admission::default())
        .await
        .unwrap());
    let claimed = sqlite.claim("b", w.isolation).await.unwrap();
    assert_eq!(claimed.map(|c| c.workload.id).as_deref(), Some(id));
    // Node b starts it after the kill has read `pending`, before the kill writes.
    let b = sqlite.clone();
    *racing.before_finish.lock().unwrap() = Some(Box::new(move || {
        Box::pin(async move {
            b.start(id, "b", OffsetDateTime::now_utc()).await.unwrap();
        })
    }));
    let killer = engine.clone();
    let kill = tokio::spawn(async move { killer.kill(id).await });
    // The run goes on at b: the store must not say killed; b is asked to stop it.
    let asked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if sqlite
                .kill_requests("b")
                .await
                .unwrap()
                .contains(&id.to_owned())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let now = sqlite.get(id).await.unwrap();
    assert!(
        asked.is_ok(),
        "node b was asked to stop the run; the store says {:?} ({:?})",
        now.status,
        now.error
    );
    assert_eq!(now.status, WorkloadStatus::Running, "{now:?}");
    assert!(!kill.is_finished(), "the kill waits for b to stop it");
    // b stops it, as its kill-request poll would, and the kill answers with that.
    let stopped = TerminalUpdate {
        status: WorkloadStatus::Killed,
        output: None,
        exit_code: None,
        error: Some("killed by request".into()),
        finished_at: OffsetDateTime::now_utc(),
        duration_ms: Some(5),
        prepare_ms: None,
        usage: None,
        last_lines: Vec::new(),
    };
    sqlite
        .finish(id, &stopped, &Expect::RunningOn("b".into()))
        .await
        .unwrap();
    engine.signal(vulcan_domain::Signal::Ended(id.into()));
    let killed = tokio::time::timeout(Duration::from_secs(10), kill)
        .await
        .expect("the kill returns once b stopped the run")
        .unwrap()
        .unwrap();
    assert_eq!(killed.status, WorkloadStatus::Killed);
    assert_eq!(killed.node_id.as_deref(), Some("b"));
}
