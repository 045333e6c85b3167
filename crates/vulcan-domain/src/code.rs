//! What to run — one shape for a workload, a function version and whatever comes next: the
//! runtime, the isolation, the code (text or an archive) or an image and its command, the
//! environment, the secrets it gets by name, and its resources. A [`crate::WorkloadSpec`]
//! is this and an input; a [`crate::FunctionCode`] is this and how its instances are kept.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Isolation, NetworkPolicy, Resources, Runtime};

/// What runs, and with what.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Code {
    pub runtime: Runtime,
    /// The isolation: as asked for on a function version (`auto` resolves at each
    /// invocation), the one chosen on a workload's spec (never `auto`).
    pub isolation: Isolation,
    /// Source text: a module, a script, or base64 for `wasm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A gzip-compressed tar archive. Stores keep it beside the record, never in its JSON.
    #[serde(default, skip)]
    pub code_archive: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Secrets (by name) the code gets as environment variables; their values are added
    /// by the node that runs it, never stored with it.
    #[serde(default)]
    pub secrets: Vec<String>,
    pub resources: Resources,
    /// What it may reach over the network (nothing unless it says so).
    #[serde(default, skip_serializing_if = "NetworkPolicy::is_none")]
    pub network: NetworkPolicy,
}
