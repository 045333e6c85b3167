//! Distributed traces (OpenTelemetry). The binary installs the exporter when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set ([`set_enabled`]); until then everything here is a
//! no-op. A request's span continues the client's `traceparent`; a workload carries its
//! admission's context in its spec ([`vulcan_domain::WorkloadSpec::trace`]), so the node that
//! claims it continues the same trace, and its code gets `TRACEPARENT` (W3C trace context)
//! in its environment so that its own spans join it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

static EXPORTED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Counts spans the exporter sent (`exported`) or lost (`dropped`).
pub fn count_spans(exported: u64, dropped: u64) {
    EXPORTED.fetch_add(exported, Ordering::Relaxed);
    DROPPED.fetch_add(dropped, Ordering::Relaxed);
}

/// Spans exported and dropped since the start (`vulcan_trace_spans_total`).
pub fn span_counts() -> (u64, u64) {
    (
        EXPORTED.load(Ordering::Relaxed),
        DROPPED.load(Ordering::Relaxed),
    )
}

/// Says that spans are exported (the binary installed a tracer provider).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The span context a W3C `traceparent` names (version 00: `00-<trace>-<span>-<flags>`),
/// if it is a valid one.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    if version != "00"
        || parts.next().is_some()
        || !hex(trace, 32)
        || !hex(span, 16)
        || !hex(flags, 2)
    {
        return None;
    }
    let context = SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

/// `context` as a W3C `traceparent`.
pub fn format_traceparent(context: &SpanContext) -> String {
    format!(
        "00-{:032x}-{:016x}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags()
    )
}

/// Makes `span` a child of the span `traceparent` names (a client's header, a stored
/// workload's context); nothing for `None` or an invalid one. Call it before the span is
/// first entered.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    if !enabled() {
        return;
    }
    if let Some(parent) = traceparent.and_then(parse_traceparent) {
        let _ = span.set_parent(Context::new().with_remote_span_context(parent));
    }
}

/// `span`'s context as a `traceparent`, when traces are on.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| format_traceparent(&span_context))
}

/// The trace id in a `traceparent`.
pub fn trace_id(traceparent: &str) -> Option<String> {
    parse_traceparent(traceparent).map(|c| format!("{:032x}", c.trace_id()))
}

/// When `at` was on the wall clock.
pub fn wall_clock(at: Instant) -> SystemTime {
    SystemTime::now() - at.elapsed()
}

/// Records a span that was not opened as it happened (a queue wait, a claim, a
/// preparation): `name` from `start` to `end`, a child of the span `parent` names.
pub fn record(
    name: &'static str,
    parent: Option<&str>,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<KeyValue>,
) {
    if !enabled() {
        return;
    }
    let Some(parent) = parent.and_then(parse_traceparent) else {
        return;
    };
    let tracer = opentelemetry::global::tracer("vulcan");
    let mut span = tracer
        .span_builder(name)
        .with_start_time(start.min(end))
        .with_attributes(attributes)
        .start_with_context(&tracer, &Context::new().with_remote_span_context(parent));
    span.end_with_timestamp(end);
}

/// Records a workload's wait in the queue (from its admission) and its claim by `node`
/// (asked for at `asked`, answered now).
pub(crate) fn claimed(
    node: &str,
    spec: &vulcan_domain::WorkloadSpec,
    admitted: SystemTime,
    asked: SystemTime,
) {
    if !enabled() {
        return;
    }
    let now = SystemTime::now();
    let parent = spec.trace.as_deref();
    let node = KeyValue::new("vulcan.node", node.to_owned());
    let id = KeyValue::new("vulcan.workload", spec.id.clone());
    record("queue wait", parent, admitted, now, vec![id.clone()]);
    record("claim", parent, asked, now, vec![id, node]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_reads_back_as_written_and_bad_ones_are_none() {
        let text = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let context = parse_traceparent(text).unwrap();
        assert!(context.is_sampled());
        assert_eq!(format_traceparent(&context), text);
        assert_eq!(
            trace_id(text).as_deref(),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        for bad in [
            "",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?}");
        }
    }
}
