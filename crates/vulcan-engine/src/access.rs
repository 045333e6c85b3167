//! Who may call, and what they did: API keys, tenants' quotas and the audit log, kept by
//! the store behind [`AccessStore`] and reached by the API through the engine only.
//!
//! Every node keeps all the keys in memory ([`Keys`]) and verifies requests against that:
//! - a key created, revoked or changed on any node is read again by every node within a
//!   signal's latency ([`Signal::Keys`]), and by the node that changed it before it answers;
//! - all keys are read again every [`REREAD_EVERY`] whatever the signals did, so a lost
//!   signal leaves a revoked key working for at most that long;
//! - a request naming a key id this node does not know makes it read the keys again
//!   first (at most once per [`MISS_GAP`], callers sharing the read), so a key made on
//!   another node a moment ago works at once, while a flood of made-up ids costs a few
//!   reads a second, never one per request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use vulcan_domain::{AccessStore, ApiKey, AuditEntry, AuditFilter, Quota, Signal, StoreError};

use crate::engine::Inner;
use crate::Engine;

/// How often every node reads all keys again, signals or not.
pub const REREAD_EVERY: Duration = Duration::from_secs(2);
/// The least time between two reads caused by unknown key ids.
pub const MISS_GAP: Duration = Duration::from_millis(100);

/// A key as stored, with the hash of its secret.
pub type StoredKey = (ApiKey, String);

/// The keys this node verifies requests against. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Keys {
    store: Arc<dyn AccessStore>,
    known: Arc<RwLock<Arc<HashMap<String, StoredKey>>>>,
    /// Held while the keys are read; when the last read began.
    reading: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl Keys {
    pub fn new(store: Arc<dyn AccessStore>) -> Keys {
        Keys {
            store,
            known: Arc::default(),
            reading: Arc::default(),
        }
    }

    fn known(&self) -> Arc<HashMap<String, StoredKey>> {
        self.known.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads every key again, unless a read began within `gap` (then the caller shares
    /// that one's result).
    async fn reread_unless_within(&self, gap: Duration) -> Result<(), StoreError> {
        let mut last = self.reading.lock().await;
        if last.is_some_and(|at| at.elapsed() < gap) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let read = self.store.verifiable_keys().await?;
        let known: HashMap<String, StoredKey> = read
            .into_iter()
            .map(|(key, hash)| (key.id.clone(), (key, hash)))
            .collect();
        *self.known.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(known);
        Ok(())
    }

    /// Reads every key again now.
    pub async fn reread(&self) -> Result<(), StoreError> {
        self.reread_unless_within(Duration::ZERO).await
    }

    /// The key `id` and its secret's hash, if it exists.
    pub async fn get(&self, id: &str) -> Result<Option<StoredKey>, StoreError> {
        if let Some(found) = self.known().get(id) {
            return Ok(Some(found.clone()));
        }
        self.reread_unless_within(MISS_GAP).await?;
        Ok(self.known().get(id).cloned())
    }
}

/// Reads the keys again every [`REREAD_EVERY`] until the engine stops.
pub(crate) async fn reread_keys(inner: Arc<Inner>) {
    let mut stopping = inner.stopping.subscribe();
    let mut tick = tokio::time::interval(REREAD_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => return,
        }
        if let Err(e) = inner.keys.reread().await {
            tracing::warn!(error = %e, "cannot read the API keys again; the last ones read stay in use");
        }
    }
}

impl Engine {
    /// The key `id` with its secret's hash, as this node knows it (see the module docs).
    pub async fn key(&self, id: &str) -> Result<Option<StoredKey>, StoreError> {
        self.inner.keys.get(id).await
    }

    /// Stores a new key; every node knows it from then on.
    pub async fn create_key(&self, key: &ApiKey, secret_hash: &str) -> Result<(), StoreError> {
        self.access_store().create_key(key, secret_hash).await?;
        self.keys_changed().await;
        Ok(())
    }

    /// Revokes a key; every node refuses it from its next request on (this one at once,
    /// the others within a signal's latency, at worst [`REREAD_EVERY`]).
    pub async fn revoke_key(&self, id: &str, at: OffsetDateTime) -> Result<ApiKey, StoreError> {
        let key = self.access_store().revoke_key(id, at).await?;
        self.keys_changed().await;
        Ok(key)
    }

    async fn keys_changed(&self) {
        if let Err(e) = self.inner.keys.reread().await {
            tracing::warn!(error = %e, "cannot read the API keys again after a change");
        }
        self.inner.signal(Signal::Keys);
    }

    /// Keys (never their secrets), newest first; one tenant's or all.
    pub async fn keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        self.access_store().keys(tenant).await
    }

    /// A tenant's own quota, if one was set.
    pub async fn quota(&self, tenant: &str) -> Result<Option<Quota>, StoreError> {
        self.access_store().quota(tenant).await
    }

    /// The quota a tenant's work is held to: its own (what it leaves open taken from the
    /// default), else the default.
    pub async fn quota_of(&self, tenant: &str) -> Result<Quota, StoreError> {
        let defaults = &self.inner.config.default_quota;
        Ok(self
            .quota(tenant)
            .await?
            .map_or_else(|| defaults.clone(), |own| own.or(defaults)))
    }

    pub async fn set_quota(&self, tenant: &str, quota: &Quota) -> Result<(), StoreError> {
        self.access_store().set_quota(tenant, quota).await
    }

    /// Appends a record to the audit log; returns once it is written (with the others of
    /// the same moment: `audit.rs`).
    pub async fn append_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.inner.audit_log.append(entry).await
    }

    /// Audit records, newest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        self.access_store().audit(filter).await
    }

    /// Removes audit records older than `before` and records that it did (see
    /// [`AccessStore::prune_audit`]).
    pub async fn prune_audit(
        &self,
        before: OffsetDateTime,
        record: &AuditEntry,
    ) -> Result<u64, StoreError> {
        self.access_store().prune_audit(before, record).await
    }

    fn access_store(&self) -> &Arc<dyn AccessStore> {
        &self.inner.access
    }
}
