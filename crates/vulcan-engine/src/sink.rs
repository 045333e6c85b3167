//! The per-workload log sink handed to a backend: numbers lines, enforces the log limits,
//! publishes to the broker and queues every kept line for persistence.

use std::sync::Mutex;
use std::time::Instant;

use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use vulcan_domain::{LogLine, LogSink, LogStream, Preparation};

use crate::secrets::Redactor;
use crate::{LogBroker, LogLimits};

struct State {
    seq: u64,
    bytes: u64,
    dropped: u64,
    full: bool,
    persist: Option<mpsc::UnboundedSender<LogLine>>,
    /// Masks the workload's secret values in every line it prints.
    redactor: Option<Redactor>,
}

/// The moment a run's code started, and how its backend prepared it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CodeStarted {
    pub(crate) at: Instant,
    pub(crate) how: Preparation,
}

/// A bounded, ordered log for one workload, and the moment its code started.
pub(crate) struct WorkloadLogSink {
    id: String,
    limits: LogLimits,
    broker: LogBroker,
    state: Mutex<State>,
    code_started: watch::Sender<Option<CodeStarted>>,
}

impl WorkloadLogSink {
    /// Returns the sink and the receiving end of its persistence queue.
    pub fn new(
        id: &str,
        limits: LogLimits,
        broker: LogBroker,
    ) -> (Self, mpsc::UnboundedReceiver<LogLine>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = WorkloadLogSink {
            id: id.to_owned(),
            limits,
            broker,
            state: Mutex::new(State {
                seq: 0,
                bytes: 0,
                dropped: 0,
                full: false,
                persist: Some(tx),
                redactor: None,
            }),
            code_started: watch::channel(None).0,
        };
        (sink, rx)
    }

    /// When the backend said the workload's code started, and how it prepared the run
    /// (`None` until it does).
    pub fn code_started_at(&self) -> watch::Receiver<Option<CodeStarted>> {
        self.code_started.subscribe()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a line regardless of limits (the engine's own notes and markers).
    fn record(&self, state: &mut State, stream: LogStream, line: String) {
        state.seq += 1;
        state.bytes += line.len() as u64;
        let line = LogLine {
            seq: state.seq,
            stream,
            line,
            created_at: OffsetDateTime::now_utc(),
        };
        self.broker.publish(&self.id, line.clone());
        if let Some(tx) = &state.persist {
            let _ = tx.send(line);
        }
    }

    /// Masks these secret values in every line from now on.
    pub fn redact(&self, redactor: Redactor) {
        self.state().redactor = (!redactor.is_empty()).then_some(redactor);
    }

    /// Records a note from the engine itself, on the `backend` stream.
    pub fn note(&self, line: String) {
        let mut state = self.state();
        self.record(&mut state, LogStream::Backend, line);
    }

    /// Ends the log: notes how many lines were dropped and closes the persistence queue.
    pub fn close(&self) -> u64 {
        let mut state = self.state();
        let dropped = state.dropped;
        if dropped > 0 {
            self.record(
                &mut state,
                LogStream::Backend,
                format!("[vulcan] {dropped} log lines were dropped after the limit"),
            );
        }
        state.persist = None;
        dropped
    }
}

impl LogSink for WorkloadLogSink {
    fn code_started(&self, how: Preparation) {
        self.code_started.send_if_modified(|at| {
            let first = at.is_none();
            if first {
                *at = Some(CodeStarted {
                    at: Instant::now(),
                    how,
                });
            }
            first
        });
    }

    fn emit(&self, stream: LogStream, mut line: String) {
        let mut state = self.state();
        if let Some(redactor) = &state.redactor {
            line = redactor.apply(&line);
        }
        if line.len() > self.limits.max_line_bytes {
            let mut cut = self.limits.max_line_bytes;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" [vulcan: line truncated]");
        }
        if state.full {
            state.dropped += 1;
            return;
        }
        if state.seq >= self.limits.max_lines
            || state.bytes + line.len() as u64 > self.limits.max_bytes
        {
            state.full = true;
            state.dropped += 1;
            let marker = format!(
                "[vulcan] log truncated: this workload reached the limit of {} lines or {} bytes; further lines are dropped",
                self.limits.max_lines, self.limits.max_bytes
            );
            self.record(&mut state, LogStream::Backend, marker);
            return;
        }
        self.record(&mut state, stream, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_at_the_limit_with_one_marker_and_a_count() {
        let limits = LogLimits {
            max_lines: 3,
            max_bytes: 1 << 20,
            max_line_bytes: 8,
        };
        let broker = LogBroker::new();
        broker.open("w");
        let (sink, mut rx) = WorkloadLogSink::new("w", limits, broker);
        for i in 0..1000 {
            sink.emit(LogStream::Stdout, format!("line {i}"));
        }
        assert_eq!(sink.close(), 997);
        let mut lines = Vec::new();
        while let Ok(l) = rx.try_recv() {
            lines.push(l);
        }
        let texts: Vec<_> = lines.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(&texts[..3], ["line 0", "line 1", "line 2"]);
        assert!(texts[3].contains("log truncated"), "{}", texts[3]);
        assert!(
            texts[4].contains("997 log lines were dropped"),
            "{}",
            texts[4]
        );
        assert_eq!(lines.len(), 5);
        let seqs: Vec<_> = lines.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let limits = LogLimits {
            max_lines: 10,
            max_bytes: 1 << 20,
            max_line_bytes: 5,
        };
        let (sink, mut rx) = WorkloadLogSink::new("w", limits, LogBroker::new());
        sink.emit(LogStream::Stderr, "ééééé".into());
        let line = rx.try_recv().unwrap();
        assert_eq!(line.line, "éé [vulcan: line truncated]");
        assert_eq!(line.stream, LogStream::Stderr);
    }
}
