//! Processes in a sandbox, for the API: started in the foreground or the background,
//! watched, fed stdin, signalled.

use std::sync::Arc;
use std::time::Duration;

use vulcan_domain::{BackendError, ProcessLaunch, PtySize, SandboxState};

use super::processes::{OutputSlot, Proc, ProcessInfo, ProcessWatch};
use super::{Live, NewProcess, ProcessResult, SandboxError};
use crate::Engine;

impl Engine {
    /// Starts a process in sandbox `id`; it runs until it ends, whoever watches.
    pub async fn start_process(
        &self,
        tenant: Option<&str>,
        id: &str,
        new: NewProcess,
    ) -> Result<ProcessInfo, SandboxError> {
        let (_, proc) = self.spawn_in(tenant, id, new).await?;
        Ok(proc.info())
    }

    /// Runs a process in sandbox `id` to its end and answers with its output.
    pub async fn run_process(
        &self,
        tenant: Option<&str>,
        id: &str,
        new: NewProcess,
    ) -> Result<ProcessResult, SandboxError> {
        let (_, proc) = self.spawn_in(tenant, id, new).await?;
        let exit = proc.process.wait().await;
        // The watcher task records the end; it may not have run yet.
        proc.ended(exit);
        let (stdout, stderr) = proc.texts();
        Ok(ProcessResult {
            info: proc.info(),
            stdout,
            stderr,
        })
    }

    async fn spawn_in(
        &self,
        tenant: Option<&str>,
        id: &str,
        new: NewProcess,
    ) -> Result<(Arc<Live>, Arc<Proc>), SandboxError> {
        if new.cmd.trim().is_empty() {
            return Err(SandboxError::Invalid(
                "\"cmd\" is required: the program to run, e.g. \"sh\" with \"args\": [\"-c\", \"echo hi\"]".into(),
            ));
        }
        if let Some(cwd) = new.cwd.as_deref().filter(|c| !c.starts_with('/')) {
            return Err(SandboxError::Invalid(format!(
                "\"cwd\" {cwd:?} must be an absolute path inside the sandbox"
            )));
        }
        crate::submission::check_env(&new.env).map_err(SandboxError::Invalid)?;
        if let Some(tag) = new.tag.as_deref() {
            if tag.is_empty() || tag.len() > 128 || tag.chars().any(char::is_control) {
                return Err(SandboxError::Invalid(format!(
                    "tag {tag:?} is not one: give 1-128 printable characters"
                )));
            }
        }
        if let Some(size) = new.pty {
            size.check().map_err(SandboxError::Invalid)?;
        }
        let live = self.running(tenant, id).await?;
        // Not while it is being paused: a process it would not take along.
        let _changing = live.changing.lock().await;
        if live.state() != SandboxState::Running || !self.is_held(&live) {
            return Err(SandboxError::Conflict(format!(
                "sandbox {id} was paused or ended meanwhile: try again"
            )));
        }
        let mut argv = vec![new.cmd.clone()];
        argv.extend(new.args.iter().cloned());
        let slot = OutputSlot::new(self.inner.sandboxes.limits.kept_output_bytes);
        let process = live
            .sandbox
            .spawn(
                &ProcessLaunch {
                    argv: argv.clone(),
                    env: new.env,
                    cwd: new.cwd.clone(),
                    user: new.user,
                    stdin: new.stdin || new.pty.is_some(),
                    pty: new.pty,
                },
                slot.sink(),
            )
            .await
            .map_err(|BackendError(why)| SandboxError::Invalid(why))?;
        let proc = Proc::new(process, slot, argv, new.cwd, new.tag, new.pty);
        live.processes().insert(proc.info().pid, proc.clone());
        let watched = proc.clone();
        let timeout = new.timeout_s.map(|s| Duration::from_secs(u64::from(s)));
        tokio::spawn(async move {
            let exit = match timeout {
                Some(limit) => match tokio::time::timeout(limit, watched.process.wait()).await {
                    Ok(exit) => exit,
                    Err(_) => {
                        watched.mark_timed_out();
                        let _ = watched.process.signal(9).await;
                        watched.process.wait().await
                    }
                },
                None => watched.process.wait().await,
            };
            watched.ended(exit);
        });
        drop(_changing);
        Ok((live, proc))
    }

    /// The processes of sandbox `id`, running and ended.
    pub async fn processes(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Vec<ProcessInfo>, SandboxError> {
        let live = self.held(tenant, id).await?;
        let all = live.processes().values().cloned().collect::<Vec<_>>();
        Ok(all.iter().map(|p| p.info()).collect())
    }

    pub async fn process(
        &self,
        tenant: Option<&str>,
        id: &str,
        pid: u32,
    ) -> Result<ProcessInfo, SandboxError> {
        Ok(self.held(tenant, id).await?.process(pid)?.info())
    }

    /// A live view of process `pid`'s output from `offset` on, then its end.
    pub async fn watch_process(
        &self,
        tenant: Option<&str>,
        id: &str,
        pid: u32,
        offset: u64,
    ) -> Result<ProcessWatch, SandboxError> {
        Ok(self.held(tenant, id).await?.process(pid)?.watch(offset))
    }

    /// Writes `bytes` to process `pid`'s stdin, then closes it if `close`.
    pub async fn process_input(
        &self,
        tenant: Option<&str>,
        id: &str,
        pid: u32,
        bytes: &[u8],
        close: bool,
    ) -> Result<(), SandboxError> {
        let proc = self.running(tenant, id).await?.process(pid)?;
        if !proc.running() {
            return Err(SandboxError::Conflict(format!(
                "process {pid} has ended: its stdin is gone"
            )));
        }
        if !bytes.is_empty() {
            proc.process
                .write_stdin(bytes)
                .await
                .map_err(|BackendError(why)| SandboxError::Conflict(why))?;
        }
        if close {
            proc.process.close_stdin().await;
        }
        Ok(())
    }

    /// Sets the size of process `pid`'s terminal.
    pub async fn resize_process(
        &self,
        tenant: Option<&str>,
        id: &str,
        pid: u32,
        size: PtySize,
    ) -> Result<ProcessInfo, SandboxError> {
        size.check().map_err(SandboxError::Invalid)?;
        let proc = self.running(tenant, id).await?.process(pid)?;
        if proc.info().pty.is_none() {
            return Err(SandboxError::Invalid(format!(
                "process {pid} was not started on a terminal: only one started with \"pty\": {{\"rows\", \"cols\"}} has a size to set"
            )));
        }
        if !proc.running() {
            return Err(SandboxError::Conflict(format!("process {pid} has ended")));
        }
        proc.process
            .resize(size)
            .await
            .map_err(|BackendError(why)| SandboxError::Conflict(why))?;
        proc.resized(size);
        Ok(proc.info())
    }

    pub async fn signal_process(
        &self,
        tenant: Option<&str>,
        id: &str,
        pid: u32,
        signal: i32,
    ) -> Result<(), SandboxError> {
        if !(1..=64).contains(&signal) {
            return Err(SandboxError::Invalid(format!(
                "signal {signal} is not one: give 1-64 or a name such as \"SIGTERM\""
            )));
        }
        let proc = self.running(tenant, id).await?.process(pid)?;
        if !proc.running() {
            return Err(SandboxError::Conflict(format!("process {pid} has ended")));
        }
        proc.process
            .signal(signal)
            .await
            .map_err(|BackendError(why)| SandboxError::Conflict(why))
    }
}
