//! Functions: code deployed once and invoked many times (seed 004's FunctionService).
//!
//! A function belongs to a tenant and has a name; each deploy of new content makes a new,
//! immutable version (identical content keeps the current one), and one version is active.
//! Every invocation is a workload that names the function and version it ran. With `reuse`
//! (the default) invocations are served by warm instances of that version — a process, VM
//! or sandbox with the code loaded — that serve one invocation at a time and are never
//! shared between tenants, functions or versions.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Code, Runtime, StoreError};

/// What a version runs and how its instances are kept: fixed when it is deployed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCode {
    /// What runs (its isolation as asked for: `auto` resolves at each invocation).
    #[serde(flatten)]
    pub run: Code,
    /// Serve invocations from warm instances (false: a fresh one each time).
    pub reuse: bool,
    /// Instances at once, per node.
    pub max_instances: u32,
    /// An idle instance is stopped after this long.
    pub idle_timeout_s: u32,
    /// Its HTTP trigger needs no key.
    pub public: bool,
    /// Queues whose messages it is invoked with, in batches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<QueueTrigger>,
}

/// A queue of the function's tenant that feeds it: each batch of messages is one
/// invocation, with `{"queue", "messages": [{id, body, receive_count, sent_at}]}` as its
/// input. A batch whose invocation fails or times out is given back (retried with
/// exponential backoff and jitter); one that completes is acknowledged, but for the
/// message ids its output lists as `{"failed": [...]}`, which are given back alone.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QueueTrigger {
    pub queue: String,
    /// Messages per invocation at most (1-100; 1).
    #[serde(default = "one")]
    #[serde(deserialize_with = "crate::whole::int")]
    pub batch_size: u32,
    /// Invocations of this trigger at once, per node (1-64; 1).
    #[serde(default = "one")]
    #[serde(deserialize_with = "crate::whole::int")]
    pub max_concurrency: u32,
    /// Milliseconds to wait for a batch to fill once it has a first message (0-10000; 0).
    #[serde(default)]
    #[serde(deserialize_with = "crate::whole::int")]
    pub max_wait_ms: u32,
}

fn one() -> u32 {
    1
}

impl QueueTrigger {
    /// Why this is not a trigger, if it is not one.
    pub fn check(&self) -> Result<(), String> {
        crate::Queue::check_name(&self.queue)?;
        for (field, value, low, high) in [
            ("batch_size", self.batch_size, 1, 100),
            ("max_concurrency", self.max_concurrency, 1, 64),
            ("max_wait_ms", self.max_wait_ms, 0, 10_000),
        ] {
            if !(low..=high).contains(&value) {
                return Err(format!(
                    "trigger of queue {}: \"{field}\" is {value}; it must be between {low} and {high}",
                    self.queue
                ));
            }
        }
        Ok(())
    }
}

/// One immutable version of a function.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionVersion {
    pub tenant: String,
    pub name: String,
    pub version: u32,
    /// SHA-256 of what runs (code, archive, image, command, env, secrets' names, runtime).
    pub digest: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(flatten)]
    pub code: FunctionCode,
}

/// A function as listed: its active version and what it has done.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    pub tenant: String,
    pub name: String,
    pub active_version: u32,
    pub latest_version: u32,
    pub runtime: Runtime,
    pub public: bool,
    /// Invocations of any of its versions.
    pub invocations: u64,
    /// Warm instances of its active version on the live nodes now.
    #[serde(default)]
    pub instances: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What a workload that is an invocation carries to its backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    pub tenant: String,
    pub function: String,
    pub version: u32,
    pub digest: String,
    pub reuse: bool,
    /// The code has a handler to call (python and node); without one it runs as a script.
    #[serde(default)]
    pub handler: bool,
    pub max_instances: u32,
    pub idle_timeout_s: u32,
    /// The versions of the secrets its run was given (`NAME@3,…`), set by the node that
    /// runs it: an instance serves only runs that were given the same.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secrets_seen: String,
}

impl Invocation {
    /// The key of its warm instances: never shared across tenants, functions, versions or
    /// secret values.
    pub fn instance_key(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}",
            self.tenant, self.function, self.version, self.digest, self.secrets_seen
        )
    }

    /// The prefix of every instance key of a function (to retire them all).
    pub fn function_prefix(tenant: &str, function: &str) -> String {
        format!("{tenant}/{function}/")
    }
}

/// The outcome of a deploy.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployed {
    pub version: FunctionVersion,
    /// The function did not exist before.
    pub created: bool,
    /// The content was new: a new version (else the current one was returned unchanged).
    pub changed: bool,
}

/// Keeps functions and their versions.
#[async_trait]
pub trait FunctionStore: Send + Sync {
    /// Deploys `code` (whose digest is `digest`) as the next version of `tenant`/`name` and
    /// makes it active — unless it is identical to the active version, which is returned as
    /// it is. A deleted function deployed again starts over from its next version number.
    async fn deploy(
        &self,
        tenant: &str,
        name: &str,
        code: &FunctionCode,
        digest: &str,
    ) -> Result<Deployed, StoreError>;

    /// A function that is not deleted.
    async fn function(&self, tenant: &str, name: &str) -> Result<Function, StoreError>;

    /// Functions not deleted, one tenant's or everyone's, by name.
    async fn functions(&self, tenant: Option<&str>) -> Result<Vec<Function>, StoreError>;

    /// A version with its code (and archive).
    async fn version(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
    ) -> Result<FunctionVersion, StoreError>;

    /// Every version, newest first (without archives).
    async fn versions(&self, tenant: &str, name: &str) -> Result<Vec<FunctionVersion>, StoreError>;

    /// Makes `version` the active one (roll back or forward).
    async fn activate(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
    ) -> Result<Function, StoreError>;

    /// Deletes a function: it can no longer be invoked; its versions and invocations stay.
    async fn delete_function(&self, tenant: &str, name: &str) -> Result<(), StoreError>;
}

/// Whether `name` is a valid function name: `[a-z0-9][a-z0-9-]{0,62}`.
pub fn valid_function_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_words_with_dashes() {
        for ok in ["a", "hello-world", "x1", &"a".repeat(63)] {
            assert!(valid_function_name(ok), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a b", "ü", &"a".repeat(64)] {
            assert!(!valid_function_name(bad), "{bad}");
        }
    }
}
