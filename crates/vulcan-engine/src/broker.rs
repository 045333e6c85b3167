//! Live fan-out of log lines to any number of subscribers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use vulcan_domain::LogLine;

/// Capacity of each workload's broadcast channel; a subscriber that falls further behind
/// catches up from the topic's buffer (see [`LogBroker::lines_after`]).
const CHANNEL_CAPACITY: usize = 1024;

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq)]
pub enum LogEvent {
    Line(LogLine),
    /// The workload is terminal and every line is persisted.
    Done,
}

/// A live subscription: the lines produced before it started, then the live receiver.
pub struct Subscription {
    pub backlog: Vec<LogLine>,
    pub receiver: broadcast::Receiver<LogEvent>,
}

struct Topic {
    /// Every line so far; bounded by the engine's per-workload log limits.
    lines: Vec<LogLine>,
    sender: broadcast::Sender<LogEvent>,
}

/// One topic per workload that is not yet terminal.
#[derive(Clone, Default)]
pub struct LogBroker {
    topics: Arc<Mutex<HashMap<String, Topic>>>,
}

impl LogBroker {
    pub fn new() -> Self {
        Self::default()
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, HashMap<String, Topic>> {
        // A panic while holding this lock cannot leave a topic half-written.
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the topic of a workload that has been accepted.
    pub fn open(&self, id: &str) {
        self.topics().entry(id.to_owned()).or_insert_with(|| Topic {
            lines: Vec::new(),
            sender: broadcast::channel(CHANNEL_CAPACITY).0,
        });
    }

    pub fn publish(&self, id: &str, line: LogLine) {
        if let Some(topic) = self.topics().get_mut(id) {
            // No subscriber is not an error.
            let _ = topic.sender.send(LogEvent::Line(line.clone()));
            topic.lines.push(line);
        }
    }

    /// Ends the topic: subscribers get [`LogEvent::Done`] after the last line.
    pub fn close(&self, id: &str) {
        if let Some(topic) = self.topics().remove(id) {
            let _ = topic.sender.send(LogEvent::Done);
        }
    }

    /// Subscribes to a workload's live lines, or `None` if it has no open topic (it is
    /// terminal: read its persisted lines instead).
    pub fn subscribe(&self, id: &str) -> Option<Subscription> {
        let topics = self.topics();
        let topic = topics.get(id)?;
        Some(Subscription {
            backlog: topic.lines.clone(),
            receiver: topic.sender.subscribe(),
        })
    }

    /// Lines after `seq`, for a subscriber that lagged; `None` if the topic is closed.
    pub fn lines_after(&self, id: &str, seq: u64) -> Option<Vec<LogLine>> {
        let topics = self.topics();
        let topic = topics.get(id)?;
        Some(
            topic
                .lines
                .iter()
                .filter(|l| l.seq > seq)
                .cloned()
                .collect(),
        )
    }

    /// How many workloads have an open topic.
    pub fn open_topics(&self) -> usize {
        self.topics().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vulcan_domain::LogStream;

    fn line(seq: u64) -> LogLine {
        LogLine {
            seq,
            stream: LogStream::Stdout,
            line: format!("l{seq}"),
            created_at: time::OffsetDateTime::now_utc(),
        }
    }

    #[tokio::test]
    async fn every_subscriber_sees_the_backlog_then_live_lines_then_done() {
        let broker = LogBroker::new();
        broker.open("w");
        broker.publish("w", line(1));
        let mut a = broker.subscribe("w").unwrap();
        let mut b = broker.subscribe("w").unwrap();
        broker.publish("w", line(2));
        broker.close("w");
        for sub in [&mut a, &mut b] {
            let backlog: Vec<u64> = sub.backlog.iter().map(|l| l.seq).collect();
            assert_eq!(backlog, [1]);
            match sub.receiver.recv().await.unwrap() {
                LogEvent::Line(l) => assert_eq!(l.line, "l2"),
                other => panic!("expected line 2, got {other:?}"),
            }
            assert_eq!(sub.receiver.recv().await.unwrap(), LogEvent::Done);
        }
        assert!(broker.subscribe("w").is_none(), "closed topics are gone");
        assert_eq!(broker.open_topics(), 0);
    }

    #[test]
    fn a_lagging_subscriber_can_catch_up_from_the_buffer() {
        let broker = LogBroker::new();
        broker.open("w");
        for seq in 1..=5 {
            broker.publish("w", line(seq));
        }
        let rest: Vec<u64> = broker
            .lines_after("w", 3)
            .unwrap()
            .iter()
            .map(|l| l.seq)
            .collect();
        assert_eq!(rest, [4, 5]);
        assert!(broker.lines_after("other", 0).is_none());
    }
}
