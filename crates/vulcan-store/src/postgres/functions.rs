//! [`FunctionStore`] on PostgreSQL: functions and their immutable versions. A deploy locks
//! the function's row, so two nodes deploying at once make two versions in turn.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::Row;
use vulcan_domain::{Deployed, Function, FunctionCode, FunctionStore, FunctionVersion, StoreError};

use super::workloads::{from_ms, to_ms};
use super::{io, Fail, PgStore};
use crate::functions::{missing_function, missing_version, version_record};

const FUNCTION_COLUMNS: &str = "tenant, name, active_version, latest_version, runtime, public, \
    invocations, created_at, updated_at";

fn function_from_row(row: &Row) -> Result<Function, Fail> {
    Ok(Function {
        tenant: row.get(0),
        name: row.get(1),
        active_version: row.get::<_, i64>(2) as u32,
        latest_version: row.get::<_, i64>(3) as u32,
        runtime: row
            .get::<_, String>(4)
            .parse()
            .map_err(|e: vulcan_domain::ParseKindError| Fail::Store(io(e)))?,
        public: row.get(5),
        invocations: row.get::<_, i64>(6).max(0) as u64,
        instances: 0,
        created_at: from_ms(row.get(7)),
        updated_at: from_ms(row.get(8)),
    })
}

fn version_from(json: &str, archive: Option<Vec<u8>>) -> Result<FunctionVersion, Fail> {
    let mut version: FunctionVersion =
        serde_json::from_str(json).map_err(|e| Fail::Store(io(e)))?;
    version.code.run.code_archive = archive;
    Ok(version)
}

async fn live_function(
    c: &impl deadpool_postgres::GenericClient,
    tenant: &str,
    name: &str,
) -> Result<Function, Fail> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {FUNCTION_COLUMNS} FROM functions WHERE tenant = $1 AND name = $2 AND deleted_at IS NULL"
        ))
        .await?;
    match c.query_opt(&st, &[&tenant, &name]).await? {
        Some(row) => function_from_row(&row),
        None => Err(missing_function(name).into()),
    }
}

#[async_trait]
impl FunctionStore for PgStore {
    async fn deploy(
        &self,
        tenant: &str,
        name: &str,
        code: &FunctionCode,
        digest: &str,
    ) -> Result<Deployed, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                // Concurrent deploys of one function take turns (even of a new one).
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))",
                    &[&tenant, &name],
                )
                .await?;
                let current = tx
                    .query_opt(
                        "SELECT active_version, latest_version, deleted_at IS NOT NULL FROM functions
                         WHERE tenant = $1 AND name = $2 FOR UPDATE",
                        &[&tenant, &name],
                    )
                    .await?
                    .map(|r| (r.get::<_, i64>(0) as u32, r.get::<_, i64>(1) as u32, r.get::<_, bool>(2)));
                if let Some((active, _, false)) = current {
                    let same = tx
                        .query_opt(
                            "SELECT record, code_archive FROM function_versions
                             WHERE tenant = $1 AND name = $2 AND version = $3 AND digest = $4",
                            &[&tenant, &name, &i64::from(active), &digest],
                        )
                        .await?;
                    if let Some(row) = same {
                        return Ok(Deployed {
                            version: version_from(row.get(0), row.get(1))?,
                            created: false,
                            changed: false,
                        });
                    }
                }
                let next = current.map_or(1, |(_, latest, _)| latest + 1);
                let now = OffsetDateTime::now_utc();
                let version = version_record(tenant, name, next, digest, now, code);
                let json = serde_json::to_string(&version).map_err(|e| Fail::Store(io(e)))?;
                tx.execute(
                    "INSERT INTO function_versions (tenant, name, version, digest, record, code_archive, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[&tenant, &name, &i64::from(next), &digest, &json, &code.run.code_archive, &to_ms(now)],
                )
                .await?;
                tx.execute(
                    "INSERT INTO functions (tenant, name, active_version, latest_version, runtime, public,
                         invocations, created_at, updated_at)
                     VALUES ($1, $2, $3, $3, $4, $5, 0, $6, $6)
                     ON CONFLICT (tenant, name) DO UPDATE SET active_version = $3, latest_version = $3,
                         runtime = $4, public = $5, updated_at = $6, deleted_at = NULL",
                    &[&tenant, &name, &i64::from(next), &code.run.runtime.as_str(), &code.public, &to_ms(now)],
                )
                .await?;
                tx.commit().await?;
                Ok(Deployed {
                    version: FunctionVersion {
                        code: code.clone(),
                        ..version
                    },
                    created: !matches!(current, Some((_, _, false))),
                    changed: true,
                })
            })
        })
        .await
    }

    async fn function(&self, tenant: &str, name: &str) -> Result<Function, StoreError> {
        self.run(|c, _| Box::pin(async move { live_function(&*c, tenant, name).await }))
            .await
    }

    async fn functions(&self, tenant: Option<&str>) -> Result<Vec<Function>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                c.query(
                    &format!(
                        "SELECT {FUNCTION_COLUMNS} FROM functions
                         WHERE deleted_at IS NULL AND ($1::TEXT IS NULL OR tenant = $1) ORDER BY tenant, name"
                    ),
                    &[&tenant],
                )
                .await?
                .iter()
                .map(function_from_row)
                .collect()
            })
        })
        .await
    }

    async fn version(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
    ) -> Result<FunctionVersion, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "SELECT record, code_archive FROM function_versions
                         WHERE tenant = $1 AND name = $2 AND version = $3",
                    )
                    .await?;
                match c
                    .query_opt(&st, &[&tenant, &name, &i64::from(version)])
                    .await?
                {
                    Some(row) => version_from(row.get(0), row.get(1)),
                    None => Err(missing_version(name, version).into()),
                }
            })
        })
        .await
    }

    async fn versions(&self, tenant: &str, name: &str) -> Result<Vec<FunctionVersion>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                live_function(&*c, tenant, name).await?;
                c.query(
                    "SELECT record FROM function_versions WHERE tenant = $1 AND name = $2 ORDER BY version DESC",
                    &[&tenant, &name],
                )
                .await?
                .iter()
                .map(|r| version_from(r.get(0), None))
                .collect()
            })
        })
        .await
    }

    async fn activate(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
    ) -> Result<Function, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                live_function(&tx, tenant, name).await?;
                let row = tx
                    .query_opt(
                        "SELECT record FROM function_versions WHERE tenant = $1 AND name = $2 AND version = $3",
                        &[&tenant, &name, &i64::from(version)],
                    )
                    .await?
                    .ok_or_else(|| missing_version(name, version))?;
                let record = version_from(row.get(0), None)?;
                tx.execute(
                    "UPDATE functions SET active_version = $3, runtime = $4, public = $5, updated_at = $6
                     WHERE tenant = $1 AND name = $2",
                    &[
                        &tenant,
                        &name,
                        &i64::from(version),
                        &record.code.run.runtime.as_str(),
                        &record.code.public,
                        &to_ms(OffsetDateTime::now_utc()),
                    ],
                )
                .await?;
                let function = live_function(&tx, tenant, name).await?;
                tx.commit().await?;
                Ok(function)
            })
        })
        .await
    }

    async fn delete_function(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "UPDATE functions SET deleted_at = $3 WHERE tenant = $1 AND name = $2 AND deleted_at IS NULL",
                        &[&tenant, &name, &to_ms(OffsetDateTime::now_utc())],
                    )
                    .await?;
                if n == 0 {
                    return Err(missing_function(name).into());
                }
                Ok(())
            })
        })
        .await
    }
}
