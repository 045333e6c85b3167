//! The processes of one sandbox: each one's output kept as a log of byte offsets (the
//! last [`SandboxLimits::kept_output_bytes`](super::SandboxLimits) of it), so a client
//! can watch it live and reconnect from the offset it last saw; its end as it happened.
//!
//! A process outlives the request that started it and every client watching it: it is
//! the sandbox's until it ends, and its record (with the tail of its output) stays listed
//! until the sandbox ends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::watch;
use vulcan_domain::{LiveProcess, LogStream, ProcessExit, ProcessOutput, PtySize};

/// One process, as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct ProcessInfo {
    /// Its pid inside the sandbox.
    pub pid: u32,
    /// The program and its arguments.
    pub cmd: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The name it was started with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `running` or `exited`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Whether its `timeout_s` passed (it was killed then).
    pub timed_out: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ended_at: Option<OffsetDateTime>,
    /// Bytes of output written so far (stdout and stderr): the offset a watch reaches.
    pub output_bytes: u64,
    /// The size of its terminal, if it runs on one (its output is then all `stdout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pty: Option<PtySize>,
}

/// What a watch of a process sees, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessEvent {
    /// Bytes the process wrote, at `offset` in its output (both streams count).
    Output {
        offset: u64,
        stream: LogStream,
        bytes: Vec<u8>,
    },
    /// Output from `from` to `to` is no longer kept (the watch started before the kept
    /// tail).
    Skipped { from: u64, to: u64 },
    /// It ended: nothing follows.
    Exit(ProcessExit),
}

/// The output kept of one process.
struct OutputLog {
    /// `(offset, stream, bytes)`, oldest first.
    chunks: VecDeque<(u64, LogStream, Vec<u8>)>,
    /// Offset just past the last byte written.
    end: u64,
    kept: usize,
    cap: usize,
}

impl OutputLog {
    fn push(&mut self, stream: LogStream, bytes: &[u8]) {
        self.chunks.push_back((self.end, stream, bytes.to_vec()));
        self.end += bytes.len() as u64;
        self.kept += bytes.len();
        while self.kept > self.cap && self.chunks.len() > 1 {
            if let Some((_, _, old)) = self.chunks.pop_front() {
                self.kept -= old.len();
            }
        }
    }

    /// Offset of the first byte kept.
    fn start(&self) -> u64 {
        self.chunks.front().map_or(self.end, |c| c.0)
    }

    /// What follows `offset`, as events (a skip first if some of it is gone).
    fn since(&self, offset: u64) -> Vec<ProcessEvent> {
        let mut events = Vec::new();
        let start = self.start();
        if offset < start {
            events.push(ProcessEvent::Skipped {
                from: offset,
                to: start,
            });
        }
        for (at, stream, bytes) in &self.chunks {
            let end = at + bytes.len() as u64;
            if end <= offset {
                continue;
            }
            let skip = offset.saturating_sub(*at) as usize;
            events.push(ProcessEvent::Output {
                offset: at + skip as u64,
                stream: *stream,
                bytes: bytes[skip..].to_vec(),
            });
        }
        events
    }

    /// All of one stream that is kept, as text.
    fn text(&self, stream: LogStream) -> String {
        let bytes: Vec<u8> = self
            .chunks
            .iter()
            .filter(|c| c.1 == stream)
            .flat_map(|c| c.2.iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// One process of a sandbox: the backend's handle, its record, its output.
pub(crate) struct Proc {
    pub process: Box<dyn LiveProcess>,
    info: Mutex<ProcessInfo>,
    output: Arc<Output>,
}

/// The output side, shared with the backend (which writes to it).
struct Output {
    log: Mutex<OutputLog>,
    /// Bumped on every write and at the end: watches wait on it.
    changed: watch::Sender<u64>,
}

impl ProcessOutput for Output {
    fn chunk(&self, stream: LogStream, bytes: &[u8]) {
        let end = {
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            log.push(stream, bytes);
            log.end
        };
        self.changed.send_replace(end);
    }
}

/// Where a new process's output goes before the process exists (it is started with it).
pub(crate) struct OutputSlot(Arc<Output>);

impl OutputSlot {
    pub fn new(cap: usize) -> OutputSlot {
        OutputSlot(Arc::new(Output {
            log: Mutex::new(OutputLog {
                chunks: VecDeque::new(),
                end: 0,
                kept: 0,
                cap,
            }),
            changed: watch::channel(0).0,
        }))
    }

    pub fn sink(&self) -> Arc<dyn ProcessOutput> {
        self.0.clone()
    }
}

impl Proc {
    pub fn new(
        process: Box<dyn LiveProcess>,
        slot: OutputSlot,
        cmd: Vec<String>,
        cwd: Option<String>,
        tag: Option<String>,
        pty: Option<PtySize>,
    ) -> Arc<Proc> {
        let pid = process.pid();
        Arc::new(Proc {
            process,
            info: Mutex::new(ProcessInfo {
                pid,
                cmd,
                cwd,
                tag,
                state: "running",
                exit_code: None,
                signal: None,
                timed_out: false,
                started_at: OffsetDateTime::now_utc(),
                ended_at: None,
                output_bytes: 0,
                pty,
            }),
            output: slot.0,
        })
    }

    fn info_lock(&self) -> std::sync::MutexGuard<'_, ProcessInfo> {
        self.info.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log(&self) -> std::sync::MutexGuard<'_, OutputLog> {
        self.output.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn info(&self) -> ProcessInfo {
        let mut info = self.info_lock().clone();
        info.output_bytes = self.log().end;
        info
    }

    pub fn running(&self) -> bool {
        self.info_lock().ended_at.is_none()
    }

    /// Records its terminal's new size.
    pub fn resized(&self, size: PtySize) {
        self.info_lock().pty = Some(size);
    }

    pub fn mark_timed_out(&self) {
        self.info_lock().timed_out = true;
    }

    /// Records how it ended (the first word on it counts) and wakes its watches.
    pub fn ended(&self, exit: ProcessExit) {
        {
            let mut info = self.info_lock();
            if info.ended_at.is_some() {
                return;
            }
            info.state = "exited";
            info.exit_code = exit.exit_code;
            info.signal = exit.signal;
            info.ended_at = Some(OffsetDateTime::now_utc());
        }
        let end = self.log().end;
        self.output.changed.send_replace(end);
    }

    /// Its stdout and stderr as far as they are kept.
    pub fn texts(&self) -> (String, String) {
        let log = self.log();
        (log.text(LogStream::Stdout), log.text(LogStream::Stderr))
    }

    /// A watch of its output from `offset` on.
    pub fn watch(self: &Arc<Self>, offset: u64) -> ProcessWatch {
        ProcessWatch {
            proc: self.clone(),
            offset,
            changed: self.output.changed.subscribe(),
            pending: VecDeque::new(),
            done: false,
        }
    }
}

/// A client's view of one process's output, live: [`ProcessWatch::next`] until `None`.
pub struct ProcessWatch {
    proc: Arc<Proc>,
    offset: u64,
    changed: watch::Receiver<u64>,
    pending: VecDeque<ProcessEvent>,
    done: bool,
}

impl ProcessWatch {
    /// The next event, waiting for it; `None` after the exit was given.
    pub async fn next(&mut self) -> Option<ProcessEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                match &event {
                    ProcessEvent::Output { offset, bytes, .. } => {
                        self.offset = offset + bytes.len() as u64
                    }
                    ProcessEvent::Skipped { to, .. } => self.offset = *to,
                    ProcessEvent::Exit(_) => self.done = true,
                }
                return Some(event);
            }
            if self.done {
                return None;
            }
            self.changed.borrow_and_update();
            let (events, exit) = {
                let info = self.proc.info_lock().clone();
                let events = self.proc.log().since(self.offset);
                let exit = info.ended_at.map(|_| ProcessExit {
                    exit_code: info.exit_code,
                    signal: info.signal,
                });
                (events, exit)
            };
            let caught_up = events.is_empty();
            self.pending.extend(events);
            if caught_up {
                match exit {
                    Some(exit) => self.pending.push_back(ProcessEvent::Exit(exit)),
                    None => {
                        if self.changed.changed().await.is_err() {
                            self.done = true;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(cap: usize) -> OutputLog {
        OutputLog {
            chunks: VecDeque::new(),
            end: 0,
            kept: 0,
            cap,
        }
    }

    #[test]
    fn output_is_read_from_any_offset_and_what_is_dropped_is_said() {
        let mut out = log(8);
        out.push(LogStream::Stdout, b"abcd");
        out.push(LogStream::Stderr, b"ef");
        assert_eq!(
            out.since(2),
            [
                ProcessEvent::Output {
                    offset: 2,
                    stream: LogStream::Stdout,
                    bytes: b"cd".to_vec()
                },
                ProcessEvent::Output {
                    offset: 4,
                    stream: LogStream::Stderr,
                    bytes: b"ef".to_vec()
                }
            ]
        );
        out.push(LogStream::Stdout, b"ghijk");
        assert_eq!(out.start(), 4, "the oldest chunk went past the cap");
        assert_eq!(out.since(0)[0], ProcessEvent::Skipped { from: 0, to: 4 });
        assert!(out.since(11).is_empty());
        assert_eq!(out.text(LogStream::Stdout), "ghijk");
    }
}
