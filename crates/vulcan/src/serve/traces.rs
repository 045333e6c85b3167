//! Spans exported over OTLP (HTTP/protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; `OTEL_SERVICE_NAME` names the service
//! (`vulcan` otherwise) and `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG` pick the
//! sampler, as the SDK reads them. Finished spans go into a bounded queue that one task
//! empties in batches: a full queue, or a collector that refuses or does not answer, drops
//! spans (counted in `vulcan_trace_spans_total{outcome="dropped"}`) and never holds up a
//! request.

use std::sync::Mutex;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    SdkTracer, SdkTracerProvider, Span, SpanData, SpanExporter as _, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use tokio::sync::mpsc;

/// Finished spans waiting to be sent, at most.
const QUEUE: usize = 4096;
/// Spans sent in one request, at most.
const BATCH: usize = 512;
/// How long a batch waits for more spans before it is sent.
const LINGER: Duration = Duration::from_millis(200);
/// How long the collector has to answer one batch.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether traces are to be exported: an OTLP endpoint is set.
pub fn wanted() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|v| !v.trim().is_empty()))
}

/// The exporting half, started once the async runtime runs ([`Exporting::start`]).
pub struct Exporting {
    provider: SdkTracerProvider,
    queue: std::sync::Arc<Queue>,
}

/// A tracer for the `tracing` layer, and what exports its spans.
pub fn install(node: &str) -> Result<(SdkTracer, Exporting), String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("the OTLP exporter could not be set up: {e}"))?;
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty());
    let resource = Resource::builder();
    let resource = if named {
        resource
    } else {
        resource.with_service_name("vulcan")
    };
    let resource = resource
        .with_attribute(KeyValue::new("service.instance.id", node.to_owned()))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let (sender, receiver) = mpsc::channel(QUEUE);
    let queue = std::sync::Arc::new(Queue {
        sender,
        pending: Mutex::new(Some((exporter, receiver))),
    });
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Shared(queue.clone()))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("vulcan");
    opentelemetry::global::set_tracer_provider(provider.clone());
    vulcan_engine::traces::set_enabled(true);
    Ok((tracer, Exporting { provider, queue }))
}

impl Exporting {
    /// Starts sending spans (on the current runtime) until [`Exporting::stop`].
    pub fn start(&self) -> Option<Sending> {
        let (exporter, receiver) = self.queue.pending.lock().ok()?.take()?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(send(exporter, receiver, stopped));
        Some(Sending { stop, task })
    }

    /// Stops taking spans and sends what is queued (given `within`).
    pub async fn stop(self, sending: Option<Sending>, within: Duration) {
        vulcan_engine::traces::set_enabled(false);
        let _ = self.provider.shutdown();
        if let Some(Sending { stop, task }) = sending {
            let _ = stop.send(());
            let _ = tokio::time::timeout(within, task).await;
        }
    }
}

/// The task sending spans, and how to tell it to finish.
pub struct Sending {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Sends queued spans in batches; once told to stop, what is queued then, and returns.
async fn send(
    exporter: opentelemetry_otlp::SpanExporter,
    mut receiver: mpsc::Receiver<SpanData>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        let first = tokio::select! {
            span = receiver.recv() => span,
            _ = &mut stop => None,
        };
        let Some(first) = first else {
            break;
        };
        let mut batch = vec![first];
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        while batch.len() < BATCH {
            tokio::select! {
                more = receiver.recv() => match more {
                    Some(span) => batch.push(span),
                    None => break,
                },
                _ = &mut linger => break,
            }
        }
        export(&exporter, batch).await;
    }
    receiver.close();
    let mut rest = Vec::new();
    while let Ok(span) = receiver.try_recv() {
        rest.push(span);
        if rest.len() == BATCH {
            export(&exporter, std::mem::take(&mut rest)).await;
        }
    }
    if !rest.is_empty() {
        export(&exporter, rest).await;
    }
}

async fn export(exporter: &opentelemetry_otlp::SpanExporter, batch: Vec<SpanData>) {
    let n = batch.len() as u64;
    match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(batch)).await {
        Ok(Ok(())) => vulcan_engine::traces::count_spans(n, 0),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, spans = n, "the collector did not take spans");
            vulcan_engine::traces::count_spans(0, n);
        }
        Err(_) => vulcan_engine::traces::count_spans(0, n),
    }
}

/// The processor: a finished span goes into the queue, or is dropped if it is full.
#[derive(Debug)]
struct Queue {
    sender: mpsc::Sender<SpanData>,
    /// The exporter and the queue's other end, until the sending task takes them.
    pending: Mutex<Option<(opentelemetry_otlp::SpanExporter, mpsc::Receiver<SpanData>)>>,
}

#[derive(Debug)]
struct Shared(std::sync::Arc<Queue>);

impl SpanProcessor for Shared {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.0.sender.try_send(span).is_err() {
            vulcan_engine::traces::count_spans(0, 1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Ok(mut pending) = self.0.pending.lock() {
            if let Some((exporter, _)) = pending.as_mut() {
                exporter.set_resource(resource);
            }
        }
    }
}
