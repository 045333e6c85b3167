//! What both stores say about functions, the same way.

use time::OffsetDateTime;
use vulcan_domain::{FunctionCode, FunctionVersion, StoreError};

pub(crate) fn missing_function(name: &str) -> StoreError {
    StoreError::Missing(format!(
        "function {name} not found: GET /v1/functions lists them"
    ))
}

pub(crate) fn missing_version(name: &str, version: u32) -> StoreError {
    StoreError::Missing(format!(
        "function {name} has no version {version}: GET /v1/functions/{name}/versions lists them"
    ))
}

/// The stored record of a new version (its archive is kept beside it, not in it).
pub(crate) fn version_record(
    tenant: &str,
    name: &str,
    version: u32,
    digest: &str,
    created_at: OffsetDateTime,
    code: &FunctionCode,
) -> FunctionVersion {
    FunctionVersion {
        tenant: tenant.to_owned(),
        name: name.to_owned(),
        version,
        digest: digest.to_owned(),
        created_at: created_at
            .replace_nanosecond(created_at.nanosecond() / 1_000_000 * 1_000_000)
            .unwrap_or(created_at),
        code: {
            let mut code = code.clone();
            code.run.code_archive = None;
            code
        },
    }
}
