//! A request to run code, checked against the engine's rules before anything is stored.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use vulcan_domain::{Code, Isolation, Quota, Refusal, Resources, Runtime, StoreError};

use crate::Limits;

/// What to run as a request gives it, before it is checked: what a [`Code`] is made from,
/// the same for a workload and a function's deploy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CodeRequest {
    pub runtime: Option<Runtime>,
    pub isolation: Option<Isolation>,
    pub code: Option<String>,
    /// Decoded bytes of `code_archive`.
    pub code_archive: Option<Vec<u8>>,
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    /// Secrets (by name) the code gets as environment variables.
    pub secrets: Vec<String>,
    pub cpus: Option<u32>,
    pub mem_mb: Option<u32>,
    pub timeout_s: Option<u32>,
}

/// A workload request as parsed from the API, before validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Submission {
    pub code: CodeRequest,
    pub input: serde_json::Value,
    /// Whose workload this is; empty means the default tenant.
    pub tenant: String,
    /// The tenant's quota; `None` for callers without one (admins, recovery).
    pub quota: Option<Quota>,
    /// Whether the caller may have an unregistered image pulled.
    pub pulls: ImagePulls,
}

/// What a caller may have pulled when a run names an image that is not registered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ImagePulls {
    /// Nothing: the image must be registered (callers without `images:write`).
    #[default]
    Never,
    /// From allowed registries only (`images:write`).
    Allowed,
    /// From any registry, which is allowed from then on (admins).
    Any,
}

/// Why a submission was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The request is wrong; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// The request is fine but no backend here can run it now.
    #[error("{0}")]
    Unavailable(String),
    #[error("the server is shutting down and accepts no new workloads")]
    ShuttingDown,
    /// Not admitted: over a quota, too large for it, or the queue is full.
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for SubmitError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(refusal) => SubmitError::Refused(refusal),
            other => SubmitError::Store(other),
        }
    }
}

const MAX_ENV_VARS: usize = 128;

impl CodeRequest {
    /// Checks the fields against each other and against `limits`, filling defaults: what
    /// runs, with the isolation asked for (`auto` unless said).
    pub(crate) fn validate(
        self,
        defaults: Resources,
        limits: &Limits,
    ) -> Result<Code, SubmitError> {
        let invalid = |msg: String| Err(SubmitError::Invalid(msg));
        let Some(runtime) = self.runtime else {
            return invalid("\"runtime\" is required: one of go, node, python, wasm, oci".into());
        };
        if self.code.is_some() && self.code_archive.is_some() {
            return invalid("give either \"code\" or \"code_archive\", not both".into());
        }
        if runtime == Runtime::Oci {
            if self.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
                return invalid(
                    "runtime oci needs \"image\" (for example \"127.0.0.1:5000/busybox:1\")".into(),
                );
            }
            if self.code.is_some() {
                return invalid("runtime oci runs \"image\" and \"command\"; \"code\" is for the other runtimes (send files as \"code_archive\", unpacked at /work)".into());
            }
        } else {
            if self.image.is_some() || self.command.is_some() {
                return invalid(format!(
                    "\"image\" and \"command\" are only for runtime oci, not {runtime}"
                ));
            }
            if self.code.as_deref().is_none_or(str::is_empty) && self.code_archive.is_none() {
                return invalid(format!(
                    "runtime {runtime} needs \"code\" or \"code_archive\""
                ));
            }
            if runtime == Runtime::Wasm && self.code_archive.is_some() {
                return invalid(
                    "runtime wasm takes the module as base64 in \"code\", not \"code_archive\""
                        .into(),
                );
            }
        }
        let code_len = self.code.as_ref().map_or(0, String::len)
            + self.code_archive.as_ref().map_or(0, Vec::len);
        if code_len > limits.max_code_bytes {
            return invalid(format!(
                "the code is {code_len} bytes; the limit is {} bytes",
                limits.max_code_bytes
            ));
        }
        if self.env.len() > MAX_ENV_VARS {
            return invalid(format!(
                "at most {MAX_ENV_VARS} \"env\" variables are allowed"
            ));
        }
        for key in self.env.keys() {
            let valid = !key.is_empty()
                && !key.starts_with(|c: char| c.is_ascii_digit())
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return invalid(format!(
                    "\"env\" name {key:?} is not valid: use letters, digits and _, not starting with a digit"
                ));
            }
        }
        if self.env.values().any(|v| v.contains('\0')) {
            return invalid("\"env\" values cannot contain NUL bytes".into());
        }
        for name in &self.secrets {
            if self.env.contains_key(name) {
                return invalid(format!(
                    "{name} is in both \"env\" and \"secrets\": keep one"
                ));
            }
        }
        let resources = Resources {
            cpus: self.cpus.unwrap_or(defaults.cpus),
            mem_mb: self.mem_mb.unwrap_or(defaults.mem_mb),
            timeout_s: self.timeout_s.unwrap_or(defaults.timeout_s),
        };
        limits.check(&resources).map_err(SubmitError::Invalid)?;
        Ok(Code {
            runtime,
            isolation: self.isolation.unwrap_or(Isolation::Auto),
            code: self.code,
            code_archive: self.code_archive,
            image: self.image,
            command: self.command,
            env: self.env,
            secrets: self.secrets,
            resources,
        })
    }
}

/// SHA-256 over everything that determines what a workload runs, hex-encoded.
pub(crate) fn input_hash(code: &Code, input: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    let mut field = |name: &str, bytes: &[u8]| {
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field("runtime", code.runtime.as_str().as_bytes());
    field("code", code.code.as_deref().unwrap_or_default().as_bytes());
    field("archive", code.code_archive.as_deref().unwrap_or_default());
    field(
        "image",
        code.image.as_deref().unwrap_or_default().as_bytes(),
    );
    for arg in code.command.iter().flatten() {
        field("arg", arg.as_bytes());
    }
    field("input", input.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(code: &str) -> CodeRequest {
        CodeRequest {
            runtime: Some(Runtime::Node),
            code: Some(code.into()),
            ..Default::default()
        }
    }

    fn reason(r: &CodeRequest) -> String {
        r.clone()
            .validate(Resources::default(), &Limits::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_fill_missing_resources() {
        let code = node("1")
            .validate(Resources::default(), &Limits::default())
            .unwrap();
        assert_eq!(code.runtime, Runtime::Node);
        assert_eq!(code.isolation, Isolation::Auto);
        assert_eq!(code.resources, Resources::default());
    }

    #[test]
    fn each_bad_request_says_what_to_change() {
        assert!(reason(&CodeRequest::default()).contains("\"runtime\" is required"));
        let both = CodeRequest {
            code_archive: Some(vec![1]),
            ..node("x")
        };
        assert!(reason(&both).contains("not both"));
        assert!(reason(&node("")).contains("needs \"code\""));
        let oci = CodeRequest {
            runtime: Some(Runtime::Oci),
            ..Default::default()
        };
        assert!(reason(&oci).contains("needs \"image\""));
        let image_on_node = CodeRequest {
            image: Some("x".into()),
            ..node("x")
        };
        assert!(reason(&image_on_node).contains("only for runtime oci"));
        let big = CodeRequest {
            mem_mb: Some(1 << 20),
            ..node("x")
        };
        assert!(reason(&big).contains("\"resources.mem_mb\" is 1048576"));
        let zero = CodeRequest {
            timeout_s: Some(0),
            ..node("x")
        };
        assert!(reason(&zero).contains("timeout_s"));
        let mut env = node("x");
        env.env.insert("1BAD".into(), "v".into());
        assert!(reason(&env).contains("\"env\" name"));
        let mut twice = node("x");
        twice.env.insert("TOKEN".into(), "v".into());
        twice.secrets.push("TOKEN".into());
        assert!(reason(&twice).contains("in both"));
    }

    #[test]
    fn the_hash_changes_with_the_input_and_not_with_resources() {
        let a = node("code")
            .validate(Resources::default(), &Limits::default())
            .unwrap();
        let mut c = a.clone();
        c.resources.mem_mb = 512;
        let nothing = serde_json::Value::Null;
        let something = serde_json::json!({"x": 1});
        assert_ne!(input_hash(&a, &nothing), input_hash(&a, &something));
        assert_eq!(input_hash(&a, &nothing), input_hash(&c, &nothing));
        assert_eq!(input_hash(&a, &nothing).len(), 64);
    }
}
