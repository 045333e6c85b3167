//! What only the PostgreSQL store has (the shared contract is `tests/contract.rs`): nodes
//! that start together migrate once; a broken connection is ridden out.

use vulcan_domain::{ListFilter, WorkloadStore};
use vulcan_store::testing::PgServer;
use vulcan_store::PgStore;

#[tokio::test]
async fn nodes_starting_together_migrate_once() {
    let pg = PgServer::start().unwrap();
    let url = pg.database().unwrap();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.unwrap().expect("every node starts"));
    }
    for store in &stores {
        assert_eq!(
            store.schema_version().await.unwrap(),
            PgStore::latest_schema_version() as i64
        );
    }
}

#[tokio::test]
async fn a_restart_of_the_server_fails_no_operation() {
    let pg = PgServer::start().unwrap();
    let store = PgStore::connect(&pg.database().unwrap()).await.unwrap();
    let filter = ListFilter {
        limit: 1,
        ..ListFilter::default()
    };
    store.list(&filter).await.unwrap();
    pg.restart().unwrap();
    // The pooled connections broke with the restart; the call gets a new one.
    assert_eq!(store.list(&filter).await.unwrap().total, 0);
}

#[tokio::test]
async fn a_bad_url_is_a_clear_error() {
    let err = PgStore::connect("mysql://nope")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("VULCAN_DATABASE_URL"), "{err}");
}
