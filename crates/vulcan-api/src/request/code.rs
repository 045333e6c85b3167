//! What to run, as a request says it: one body shape, shared by `POST /v1/workloads` (with
//! an `input`) and `PUT /v1/functions/{name}` (with how instances are kept), and one
//! conversion into the engine's [`CodeRequest`].

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;
use vulcan_domain::{Isolation, NetworkPolicy, Runtime};
use vulcan_engine::CodeRequest;

use crate::ApiError;

/// What to run.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CodeBody {
    /// `go`, `node`, `python`, `wasm` or `oci`.
    #[schema(value_type = vulcan_domain::Runtime, required = true)]
    runtime: Option<String>,
    /// `auto` (the default), `isolate`, `gvisor` or `microvm`.
    #[schema(value_type = Option<vulcan_domain::Isolation>)]
    isolation: Option<String>,
    code: Option<String>,
    /// Base64 of a gzip-compressed tar archive.
    code_archive: Option<String>,
    image: Option<String>,
    command: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Secrets (by name) the code gets as environment variables.
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    resources: ResourcesBody,
    /// What the code may reach: `{"egress": "allow", "allow": ["api.example.com:443"]}`.
    /// Nothing (`{"egress": "none"}`) unless it says so.
    #[serde(default)]
    network: NetworkPolicy,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ResourcesBody {
    #[serde(default, deserialize_with = "vulcan_domain::whole::opt")]
    cpus: Option<u32>,
    #[serde(default, deserialize_with = "vulcan_domain::whole::opt")]
    mem_mb: Option<u32>,
    #[serde(default, deserialize_with = "vulcan_domain::whole::opt")]
    timeout_s: Option<u32>,
    /// A cap on the network, each way, in megabits a second (with `network` only).
    #[serde(default, deserialize_with = "vulcan_domain::whole::opt")]
    net_mbps: Option<u32>,
}

/// The fields of a body that holds a [`CodeBody`] (flattened) and `own` besides: serde
/// cannot refuse unknown fields through a flattened struct, so [`crate::extract::FlatJson`]
/// checks them against this list.
pub fn fields_with(own: &[&'static str]) -> Vec<&'static str> {
    let mut all = vec![
        "runtime",
        "isolation",
        "code",
        "code_archive",
        "image",
        "command",
        "env",
        "secrets",
        "resources",
        "network",
    ];
    all.extend_from_slice(own);
    all
}

fn parse_kind<T: std::str::FromStr>(field: &str, v: Option<String>) -> Result<Option<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    v.map(|v| v.parse::<T>())
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("\"{field}\": {e}")))
}

impl CodeBody {
    /// The engine's form: kinds parsed, the archive decoded.
    pub fn into_request(self) -> Result<CodeRequest, ApiError> {
        let code_archive = self
            .code_archive
            .map(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| {
                        ApiError::bad_request(format!(
                            "\"code_archive\" is not valid base64 ({e}): send a base64-encoded tar.gz"
                        ))
                    })
            })
            .transpose()?;
        Ok(CodeRequest {
            runtime: parse_kind::<Runtime>("runtime", self.runtime)?,
            isolation: parse_kind::<Isolation>("isolation", self.isolation)?,
            code: self.code,
            code_archive,
            image: self.image,
            command: self.command,
            env: self.env,
            secrets: self.secrets,
            cpus: self.resources.cpus,
            mem_mb: self.resources.mem_mb,
            timeout_s: self.resources.timeout_s,
            net_mbps: self.resources.net_mbps,
            network: self.network,
        })
    }
}
