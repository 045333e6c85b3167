//! Extractors whose every rejection is an [`ApiError`]: JSON bodies, queries, paths and
//! WebSocket handshakes.

use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::{ApiError, AppState};

/// Like `axum::Json`, but lenient about `Content-Type` (curl's `-d` sends a form type)
/// and strict about everything else, with errors in the API's shape.
pub struct JsonBody<T>(pub T);

/// Any JSON value, or `null` for an empty body (a function's input).
pub struct InputBody(pub serde_json::Value);

/// A body type that holds a flattened part: the fields it takes, since serde cannot
/// refuse unknown fields through a flattened struct ([`FlatJson`] does).
pub trait Fields {
    fn fields() -> Vec<&'static str>;
}

/// [`JsonBody`] for a [`Fields`] type: a field it does not take is refused, as
/// `deny_unknown_fields` would.
pub struct FlatJson<T>(pub T);

async fn body_bytes(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is over the limit of {} bytes",
                    state.max_body_bytes
                ),
            )
        } else {
            ApiError::bad_request(format!("could not read the request body: {rejection}"))
        }
    })
}

impl FromRequest<AppState> for InputBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(InputBody(serde_json::Value::Null));
        }
        serde_json::from_slice(&bytes)
            .map(InputBody)
            .map_err(|e| ApiError::bad_request(format!("the input is not valid JSON: {e}")))
    }
}

impl<T: DeserializeOwned + Fields> FromRequest<AppState> for FlatJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let JsonBody(value) = JsonBody::<serde_json::Value>::from_request(req, state).await?;
        if let Some(object) = value.as_object() {
            let known = T::fields();
            if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
                let expected: Vec<String> = known.iter().map(|f| format!("`{f}`")).collect();
                return Err(ApiError::bad_request(format!(
                    "invalid JSON body: unknown field `{unknown}`, expected one of {}",
                    expected.join(", ")
                )));
            }
        }
        serde_json::from_value(value)
            .map(FlatJson)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "the request body is empty: send a JSON object",
            ));
        }
        // Every body is an object (serde would read a struct from an array too).
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request(
                "the request body is not a JSON object: send one, {\"field\": value, ...}",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// Like `axum::extract::Query`, with its rejection in the API's shape.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Each parameter is one value: a second would silently win.
        let query = parts.uri.query().unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        for (key, _) in form_urlencoded::parse(query.as_bytes()) {
            if !seen.insert(key.clone()) {
                return Err(ApiError::bad_request(format!(
                    "query parameter {key} is given more than once: give it once"
                )));
            }
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// Like `axum::extract::Path`, with its rejection in the API's shape.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))
    }
}

/// A WebSocket handshake; a plain request to a WebSocket route is told what to send.
pub struct Upgrade(pub WebSocketUpgrade);

impl FromRequestParts<AppState> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map(Upgrade)
            .map_err(|rejection| {
                ApiError::new(
                    rejection.status(),
                    format!(
                        "this route speaks WebSocket ({}): open it with a WebSocket client (Connection: Upgrade, Upgrade: websocket, Sec-WebSocket-Version: 13)",
                        rejection.body_text()
                    ),
                )
            })
    }
}
