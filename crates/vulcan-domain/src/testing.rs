//! For tests of adapters (feature `testing`): a [`RecordingSink`] to hand a backend in
//! place of the engine's sink, and [`spec`], a workload's spec with default resources.

use std::sync::Mutex;

use crate::{Code, Isolation, LogSink, LogStream, Resources, Runtime, WorkloadSpec};

/// Keeps every line a backend emits, in order, and counts its `code_started` calls.
#[derive(Default)]
pub struct RecordingSink {
    lines: Mutex<Vec<(LogStream, String)>>,
    started: Mutex<u32>,
}

impl RecordingSink {
    /// The lines emitted so far, with their streams.
    pub fn lines(&self) -> Vec<(LogStream, String)> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The lines of one stream, in order.
    pub fn stream(&self, stream: LogStream) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, line)| line)
            .collect()
    }

    /// How many times the backend said the workload's own code started.
    pub fn code_started_calls(&self) -> u32 {
        *self.started.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LogSink for RecordingSink {
    fn emit(&self, stream: LogStream, line: String) {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((stream, line));
    }

    fn code_started(&self) {
        *self.started.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }
}

/// The spec of workload `id` of the default tenant: `code` in `runtime` under `isolation`,
/// default resources, no input. Set the other fields on the result.
pub fn spec(id: &str, runtime: Runtime, isolation: Isolation, code: &str) -> WorkloadSpec {
    WorkloadSpec {
        id: id.to_owned(),
        tenant: crate::DEFAULT_TENANT.to_owned(),
        run: Code {
            runtime,
            isolation,
            code: Some(code.to_owned()),
            code_archive: None,
            image: None,
            command: None,
            env: Default::default(),
            secrets: Vec::new(),
            resources: Resources::default(),
        },
        input: serde_json::Value::Null,
        note: None,
        invocation: None,
    }
}
