//! Sandboxes across a stop of the server: paused at SIGTERM and taken back at the next
//! start; what a crash left running is recorded `lost`.

use std::sync::Arc;

use vulcan_domain::{BackendError, SandboxState, StoreError};

use super::{Live, SandboxError};
use crate::Engine;

impl Engine {
    /// Takes back the sandboxes this node paused when it last stopped (each stays
    /// `paused`, resumed when asked), marks those it left `running` (a crash) or cannot take
    /// back as `lost`, and has each driver remove what else the last run left on disk.
    /// Returns (taken back, lost).
    pub async fn recover_sandboxes(&self) -> Result<(usize, usize), StoreError> {
        let inner = &self.inner;
        let node = &inner.config.node_id;
        let (mut adopted, mut lost) = (Vec::new(), 0);
        for sandbox in inner
            .sandbox_store
            .sandboxes_on(node, SandboxState::Paused)
            .await?
        {
            let taken = match inner.sandboxes.drivers.get(&sandbox.isolation) {
                Some(driver) => driver.adopt(&sandbox).await,
                None => Err(BackendError("its isolation is not on this node".into())),
            };
            match taken {
                Ok(held) => {
                    let live = Arc::new(Live::new(&sandbox, SandboxState::Paused, held));
                    inner.sandboxes.live().insert(sandbox.id.clone(), live);
                    adopted.push(sandbox.id);
                }
                Err(BackendError(why)) => {
                    let reason = format!("it was paused, but could not be taken back: {why}");
                    if inner
                        .sandbox_store
                        .set_sandbox_state(
                            &sandbox.id,
                            SandboxState::Paused,
                            SandboxState::Lost,
                            Some(&reason),
                        )
                        .await
                        .is_ok()
                    {
                        lost += 1;
                    }
                }
            }
        }
        for sandbox in inner
            .sandbox_store
            .sandboxes_on(node, SandboxState::Running)
            .await?
        {
            let why = format!(
                "the server on node {node} stopped while it was running (killed, or it could not be paused); it was not restarted"
            );
            if inner
                .sandbox_store
                .set_sandbox_state(
                    &sandbox.id,
                    SandboxState::Running,
                    SandboxState::Lost,
                    Some(&why),
                )
                .await
                .is_ok()
            {
                lost += 1;
            }
        }
        for driver in inner.sandboxes.drivers.values() {
            driver.sweep(&adopted).await;
        }
        Ok((adopted.len(), lost))
    }

    /// The server is stopping: every sandbox it holds is saved (kept on disk for the next
    /// start) where it can be; one that cannot (frozen, a process Vulcan follows still
    /// runs, or the save failed) is ended and recorded `lost`.
    pub(crate) async fn stop_sandboxes(&self) {
        let all: Vec<Arc<Live>> = self.inner.sandboxes.live().values().cloned().collect();
        for live in all {
            let saved = match live.state() {
                SandboxState::Running => self.inner.pause_live(&live, false, None).await.map(|_| ()),
                _ if live.frozen() => Err(SandboxError::Conflict(
                    "it was paused frozen in memory (a process Vulcan followed ran), which does not outlive the server".into(),
                )),
                _ => Ok(()),
            };
            if let Err(e) = saved {
                let why = format!("the server shut down, and it could not be saved: {e}");
                self.inner
                    .finish_sandbox(&live, SandboxState::Lost, &why)
                    .await;
                continue;
            }
            if self.inner.sandboxes.live().remove(&live.id).is_some() {
                live.sandbox.release();
            }
        }
        for driver in self.inner.sandboxes.drivers.values() {
            driver.settle().await;
        }
    }
}
