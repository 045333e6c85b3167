//! A small client of QEMU's machine protocol (QMP): one JSON object per line, a greeting,
//! `qmp_capabilities`, then commands answered by `return` or `error`, with events between.
//! Only what snapshots need: migrate to a file, and watch a VM's run state.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// Longest answer line accepted: QEMU's answers here are small.
const MAX_LINE: usize = 64 * 1024;

pub struct Qmp {
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

impl Qmp {
    /// Connects (QEMU creates the socket as it starts: retried until `deadline`) and
    /// negotiates capabilities.
    pub async fn connect(path: &Path, deadline: Instant) -> Result<Qmp, String> {
        let stream = loop {
            match UnixStream::connect(path).await {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(2)).await
                }
                Err(e) => return Err(format!("cannot connect to the VMM's control socket: {e}")),
            }
        };
        let (reader, writer) = stream.into_split();
        let mut qmp = Qmp {
            lines: BufReader::new(reader).lines(),
            writer,
        };
        let greeting = qmp.line(deadline).await?;
        if greeting.get("QMP").is_none() {
            return Err(format!("the VMM did not greet as QMP: {greeting}"));
        }
        qmp.execute("qmp_capabilities", json!({}), deadline).await?;
        Ok(qmp)
    }

    async fn line(&mut self, deadline: Instant) -> Result<Value, String> {
        let next = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            self.lines.next_line(),
        )
        .await
        .map_err(|_| "the VMM did not answer in time".to_owned())?
        .map_err(|e| format!("the VMM's control socket failed: {e}"))?
        .ok_or("the VMM closed its control socket")?;
        if line_too_long(&next) {
            return Err("the VMM sent an answer too long to read".into());
        }
        serde_json::from_str(&next).map_err(|e| format!("the VMM sent no JSON: {e}"))
    }

    /// Runs one command; its `return` value, or its `error` as text.
    pub async fn execute(
        &mut self,
        command: &str,
        arguments: Value,
        deadline: Instant,
    ) -> Result<Value, String> {
        let mut request = json!({"execute": command});
        if arguments.as_object().is_some_and(|a| !a.is_empty()) {
            request["arguments"] = arguments;
        }
        let mut bytes = request.to_string().into_bytes();
        bytes.push(b'\n');
        self.writer
            .write_all(&bytes)
            .await
            .map_err(|e| format!("cannot send {command} to the VMM: {e}"))?;
        loop {
            let answer = self.line(deadline).await?;
            if let Some(value) = answer.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = answer.get("error") {
                return Err(format!(
                    "{command} failed: {}",
                    error["desc"].as_str().unwrap_or("no description")
                ));
            }
            // An event (STOP, RESUME, MIGRATION…): not the answer.
        }
    }

    /// RAM backed by a shared file is left out of the migration stream: the file holds it.
    async fn ignore_shared_ram(&mut self, deadline: Instant) -> Result<(), String> {
        self.execute(
            "migrate-set-capabilities",
            json!({"capabilities": [{"capability": "x-ignore-shared", "state": true}]}),
            deadline,
        )
        .await
        .map(drop)
    }

    /// Loads the state saved in `file` into a VM started with `-incoming defer` whose RAM
    /// is the snapshot's file.
    pub async fn load_from_file(&mut self, file: &Path, deadline: Instant) -> Result<(), String> {
        self.ignore_shared_ram(deadline).await?;
        let uri = format!("exec:cat {}", crate::vmm::shell_word(file));
        self.execute("migrate-incoming", json!({"uri": uri}), deadline)
            .await
            .map(drop)
    }

    /// Saves the running VM's state into `file` (QEMU stops the VM when done); RAM in a
    /// shared file stays there.
    pub async fn migrate_to_file(&mut self, file: &Path, deadline: Instant) -> Result<(), String> {
        self.ignore_shared_ram(deadline).await?;
        let uri = format!("exec:cat > {}", crate::vmm::shell_word(file));
        self.execute("migrate", json!({"uri": uri}), deadline)
            .await?;
        loop {
            let state = self.execute("query-migrate", json!({}), deadline).await?;
            match state["status"].as_str() {
                Some("completed") => return Ok(()),
                Some("failed" | "cancelled") => {
                    return Err(format!(
                        "saving the VM failed: {}",
                        state["error-desc"].as_str().unwrap_or("no reason given")
                    ))
                }
                _ if Instant::now() >= deadline => {
                    return Err("saving the VM did not finish in time".into())
                }
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// Waits until a VM started with `-incoming` has loaded its state and runs.
    pub async fn wait_running(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            let status = self.execute("query-status", json!({}), deadline).await?;
            match status["status"].as_str() {
                Some("running") => return Ok(()),
                Some("inmigrate" | "prelaunch") if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(2)).await
                }
                Some("inmigrate" | "prelaunch") => {
                    return Err("the saved state did not load in time".into())
                }
                other => {
                    return Err(format!(
                        "the VM is {} after loading its saved state",
                        other.unwrap_or("in no known state")
                    ))
                }
            }
        }
    }
}

fn line_too_long(line: &str) -> bool {
    line.len() > MAX_LINE
}
