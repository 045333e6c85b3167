//! A request to run code, checked against the engine's rules before anything is stored.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use vulcan_domain::{
    Code, Isolation, NetRule, NetworkPolicy, Quota, Refusal, Resources, Runtime, StoreError,
};

use crate::{EgressMode, Limits};

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
    /// A cap on its network, each way, in megabits a second.
    pub net_mbps: Option<u32>,
    /// What it may reach over the network (rules already parsed).
    pub network: NetworkPolicy,
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
    /// For an async workload: its retries, age limit, failure queue and callback.
    pub after: vulcan_domain::AsyncOptions,
    /// The tenant's volumes it mounts (gvisor, microvm).
    pub volumes: Vec<vulcan_domain::VolumeMount>,
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

/// The highest network cap a workload may ask for (10 Gbit/s: more is no cap).
const MAX_NET_MBPS: u32 = 10_000;

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
            if self.command.is_some() {
                return invalid(format!(
                    "\"command\" is only for runtime oci, not {runtime}: the runtime runs \"code\""
                ));
            }
            if let Some(image) = &self.image {
                if runtime == Runtime::Wasm {
                    return invalid("runtime wasm runs no image: leave out \"image\"".into());
                }
                if image.trim().is_empty() {
                    return invalid("\"image\" is empty: name a registered image, or leave it out to use the runtime's own root".into());
                }
                if !matches!(
                    self.isolation,
                    None | Some(Isolation::Auto | Isolation::Microvm)
                ) {
                    return invalid(format!(
                        "a {runtime} workload with \"image\" runs its interpreter from that image in a microVM: use isolation microvm (or auto)"
                    ));
                }
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
        check_env(&self.env).map_err(SubmitError::Invalid)?;
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
            net_mbps: self.net_mbps,
        };
        limits.check(&resources).map_err(SubmitError::Invalid)?;
        self.network.check().map_err(SubmitError::Invalid)?;
        match self.net_mbps {
            Some(mbps) if !(1..=MAX_NET_MBPS).contains(&mbps) => {
                return invalid(format!(
                    "\"resources.net_mbps\" is {mbps}; it must be between 1 and {MAX_NET_MBPS}"
                ));
            }
            Some(_) if self.network.is_none() => {
                return invalid(
                    "\"resources.net_mbps\" caps a network: give \"network\" too".into(),
                );
            }
            _ => {}
        }
        if runtime == Runtime::Wasm && !self.network.is_none() {
            return invalid(
                "a WebAssembly module has no sockets: \"network\" does not apply to runtime wasm"
                    .into(),
            );
        }
        Ok(Code {
            runtime,
            // A runtime's interpreter from an image: only a microVM boots an image's root.
            isolation: match (&self.image, runtime) {
                (Some(_), Runtime::Python | Runtime::Node | Runtime::Go) => Isolation::Microvm,
                _ => self.isolation.unwrap_or(Isolation::Auto),
            },
            code: self.code,
            code_archive: self.code_archive,
            image: self.image,
            command: self.command,
            env: self.env,
            secrets: self.secrets,
            resources,
            network: self.network,
        })
    }
}

/// Whether the operator's bound lets a workload of a tenant with `quota` have `policy`
/// (`quota` is `None` for admins, bounded only by the mode). The refusal names the rule.
pub(crate) fn check_egress(
    policy: &NetworkPolicy,
    mode: EgressMode,
    quota: Option<&Quota>,
) -> Result<(), Refusal> {
    if policy.is_none() {
        return Ok(());
    }
    let forbidden = |msg: String| Err(Refusal::Forbidden(msg));
    if mode == EgressMode::Off {
        return forbidden(
            "network egress is off on this server (VULCAN_EGRESS=off): workloads run without a network; ask the operator to turn it on".into(),
        );
    }
    let Some(quota) = quota else {
        return Ok(());
    };
    let listed = |rule: &NetRule| quota.egress_allow.iter().any(|own| own.contains(rule));
    if mode == EgressMode::AllowListed && policy.allow.is_empty() {
        return forbidden("\"network.allow\" is empty, which asks for every public address; this server allows only what the tenant's quota lists in \"egress_allow\" (VULCAN_EGRESS=allow-listed)".into());
    }
    for rule in &policy.allow {
        if mode == EgressMode::AllowListed && !listed(rule) {
            return forbidden(format!(
                "\"{rule}\" is not in this tenant's egress allow-list (quota \"egress_allow\"; VULCAN_EGRESS=allow-listed)"
            ));
        }
        if let Some(range) = rule.reaches_never() {
            if !listed(rule) {
                return forbidden(format!(
                    "\"{rule}\" reaches {range}, which workloads never reach unless an admin lists it in the tenant's quota \"egress_allow\""
                ));
            }
        }
    }
    Ok(())
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

/// Whether `env` may be a program's environment: not too many, names of letters, digits
/// and `_`, no NUL byte in a value. The error says what to change.
pub(crate) fn check_env(env: &BTreeMap<String, String>) -> Result<(), String> {
    if env.len() > MAX_ENV_VARS {
        return Err(format!(
            "at most {MAX_ENV_VARS} \"env\" variables are allowed"
        ));
    }
    for key in env.keys() {
        let valid = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "\"env\" name {key:?} is not valid: use letters, digits and _, not starting with a digit"
            ));
        }
    }
    if env.values().any(|v| v.contains('\0')) {
        return Err("\"env\" values cannot contain NUL bytes".into());
    }
    Ok(())
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
        let command_on_node = CodeRequest {
            command: Some(vec!["x".into()]),
            ..node("x")
        };
        assert!(reason(&command_on_node).contains("only for runtime oci"));
        // A runtime's interpreter from an image runs in a microVM, and only there.
        let image_in_isolate = CodeRequest {
            image: Some("x".into()),
            isolation: Some(Isolation::Isolate),
            ..node("x")
        };
        assert!(reason(&image_in_isolate).contains("use isolation microvm"));
        let image_on_node = CodeRequest {
            image: Some("x".into()),
            ..node("x")
        };
        let code = image_on_node
            .validate(Resources::default(), &Limits::default())
            .unwrap();
        assert_eq!(code.isolation, Isolation::Microvm);
        let image_on_wasm = CodeRequest {
            runtime: Some(Runtime::Wasm),
            image: Some("x".into()),
            ..node("AGFzbQEAAAA=")
        };
        assert!(reason(&image_on_wasm).contains("runs no image"));
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
    fn the_operator_bounds_what_a_policy_may_reach() {
        let policy = |allow: &[&str]| NetworkPolicy {
            egress: vulcan_domain::Egress::Allow,
            allow: allow.iter().map(|r| r.parse().unwrap()).collect(),
            deny: Vec::new(),
        };
        let quota = |listed: &[&str]| Quota {
            egress_allow: listed.iter().map(|r| r.parse().unwrap()).collect(),
            ..crate::EngineConfig::new("n").default_quota
        };
        let none = NetworkPolicy::default();
        let api = policy(&["api.example.com:443"]);
        let refused = |p: &NetworkPolicy, mode, q: Option<&Quota>| match check_egress(p, mode, q) {
            Err(Refusal::Forbidden(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(check_egress(&none, EgressMode::Off, None).is_ok());
        assert!(refused(&api, EgressMode::Off, None).contains("VULCAN_EGRESS=off"));
        let open = quota(&[]);
        assert!(check_egress(&api, EgressMode::Open, Some(&open)).is_ok());
        assert!(refused(&api, EgressMode::AllowListed, Some(&open)).contains("api.example.com:443"));
        let listed = quota(&["*.example.com", "10.0.0.0/8"]);
        assert!(check_egress(&api, EgressMode::AllowListed, Some(&listed)).is_ok());
        assert!(refused(&policy(&[]), EgressMode::AllowListed, Some(&listed)).contains("empty"));
        let private = policy(&["10.1.2.3:5432"]);
        assert!(refused(&private, EgressMode::Open, Some(&open)).contains("private"));
        assert!(check_egress(&private, EgressMode::Open, Some(&listed)).is_ok());
        let metadata = policy(&["169.254.0.0/16"]);
        assert!(refused(&metadata, EgressMode::Open, Some(&listed)).contains("link-local"));
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
