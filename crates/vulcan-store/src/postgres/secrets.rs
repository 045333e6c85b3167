//! [`SecretStore`] on PostgreSQL: sealed values only; the engine holds the keys.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::Row;
use vulcan_domain::{Sealed, SecretInfo, SecretStore, StoreError};

use super::workloads::{from_ms, to_ms};
use super::PgStore;
use crate::schedules::missing_secret;

const SECRET_COLUMNS: &str =
    "tenant, name, version, key_id, nonce, ciphertext, created_at, updated_at";

fn secret_from_row(row: &Row) -> (SecretInfo, Sealed) {
    (
        SecretInfo {
            tenant: row.get(0),
            name: row.get(1),
            version: row.get::<_, i64>(2).max(0) as u32,
            created_at: from_ms(row.get(6)),
            updated_at: from_ms(row.get(7)),
        },
        Sealed {
            key_id: row.get(3),
            nonce: row.get(4),
            ciphertext: row.get(5),
        },
    )
}

#[async_trait]
impl SecretStore for PgStore {
    async fn put_secret(
        &self,
        tenant: &str,
        name: &str,
        sealed: &Sealed,
    ) -> Result<SecretInfo, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let now = to_ms(OffsetDateTime::now_utc());
                let row = c
                    .query_one(
                        &format!(
                            "INSERT INTO secrets ({SECRET_COLUMNS}) VALUES ($1, $2, 1, $3, $4, $5, $6, $6)
                             ON CONFLICT (tenant, name) DO UPDATE SET version = secrets.version + 1,
                                 key_id = $3, nonce = $4, ciphertext = $5, updated_at = $6
                             RETURNING {SECRET_COLUMNS}"
                        ),
                        &[&tenant, &name, &sealed.key_id, &sealed.nonce, &sealed.ciphertext, &now],
                    )
                    .await?;
                Ok(secret_from_row(&row).0)
            })
        })
        .await
    }

    async fn secrets(&self, tenant: Option<&str>) -> Result<Vec<SecretInfo>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                Ok(c.query(
                    &format!(
                        "SELECT {SECRET_COLUMNS} FROM secrets
                             WHERE $1::TEXT IS NULL OR tenant = $1 ORDER BY tenant, name"
                    ),
                    &[&tenant],
                )
                .await?
                .iter()
                .map(|r| secret_from_row(r).0)
                .collect())
            })
        })
        .await
    }

    async fn secret(&self, tenant: &str, name: &str) -> Result<(SecretInfo, Sealed), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        &format!(
                            "SELECT {SECRET_COLUMNS} FROM secrets WHERE tenant = $1 AND name = $2"
                        ),
                        &[&tenant, &name],
                    )
                    .await?
                    .ok_or_else(|| missing_secret(name))?;
                Ok(secret_from_row(&row))
            })
        })
        .await
    }

    async fn delete_secret(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "DELETE FROM secrets WHERE tenant = $1 AND name = $2",
                        &[&tenant, &name],
                    )
                    .await?;
                if n == 0 {
                    return Err(missing_secret(name).into());
                }
                Ok(())
            })
        })
        .await
    }

    async fn sealed_secrets(&self) -> Result<Vec<(SecretInfo, Sealed)>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                Ok(c.query(
                    &format!("SELECT {SECRET_COLUMNS} FROM secrets ORDER BY tenant, name"),
                    &[],
                )
                .await?
                .iter()
                .map(secret_from_row)
                .collect())
            })
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
        self.run(|c, _| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "UPDATE secrets SET key_id = $4, nonce = $5, ciphertext = $6
                         WHERE tenant = $1 AND name = $2 AND version = $3",
                        &[
                            &tenant,
                            &name,
                            &i64::from(version),
                            &sealed.key_id,
                            &sealed.nonce,
                            &sealed.ciphertext,
                        ],
                    )
                    .await?;
                Ok(n == 1)
            })
        })
        .await
    }
}
