//! A held sandbox's life after its start: paused and resumed (with room for its memory
//! again), its deadline moved, ended on request, at its deadline (or paused there), or when
//! found stopped by itself; and the reaper that watches the deadlines.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use vulcan_domain::{
    BackendError, OnTimeout, PauseMode, Refusal, Sandbox, SandboxFilter, SandboxMetrics,
    SandboxState,
};

use super::{Live, SandboxError, SAMPLE_EVERY};
use crate::engine::Inner;
use crate::Engine;

impl Engine {
    /// Pauses sandbox `id`: saved to disk and stopped, holding no memory until resumed;
    /// or, on gVisor while a process started through the API runs, frozen in memory (see
    /// [`Inner::pause_live`]). Its processes go on after the resume either way.
    pub async fn pause_sandbox(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Sandbox, SandboxError> {
        let live = self.held(tenant, id).await?;
        self.inner.pause_live(&live, true, None).await
    }

    /// Starts paused sandbox `id` again, with its files and its processes.
    pub async fn resume_sandbox(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Sandbox, SandboxError> {
        let live = self.held(tenant, id).await?;
        self.resume_live(&live).await?;
        Ok(self.inner.sandbox_store.sandbox(id).await?)
    }

    pub(super) async fn resume_live(&self, live: &Arc<Live>) -> Result<(), SandboxError> {
        let _changing = live.changing.lock().await;
        if live.state() != SandboxState::Paused || !self.is_held(live) {
            return Err(SandboxError::Conflict(format!(
                "sandbox {} is not paused",
                live.id
            )));
        }
        let went_on = if live.frozen() {
            // Its memory stayed held: no room to find.
            live.sandbox.thaw().await
        } else {
            self.room_to_resume(live).await?;
            live.sandbox.resume().await
        };
        went_on.map_err(|BackendError(why)| {
            SandboxError::Backend(format!("resuming failed: {why}"))
        })?;
        live.set_frozen(false);
        live.set_state(SandboxState::Running);
        self.inner
            .sandbox_store
            .set_sandbox_state(&live.id, SandboxState::Paused, SandboxState::Running, None)
            .await?;
        // Its timeout starts again: a sandbox paused by its deadline is not past it.
        let timeout = *live.timeout.lock().unwrap_or_else(|p| p.into_inner());
        let end_at = OffsetDateTime::now_utc() + timeout;
        self.inner
            .sandbox_store
            .set_sandbox_deadline(&live.id, end_at)
            .await?;
        live.set_end_at(end_at);
        self.inner.sandboxes.reaper.notify_one();
        Ok(())
    }

    pub(super) fn is_held(&self, live: &Arc<Live>) -> bool {
        self.inner.is_held(live)
    }

    /// Whether the memory the tenant's sandboxes hold (running, or frozen) leaves room for
    /// `live` to run again.
    pub(super) async fn room_to_resume(&self, live: &Arc<Live>) -> Result<(), SandboxError> {
        let limits = &self.inner.sandboxes.limits;
        let mut held = 0;
        for state in [SandboxState::Running, SandboxState::Paused] {
            let page = self
                .inner
                .sandbox_store
                .sandboxes(&SandboxFilter {
                    tenant: Some(live.tenant.clone()),
                    state: Some(state),
                    limit: limits.max_per_tenant.max(1),
                    ..SandboxFilter::default()
                })
                .await?;
            held += page
                .sandboxes
                .iter()
                .filter(|s| s.holds_memory())
                .map(|s| u64::from(s.resources.mem_mb))
                .sum::<u64>();
        }
        let wants = self.sandbox(None, &live.id).await?.resources.mem_mb;
        if held + u64::from(wants) > u64::from(limits.tenant_mem_mb) {
            return Err(SandboxError::Refused(Refusal::OverQuota {
                message: format!(
                    "tenant {}'s running (and frozen) sandboxes hold {held} MiB of memory; resuming {} ({wants} MiB) would pass its {} MiB (VULCAN_SANDBOX_TENANT_MEM_MB): pause or delete another first",
                    live.tenant, live.id, limits.tenant_mem_mb
                ),
                retry_after_s: 30,
            }));
        }
        Ok(())
    }

    /// Moves sandbox `id`'s deadline to `timeout_s` from now.
    pub async fn set_sandbox_timeout(
        &self,
        tenant: Option<&str>,
        id: &str,
        timeout_s: u32,
    ) -> Result<Sandbox, SandboxError> {
        let timeout_s = self.sandbox_timeout(timeout_s)?;
        let live = self.held(tenant, id).await?;
        let end_at = OffsetDateTime::now_utc() + Duration::from_secs(u64::from(timeout_s));
        let sandbox = self
            .inner
            .sandbox_store
            .set_sandbox_deadline(id, end_at)
            .await?;
        live.set_end_at(end_at);
        *live.timeout.lock().unwrap_or_else(|p| p.into_inner()) =
            Duration::from_secs(u64::from(timeout_s));
        self.inner.sandboxes.reaper.notify_one();
        Ok(sandbox)
    }

    /// Ends sandbox `id`: everything in it killed, its disk removed.
    pub async fn delete_sandbox(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Sandbox, SandboxError> {
        let live = self.held(tenant, id).await?;
        self.inner.end_sandbox(&live, "deleted by request").await
    }

    /// What sandbox `id` uses now.
    pub async fn sandbox_usage(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<SandboxMetrics, SandboxError> {
        let live = self.held(tenant, id).await?;
        let now = live.sandbox.usage();
        let samples = live
            .samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        Ok(SandboxMetrics {
            cpu_ms: now.cpu_ms,
            memory_bytes: now.memory_bytes,
            disk_bytes: now.disk_bytes,
            samples,
        })
    }
}

impl Inner {
    /// Whether `live` is still this node's (not ended meanwhile).
    pub(super) fn is_held(&self, live: &Arc<Live>) -> bool {
        self.sandboxes
            .live()
            .get(&live.id)
            .is_some_and(|l| Arc::ptr_eq(l, live))
    }

    /// Pauses `live`: saved whole to disk where its isolation can take along the processes
    /// Vulcan follows (or none runs); else, with `may_freeze`, frozen in memory. Without
    /// it (the server is stopping: a frozen sandbox would not outlive it) such a sandbox is
    /// refused with `409`.
    /// Pauses `live` (frozen in memory only if `may_freeze` and it must be); `kept_until`:
    /// its new deadline, recorded before it shows as paused (a pause at its deadline).
    pub(super) async fn pause_live(
        &self,
        live: &Arc<Live>,
        may_freeze: bool,
        kept_until: Option<OffsetDateTime>,
    ) -> Result<Sandbox, SandboxError> {
        let _changing = live.changing.lock().await;
        if live.state() != SandboxState::Running || !self.is_held(live) {
            return Err(SandboxError::Conflict(format!(
                "sandbox {} is not running: only a running sandbox can be paused",
                live.id
            )));
        }
        // A process started through the API holds the host's ends of its pipes, which a
        // saved gVisor sandbox cannot take along (a microVM's are inside it).
        let followed: Vec<String> = live
            .processes()
            .values()
            .filter(|p| p.running())
            .map(|p| p.info().pid.to_string())
            .collect();
        let freeze = !followed.is_empty() && !live.sandbox.pauses_followed_processes();
        if freeze && !may_freeze {
            return Err(SandboxError::Conflict(format!(
                "sandbox {} has processes Vulcan follows still running (pids {}): their output comes through the host, so it can only be frozen in memory, which does not outlive the server",
                live.id,
                followed.join(", ")
            )));
        }
        let paused = if freeze {
            live.sandbox.freeze().await
        } else {
            live.sandbox.pause().await
        };
        paused
            .map_err(|BackendError(why)| SandboxError::Backend(format!("pausing failed: {why}")))?;
        if let Some(end_at) = kept_until {
            self.sandbox_store
                .set_sandbox_deadline(&live.id, end_at)
                .await?;
            live.set_end_at(end_at);
        }
        live.set_frozen(freeze);
        live.set_state(SandboxState::Paused);
        let mode = if freeze {
            PauseMode::Frozen
        } else {
            PauseMode::Saved
        };
        Ok(self
            .sandbox_store
            .set_sandbox_state(
                &live.id,
                SandboxState::Running,
                SandboxState::Paused,
                Some(mode.as_str()),
            )
            .await?)
    }

    /// `on_timeout: pause`: pauses `live` at its deadline, then keeps it paused for
    /// `max_timeout_s` (a resume gives it its timeout again). One that cannot be paused
    /// is ended, saying why.
    pub(super) async fn pause_at_deadline(&self, live: &Arc<Live>) {
        let kept = Duration::from_secs(u64::from(self.sandboxes.limits.max_timeout_s));
        let end_at = OffsetDateTime::now_utc() + kept;
        match self.pause_live(live, true, Some(end_at)).await {
            Ok(_) => {}
            // Resumed or ended meanwhile: the next look decides again.
            Err(SandboxError::Conflict(_)) if live.state() != SandboxState::Running => {}
            Err(e) => {
                let why = format!("its timeout passed and it could not be paused: {e}");
                self.finish_sandbox(live, SandboxState::Ended, &why).await;
            }
        }
    }

    /// Records the end of a sandbox that stopped by itself, saying why if its backend can.
    pub(super) async fn end_stopped(&self, live: &Arc<Live>) {
        let why = live
            .sandbox
            .stopped_because()
            .map(|because| format!("it stopped by itself: {because}"))
            .unwrap_or_else(|| STOPPED.to_owned());
        self.finish_sandbox(live, SandboxState::Ended, &why).await;
    }

    /// Ends `live` with `reason` (`ended`), answering the record as stored.
    pub(super) async fn end_sandbox(
        &self,
        live: &Arc<Live>,
        reason: &str,
    ) -> Result<Sandbox, SandboxError> {
        self.finish_sandbox(live, SandboxState::Ended, reason)
            .await
            .ok_or_else(|| SandboxError::Conflict(format!("sandbox {} has already ended", live.id)))
    }

    /// Takes `live` off this node, destroys it and records `state`; `None` if someone
    /// else ended it first.
    pub(super) async fn finish_sandbox(
        &self,
        live: &Arc<Live>,
        state: SandboxState,
        reason: &str,
    ) -> Option<Sandbox> {
        let _changing = live.changing.lock().await;
        self.sandboxes.live().remove(&live.id)?;
        let from = live.state();
        live.sandbox.destroy().await;
        for proc in live.processes().values() {
            if proc.running() {
                proc.ended(vulcan_domain::ProcessExit {
                    exit_code: None,
                    signal: Some(9),
                });
            }
        }
        match self
            .sandbox_store
            .set_sandbox_state(&live.id, from, state, Some(reason))
            .await
        {
            Ok(sandbox) => Some(sandbox),
            Err(e) => {
                tracing::warn!(sandbox = %live.id, error = %e, "could not record a sandbox's end");
                None
            }
        }
    }
}

/// Why a sandbox that stopped by itself ended.
const STOPPED: &str =
    "it stopped by itself: the sandbox's memory limit (mem_mb) or a failure of the sandbox";

/// How often the reaper looks for sandboxes that stopped by themselves.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Ends sandboxes whose deadline passed (sleeping until the next one, or a change) and
/// those that stopped by themselves.
pub(crate) async fn reap(inner: Arc<Inner>) {
    let mut stopping = inner.stopping.subscribe();
    let mut sampled = OffsetDateTime::UNIX_EPOCH;
    loop {
        let now = OffsetDateTime::now_utc();
        let all: Vec<Arc<Live>> = inner.sandboxes.live().values().cloned().collect();
        if now - sampled >= SAMPLE_EVERY {
            sampled = now;
            for live in all.iter().filter(|l| l.state() == SandboxState::Running) {
                live.sample(now);
            }
        }
        let mut next = now + LOOK_EVERY;
        for live in all {
            let end_at = live.end_at();
            if end_at <= now {
                if live.on_timeout == OnTimeout::Pause && live.state() == SandboxState::Running {
                    inner.pause_at_deadline(&live).await;
                    next = now;
                } else {
                    inner
                        .finish_sandbox(&live, SandboxState::Ended, "its timeout passed")
                        .await;
                }
            } else if live.state() == SandboxState::Running
                && !live.sandbox.alive()
                && live.changing.try_lock().is_ok()
            {
                inner.end_stopped(&live).await;
            } else {
                next = next.min(end_at);
            }
        }
        let wait = (next - OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(50));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.sandboxes.reaper.notified() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}
