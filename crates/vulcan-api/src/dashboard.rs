//! The web dashboard: a small client app (one page, one script, one stylesheet) embedded in
//! the binary and served at `/` and its pages' paths. It talks to the API like any client:
//! the key from its sign-in form goes in `X-API-Key` (and in the WebSocket subprotocol),
//! never in a URL. Nothing is fetched from elsewhere.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::AppState;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");
/// The benchmark charts, shared with the report `vulcan benchmark --html` writes.
pub const CHARTS_JS: &str = include_str!("../assets/charts.js");
const ICON_SVG: &str = include_str!("../assets/icon.svg");

/// The paths the app draws a page for: each answers the same document, and the script
/// draws the page from the path.
pub const PAGES: [&str; 19] = [
    "/",
    "/sign-in",
    "/workloads",
    "/workloads/new",
    "/workloads/{id}",
    "/functions",
    "/functions/{name}",
    "/schedules",
    "/queues",
    "/sandboxes",
    // Not /sandboxes/{id}: that is E2B's GET /sandboxes/{id} (see `e2b`).
    "/sandbox/{id}",
    "/images",
    "/secrets",
    "/keys",
    "/audit",
    "/benchmarks",
    "/benchmarks/{id}",
    "/nodes",
    "/backends",
];

/// Only this origin's scripts, styles and connections; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Small, and they change with the binary: revalidated each time, never stale.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn page() -> Response {
    let mut response = asset("text/html; charset=utf-8", INDEX_HTML);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The dashboard's routes; they need no key (the page asks for one).
pub fn router() -> Router<AppState> {
    let mut router = Router::new()
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/charts.js",
            get(|| async { asset("text/javascript; charset=utf-8", CHARTS_JS) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/assets/icon.svg",
            get(|| async { asset("image/svg+xml", ICON_SVG) }),
        );
    for path in PAGES {
        router = router.route(path, get(page));
    }
    router
}
