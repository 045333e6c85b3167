//! Sandboxes a user holds across many steps (see [`vulcan_domain::Sandbox`]).
//!
//! Lifecycle (after the start: [`lifecycle`]): `create` leases the image, asks the isolation's driver to start the
//! sandbox and records it `running` on this node; the deadline reaper ends it at its
//! `end_at` (moved by `set_sandbox_timeout`); `delete_sandbox` ends it on request. A
//! process started in it ([`processes`]) is the sandbox's until it ends; its output is
//! kept for watches. When the server stops it pauses its sandboxes (kept on disk) and the
//! next start takes them back, still paused; what a crash left `running` (or what could
//! not be paused) is recorded `lost`, and the drivers sweep what else was left on disk.
//!
//! A sandbox lives on one node; the API forwards a request about it that reaches another
//! node (see [`Engine::sandbox_home`]); one the engine itself is asked about elsewhere is
//! refused naming the node.

mod files;
mod lifecycle;
pub mod processes;
mod recovery;
mod run;
pub mod volumes;

pub(crate) use lifecycle::reap;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use vulcan_domain::{
    BackendError, FileError, FileErrorKind, ImageError, Isolation, LiveSandbox, OnTimeout, Refusal,
    Sandbox, SandboxDriver, SandboxFilter, SandboxLaunch, SandboxPage, SandboxResources,
    SandboxRoom, SandboxState, StoreError, UsageSample,
};

use self::processes::{Proc, ProcessInfo};
use crate::{Engine, ImagePulls};

/// What sandboxes may ask for, and what they get when they do not say.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// Running and paused sandboxes one tenant may have.
    pub max_per_tenant: u32,
    /// Memory (MiB) one tenant's running sandboxes may hold together.
    pub tenant_mem_mb: u32,
    /// Disk (MiB) one tenant's running and paused sandboxes may hold together.
    pub tenant_disk_mb: u32,
    /// Sandboxes this node holds at once.
    pub max_per_node: u32,
    pub default_timeout_s: u32,
    pub max_timeout_s: u32,
    pub defaults: SandboxResources,
    pub max_cpus: u32,
    pub min_mem_mb: u32,
    pub max_mem_mb: u32,
    pub max_disk_mb: u32,
    /// The tail of each process's output kept for watches and answers.
    pub kept_output_bytes: usize,
    /// The isolation of a sandbox that does not name one.
    pub default_isolation: Isolation,
    /// Where this node keeps its volumes' files.
    pub volume_dir: std::path::PathBuf,
    /// Volumes one tenant may have.
    pub max_volumes_per_tenant: u32,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            max_per_tenant: 20,
            tenant_mem_mb: 16_384,
            tenant_disk_mb: 65_536,
            max_per_node: 64,
            default_timeout_s: 300,
            max_timeout_s: 86_400,
            defaults: SandboxResources {
                cpus: 1,
                mem_mb: 512,
                disk_mb: 1024,
            },
            max_cpus: 8,
            min_mem_mb: 64,
            max_mem_mb: 8192,
            max_disk_mb: 65_536,
            kept_output_bytes: 1024 * 1024,
            default_isolation: Isolation::Auto,
            volume_dir: std::env::temp_dir().join("vulcan-volumes"),
            max_volumes_per_tenant: 20,
        }
    }
}

impl SandboxLimits {
    /// What one tenant's sandboxes may hold together.
    pub fn room(&self) -> SandboxRoom {
        SandboxRoom {
            max_live: self.max_per_tenant,
            max_mem_mb: self.tenant_mem_mb,
            max_disk_mb: self.tenant_disk_mb,
        }
    }
}

/// Why a sandbox request was not done, by whose fault.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// It is not in a state that allows this (ended, lost, or a process that ended).
    #[error("{0}")]
    Conflict(String),
    /// Over a quota or this node's capacity.
    #[error("{0}")]
    Refused(Refusal),
    /// The isolation cannot hold sandboxes here.
    #[error("{0}")]
    Unavailable(String),
    /// The sandbox lives on another node.
    #[error("sandbox {id} lives on node {node}: send its requests to that node")]
    Elsewhere { id: String, node: String },
    #[error("{0}")]
    File(FileError),
    #[error("{0}")]
    Backend(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl From<StoreError> for SandboxError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(r) => SandboxError::Refused(r),
            StoreError::Conflict(m) => SandboxError::Conflict(m),
            StoreError::NotFound(m) => SandboxError::NotFound(format!("{m} not found")),
            other => SandboxError::Store(other),
        }
    }
}

impl From<FileError> for SandboxError {
    fn from(e: FileError) -> Self {
        SandboxError::File(e)
    }
}

/// A new sandbox as the API asked for it (checked by [`Engine::create_sandbox`]).
#[derive(Debug, Clone, Default)]
pub struct NewSandbox {
    pub tenant: String,
    pub isolation: Option<Isolation>,
    pub image: Option<String>,
    pub cpus: Option<u32>,
    pub mem_mb: Option<u32>,
    pub disk_mb: Option<u32>,
    pub env: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    pub timeout_s: Option<u32>,
    pub on_timeout: OnTimeout,
    pub auto_resume: bool,
    pub pulls: ImagePulls,
    /// Volumes to mount.
    pub volumes: Vec<vulcan_domain::VolumeMount>,
}

/// A process to start, as the API asked for it.
#[derive(Debug, Clone, Default)]
pub struct NewProcess {
    pub cmd: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub user: Option<String>,
    pub stdin: bool,
    /// Ends it (SIGKILL) this long after it started.
    pub timeout_s: Option<u32>,
    /// A name to find it by (E2B's process tags).
    pub tag: Option<String>,
    /// Run it on a terminal of this size (its stdin is then always open).
    pub pty: Option<vulcan_domain::PtySize>,
}

/// A foreground process's whole answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessResult {
    #[serde(flatten)]
    pub info: ProcessInfo,
    /// Its stdout (the last `kept_output_bytes` of it).
    pub stdout: String,
    pub stderr: String,
}

/// This node's sandboxes: the drivers that hold them and the ones held now.
#[derive(Default)]
pub(crate) struct SandboxHost {
    pub drivers: HashMap<Isolation, Arc<dyn SandboxDriver>>,
    pub limits: SandboxLimits,
    live: Mutex<HashMap<String, Arc<Live>>>,
    /// Wakes the reaper: a deadline moved or a sandbox came.
    reaper: tokio::sync::Notify,
}

/// A sandbox held by this node.
struct Live {
    id: String,
    tenant: String,
    auto_resume: bool,
    on_timeout: OnTimeout,
    end_at: Mutex<OffsetDateTime>,
    /// Its timeout (as created, or as last set): a resume gives it this long again.
    timeout: Mutex<Duration>,
    /// `running` or `paused` (it leaves the map when it ends).
    state: Mutex<SandboxState>,
    /// Whether it is paused frozen ([`vulcan_domain::PauseMode::Frozen`]), not saved.
    frozen: std::sync::atomic::AtomicBool,
    /// Held while it is paused, resumed or ended: one change at a time.
    changing: tokio::sync::Mutex<()>,
    sandbox: Box<dyn LiveSandbox>,
    processes: Mutex<BTreeMap<u32, Arc<Proc>>>,
    /// Its usage every [`SAMPLE_EVERY`] while it runs, the last [`SAMPLES_KEPT`].
    samples: Mutex<VecDeque<UsageSample>>,
}

/// How often a running sandbox's usage is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Samples kept per sandbox: an hour of them.
const SAMPLES_KEPT: usize = 720;

impl SandboxHost {
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Live>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Live {
    fn new(record: &Sandbox, state: SandboxState, sandbox: Box<dyn LiveSandbox>) -> Live {
        let timeout = (record.end_at - record.started_at)
            .try_into()
            .unwrap_or(Duration::from_secs(60));
        Live {
            id: record.id.clone(),
            tenant: record.tenant.clone(),
            auto_resume: record.auto_resume,
            on_timeout: record.on_timeout,
            end_at: Mutex::new(record.end_at),
            timeout: Mutex::new(timeout),
            state: Mutex::new(state),
            frozen: std::sync::atomic::AtomicBool::new(false),
            changing: tokio::sync::Mutex::new(()),
            sandbox,
            processes: Mutex::new(BTreeMap::new()),
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// Records what it uses now (and its CPU share since the sample before).
    fn sample(&self, at: OffsetDateTime) {
        let usage = self.sandbox.usage();
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let cpu_pct = samples.back().map_or(0.0, |before| {
            let wall_ms = (at - before.at).whole_milliseconds().max(1) as f64;
            let cpu_ms = usage.cpu_ms.saturating_sub(before.cpu_ms) as f64;
            (cpu_ms / wall_ms * 1000.0).round() / 10.0
        });
        samples.push_back(UsageSample {
            at,
            cpu_ms: usage.cpu_ms,
            cpu_pct,
            memory_bytes: usage.memory_bytes,
            disk_bytes: usage.disk_bytes,
        });
        while samples.len() > SAMPLES_KEPT {
            samples.pop_front();
        }
    }

    fn set_end_at(&self, end_at: OffsetDateTime) {
        *self.end_at.lock().unwrap_or_else(|p| p.into_inner()) = end_at;
    }

    fn processes(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Arc<Proc>>> {
        self.processes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn end_at(&self) -> OffsetDateTime {
        *self.end_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn state(&self) -> SandboxState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_state(&self, state: SandboxState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    fn frozen(&self) -> bool {
        self.frozen.load(std::sync::atomic::Ordering::Acquire)
    }

    fn set_frozen(&self, frozen: bool) {
        self.frozen
            .store(frozen, std::sync::atomic::Ordering::Release);
    }

    fn process(&self, pid: u32) -> Result<Arc<Proc>, SandboxError> {
        self.processes().get(&pid).cloned().ok_or_else(|| {
            SandboxError::NotFound(format!(
                "sandbox {} has no process {pid}: GET /v1/sandboxes/{}/processes lists them",
                self.id, self.id
            ))
        })
    }
}

/// Numbers sandboxes: lowercase ULIDs after `sb`, letters and digits only (they name
/// directories, cgroups and containers).
fn new_id() -> String {
    format!("sb{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A new random token for a sandbox's envd routes.
fn access_token() -> Result<String, SandboxError> {
    use std::io::Read;
    let mut random = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| SandboxError::Backend(format!("reading /dev/urandom: {e}")))?;
    Ok(random.iter().map(|b| format!("{b:02x}")).collect())
}

fn within(name: &str, value: u32, min: u32, max: u32) -> Result<u32, SandboxError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(SandboxError::Invalid(format!(
            "\"{name}\" is {value}; it must be between {min} and {max}"
        )))
    }
}

impl Engine {
    /// Gives this engine the drivers that hold sandboxes (before [`Engine::start`]).
    pub fn with_sandboxes(
        mut self,
        drivers: Vec<Arc<dyn SandboxDriver>>,
        limits: SandboxLimits,
    ) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.sandboxes.drivers = drivers.into_iter().map(|d| (d.isolation(), d)).collect();
            inner.sandboxes.limits = limits;
        }
        self
    }

    pub fn sandbox_limits(&self) -> &SandboxLimits {
        &self.inner.sandboxes.limits
    }

    /// Starts a sandbox and records it `running` on this node.
    pub async fn create_sandbox(&self, new: NewSandbox) -> Result<Sandbox, SandboxError> {
        let inner = &self.inner;
        if *inner.stopping.borrow() {
            return Err(SandboxError::ShuttingDown);
        }
        let host = &inner.sandboxes;
        let limits = &host.limits;
        let driver = self.sandbox_driver(new.isolation)?;
        let resources = SandboxResources {
            cpus: within(
                "cpus",
                new.cpus.unwrap_or(limits.defaults.cpus),
                1,
                limits.max_cpus,
            )?,
            mem_mb: within(
                "mem_mb",
                new.mem_mb.unwrap_or(limits.defaults.mem_mb),
                limits.min_mem_mb,
                limits.max_mem_mb,
            )?,
            disk_mb: within(
                "disk_mb",
                new.disk_mb.unwrap_or(limits.defaults.disk_mb),
                64,
                limits.max_disk_mb,
            )?,
        };
        let timeout_s = self.sandbox_timeout(new.timeout_s.unwrap_or(limits.default_timeout_s))?;
        crate::submission::check_env(&new.env).map_err(SandboxError::Invalid)?;
        let volumes = self
            .inner
            .volume_attachments(&new.tenant, &new.volumes)
            .await?;
        let image = self.sandbox_image(new.image.as_deref(), new.pulls).await?;
        if host.live().len() >= limits.max_per_node as usize {
            return Err(SandboxError::Refused(Refusal::Overloaded {
                message: format!(
                    "this node holds {} sandboxes, the most it may (VULCAN_SANDBOX_MAX_PER_NODE): delete one, or try again later",
                    limits.max_per_node
                ),
                retry_after_s: 30,
            }));
        }
        let now = OffsetDateTime::now_utc();
        let record = Sandbox {
            id: new_id(),
            tenant: new.tenant.clone(),
            node_id: inner.config.node_id.clone(),
            isolation: driver.isolation(),
            image: image.clone(),
            resources,
            metadata: new.metadata,
            state: SandboxState::Running,
            pause_mode: None,
            end_reason: None,
            on_timeout: new.on_timeout,
            auto_resume: new.auto_resume,
            started_at: now,
            end_at: now + Duration::from_secs(u64::from(timeout_s)),
            ended_at: None,
            access_token: access_token()?,
            volumes: new
                .volumes
                .iter()
                .zip(&volumes)
                .map(|(mount, attach)| vulcan_domain::VolumeMount {
                    name: mount.name.clone(),
                    path: attach.path.clone(),
                    read_only: mount.read_only,
                })
                .collect(),
        };
        // Recorded first (the quota holds across nodes), ended if it cannot start.
        inner
            .sandbox_store
            .insert_sandbox(&record, &limits.room())
            .await?;
        // A sandbox that does not get as far as running is recorded ended, saying why.
        let ended = |why: &str| {
            let why = why.to_owned();
            let (store, id) = (inner.sandbox_store.clone(), record.id.clone());
            async move {
                let _ = store
                    .set_sandbox_state(&id, SandboxState::Running, SandboxState::Ended, Some(&why))
                    .await;
            }
        };
        let started = driver
            .create(SandboxLaunch {
                id: record.id.clone(),
                image,
                resources,
                env: new.env,
                volumes,
            })
            .await;
        let sandbox = match started {
            Ok(sandbox) => sandbox,
            Err(BackendError(why)) => {
                ended(&format!("it could not start: {why}")).await;
                return Err(SandboxError::Backend(format!(
                    "the sandbox could not start: {why}"
                )));
            }
        };
        // Its timeout counts from when it runs: a start that took a while (a VM booted
        // under emulation, an image pulled) does not eat into it.
        let end_at = OffsetDateTime::now_utc() + Duration::from_secs(u64::from(timeout_s));
        let record = match inner
            .sandbox_store
            .set_sandbox_deadline(&record.id, end_at)
            .await
        {
            Ok(moved) => moved,
            Err(e) => {
                sandbox.destroy().await;
                ended("it could not be recorded as started").await;
                return Err(e.into());
            }
        };
        let live = Arc::new(Live::new(&record, SandboxState::Running, sandbox));
        host.live().insert(record.id.clone(), live);
        host.reaper.notify_one();
        Ok(record)
    }

    fn sandbox_driver(
        &self,
        isolation: Option<Isolation>,
    ) -> Result<Arc<dyn SandboxDriver>, SandboxError> {
        let drivers = &self.inner.sandboxes.drivers;
        let available = |d: &Arc<dyn SandboxDriver>| d.availability().available;
        match isolation.unwrap_or(self.inner.sandboxes.limits.default_isolation) {
            Isolation::Auto => [Isolation::Gvisor, Isolation::Microvm]
                .iter()
                .filter_map(|i| drivers.get(i))
                .find(|d| available(d))
                .cloned()
                .ok_or_else(|| {
                    SandboxError::Unavailable(
                        "no isolation can hold sandboxes on this node (gVisor needs runsc: GET /v1/backends says why)".into(),
                    )
                }),
            Isolation::Isolate => Err(SandboxError::Invalid(
                "isolation \"isolate\" cannot hold a sandbox (no processes, no files): use \"gvisor\", \"microvm\" or \"auto\"".into(),
            )),
            other => match drivers.get(&other) {
                Some(d) if available(d) => Ok(d.clone()),
                Some(d) => Err(SandboxError::Unavailable(format!(
                    "isolation {} cannot hold sandboxes on this node: {}",
                    other.as_str(),
                    d.availability().reason.unwrap_or_default()
                ))),
                None => Err(SandboxError::Unavailable(format!(
                    "isolation {} cannot hold sandboxes yet: use \"gvisor\" or \"auto\"",
                    other.as_str()
                ))),
            },
        }
    }

    /// `timeout_s`, checked against the maximum.
    fn sandbox_timeout(&self, timeout_s: u32) -> Result<u32, SandboxError> {
        let max = self.inner.sandboxes.limits.max_timeout_s;
        within("timeout_s", timeout_s, 1, max)
    }

    /// The image a sandbox starts from: the one named (registered, or one this caller
    /// may pull), else the default image.
    async fn sandbox_image(
        &self,
        named: Option<&str>,
        pulls: ImagePulls,
    ) -> Result<String, SandboxError> {
        let Some(images) = &self.inner.images else {
            return Err(SandboxError::Unavailable(
                "this server has no image store".into(),
            ));
        };
        let invalid = |e: ImageError| SandboxError::Invalid(e.to_string());
        let named = named.map(str::trim).filter(|i| !i.is_empty());
        let Some(reference) = named else {
            return match images.default_image().await.map_err(invalid)? {
                Some(record) => Ok(record.reference),
                None => Err(SandboxError::Invalid(
                    "give \"image\": no image is marked default (POST /v1/images with \"default\": true marks one)".into(),
                )),
            };
        };
        match images.get(reference).await {
            Ok(record) => Ok(record.reference),
            Err(ImageError::NotFound(normalised)) if pulls == ImagePulls::Never => {
                Err(SandboxError::Refused(Refusal::Forbidden(format!(
                    "image {normalised} is not registered, and this key may not pull images (images:write): ask an operator to register it with POST /v1/images"
                ))))
            }
            Err(ImageError::NotFound(normalised)) => images
                .check_pull(&normalised, pulls == ImagePulls::Any)
                .await
                .map_err(|e| match e {
                    ImageError::NotAllowed(m) => SandboxError::Refused(Refusal::Forbidden(m)),
                    other => invalid(other),
                }),
            Err(e) => Err(invalid(e)),
        }
    }

    /// Sandbox `id` as stored, if `tenant` (`None`: any) may see it.
    pub async fn sandbox(&self, tenant: Option<&str>, id: &str) -> Result<Sandbox, SandboxError> {
        let not_found = || SandboxError::NotFound(format!("sandbox {id} not found"));
        let sandbox = self
            .inner
            .sandbox_store
            .sandbox(id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => not_found(),
                other => other.into(),
            })?;
        if tenant.is_some_and(|t| t != sandbox.tenant) {
            return Err(not_found());
        }
        Ok(sandbox)
    }

    pub async fn sandboxes(&self, filter: &SandboxFilter) -> Result<SandboxPage, SandboxError> {
        Ok(self.inner.sandbox_store.sandboxes(filter).await?)
    }

    /// The sandbox held here, if `tenant` may use it and it is running.
    /// Where a request about sandbox `id` is answered when another live node holds it: that
    /// node's API (`None`: here, whatever the answer is — held here, unknown, ended, or its
    /// node not reachable).
    pub async fn sandbox_home(&self, id: &str) -> Option<String> {
        let here = &self.inner.config.node_id;
        if self.inner.sandboxes.live().contains_key(id) {
            return None;
        }
        let sandbox = self.inner.sandbox_store.sandbox(id).await.ok()?;
        if &sandbox.node_id == here || sandbox.state.is_final() {
            return None;
        }
        let now = OffsetDateTime::now_utc();
        let lease = time::Duration::try_from(self.inner.config.lease).ok()?;
        self.inner
            .nodes
            .nodes()
            .await
            .ok()?
            .into_iter()
            .find(|n| n.id == sandbox.node_id)
            .filter(|n| n.state(now, lease) == vulcan_domain::NodeState::Live)
            .map(|n| n.api_url)
            .filter(|url| !url.is_empty())
    }

    async fn held(&self, tenant: Option<&str>, id: &str) -> Result<Arc<Live>, SandboxError> {
        let held = self.inner.sandboxes.live().get(id).cloned();
        if let Some(live) = held.filter(|l| tenant.is_none_or(|t| t == l.tenant)) {
            if live.state() == SandboxState::Paused || live.sandbox.alive() {
                return Ok(live);
            }
            self.inner.end_stopped(&live).await;
        }
        let sandbox = self.sandbox(tenant, id).await?;
        if sandbox.node_id != self.inner.config.node_id && !sandbox.state.is_final() {
            return Err(SandboxError::Elsewhere {
                id: sandbox.id,
                node: sandbox.node_id,
            });
        }
        Err(SandboxError::Conflict(format!(
            "sandbox {id} is {}{}: create a new one",
            sandbox.state.as_str(),
            sandbox
                .end_reason
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )))
    }

    /// The sandbox held here, running: a paused one is resumed if it was created with
    /// `auto_resume`, else refused saying how to resume it.
    async fn running(&self, tenant: Option<&str>, id: &str) -> Result<Arc<Live>, SandboxError> {
        let live = self.held(tenant, id).await?;
        // A pause (or resume) under way is waited for: its outcome decides.
        drop(live.changing.lock().await);
        if !self.inner.is_held(&live) {
            return self.held(tenant, id).await;
        }
        if live.state() == SandboxState::Paused {
            if !live.auto_resume {
                return Err(SandboxError::Conflict(format!(
                    "sandbox {id} is paused: POST /v1/sandboxes/{id}/resume first (or create sandboxes with \"auto_resume\": true)"
                )));
            }
            self.resume_live(&live).await?;
        }
        Ok(live)
    }
}

/// A file error's answer when it is not the caller's path that is wrong.
pub fn is_no_space(e: &FileError) -> bool {
    e.kind == FileErrorKind::NoSpace
}
