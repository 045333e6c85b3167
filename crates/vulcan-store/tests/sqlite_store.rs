//! What only the SQLite store has (the shared contract is `tests/contract.rs`): its file,
//! its write-ahead log and checkpoints, its upgrade from earlier schemas.

use vulcan_domain::{Admission, Isolation, ListFilter, StatsStore, WorkloadStore};
use vulcan_store::testing::workload;
use vulcan_store::SqliteStore;

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("db/vulcan.db")).unwrap();
    (dir, store)
}

#[tokio::test]
async fn a_database_of_an_earlier_version_is_upgraded_with_its_figures_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    // The schema as version 4 left it, with a tenant's finished and running workloads.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("fixtures/schema_v4.sql"))
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        SqliteStore::latest_schema_version()
    );
    let t = store.stats(Some("t")).await.unwrap();
    assert_eq!(
        (t.total, t.by_status["completed"], t.by_status["running"]),
        (3, 2, 1)
    );
    assert_eq!(t.backends["isolate"].finished, 2);
    assert_eq!(t.backends["isolate"].avg_duration_ms, 15.0);
    let page = store
        .list(&ListFilter {
            tenant: Some("t".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.total, 3,
        "the tenant's counters were filled from its rows"
    );
    // The running one is still its node's; its share of the quota is still taken.
    assert_eq!(store.running_on("old-node").await.unwrap().len(), 1);
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
        store
            .enqueue(&w, &spec, &Admission::default())
            .await
            .unwrap();
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
        store
            .enqueue(&w, &spec, &Admission::default())
            .await
            .unwrap();
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
