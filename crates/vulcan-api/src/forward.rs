//! In a cluster a sandbox lives on one node; a request about it that reaches another node
//! is forwarded to the node that holds it, as it came (its key, its body streamed, the
//! answer streamed back — server-sent events included — and a WebSocket upgrade carried
//! through). The request carries [`FORWARDED_BY`] so that it is never forwarded twice;
//! the node that holds the sandbox checks the key and answers as if asked directly.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use crate::e2b::envd::SANDBOX_HEADER;
use crate::{ApiError, AppState};

/// Names the node a request was forwarded by.
pub const FORWARDED_BY: &str = "x-vulcan-forwarded-by";

/// The sandbox a request is about: `/v1/sandboxes/{id}/…`, `/ws/sandboxes/{id}/…`, E2B's
/// `/sandboxes/{id}/…` and `/v2/sandboxes/{id}/…`, or E2B's envd header.
fn sandbox_of(req: &Request) -> Option<String> {
    if let Some(id) = req.headers().get(SANDBOX_HEADER) {
        return id.to_str().ok().map(str::to_owned);
    }
    let path = req.uri().path();
    let rest = [
        "/v1/sandboxes/",
        "/ws/sandboxes/",
        "/sandboxes/",
        "/v2/sandboxes/",
    ]
    .iter()
    .find_map(|prefix| path.strip_prefix(prefix))?;
    let id = rest.split('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

pub async fn forward(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.headers().contains_key(FORWARDED_BY) {
        return next.run(req).await;
    }
    let Some(id) = sandbox_of(&req) else {
        return next.run(req).await;
    };
    let Some(home) = state.engine.sandbox_home(&id).await else {
        return next.run(req).await;
    };
    match proxy(req, &home, &state.engine.config().node_id).await {
        Ok(response) => response,
        Err(why) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("sandbox {id} lives on the node at {home}, which did not answer: {why}"),
        )
        .into_response(),
    }
}

/// Sends `req` to the node at `base` (`http://host:port`) and answers with its answer.
async fn proxy(mut req: Request, base: &str, node: &str) -> Result<Response, String> {
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base} is not an http:// address"))?
        .to_owned();
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    // The client's side of an upgrade (a WebSocket) stays here, to be joined to the node's.
    let upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *req.uri_mut() = Uri::try_from(path).map_err(|e| e.to_string())?;
    let headers = req.headers_mut();
    headers.insert(
        axum::http::header::HOST,
        HeaderValue::from_str(&authority).map_err(|e| e.to_string())?,
    );
    headers.insert(
        FORWARDED_BY,
        HeaderValue::from_str(node).map_err(|e| e.to_string())?,
    );
    let mut response = sender.send_request(req).await.map_err(|e| e.to_string())?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let theirs = hyper::upgrade::on(&mut response);
        if let Some(ours) = upgrade {
            tokio::spawn(async move {
                if let (Ok(ours), Ok(theirs)) = (ours.await, theirs.await) {
                    let (mut ours, mut theirs) = (TokioIo::new(ours), TokioIo::new(theirs));
                    let _ = tokio::io::copy_bidirectional(&mut ours, &mut theirs).await;
                }
            });
        }
    }
    Ok(response.map(Body::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, header: Option<&str>) -> Request {
        let mut req = Request::builder().uri(path);
        if let Some(id) = header {
            req = req.header(SANDBOX_HEADER, id);
        }
        req.body(Body::empty()).unwrap()
    }

    #[test]
    fn the_sandbox_a_request_is_about_comes_from_its_path_or_e2bs_header() {
        for (path, header, id) in [
            ("/v1/sandboxes/sb1/processes", None, Some("sb1")),
            ("/ws/sandboxes/sb2/processes/7", None, Some("sb2")),
            ("/sandboxes/sb3/pause", None, Some("sb3")),
            ("/v2/sandboxes/sb4/connect", None, Some("sb4")),
            ("/process.Process/Start", Some("sb5"), Some("sb5")),
            ("/v1/sandboxes", None, None),
            ("/v1/sandboxes/", None, None),
            ("/v1/workloads/w1", None, None),
        ] {
            assert_eq!(sandbox_of(&request(path, header)).as_deref(), id, "{path}");
        }
    }
}
