//! [`FunctionStore`] on SQLite: functions and their immutable versions.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};
use time::OffsetDateTime;
use vulcan_domain::{Deployed, Function, FunctionCode, FunctionStore, FunctionVersion, StoreError};

use super::{from_ms, io, parse_column, to_ms, SqliteStore};
use crate::functions::{missing_function, missing_version, version_record};

const FUNCTION_COLUMNS: &str = "tenant, name, active_version, latest_version, runtime, public, \
    invocations, created_at, updated_at";

fn function_from_row(row: &Row) -> rusqlite::Result<Function> {
    Ok(Function {
        tenant: row.get(0)?,
        name: row.get(1)?,
        active_version: row.get(2)?,
        latest_version: row.get(3)?,
        runtime: parse_column(row, 4)?,
        public: row.get(5)?,
        invocations: row.get::<_, i64>(6)?.max(0) as u64,
        instances: 0,
        created_at: from_ms(row.get(7)?),
        updated_at: from_ms(row.get(8)?),
    })
}

fn version_from(json: &str, archive: Option<Vec<u8>>) -> Result<FunctionVersion, StoreError> {
    let mut version: FunctionVersion = serde_json::from_str(json).map_err(io)?;
    version.code.run.code_archive = archive;
    Ok(version)
}

fn live_function(
    conn: &rusqlite::Connection,
    tenant: &str,
    name: &str,
) -> Result<Function, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {FUNCTION_COLUMNS} FROM functions WHERE tenant = ?1 AND name = ?2 AND deleted_at IS NULL"
    ))
    .map_err(io)?
    .query_row(params![tenant, name], function_from_row)
    .optional()
    .map_err(io)?
    .ok_or_else(|| missing_function(name))
}

#[async_trait]
impl FunctionStore for SqliteStore {
    async fn deploy(
        &self,
        tenant: &str,
        name: &str,
        code: &FunctionCode,
        digest: &str,
    ) -> Result<Deployed, StoreError> {
        let (tenant, name, code, digest) = (
            tenant.to_owned(),
            name.to_owned(),
            code.clone(),
            digest.to_owned(),
        );
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(io)?;
            let current: Option<(u32, u32, bool)> = tx
                .query_row(
                    "SELECT active_version, latest_version, deleted_at IS NOT NULL FROM functions
                     WHERE tenant = ?1 AND name = ?2",
                    params![tenant, name],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(io)?;
            if let Some((active, _, false)) = current {
                let (json, archive): (String, Option<Vec<u8>>) = tx
                    .query_row(
                        "SELECT record, code_archive FROM function_versions
                         WHERE tenant = ?1 AND name = ?2 AND version = ?3 AND digest = ?4",
                        params![tenant, name, active, digest],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(io)?
                    .unwrap_or_default();
                if !json.is_empty() {
                    return Ok(Deployed {
                        version: version_from(&json, archive)?,
                        created: false,
                        changed: false,
                    });
                }
            }
            let next = current.map_or(1, |(_, latest, _)| latest + 1);
            let now = OffsetDateTime::now_utc();
            let version = version_record(&tenant, &name, next, &digest, now, &code);
            let json = serde_json::to_string(&version).map_err(io)?;
            tx.execute(
                "INSERT INTO function_versions (tenant, name, version, digest, record, code_archive, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![tenant, name, next, digest, json, code.run.code_archive, to_ms(now)],
            )
            .map_err(io)?;
            tx.execute(
                "INSERT INTO functions (tenant, name, active_version, latest_version, runtime, public,
                     invocations, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?3, ?4, ?5, 0, ?6, ?6)
                 ON CONFLICT (tenant, name) DO UPDATE SET active_version = ?3, latest_version = ?3,
                     runtime = ?4, public = ?5, updated_at = ?6, deleted_at = NULL",
                params![tenant, name, next, code.run.runtime.as_str(), code.public, to_ms(now)],
            )
            .map_err(io)?;
            tx.commit().map_err(io)?;
            Ok(Deployed {
                version: FunctionVersion {
                    code: code.clone(),
                    ..version
                },
                created: !matches!(current, Some((_, _, false))),
                changed: true,
            })
        })
        .await
    }

    async fn function(&self, tenant: &str, name: &str) -> Result<Function, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.read(move |conn| live_function(conn, &tenant, &name))
            .await
    }

    async fn functions(&self, tenant: Option<&str>) -> Result<Vec<Function>, StoreError> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {FUNCTION_COLUMNS} FROM functions
                 WHERE deleted_at IS NULL AND (?1 IS NULL OR tenant = ?1) ORDER BY tenant, name"
            ))
            .map_err(io)?
            .query_map([tenant], function_from_row)
            .map_err(io)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(io)
        })
        .await
    }

    async fn version(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
    ) -> Result<FunctionVersion, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.read(move |conn| {
            let (json, archive): (String, Option<Vec<u8>>) = conn
                .prepare_cached(
                    "SELECT record, code_archive FROM function_versions
                     WHERE tenant = ?1 AND name = ?2 AND version = ?3",
                )
                .map_err(io)?
                .query_row(params![tenant, name, version], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(io)?
                .ok_or_else(|| missing_version(&name, version))?;
            version_from(&json, archive)
        })
        .await
    }

    async fn versions(&self, tenant: &str, name: &str) -> Result<Vec<FunctionVersion>, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.read(move |conn| {
            live_function(conn, &tenant, &name)?;
            let jsons = conn
                .prepare_cached(
                    "SELECT record FROM function_versions WHERE tenant = ?1 AND name = ?2
                     ORDER BY version DESC",
                )
                .map_err(io)?
                .query_map(params![tenant, name], |r| r.get::<_, String>(0))
                .map_err(io)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(io)?;
            jsons.iter().map(|j| version_from(j, None)).collect()
        })
        .await
    }

    async fn activate(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
    ) -> Result<Function, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.write(move |conn| {
            let tx = conn.transaction().map_err(io)?;
            live_function(&tx, &tenant, &name)?;
            let json: String = tx
                .query_row(
                    "SELECT record FROM function_versions WHERE tenant = ?1 AND name = ?2 AND version = ?3",
                    params![tenant, name, version],
                    |r| r.get(0),
                )
                .optional()
                .map_err(io)?
                .ok_or_else(|| missing_version(&name, version))?;
            let record = version_from(&json, None)?;
            tx.execute(
                "UPDATE functions SET active_version = ?3, runtime = ?4, public = ?5, updated_at = ?6
                 WHERE tenant = ?1 AND name = ?2",
                params![
                    tenant,
                    name,
                    version,
                    record.code.run.runtime.as_str(),
                    record.code.public,
                    to_ms(OffsetDateTime::now_utc())
                ],
            )
            .map_err(io)?;
            let function = live_function(&tx, &tenant, &name)?;
            tx.commit().map_err(io)?;
            Ok(function)
        })
        .await
    }

    async fn delete_function(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE functions SET deleted_at = ?3 WHERE tenant = ?1 AND name = ?2 AND deleted_at IS NULL",
                    params![tenant, name, to_ms(OffsetDateTime::now_utc())],
                )
                .map_err(io)?;
            if n == 0 {
                return Err(missing_function(&name));
            }
            Ok(())
        })
        .await
    }
}
