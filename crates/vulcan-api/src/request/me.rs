//! `GET /v1/me`: who the key is, and what it may do.

use axum::{Extension, Json};
use serde::Serialize;
use vulcan_domain::{Permission, Role};

use crate::auth::Caller;

/// The caller's key, role, tenant and permissions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    /// The key's id (`admin-env` for `VULCAN_ADMIN_KEY`, `auth-off` with auth off).
    key_id: String,
    role: Role,
    tenant: String,
    /// Whether authentication is on: with it off every request acts as an admin.
    auth: bool,
    /// Every permission of the role, e.g. `workloads:kill`.
    permissions: Vec<&'static str>,
}

#[utoipa::path(get, path = "/v1/me", tag = "access", responses((status = 200, description = "OK", body = Me), crate::error::Errors))]
pub async fn show(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    Extension(caller): Extension<Caller>,
) -> Json<Me> {
    Json(Me {
        permissions: Permission::ALL
            .into_iter()
            .filter(|p| caller.role.allows(*p))
            .map(Permission::as_str)
            .collect(),
        key_id: caller.key_id,
        role: caller.role,
        tenant: caller.tenant,
        auth: state.auth.enabled,
    })
}
