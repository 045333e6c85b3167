//! The SQLite store against a real database file.

use time::OffsetDateTime;
use vulcan_domain::{
    AccessStore, ApiKey, AuditEntry, AuditFilter, Isolation, ListFilter, LogLine, LogStream, Quota,
    Resources, Role, Runtime, StoreError, TerminalUpdate, Workload, WorkloadSpec, WorkloadStatus,
    WorkloadStore,
};
use vulcan_store::SqliteStore;

fn workload(id: &str, isolation: Isolation) -> (Workload, WorkloadSpec) {
    let now = OffsetDateTime::now_utc();
    let spec = WorkloadSpec {
        id: id.to_owned(),
        runtime: Runtime::Node,
        isolation,
        code: Some("export default () => 1".into()),
        code_archive: Some(vec![1, 2, 3]),
        image: None,
        command: None,
        input: serde_json::json!({"a": 1}),
        env: Default::default(),
        resources: Resources::default(),
    };
    let w = Workload {
        id: id.to_owned(),
        status: WorkloadStatus::Pending,
        isolation,
        requested_isolation: Isolation::Auto,
        runtime: Runtime::Node,
        node_id: "node-a".into(),
        tenant: "default".into(),
        input_hash: "h".into(),
        output: None,
        exit_code: None,
        error: None,
        cpu_limit: 1,
        mem_limit: 128,
        timeout_s: 30,
        duration_ms: None,
        prepare_ms: None,
        created_at: now,
        started_at: None,
        finished_at: None,
    };
    (w, spec)
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
    }
}

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("db/vulcan.db")).unwrap();
    (dir, store)
}

#[tokio::test]
async fn a_workload_round_trips_with_its_spec() {
    let (_dir, store) = open();
    let (w, spec) = workload("01A", Isolation::Isolate);
    store.insert(&w, &spec).await.unwrap();
    let got = store.get("01A").await.unwrap();
    assert_eq!(got.id, w.id);
    assert_eq!(got.status, WorkloadStatus::Pending);
    assert_eq!(got.isolation, Isolation::Isolate);
    assert_eq!(store.spec("01A").await.unwrap(), spec);
    assert!(matches!(
        store.get("nope").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.insert(&w, &spec).await,
        Err(StoreError::Duplicate(_))
    ));
}

#[tokio::test]
async fn a_stale_update_cannot_overwrite_a_terminal_state() {
    let (_dir, store) = open();
    let (w, spec) = workload("01B", Isolation::Isolate);
    store.insert(&w, &spec).await.unwrap();
    store.start("01B", OffsetDateTime::now_utc()).await.unwrap();
    let killed = store
        .finish("01B", &done(WorkloadStatus::Killed, 5))
        .await
        .unwrap();
    assert_eq!(killed.status, WorkloadStatus::Killed);

    let late = store
        .finish("01B", &done(WorkloadStatus::Completed, 9))
        .await;
    match late {
        Err(StoreError::InvalidTransition(t)) => {
            assert_eq!(
                (t.from, t.to),
                (WorkloadStatus::Killed, WorkloadStatus::Completed)
            )
        }
        other => panic!("expected refusal, got {other:?}"),
    }
    assert!(store.start("01B", OffsetDateTime::now_utc()).await.is_err());
    assert_eq!(
        store.get("01B").await.unwrap().status,
        WorkloadStatus::Killed
    );
}

#[tokio::test]
async fn pending_can_fail_directly_but_cannot_complete() {
    let (_dir, store) = open();
    let (w, spec) = workload("01C", Isolation::Isolate);
    store.insert(&w, &spec).await.unwrap();
    assert!(store
        .finish("01C", &done(WorkloadStatus::Completed, 1))
        .await
        .is_err());
    let failed = store
        .finish("01C", &done(WorkloadStatus::Failed, 1))
        .await
        .unwrap();
    assert_eq!(failed.status, WorkloadStatus::Failed);
    assert_eq!(
        failed.duration_ms, None,
        "a workload that never ran has no duration"
    );
}

#[tokio::test]
async fn list_filters_pages_and_counts_from_the_counters() {
    let (_dir, store) = open();
    for i in 0..7 {
        let iso = if i % 2 == 0 {
            Isolation::Isolate
        } else {
            Isolation::Gvisor
        };
        let (w, spec) = workload(&format!("01D{i}"), iso);
        store.insert(&w, &spec).await.unwrap();
    }
    store
        .start("01D0", OffsetDateTime::now_utc())
        .await
        .unwrap();
    store
        .finish("01D0", &done(WorkloadStatus::Completed, 10))
        .await
        .unwrap();

    let page = store
        .list(&ListFilter {
            limit: 3,
            offset: 0,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 7);
    let ids: Vec<_> = page.workloads.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["01D6", "01D5", "01D4"], "newest first");

    let page = store
        .list(&ListFilter {
            tenant: None,
            isolation: Some(Isolation::Isolate),
            status: Some(WorkloadStatus::Pending),
            limit: 10,
            offset: 1,
        })
        .await
        .unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(page.workloads.len(), 2);

    let stats = store.stats(None).await.unwrap();
    assert_eq!(stats.total, 7);
    assert_eq!(stats.by_status["completed"], 1);
    assert_eq!(stats.by_status["pending"], 6);
    assert_eq!(stats.by_isolation["gvisor"], 3);
    assert_eq!(stats.backends["isolate"].finished, 1);
    assert_eq!(stats.avg_duration_ms, 10.0);
}

#[tokio::test]
async fn log_lines_keep_their_order_and_stream_and_duplicates_are_ignored() {
    let (_dir, store) = open();
    let (w, spec) = workload("01E", Isolation::Isolate);
    store.insert(&w, &spec).await.unwrap();
    let line = |seq, stream, text: &str| LogLine {
        seq,
        stream,
        line: text.into(),
        created_at: OffsetDateTime::now_utc(),
    };
    store
        .append_logs(
            "01E",
            &[
                line(1, LogStream::Backend, "boot"),
                line(2, LogStream::Stdout, "hi"),
            ],
        )
        .await
        .unwrap();
    store
        .append_logs(
            "01E",
            &[
                line(2, LogStream::Stdout, "dup"),
                line(3, LogStream::Stderr, "oops"),
            ],
        )
        .await
        .unwrap();
    let all = store.logs("01E", None).await.unwrap();
    let texts: Vec<_> = all.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(texts, ["boot", "hi", "oops"]);
    let stdout = store.logs("01E", Some(LogStream::Stdout)).await.unwrap();
    assert_eq!(stdout.len(), 1);
    assert!(matches!(
        store.logs("zzz", None).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn reopening_keeps_data_and_the_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let (w, spec) = workload("01F", Isolation::Microvm);
        store.insert(&w, &spec).await.unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        SqliteStore::latest_schema_version()
    );
    assert_eq!(store.unfinished("node-a").await.unwrap().len(), 1);
    assert!(store.unfinished("node-b").await.unwrap().is_empty());
}

#[tokio::test]
async fn tenants_see_their_own_lists_and_figures() {
    let (_dir, store) = open();
    for (id, tenant) in [("01T1", "a"), ("01T2", "a"), ("01T3", "b")] {
        let (mut w, spec) = workload(id, Isolation::Isolate);
        w.tenant = tenant.into();
        store.insert(&w, &spec).await.unwrap();
    }
    store
        .start("01T1", OffsetDateTime::now_utc())
        .await
        .unwrap();
    store
        .finish("01T1", &done(WorkloadStatus::Completed, 40))
        .await
        .unwrap();

    let page = store
        .list(&ListFilter {
            tenant: Some("a".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 2);
    assert!(page.workloads.iter().all(|w| w.tenant == "a"));
    let b = store.stats(Some("b")).await.unwrap();
    assert_eq!((b.total, b.by_status["pending"]), (1, 1));
    assert!(b.backends.is_empty());
    let a = store.stats(Some("a")).await.unwrap();
    assert_eq!(
        (a.total, a.backends["isolate"].finished, a.avg_duration_ms),
        (2, 1, 40.0)
    );
    assert_eq!(store.stats(None).await.unwrap().total, 3);
}

#[tokio::test]
async fn keys_audit_and_quotas_persist_and_the_audit_log_is_append_only() {
    let (dir, store) = open();
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
    store.create_key(&key, "hash-of-secret").await.unwrap();
    let (found, hash) = store.key("k1").await.unwrap();
    assert_eq!(
        (found.role, hash.as_str()),
        (Role::Developer, "hash-of-secret")
    );
    assert!(matches!(
        store.key("nope").await,
        Err(StoreError::NotFound(_))
    ));
    let revoked = store
        .revoke_key("k1", OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(store.keys(Some("a")).await.unwrap().len(), 1);
    assert!(store.keys(Some("b")).await.unwrap().is_empty());

    for action in ["workload.create", "key.revoke"] {
        store
            .append_audit(&AuditEntry {
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
                count: 1,
            })
            .await
            .unwrap();
    }
    let all = store
        .audit(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["key.revoke", "workload.create"]
    );
    let one = store
        .audit(&AuditFilter {
            action: Some("key.revoke".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);

    let conn = rusqlite::Connection::open(dir.path().join("db/vulcan.db")).unwrap();
    let update = conn.execute("UPDATE audit_log SET outcome = 'forged'", []);
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = conn.execute("DELETE FROM audit_log", []);
    assert!(delete.unwrap_err().to_string().contains("append-only"));

    assert_eq!(store.quota("a").await.unwrap(), None);
    let q = Quota {
        max_concurrent: 2,
        per_minute: 10,
        max_cpus: 2,
        max_mem_mb: 256,
    };
    store.set_quota("a", &q).await.unwrap();
    assert_eq!(store.quota("a").await.unwrap(), Some(q));
}

#[tokio::test]
async fn writes_reach_the_database_file_by_a_background_checkpoint() {
    let (dir, store) = open();
    // 200 small rows stay far below SQLite's own checkpoint threshold (1000 pages): only
    // the background checkpoint moves them into the database file.
    let db = dir.path().join("db/vulcan.db");
    let before = std::fs::metadata(&db).unwrap().len();
    for i in 0..200 {
        let (w, spec) = workload(&format!("01CHECKPOINT{i:05}"), Isolation::Isolate);
        store.insert(&w, &spec).await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::metadata(&db).unwrap().len() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the log was not checkpointed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(store.list(&ListFilter::default()).await.unwrap().total, 200);
}

fn audit_entry(action: &str) -> AuditEntry {
    AuditEntry {
        seq: 0,
        at: OffsetDateTime::now_utc(),
        actor: "k1".into(),
        role: None,
        tenant: None,
        action: action.into(),
        target: None,
        outcome: "ok".into(),
        status: 200,
        detail: None,
        count: 1,
    }
}

#[tokio::test]
async fn only_the_servers_retention_removes_audit_records_and_it_says_so() {
    let (dir, store) = open();
    let db = dir.path().join("db/vulcan.db");
    // Two records from long ago (as a server that ran then wrote them), one from now.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let old = (OffsetDateTime::now_utc() - time::Duration::days(100)).unix_timestamp() * 1000;
    for action in ["old.one", "old.two"] {
        conn.execute(
            "INSERT INTO audit_log (at, actor, action, outcome, status, count) VALUES (?1, 'k', ?2, 'ok', 200, 1)",
            rusqlite::params![old, action],
        )
        .unwrap();
    }
    store.append_audit(&audit_entry("recent")).await.unwrap();
    // Nobody else can delete, not even old records.
    let delete = conn.execute("DELETE FROM audit_log WHERE action = 'old.one'", []);
    assert!(delete.unwrap_err().to_string().contains("append-only"));

    let cutoff = OffsetDateTime::now_utc() - time::Duration::days(90);
    let removed = store
        .prune_audit(cutoff, &audit_entry("audit.prune"))
        .await
        .unwrap();
    assert_eq!(removed, 2);
    let left: Vec<String> = store
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
    assert!(left[1].starts_with("recent"), "{left:?}");
    // The gate is closed again: the pruning transaction left no way in.
    let delete = conn.execute("DELETE FROM audit_log", []);
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    assert_eq!(
        store
            .prune_audit(cutoff, &audit_entry("audit.prune"))
            .await
            .unwrap(),
        0,
        "nothing more to remove, and nothing recorded"
    );
}

#[test]
fn a_write_never_holds_an_async_worker_while_another_process_locks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vulcan.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(&db).unwrap();
        // Another process (here: another connection) holds the write lock for 600 ms.
        let locker = rusqlite::Connection::open(&db).unwrap();
        locker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(600));
            locker.execute_batch("COMMIT").unwrap();
        });
        // The one worker thread keeps ticking while the insert waits for the lock.
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let (w, spec) = workload("01LOCKED", Isolation::Isolate);
        store.insert(&w, &spec).await.unwrap();
        ticker.abort();
        release.join().unwrap();
        let n = ticks.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            n >= 20,
            "the runtime was blocked while the write waited: {n} ticks"
        );
        assert_eq!(store.get("01LOCKED").await.unwrap().id, "01LOCKED");
    });
}
