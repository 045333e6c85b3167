//! Secrets: values kept encrypted per tenant, referenced by name, given to code as
//! environment variables. The store only ever sees sealed values.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::StoreError;

/// Whether `name` is a valid secret name: `[A-Z_][A-Z0-9_]{0,63}`.
pub fn valid_secret_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_uppercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

/// A secret as listed: never its value.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    pub tenant: String,
    pub name: String,
    /// Counts the values it has had.
    pub version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A value encrypted with an authenticated cipher under the key named `key_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Stores a new value of `tenant`/`name` (version 1, or one more than before).
    async fn put_secret(
        &self,
        tenant: &str,
        name: &str,
        sealed: &Sealed,
    ) -> Result<SecretInfo, StoreError>;

    /// Secrets, one tenant's or everyone's, by tenant and name.
    async fn secrets(&self, tenant: Option<&str>) -> Result<Vec<SecretInfo>, StoreError>;

    /// One secret with its sealed value; [`StoreError::Missing`] if there is none.
    async fn secret(&self, tenant: &str, name: &str) -> Result<(SecretInfo, Sealed), StoreError>;

    async fn delete_secret(&self, tenant: &str, name: &str) -> Result<(), StoreError>;

    /// Every secret with its sealed value (key checks and rotation).
    async fn sealed_secrets(&self) -> Result<Vec<(SecretInfo, Sealed)>, StoreError>;

    /// Replaces the sealed value of `tenant`/`name` if it is still at `version` (the value
    /// is the same, sealed under another key); false if it changed meanwhile.
    async fn reseal(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
        sealed: &Sealed,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_upper_case_identifiers() {
        for ok in ["DB_PASSWORD", "_X", "A1", &"A".repeat(64)] {
            assert!(valid_secret_name(ok), "{ok}");
        }
        for bad in ["", "db", "1A", "A-B", "A B", &"A".repeat(65)] {
            assert!(!valid_secret_name(bad), "{bad}");
        }
    }
}
