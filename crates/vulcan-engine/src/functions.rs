//! Functions on the engine's side: a deploy is checked like a workload (and for a handler,
//! where warm instances need one) and stored as an immutable version; an invocation is a
//! workload that names the function's active version and carries no code of its own — the
//! node that runs it takes the version's code from its cache (versions never change).
//!
//! Lifecycle of a function: deployed (version 1, active) → redeployed (a new version,
//! active; identical content keeps the current one) → rolled back or forward → deleted
//! (no longer invocable; its history and invocations stay).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use vulcan_domain::{
    valid_function_name, Deployed, Function, FunctionCode, FunctionStore, FunctionVersion,
    Invocation, Quota, Runtime, Signal, StoreError, Tick, Trigger, Workload, WorkloadSpec,
};

use crate::engine::now;
use crate::{CodeRequest, Engine, ImagePulls, SubmitError};

/// A deploy as the API parsed it.
#[derive(Debug, Clone, Default)]
pub struct DeployRequest {
    /// What runs, checked like a workload's.
    pub code: CodeRequest,
    /// Whether the caller may have an unregistered image pulled.
    pub pulls: ImagePulls,
    pub reuse: Option<bool>,
    pub max_instances: Option<u32>,
    pub idle_timeout_s: Option<u32>,
    pub public: Option<bool>,
    /// Queues that feed it (each the tenant's, each once).
    pub triggers: Vec<vulcan_domain::QueueTrigger>,
}

/// Instances at once per node when a deploy does not say.
pub const DEFAULT_MAX_INSTANCES: u32 = 4;
/// Seconds an idle instance is kept when a deploy does not say.
pub const DEFAULT_IDLE_TIMEOUT_S: u32 = 300;
const MAX_INSTANCES_LIMIT: u32 = 64;

/// The store of functions, and the versions this node has run (immutable: cached for good,
/// a bounded number of them).
pub(crate) struct Functions {
    pub store: Arc<dyn FunctionStore>,
    versions: Mutex<HashMap<(String, String, u32), Arc<FunctionVersion>>>,
}

const CACHED_VERSIONS: usize = 512;

impl Functions {
    pub fn new(store: Arc<dyn FunctionStore>) -> Self {
        Functions {
            store,
            versions: Mutex::new(HashMap::new()),
        }
    }

    /// A version, from the cache or the store.
    pub async fn version(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
    ) -> Result<Arc<FunctionVersion>, StoreError> {
        let key = (tenant.to_owned(), name.to_owned(), version);
        if let Some(found) = self.cache().get(&key) {
            return Ok(found.clone());
        }
        let loaded = Arc::new(self.store.version(tenant, name, version).await?);
        let mut cache = self.cache();
        if cache.len() >= CACHED_VERSIONS {
            cache.clear();
        }
        cache.insert(key, loaded.clone());
        Ok(loaded)
    }

    fn cache(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String, u32), Arc<FunctionVersion>>> {
        self.versions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a deployed handler is missing, if it is (warm instances call a handler).
fn missing_handler(runtime: Runtime, code: Option<&str>, archive: bool) -> Option<String> {
    match runtime {
        Runtime::Node => {
            let code = code?;
            let exports = code.contains("export default")
                || code.contains("as default")
                || code.contains("module.exports");
            (!exports).then(|| {
                "a node function's handler is its module's default export (export default (input) => ...); this code exports none. Deploy with \"reuse\": false to run it as a plain script each time".into()
            })
        }
        Runtime::Python => {
            if archive {
                return None;
            }
            let has = code?
                .lines()
                .any(|l| l.starts_with("def handler(") || l.starts_with("async def handler("));
            (!has).then(|| {
                "a python function's handler is a top-level def handler(input) in main.py; this code has none. Deploy with \"reuse\": false to run it as a plain script each time".into()
            })
        }
        Runtime::Go | Runtime::Oci | Runtime::Wasm => None,
    }
}

/// SHA-256 of what runs and how it is served: a redeploy that changes any of it is a new
/// version; one that changes nothing keeps the current version.
fn digest(code: &FunctionCode) -> String {
    let mut h = Sha256::new();
    let mut field = |name: &str, bytes: &[u8]| {
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field("runtime", code.run.runtime.as_str().as_bytes());
    field("isolation", code.run.isolation.as_str().as_bytes());
    field(
        "code",
        code.run.code.as_deref().unwrap_or_default().as_bytes(),
    );
    field(
        "archive",
        code.run.code_archive.as_deref().unwrap_or_default(),
    );
    field(
        "image",
        code.run.image.as_deref().unwrap_or_default().as_bytes(),
    );
    for arg in code.run.command.iter().flatten() {
        field("arg", arg.as_bytes());
    }
    for (k, v) in &code.run.env {
        field("env", format!("{k}={v}").as_bytes());
    }
    for secret in &code.run.secrets {
        field("secret", secret.as_bytes());
    }
    // Only when there is one: a version without a network keeps the digest it had.
    if !code.run.network.is_none() {
        let policy = serde_json::to_string(&code.run.network).unwrap_or_default();
        field("network", policy.as_bytes());
    }
    if let Some(mbps) = code.run.resources.net_mbps {
        field("net_mbps", &mbps.to_le_bytes());
    }
    let settings = format!(
        "{}/{}/{}/{}/{}/{}/{}",
        code.run.resources.cpus,
        code.run.resources.mem_mb,
        code.run.resources.timeout_s,
        code.reuse,
        code.max_instances,
        code.idle_timeout_s,
        code.public
    );
    field("settings", settings.as_bytes());
    // Only when there are some: a version without triggers keeps the digest it had.
    for t in &code.triggers {
        let trigger = format!(
            "{}/{}/{}/{}",
            t.queue, t.batch_size, t.max_concurrency, t.max_wait_ms
        );
        field("trigger", trigger.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Engine {
    /// Each trigger is one, of a queue the tenant has, named once.
    async fn check_triggers(
        &self,
        tenant: &str,
        triggers: &[vulcan_domain::QueueTrigger],
    ) -> Result<(), SubmitError> {
        let mut seen = std::collections::HashSet::new();
        for t in triggers {
            t.check().map_err(SubmitError::Invalid)?;
            if !seen.insert(t.queue.as_str()) {
                return Err(SubmitError::Invalid(format!(
                    "queue {} is named by two triggers: give it once",
                    t.queue
                )));
            }
            if self.queue_definition(tenant, &t.queue).await.is_err() {
                return Err(SubmitError::Invalid(format!(
                    "trigger of queue {}: the tenant has no such queue (POST /v1/queues makes it)",
                    t.queue
                )));
            }
        }
        Ok(())
    }

    /// A function that is not deleted.
    pub async fn function(&self, tenant: &str, name: &str) -> Result<Function, StoreError> {
        self.inner.functions.store.function(tenant, name).await
    }

    /// Functions not deleted, one tenant's or everyone's, by name.
    pub async fn functions(&self, tenant: Option<&str>) -> Result<Vec<Function>, StoreError> {
        self.inner.functions.store.functions(tenant).await
    }

    /// Every version of a function, newest first (without archives).
    pub async fn function_versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Vec<FunctionVersion>, StoreError> {
        self.inner.functions.store.versions(tenant, name).await
    }

    /// Checks and stores a deploy as the next version of `tenant`/`name`, active at once.
    pub async fn deploy(
        &self,
        tenant: &str,
        name: &str,
        request: DeployRequest,
    ) -> Result<Deployed, SubmitError> {
        if !valid_function_name(name) {
            return Err(SubmitError::Invalid(format!(
                "function name {name:?} is not valid: use lowercase letters, digits and '-', starting with a letter or digit, at most 63 characters"
            )));
        }
        let DeployRequest {
            code: mut asked,
            pulls,
            ..
        } = request;
        let defaults = self.image_defaults(&mut asked, pulls).await?;
        let run = asked.validate(defaults, &self.inner.config.limits)?;
        if !run.network.is_none() {
            let quota = self.quota_of(tenant).await?;
            crate::submission::check_egress(&run.network, self.inner.config.egress, Some(&quota))?;
        }
        self.check_secrets(tenant, &run.secrets).await?;
        let reuse = request.reuse.unwrap_or(true);
        if reuse {
            if let Some(why) =
                missing_handler(run.runtime, run.code.as_deref(), run.code_archive.is_some())
            {
                return Err(SubmitError::Invalid(why));
            }
        }
        let max_instances = request.max_instances.unwrap_or(DEFAULT_MAX_INSTANCES);
        if !(1..=MAX_INSTANCES_LIMIT).contains(&max_instances) {
            return Err(SubmitError::Invalid(format!(
                "\"max_instances\" is {max_instances}; it must be between 1 and {MAX_INSTANCES_LIMIT}"
            )));
        }
        let idle_timeout_s = request.idle_timeout_s.unwrap_or(DEFAULT_IDLE_TIMEOUT_S);
        if !(1..=86_400).contains(&idle_timeout_s) {
            return Err(SubmitError::Invalid(format!(
                "\"idle_timeout_s\" is {idle_timeout_s}; it must be between 1 and 86400"
            )));
        }
        self.check_triggers(tenant, &request.triggers).await?;
        // It must be runnable somewhere now, as a workload must.
        self.route(&run).await?;
        let code = FunctionCode {
            run,
            reuse,
            max_instances,
            idle_timeout_s,
            public: request.public.unwrap_or(false),
            triggers: request.triggers,
        };
        let digest = digest(&code);
        let deployed = self
            .inner
            .functions
            .store
            .deploy(tenant, name, &code, &digest)
            .await?;
        if deployed.changed && !deployed.created {
            self.inner
                .signal(Signal::Retire(Invocation::function_prefix(tenant, name)));
        }
        if deployed.changed {
            self.inner.triggers_changed.notify_one();
            self.inner.publish(crate::events::Event::deployed(
                &self.inner,
                tenant,
                name,
                deployed.version.version,
            ));
        }
        Ok(deployed)
    }

    /// Makes `version` active; idle instances of the others are stopped.
    pub async fn activate(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
    ) -> Result<Function, StoreError> {
        let function = self
            .inner
            .functions
            .store
            .activate(tenant, name, version)
            .await?;
        self.inner
            .signal(Signal::Retire(Invocation::function_prefix(tenant, name)));
        self.inner.triggers_changed.notify_one();
        Ok(function)
    }

    /// Deletes a function; its instances are stopped on every node.
    pub async fn delete_function(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        self.inner
            .functions
            .store
            .delete_function(tenant, name)
            .await?;
        self.inner
            .signal(Signal::Retire(Invocation::function_prefix(tenant, name)));
        self.inner.triggers_changed.notify_one();
        Ok(())
    }

    /// Warm instances of each function version on the live nodes, by
    /// `tenant/function/version`.
    pub async fn warm_instances(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let lease = time::Duration::try_from(self.inner.config.lease)
            .unwrap_or(time::Duration::seconds(10));
        let now = now();
        let mut all = BTreeMap::new();
        for node in self.nodes().await? {
            if node.state(now, lease) == vulcan_domain::NodeState::Live {
                for (key, n) in node.instances {
                    *all.entry(key).or_default() += n;
                }
            }
        }
        Ok(all)
    }

    /// Invokes the active version of `tenant`/`name` with `input`: a workload, admitted
    /// like any other (`quota`), that carries the function and version it runs.
    pub async fn invoke(
        &self,
        tenant: &str,
        name: &str,
        input: serde_json::Value,
        quota: Option<Quota>,
    ) -> Result<Workload, SubmitError> {
        self.invoke_as(tenant, name, input, quota, None, Default::default())
            .await
    }

    /// [`Engine::invoke`], async, with what follows its end: retries, an age limit, a
    /// failure queue, a callback.
    pub async fn invoke_async(
        &self,
        tenant: &str,
        name: &str,
        input: serde_json::Value,
        quota: Option<Quota>,
        after: vulcan_domain::AsyncOptions,
    ) -> Result<Workload, SubmitError> {
        self.invoke_as(tenant, name, input, quota, None, after)
            .await
    }

    /// [`Engine::invoke`], for a trigger: a schedule's invocation claims its tick in the
    /// transaction that enqueues it (nothing is stored if another node claimed it).
    pub(crate) async fn invoke_as(
        &self,
        tenant: &str,
        name: &str,
        input: serde_json::Value,
        quota: Option<Quota>,
        trigger: Option<(Trigger, Option<Tick>)>,
        after: vulcan_domain::AsyncOptions,
    ) -> Result<Workload, SubmitError> {
        if *self.inner.stopping.borrow() {
            return Err(SubmitError::ShuttingDown);
        }
        let function = self.inner.functions.store.function(tenant, name).await?;
        let version = self
            .inner
            .functions
            .version(tenant, name, function.active_version)
            .await?;
        let code = &version.code;
        crate::submission::check_egress(
            &code.run.network,
            self.inner.config.egress,
            quota.as_ref(),
        )?;
        let route = self.route(&code.run).await?;
        let async_policy = self.async_policy(tenant, quota.as_ref(), after).await?;
        let id = self.new_id();
        let input_hash = {
            let mut h = Sha256::new();
            h.update(version.digest.as_bytes());
            h.update(input.to_string().as_bytes());
            h.finalize().iter().map(|b| format!("{b:02x}")).collect()
        };
        let invocation = Invocation {
            tenant: tenant.to_owned(),
            function: name.to_owned(),
            version: version.version,
            digest: version.digest.clone(),
            reuse: code.reuse,
            handler: matches!(code.run.runtime, Runtime::Node | Runtime::Python)
                && (code.reuse
                    || (code.run.code_archive.is_none()
                        && missing_handler(code.run.runtime, code.run.code.as_deref(), false)
                            .is_none())),
            max_instances: code.max_instances,
            idle_timeout_s: code.idle_timeout_s,
            secrets_seen: String::new(),
        };
        // The version's code and this input: nothing of what runs is read again when this
        // node runs it (another node that claims it takes the code from the version).
        let mut run = code.run.clone();
        run.isolation = route.isolation;
        let workload = Workload {
            function: Some(name.to_owned()),
            function_version: Some(version.version),
            trigger: trigger.as_ref().map(|(t, _)| t.clone()),
            ..Workload::pending(
                id.clone(),
                tenant.to_owned(),
                &run,
                code.run.isolation,
                input_hash,
                now(),
                crate::request_id(),
            )
        };
        let spec = WorkloadSpec {
            id,
            tenant: tenant.to_owned(),
            run,
            input,
            note: route.fallback,
            invocation: Some(invocation),
            async_policy,
            volumes: Vec::new(),
            node: None,
            trace: None,
            attached: Vec::new(),
        };
        self.admit(workload, spec, quota, trigger.and_then(|(_, tick)| tick))
            .await
    }
}

/// Gives an invocation claimed from the store the code of its version (the store keeps an
/// invocation without it). One this node admitted itself has it already.
pub(crate) async fn fill_code(
    functions: &Functions,
    spec: &mut WorkloadSpec,
) -> Result<(), StoreError> {
    let Some(invocation) = &spec.invocation else {
        return Ok(());
    };
    if spec.run.code.is_some() || spec.run.code_archive.is_some() {
        return Ok(());
    }
    let version = functions
        .version(&invocation.tenant, &invocation.function, invocation.version)
        .await?;
    spec.run.code = version.code.run.code.clone();
    spec.run.code_archive = version.code.run.code_archive.clone();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_are_required_where_warm_instances_call_one() {
        assert!(missing_handler(Runtime::Node, Some("export default (i) => i"), false).is_none());
        assert!(
            missing_handler(Runtime::Node, Some("console.log(1)"), false)
                .unwrap()
                .contains("default export")
        );
        assert!(
            missing_handler(Runtime::Python, Some("def handler(x):\n  return x"), false).is_none()
        );
        assert!(missing_handler(Runtime::Python, Some("print(1)"), false)
            .unwrap()
            .contains("def handler(input)"));
        assert!(missing_handler(Runtime::Oci, None, false).is_none());
    }
}
