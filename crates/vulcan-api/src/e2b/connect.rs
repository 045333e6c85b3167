//! The Connect protocol (connectrpc.com) as E2B's SDKs speak it to envd: the JSON codec
//! only, over HTTP/1.1. A unary call is a plain `application/json` POST answered with
//! JSON; a streaming call's messages travel in envelopes (one flags byte, a big-endian
//! `u32` length, the JSON), the server's last one an end-of-stream message that carries
//! the error, if any.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// Envelope flag: the message is compressed (refused: nothing is negotiated).
const COMPRESSED: u8 = 0x01;
/// Envelope flag: the end-of-stream message.
const END_STREAM: u8 = 0x02;

/// The largest message a client may send in one envelope.
const MAX_MESSAGE: usize = 4 << 20;

/// An RPC's failure: a Connect code and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: &'static str,
    pub message: String,
}

impl RpcError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("invalid_argument", message)
    }

    /// The HTTP status of a unary answer with this error (Connect's mapping; a sandbox
    /// that is gone is a 502 as E2B's proxy answers it).
    pub fn status(&self) -> StatusCode {
        match self.code {
            "invalid_argument" | "failed_precondition" | "out_of_range" => StatusCode::BAD_REQUEST,
            "unauthenticated" => StatusCode::UNAUTHORIZED,
            "permission_denied" => StatusCode::FORBIDDEN,
            "not_found" => StatusCode::NOT_FOUND,
            "already_exists" | "aborted" => StatusCode::CONFLICT,
            "resource_exhausted" => StatusCode::TOO_MANY_REQUESTS,
            "unimplemented" => StatusCode::NOT_IMPLEMENTED,
            "unavailable" => StatusCode::BAD_GATEWAY,
            "deadline_exceeded" => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn json(&self) -> Value {
        json!({ "code": self.code, "message": self.message })
    }
}

/// A unary call's failure.
impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        if self.status() == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(code = self.code, error = %self.message, "envd call failed");
        }
        (self.status(), axum::Json(self.json())).into_response()
    }
}

/// A unary call's request message.
pub fn unary<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, RpcError> {
    let kind = content_type(headers);
    if kind != "application/json" {
        return Err(RpcError::new(
            "unimplemented",
            format!("content type {kind:?} is not served: use application/json (the JSON codec)"),
        ));
    }
    message(if body.is_empty() { b"{}" } else { body })
}

/// A server-streaming call's one request message (in an envelope).
pub fn stream_request<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, RpcError> {
    check_stream_type(headers)?;
    let mut rest = body;
    match next_envelope(&mut rest)? {
        Some((_, json)) => message(&json),
        None => Err(RpcError::invalid("the request has no message")),
    }
}

/// 415-like refusal unless the body is Connect's streaming JSON.
pub fn check_stream_type(headers: &HeaderMap) -> Result<(), RpcError> {
    let kind = content_type(headers);
    if kind == "application/connect+json" {
        Ok(())
    } else {
        Err(RpcError::new(
            "unimplemented",
            format!("content type {kind:?} is not served: use application/connect+json"),
        ))
    }
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map_or("", str::trim)
}

fn message<T: DeserializeOwned>(json: &[u8]) -> Result<T, RpcError> {
    serde_json::from_slice(json)
        .map_err(|e| RpcError::invalid(format!("the request message is not valid: {e}")))
}

/// Takes one envelope off the front of `rest`: `None` when it is empty.
fn next_envelope(rest: &mut &[u8]) -> Result<Option<(u8, Vec<u8>)>, RpcError> {
    if rest.is_empty() {
        return Ok(None);
    }
    if rest.len() < 5 {
        return Err(RpcError::invalid("a message envelope is cut short"));
    }
    let flags = rest[0];
    let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
    if flags & COMPRESSED != 0 {
        return Err(RpcError::new(
            "internal",
            "compressed messages are not accepted: send them uncompressed",
        ));
    }
    if len > MAX_MESSAGE {
        return Err(RpcError::new(
            "resource_exhausted",
            format!("a message of {len} bytes is over the {MAX_MESSAGE}-byte limit"),
        ));
    }
    if rest.len() < 5 + len {
        return Err(RpcError::invalid("a message envelope is cut short"));
    }
    let json = rest[5..5 + len].to_vec();
    *rest = &rest[5 + len..];
    Ok(Some((flags, json)))
}

/// One message in an envelope.
pub fn envelope(flags: u8, json: &Value) -> Bytes {
    let body = serde_json::to_vec(json).unwrap_or_else(|_| b"{}".to_vec());
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(flags);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Bytes::from(out)
}

/// A server-streaming answer: each message in turn, then the end of the stream (with
/// the error that ended it, if one did).
pub fn streaming(
    messages: impl Stream<Item = Result<Value, RpcError>> + Send + 'static,
) -> Response {
    let body = messages
        .map(Some)
        .chain(stream::once(async { None }))
        .scan(false, |ended, item| {
            let out = if *ended {
                None
            } else {
                match item {
                    Some(Ok(message)) => Some(envelope(0, &message)),
                    Some(Err(e)) => {
                        *ended = true;
                        Some(envelope(END_STREAM, &json!({ "error": e.json() })))
                    }
                    None => {
                        *ended = true;
                        Some(envelope(END_STREAM, &json!({})))
                    }
                }
            };
            async move { Some(out) }
        })
        .take_while(|out| std::future::ready(out.is_some()))
        .filter_map(|out| async move { out.map(Ok::<_, std::convert::Infallible>) });
    (
        [(header::CONTENT_TYPE, "application/connect+json")],
        Body::from_stream(body),
    )
        .into_response()
}

/// A streaming answer that is only its error (the call failed before its first message).
pub fn stream_error(e: RpcError) -> Response {
    streaming(stream::once(async move { Err(e) }))
}

/// The messages of a client-streaming request, read as they arrive.
pub struct Envelopes {
    body: axum::body::BodyDataStream,
    buf: Vec<u8>,
    done: bool,
}

impl Envelopes {
    pub fn new(body: Body) -> Self {
        Envelopes {
            body: body.into_data_stream(),
            buf: Vec::new(),
            done: false,
        }
    }

    /// The next message, `None` at the end of the request.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Option<Result<T, RpcError>> {
        loop {
            let mut rest = self.buf.as_slice();
            let complete = rest.len() >= 5
                && rest.len()
                    >= 5 + u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            if complete || (self.done && !rest.is_empty()) {
                let taken = next_envelope(&mut rest);
                let used = self.buf.len() - rest.len();
                self.buf.drain(..used);
                return match taken {
                    Ok(Some((flags, _))) if flags & END_STREAM != 0 => None,
                    Ok(Some((_, json))) => Some(message(&json)),
                    Ok(None) => None,
                    Err(e) => {
                        self.buf.clear();
                        self.done = true;
                        Some(Err(e))
                    }
                };
            }
            if self.done {
                return None;
            }
            match self.body.next().await {
                Some(Ok(piece)) => {
                    if self.buf.len() + piece.len() > MAX_MESSAGE + 5 {
                        self.done = true;
                        self.buf.clear();
                        return Some(Err(RpcError::new(
                            "resource_exhausted",
                            format!("a message is over the {MAX_MESSAGE}-byte limit"),
                        )));
                    }
                    self.buf.extend_from_slice(&piece)
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(RpcError::new(
                        "canceled",
                        format!("the request was cut off: {e}"),
                    )));
                }
                None => self.done = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(kind: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, kind.parse().unwrap());
        h
    }

    #[test]
    fn envelopes_carry_their_length_and_flags() {
        let framed = envelope(0, &json!({"a": 1}));
        assert_eq!(framed[0], 0);
        assert_eq!(
            u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]),
            7
        );
        let got: Value = stream_request(&headers("application/connect+json"), &framed).unwrap();
        assert_eq!(got, json!({"a": 1}));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let h = headers("application/connect+json");
        let short = stream_request::<Value>(&h, &[0, 0, 0, 0, 9, b'{']).unwrap_err();
        assert_eq!(short.code, "invalid_argument");
        let mut compressed = envelope(0, &json!({})).to_vec();
        compressed[0] = COMPRESSED;
        assert!(stream_request::<Value>(&h, &compressed)
            .unwrap_err()
            .message
            .contains("uncompressed"));
        let proto = unary::<Value>(&headers("application/proto"), b"").unwrap_err();
        assert_eq!(proto.code, "unimplemented");
        assert_eq!(proto.status(), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(
            unary::<Value>(&headers("application/json"), b"").unwrap(),
            json!({})
        );
    }

    #[tokio::test]
    async fn a_client_stream_is_read_message_by_message_across_pieces() {
        let mut bytes = envelope(0, &json!({"n": 1})).to_vec();
        bytes.extend_from_slice(&envelope(0, &json!({"n": 2})));
        bytes.extend_from_slice(&envelope(END_STREAM, &json!({})));
        // Cut into pieces that split envelopes.
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
            bytes.chunks(3).map(|c| Ok(c.to_vec())).collect();
        let mut messages = Envelopes::new(Body::from_stream(stream::iter(pieces)));
        assert_eq!(
            messages.next::<Value>().await.unwrap().unwrap(),
            json!({"n": 1})
        );
        assert_eq!(
            messages.next::<Value>().await.unwrap().unwrap(),
            json!({"n": 2})
        );
        assert!(messages.next::<Value>().await.is_none());
    }

    #[tokio::test]
    async fn a_stream_ends_with_its_error() {
        let response = streaming(stream::iter(vec![
            Ok(json!({"x": 1})),
            Err(RpcError::new("not_found", "gone")),
            Ok(json!({"never": true})),
        ]));
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let mut rest = &body[..];
        let (flags, first) = next_envelope(&mut rest).unwrap().unwrap();
        assert_eq!(
            (flags, serde_json::from_slice::<Value>(&first).unwrap()),
            (0, json!({"x": 1}))
        );
        let (flags, end) = next_envelope(&mut rest).unwrap().unwrap();
        assert_eq!(flags, END_STREAM);
        assert_eq!(
            serde_json::from_slice::<Value>(&end).unwrap(),
            json!({"error": {"code": "not_found", "message": "gone"}})
        );
        assert!(rest.is_empty(), "nothing follows the end");
    }
}
