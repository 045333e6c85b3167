//! One claimed workload's run on this node: marked running (only by the claimant), handed
//! to its backend with the timeout counting from when its code starts, stopped on a kill,
//! a shutdown or the loss of the store, its log persisted in order, its end recorded and
//! told to every node.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;
use vulcan_domain::{
    Expect, LogLine, Signal, StoreError, TerminalUpdate, Workload, WorkloadResult, WorkloadSpec,
    WorkloadStatus,
};

use crate::engine::{ended, now, Active, Inner, Stop};
use crate::sink::WorkloadLogSink;
use crate::slots::Slot;

/// How one run ended, before it is written down.
enum Ending {
    /// To be recorded with the given status (and its run time, if its code ran).
    Finished {
        update: Box<TerminalUpdate>,
        ran_for: Option<Duration>,
        /// Whether the store has it `running` on this node (else only claimed by it).
        running: bool,
    },
    /// Someone else already ended it (a kill before it started, housekeeping), or another
    /// node holds the claim now: nothing to record.
    NotOurs,
    /// Shutdown came before it started: it goes back to the queue.
    LeftPending,
    /// Stopped because this node lost the store: the others record how it ended.
    Abandoned,
}

/// Starts the run of a workload this node has claimed, holding `slot`.
pub(crate) fn launch(inner: &Arc<Inner>, workload: Workload, spec: WorkloadSpec, slot: Slot) {
    let (stop, stop_rx) = watch::channel(None);
    let (done_tx, done) = watch::channel(None);
    inner.broker.open(&workload.id);
    inner
        .active()
        .insert(workload.id.clone(), Active { stop, done });
    // The run continues the trace of its admission, on whichever node admitted it.
    let span = tracing::info_span!(
        "run",
        vulcan.workload = %workload.id,
        vulcan.node = %inner.config.node_id,
        trace_id = tracing::field::Empty,
    );
    crate::traces::continue_trace(&span, spec.trace.as_deref());
    if let Some(trace_id) = spec.trace.as_deref().and_then(crate::traces::trace_id) {
        span.record("trace_id", trace_id);
    }
    let run = run(inner.clone(), workload, spec, stop_rx, done_tx).instrument(span);
    tokio::spawn(async move {
        run.await;
        // The slot is free once the run is recorded: the dispatcher claims the next one.
        drop(slot);
    });
}

async fn run(
    inner: Arc<Inner>,
    workload: Workload,
    spec: WorkloadSpec,
    stop: watch::Receiver<Option<Stop>>,
    done: watch::Sender<Option<Workload>>,
) {
    let id = workload.id.clone();
    // Whatever happens below, even a panic, the workload leaves the active map and its
    // live subscribers are told the stream is over.
    let _wound_up = WindUp {
        inner: inner.clone(),
        id: id.clone(),
    };
    let backend_name = spec.run.isolation.as_str();
    let (sink, persist) = WorkloadLogSink::new(&id, inner.config.logs, inner.broker.clone());
    let sink = Arc::new(sink);
    let writer = tokio::spawn(persist_logs(inner.clone(), id.clone(), persist));
    if let Some(note) = &spec.note {
        sink.note(note.clone());
    }

    let followed = spec.async_policy.is_some();
    let ending = execute(&inner, &workload, spec, sink.clone(), stop).await;
    let dropped = sink.close();
    inner.metrics.log_lines_dropped(dropped);
    if matches!(ending, Ending::Abandoned) {
        // The store is out of reach: nothing more is written from here.
        writer.abort();
    }
    // History is complete before the status turns terminal: what the writer has not
    // stored yet goes in with the end.
    let last_lines = writer.await.unwrap_or_default();

    let mut told = false;
    let last = match ending {
        Ending::Finished {
            mut update,
            ran_for,
            running,
        } => {
            // A run ends on the node running it; a failure before the start, only while
            // this node still holds the claim.
            let node = inner.config.node_id.clone();
            let expect = if running {
                Expect::RunningOn(node)
            } else {
                Expect::ClaimedBy(node)
            };
            update.last_lines = last_lines;
            let recorded = inner
                .store
                .finish(&id, &update, &expect)
                .instrument(tracing::info_span!("store.finish"))
                .await;
            if recorded.is_err() {
                // The end was not ours to record, but the lines are its history still.
                store_lines(&inner, &id, &update.last_lines).await;
            }
            match recorded {
                Ok(w) => {
                    // The store told every other node when it committed.
                    told = true;
                    let secs = ran_for.map(|d| d.as_secs_f64());
                    inner
                        .metrics
                        .workload_finished(backend_name, w.status.as_str(), secs);
                    if let Some(usage) = update.usage.filter(|_| ran_for.is_some()) {
                        inner.metrics.workload_usage(backend_name, &usage);
                    }
                    inner.publish(crate::events::Event::workload(&inner, "finished", &w));
                    Some(w)
                }
                Err(e) => {
                    tracing::warn!(workload = %id, error = %e, "could not record the end of a workload");
                    if ran_for.is_some() {
                        inner
                            .metrics
                            .workload_finished(backend_name, "unrecorded", None);
                    }
                    None
                }
            }
        }
        Ending::LeftPending => {
            store_lines(&inner, &id, &last_lines).await;
            let keep: Vec<String> = inner
                .active()
                .keys()
                .filter(|k| **k != id)
                .cloned()
                .collect();
            if let Err(e) = inner
                .store
                .unclaim(&inner.config.node_id, &keep, now())
                .await
            {
                tracing::warn!(workload = %id, error = %e, "could not give back a claimed workload");
            }
            None
        }
        Ending::NotOurs => {
            store_lines(&inner, &id, &last_lines).await;
            None
        }
        Ending::Abandoned => {
            tracing::warn!(workload = %id, "stopped without recording its end: this node lost the store");
            None
        }
    };
    let last = match last {
        Some(w) => Some(w),
        None if inner.is_isolated() => None,
        None => inner.store.get(&id).await.ok(),
    };
    inner.broker.close(&id);
    inner.active().remove(&id);
    if told {
        inner.handle(Signal::Ended(id));
    } else {
        inner.signal(Signal::Ended(id));
    }
    if followed {
        // What follows it (a retry, a callback) need not wait for the next look.
        inner.followup_due.notify_one();
    }
    done.send_replace(last.or(Some(workload)));
}

/// Waits until `stop` carries a reason, and gives it.
async fn stopped(mut stop: watch::Receiver<Option<Stop>>) -> Stop {
    let reason = stop
        .wait_for(Option::is_some)
        .await
        .map(|reason| reason.clone());
    match reason {
        Ok(Some(reason)) => reason,
        // The engine keeps the sender while the run is active.
        _ => std::future::pending().await,
    }
}

/// Marks the workload running (unless the store has it running already, since its
/// admission) and runs it to its end.
async fn execute(
    inner: &Inner,
    workload: &Workload,
    spec: WorkloadSpec,
    sink: Arc<WorkloadLogSink>,
    stop: watch::Receiver<Option<Stop>>,
) -> Ending {
    let id = spec.id.clone();
    let tenant = workload.tenant.as_str();
    let started = workload.status == WorkloadStatus::Running;
    // An end before the code ran: recorded with no run time.
    let unrun = |update: TerminalUpdate| Ending::Finished {
        update: Box::new(update),
        ran_for: None,
        running: started,
    };
    if let Some(reason) = stop.borrow().clone() {
        return unrun(ended(
            reason.status,
            format!("{} before it started", reason.error),
        ));
    }
    // A shutdown gives back what it has not started; what started runs in its grace.
    if *inner.stopping.borrow() && !started {
        return Ending::LeftPending;
    }
    let mut spec = spec;
    if let Err(e) = crate::functions::fill_code(&inner.functions, &mut spec).await {
        let why = format!("could not load the function's code: {e}");
        return unrun(ended(WorkloadStatus::Failed, why));
    }
    // Secret values join the environment here, on the node that runs the code, and are
    // masked in everything it prints.
    let opened = match crate::secrets::open_for_run(
        inner.secrets.as_ref(),
        inner.config.keyring.as_ref(),
        tenant,
        &spec.run.secrets,
    )
    .await
    {
        Ok(opened) => opened,
        Err(e) => {
            let why = format!("could not give the workload its secrets: {e}");
            return unrun(ended(WorkloadStatus::Failed, why));
        }
    };
    spec.run.env.extend(opened.env);
    if let Some(invocation) = spec.invocation.as_mut() {
        invocation.secrets_seen = opened.versions;
    }
    let redactor = opened.redactor;
    sink.redact(redactor.clone());
    // Its volumes' files: on this node, the one it was admitted for.
    match inner.volume_attachments(tenant, &spec.volumes).await {
        Ok(attached) => spec.attached = attached,
        Err(e) => {
            let why = format!("could not mount its volumes: {e}");
            return unrun(ended(WorkloadStatus::Failed, why));
        }
    }
    let Some(backend) = inner.registry.get(spec.run.isolation).cloned() else {
        let why = format!("this node has no {} backend", spec.run.isolation);
        return unrun(ended(WorkloadStatus::Failed, why));
    };
    if started {
        inner.publish(crate::events::Event::workload(inner, "started", workload));
    } else {
        match inner.store.start(&id, &inner.config.node_id, now()).await {
            Ok(w) => inner.publish(crate::events::Event::workload(inner, "started", &w)),
            Err(StoreError::InvalidTransition(_)) => return Ending::NotOurs,
            Err(e) => {
                let why = format!("could not mark the workload running: {e}");
                return unrun(ended(WorkloadStatus::Failed, why));
            }
        }
    }
    // Its code joins the trace (not a warm instance's: that one was started for another).
    let run_trace = crate::traces::traceparent_of(&tracing::Span::current());
    let warm = spec
        .invocation
        .as_ref()
        .is_some_and(|i| i.reuse || i.handler);
    if let Some(traceparent) = run_trace.clone().filter(|_| !warm) {
        spec.run.env.insert("TRACEPARENT".into(), traceparent);
    }
    let backend_name = spec.run.isolation.as_str();
    inner.metrics.workload_started(backend_name);
    let started = Instant::now();
    let timeout_s = spec.run.resources.timeout_s;
    let preparation = backend.preparation_timeout();
    let code_started = sink.code_started_at();
    // A backend that panics fails its workload, not the server.
    let run = AssertUnwindSafe(backend.execute(spec, sink.clone())).catch_unwind();
    let (status, result) = tokio::select! {
        r = run => match r {
            Ok(Ok(result)) => {
                let status = if result.succeeded() { WorkloadStatus::Completed } else { WorkloadStatus::Failed };
                (status, result)
            }
            Ok(Err(e)) => (WorkloadStatus::Failed, WorkloadResult::failed(e.to_string())),
            Err(panic) => {
                let what = panic_message(panic.as_ref());
                tracing::error!(workload = %id, backend = backend_name, panic = %what, "a backend panicked");
                (WorkloadStatus::Failed, WorkloadResult::failed(format!(
                    "the {backend_name} backend failed unexpectedly ({what}); the workload was stopped"
                )))
            }
        },
        missed = deadline(code_started.clone(), preparation, Duration::from_secs(timeout_s.into())) => match missed {
            Missed::Preparation => (WorkloadStatus::Failed, WorkloadResult::failed(format!(
                "preparation took longer than {}: the {backend_name} backend was still getting the workload ready (booting a VM, pulling an image, starting a process) and its code never started",
                spoken(preparation)
            ))),
            Missed::Run => (WorkloadStatus::Failed, WorkloadResult::failed(format!("timed out after {timeout_s} s"))),
        },
        reason = stopped(stop) => {
            if !reason.record {
                let _ = backend.cleanup(&id).await;
                return Ending::Abandoned;
            }
            (reason.status, WorkloadResult::failed(reason.error))
        }
    };
    let ran_for = started.elapsed();
    let prepared = *code_started.borrow();
    let prepared_in = prepared.map(|c| c.at.duration_since(started));
    if let Some(c) = prepared {
        let (began, ready) = (
            crate::traces::wall_clock(started),
            crate::traces::wall_clock(c.at),
        );
        let path = opentelemetry::KeyValue::new("vulcan.preparation", c.how.as_str());
        let trace = run_trace.as_deref();
        crate::traces::record("preparation", trace, began, ready, vec![path]);
        let ended = std::time::SystemTime::now();
        let outcome = opentelemetry::KeyValue::new("vulcan.status", status.as_str());
        crate::traces::record("execution", trace, ready, ended, vec![outcome]);
    }
    if let (Some(c), Some(took)) = (prepared, prepared_in) {
        inner
            .metrics
            .workload_prepared(backend_name, c.how.as_str(), took.as_secs_f64());
    }
    if let Some(prepared) = prepared_in.filter(|p| *p >= NOTABLE_PREPARATION) {
        sink.note(format!(
            "[vulcan] prepared in {} ms; the code then ran for {} ms (the timeout counts from when it started)",
            prepared.as_millis(),
            ran_for.saturating_sub(prepared).as_millis()
        ));
    }
    if let Err(e) = backend.cleanup(&id).await {
        sink.note(format!("[vulcan] cleanup after the workload failed: {e}"));
        tracing::warn!(workload = %id, error = %e, "backend cleanup failed");
    }
    let mut update = finish_update(inner, status, result, ran_for, prepared_in);
    if !redactor.is_empty() {
        update.output = update.output.map(|o| redactor.apply(&o));
        update.error = update.error.map(|e| redactor.apply(&e));
    }
    Ending::Finished {
        update: Box::new(update),
        ran_for: Some(ran_for),
        running: true,
    }
}

/// The terminal update of a run: its output (less its final newline, cut to the limit),
/// and an error for every failure.
fn finish_update(
    inner: &Inner,
    mut status: WorkloadStatus,
    result: vulcan_domain::WorkloadResult,
    ran_for: Duration,
    prepared_in: Option<Duration>,
) -> TerminalUpdate {
    let mut error = result.error;
    let mut output = result.output;
    // A program's output is what it printed, without the final newline (as `$(...)` in
    // a shell); a returned value's JSON never ends with one.
    if output.ends_with('\n') {
        output.pop();
    }
    let max_output = inner.config.limits.max_output_bytes;
    if output.len() > max_output {
        truncate_on_char(&mut output, max_output);
        status = WorkloadStatus::Failed;
        error = Some(format!(
            "output is over the limit of {max_output} bytes; it was cut to the limit"
        ));
    }
    if status == WorkloadStatus::Failed && error.is_none() {
        error = Some(match result.exit_code {
            Some(code) => format!("exited with code {code}"),
            None => "failed without an error message".into(),
        });
    }
    TerminalUpdate {
        status,
        output: Some(output),
        exit_code: result.exit_code,
        error,
        finished_at: now(),
        duration_ms: Some(ran_for.as_millis() as u64),
        prepare_ms: prepared_in.map(|p| p.as_millis() as u64),
        usage: result.usage,
        last_lines: Vec::new(),
    }
}

fn truncate_on_char(text: &mut String, max: usize) {
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
}

/// Preparation shorter than this is not worth a log line of its own.
const NOTABLE_PREPARATION: Duration = Duration::from_millis(250);

/// Which bound a run missed.
enum Missed {
    /// Its code never started within the backend's preparation bound.
    Preparation,
    /// Its code ran past the workload's timeout.
    Run,
}

/// Resolves when a run misses a bound: preparation until the code starts, then the
/// workload's own timeout from that moment.
async fn deadline(
    mut code_started: watch::Receiver<Option<crate::sink::CodeStarted>>,
    preparation: Duration,
    timeout: Duration,
) -> Missed {
    let started = tokio::time::timeout(preparation, code_started.wait_for(Option::is_some))
        .await
        .map(|seen| seen.is_ok());
    match started {
        Ok(true) => {
            tokio::time::sleep(timeout).await;
            Missed::Run
        }
        // The sink outlives the run: its sender cannot be gone while this is polled.
        Ok(false) => std::future::pending().await,
        Err(_) => Missed::Preparation,
    }
}

/// A bound as a person would say it: `300 ms`, `55 s`.
fn spoken(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs())
    }
}

/// What a panic said, for the workload's error.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Removes a run from the active map and ends its live log stream when the run's task
/// ends in any way: normally (then it is already done) or by a panic.
struct WindUp {
    inner: Arc<Inner>,
    id: String,
}

impl Drop for WindUp {
    fn drop(&mut self) {
        if self.inner.active().remove(&self.id).is_some() {
            self.inner.broker.close(&self.id);
        }
    }
}

/// How long a log line may wait for company before it is stored: lines go to the store
/// in batches at least this often, and the last ones with the workload's end.
const LOG_FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Most lines stored in one batch.
const LOG_BATCH_MAX: usize = 256;

/// Writes a workload's log lines to the store in batches, in order, until the sink closes
/// ([`LOG_FLUSH_EVERY`], [`LOG_BATCH_MAX`]); after each batch, nodes following the workload
/// are told. Returns the lines not stored yet: they go in with the workload's end.
async fn persist_logs(
    inner: Arc<Inner>,
    id: String,
    mut lines: mpsc::UnboundedReceiver<LogLine>,
) -> Vec<LogLine> {
    let mut batch = Vec::with_capacity(LOG_BATCH_MAX);
    // Wait for a first line, then for more until the batch is due or full.
    while lines.recv_many(&mut batch, LOG_BATCH_MAX).await > 0 {
        let due = tokio::time::Instant::now() + LOG_FLUSH_EVERY;
        while batch.len() < LOG_BATCH_MAX {
            let room = LOG_BATCH_MAX - batch.len();
            match tokio::time::timeout_at(due, lines.recv_many(&mut batch, room)).await {
                Ok(0) => return batch,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        store_lines(&inner, &id, &batch).await;
        batch.clear();
    }
    batch
}

/// Stores `lines` of workload `id` and tells the nodes following it.
async fn store_lines(inner: &Inner, id: &str, lines: &[LogLine]) {
    if lines.is_empty() {
        return;
    }
    match inner.logs.append_logs(id, lines).await {
        Ok(()) => inner.signal(Signal::Logs(id.to_owned())),
        Err(e) => tracing::warn!(workload = %id, error = %e, "could not persist log lines"),
    }
}
