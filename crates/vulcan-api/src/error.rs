//! The one error shape of the API: `{"error": "..."}`, and how the OpenAPI document
//! describes it ([`ErrorBody`], [`Errors`]).

use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use vulcan_domain::{Refusal, StoreError};
use vulcan_engine::{KillError, SubmitError};

/// Every error's body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong and what to change.
    pub error: String,
    /// The request's id (also in `X-Request-Id`, the server's log and the audit log).
    pub request_id: String,
}

/// The errors any route may answer with.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Errors {
    /// Bad input: the error says what to change.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No valid key.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The key lacks a permission (or a registry is not allowed).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such resource (or not the caller's tenant's).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The method is not served on this path.
    #[response(status = 405)]
    MethodNotAllowed(ErrorBody),
    /// The resource is not in a state that allows it (a kill after the end).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The body is over `VULCAN_MAX_BODY_BYTES`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not JSON.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// A valid request no backend here can run.
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// Over a quota, or too many failed logins (see `Retry-After`).
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
    /// A registry failed.
    #[response(status = 502)]
    BadGateway(ErrorBody),
    /// A full queue, or the server is shutting down (see `Retry-After`).
    #[response(status = 503)]
    Unavailable(ErrorBody),
    /// A registry did not answer in time.
    #[response(status = 504)]
    GatewayTimeout(ErrorBody),
}

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds to wait before trying again (`Retry-After`), for 429 and 503.
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Shedding load (503) and a registry's failure (502) are not the server's faults.
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(status = %self.status, error = %self.message, "request failed");
        } else if self.status.is_server_error() {
            tracing::debug!(status = %self.status, error = %self.message, "request refused");
        }
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        // The audit log records why a mutation failed.
        response.extensions_mut().insert(self);
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::NotFound(_) | StoreError::Missing(_) => StatusCode::NOT_FOUND,
            StoreError::InvalidTransition(_)
            | StoreError::Duplicate(_)
            | StoreError::Conflict(_) => StatusCode::CONFLICT,
            // Admission refusals arrive as submission errors; here only for completeness.
            StoreError::Refused(_) => return SubmitError::from(e).into(),
            StoreError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Invalid(m) => ApiError::bad_request(m),
            SubmitError::Unavailable(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            SubmitError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).retry_after(5)
            }
            SubmitError::Refused(Refusal::OverQuota {
                message,
                retry_after_s,
            }) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, message).retry_after(retry_after_s),
            SubmitError::Refused(Refusal::Overloaded {
                message,
                retry_after_s,
            }) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).retry_after(retry_after_s)
            }
            SubmitError::Refused(Refusal::Forbidden(message)) => {
                ApiError::new(StatusCode::FORBIDDEN, message)
            }
            SubmitError::Store(e) => e.into(),
        }
    }
}

impl From<KillError> for ApiError {
    fn from(e: KillError) -> Self {
        match e {
            KillError::Store(e) => e.into(),
            KillError::AlreadyEnded(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        }
    }
}

pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
