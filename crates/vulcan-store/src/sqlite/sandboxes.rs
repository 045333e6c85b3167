//! [`SandboxStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Transaction};
use time::OffsetDateTime;
use vulcan_domain::{
    Sandbox, SandboxFilter, SandboxPage, SandboxRoom, SandboxState, SandboxStore, StoreError,
    Volume,
};

use super::{io, SqliteStore};
use crate::sandboxes::{
    check_room, check_unmounted, check_volumes, deadline, from_json, has_metadata, moved, page,
    to_json, too_many_volumes, volume_from_json, volume_to_json, Holder, BATCH,
};

fn load(tx: &Transaction, id: &str) -> Result<Sandbox, StoreError> {
    let json: String = tx
        .query_row("SELECT record FROM sandboxes WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(io)?
        .ok_or_else(|| StoreError::NotFound(format!("sandbox {id}")))?;
    from_json(&json)
}

fn save(tx: &Transaction, sandbox: &Sandbox) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE sandboxes SET state = ?2, record = ?3 WHERE id = ?1",
        params![sandbox.id, sandbox.state.as_str(), to_json(sandbox)?],
    )
    .map_err(io)?;
    Ok(())
}

/// The tenant's volume `name`.
fn load_volume(
    conn: &rusqlite::Connection,
    tenant: &str,
    name: &str,
) -> Result<Volume, StoreError> {
    let json: String = conn
        .query_row(
            "SELECT record FROM volumes WHERE tenant = ?1 AND name = ?2",
            [tenant, name],
            |r| r.get(0),
        )
        .optional()
        .map_err(io)?
        .ok_or_else(|| StoreError::NotFound(format!("volume {name}")))?;
    volume_from_json(&json)
}

/// The tenant's running and paused sandboxes.
pub(super) fn live_of(tx: &Transaction, tenant: &str) -> Result<Vec<Sandbox>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT record FROM sandboxes WHERE tenant = ?1 AND state IN ('running', 'paused')",
        )
        .map_err(io)?;
    let rows = stmt
        .query_map([tenant], |r| r.get::<_, String>(0))
        .map_err(io)?;
    rows.map(|row| from_json(&row.map_err(io)?)).collect()
}

/// What mounts the tenant's volumes now: its running and paused sandboxes (`live`), and
/// its pending and running workloads that mount any.
pub(super) fn holders(
    conn: &rusqlite::Connection,
    tenant: &str,
    live: &[Sandbox],
) -> Result<Vec<Holder>, StoreError> {
    let mut holders: Vec<Holder> = live.iter().map(Holder::sandbox).collect();
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, status, volumes FROM workloads
             WHERE tenant = ?1 AND volumes IS NOT NULL AND status IN ('pending', 'running')",
        )
        .map_err(io)?;
    let rows = stmt
        .query_map([tenant], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(io)?;
    for row in rows {
        let (id, status, json) = row.map_err(io)?;
        holders.push(Holder::workload(id, status, &json)?);
    }
    Ok(holders)
}

#[async_trait]
impl SandboxStore for SqliteStore {
    async fn insert_sandbox(
        &self,
        sandbox: &Sandbox,
        room: &SandboxRoom,
    ) -> Result<(), StoreError> {
        let (sandbox, room) = (sandbox.clone(), *room);
        let json = to_json(&sandbox)?;
        self.write(move |conn| {
            let tx = conn.transaction().map_err(io)?;
            let live = live_of(&tx, &sandbox.tenant)?;
            check_room(&sandbox, &live, &room)?;
            check_volumes(&sandbox.volumes, &holders(&tx, &sandbox.tenant, &live)?)?;
            tx.execute(
                "INSERT INTO sandboxes (id, tenant, node_id, state, record) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    sandbox.id,
                    sandbox.tenant,
                    sandbox.node_id,
                    sandbox.state.as_str(),
                    json
                ],
            )
            .map_err(io)?;
            tx.commit().map_err(io)
        })
        .await
    }

    async fn sandbox(&self, id: &str) -> Result<Sandbox, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            let json: String = conn
                .query_row("SELECT record FROM sandboxes WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(io)?
                .ok_or_else(|| StoreError::NotFound(format!("sandbox {id}")))?;
            from_json(&json)
        })
        .await
    }

    async fn sandboxes(&self, filter: &SandboxFilter) -> Result<SandboxPage, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, record FROM sandboxes
                     WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR state = ?2)
                       AND (?3 IS NULL OR id < ?3)
                     ORDER BY id DESC LIMIT ?4",
                )
                .map_err(io)?;
            let mut found = Vec::new();
            let mut before = filter.before.clone();
            loop {
                let rows: Vec<(String, String)> = stmt
                    .query_map(
                        params![
                            filter.tenant,
                            filter.state.map(SandboxState::as_str),
                            before,
                            BATCH
                        ],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(io)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(io)?;
                let done = rows.len() < BATCH as usize;
                for (id, json) in rows {
                    before = Some(id);
                    let sandbox = from_json(&json)?;
                    if has_metadata(&filter, &sandbox) {
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
        .await
    }

    async fn set_sandbox_state(
        &self,
        id: &str,
        from: SandboxState,
        to: SandboxState,
        note: Option<&str>,
    ) -> Result<Sandbox, StoreError> {
        let (id, note) = (id.to_owned(), note.map(str::to_owned));
        self.write(move |conn| {
            let tx = conn.transaction().map_err(io)?;
            let sandbox = moved(load(&tx, &id)?, from, to, note.as_deref())?;
            save(&tx, &sandbox)?;
            tx.commit().map_err(io)?;
            Ok(sandbox)
        })
        .await
    }

    async fn set_sandbox_deadline(
        &self,
        id: &str,
        end_at: OffsetDateTime,
    ) -> Result<Sandbox, StoreError> {
        let id = id.to_owned();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(io)?;
            let sandbox = deadline(load(&tx, &id)?, end_at)?;
            save(&tx, &sandbox)?;
            tx.commit().map_err(io)?;
            Ok(sandbox)
        })
        .await
    }

    async fn insert_volume(&self, volume: &Volume, max_per_tenant: u32) -> Result<(), StoreError> {
        let volume = volume.clone();
        let json = volume_to_json(&volume)?;
        self.write(move |conn| {
            let tx = conn.transaction().map_err(io)?;
            let held: u32 = tx
                .query_row(
                    "SELECT COUNT(*) FROM volumes WHERE tenant = ?1",
                    [&volume.tenant],
                    |r| r.get(0),
                )
                .map_err(io)?;
            if held >= max_per_tenant {
                return Err(too_many_volumes(&volume.tenant, max_per_tenant));
            }
            let added = tx
                .execute(
                    "INSERT INTO volumes (tenant, name, record) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![volume.tenant, volume.name, json],
                )
                .map_err(io)?;
            if added == 0 {
                return Err(StoreError::Conflict(format!(
                    "tenant {} has a volume named {} already",
                    volume.tenant, volume.name
                )));
            }
            tx.commit().map_err(io)
        })
        .await
    }

    async fn volume(&self, tenant: &str, name: &str) -> Result<Volume, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.read(move |conn| load_volume(conn, &tenant, &name))
            .await
    }

    async fn volumes(&self, tenant: Option<&str>) -> Result<Vec<Volume>, StoreError> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT record FROM volumes WHERE (?1 IS NULL OR tenant = ?1) ORDER BY name, tenant",
            )
            .map_err(io)?
            .query_map([tenant], |r| r.get::<_, String>(0))
            .map_err(io)?
            .map(|json| volume_from_json(&json.map_err(io)?))
            .collect()
        })
        .await
    }

    async fn delete_volume(&self, tenant: &str, name: &str) -> Result<Volume, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.write(move |conn| {
            let tx = conn.transaction().map_err(io)?;
            let volume = load_volume(&tx, &tenant, &name)?;
            let live = live_of(&tx, &tenant)?;
            check_unmounted(&name, &holders(&tx, &tenant, &live)?)?;
            tx.execute(
                "DELETE FROM volumes WHERE tenant = ?1 AND name = ?2",
                [&tenant, &name],
            )
            .map_err(io)?;
            tx.commit().map_err(io)?;
            Ok(volume)
        })
        .await
    }

    async fn sandboxes_on(
        &self,
        node: &str,
        state: SandboxState,
    ) -> Result<Vec<Sandbox>, StoreError> {
        let node = node.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT record FROM sandboxes WHERE node_id = ?1 AND state = ?2 ORDER BY id",
            )
            .map_err(io)?
            .query_map(params![node, state.as_str()], |r| r.get::<_, String>(0))
            .map_err(io)?
            .map(|json| from_json(&json.map_err(io)?))
            .collect()
        })
        .await
    }
}
