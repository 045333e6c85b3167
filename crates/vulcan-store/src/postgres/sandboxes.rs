//! [`SandboxStore`] on PostgreSQL.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::Transaction;
use vulcan_domain::{
    Sandbox, SandboxFilter, SandboxPage, SandboxRoom, SandboxState, SandboxStore, StoreError,
    Volume,
};

use super::{Fail, PgStore};
use crate::sandboxes::{
    check_room, check_unmounted, check_volumes, deadline, from_json, has_metadata, moved, page,
    to_json, too_many_volumes, volume_from_json, volume_to_json, Holder, BATCH,
};

/// The record of sandbox `id`, locked until the transaction ends.
async fn load(tx: &Transaction<'_>, id: &str) -> Result<Sandbox, Fail> {
    match tx
        .query_opt(
            "SELECT record FROM sandboxes WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
    {
        Some(row) => Ok(from_json(row.get(0))?),
        None => Err(StoreError::NotFound(format!("sandbox {id}")).into()),
    }
}

async fn save(tx: &Transaction<'_>, sandbox: &Sandbox) -> Result<(), Fail> {
    tx.execute(
        "UPDATE sandboxes SET state = $2, record = $3 WHERE id = $1",
        &[&sandbox.id, &sandbox.state.as_str(), &to_json(sandbox)?],
    )
    .await?;
    Ok(())
}

/// The tenant's running and paused sandboxes, its sandboxes and volumes locked against
/// another creation or volume change until the transaction ends (across the nodes).
async fn lock_live(tx: &Transaction<'_>, tenant: &str) -> Result<Vec<Sandbox>, Fail> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('vulcan.sandboxes.' || $1))",
        &[&tenant],
    )
    .await?;
    let mut live = Vec::new();
    for row in tx
        .query(
            "SELECT record FROM sandboxes WHERE tenant = $1 AND state IN ('running', 'paused')",
            &[&tenant],
        )
        .await?
    {
        live.push(from_json(row.get(0))?);
    }
    Ok(live)
}

/// What mounts the tenant's volumes now: its running and paused sandboxes (`live`), and
/// its pending and running workloads that mount any.
async fn holders(
    tx: &Transaction<'_>,
    tenant: &str,
    live: &[Sandbox],
) -> Result<Vec<Holder>, Fail> {
    let mut holders: Vec<Holder> = live.iter().map(Holder::sandbox).collect();
    for row in tx
        .query(
            "SELECT id, status, volumes FROM workloads
             WHERE tenant = $1 AND volumes IS NOT NULL AND status IN ('pending', 'running')",
            &[&tenant],
        )
        .await?
    {
        holders.push(Holder::workload(row.get(0), row.get(1), row.get(2))?);
    }
    Ok(holders)
}

/// Whether the volumes a workload of `tenant` mounts are free (see [`check_volumes`]),
/// under the tenant's lock of its sandboxes and volumes until the transaction ends.
pub(super) async fn check_workload_volumes(
    tx: &Transaction<'_>,
    tenant: &str,
    mounts: &[vulcan_domain::VolumeMount],
) -> Result<(), Fail> {
    let live = lock_live(tx, tenant).await?;
    check_volumes(mounts, &holders(tx, tenant, &live).await?)?;
    Ok(())
}

#[async_trait]
impl SandboxStore for PgStore {
    async fn insert_sandbox(
        &self,
        sandbox: &Sandbox,
        room: &SandboxRoom,
    ) -> Result<(), StoreError> {
        let json = to_json(sandbox)?;
        self.run(|c, _| {
            let json = json.clone();
            Box::pin(async move {
                let tx = c.transaction().await?;
                // One creation per tenant at a time, across the nodes: the room holds.
                let live = lock_live(&tx, &sandbox.tenant).await?;
                check_room(sandbox, &live, room)?;
                check_volumes(&sandbox.volumes, &holders(&tx, &sandbox.tenant, &live).await?)?;
                tx.execute(
                    "INSERT INTO sandboxes (id, tenant, node_id, state, record) VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &sandbox.id,
                        &sandbox.tenant,
                        &sandbox.node_id,
                        &sandbox.state.as_str(),
                        &json,
                    ],
                )
                .await?;
                tx.commit().await?;
                Ok(())
            })
        })
        .await
    }

    async fn sandbox(&self, id: &str) -> Result<Sandbox, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                match c
                    .query_opt("SELECT record FROM sandboxes WHERE id = $1", &[&id])
                    .await?
                {
                    Some(row) => Ok(from_json(row.get(0))?),
                    None => Err(StoreError::NotFound(format!("sandbox {id}")).into()),
                }
            })
        })
        .await
    }

    async fn sandboxes(&self, filter: &SandboxFilter) -> Result<SandboxPage, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let mut found = Vec::new();
                let mut before = filter.before.clone();
                let state = filter.state.map(SandboxState::as_str);
                loop {
                    let rows = c
                        .query(
                            "SELECT id, record FROM sandboxes
                             WHERE ($1::TEXT IS NULL OR tenant = $1) AND ($2::TEXT IS NULL OR state = $2)
                               AND ($3::TEXT IS NULL OR id < $3)
                             ORDER BY id DESC LIMIT $4",
                            &[&filter.tenant, &state, &before, &i64::from(BATCH)],
                        )
                        .await?;
                    let done = rows.len() < BATCH as usize;
                    for row in rows {
                        before = Some(row.get(0));
                        let sandbox = from_json(row.get(1))?;
                        if has_metadata(filter, &sandbox) {
                            found.push(sandbox);
                        }
                        if found.len() > filter.limit as usize {
                            break;
                        }
                    }
                    if done || found.len() > filter.limit as usize {
                        break;
                    }
                }
                Ok(page(found, filter.limit))
            })
        })
        .await
    }

    async fn set_sandbox_state(
        &self,
        id: &str,
        from: SandboxState,
        to: SandboxState,
        note: Option<&str>,
    ) -> Result<Sandbox, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let sandbox = moved(load(&tx, id).await?, from, to, note)?;
                save(&tx, &sandbox).await?;
                tx.commit().await?;
                Ok(sandbox)
            })
        })
        .await
    }

    async fn set_sandbox_deadline(
        &self,
        id: &str,
        end_at: OffsetDateTime,
    ) -> Result<Sandbox, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let sandbox = deadline(load(&tx, id).await?, end_at)?;
                save(&tx, &sandbox).await?;
                tx.commit().await?;
                Ok(sandbox)
            })
        })
        .await
    }

    async fn insert_volume(&self, volume: &Volume, max_per_tenant: u32) -> Result<(), StoreError> {
        let json = volume_to_json(volume)?;
        self.run(|c, _| {
            let json = json.clone();
            Box::pin(async move {
                let tx = c.transaction().await?;
                lock_live(&tx, &volume.tenant).await?;
                let held: i64 = tx
                    .query_one(
                        "SELECT COUNT(*) FROM volumes WHERE tenant = $1",
                        &[&volume.tenant],
                    )
                    .await?
                    .get(0);
                if held >= i64::from(max_per_tenant) {
                    return Err(too_many_volumes(&volume.tenant, max_per_tenant).into());
                }
                let added = tx
                    .execute(
                        "INSERT INTO volumes (tenant, name, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[&volume.tenant, &volume.name, &json],
                    )
                    .await?;
                if added == 0 {
                    return Err(StoreError::Conflict(format!(
                        "tenant {} has a volume named {} already",
                        volume.tenant, volume.name
                    ))
                    .into());
                }
                tx.commit().await?;
                Ok(())
            })
        })
        .await
    }

    async fn volume(&self, tenant: &str, name: &str) -> Result<Volume, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                match c
                    .query_opt(
                        "SELECT record FROM volumes WHERE tenant = $1 AND name = $2",
                        &[&tenant, &name],
                    )
                    .await?
                {
                    Some(row) => Ok(volume_from_json(row.get(0))?),
                    None => Err(StoreError::NotFound(format!("volume {name}")).into()),
                }
            })
        })
        .await
    }

    async fn volumes(&self, tenant: Option<&str>) -> Result<Vec<Volume>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT record FROM volumes WHERE ($1::TEXT IS NULL OR tenant = $1) ORDER BY name, tenant",
                        &[&tenant],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| volume_from_json(r.get(0)))
                    .collect::<Result<_, _>>()?)
            })
        })
        .await
    }

    async fn delete_volume(&self, tenant: &str, name: &str) -> Result<Volume, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let live = lock_live(&tx, tenant).await?;
                let Some(row) = tx
                    .query_opt(
                        "SELECT record FROM volumes WHERE tenant = $1 AND name = $2",
                        &[&tenant, &name],
                    )
                    .await?
                else {
                    return Err(StoreError::NotFound(format!("volume {name}")).into());
                };
                let volume = volume_from_json(row.get(0))?;
                check_unmounted(name, &holders(&tx, tenant, &live).await?)?;
                tx.execute(
                    "DELETE FROM volumes WHERE tenant = $1 AND name = $2",
                    &[&tenant, &name],
                )
                .await?;
                tx.commit().await?;
                Ok(volume)
            })
        })
        .await
    }

    async fn sandboxes_on(
        &self,
        node: &str,
        state: SandboxState,
    ) -> Result<Vec<Sandbox>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT record FROM sandboxes WHERE node_id = $1 AND state = $2 ORDER BY id",
                        &[&node, &state.as_str()],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| from_json(r.get(0)))
                    .collect::<Result<_, _>>()?)
            })
        })
        .await
    }
}
