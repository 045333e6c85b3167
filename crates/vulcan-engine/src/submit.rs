//! A workload's way in: checked ([`crate::CodeRequest::validate`]), given its image's
//! defaults (`oci`), routed to a backend this node or a live other node has, and admitted
//! into the store's queue — claimed at once by this node if it has a free slot and nothing
//! older waits, else left for whichever node has one first.

use vulcan_domain::{
    Admission, ImageError, Isolation, Quota, Refusal, Resources, Runtime, Signal, Workload,
    WorkloadSpec, WorkloadStatus, DEFAULT_TENANT,
};

use tracing::Instrument;

use crate::engine::now;
use crate::submission::input_hash;
use crate::{CodeRequest, Engine, ImagePulls, RouteError, Submission, SubmitError};

impl Engine {
    /// Fills an `oci` request's image (the default image if it names none, the normalised
    /// reference otherwise; another runtime's only if it names one) and returns the
    /// resource defaults that apply.
    pub(crate) async fn image_defaults(
        &self,
        code: &mut CodeRequest,
        pulls: ImagePulls,
    ) -> Result<Resources, SubmitError> {
        let defaults = self.inner.config.defaults;
        let named = code
            .image
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(str::to_owned);
        // Other runtimes use an image only when they name one (a microVM's root).
        if code.runtime != Some(Runtime::Oci) && named.is_none() {
            return Ok(defaults);
        }
        let Some(images) = &self.inner.images else {
            return Ok(defaults);
        };
        let invalid = |e: ImageError| SubmitError::Invalid(e.to_string());
        let forbidden = |m: String| SubmitError::Refused(Refusal::Forbidden(m));
        let record = match named {
            None => images.default_image().await.map_err(invalid)?,
            Some(reference) => match images.get(&reference).await {
                Ok(record) => Some(record),
                Err(ImageError::NotFound(normalised)) => {
                    if pulls == ImagePulls::Never {
                        return Err(forbidden(format!(
                            "image {normalised} is not registered, and this key may not pull images (images:write): ask an operator to register it with POST /v1/images"
                        )));
                    }
                    // Refused here, before any connection is opened, if its registry is
                    // not allowed.
                    let normalised = images
                        .check_pull(&normalised, pulls == ImagePulls::Any)
                        .await
                        .map_err(|e| match e {
                            ImageError::NotAllowed(m) => forbidden(m),
                            other => invalid(other),
                        })?;
                    code.image = Some(normalised);
                    None
                }
                Err(e) => return Err(invalid(e)),
            },
        };
        Ok(match record {
            Some(record) => {
                let resources = record.resources.unwrap_or(defaults);
                code.image = Some(record.reference);
                resources
            }
            None => defaults,
        })
    }

    /// Validates, routes and admits a workload into the queue; this node claims and starts
    /// it at once if it can run it now. Returns it as stored: `running` here, or `pending`.
    pub async fn submit(&self, submission: Submission) -> Result<Workload, SubmitError> {
        let inner = &self.inner;
        if *inner.stopping.borrow() {
            return Err(SubmitError::ShuttingDown);
        }
        let Submission {
            mut code,
            input,
            tenant,
            quota,
            pulls,
            after,
            volumes,
        } = submission;
        let defaults = self.image_defaults(&mut code, pulls).await?;
        let mut run = code.validate(defaults, &inner.config.limits)?;
        crate::submission::check_egress(&run.network, inner.config.egress, quota.as_ref())?;
        let tenant = if tenant.is_empty() {
            DEFAULT_TENANT.to_owned()
        } else {
            tenant
        };
        let requested = run.isolation;
        let route = self.route(&run).await?;
        self.check_secrets(&tenant, &run.secrets).await?;
        let async_policy = self.async_policy(&tenant, quota.as_ref(), after).await?;
        let node = self
            .workload_volumes(&tenant, route.isolation, !run.network.is_none(), &volumes)
            .await?;
        run.isolation = route.isolation;
        let id = inner.new_id();
        let workload = Workload::pending(
            id.clone(),
            tenant.clone(),
            &run,
            requested,
            input_hash(&run, &input),
            now(),
            crate::request_id(),
        );
        let spec = WorkloadSpec {
            id,
            tenant,
            run,
            input,
            note: route.fallback,
            invocation: None,
            async_policy,
            volumes,
            node,
            trace: None,
            attached: Vec::new(),
        };
        self.admit(workload, spec, quota, None).await
    }

    /// The node a workload that mounts `volumes` runs on (theirs), checked: a backend
    /// with a filesystem, volumes of the tenant's on one node, and that node live.
    async fn workload_volumes(
        &self,
        tenant: &str,
        isolation: Isolation,
        network: bool,
        volumes: &[vulcan_domain::VolumeMount],
    ) -> Result<Option<String>, SubmitError> {
        if volumes.is_empty() {
            return Ok(None);
        }
        if network && isolation == Isolation::Microvm {
            return Err(SubmitError::Invalid(
                "a microvm workload with volumes runs without a network: drop \"network\" or ask for isolation gvisor".into(),
            ));
        }
        if !matches!(isolation, Isolation::Gvisor | Isolation::Microvm) {
            return Err(SubmitError::Invalid(format!(
                "volumes are mounted by gvisor and microvm workloads, and this one runs on {isolation} (no filesystem): ask for isolation gvisor or microvm"
            )));
        }
        let node = self
            .inner
            .volumes_node(tenant, volumes)
            .await
            .map_err(|e| match e {
                crate::SandboxError::Store(e) => SubmitError::Store(e),
                other => SubmitError::Invalid(other.to_string()),
            })?;
        if let Some(node) = node.as_ref().filter(|n| **n != self.inner.config.node_id) {
            let lease = time::Duration::try_from(self.inner.config.lease)
                .unwrap_or(time::Duration::seconds(10));
            let live =
                self.nodes().await?.into_iter().any(|n| {
                    n.id == *node && n.state(now(), lease) == vulcan_domain::NodeState::Live
                });
            if !live {
                return Err(SubmitError::Unavailable(format!(
                    "the volumes are on node {node}, which is not live: the workload can run only there"
                )));
            }
        }
        Ok(node)
    }

    /// Admits a workload into the queue; this node claims and starts it at once if it can
    /// run it now (a free slot, nothing older waiting). Returns it as stored: `running`
    /// here, or `pending`.
    pub(crate) async fn admit(
        &self,
        mut workload: Workload,
        mut spec: WorkloadSpec,
        quota: Option<Quota>,
        fire: Option<vulcan_domain::Tick>,
    ) -> Result<Workload, SubmitError> {
        // The node that runs it continues its admission's trace (a retry, its first
        // attempt's).
        let span = tracing::info_span!("admission", vulcan.workload = %workload.id);
        match &spec.trace {
            Some(first) => crate::traces::continue_trace(&span, Some(first)),
            None => spec.trace = crate::traces::traceparent_of(&span),
        }
        workload.trace_id = spec.trace.as_deref().and_then(crate::traces::trace_id);
        self.admit_traced(workload, spec, quota, fire)
            .instrument(span)
            .await
    }

    async fn admit_traced(
        &self,
        workload: Workload,
        spec: WorkloadSpec,
        quota: Option<Quota>,
        fire: Option<vulcan_domain::Tick>,
    ) -> Result<Workload, SubmitError> {
        let inner = &self.inner;
        let isolation = workload.isolation;
        let here = spec.node.iter().all(|n| *n == inner.config.node_id);
        let slot = (here && !inner.is_isolated() && inner.registry.available(isolation))
            .then(|| inner.slots.get(&isolation).and_then(|s| s.try_take()))
            .flatten();
        let admission = Admission {
            quota,
            max_queue: Some(inner.config.max_queue as u64),
            claim_for: slot.as_ref().map(|_| inner.config.node_id.clone()),
            fire,
        };
        let asked = std::time::SystemTime::now();
        let enqueued = inner
            .store
            .enqueue(&workload, &spec, &admission)
            .instrument(tracing::info_span!("store.enqueue"));
        let claimed = match enqueued.await {
            Ok(claimed) => claimed,
            Err(e) => {
                if let Some(slot) = slot {
                    slot.release_quietly();
                }
                return Err(e.into());
            }
        };
        let mut workload = workload;
        if claimed {
            crate::traces::record(
                "claim",
                spec.trace.as_deref(),
                asked,
                std::time::SystemTime::now(),
                vec![opentelemetry::KeyValue::new(
                    "vulcan.node",
                    inner.config.node_id.clone(),
                )],
            );
            // Stored running on this node: it starts here without another transaction.
            workload.status = WorkloadStatus::Running;
            workload.node_id = Some(inner.config.node_id.clone());
            workload.started_at = Some(workload.created_at);
        }
        inner.metrics.workload_submitted(isolation.as_str());
        inner.publish(crate::events::Event::workload(inner, "created", &workload));
        match slot {
            Some(slot) if claimed => {
                crate::run::launch(inner, workload.clone(), spec, slot);
            }
            other => {
                // Queued behind older work: whichever node has a slot first claims it.
                drop(other);
                inner.signal(Signal::Queued(isolation));
            }
        }
        Ok(workload)
    }

    /// Routes a workload to a backend: this node's, or one a live node has. A fallback
    /// (or a refusal) may only mean that this node has not yet heard of a node that joined
    /// since its last heartbeat: the nodes are read again before settling for it.
    pub(crate) async fn route(
        &self,
        run: &vulcan_domain::Code,
    ) -> Result<crate::Route, SubmitError> {
        let (requested, runtime, egress) = (run.isolation, run.runtime, !run.network.is_none());
        let first = self.route_now(requested, runtime, egress);
        let doubtful = match &first {
            Ok(route) => route.fallback.is_some(),
            Err(SubmitError::Unavailable(_)) => true,
            Err(_) => false,
        };
        if doubtful && crate::cluster::refresh_view(&self.inner).await {
            return self.route_now(requested, runtime, egress);
        }
        first
    }

    fn route_now(
        &self,
        requested: Isolation,
        runtime: Runtime,
        egress: bool,
    ) -> Result<crate::Route, SubmitError> {
        let view = self.inner.view();
        self.inner
            .registry
            .resolve_with(requested, runtime, egress, &|i| view.live_elsewhere(i))
            .map_err(|e| match e {
                RouteError::Unsupported(m) => SubmitError::Invalid(m),
                RouteError::Unavailable(m) => SubmitError::Unavailable(m),
            })
    }
}
