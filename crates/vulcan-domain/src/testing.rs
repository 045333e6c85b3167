//! For tests of adapters (feature `testing`): a [`RecordingSink`] to hand a backend in
//! place of the engine's sink, [`spec`], a workload's spec with default resources, and
//! [`run`], one run as the engine makes it (execute, then cleanup).

use std::sync::{Arc, Mutex};

use crate::{
    Backend, Code, Isolation, LogSink, LogStream, Preparation, Resources, Runtime, WorkloadResult,
    WorkloadSpec,
};

/// Keeps every line a backend emits, in order, and counts its `code_started` calls.
#[derive(Default)]
pub struct RecordingSink {
    lines: Mutex<Vec<(LogStream, String)>>,
    started: Mutex<Vec<Preparation>>,
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
        self.preparations().len() as u32
    }

    /// How the backend said it prepared each run, in order.
    pub fn preparations(&self) -> Vec<Preparation> {
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl LogSink for RecordingSink {
    fn emit(&self, stream: LogStream, line: String) {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((stream, line));
    }

    fn code_started(&self, how: Preparation) {
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(how);
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
            network: Default::default(),
        },
        input: serde_json::Value::Null,
        note: None,
        invocation: None,
        async_policy: None,
        volumes: Vec::new(),
        node: None,
        trace: None,
        attached: Vec::new(),
    }
}

/// Runs `spec` on `backend` to its end with a recording sink, then cleans up after it, as
/// the engine does; panics if the backend could not run it at all.
pub async fn run(
    backend: &dyn Backend,
    spec: WorkloadSpec,
) -> (WorkloadResult, Arc<RecordingSink>) {
    let sink = Arc::new(RecordingSink::default());
    let id = spec.id.clone();
    let result = backend
        .execute(spec, sink.clone())
        .await
        .unwrap_or_else(|e| panic!("the backend could not run {id}: {e}"));
    backend
        .cleanup(&id)
        .await
        .unwrap_or_else(|e| panic!("cleanup after {id} failed: {e}"));
    (result, sink)
}
