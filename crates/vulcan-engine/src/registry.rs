//! Backends by isolation name, and the `auto` routing between them.

use std::collections::BTreeMap;
use std::sync::Arc;

use vulcan_domain::{Backend, BackendInfo, Isolation, Runtime};

/// The backends this node has, keyed by the isolation they provide.
#[derive(Clone, Default)]
pub struct BackendRegistry {
    backends: BTreeMap<Isolation, Arc<dyn Backend>>,
}

/// Which backend a workload will run on (on this node or, in a cluster, another).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub isolation: Isolation,
    /// Set when `auto` could not use its preferred backend: says which one and why.
    pub fallback: Option<String>,
}

/// Why a workload cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The request itself is wrong (a backend that never runs this runtime).
    #[error("{0}")]
    Unsupported(String),
    /// The request is fine but this node cannot run it now.
    #[error("{0}")]
    Unavailable(String),
}

impl BackendRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `backend` under its isolation name, replacing any earlier one.
    pub fn register(&mut self, backend: Arc<dyn Backend>) {
        self.backends.insert(backend.isolation(), backend);
    }

    pub fn get(&self, isolation: Isolation) -> Option<&Arc<dyn Backend>> {
        self.backends.get(&isolation)
    }

    pub fn backends(&self) -> impl Iterator<Item = &Arc<dyn Backend>> {
        self.backends.values()
    }

    /// `GET /v1/backends`: every registered backend, available or not, in name order.
    pub fn list(&self) -> Vec<BackendInfo> {
        self.backends
            .values()
            .map(|b| {
                let availability = b.availability();
                BackendInfo {
                    name: b.isolation().to_string(),
                    available: availability.available,
                    reason: availability.reason,
                    capabilities: b.capabilities(),
                    details: availability.details,
                }
            })
            .collect()
    }

    /// Whether this node can run `isolation` now.
    pub fn available(&self, isolation: Isolation) -> bool {
        self.backends
            .get(&isolation)
            .is_some_and(|b| b.availability().available)
    }

    /// Why `isolation` cannot run `runtime` now (here, or on a node `elsewhere` says has
    /// it), or `None` if it can.
    fn obstacle(
        &self,
        isolation: Isolation,
        runtime: Runtime,
        egress: bool,
        elsewhere: &dyn Fn(Isolation) -> bool,
    ) -> Option<String> {
        let Some(backend) = self.backends.get(&isolation) else {
            return Some(format!("{isolation} is not configured on this node"));
        };
        if !backend.capabilities().supported_runtimes.contains(&runtime) {
            return Some(format!("{isolation} does not run {runtime}"));
        }
        if egress && !backend.enforces_egress() {
            return Some(format!(
                "{isolation} gives workloads no network on this node (its egress is not set up)"
            ));
        }
        let availability = backend.availability();
        if !availability.available && !elsewhere(isolation) {
            let reason = availability
                .reason
                .unwrap_or_else(|| "no reason given".into());
            return Some(format!("{isolation} is not available here: {reason}"));
        }
        None
    }

    /// Picks the backend for a request on this node alone.
    pub fn resolve(&self, requested: Isolation, runtime: Runtime) -> Result<Route, RouteError> {
        self.resolve_with(requested, runtime, false, &|_| false)
    }

    /// Picks the backend for a request. `auto` takes the runtime's preferred isolation if it
    /// can run (here, or on another live node: `elsewhere`), else the first other backend
    /// that can and supports the runtime. `egress`: the workload asks for a network.
    pub fn resolve_with(
        &self,
        requested: Isolation,
        runtime: Runtime,
        egress: bool,
        elsewhere: &dyn Fn(Isolation) -> bool,
    ) -> Result<Route, RouteError> {
        let route = |isolation: Isolation, fallback: Option<String>| Route {
            isolation,
            fallback,
        };
        if requested != Isolation::Auto {
            if let Some(backend) = self.backends.get(&requested) {
                let runtimes = backend.capabilities().supported_runtimes;
                if !runtimes.contains(&runtime) {
                    let names: Vec<_> = runtimes.iter().map(|r| r.as_str()).collect();
                    return Err(RouteError::Unsupported(format!(
                        "isolation {requested} cannot run runtime {runtime}; it runs: {}",
                        names.join(", ")
                    )));
                }
            }
            return match self.obstacle(requested, runtime, egress, elsewhere) {
                None => Ok(route(requested, None)),
                Some(why) => Err(RouteError::Unavailable(format!(
                    "cannot run on isolation {requested}: {why}; use isolation \"auto\" or one listed as available in GET /v1/backends"
                ))),
            };
        }

        let preferred = runtime.preferred_isolation();
        let Some(why_not_preferred) = self.obstacle(preferred, runtime, egress, elsewhere) else {
            return Ok(route(preferred, None));
        };
        let mut reasons = vec![why_not_preferred.clone()];
        for candidate in Isolation::CONCRETE.into_iter().filter(|i| *i != preferred) {
            match self.obstacle(candidate, runtime, egress, elsewhere) {
                None => {
                    let note = format!("auto: {why_not_preferred}; running on {candidate} instead");
                    return Ok(route(candidate, Some(note)));
                }
                Some(why) => reasons.push(why),
            }
        }
        Err(RouteError::Unavailable(format!(
            "no backend of this cluster can run runtime {runtime}: {}",
            reasons.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use vulcan_domain::{
        Availability, BackendCapabilities, BackendError, LogSink, WorkloadResult, WorkloadSpec,
    };

    struct Fake {
        isolation: Isolation,
        runtimes: Vec<Runtime>,
        available: bool,
    }

    #[async_trait]
    impl Backend for Fake {
        fn isolation(&self) -> Isolation {
            self.isolation
        }
        fn capabilities(&self) -> BackendCapabilities {
            BackendCapabilities {
                name: self.isolation.to_string(),
                supported_runtimes: self.runtimes.clone(),
                supported_isolations: vec![self.isolation],
                max_concurrency: 1,
            }
        }
        fn availability(&self) -> Availability {
            if self.available {
                Availability::ready(serde_json::Value::Null)
            } else {
                Availability::unavailable("binary missing")
            }
        }
        async fn execute(
            &self,
            _: WorkloadSpec,
            _: Arc<dyn LogSink>,
        ) -> Result<WorkloadResult, BackendError> {
            Ok(WorkloadResult::default())
        }
        async fn cleanup(&self, _: &str) -> Result<(), BackendError> {
            Ok(())
        }
    }

    fn registry(entries: &[(Isolation, &[Runtime], bool)]) -> BackendRegistry {
        let mut r = BackendRegistry::new();
        for (isolation, runtimes, available) in entries {
            r.register(Arc::new(Fake {
                isolation: *isolation,
                runtimes: runtimes.to_vec(),
                available: *available,
            }));
        }
        r
    }

    use Isolation::*;
    use Runtime::*;

    #[test]
    fn auto_routes_each_runtime_to_its_preferred_backend() {
        let r = registry(&[
            (Isolate, &[Node, Wasm], true),
            (Gvisor, &[Oci, Python, Node], true),
            (Microvm, &[Python, Go, Node], true),
        ]);
        for (runtime, expected) in [
            (Node, Isolate),
            (Wasm, Isolate),
            (Python, Microvm),
            (Go, Microvm),
            (Oci, Gvisor),
        ] {
            let route = r.resolve(Auto, runtime).unwrap();
            assert_eq!(route.isolation, expected, "{runtime}");
            assert!(route.fallback.is_none());
        }
    }

    #[test]
    fn auto_falls_back_to_an_available_backend_and_says_so() {
        let r = registry(&[
            (Gvisor, &[Oci, Python], true),
            (Microvm, &[Python, Go], false),
        ]);
        let route = r.resolve(Auto, Python).unwrap();
        assert_eq!(route.isolation, Gvisor);
        let note = route.fallback.unwrap();
        assert!(
            note.contains("microvm is not available here: binary missing"),
            "{note}"
        );
        assert!(note.contains("running on gvisor"), "{note}");
    }

    #[test]
    fn auto_with_nothing_able_to_run_the_runtime_explains_every_backend() {
        let r = registry(&[(Isolate, &[Node], true), (Microvm, &[Go], false)]);
        let err = r.resolve(Auto, Go).unwrap_err().to_string();
        assert!(err.contains("microvm is not available here"), "{err}");
        assert!(err.contains("gvisor is not configured"), "{err}");
        assert!(err.contains("isolate does not run go"), "{err}");
    }

    #[test]
    fn explicit_isolation_is_used_as_given_or_refused_with_the_reason() {
        let r = registry(&[(Isolate, &[Node], true), (Microvm, &[Python], false)]);
        assert_eq!(r.resolve(Isolate, Node).unwrap().isolation, Isolate);
        assert!(matches!(
            r.resolve(Isolate, Python),
            Err(RouteError::Unsupported(_))
        ));
        assert!(matches!(
            r.resolve(Microvm, Python),
            Err(RouteError::Unavailable(_))
        ));
        assert!(matches!(
            r.resolve(Gvisor, Oci),
            Err(RouteError::Unavailable(_))
        ));
    }

    #[test]
    fn a_backend_another_live_node_has_counts_as_available() {
        let r = registry(&[(Isolate, &[Node], true), (Microvm, &[Python], false)]);
        let route = r
            .resolve_with(Auto, Python, false, &|i| i == Microvm)
            .expect("another node has microvm");
        assert_eq!((route.isolation, route.fallback), (Microvm, None));
        assert!(r.resolve(Auto, Python).is_err(), "not on this node alone");
    }

    #[test]
    fn list_shows_unavailable_backends_with_their_reason() {
        let r = registry(&[(Isolate, &[Node], true), (Microvm, &[Python], false)]);
        let list = r.list();
        assert_eq!(list.len(), 2);
        assert_eq!(
            (list[0].name.as_str(), list[0].available),
            ("isolate", true)
        );
        assert_eq!(list[1].reason.as_deref(), Some("binary missing"));
    }
}
