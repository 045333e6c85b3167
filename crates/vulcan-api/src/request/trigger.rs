//! The HTTP trigger: `ANY /fn/{tenant}/{name}[/{path…}]` invokes the function's active
//! version with the request as its input — `{"method", "path", "query", "headers",
//! "body"}` (the body as text, or base64 with `"body_encoding": "base64"` when it is not
//! UTF-8) — and answers with what it returned: `{"status", "headers", "body"}` becomes that
//! response, any other JSON value a `200` with it as `application/json`. A failed invocation
//! is `502`, a timed-out one `504`; the workload's id is in `X-Vulcan-Workload` always.
//!
//! It needs a key like every route, unless the function is `public`.
//!
//! A function's answer comes from the origin that serves the dashboard (unless triggers
//! have an address of their own, `VULCAN_TRIGGER_ADDR`), whose pages keep the signed-in
//! key in the tab's storage. So every answer is sandboxed (`Content-Security-Policy:
//! sandbox` without `allow-same-origin`: its scripts run in an opaque origin that reads
//! no storage, sets no cookie and registers no service worker), is never sniffed, and a
//! function cannot set the headers that belong to the origin ([`the_servers`]).

use std::collections::BTreeMap;

use crate::extract::{Path, Query};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::Engine as _;
use serde_json::{json, Value};
use vulcan_domain::{Permission, StoreError, Workload, WorkloadStatus};

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// Request headers a function never sees: the caller's credentials (a browser's
/// WebSocket carries its key as a subprotocol).
const WITHHELD: [&str; 4] = [
    "authorization",
    "x-api-key",
    "cookie",
    "sec-websocket-protocol",
];

/// What every answer of a function runs under: scripts in an opaque origin of their own.
pub const SANDBOX: &str =
    "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads";

/// Response headers that belong to the server and its origin, not to a function: those
/// that reach beyond the one response (cookies, service workers, site data, security
/// policies, CORS, HSTS) and those that frame the response itself.
fn the_servers(name: &HeaderName) -> bool {
    const OWN: [&str; 17] = [
        "set-cookie",
        "set-cookie2",
        "service-worker-allowed",
        "clear-site-data",
        "content-security-policy",
        "content-security-policy-report-only",
        "x-content-type-options",
        "strict-transport-security",
        "x-vulcan-workload",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "upgrade",
        "te",
        "trailer",
        "alt-svc",
    ];
    let name = name.as_str();
    OWN.contains(&name) || name.starts_with("access-control-") || name.starts_with("proxy-")
}

/// The input a function gets for an HTTP request.
fn input(
    method: &Method,
    path: &str,
    query: BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Value {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .filter(|(name, _)| !WITHHELD.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let mut input = json!({
        "method": method.as_str(),
        "path": path,
        "query": query,
        "headers": headers,
    });
    match std::str::from_utf8(body) {
        Ok(text) => input["body"] = Value::String(text.to_owned()),
        Err(_) => {
            input["body"] = Value::String(base64::engine::general_purpose::STANDARD.encode(body));
            input["body_encoding"] = Value::String("base64".into());
        }
    }
    input
}

/// The response a function's output makes.
fn respond(workload: &Workload) -> Response {
    let id = HeaderValue::from_str(&workload.id).unwrap_or(HeaderValue::from_static(""));
    let mut response = match workload.status {
        WorkloadStatus::Completed => from_output(workload.output.as_deref().unwrap_or("null")),
        status => {
            let error = workload
                .error
                .clone()
                .unwrap_or_else(|| format!("the invocation is {status}"));
            let code = if error.starts_with("timed out") {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            (
                code,
                axum::Json(json!({"error": error, "workload_id": workload.id})),
            )
                .into_response()
        }
    };
    let headers = response.headers_mut();
    headers.insert("x-vulcan-workload", id);
    headers.insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SANDBOX),
    );
    headers.insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `{"status", "headers"?, "body"?}` as a response; anything else as JSON.
fn from_output(output: &str) -> Response {
    let value: Value =
        serde_json::from_str(output).unwrap_or_else(|_| Value::String(output.to_owned()));
    let status = value
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok());
    let Some(status) = status.filter(|_| value.is_object()) else {
        return (StatusCode::OK, axum::Json(value)).into_response();
    };
    let mut headers = HeaderMap::new();
    if let Some(map) = value.get("headers").and_then(Value::as_object) {
        for (name, v) in map {
            let text = v
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string());
            if let (Ok(name), Ok(v)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::from_str(&text),
            ) {
                if !the_servers(&name) {
                    headers.insert(name, v);
                }
            }
        }
    }
    let body = match value.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text))
            if value.get("body_encoding").and_then(Value::as_str) == Some("base64") =>
        {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap_or_else(|_| text.clone().into_bytes())
        }
        Some(Value::String(text)) => text.clone().into_bytes(),
        Some(other) => {
            headers
                .entry(axum::http::header::CONTENT_TYPE)
                .or_insert(HeaderValue::from_static("application/json"));
            other.to_string().into_bytes()
        }
    };
    (status, headers, body).into_response()
}

/// `ANY /fn/{tenant}/{name}`.
#[utoipa::path(method(get, post, put, patch, delete), path = "/fn/{tenant}/{name}", tag = "functions", params(("tenant" = String, Path), ("name" = String, Path)), request_body(content = String, description = "Passed to the function as `body`", content_type = "application/octet-stream"), responses((status = 200, description = "What the function returned"), (status = 502, description = "The function failed", body = crate::error::ErrorBody), (status = 504, description = "The function timed out", body = crate::error::ErrorBody), crate::error::Errors))]
pub async fn call(
    state: State<AppState>,
    caller: Extension<Caller>,
    Path((tenant, name)): Path<(String, String)>,
    query: Query<BTreeMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    invoke(
        state,
        caller,
        tenant,
        name,
        String::from("/"),
        query,
        method,
        headers,
        body,
    )
    .await
}

/// `ANY /fn/{tenant}/{name}/{*path}`.
#[allow(clippy::too_many_arguments)]
#[utoipa::path(method(get, post, put, patch, delete), path = "/fn/{tenant}/{name}/{path}", tag = "functions", params(("tenant" = String, Path), ("name" = String, Path), ("path" = String, Path)), request_body(content = String, content_type = "application/octet-stream"), responses((status = 200, description = "What the function returned"), (status = 502, description = "The function failed", body = crate::error::ErrorBody), (status = 504, description = "The function timed out", body = crate::error::ErrorBody), crate::error::Errors))]
pub async fn call_path(
    state: State<AppState>,
    caller: Extension<Caller>,
    Path((tenant, name, path)): Path<(String, String, String)>,
    query: Query<BTreeMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let path = format!("/{path}");
    invoke(
        state, caller, tenant, name, path, query, method, headers, body,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn invoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    tenant: String,
    name: String,
    path: String,
    Query(query): Query<BTreeMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(addr) = state.triggers_at {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("functions' HTTP triggers are served on http://{addr}{} (VULCAN_TRIGGER_ADDR), not on this address", format_args!("/fn/{tenant}/{name}")),
        ));
    }
    caller.require(Permission::WorkloadsCreate)?;
    // Another tenant's function is answered like one that does not exist.
    if caller.scope().is_some_and(|t| t != tenant) {
        return Err(StoreError::Missing(format!("function {name} not found")).into());
    }
    let input = input(&method, &path, query, &headers, &body);
    let quota = crate::auth::quota_of(&state.engine, &caller).await?;
    let accepted = state.engine.invoke(&tenant, &name, input, quota).await?;
    let done = state.engine.wait(&accepted.id).await?;
    Ok(respond(&done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_response_becomes_the_answer_and_anything_else_is_json() {
        let r = from_output(r#"{"status": 201, "headers": {"x-a": "b"}, "body": "made"}"#);
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["x-a"], "b");
        let r = from_output(r#"{"sum": 3}"#);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "application/json");
        let r = from_output(r#"{"status": 99}"#);
        assert_eq!(r.status(), StatusCode::OK, "not an HTTP status: plain JSON");
    }

    #[test]
    fn a_function_cannot_set_what_belongs_to_the_origin() {
        let r = from_output(
            r#"{"status": 200, "headers": {"Set-Cookie": "a=1", "Service-Worker-Allowed": "/",
                "Access-Control-Allow-Origin": "*", "Content-Length": "1", "X-Mine": "kept"}, "body": "hello"}"#,
        );
        for gone in [
            "set-cookie",
            "service-worker-allowed",
            "access-control-allow-origin",
        ] {
            assert!(r.headers().get(gone).is_none(), "{gone}");
        }
        assert_eq!(r.headers()["x-mine"], "kept");
        assert_ne!(
            r.headers().get("content-length").map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
    }

    #[test]
    fn credentials_never_reach_the_function_and_binary_bodies_are_base64() {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "vk_secret".parse().unwrap());
        headers.insert("x-trace", "1".parse().unwrap());
        let body = Bytes::from_static(&[0xff, 0x00]);
        let input = input(&Method::POST, "/a", BTreeMap::new(), &headers, &body);
        assert!(input["headers"].get("x-api-key").is_none());
        assert_eq!(input["headers"]["x-trace"], "1");
        assert_eq!(
            (input["body"].as_str(), input["body_encoding"].as_str()),
            (Some("/wA="), Some("base64"))
        );
    }
}
