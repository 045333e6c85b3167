//! [`SandboxStore`] on PostgreSQL.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::Transaction;
use vulcan_domain::{
    Sandbox, SandboxFilter, SandboxPage, SandboxRoom, SandboxState, SandboxStore, StoreError,
};

use super::{Fail, PgStore};
use crate::sandboxes::{
    check_room, deadline, from_json, has_metadata, moved, page, to_json, BATCH,
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
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('vulcan.sandboxes.' || $1))",
                    &[&sandbox.tenant],
                )
                .await?;
                let mut live = Vec::new();
                for row in tx
                    .query(
                        "SELECT record FROM sandboxes WHERE tenant = $1 AND state IN ('running', 'paused')",
                        &[&sandbox.tenant],
                    )
                    .await?
                {
                    live.push(from_json(row.get(0))?);
                }
                check_room(sandbox, &live, room)?;
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
