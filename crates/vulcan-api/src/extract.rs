//! A JSON body extractor whose every rejection is an [`ApiError`].

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
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
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}
