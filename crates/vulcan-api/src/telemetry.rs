//! Per-request ids, metrics and logs.
//!
//! Every request gets an id: the caller's `X-Request-Id` if it is sane (1–128 characters
//! of letters, digits and `._:-`), else a new ULID. It is answered in `X-Request-Id`, added
//! to every JSON error body (`{"error", "request_id"}`), carried by every log line written
//! while the request is served (a `request` span), by its audit entry, and by the workloads
//! it creates ([`vulcan_engine::REQUEST_ID`]). With traces exported, the `request` span is
//! the request's server span, continuing the caller's `traceparent`, and its `trace_id` is
//! on every log line written while it is served.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::AppState;

/// The id of the request being served (a request extension).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub const HEADER: &str = "x-request-id";

/// The caller's id if it is one we can carry everywhere safely.
fn sane(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Adds `request_id` to a JSON error body (`{"error": …}`); other bodies pass unchanged.
async fn with_id_in_error(response: Response, id: &str) -> Response {
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut map)) if map.contains_key("error") => {
            map.insert(
                "request_id".into(),
                serde_json::Value::String(id.to_owned()),
            );
            let text = serde_json::Value::Object(map).to_string();
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            Body::from(text)
        }
        _ => Body::from(bytes),
    };
    Response::from_parts(parts, body)
}

/// The `method` label: the standard methods by name, anything a client invents as
/// `other` — no label value comes from a client unchecked.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts every request and its latency under its route template (`unmatched` for a
/// path no route knows), not its raw path.
pub async fn record(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| ulid::Ulid::new().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    // Its span continues the caller's trace (`traceparent`), when traces are exported.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        otel.name = tracing::field::Empty,
        otel.kind = "server",
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    if vulcan_engine::traces::enabled() {
        span.record("otel.name", format!("{method} {route}"));
    }
    vulcan_engine::traces::continue_trace(&span, traceparent);
    if let Some(trace) = vulcan_engine::traces::traceparent_of(&span) {
        span.record("trace_id", vulcan_engine::traces::trace_id(&trace));
    }
    let mut response = vulcan_engine::REQUEST_ID
        .scope(id.clone(), next.run(req))
        .instrument(span.clone())
        .await;
    if response.status().as_u16() >= 400 {
        response = with_id_in_error(response, &id).await;
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    let elapsed = started.elapsed();
    let _entered = span.enter();
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    state
        .engine
        .metrics()
        .http_request(method, &route, status, elapsed.as_secs_f64());
    tracing::debug!(%method, %route, status, micros = elapsed.as_micros() as u64, "request");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_request_ids_are_carried() {
        assert!(sane("01HX-abc_1.2:3"));
        for bad in ["", "with space", "new\nline", "é", &"x".repeat(129)] {
            assert!(!sane(bad), "{bad:?}");
        }
    }

    #[test]
    fn invented_methods_share_one_label() {
        for invented in ["FOO1", "FOO2", "BAR", "PROPFIND"] {
            let m = Method::from_bytes(invented.as_bytes()).unwrap();
            assert_eq!(method_label(&m), "other");
        }
        assert_eq!(method_label(&Method::DELETE), "DELETE");
    }
}
