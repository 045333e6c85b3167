//! What both stores share of the sandboxes' table: a record is kept whole as JSON beside
//! the columns lists filter on (tenant, node, state), and changed only through these; and
//! the rules of the volumes they mount.

use time::OffsetDateTime;
use vulcan_domain::{
    PauseMode, Sandbox, SandboxFilter, SandboxPage, SandboxRoom, SandboxState, StoreError, Volume,
    VolumeMount, WorkloadSpec,
};

/// Rows read at a time while a list filters on metadata.
pub(crate) const BATCH: u32 = 200;

/// `sandbox` moved from `from` to `to` (ended now, for a final state), or why not.
pub(crate) fn moved(
    mut sandbox: Sandbox,
    from: SandboxState,
    to: SandboxState,
    note: Option<&str>,
) -> Result<Sandbox, StoreError> {
    if sandbox.state != from {
        return Err(StoreError::Conflict(format!(
            "sandbox {} is {}, not {}",
            sandbox.id,
            sandbox.state.as_str(),
            from.as_str()
        )));
    }
    sandbox.state = to;
    sandbox.pause_mode = (to == SandboxState::Paused)
        .then(|| note.and_then(PauseMode::parse).unwrap_or(PauseMode::Saved));
    if to.is_final() {
        sandbox.ended_at = Some(OffsetDateTime::now_utc());
        sandbox.end_reason = note.map(str::to_owned);
    }
    Ok(sandbox)
}

/// `sandbox` with deadline `end_at`, or why not (it ended).
pub(crate) fn deadline(
    mut sandbox: Sandbox,
    end_at: OffsetDateTime,
) -> Result<Sandbox, StoreError> {
    if sandbox.state.is_final() {
        return Err(StoreError::Conflict(format!(
            "sandbox {} has {}: its deadline cannot move",
            sandbox.id,
            if sandbox.state == SandboxState::Lost {
                "been lost"
            } else {
                "ended"
            }
        )));
    }
    sandbox.end_at = end_at;
    Ok(sandbox)
}

/// Whether `sandbox` has every metadata pair the filter asks for.
pub(crate) fn has_metadata(filter: &SandboxFilter, sandbox: &Sandbox) -> bool {
    filter
        .metadata
        .iter()
        .all(|(k, v)| sandbox.metadata.get(k) == Some(v))
}

pub(crate) fn to_json(sandbox: &Sandbox) -> Result<String, StoreError> {
    serde_json::to_string(sandbox).map_err(|e| StoreError::Io(e.to_string()))
}

pub(crate) fn from_json(json: &str) -> Result<Sandbox, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Io(format!("a sandbox's record: {e}")))
}

/// Whether `new` fits beside `live` (its tenant's running and paused sandboxes, as
/// recorded) in `room`; the refusal names the limit and what to do.
pub(crate) fn check_room(
    new: &Sandbox,
    live: &[Sandbox],
    room: &SandboxRoom,
) -> Result<(), StoreError> {
    let tenant = &new.tenant;
    let over = |message: String| {
        StoreError::Refused(vulcan_domain::Refusal::OverQuota {
            message,
            retry_after_s: 30,
        })
    };
    if live.len() >= room.max_live as usize {
        return Err(over(format!(
            "tenant {tenant} has {} running or paused sandboxes, the most allowed (VULCAN_SANDBOX_MAX_PER_TENANT): delete one first",
            room.max_live
        )));
    }
    let mem: u64 = live
        .iter()
        .filter(|s| s.holds_memory())
        .map(|s| u64::from(s.resources.mem_mb))
        .sum();
    if mem + u64::from(new.resources.mem_mb) > u64::from(room.max_mem_mb) {
        return Err(over(format!(
            "tenant {tenant}'s running (and frozen) sandboxes hold {mem} MiB of memory; {} more would pass its {} MiB (VULCAN_SANDBOX_TENANT_MEM_MB): pause or delete one, or ask for less mem_mb",
            new.resources.mem_mb, room.max_mem_mb
        )));
    }
    let disk: u64 = live.iter().map(|s| u64::from(s.resources.disk_mb)).sum();
    if disk + u64::from(new.resources.disk_mb) > u64::from(room.max_disk_mb) {
        return Err(over(format!(
            "tenant {tenant}'s running and paused sandboxes hold {disk} MiB of disk; {} more would pass its {} MiB (VULCAN_SANDBOX_TENANT_DISK_MB): delete one, or ask for less disk_mb",
            new.resources.disk_mb, room.max_disk_mb
        )));
    }
    Ok(())
}

/// What mounts volumes now: a running or paused sandbox, or a pending or running
/// workload (which holds its volumes from its admission to its end).
pub(crate) struct Holder {
    /// "sandbox" or "workload".
    pub kind: &'static str,
    pub id: String,
    /// Its state or status.
    pub state: String,
    pub volumes: Vec<VolumeMount>,
}

impl Holder {
    pub(crate) fn sandbox(s: &Sandbox) -> Holder {
        Holder {
            kind: "sandbox",
            id: s.id.clone(),
            state: s.state.as_str().to_owned(),
            volumes: s.volumes.clone(),
        }
    }

    /// A workload's row: its id, status and the JSON of its mounts.
    pub(crate) fn workload(id: String, status: String, json: &str) -> Result<Holder, StoreError> {
        let volumes = serde_json::from_str(json)
            .map_err(|e| StoreError::Io(format!("a workload's stored volumes: {e}")))?;
        Ok(Holder {
            kind: "workload",
            id,
            state: status,
            volumes,
        })
    }
}

/// The JSON a workload's row keeps of the volumes it mounts (none: `NULL`).
pub(crate) fn workload_volumes(spec: &WorkloadSpec) -> Result<Option<String>, StoreError> {
    if spec.volumes.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&spec.volumes)
        .map(Some)
        .map_err(|e| StoreError::Io(format!("encoding a workload's volumes: {e}")))
}

/// Whether the volumes in `mounts` are free beside what `holders` mount: a volume has
/// one writer and no reader beside it, or readers only.
pub(crate) fn check_volumes(mounts: &[VolumeMount], holders: &[Holder]) -> Result<(), StoreError> {
    for mount in mounts {
        let holder = holders.iter().find_map(|h| {
            h.volumes
                .iter()
                .find(|m| m.name == mount.name && (!mount.read_only || !m.read_only))
                .map(|m| (h, m))
        });
        if let Some((holder, held)) = holder {
            let how = if held.read_only {
                "read-only"
            } else {
                "read-write"
            };
            return Err(StoreError::Conflict(format!(
                "volume {} is mounted {how} by {} {} ({}): a volume has one writer and no reader beside it; mount it read_only, or wait for that {} to end",
                mount.name, holder.kind, holder.id, holder.state, holder.kind
            )));
        }
    }
    Ok(())
}

/// Why volume `name` cannot be deleted, if one of `holders` mounts it.
pub(crate) fn check_unmounted(name: &str, holders: &[Holder]) -> Result<(), StoreError> {
    let users: Vec<String> = holders
        .iter()
        .filter(|h| h.volumes.iter().any(|m| m.name == name))
        .map(|h| format!("{} {}", h.kind, h.id))
        .collect();
    if users.is_empty() {
        return Ok(());
    }
    Err(StoreError::Conflict(format!(
        "volume {name} is mounted by {}: wait for it to end, or end it first",
        users.join(", ")
    )))
}

/// The columns of workloads that mount volumes (a partial index keeps finding the live
/// ones of a tenant cheap): the JSON of the mounts, and the node that runs them (the
/// volumes' own). Shared by both stores' migrations.
pub(crate) const WORKLOAD_VOLUMES_SCHEMA: &str = r#"
    ALTER TABLE workloads ADD COLUMN volumes TEXT;
    ALTER TABLE workloads ADD COLUMN volume_node TEXT;
    CREATE INDEX workloads_volumes ON workloads (tenant, status) WHERE volumes IS NOT NULL;
"#;

/// The trace a workload is part of, when traces are exported. Shared by both stores'
/// migrations.
pub(crate) const WORKLOAD_TRACE_SCHEMA: &str = "ALTER TABLE workloads ADD COLUMN trace_id TEXT;";

/// A volume's record as stored.
pub(crate) fn volume_to_json(volume: &Volume) -> Result<String, StoreError> {
    serde_json::to_string(volume).map_err(|e| StoreError::Io(format!("encoding a volume: {e}")))
}

pub(crate) fn volume_from_json(json: &str) -> Result<Volume, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Io(format!("a stored volume: {e}")))
}

/// The refusal of a volume past the tenant's count.
pub(crate) fn too_many_volumes(tenant: &str, max: u32) -> StoreError {
    StoreError::Refused(vulcan_domain::Refusal::OverQuota {
        message: format!(
            "tenant {tenant} has {max} volumes, the most allowed (VULCAN_VOLUME_MAX_PER_TENANT): delete one first"
        ),
        retry_after_s: 30,
    })
}

/// The first `limit` of `found` (newest first), and a cursor if there were more.
pub(crate) fn page(mut found: Vec<Sandbox>, limit: u32) -> SandboxPage {
    let next = (found.len() > limit as usize).then(|| {
        found.truncate(limit as usize);
        found.last().map(|s| s.id.clone()).unwrap_or_default()
    });
    SandboxPage {
        sandboxes: found,
        next,
    }
}
