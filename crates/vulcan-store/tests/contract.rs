//! One contract, two stores: every test here runs against the SQLite store (a real file)
//! and against the PostgreSQL store (a real server of the test's own), so the two cannot
//! drift. `contract!` at the bottom lists them.

use std::sync::{Arc, Mutex, Weak};

use time::OffsetDateTime;
use vulcan_domain::{
    AccessStore, Admission, ApiKey, AsyncPolicy, AuditEntry, AuditFilter, BenchmarkStore, Code,
    Expect, FollowupKind, FollowupStore, FunctionCode, FunctionStore, ImageConfig, ImageIndex,
    ImageRecord, Isolation, ListFilter, LogLine, LogStore, LogStream, NewMessage, NewPost,
    NodeRecord, NodeState, NodeStore, NodeTemplate, Overlap, PauseMode, Queue, QueueConfig,
    QueueStore, Quota, Refusal, Resources, Retry, Role, Runtime, Sandbox, SandboxFilter,
    SandboxResources, SandboxRoom, SandboxState, SandboxStore, Schedule, ScheduleStore, Sealed,
    SecretStore, Settle, StatsStore, StoreError, Subscription, TemplateOnNode, TerminalUpdate,
    Tick, Topic, Trigger, Volume, VolumeMount, Workload, WorkloadSpec, WorkloadStatus,
    WorkloadStore,
};
use vulcan_store::testing::{workload, PgServer};
use vulcan_store::{PgStore, SqliteStore};

/// A store under test, behind each of its ports, and a way to reach its tables directly.
struct Stores {
    workloads: Arc<dyn WorkloadStore>,
    logs: Arc<dyn LogStore>,
    stats: Arc<dyn StatsStore>,
    benchmarks: Arc<dyn BenchmarkStore>,
    access: Arc<dyn AccessStore>,
    nodes: Arc<dyn NodeStore>,
    images: Arc<dyn ImageIndex>,
    functions: Arc<dyn FunctionStore>,
    schedules: Arc<dyn ScheduleStore>,
    secrets: Arc<dyn SecretStore>,
    sandboxes: Arc<dyn SandboxStore>,
    queues: Arc<dyn QueueStore>,
    followups: Arc<dyn FollowupStore>,
    raw: Raw,
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

/// Direct SQL on the store's database, bypassing the store (what an intruder with the
/// database's credentials could do).
enum Raw {
    Sqlite(std::path::PathBuf),
    Pg(String),
}

impl Raw {
    async fn execute(&self, sql: &str) -> Result<u64, String> {
        match self {
            Raw::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
                conn.execute(sql, [])
                    .map(|n| n as u64)
                    .map_err(|e| e.to_string())
            }
            Raw::Pg(url) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                client.execute(sql, &[]).await.map_err(|e| {
                    e.as_db_error()
                        .map(|d| d.message().to_owned())
                        .unwrap_or_else(|| e.to_string())
                })
            }
        }
    }
}

async fn sqlite() -> Stores {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vulcan.db");
    let store = SqliteStore::open(&path).unwrap();
    Stores {
        workloads: Arc::new(store.clone()),
        logs: Arc::new(store.clone()),
        stats: Arc::new(store.clone()),
        benchmarks: Arc::new(store.clone()),
        access: Arc::new(store.clone()),
        nodes: Arc::new(store.clone()),
        images: Arc::new(store.clone()),
        functions: Arc::new(store.clone()),
        schedules: Arc::new(store.clone()),
        secrets: Arc::new(store.clone()),
        sandboxes: Arc::new(store.clone()),
        queues: Arc::new(store.clone()),
        followups: Arc::new(store),
        raw: Raw::Sqlite(path),
        _keep: Box::new(dir),
    }
}

/// One PostgreSQL server for the tests running at once (a new one if the last stopped).
fn pg_server() -> Arc<PgServer> {
    static SERVER: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
    let mut shared = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(server) = shared.upgrade() {
        return server;
    }
    let server = Arc::new(PgServer::start().expect("a PostgreSQL server for the tests"));
    *shared = Arc::downgrade(&server);
    server
}

async fn postgres() -> Stores {
    let server = pg_server();
    let url = server.database().unwrap();
    let store = PgStore::connect(&url).await.unwrap();
    Stores {
        workloads: Arc::new(store.clone()),
        logs: Arc::new(store.clone()),
        stats: Arc::new(store.clone()),
        benchmarks: Arc::new(store.clone()),
        access: Arc::new(store.clone()),
        nodes: Arc::new(store.clone()),
        images: Arc::new(store.clone()),
        functions: Arc::new(store.clone()),
        schedules: Arc::new(store.clone()),
        secrets: Arc::new(store.clone()),
        sandboxes: Arc::new(store.clone()),
        queues: Arc::new(store.clone()),
        followups: Arc::new(store),
        raw: Raw::Pg(url),
        _keep: Box::new(server),
    }
}

fn done(status: WorkloadStatus, ms: u64) -> TerminalUpdate {
    TerminalUpdate {
        status,
        output: Some("out".into()),
        exit_code: Some(0),
        error: None,
        finished_at: OffsetDateTime::now_utc(),
        duration_ms: Some(ms),
        prepare_ms: Some(ms / 2),
        usage: None,
        last_lines: Vec::new(),
    }
}

/// A moment after every claim made so far.
fn later() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::seconds(1)
}

/// Enqueues with no admission limits and no claim.
async fn put(s: &Stores, w: &Workload, spec: &WorkloadSpec) {
    s.workloads
        .enqueue(w, spec, &Admission::default())
        .await
        .unwrap();
}

/// Claims `id` (the oldest queued of its backend) for `node` and starts it.
async fn run_on(s: &Stores, node: &str, isolation: Isolation) -> Workload {
    let claimed = s.workloads.claim(node, isolation).await.unwrap().unwrap();
    s.workloads
        .start(&claimed.workload.id, node, OffsetDateTime::now_utc())
        .await
        .unwrap()
}

async fn a_workload_round_trips_with_its_spec(s: Stores) {
    let (w, spec) = workload("01A", Isolation::Isolate);
    put(&s, &w, &spec).await;
    let got = s.workloads.get("01A").await.unwrap();
    assert_eq!(got, w, "stored as given");
    assert_eq!(s.workloads.spec("01A").await.unwrap(), spec);
    assert!(matches!(
        s.workloads.get("nope").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.workloads.enqueue(&w, &spec, &Admission::default()).await,
        Err(StoreError::Duplicate(_))
    ));
}

async fn usage_is_recorded_with_the_ending_and_averaged_per_backend_and_tenant(s: Stores) {
    for (id, cpu, peak) in [("01U1", 100, 1000), ("01U2", 300, 3000)] {
        let (w, spec) = workload(id, Isolation::Gvisor);
        put(&s, &w, &spec).await;
        run_on(&s, "n1", Isolation::Gvisor).await;
        let mut update = done(WorkloadStatus::Completed, 10);
        update.usage = Some(vulcan_domain::Usage {
            cpu_time_ms: cpu,
            peak_memory_bytes: peak,
            max_processes: Some(2),
            net_tx_bytes: Some(cpu * 7),
            net_rx_bytes: Some(cpu * 11),
        });
        let finished = s
            .workloads
            .finish(id, &update, &Expect::Live)
            .await
            .unwrap();
        assert_eq!(
            (
                finished.cpu_time_ms,
                finished.peak_memory_bytes,
                finished.max_processes,
                finished.net_tx_bytes,
                finished.net_rx_bytes
            ),
            (
                Some(cpu),
                Some(peak),
                Some(2),
                Some(cpu * 7),
                Some(cpu * 11)
            )
        );
        assert_eq!(
            s.workloads.get(id).await.unwrap().net_rx_bytes,
            Some(cpu * 11)
        );
    }
    // A workload that never ran has nothing to count, whatever the update says.
    let (w, spec) = workload("01U3", Isolation::Gvisor);
    put(&s, &w, &spec).await;
    let mut never = done(WorkloadStatus::Killed, 10);
    never.usage = Some(vulcan_domain::Usage::default());
    let killed = s
        .workloads
        .finish("01U3", &never, &Expect::Live)
        .await
        .unwrap();
    assert_eq!(killed.cpu_time_ms, None);
    for tenant in [None, Some("default")] {
        let stats = s.stats.stats(tenant).await.unwrap();
        let gvisor = &stats.backends["gvisor"];
        assert_eq!(
            (
                gvisor.measured_runs,
                gvisor.avg_cpu_time_ms,
                gvisor.avg_peak_memory_bytes
            ),
            (2, Some(200.0), Some(2000.0)),
            "{tenant:?}"
        );
    }
    let other = s.stats.stats(Some("someone-else")).await.unwrap();
    assert!(!other.backends.contains_key("gvisor"));
    assert_eq!(
        s.workloads.get("01U1").await.unwrap().request_id.as_deref(),
        Some("req-1")
    );
}

async fn a_stale_update_cannot_overwrite_a_terminal_state(s: Stores) {
    let (w, spec) = workload("01B", Isolation::Isolate);
    put(&s, &w, &spec).await;
    let running = run_on(&s, "node-a", Isolation::Isolate).await;
    assert_eq!(running.node_id.as_deref(), Some("node-a"));
    let killed = s
        .workloads
        .finish("01B", &done(WorkloadStatus::Killed, 5), &Expect::Live)
        .await
        .unwrap();
    assert_eq!(killed.status, WorkloadStatus::Killed);
    match s
        .workloads
        .finish("01B", &done(WorkloadStatus::Completed, 9), &Expect::Live)
        .await
    {
        Err(StoreError::InvalidTransition(t)) => assert_eq!(
            (t.from, t.to),
            (WorkloadStatus::Killed, WorkloadStatus::Completed)
        ),
        other => panic!("expected refusal, got {other:?}"),
    }
    assert!(s
        .workloads
        .start("01B", "node-a", OffsetDateTime::now_utc())
        .await
        .is_err());
    assert_eq!(
        s.workloads.get("01B").await.unwrap().status,
        WorkloadStatus::Killed
    );
}

async fn an_ending_applies_only_to_the_state_its_writer_expects(s: Stores) {
    let (w, spec) = workload("01X", Isolation::Isolate);
    put(&s, &w, &spec).await;
    let killed = done(WorkloadStatus::Killed, 1);
    // Started on node-a after a killer read it pending: a kill of a pending one is refused.
    run_on(&s, "node-a", Isolation::Isolate).await;
    match s.workloads.finish("01X", &killed, &Expect::Pending).await {
        Err(StoreError::InvalidTransition(t)) => {
            assert_eq!(t.from, WorkloadStatus::Running)
        }
        other => panic!("a kill of what was pending must not end a running one: {other:?}"),
    }
    // Only the node running it ends its run.
    let elsewhere = s
        .workloads
        .finish("01X", &killed, &Expect::RunningOn("node-b".into()))
        .await;
    assert!(
        matches!(elsewhere, Err(StoreError::InvalidTransition(_))),
        "{elsewhere:?}"
    );
    assert_eq!(
        s.workloads.get("01X").await.unwrap().status,
        WorkloadStatus::Running
    );
    let ended = s
        .workloads
        .finish("01X", &killed, &Expect::RunningOn("node-a".into()))
        .await
        .unwrap();
    assert_eq!(ended.status, WorkloadStatus::Killed);
    // A claim taken over by another node: the first claimant cannot fail it.
    let (w, spec) = workload("01Y", Isolation::Isolate);
    put(&s, &w, &spec).await;
    let claimed = s.workloads.claim("node-b", Isolation::Isolate).await;
    assert_eq!(claimed.unwrap().unwrap().workload.id, "01Y");
    let failed = done(WorkloadStatus::Failed, 0);
    let not_mine = s
        .workloads
        .finish("01Y", &failed, &Expect::ClaimedBy("node-a".into()))
        .await;
    assert!(
        matches!(not_mine, Err(StoreError::InvalidTransition(_))),
        "{not_mine:?}"
    );
    let mine = s
        .workloads
        .finish("01Y", &failed, &Expect::ClaimedBy("node-b".into()))
        .await
        .unwrap();
    assert_eq!(mine.status, WorkloadStatus::Failed);
}

async fn benchmark_reports_are_kept_whole_and_listed_newest_first(s: Stores) {
    s.benchmarks
        .save_benchmark("b1", r#"{"n":1}"#)
        .await
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    s.benchmarks
        .save_benchmark("b2", r#"{"n":2}"#)
        .await
        .unwrap();
    s.benchmarks
        .save_benchmark("b1", r#"{"n":1,"done":true}"#)
        .await
        .unwrap();
    assert_eq!(
        s.benchmarks.benchmark("b1").await.unwrap(),
        r#"{"n":1,"done":true}"#,
        "a later version replaces the earlier"
    );
    assert!(matches!(
        s.benchmarks.benchmark("nope").await,
        Err(StoreError::NotFound(_))
    ));
    let listed = s.benchmarks.benchmarks(10).await.unwrap();
    assert_eq!(listed, [r#"{"n":2}"#, r#"{"n":1,"done":true}"#]);
    assert_eq!(s.benchmarks.benchmarks(1).await.unwrap().len(), 1);
}

async fn pending_can_fail_directly_but_cannot_complete(s: Stores) {
    let (w, spec) = workload("01C", Isolation::Isolate);
    put(&s, &w, &spec).await;
    assert!(s
        .workloads
        .finish("01C", &done(WorkloadStatus::Completed, 1), &Expect::Live)
        .await
        .is_err());
    let failed = s
        .workloads
        .finish("01C", &done(WorkloadStatus::Failed, 1), &Expect::Live)
        .await
        .unwrap();
    assert_eq!(failed.status, WorkloadStatus::Failed);
    assert_eq!(
        failed.duration_ms, None,
        "a workload that never ran has no duration"
    );
    let stats = s.stats.stats(None).await.unwrap();
    assert!(stats.backends.is_empty(), "nor a place in the figures");
}

async fn list_filters_pages_with_offset_or_cursor_and_counts_from_the_counters(s: Stores) {
    for i in 0..7 {
        let iso = if i % 2 == 0 {
            Isolation::Isolate
        } else {
            Isolation::Gvisor
        };
        let (w, spec) = workload(&format!("01D{i}"), iso);
        put(&s, &w, &spec).await;
    }
    run_on(&s, "n", Isolation::Isolate).await;
    s.workloads
        .finish("01D0", &done(WorkloadStatus::Completed, 10), &Expect::Live)
        .await
        .unwrap();
    let page = s
        .workloads
        .list(&ListFilter {
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 7);
    let ids: Vec<_> = page.workloads.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["01D6", "01D5", "01D4"], "newest first");
    let next = s
        .workloads
        .list(&ListFilter {
            limit: 3,
            after: Some("01D4".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = next.workloads.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["01D3", "01D2", "01D1"], "the page after the cursor");
    let page = s
        .workloads
        .list(&ListFilter {
            isolation: Some(Isolation::Isolate),
            status: Some(WorkloadStatus::Pending),
            limit: 10,
            offset: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(page.workloads.len(), 2);
    let stats = s.stats.stats(None).await.unwrap();
    assert_eq!(stats.total, 7);
    assert_eq!(stats.by_status["completed"], 1);
    assert_eq!(stats.by_status["pending"], 6);
    assert_eq!(stats.by_isolation["gvisor"], 3);
    assert_eq!(stats.backends["isolate"].finished, 1);
    assert_eq!(stats.avg_duration_ms, 10.0);
}

async fn log_lines_keep_their_order_and_stream_and_duplicates_are_ignored(s: Stores) {
    let (w, spec) = workload("01E", Isolation::Isolate);
    put(&s, &w, &spec).await;
    let line = |seq, stream, text: &str| LogLine {
        seq,
        stream,
        line: text.into(),
        created_at: OffsetDateTime::now_utc(),
    };
    s.logs
        .append_logs(
            "01E",
            &[
                line(1, LogStream::Backend, "boot"),
                line(2, LogStream::Stdout, "hi"),
            ],
        )
        .await
        .unwrap();
    s.logs
        .append_logs(
            "01E",
            &[
                line(2, LogStream::Stdout, "dup"),
                line(3, LogStream::Stderr, "oops"),
            ],
        )
        .await
        .unwrap();
    let all = s.logs.logs("01E", None).await.unwrap();
    let texts: Vec<_> = all.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(texts, ["boot", "hi", "oops"]);
    assert_eq!(all[2].stream, LogStream::Stderr);
    let stdout = s.logs.logs("01E", Some(LogStream::Stdout)).await.unwrap();
    assert_eq!(stdout.len(), 1);
    let after: Vec<u64> = s
        .logs
        .logs_after("01E", 1)
        .await
        .unwrap()
        .iter()
        .map(|l| l.seq)
        .collect();
    assert_eq!(after, [2, 3]);
    assert!(matches!(
        s.logs.logs("zzz", None).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn tenants_see_their_own_lists_and_figures_from_their_own_counters(s: Stores) {
    for (id, tenant) in [("01T1", "a"), ("01T2", "a"), ("01T3", "b")] {
        let (mut w, spec) = workload(id, Isolation::Isolate);
        w.tenant = tenant.into();
        put(&s, &w, &spec).await;
    }
    run_on(&s, "n", Isolation::Isolate).await;
    s.workloads
        .finish("01T1", &done(WorkloadStatus::Completed, 40), &Expect::Live)
        .await
        .unwrap();
    let page = s
        .workloads
        .list(&ListFilter {
            tenant: Some("a".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 2);
    assert!(page.workloads.iter().all(|w| w.tenant == "a"));
    let b = s.stats.stats(Some("b")).await.unwrap();
    assert_eq!((b.total, b.by_status["pending"]), (1, 1));
    assert!(b.backends.is_empty());
    let a = s.stats.stats(Some("a")).await.unwrap();
    assert_eq!(
        (a.total, a.backends["isolate"].finished, a.avg_duration_ms),
        (2, 1, 40.0)
    );
    assert_eq!(s.stats.stats(None).await.unwrap().total, 3);
}

async fn claims_go_oldest_first_to_one_node_each_and_only_the_claimant_starts(s: Stores) {
    for i in 0..3 {
        let (w, spec) = workload(&format!("01Q{i}"), Isolation::Gvisor);
        put(&s, &w, &spec).await;
    }
    assert!(s
        .workloads
        .claim("a", Isolation::Isolate)
        .await
        .unwrap()
        .is_none());
    let first = s
        .workloads
        .claim("a", Isolation::Gvisor)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.workload.id, "01Q0");
    assert_eq!(first.spec.note.as_deref(), Some("auto: a note"));
    assert_eq!(first.spec.run.code_archive, Some(vec![1, 2, 3]));
    let second = s
        .workloads
        .claim("b", Isolation::Gvisor)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.workload.id, "01Q1");
    // Only the claimant may start it.
    assert!(matches!(
        s.workloads
            .start("01Q0", "b", OffsetDateTime::now_utc())
            .await,
        Err(StoreError::InvalidTransition(_))
    ));
    s.workloads
        .start("01Q0", "a", OffsetDateTime::now_utc())
        .await
        .unwrap();
    // Claims younger than the cut-off are kept (they may be starting right now).
    assert_eq!(
        s.workloads
            .unclaim(
                "b",
                &[],
                OffsetDateTime::now_utc() - time::Duration::seconds(60)
            )
            .await
            .unwrap(),
        0
    );
    // Node b gives back what it is not running: it goes back to the queue, first in line.
    assert_eq!(s.workloads.unclaim("b", &[], later()).await.unwrap(), 1);
    assert_eq!(s.workloads.get("01Q1").await.unwrap().node_id, None);
    let again = s
        .workloads
        .claim("c", Isolation::Gvisor)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.workload.id, "01Q1");
    assert_eq!(
        s.workloads
            .unclaim("c", &["01Q1".into()], later())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.workloads.running_on("a").await.unwrap().len(),
        1,
        "a runs 01Q0"
    );
}

async fn many_claimers_at_once_never_claim_one_workload_twice(s: Stores) {
    for i in 0..40 {
        let (w, spec) = workload(&format!("01R{i:02}"), Isolation::Isolate);
        put(&s, &w, &spec).await;
    }
    let workloads = s.workloads.clone();
    let claimers: Vec<_> = (0..8)
        .map(|n| {
            let store = workloads.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(c) = store
                    .claim(&format!("n{n}"), Isolation::Isolate)
                    .await
                    .unwrap()
                {
                    mine.push(c.workload.id);
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    all.sort();
    let len = all.len();
    all.dedup();
    assert_eq!((len, all.len()), (40, 40), "each claimed exactly once");
}

async fn a_direct_claim_never_jumps_the_queue(s: Stores) {
    let claim = Admission {
        claim_for: Some("a".into()),
        ..Admission::default()
    };
    let (w, spec) = workload("01S0", Isolation::Isolate);
    assert!(
        s.workloads.enqueue(&w, &spec, &claim).await.unwrap(),
        "nothing waits: claimed"
    );
    // Claimed at admission is started there too: running on `a` since its creation,
    // counted running, never pending, and only `a` may end it.
    let started = s.workloads.get("01S0").await.unwrap();
    assert_eq!(
        (
            started.status,
            started.node_id.as_deref(),
            started.started_at
        ),
        (WorkloadStatus::Running, Some("a"), Some(w.created_at)),
    );
    let stats = s.stats.stats(None).await.unwrap();
    assert_eq!(
        (stats.by_status["running"], stats.by_status["pending"]),
        (1, 0),
        "{stats:?}"
    );
    let not_claimed = s
        .workloads
        .finish(
            "01S0",
            &done(WorkloadStatus::Failed, 0),
            &Expect::ClaimedBy("a".into()),
        )
        .await;
    assert!(
        matches!(not_claimed, Err(StoreError::InvalidTransition(_))),
        "{not_claimed:?}"
    );
    let (w, spec) = workload("01S1", Isolation::Isolate);
    put(&s, &w, &spec).await;
    let (w, spec) = workload("01S2", Isolation::Isolate);
    assert!(
        !s.workloads.enqueue(&w, &spec, &claim).await.unwrap(),
        "01S1 waits: 01S2 is queued behind it"
    );
    let queued = s.workloads.get("01S2").await.unwrap();
    assert_eq!(
        (queued.status, queued.node_id),
        (WorkloadStatus::Pending, None)
    );
    // The run ends on `a` with its last lines, stored in the same transaction.
    let mut end = done(WorkloadStatus::Completed, 7);
    end.last_lines = (1..=3)
        .map(|seq| LogLine {
            seq,
            stream: LogStream::Stdout,
            line: format!("line {seq}"),
            created_at: OffsetDateTime::now_utc(),
        })
        .collect();
    let ended = s
        .workloads
        .finish("01S0", &end, &Expect::RunningOn("a".into()))
        .await
        .unwrap();
    assert_eq!(ended.status, WorkloadStatus::Completed);
    let lines = s.logs.logs("01S0", None).await.unwrap();
    let texts: Vec<_> = lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(texts, ["line 1", "line 2", "line 3"]);
}

async fn admission_holds_the_queue_limit_and_the_tenants_quota_and_stores_nothing_refused(
    s: Stores,
) {
    let queue = Admission {
        max_queue: Some(2),
        ..Admission::default()
    };
    for i in 0..2 {
        let (w, spec) = workload(&format!("01U{i}"), Isolation::Microvm);
        s.workloads.enqueue(&w, &spec, &queue).await.unwrap();
    }
    let (w, spec) = workload("01U2", Isolation::Microvm);
    assert!(matches!(
        s.workloads.enqueue(&w, &spec, &queue).await,
        Err(StoreError::Refused(Refusal::Overloaded { .. }))
    ));
    assert!(matches!(
        s.workloads.get("01U2").await,
        Err(StoreError::NotFound(_))
    ));
    let (w, spec) = workload("01U3", Isolation::Isolate);
    s.workloads
        .enqueue(&w, &spec, &queue)
        .await
        .expect("another backend's queue is its own");

    let quota = |max_concurrent, per_minute| Admission {
        quota: Some(Quota {
            max_concurrent,
            per_minute,
            max_cpus: 4,
            max_mem_mb: 512,
            max_schedules: None,
            min_schedule_interval_s: None,
            egress_allow: Vec::new(),
        }),
        ..Admission::default()
    };
    let tenant = |id: &str| {
        let (mut w, spec) = workload(id, Isolation::Gvisor);
        w.tenant = "q".into();
        (w, spec)
    };
    let (w, spec) = tenant("01V0");
    s.workloads.enqueue(&w, &spec, &quota(1, 10)).await.unwrap();
    let (w, spec) = tenant("01V1");
    match s.workloads.enqueue(&w, &spec, &quota(1, 10)).await {
        Err(StoreError::Refused(Refusal::OverQuota {
            retry_after_s,
            message,
        })) => {
            assert_eq!(retry_after_s, 1);
            assert!(message.contains("1 workloads at once"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The first one ends: its share is given back.
    s.workloads
        .finish("01V0", &done(WorkloadStatus::Failed, 0), &Expect::Live)
        .await
        .unwrap();
    s.workloads.enqueue(&w, &spec, &quota(1, 10)).await.unwrap();
    let (w, spec) = tenant("01V2");
    match s.workloads.enqueue(&w, &spec, &quota(10, 2)).await {
        Err(StoreError::Refused(Refusal::OverQuota {
            retry_after_s,
            message,
        })) => {
            assert!((1..=60).contains(&retry_after_s), "{retry_after_s}");
            assert!(message.contains("last minute"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let (mut w, spec) = tenant("01V3");
    w.mem_limit = 1024;
    assert!(matches!(
        s.workloads.enqueue(&w, &spec, &quota(10, 10)).await,
        Err(StoreError::Refused(Refusal::Forbidden(_)))
    ));
}

async fn kill_requests_reach_the_node_running_the_workload(s: Stores) {
    let (w, spec) = workload("01K", Isolation::Isolate);
    put(&s, &w, &spec).await;
    run_on(&s, "b", Isolation::Isolate).await;
    assert!(s.workloads.kill_requests("b").await.unwrap().is_empty());
    let asked = s.workloads.request_kill("01K").await.unwrap();
    assert_eq!(asked.status, WorkloadStatus::Running);
    assert_eq!(s.workloads.kill_requests("b").await.unwrap(), ["01K"]);
    assert!(s.workloads.kill_requests("a").await.unwrap().is_empty());
    s.workloads
        .finish("01K", &done(WorkloadStatus::Killed, 3), &Expect::Live)
        .await
        .unwrap();
    assert!(s.workloads.kill_requests("b").await.unwrap().is_empty());
}

fn node(id: &str, heartbeat_at: OffsetDateTime) -> NodeRecord {
    NodeRecord {
        id: id.into(),
        hostname: "host".into(),
        version: "0.1.0".into(),
        cpus: 2,
        memory_total_mb: 1024,
        memory_used_mb: 512,
        active_workloads: 0,
        backends: Vec::new(),
        started_at: heartbeat_at,
        heartbeat_at,
        left_at: None,
        instances: Default::default(),
        addresses: vec!["192.0.2.7".parse().unwrap()],
        api_url: String::new(),
    }
}

async fn a_lost_nodes_running_work_fails_naming_it_and_its_claims_go_back(s: Stores) {
    let now = OffsetDateTime::now_utc();
    let old = now - time::Duration::seconds(30);
    s.nodes.heartbeat(&node("alive", now)).await.unwrap();
    s.nodes.heartbeat(&node("dead", old)).await.unwrap();
    // A node's addresses (for the others' egress rules) come back as recorded.
    let nodes = s.nodes.nodes().await.unwrap();
    assert_eq!(nodes.len(), 2);
    for n in &nodes {
        assert_eq!(
            n.addresses,
            [std::net::Ipv4Addr::new(192, 0, 2, 7)],
            "{n:?}"
        );
    }
    for i in 0..3 {
        let (w, spec) = workload(&format!("01L{i}"), Isolation::Isolate);
        put(&s, &w, &spec).await;
    }
    run_on(&s, "dead", Isolation::Isolate).await; // 01L0 runs on dead
    s.workloads.claim("dead", Isolation::Isolate).await.unwrap(); // 01L1 claimed by dead
    run_on(&s, "alive", Isolation::Isolate).await; // 01L2 runs on alive
    let lease = time::Duration::seconds(10);
    let kept = s.nodes.housekeep(now - lease).await.unwrap();
    assert!(kept.led);
    assert_eq!(kept.lost_nodes, ["dead"]);
    assert_eq!(kept.failed, ["01L0"]);
    assert_eq!(kept.requeued, ["01L1"]);
    let failed = s.workloads.get("01L0").await.unwrap();
    assert_eq!(failed.status, WorkloadStatus::Failed);
    assert!(failed.error.unwrap().contains("node dead was lost"));
    assert_eq!(s.workloads.get("01L1").await.unwrap().node_id, None);
    assert_eq!(
        s.workloads.get("01L2").await.unwrap().status,
        WorkloadStatus::Running
    );
    let again = s.nodes.housekeep(now - lease).await.unwrap();
    assert!(
        again.lost_nodes.is_empty() && again.failed.is_empty(),
        "{again:?}"
    );
    let states: Vec<(String, NodeState)> = s
        .nodes
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| {
            let state = n.state(now, lease);
            (n.id, state)
        })
        .collect();
    assert_eq!(
        states,
        [
            ("alive".into(), NodeState::Live),
            ("dead".into(), NodeState::Lost)
        ]
    );
    s.nodes.leave("alive", now).await.unwrap();
    let alive = s.nodes.nodes().await.unwrap().remove(0);
    assert_eq!(alive.state(now, lease), NodeState::Left);
    s.nodes.heartbeat(&node("alive", now)).await.unwrap();
    let back = s.nodes.nodes().await.unwrap().remove(0);
    assert_eq!(
        back.state(now, lease),
        NodeState::Live,
        "a node that comes back rejoins"
    );
}

async fn keys_audit_and_quotas_persist_and_the_audit_log_is_append_only(s: Stores) {
    let key = ApiKey {
        id: "k1".into(),
        name: "ci".into(),
        role: Role::Developer,
        tenant: "a".into(),
        created_at: OffsetDateTime::now_utc(),
        expires_at: None,
        revoked_at: None,
        created_by: "bootstrap".into(),
    };
    s.access.create_key(&key, "hash-of-secret").await.unwrap();
    let (found, hash) = s.access.key("k1").await.unwrap();
    assert_eq!(
        (found.role, hash.as_str()),
        (Role::Developer, "hash-of-secret")
    );
    assert!(matches!(
        s.access.key("nope").await,
        Err(StoreError::NotFound(_))
    ));
    let revoked = s
        .access
        .revoke_key("k1", OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    let verifiable = s.access.verifiable_keys().await.unwrap();
    assert_eq!(verifiable.len(), 1);
    assert_eq!(
        (verifiable[0].0.id.as_str(), verifiable[0].1.as_str()),
        ("k1", "hash-of-secret")
    );
    assert!(
        verifiable[0].0.revoked_at.is_some(),
        "revocations are read too"
    );
    assert_eq!(s.access.keys(Some("a")).await.unwrap().len(), 1);
    assert!(s.access.keys(Some("b")).await.unwrap().is_empty());

    // One batch: its records in order, each when it happened (not when written).
    let mut batch = [audit("workload.create", 3), audit("key.revoke", 3)];
    batch[0].at -= time::Duration::seconds(2);
    s.access.append_audit(&batch).await.unwrap();
    let all = s
        .access
        .audit(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter()
            .map(|e| (e.action.as_str(), e.count))
            .collect::<Vec<_>>(),
        [("key.revoke", 3), ("workload.create", 3)]
    );
    assert!(all[0].seq > all[1].seq, "{all:?}");
    assert_eq!(
        all[1].at.unix_timestamp(),
        batch[0].at.unix_timestamp(),
        "{all:?}"
    );
    assert_eq!(all[0].request_id.as_deref(), Some("req-key.revoke"));
    let one = s
        .access
        .audit(&AuditFilter {
            action: Some("key.revoke".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    for forged in [
        "UPDATE audit_log SET outcome = 'forged'",
        "DELETE FROM audit_log",
    ] {
        let refused = s.raw.execute(forged).await.unwrap_err();
        assert!(refused.contains("append-only"), "{forged}: {refused}");
    }

    assert_eq!(s.access.quota("a").await.unwrap(), None);
    let q = Quota {
        max_concurrent: 2,
        per_minute: 10,
        max_cpus: 2,
        max_mem_mb: 256,
        max_schedules: None,
        min_schedule_interval_s: None,
        egress_allow: vec![
            "*.example.org:443".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ],
    };
    s.access.set_quota("a", &q).await.unwrap();
    assert_eq!(s.access.quota("a").await.unwrap(), Some(q.clone()));
    let with_schedules = Quota {
        max_schedules: Some(5000),
        min_schedule_interval_s: Some(1),
        ..q
    };
    s.access.set_quota("a", &with_schedules).await.unwrap();
    assert_eq!(s.access.quota("a").await.unwrap(), Some(with_schedules));
}

fn audit(action: &str, count: u64) -> AuditEntry {
    AuditEntry {
        seq: 0,
        at: OffsetDateTime::now_utc(),
        actor: "k1".into(),
        role: Some("developer".into()),
        tenant: Some("a".into()),
        action: action.into(),
        target: Some("x".into()),
        outcome: "ok".into(),
        status: 200,
        detail: None,
        count,
        request_id: Some(format!("req-{action}")),
    }
}

async fn only_the_servers_retention_removes_audit_records_and_it_says_so(s: Stores) {
    let old = (OffsetDateTime::now_utc() - time::Duration::days(100)).unix_timestamp() * 1000;
    for action in ["old.one", "old.two"] {
        s.raw
            .execute(&format!(
                "INSERT INTO audit_log (at, actor, action, outcome, status, count) VALUES ({old}, 'k', '{action}', 'ok', 200, 1)"
            ))
            .await
            .unwrap();
    }
    s.access.append_audit(&[audit("recent", 1)]).await.unwrap();
    let refused = s
        .raw
        .execute("DELETE FROM audit_log WHERE action = 'old.one'")
        .await
        .unwrap_err();
    assert!(refused.contains("append-only"), "{refused}");
    let cutoff = OffsetDateTime::now_utc() - time::Duration::days(90);
    let removed = s
        .access
        .prune_audit(cutoff, &audit("audit.prune", 1))
        .await
        .unwrap();
    assert_eq!(removed, 2);
    let left: Vec<String> = s
        .access
        .audit(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {}", e.action, e.detail.unwrap_or_default()))
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left[0].starts_with("audit.prune 2 records older than"),
        "{left:?}"
    );
    let refused = s.raw.execute("DELETE FROM audit_log").await.unwrap_err();
    assert!(
        refused.contains("append-only"),
        "the gate is closed again: {refused}"
    );
    assert_eq!(
        s.access
            .prune_audit(cutoff, &audit("audit.prune", 1))
            .await
            .unwrap(),
        0
    );
}

fn image(reference: &str, default: bool) -> ImageRecord {
    ImageRecord {
        reference: reference.into(),
        digest: format!("sha256:{}", "b".repeat(64)),
        layers: vec![format!("sha256:{}", "c".repeat(64))],
        size_bytes: 10,
        config: ImageConfig::default(),
        resources: None,
        default,
        pulled_at: OffsetDateTime::now_utc(),
        nodes: Vec::new(),
        microvm: Vec::new(),
    }
}

async fn images_are_registered_once_with_one_default_and_the_nodes_that_have_them(s: Stores) {
    s.images.put_image(&image("r/a:1", true)).await.unwrap();
    s.images.put_image(&image("r/b:1", true)).await.unwrap();
    s.images.image_pulled("r/a:1", "n2").await.unwrap();
    s.images.image_pulled("r/a:1", "n1").await.unwrap();
    s.images.image_pulled("r/a:1", "n1").await.unwrap();
    let all = s.images.images().await.unwrap();
    let summary: Vec<(&str, bool, Vec<String>)> = all
        .iter()
        .map(|i| (i.reference.as_str(), i.default, i.nodes.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("r/a:1", false, vec!["n1".to_owned(), "n2".to_owned()]),
            ("r/b:1", true, vec![])
        ]
    );
    // What a node keeps for microVMs of a digest shows on every reference it pulled.
    let digest = image("r/a:1", false).digest;
    let kept = TemplateOnNode {
        root_bytes: 5,
        snapshots: 2,
        snapshot_bytes: 7,
    };
    s.images
        .image_template(&digest, "n1", Some(&kept))
        .await
        .unwrap();
    let microvm = |all: Vec<ImageRecord>| -> Vec<(String, Vec<NodeTemplate>)> {
        all.into_iter().map(|i| (i.reference, i.microvm)).collect()
    };
    let on_n1 = vec![NodeTemplate {
        node: "n1".into(),
        template: kept.clone(),
    }];
    assert_eq!(
        microvm(s.images.images().await.unwrap()),
        [("r/a:1".to_owned(), on_n1), ("r/b:1".to_owned(), vec![])],
        "r/b:1 has the digest too, but n1 has not pulled it"
    );
    s.images.image_template(&digest, "n1", None).await.unwrap();
    assert_eq!(
        microvm(s.images.images().await.unwrap()),
        [("r/a:1".to_owned(), vec![]), ("r/b:1".to_owned(), vec![])]
    );
    assert!(s.images.remove_image("r/a:1").await.unwrap());
    assert!(!s.images.remove_image("r/a:1").await.unwrap());
    assert_eq!(s.images.images().await.unwrap().len(), 1);
}

fn function_code(code: &str) -> FunctionCode {
    FunctionCode {
        run: Code {
            runtime: Runtime::Node,
            isolation: Isolation::Auto,
            code: Some(code.into()),
            code_archive: Some(vec![9, 9]),
            image: None,
            command: None,
            env: Default::default(),
            secrets: Vec::new(),
            resources: Resources::default(),
            network: Default::default(),
        },
        reuse: true,
        max_instances: 2,
        idle_timeout_s: 60,
        public: false,
        triggers: Vec::new(),
    }
}

async fn functions_deploy_immutable_versions_roll_back_and_count_invocations(s: Stores) {
    let f = &s.functions;
    let first = f
        .deploy("t", "hello", &function_code("v1"), "d1")
        .await
        .unwrap();
    assert_eq!(
        (first.version.version, first.created, first.changed),
        (1, true, true)
    );
    assert_eq!(first.version.code.run.code_archive, Some(vec![9, 9]));
    let same = f
        .deploy("t", "hello", &function_code("v1"), "d1")
        .await
        .unwrap();
    assert_eq!(
        (same.version.version, same.created, same.changed),
        (1, false, false)
    );
    let second = f
        .deploy("t", "hello", &function_code("v2"), "d2")
        .await
        .unwrap();
    assert_eq!(
        (second.version.version, second.created, second.changed),
        (2, false, true)
    );
    assert_eq!(f.function("t", "hello").await.unwrap().active_version, 2);
    let back = f.activate("t", "hello", 1).await.unwrap();
    assert_eq!((back.active_version, back.latest_version), (1, 2));
    assert!(matches!(
        f.activate("t", "hello", 9).await,
        Err(StoreError::Missing(_))
    ));
    let v1 = f.version("t", "hello", 1).await.unwrap();
    assert_eq!(
        (v1.digest.as_str(), v1.code.run.code.as_deref()),
        ("d1", Some("v1"))
    );
    let versions: Vec<u32> = f
        .versions("t", "hello")
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, [2, 1]);
    assert!(
        matches!(f.function("u", "hello").await, Err(StoreError::Missing(_))),
        "per tenant"
    );

    // Invocations are workloads naming the function; they are counted and listed.
    for i in 0..3 {
        let (mut w, spec) = workload(&format!("01FN{i}"), Isolation::Isolate);
        w.tenant = "t".into();
        w.function = Some("hello".into());
        w.function_version = Some(1);
        put(&s, &w, &spec).await;
    }
    let (other, spec) = workload("01FN9", Isolation::Isolate);
    put(&s, &other, &spec).await;
    assert_eq!(f.function("t", "hello").await.unwrap().invocations, 3);
    let page = s
        .workloads
        .list(&ListFilter {
            function: Some("hello".into()),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((page.total, page.workloads.len()), (3, 2));
    assert_eq!(page.workloads[0].function_version, Some(1));

    f.delete_function("t", "hello").await.unwrap();
    assert!(matches!(
        f.function("t", "hello").await,
        Err(StoreError::Missing(_))
    ));
    assert!(f.functions(Some("t")).await.unwrap().is_empty());
    assert!(matches!(
        f.delete_function("t", "hello").await,
        Err(StoreError::Missing(_))
    ));
    assert_eq!(
        s.workloads.get("01FN0").await.unwrap().function.as_deref(),
        Some("hello"),
        "its invocations stay"
    );
    let again = f
        .deploy("t", "hello", &function_code("v1"), "d1")
        .await
        .unwrap();
    assert_eq!(
        (again.version.version, again.created),
        (3, true),
        "versions go on"
    );
}

/// A moment `s` seconds from a whole second, as stores keep it (milliseconds).
fn at(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_900_000_000 + s).unwrap()
}

fn schedule(id: &str, tenant: &str, next: i64) -> Schedule {
    Schedule {
        id: id.into(),
        tenant: tenant.into(),
        function: "f".into(),
        cron: "*/2 * * * * *".into(),
        timezone: "UTC".into(),
        input: serde_json::json!({"x": 1}),
        overlap: Overlap::Skip,
        enabled: true,
        next_run_at: Some(at(next)),
        last_run_at: None,
        last_workload_id: None,
        skipped_ticks: 0,
        last_skipped_at: None,
        last_skip_reason: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

async fn schedules_are_held_to_a_count_changed_only_as_read_and_taken_fairly(s: Stores) {
    for i in 0..3 {
        s.schedules
            .create_schedule(&schedule(&format!("a{i}"), "a", 10 + i), 3)
            .await
            .unwrap();
    }
    match s
        .schedules
        .create_schedule(&schedule("a3", "a", 10), 3)
        .await
    {
        Err(StoreError::Refused(Refusal::Forbidden(m))) => assert!(m.contains("max_schedules")),
        other => panic!("a fourth schedule over a count of 3: {other:?}"),
    }
    s.schedules
        .create_schedule(&schedule("b0", "b", 12), 3)
        .await
        .expect("another tenant's count is its own");
    // Due: each tenant's earliest first, then each one's second.
    let due: Vec<String> = s
        .schedules
        .due_schedules(at(50), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(due, ["a0", "b0", "a1", "a2"]);
    let two: Vec<String> = s
        .schedules
        .due_schedules(at(50), 2)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(two, ["a0", "b0"], "b is not behind all of a's");
    // A change written over a tick that moved since it was read is refused, and changes
    // nothing; the function is among what a change writes.
    let read = s.schedules.schedule(None, "b0").await.unwrap();
    let moved = Tick {
        schedule_id: "b0".into(),
        at: at(12),
        next: Some(at(14)),
    };
    assert!(s
        .schedules
        .skip_tick(&moved, "fired elsewhere")
        .await
        .unwrap());
    let mut changed = read.clone();
    changed.function = "g".into();
    assert!(!s
        .schedules
        .update_schedule(&changed, read.next_run_at)
        .await
        .unwrap());
    let now = s.schedules.schedule(None, "b0").await.unwrap();
    assert_eq!(
        (now.function.as_str(), now.next_run_at),
        ("f", Some(at(14)))
    );
    changed.next_run_at = now.next_run_at;
    assert!(s
        .schedules
        .update_schedule(&changed, now.next_run_at)
        .await
        .unwrap());
    assert_eq!(
        s.schedules.schedule(None, "b0").await.unwrap().function,
        "g"
    );
    assert!(matches!(
        s.schedules
            .update_schedule(&schedule("nope", "b", 1), None)
            .await,
        Err(StoreError::Missing(_))
    ));
}

async fn each_tick_fires_once_with_its_run_and_skips_are_recorded(s: Stores) {
    s.schedules
        .create_schedule(&schedule("s1", "t", 10), 100)
        .await
        .unwrap();
    s.schedules
        .create_schedule(&schedule("s2", "u", 30), 100)
        .await
        .unwrap();
    assert_eq!(
        s.schedules.schedule(None, "s1").await.unwrap(),
        schedule("s1", "t", 10)
    );
    assert!(matches!(
        s.schedules.schedule(Some("u"), "s1").await,
        Err(StoreError::Missing(_))
    ));
    assert_eq!(s.schedules.schedules(Some("u")).await.unwrap().len(), 1);
    assert_eq!(s.schedules.next_tick().await.unwrap(), Some(at(10)));
    let due: Vec<String> = s
        .schedules
        .due_schedules(at(20), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(due, ["s1"]);

    // Two fires of one tick: the run of the first is stored, the second stores nothing.
    let tick = Tick {
        schedule_id: "s1".into(),
        at: at(10),
        next: Some(at(12)),
    };
    let fire = Admission {
        fire: Some(tick.clone()),
        ..Admission::default()
    };
    let (mut w1, spec1) = workload("01FIRE1", Isolation::Isolate);
    w1.trigger = Some(Trigger {
        kind: "schedule".into(),
        id: "s1".into(),
    });
    s.workloads.enqueue(&w1, &spec1, &fire).await.unwrap();
    let (mut w2, spec2) = workload("01FIRE2", Isolation::Isolate);
    w2.trigger = w1.trigger.clone();
    assert!(matches!(
        s.workloads.enqueue(&w2, &spec2, &fire).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.workloads.get("01FIRE2").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        !s.schedules.skip_tick(&tick, "late").await.unwrap(),
        "the tick is taken"
    );
    let fired = s.schedules.schedule(None, "s1").await.unwrap();
    assert_eq!(
        (
            fired.next_run_at,
            fired.last_run_at,
            fired.last_workload_id.as_deref()
        ),
        (Some(at(12)), Some(at(10)), Some("01FIRE1"))
    );
    assert_eq!(
        s.workloads.get("01FIRE1").await.unwrap().trigger,
        w1.trigger
    );
    let page = s
        .workloads
        .list(&ListFilter {
            schedule: Some("s1".into()),
            limit: 10,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!((page.workloads.len(), page.total), (1, 1));

    // A skipped tick moves on and says why.
    let next = Tick {
        schedule_id: "s1".into(),
        at: at(12),
        next: Some(at(14)),
    };
    assert!(s
        .schedules
        .skip_tick(&next, "the previous run is still going")
        .await
        .unwrap());
    let skipped = s.schedules.schedule(None, "s1").await.unwrap();
    assert_eq!(
        (
            skipped.skipped_ticks,
            skipped.last_skipped_at,
            skipped.next_run_at
        ),
        (1, Some(at(12)), Some(at(14)))
    );

    // Disabled: never due, and its ticks cannot be claimed.
    let mut off = skipped.clone();
    off.enabled = false;
    off.next_run_at = None;
    assert!(s
        .schedules
        .update_schedule(&off, Some(at(14)))
        .await
        .unwrap());
    assert!(s
        .schedules
        .due_schedules(at(100), 10)
        .await
        .unwrap()
        .iter()
        .all(|x| x.id != "s1"));
    assert_eq!(s.schedules.next_tick().await.unwrap(), Some(at(30)));
    s.schedules.delete_schedule(Some("u"), "s2").await.unwrap();
    assert!(matches!(
        s.schedules.delete_schedule(Some("u"), "s1").await,
        Err(StoreError::Missing(_))
    ));
    assert_eq!(s.schedules.next_tick().await.unwrap(), None);
}

async fn secrets_keep_sealed_values_with_versions_and_reseal_only_what_did_not_change(s: Stores) {
    let sealed = |n: u8| Sealed {
        key_id: format!("k{n}"),
        nonce: vec![n; 24],
        ciphertext: vec![n, 0, 255, n],
    };
    let first = s.secrets.put_secret("t", "DB", &sealed(1)).await.unwrap();
    assert_eq!((first.version, first.name.as_str()), (1, "DB"));
    let second = s.secrets.put_secret("t", "DB", &sealed(2)).await.unwrap();
    assert_eq!(second.version, 2);
    s.secrets.put_secret("u", "DB", &sealed(3)).await.unwrap();
    let (info, value) = s.secrets.secret("t", "DB").await.unwrap();
    assert_eq!((info.version, value), (2, sealed(2)));
    assert!(matches!(
        s.secrets.secret("t", "NOPE").await,
        Err(StoreError::Missing(_))
    ));
    let names: Vec<(String, String)> = s
        .secrets
        .secrets(None)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.tenant, i.name))
        .collect();
    assert_eq!(
        names,
        [("t".into(), "DB".into()), ("u".into(), "DB".into())]
    );
    assert_eq!(s.secrets.secrets(Some("u")).await.unwrap().len(), 1);

    assert!(
        !s.secrets.reseal("t", "DB", 1, &sealed(9)).await.unwrap(),
        "version 1 is gone"
    );
    assert!(s.secrets.reseal("t", "DB", 2, &sealed(9)).await.unwrap());
    let (info, value) = s.secrets.secret("t", "DB").await.unwrap();
    assert_eq!(
        (info.version, value),
        (2, sealed(9)),
        "the same version, sealed again"
    );
    assert_eq!(s.secrets.sealed_secrets().await.unwrap().len(), 2);
    s.secrets.delete_secret("t", "DB").await.unwrap();
    assert!(matches!(
        s.secrets.delete_secret("t", "DB").await,
        Err(StoreError::Missing(_))
    ));
}

/// Each contract test, once per store.
async fn workloads_created_per_minute_come_from_a_range_of_ids_per_tenant(s: Stores) {
    let now = OffsetDateTime::now_utc();
    let minute = |t: OffsetDateTime| t.unix_timestamp().div_euclid(60);
    let at = |ago_s: i64, tenant: &str, n: u128| {
        let created = now - time::Duration::seconds(ago_s);
        let created = created
            .replace_nanosecond(created.nanosecond() / 1_000_000 * 1_000_000)
            .unwrap();
        let ms = (created.unix_timestamp_nanos() / 1_000_000) as u64;
        let id = ulid::Ulid::from_parts(ms, n).to_string();
        let (mut w, spec) = workload(&id, Isolation::Isolate);
        w.created_at = created;
        w.tenant = tenant.into();
        (w, spec)
    };
    for (ago, tenant, n) in [(0, "a", 1), (0, "a", 2), (120, "b", 3), (7200, "a", 4)] {
        let (w, spec) = at(ago, tenant, n);
        put(&s, &w, &spec).await;
    }
    let since = now - time::Duration::hours(1);
    let all = s.stats.created_per_minute(None, since).await.unwrap();
    let two_ago = minute(now - time::Duration::seconds(120));
    assert_eq!(
        all,
        std::collections::BTreeMap::from([(two_ago, 1), (minute(now), 2)]),
        "the one two hours old is outside the window"
    );
    let a = s.stats.created_per_minute(Some("a"), since).await.unwrap();
    assert_eq!(a, std::collections::BTreeMap::from([(minute(now), 2)]));
    let none = s.stats.created_per_minute(Some("c"), since).await.unwrap();
    assert!(none.is_empty());
}

fn sandbox(id: &str, tenant: &str, node: &str, label: &str) -> Sandbox {
    Sandbox {
        id: id.into(),
        tenant: tenant.into(),
        node_id: node.into(),
        isolation: Isolation::Gvisor,
        image: "busybox".into(),
        resources: SandboxResources {
            cpus: 1,
            mem_mb: 128,
            disk_mb: 256,
        },
        metadata: [("label".to_owned(), label.to_owned())].into(),
        state: SandboxState::Running,
        pause_mode: None,
        end_reason: None,
        on_timeout: vulcan_domain::OnTimeout::Kill,
        auto_resume: false,
        started_at: at(100),
        end_at: at(400),
        ended_at: None,
        access_token: format!("token-of-{id}"),
        volumes: Vec::new(),
    }
}

/// Room for `max_live` sandboxes, with memory and disk to spare.
fn room(max_live: u32) -> SandboxRoom {
    SandboxRoom {
        max_live,
        max_mem_mb: u32::MAX,
        max_disk_mb: u32::MAX,
    }
}

async fn sandboxes_are_listed_by_tenant_state_and_metadata_and_change_only_from_their_state(
    s: Stores,
) {
    let store = &s.sandboxes;
    for (id, tenant, label) in [
        ("s1", "a", "x"),
        ("s2", "a", "y"),
        ("s3", "b", "x"),
        ("s4", "a", "x"),
    ] {
        store
            .insert_sandbox(&sandbox(id, tenant, "n1", label), &room(3))
            .await
            .unwrap();
    }
    assert_eq!(
        store.sandbox("s2").await.unwrap(),
        sandbox("s2", "a", "n1", "y")
    );
    match store
        .insert_sandbox(&sandbox("s5", "a", "n1", "x"), &room(3))
        .await
    {
        Err(StoreError::Refused(Refusal::OverQuota { message, .. })) => {
            assert!(message.contains("3 running or paused"), "{message}")
        }
        other => panic!("a fourth live sandbox of tenant a must be refused: {other:?}"),
    }
    assert!(matches!(
        store.sandbox("s5").await,
        Err(StoreError::NotFound(_))
    ));

    let ids = |page: vulcan_domain::SandboxPage| {
        page.sandboxes.into_iter().map(|s| s.id).collect::<Vec<_>>()
    };
    let mut filter = SandboxFilter {
        tenant: Some("a".into()),
        limit: 2,
        ..SandboxFilter::default()
    };
    let first = store.sandboxes(&filter).await.unwrap();
    assert_eq!(
        first.next.as_deref(),
        Some("s2"),
        "newest first, a cursor to the rest"
    );
    assert_eq!(ids(first), ["s4", "s2"]);
    filter.before = Some("s2".into());
    let second = store.sandboxes(&filter).await.unwrap();
    assert_eq!(second.next, None);
    assert_eq!(ids(second), ["s1"]);
    let labelled = SandboxFilter {
        tenant: Some("a".into()),
        metadata: [("label".to_owned(), "x".to_owned())].into(),
        limit: 10,
        ..SandboxFilter::default()
    };
    assert_eq!(ids(store.sandboxes(&labelled).await.unwrap()), ["s4", "s1"]);
    let everyone = SandboxFilter {
        metadata: [("label".to_owned(), "x".to_owned())].into(),
        limit: 10,
        ..SandboxFilter::default()
    };
    assert_eq!(
        ids(store.sandboxes(&everyone).await.unwrap()),
        ["s4", "s3", "s1"]
    );

    let paused = store
        .set_sandbox_state("s1", SandboxState::Running, SandboxState::Paused, None)
        .await
        .unwrap();
    assert_eq!(paused.state, SandboxState::Paused);
    assert!(
        matches!(
            store
                .set_sandbox_state("s1", SandboxState::Running, SandboxState::Ended, None)
                .await,
            Err(StoreError::Conflict(_))
        ),
        "a paused sandbox is not moved as if it were running"
    );
    let ended = store
        .set_sandbox_state(
            "s1",
            SandboxState::Paused,
            SandboxState::Ended,
            Some("deleted"),
        )
        .await
        .unwrap();
    assert_eq!(ended.end_reason.as_deref(), Some("deleted"));
    assert!(ended.ended_at.is_some());
    let running = SandboxFilter {
        tenant: Some("a".into()),
        state: Some(SandboxState::Running),
        limit: 10,
        ..SandboxFilter::default()
    };
    assert_eq!(ids(store.sandboxes(&running).await.unwrap()), ["s4", "s2"]);
    store
        .insert_sandbox(&sandbox("s5", "a", "n2", "x"), &room(3))
        .await
        .expect("an ended sandbox no longer counts against the quota");

    // Memory counts a tenant's running sandboxes, disk its running and paused ones (each
    // of these holds 128 MiB of memory and 256 MiB of disk).
    let tight = SandboxRoom {
        max_live: 10,
        max_mem_mb: 300,
        max_disk_mb: 600,
    };
    let refusal = |result: Result<(), StoreError>| match result {
        Err(StoreError::Refused(Refusal::OverQuota { message, .. })) => message,
        other => panic!("over the room, it must be refused: {other:?}"),
    };
    for id in ["m1", "m2"] {
        store
            .insert_sandbox(&sandbox(id, "m", "n1", "x"), &tight)
            .await
            .unwrap();
    }
    let message = refusal(
        store
            .insert_sandbox(&sandbox("m3", "m", "n1", "x"), &tight)
            .await,
    );
    assert!(
        message.contains("VULCAN_SANDBOX_TENANT_MEM_MB"),
        "{message}"
    );
    // Paused frozen, it keeps its memory; saved, it holds none.
    let frozen = store
        .set_sandbox_state(
            "m2",
            SandboxState::Running,
            SandboxState::Paused,
            Some(PauseMode::Frozen.as_str()),
        )
        .await
        .unwrap();
    assert_eq!(frozen.pause_mode, Some(PauseMode::Frozen));
    let message = refusal(
        store
            .insert_sandbox(&sandbox("m3", "m", "n1", "x"), &tight)
            .await,
    );
    assert!(
        message.contains("VULCAN_SANDBOX_TENANT_MEM_MB"),
        "a frozen sandbox holds its memory: {message}"
    );
    let thawed = store
        .set_sandbox_state("m2", SandboxState::Paused, SandboxState::Running, None)
        .await
        .unwrap();
    assert_eq!(thawed.pause_mode, None);
    let saved = store
        .set_sandbox_state("m2", SandboxState::Running, SandboxState::Paused, None)
        .await
        .unwrap();
    assert_eq!(saved.pause_mode, Some(PauseMode::Saved));
    assert_eq!(
        store.sandbox("m2").await.unwrap().pause_mode,
        Some(PauseMode::Saved)
    );
    let message = refusal(
        store
            .insert_sandbox(&sandbox("m3", "m", "n1", "x"), &tight)
            .await,
    );
    assert!(
        message.contains("VULCAN_SANDBOX_TENANT_DISK_MB"),
        "{message}"
    );
    let roomier = SandboxRoom {
        max_disk_mb: 800,
        ..tight
    };
    store
        .insert_sandbox(&sandbox("m3", "m", "n1", "x"), &roomier)
        .await
        .expect("a paused sandbox holds no memory");
    for id in ["m1", "m2", "m3"] {
        let s = store.sandbox(id).await.unwrap();
        store
            .set_sandbox_state(id, s.state, SandboxState::Ended, None)
            .await
            .unwrap();
    }

    let moved = store.set_sandbox_deadline("s2", at(900)).await.unwrap();
    assert_eq!(moved.end_at, at(900));
    assert_eq!(store.sandbox("s2").await.unwrap().end_at, at(900));
    assert_eq!(
        store.sandbox("s2").await.unwrap().access_token,
        "token-of-s2",
        "the envd token is kept with the sandbox"
    );
    assert!(matches!(
        store.set_sandbox_deadline("s1", at(900)).await,
        Err(StoreError::Conflict(_))
    ));
    let on_n1 = store
        .sandboxes_on("n1", SandboxState::Running)
        .await
        .unwrap();
    assert_eq!(
        on_n1.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["s2", "s3", "s4"]
    );
    assert!(matches!(
        store.sandbox("nope").await,
        Err(StoreError::NotFound(_))
    ));
}

fn volume(tenant: &str, name: &str) -> Volume {
    Volume {
        id: format!("vol-{tenant}-{name}"),
        tenant: tenant.into(),
        name: name.into(),
        size_mb: 64,
        node_id: "n1".into(),
        created_at: at(100),
    }
}

fn mounting(id: &str, tenant: &str, mounts: &[(&str, bool)]) -> Sandbox {
    Sandbox {
        volumes: mounts
            .iter()
            .map(|(name, read_only)| VolumeMount {
                name: (*name).into(),
                path: format!("/mnt/{name}"),
                read_only: *read_only,
            })
            .collect(),
        ..sandbox(id, tenant, "n1", "x")
    }
}

async fn volumes_are_a_tenants_own_with_one_writer_and_are_not_deleted_while_mounted(s: Stores) {
    let store = &s.sandboxes;
    store.insert_volume(&volume("a", "data"), 3).await.unwrap();
    store
        .insert_volume(&volume("b", "data"), 3)
        .await
        .expect("another tenant's name is its own");
    assert!(matches!(
        store.insert_volume(&volume("a", "data"), 3).await,
        Err(StoreError::Conflict(_))
    ));
    store.insert_volume(&volume("a", "logs"), 2).await.unwrap();
    assert!(matches!(
        store.insert_volume(&volume("a", "more"), 2).await,
        Err(StoreError::Refused(Refusal::OverQuota { .. }))
    ));
    let names = |v: Vec<Volume>| {
        v.into_iter()
            .map(|v| format!("{}/{}", v.tenant, v.name))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.volumes(Some("a")).await.unwrap()),
        ["a/data", "a/logs"]
    );
    assert_eq!(
        names(store.volumes(None).await.unwrap()),
        ["a/data", "b/data", "a/logs"]
    );
    assert_eq!(
        store.volume("b", "data").await.unwrap(),
        volume("b", "data")
    );
    assert!(matches!(
        store.volume("b", "logs").await,
        Err(StoreError::NotFound(_))
    ));

    // One writer, and no reader beside it; readers together.
    store
        .insert_sandbox(&mounting("w1", "a", &[("data", false)]), &room(10))
        .await
        .unwrap();
    for (id, read_only) in [("w2", false), ("r1", true)] {
        let refused = store
            .insert_sandbox(&mounting(id, "a", &[("data", read_only)]), &room(10))
            .await;
        assert!(
            matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("w1")),
            "{refused:?}"
        );
    }
    store
        .insert_sandbox(&mounting("r1", "a", &[("logs", true)]), &room(10))
        .await
        .unwrap();
    store
        .insert_sandbox(&mounting("r2", "a", &[("logs", true)]), &room(10))
        .await
        .expect("readers together");
    assert!(matches!(
        store
            .insert_sandbox(&mounting("w3", "a", &[("logs", false)]), &room(10))
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .insert_sandbox(&mounting("w4", "b", &[("data", false)]), &room(10))
        .await
        .expect("tenant b's volume of the same name is another");

    // Not deleted while mounted (paused counts); once its sandbox ended, it goes.
    assert!(
        matches!(store.delete_volume("a", "data").await, Err(StoreError::Conflict(m)) if m.contains("w1"))
    );
    store
        .set_sandbox_state("w1", SandboxState::Running, SandboxState::Paused, None)
        .await
        .unwrap();
    assert!(matches!(
        store.delete_volume("a", "data").await,
        Err(StoreError::Conflict(_))
    ));
    store
        .set_sandbox_state(
            "w1",
            SandboxState::Paused,
            SandboxState::Ended,
            Some("deleted"),
        )
        .await
        .unwrap();
    let gone = store.delete_volume("a", "data").await.unwrap();
    assert_eq!(gone.name, "data");
    assert!(matches!(
        store.delete_volume("a", "data").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.sandbox("w1").await.unwrap().volumes[0].name, "data");
}

async fn a_workload_holds_its_volumes_to_its_end_and_only_their_node_claims_it(s: Stores) {
    let store = &s.sandboxes;
    store.insert_volume(&volume("a", "data"), 5).await.unwrap();
    store.insert_volume(&volume("a", "refs"), 5).await.unwrap();
    let mounting_workload = |id: &str, mounts: &[(&str, bool)]| {
        let (mut w, mut spec) = workload(id, Isolation::Gvisor);
        w.tenant = "a".into();
        spec.tenant = "a".into();
        spec.volumes = mounting("x", "a", mounts).volumes;
        spec.node = Some("n1".into());
        (w, spec)
    };
    // A pending writer holds its volume against another writer, a reader, a sandbox
    // and the volume's deletion.
    let (w, spec) = mounting_workload("01V1", &[("data", false)]);
    s.workloads
        .enqueue(&w, &spec, &Admission::default())
        .await
        .unwrap();
    let (w2, spec2) = mounting_workload("01V2", &[("data", true)]);
    let refused = s
        .workloads
        .enqueue(&w2, &spec2, &Admission::default())
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("workload 01V1")),
        "{refused:?}"
    );
    assert!(
        matches!(s.workloads.get("01V2").await, Err(StoreError::NotFound(_))),
        "a refused workload is not stored"
    );
    let refused = store
        .insert_sandbox(&mounting("sx", "a", &[("data", true)]), &room(10))
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("01V1")),
        "{refused:?}"
    );
    assert!(matches!(
        store.delete_volume("a", "data").await,
        Err(StoreError::Conflict(m)) if m.contains("workload 01V1")
    ));
    // Readers together, a sandbox among them.
    let (r1, spec) = mounting_workload("01V3", &[("refs", true)]);
    s.workloads
        .enqueue(&r1, &spec, &Admission::default())
        .await
        .unwrap();
    store
        .insert_sandbox(&mounting("sr", "a", &[("refs", true)]), &room(10))
        .await
        .expect("readers together");
    let (w4, spec) = mounting_workload("01V4", &[("refs", false)]);
    assert!(matches!(
        s.workloads.enqueue(&w4, &spec, &Admission::default()).await,
        Err(StoreError::Conflict(m)) if m.contains("sandbox sr")
    ));
    // Only the volumes' node claims them; another node's claims pass over them.
    let (free, spec) = workload("01V5", Isolation::Gvisor);
    put(&s, &free, &spec).await;
    let other = s.workloads.claim("n2", Isolation::Gvisor).await.unwrap();
    assert_eq!(other.map(|c| c.workload.id).as_deref(), Some("01V5"));
    assert!(s
        .workloads
        .claim("n2", Isolation::Gvisor)
        .await
        .unwrap()
        .is_none());
    let claimed = s
        .workloads
        .claim("n1", Isolation::Gvisor)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.workload.id, "01V1");
    assert_eq!(
        claimed.spec.volumes,
        mounting("x", "a", &[("data", false)]).volumes
    );
    assert_eq!(claimed.spec.node.as_deref(), Some("n1"));
    // Held while running; free once it ended.
    s.workloads.start("01V1", "n1", at(200)).await.unwrap();
    assert!(matches!(
        store.delete_volume("a", "data").await,
        Err(StoreError::Conflict(_))
    ));
    s.workloads
        .finish(
            "01V1",
            &done(WorkloadStatus::Completed, 5),
            &Expect::RunningOn("n1".into()),
        )
        .await
        .unwrap();
    store
        .insert_sandbox(&mounting("sw", "a", &[("data", false)]), &room(10))
        .await
        .expect("the workload's volume is free once it ended");
}

fn queue(tenant: &str, name: &str, config: QueueConfig) -> Queue {
    Queue {
        id: format!("q-{tenant}-{name}"),
        tenant: tenant.into(),
        name: name.into(),
        config,
        created_at: at(0),
        updated_at: at(0),
    }
}

fn message(body: &str) -> NewMessage {
    NewMessage {
        body: body.into(),
        delay_s: 0,
        dedup_id: None,
    }
}

async fn queues_deliver_each_message_to_one_consumer_until_acked_then_dead_letter_it(s: Stores) {
    let q = &s.queues;
    let short = QueueConfig {
        visibility_timeout_s: 10,
        max_receives: 2,
        dead_letter_queue: Some("dead".into()),
        ..QueueConfig::default()
    };
    // The dead-letter queue must exist first, be the tenant's, and lead nowhere back.
    assert!(matches!(
        q.put_queue(&queue("a", "jobs", short.clone()), 10).await,
        Err(StoreError::Missing(m)) if m.contains("dead")
    ));
    assert!(q
        .put_queue(&queue("a", "dead", QueueConfig::default()), 10)
        .await
        .unwrap());
    assert!(q
        .put_queue(&queue("a", "jobs", short.clone()), 10)
        .await
        .unwrap());
    assert!(
        !q.put_queue(&queue("a", "jobs", short.clone()), 10)
            .await
            .unwrap(),
        "changed, not made"
    );
    let back = QueueConfig {
        dead_letter_queue: Some("jobs".into()),
        ..QueueConfig::default()
    };
    assert!(matches!(
        q.put_queue(&queue("a", "dead", back), 10).await,
        Err(StoreError::Conflict(m)) if m.contains("cycle")
    ));
    assert!(
        matches!(
            q.put_queue(&queue("b", "jobs", short.clone()), 10).await,
            Err(StoreError::Missing(_))
        ),
        "another tenant's dead-letter queue is not found"
    );
    assert!(matches!(
        q.put_queue(&queue("a", "third", QueueConfig::default()), 2)
            .await,
        Err(StoreError::Refused(_))
    ));
    assert!(
        matches!(q.delete_queue("a", "dead").await, Err(StoreError::Conflict(m)) if m.contains("jobs"))
    );

    // Sent in order, received oldest first, each by one consumer.
    let t0 = at(100);
    let sent = q
        .send("a", "jobs", &[message("1"), message("2"), message("3")], t0)
        .await
        .unwrap();
    assert_eq!(sent.len(), 3);
    let first = q.receive("a", "jobs", 2, None, t0).await.unwrap();
    assert_eq!(
        first.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert_eq!(first[0].receive_count, 1);
    let second = q.receive("a", "jobs", 5, None, t0).await.unwrap();
    assert_eq!(second.len(), 1, "the first two are in flight");
    assert_eq!(second[0].body, "3");
    let definition = q.definition("a", "jobs").await.unwrap();
    assert_eq!(definition, q.queue("a", "jobs", t0).await.unwrap().queue);
    assert!(matches!(
        q.definition("b", "jobs").await,
        Err(StoreError::Missing(_))
    ));
    let counts = q.queue("a", "jobs", t0).await.unwrap().counts;
    assert_eq!((counts.depth, counts.in_flight), (0, 3));

    // Acknowledged: gone for good; a stale receipt acknowledges nothing.
    assert_eq!(
        q.ack("a", "jobs", &[first[0].receipt.clone(), "rcptnone".into()])
            .await
            .unwrap(),
        [true, false]
    );
    // Given back: visible again after its delay, with its error.
    assert!(q
        .nack("a", "jobs", &second[0].receipt, 5, Some("boom"), t0)
        .await
        .unwrap());
    assert!(
        !q.nack("a", "jobs", &second[0].receipt, 0, None, t0)
            .await
            .unwrap(),
        "its receipt is spent"
    );
    assert!(q
        .receive("a", "jobs", 5, None, at(101))
        .await
        .unwrap()
        .is_empty());
    // Past the visibility timeout "2" is delivered again; "3" after its delay.
    let again = q.receive("a", "jobs", 5, None, at(111)).await.unwrap();
    let bodies: Vec<_> = again
        .iter()
        .map(|d| (d.body.as_str(), d.receive_count, d.last_error.as_deref()))
        .collect();
    assert_eq!(bodies, [("2", 2, None), ("3", 2, Some("boom"))]);
    assert!(
        !q.ack("a", "jobs", &[first[1].receipt.clone()])
            .await
            .unwrap()[0],
        "the first delivery's receipt no longer acknowledges it"
    );
    // Received max_receives times and not acknowledged: moved to the dead-letter queue,
    // its last error kept.
    assert!(q
        .nack(
            "a",
            "jobs",
            &again[1].receipt,
            0,
            Some("boom again"),
            at(111)
        )
        .await
        .unwrap());
    assert!(q
        .receive("a", "jobs", 5, None, at(112))
        .await
        .unwrap()
        .is_empty());
    let jobs = q.queue("a", "jobs", at(112)).await.unwrap().counts;
    assert_eq!(
        (jobs.dead_lettered, jobs.deliveries, jobs.redeliveries),
        (1, 5, 2)
    );
    let dead = q.receive("a", "dead", 5, None, at(112)).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].body.as_str(), dead[0].last_error.as_deref()),
        ("3", Some("boom again"))
    );
    // "2" is in flight until 121, then moves too.
    assert_eq!(
        q.receive("a", "dead", 5, None, at(122))
            .await
            .unwrap()
            .len(),
        0
    );
    assert!(q
        .receive("a", "jobs", 5, None, at(122))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        q.receive("a", "dead", 5, None, at(122)).await.unwrap()[0].body,
        "2"
    );

    // A dedup id within its window stores one message.
    let once = NewMessage {
        dedup_id: Some("d1".into()),
        ..message("once")
    };
    let a = q
        .send("a", "jobs", std::slice::from_ref(&once), at(200))
        .await
        .unwrap();
    let b = q
        .send("a", "jobs", std::slice::from_ref(&once), at(201))
        .await
        .unwrap();
    assert_eq!((a[0].id.clone(), b[0].duplicate), (b[0].id.clone(), true));
    let c = q.send("a", "jobs", &[once], at(200 + 301)).await.unwrap();
    assert!(
        !c[0].duplicate && c[0].id != a[0].id,
        "remembered for the window only"
    );
    assert_eq!(q.purge("a", "jobs").await.unwrap(), 2);

    // Another tenant sees none of it.
    assert!(matches!(
        q.receive("b", "jobs", 1, None, t0).await,
        Err(StoreError::Missing(_))
    ));
    assert_eq!(q.queues(Some("b"), t0).await.unwrap().len(), 0);
    assert_eq!(
        q.queues(None, t0)
            .await
            .unwrap()
            .iter()
            .map(|v| v.queue.name.as_str())
            .collect::<Vec<_>>(),
        ["dead", "jobs"]
    );
    // Deleted with its messages, once nothing names it.
    q.send("a", "dead", &[message("x")], t0).await.unwrap();
    q.delete_queue("a", "jobs").await.unwrap();
    assert!(q.delete_queue("a", "dead").await.is_ok());
    assert!(q.queues(Some("a"), t0).await.unwrap().is_empty());
}

async fn concurrent_consumers_never_receive_one_message_twice(s: Stores) {
    let q = s.queues.clone();
    q.put_queue(&queue("a", "work", QueueConfig::default()), 10)
        .await
        .unwrap();
    let bodies: Vec<NewMessage> = (0..200).map(|i| message(&i.to_string())).collect();
    q.send("a", "work", &bodies, at(0)).await.unwrap();
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let q = q.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = q.receive("a", "work", 7, None, at(1)).await.unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    let receipts: Vec<String> = batch.iter().map(|d| d.receipt.clone()).collect();
                    assert!(q
                        .ack("a", "work", &receipts)
                        .await
                        .unwrap()
                        .iter()
                        .all(|a| *a));
                    got.extend(batch.into_iter().map(|d| d.body));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in consumers {
        all.extend(c.await.unwrap());
    }
    all.sort_by_key(|b| b.parse::<u32>().unwrap());
    assert_eq!(all, (0..200).map(|i| i.to_string()).collect::<Vec<_>>());
}

async fn a_topic_gives_each_subscribed_queue_its_own_copy_in_one_transaction(s: Stores) {
    let q = &s.queues;
    for name in ["audit", "billing"] {
        q.put_queue(&queue("a", name, QueueConfig::default()), 10)
            .await
            .unwrap();
    }
    let topic = |tenant: &str| Topic {
        id: format!("t-{tenant}"),
        tenant: tenant.into(),
        name: "orders".into(),
        subscriptions: Vec::new(),
        created_at: at(0),
    };
    q.create_topic(&topic("a"), 5).await.unwrap();
    assert!(matches!(
        q.create_topic(&topic("a"), 5).await,
        Err(StoreError::Conflict(_))
    ));
    q.create_topic(&topic("b"), 5).await.unwrap();
    let sub = |id: &str, queue: &str| Subscription {
        id: id.into(),
        queue: Some(queue.into()),
        function: None,
        url: None,
        private_ok: false,
    };
    q.subscribe("a", "orders", &sub("s1", "audit"), 10)
        .await
        .unwrap();
    let both = q
        .subscribe("a", "orders", &sub("s2", "billing"), 10)
        .await
        .unwrap();
    assert_eq!(both.subscriptions.len(), 2);
    assert!(
        matches!(
            q.subscribe("a", "orders", &sub("s3", "audit"), 10).await,
            Err(StoreError::Conflict(_))
        ),
        "one subscription per target"
    );
    assert!(matches!(
        q.subscribe("a", "orders", &sub("s4", "third"), 2).await,
        Err(StoreError::Refused(_))
    ));

    let (_, sent) = q
        .publish("a", "orders", &message("{\"id\":7}"), at(10))
        .await
        .unwrap();
    assert_eq!(
        sent.iter().map(|(q, _)| q.as_str()).collect::<Vec<_>>(),
        ["audit", "billing"]
    );
    for name in ["audit", "billing"] {
        let got = q.receive("a", name, 5, None, at(10)).await.unwrap();
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(got[0].body, "{\"id\":7}");
    }
    // A subscribed queue that is gone fails the publish, and nothing is sent.
    q.put_queue(&queue("a", "gone", QueueConfig::default()), 10)
        .await
        .unwrap();
    q.subscribe("a", "orders", &sub("s5", "gone"), 10)
        .await
        .unwrap();
    q.delete_queue("a", "gone").await.unwrap();
    assert!(matches!(
        q.publish("a", "orders", &message("2"), at(11)).await,
        Err(StoreError::Missing(_))
    ));
    assert_eq!(q.queue("a", "audit", at(11)).await.unwrap().counts.depth, 0);
    q.unsubscribe("a", "orders", "s5").await.unwrap();
    assert!(matches!(
        q.unsubscribe("a", "orders", "s5").await,
        Err(StoreError::Missing(_))
    ));
    assert_eq!(q.topic("a", "orders").await.unwrap().subscriptions.len(), 2);

    // Tenant b's topic of the same name has none of it.
    assert!(q
        .topic("b", "orders")
        .await
        .unwrap()
        .subscriptions
        .is_empty());
    assert_eq!(q.topics(Some("a")).await.unwrap().len(), 1);
    assert_eq!(q.topics(None).await.unwrap().len(), 2);
    q.delete_topic("a", "orders").await.unwrap();
    assert!(matches!(
        q.topic("a", "orders").await,
        Err(StoreError::Missing(_))
    ));
}

async fn an_async_workloads_follow_up_is_taken_once_it_ends_under_a_lease(s: Stores) {
    let t0 = OffsetDateTime::now_utc();
    let secs = |n: i64| time::Duration::seconds(n);
    let f = &s.followups;
    let policy = AsyncPolicy {
        retry: Some(Retry {
            max_attempts: 3,
            backoff_s: 1,
        }),
        max_age_s: Some(60),
        on_failure: None,
        callback_url: Some("http://127.0.0.1:9/cb".into()),
        attempt: 1,
        first_submitted_at: t0,
        private_ok: true,
    };
    let (w, mut spec) = workload("01F1", Isolation::Isolate);
    spec.async_policy = Some(policy.clone());
    put(&s, &w, &spec).await;
    // A workload without a policy has no follow-up.
    let (plain, plain_spec) = workload("01F2", Isolation::Isolate);
    put(&s, &plain, &plain_spec).await;
    assert!(
        f.take_followups(t0, t0 + secs(60), 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing while it waits"
    );
    s.workloads
        .finish("01F1", &done(WorkloadStatus::Failed, 5), &Expect::Live)
        .await
        .unwrap();
    s.workloads
        .finish("01F2", &done(WorkloadStatus::Failed, 5), &Expect::Live)
        .await
        .unwrap();
    let taken = f.take_followups(t0, t0 + secs(60), 10).await.unwrap();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!((taken[0].id.as_str(), taken[0].attempts), ("01F1", 1));
    assert_eq!(
        taken[0].kind,
        FollowupKind::Workload {
            policy: Box::new(policy.clone())
        }
    );
    assert!(
        f.take_followups(t0, t0 + secs(60), 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    // The retry's id is fixed the first time.
    assert_eq!(f.retry_id("01F1", "01R1").await.unwrap(), "01R1");
    assert_eq!(f.retry_id("01F1", "01R2").await.unwrap(), "01R1");
    assert!(matches!(
        f.retry_id("nope", "x").await,
        Err(StoreError::Missing(_))
    ));
    // Given back for later: taken again once due, counted.
    f.settle_followup(
        "01F1",
        &Settle::Later {
            due_at: t0 + secs(2),
            error: Some("queue full".into()),
        },
    )
    .await
    .unwrap();
    assert!(f
        .take_followups(t0 + secs(1), t0 + secs(60), 10)
        .await
        .unwrap()
        .is_empty());
    let again = f
        .take_followups(t0 + secs(2), t0 + secs(60), 10)
        .await
        .unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 2));
    // Done, leading to a POST stored in the same transaction (once, by its id).
    let post = NewPost {
        id: "cb-01F1".into(),
        tenant: "default".into(),
        url: "http://127.0.0.1:9/cb".into(),
        body: "{}".into(),
        private_ok: true,
        due_at: t0,
    };
    f.settle_followup(
        "01F1",
        &Settle::Done {
            then: Some(post.clone()),
        },
    )
    .await
    .unwrap();
    f.add_posts(std::slice::from_ref(&post)).await.unwrap();
    assert_eq!(
        f.followup_counts().await.unwrap(),
        vec![("post".to_owned(), 1)]
    );
    let posts = f.take_followups(t0, t0 + secs(60), 10).await.unwrap();
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].kind,
        FollowupKind::Post {
            url: post.url.clone(),
            body: "{}".into(),
            private_ok: true
        }
    );
    f.settle_followup("cb-01F1", &Settle::Done { then: None })
        .await
        .unwrap();
    assert!(f.followup_counts().await.unwrap().is_empty());

    // One still waiting past its age limit is taken; one within it is not.
    let (old, mut old_spec) = workload("01F3", Isolation::Isolate);
    old_spec.async_policy = Some(AsyncPolicy {
        max_age_s: Some(5),
        ..policy.clone()
    });
    put(&s, &old, &old_spec).await;
    assert!(f
        .take_followups(t0 + secs(4), t0 + secs(60), 10)
        .await
        .unwrap()
        .is_empty());
    let expired = f
        .take_followups(t0 + secs(6), t0 + secs(60), 10)
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, "01F3");
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite_store {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::sqlite().await).await
                }
            )*
        }
        mod postgres_store {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::postgres().await).await
                }
            )*
        }
    };
}

contract!(
    a_workload_round_trips_with_its_spec,
    usage_is_recorded_with_the_ending_and_averaged_per_backend_and_tenant,
    a_stale_update_cannot_overwrite_a_terminal_state,
    an_ending_applies_only_to_the_state_its_writer_expects,
    benchmark_reports_are_kept_whole_and_listed_newest_first,
    pending_can_fail_directly_but_cannot_complete,
    list_filters_pages_with_offset_or_cursor_and_counts_from_the_counters,
    log_lines_keep_their_order_and_stream_and_duplicates_are_ignored,
    tenants_see_their_own_lists_and_figures_from_their_own_counters,
    claims_go_oldest_first_to_one_node_each_and_only_the_claimant_starts,
    many_claimers_at_once_never_claim_one_workload_twice,
    a_direct_claim_never_jumps_the_queue,
    admission_holds_the_queue_limit_and_the_tenants_quota_and_stores_nothing_refused,
    kill_requests_reach_the_node_running_the_workload,
    a_lost_nodes_running_work_fails_naming_it_and_its_claims_go_back,
    keys_audit_and_quotas_persist_and_the_audit_log_is_append_only,
    only_the_servers_retention_removes_audit_records_and_it_says_so,
    images_are_registered_once_with_one_default_and_the_nodes_that_have_them,
    functions_deploy_immutable_versions_roll_back_and_count_invocations,
    each_tick_fires_once_with_its_run_and_skips_are_recorded,
    schedules_are_held_to_a_count_changed_only_as_read_and_taken_fairly,
    secrets_keep_sealed_values_with_versions_and_reseal_only_what_did_not_change,
    workloads_created_per_minute_come_from_a_range_of_ids_per_tenant,
    sandboxes_are_listed_by_tenant_state_and_metadata_and_change_only_from_their_state,
    volumes_are_a_tenants_own_with_one_writer_and_are_not_deleted_while_mounted,
    a_workload_holds_its_volumes_to_its_end_and_only_their_node_claims_it,
    queues_deliver_each_message_to_one_consumer_until_acked_then_dead_letter_it,
    concurrent_consumers_never_receive_one_message_twice,
    a_topic_gives_each_subscribed_queue_its_own_copy_in_one_transaction,
    an_async_workloads_follow_up_is_taken_once_it_ends_under_a_lease,
);
