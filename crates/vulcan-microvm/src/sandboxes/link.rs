//! The host's end of a held sandbox's channel: calls sent and their answers matched by id,
//! process output handed to whoever follows the process, ends reported. One link per VM
//! process: a pause ends it (without failing anything), a resume makes a new one.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use vulcan_agent::held::{
    parse_output, Answer, Call, Changed, Failure, FailureKind, Op, ProcEnded,
};
use vulcan_agent::{write_frame, Kind};
use vulcan_domain::{
    FileError, FileErrorKind, FileEvent, FileEventKind, LogStream, ProcessExit, ProcessOutput,
};

use crate::vm::Frames;

/// How long a call may wait for its answer (a file piece under emulation included).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Whoever follows one process: its output, and its end once known.
pub(crate) struct Follower {
    pub output: Arc<dyn ProcessOutput>,
    pub ended: watch::Sender<Option<ProcessExit>>,
}

/// Where a watch's changes go (an error is its last).
pub(crate) type WatchSender = tokio::sync::mpsc::UnboundedSender<Result<FileEvent, FileError>>;

/// What every link of one sandbox shares.
#[derive(Default)]
pub(crate) struct Calls {
    next: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    /// Processes being started, by call id: followed from the moment the answer names
    /// their pid (their output comes after the answer).
    starting: Mutex<HashMap<u64, Follower>>,
    followed: Mutex<HashMap<u32, Follower>>,
    /// Watches of directories, by the number given to the agent.
    watches: Mutex<HashMap<u64, WatchSender>>,
    /// Where calls go, and which VM's channel that is (counted); `None` while there is no
    /// VM (paused, ended).
    writer: Mutex<Option<(u64, std::sync::mpsc::Sender<Vec<u8>>)>>,
    links: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn stopped() -> Failure {
    Failure::new(FailureKind::Io, "the sandbox's VM is not running")
}

impl Calls {
    /// Sends `op` and waits for its answer's value.
    pub async fn call(&self, op: Op) -> Result<serde_json::Value, Failure> {
        self.call_following(op, None).await
    }

    /// [`Calls::call`]; a spawn's process is followed by `follower` once it has a pid.
    pub async fn call_following(
        &self,
        op: Op,
        follower: Option<Follower>,
    ) -> Result<serde_json::Value, Failure> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let frame = serde_json::to_vec(&Call { id, op })
            .map_err(|e| Failure::new(FailureKind::Invalid, e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        if let Some(follower) = follower {
            lock(&self.starting).insert(id, follower);
        }
        let sent = lock(&self.writer)
            .as_ref()
            .is_some_and(|(_, w)| w.send(frame).is_ok());
        if !sent {
            self.forget(id);
            return Err(stopped());
        }
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(answer)) => match answer.error {
                Some(failure) => Err(failure),
                None => Ok(answer.ok),
            },
            Ok(Err(_)) => Err(stopped()),
            Err(_) => {
                self.forget(id);
                Err(Failure::new(
                    FailureKind::Io,
                    format!(
                        "the sandbox did not answer within {} s",
                        CALL_TIMEOUT.as_secs()
                    ),
                ))
            }
        }
    }

    /// A number for a new watch, whose changes go to `to` from now on.
    pub fn add_watch(&self, to: WatchSender) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.watches).insert(id, to);
        id
    }

    pub fn remove_watch(&self, id: u64) {
        lock(&self.watches).remove(&id);
    }

    fn forget(&self, id: u64) {
        lock(&self.pending).remove(&id);
        lock(&self.starting).remove(&id);
    }

    /// Follows a new VM's channel: calls go to `writer` (from a thread of their own: the
    /// guest may be slow to read), frames are taken from `frames` until it ends.
    pub fn connect(self: &Arc<Self>, writer: UnixStream, frames: Frames) {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut writer = writer;
            while let Ok(frame) = rx.recv() {
                if write_frame(&mut writer, Kind::Call, &frame)
                    .and_then(|()| writer.flush())
                    .is_err()
                {
                    return;
                }
            }
        });
        let link = self.links.fetch_add(1, Ordering::Relaxed) + 1;
        *lock(&self.writer) = Some((link, tx));
        tokio::spawn(self.clone().follow(link, frames));
    }

    /// Stops sending: the VM is being saved or ended. Calls not answered yet stay pending
    /// (a resumed guest answers them) until [`Calls::end`].
    pub fn disconnect(&self) {
        *lock(&self.writer) = None;
    }

    /// The sandbox is gone: every call fails and every followed process ends (killed).
    pub fn end(&self) {
        self.disconnect();
        lock(&self.pending).clear();
        lock(&self.starting).clear();
        lock(&self.watches).clear();
        let killed = ProcessExit {
            exit_code: None,
            signal: Some(libc::SIGKILL),
        };
        for (_, follower) in lock(&self.followed).drain() {
            let _ = follower.ended.send(Some(killed));
        }
    }

    /// Takes `link`'s frames; a channel that ends while still the one calls go to (the VM
    /// died, not saved) ends the sandbox's calls and processes.
    async fn follow(self: Arc<Self>, link: u64, mut frames: Frames) {
        while let Some(Ok((kind, payload))) = frames.recv().await {
            match kind {
                Kind::Answer => {
                    let Ok(answer) = serde_json::from_slice::<Answer>(&payload) else {
                        tracing::warn!("a sandbox's guest sent an invalid answer");
                        continue;
                    };
                    if let Some(follower) = lock(&self.starting).remove(&answer.id) {
                        let pid = answer.ok["pid"]
                            .as_u64()
                            .and_then(|p| u32::try_from(p).ok());
                        if let Some(pid) = pid.filter(|_| answer.error.is_none()) {
                            lock(&self.followed).insert(pid, follower);
                        }
                    }
                    if let Some(tx) = lock(&self.pending).remove(&answer.id) {
                        let _ = tx.send(answer);
                    }
                }
                Kind::Output => {
                    let Some((pid, stream, bytes)) = parse_output(&payload) else {
                        continue;
                    };
                    let stream = match stream {
                        vulcan_agent::held::STDERR => LogStream::Stderr,
                        _ => LogStream::Stdout,
                    };
                    let output = lock(&self.followed).get(&pid).map(|f| f.output.clone());
                    if let Some(output) = output {
                        output.chunk(stream, bytes);
                    }
                }
                Kind::Ended => {
                    let Ok(ended) = serde_json::from_slice::<ProcEnded>(&payload) else {
                        continue;
                    };
                    if let Some(follower) = lock(&self.followed).remove(&ended.pid) {
                        let _ = follower.ended.send(Some(ProcessExit {
                            exit_code: ended.code,
                            signal: ended.signal,
                        }));
                    }
                }
                Kind::Changed => {
                    let Ok(changed) = serde_json::from_slice::<Changed>(&payload) else {
                        continue;
                    };
                    let mut watches = lock(&self.watches);
                    let Some(to) = watches.get(&changed.watch) else {
                        continue;
                    };
                    let event = event_of(&changed);
                    if event.is_err() || to.send(event).is_err() {
                        watches.remove(&changed.watch);
                    }
                }
                other => {
                    tracing::warn!(?other, "a sandbox's guest sent an unexpected frame");
                }
            }
        }
        let current = lock(&self.writer).as_ref().map(|(l, _)| *l);
        if current == Some(link) {
            self.end();
        }
    }
}

/// A change the agent reported, or the end of its watch.
fn event_of(changed: &Changed) -> Result<FileEvent, FileError> {
    if let Some(failure) = &changed.error {
        let kind = match failure.kind {
            FailureKind::NotFound => FileErrorKind::NotFound,
            FailureKind::Invalid => FileErrorKind::Invalid,
            _ => FileErrorKind::Io,
        };
        return Err(FileError::new(kind, failure.message.clone()));
    }
    let kind = match changed.kind.as_str() {
        "create" => FileEventKind::Create,
        "write" => FileEventKind::Write,
        "remove" => FileEventKind::Remove,
        "rename" => FileEventKind::Rename,
        "chmod" => FileEventKind::Chmod,
        other => {
            return Err(FileError::new(
                FileErrorKind::Io,
                format!("the sandbox's agent reported a change of unknown kind {other:?}"),
            ))
        }
    };
    Ok(FileEvent {
        name: changed.name.clone(),
        kind,
    })
}
