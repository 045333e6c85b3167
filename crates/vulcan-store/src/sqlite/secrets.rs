//! [`SecretStore`] on SQLite: sealed values only; the engine holds the keys.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};
use time::OffsetDateTime;
use vulcan_domain::{Sealed, SecretInfo, SecretStore, StoreError};

use super::{from_ms, io, to_ms, SqliteStore};
use crate::schedules::missing_secret;

fn secret_from_row(row: &Row) -> rusqlite::Result<(SecretInfo, Sealed)> {
    Ok((
        SecretInfo {
            tenant: row.get(0)?,
            name: row.get(1)?,
            version: row.get(2)?,
            created_at: from_ms(row.get(6)?),
            updated_at: from_ms(row.get(7)?),
        },
        Sealed {
            key_id: row.get(3)?,
            nonce: row.get(4)?,
            ciphertext: row.get(5)?,
        },
    ))
}

const SECRET_COLUMNS: &str =
    "tenant, name, version, key_id, nonce, ciphertext, created_at, updated_at";

#[async_trait]
impl SecretStore for SqliteStore {
    async fn put_secret(
        &self,
        tenant: &str,
        name: &str,
        sealed: &Sealed,
    ) -> Result<SecretInfo, StoreError> {
        let (tenant, name, sealed) = (tenant.to_owned(), name.to_owned(), sealed.clone());
        self.write(move |conn| {
            let now = to_ms(OffsetDateTime::now_utc());
            conn.prepare_cached(&format!(
                "INSERT INTO secrets ({SECRET_COLUMNS}) VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?6)
                 ON CONFLICT (tenant, name) DO UPDATE SET version = version + 1, key_id = ?3,
                     nonce = ?4, ciphertext = ?5, updated_at = ?6
                 RETURNING {SECRET_COLUMNS}"
            ))
            .map_err(io)?
            .query_row(
                params![
                    tenant,
                    name,
                    sealed.key_id,
                    sealed.nonce,
                    sealed.ciphertext,
                    now
                ],
                secret_from_row,
            )
            .map(|(info, _)| info)
            .map_err(io)
        })
        .await
    }

    async fn secrets(&self, tenant: Option<&str>) -> Result<Vec<SecretInfo>, StoreError> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {SECRET_COLUMNS} FROM secrets WHERE ?1 IS NULL OR tenant = ?1 ORDER BY tenant, name"
            ))
            .map_err(io)?
            .query_map(params![tenant], secret_from_row)
            .map_err(io)?
            .map(|r| r.map(|(info, _)| info).map_err(io))
            .collect()
        })
        .await
    }

    async fn secret(&self, tenant: &str, name: &str) -> Result<(SecretInfo, Sealed), StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {SECRET_COLUMNS} FROM secrets WHERE tenant = ?1 AND name = ?2"
            ))
            .map_err(io)?
            .query_row(params![tenant, name], secret_from_row)
            .optional()
            .map_err(io)?
            .ok_or_else(|| missing_secret(&name))
        })
        .await
    }

    async fn delete_secret(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM secrets WHERE tenant = ?1 AND name = ?2",
                    params![tenant, name],
                )
                .map_err(io)?;
            if n == 0 {
                return Err(missing_secret(&name));
            }
            Ok(())
        })
        .await
    }

    async fn sealed_secrets(&self) -> Result<Vec<(SecretInfo, Sealed)>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {SECRET_COLUMNS} FROM secrets ORDER BY tenant, name"
            ))
            .map_err(io)?
            .query_map([], secret_from_row)
            .map_err(io)?
            .map(|r| r.map_err(io))
            .collect()
        })
        .await
    }

    async fn reseal(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
        sealed: &Sealed,
    ) -> Result<bool, StoreError> {
        let (tenant, name, sealed) = (tenant.to_owned(), name.to_owned(), sealed.clone());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE secrets SET key_id = ?4, nonce = ?5, ciphertext = ?6
                     WHERE tenant = ?1 AND name = ?2 AND version = ?3",
                    params![
                        tenant,
                        name,
                        version,
                        sealed.key_id,
                        sealed.nonce,
                        sealed.ciphertext
                    ],
                )
                .map_err(io)?;
            Ok(n == 1)
        })
        .await
    }
}
