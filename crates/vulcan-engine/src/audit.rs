//! The audit log's writer: group commit. Every record is written before its request's
//! answer goes out (the caller waits for it), and the records that arrive while a write is
//! on its way go together in the next one: one statement, one transaction for the batch,
//! so that a busy server does not pay a commit per request and an idle one waits for no
//! company.

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};
use vulcan_domain::{AccessStore, AuditEntry, StoreError};

/// Most records written in one batch.
const BATCH_MAX: usize = 256;

/// Records queued at most: past that, appending waits for room.
const QUEUE_MAX: usize = 8192;

/// A record, and who waits for it to be written.
type Queued = (AuditEntry, oneshot::Sender<Result<(), String>>);

/// Appends to the audit log (see the module docs). Cheap to clone.
#[derive(Clone)]
pub(crate) struct AuditLog {
    store: Arc<dyn AccessStore>,
    queue: Arc<OnceLock<mpsc::Sender<Queued>>>,
}

impl AuditLog {
    pub(crate) fn new(store: Arc<dyn AccessStore>) -> AuditLog {
        AuditLog {
            store,
            queue: Arc::default(),
        }
    }

    /// The writer's queue; the writer starts with the first record.
    fn queue(&self) -> &mpsc::Sender<Queued> {
        self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE_MAX);
            tokio::spawn(write(self.store.clone(), rx));
            tx
        })
    }

    /// Appends `entry` (its `at` is when it happened; `seq` is given when written) and
    /// returns once it is written.
    pub(crate) async fn append(&self, entry: AuditEntry) -> Result<(), StoreError> {
        let (done, written) = oneshot::channel();
        let gone = || StoreError::Io("the audit log's writer stopped".into());
        self.queue().send((entry, done)).await.map_err(|_| gone())?;
        written.await.map_err(|_| gone())?.map_err(StoreError::Io)
    }
}

/// Writes what is queued, a batch at a time, until every sender is gone.
async fn write(store: Arc<dyn AccessStore>, mut queue: mpsc::Receiver<Queued>) {
    let mut batch: Vec<Queued> = Vec::with_capacity(BATCH_MAX);
    while queue.recv_many(&mut batch, BATCH_MAX).await > 0 {
        let (entries, waiting): (Vec<AuditEntry>, Vec<_>) = batch.drain(..).unzip();
        let written = store
            .append_audit(&entries)
            .await
            .map_err(|e| e.to_string());
        for done in waiting {
            let _ = done.send(written.clone());
        }
    }
}
