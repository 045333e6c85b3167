//! Who may do what: API keys, roles and their permissions, tenants and their quotas, and
//! the audit trail of every mutation (seed 004). The port that keeps them is
//! [`AccessStore`].

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::StoreError;

/// The tenant of workloads submitted with authentication off.
pub const DEFAULT_TENANT: &str = "default";

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    WorkloadsRead,
    WorkloadsCreate,
    WorkloadsKill,
    ImagesRead,
    ImagesWrite,
    KeysManage,
    AuditRead,
    StatsRead,
    BenchmarksRun,
    /// Deploying, rolling back and deleting functions; making and changing schedules.
    FunctionsWrite,
    /// Storing and deleting secrets.
    SecretsWrite,
    /// Sealing every secret again under the current key.
    SecretsRotate,
    /// Seeing every tenant's workloads and figures, and setting quotas.
    AllTenants,
}

impl Permission {
    pub const ALL: [Permission; 13] = [
        Permission::WorkloadsRead,
        Permission::WorkloadsCreate,
        Permission::WorkloadsKill,
        Permission::ImagesRead,
        Permission::ImagesWrite,
        Permission::KeysManage,
        Permission::AuditRead,
        Permission::StatsRead,
        Permission::BenchmarksRun,
        Permission::FunctionsWrite,
        Permission::SecretsWrite,
        Permission::SecretsRotate,
        Permission::AllTenants,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::WorkloadsRead => "workloads:read",
            Permission::WorkloadsCreate => "workloads:create",
            Permission::WorkloadsKill => "workloads:kill",
            Permission::ImagesRead => "images:read",
            Permission::ImagesWrite => "images:write",
            Permission::KeysManage => "keys:manage",
            Permission::AuditRead => "audit:read",
            Permission::StatsRead => "stats:read",
            Permission::BenchmarksRun => "benchmarks:run",
            Permission::FunctionsWrite => "functions:write",
            Permission::SecretsWrite => "secrets:write",
            Permission::SecretsRotate => "secrets:rotate",
            Permission::AllTenants => "tenants:all",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key's role: a fixed set of permissions.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, across tenants.
    Admin,
    /// Runs the platform for its tenant: workloads, images, benchmarks, stats.
    Operator,
    /// Runs code: workloads (create, read, kill), reads images and stats.
    Developer,
    /// Reads only.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Developer, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        use Permission as P;
        match self {
            Role::Admin => true,
            Role::Operator => !matches!(
                permission,
                P::KeysManage | P::AuditRead | P::AllTenants | P::SecretsRotate
            ),
            Role::Developer => matches!(
                permission,
                P::WorkloadsRead
                    | P::WorkloadsCreate
                    | P::WorkloadsKill
                    | P::ImagesRead
                    | P::StatsRead
                    | P::FunctionsWrite
            ),
            Role::Viewer => matches!(permission, P::WorkloadsRead | P::ImagesRead | P::StatsRead),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: use admin, operator, developer or viewer"))
    }
}

/// An API key as stored and listed: never its secret.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub tenant: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// The key id that created it (`bootstrap` for the first admin key).
    pub created_by: String,
}

/// One audit record.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing: the order of the log.
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The key id, or `anonymous`.
    pub actor: String,
    pub role: Option<String>,
    pub tenant: Option<String>,
    /// E.g. `workload.create`, `key.revoke`, `auth.failure`.
    pub action: String,
    pub target: Option<String>,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
    /// The HTTP status answered.
    pub status: u16,
    pub detail: Option<String>,
    /// How many events this record stands for: 1, or for failed logins recorded in
    /// aggregate, the failures from one source in one minute.
    #[serde(default = "one")]
    pub count: u64,
    /// The id of the API request that did it.
    #[serde(default)]
    pub request_id: Option<String>,
}

fn one() -> u64 {
    1
}

/// Filters of `GET /v1/audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub tenant: Option<String>,
    pub outcome: Option<String>,
    pub limit: u32,
    pub offset: u64,
}

/// A tenant's limits.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Workloads pending or running at once.
    #[serde(deserialize_with = "crate::whole::int")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_concurrent: u32,
    /// Submissions accepted per rolling minute.
    #[serde(deserialize_with = "crate::whole::int")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub per_minute: u32,
    /// CPUs of its pending and running workloads together.
    #[serde(deserialize_with = "crate::whole::int")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_cpus: u32,
    /// Memory (MiB) of its pending and running workloads together.
    #[serde(deserialize_with = "crate::whole::int")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_mem_mb: u32,
    /// Schedules it may have (`null`: the server's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "crate::whole::opt")]
    pub max_schedules: Option<u32>,
    /// The shortest time between two ticks of one of its schedules, in seconds (`null`:
    /// the server's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "crate::whole::opt")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub min_schedule_interval_s: Option<u32>,
    /// What its workloads may reach when the server's egress is `allow-listed` (and the
    /// only way to open a never-reachable range such as a private network to it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub egress_allow: Vec<crate::NetRule>,
}

impl Quota {
    /// This quota with the fields it leaves to the server taken from `defaults`.
    pub fn or(self, defaults: &Quota) -> Quota {
        Quota {
            max_schedules: self.max_schedules.or(defaults.max_schedules),
            min_schedule_interval_s: self
                .min_schedule_interval_s
                .or(defaults.min_schedule_interval_s),
            ..self
        }
    }
}

/// Keeps keys, the audit log and quotas.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Stores a new key with the hash of its secret.
    async fn create_key(&self, key: &ApiKey, secret_hash: &str) -> Result<(), StoreError>;

    /// A key and the hash of its secret.
    async fn key(&self, id: &str) -> Result<(ApiKey, String), StoreError>;

    /// Every key with the hash of its secret: what a node verifies requests against.
    async fn verifiable_keys(&self) -> Result<Vec<(ApiKey, String)>, StoreError>;

    /// Keys, newest first; one tenant's or all.
    async fn keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>, StoreError>;

    /// Marks a key revoked (idempotent); returns it.
    async fn revoke_key(&self, id: &str, at: OffsetDateTime) -> Result<ApiKey, StoreError>;

    /// Appends records, in order, in one transaction; the store numbers them (`seq` of
    /// each is ignored).
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError>;

    /// Records, newest first.
    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;

    /// Removes the records older than `before` — the one deletion the log allows, made by
    /// the server's retention and never on a client's request — and, if any were removed,
    /// appends `record` (its actor and action; the detail gets the count) saying so.
    /// Returns how many were removed.
    async fn prune_audit(
        &self,
        before: OffsetDateTime,
        record: &AuditEntry,
    ) -> Result<u64, StoreError>;

    /// A tenant's own quota, if one was set.
    async fn quota(&self, tenant: &str) -> Result<Option<Quota>, StoreError>;

    async fn set_quota(&self, tenant: &str, quota: &Quota) -> Result<(), StoreError>;
}
