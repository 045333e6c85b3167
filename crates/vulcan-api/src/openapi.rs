//! The API's OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and the types they take and answer with (`GET /openapi.json`, no key).
//!
//! Routes are added to the router through [`Routes`], which lists every (method, path) it
//! serves: a test compares that list with the document, so a route cannot be served
//! without being described.

use std::collections::BTreeMap;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::request::{
    audit, backends, benchmarks, functions, health, images, keys, logs, me, nodes, queues,
    sandboxes, schedules, secrets, stats, tenants, topics, trigger, volumes, workloads, ws,
};
use crate::AppState;

struct Keys;

impl Modify for Keys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vulcan",
        description = "Run untrusted code on your own hardware: V8 isolates, gVisor sandboxes and microVMs behind one API. Every route but /healthz and /openapi.json wants a key (X-API-Key, or Authorization: Bearer).",
    ),
    modifiers(&Keys),
    security(("api_key" = []), ("bearer" = [])),
    paths(
        workloads::create, workloads::create_async, workloads::list, workloads::show, workloads::spec, workloads::kill,
        logs::stream, logs::history,
        backends::list, stats::show, stats::timeline, stats::metrics, nodes::list, nodes::show,
        me::show,
        images::pull, images::list, images::show, images::remove,
        benchmarks::start, benchmarks::show, benchmarks::list,
        keys::create, keys::list, keys::revoke, audit::list, tenants::show, tenants::set,
        functions::deploy, functions::list, functions::show, functions::versions,
        functions::activate, functions::remove, functions::invoke,
        trigger::call, trigger::call_path,
        schedules::create, schedules::list, schedules::show, schedules::patch, schedules::remove,
        secrets::put, secrets::list, secrets::remove, secrets::rotate_key,
        volumes::create, volumes::list, volumes::show, volumes::remove,
        queues::create, queues::put, queues::list, queues::show, queues::remove, queues::purge,
        queues::send, queues::receive, queues::ack, queues::nack,
        topics::create, topics::list, topics::show, topics::remove, topics::subscribe,
        topics::unsubscribe, topics::publish,
        sandboxes::create, sandboxes::list, sandboxes::show, sandboxes::remove,
        sandboxes::timeout, sandboxes::pause, sandboxes::resume, sandboxes::metrics, sandboxes::start_process, sandboxes::processes,
        sandboxes::process, sandboxes::output, sandboxes::input, sandboxes::signal, sandboxes::resize,
        sandboxes::download, sandboxes::upload, sandboxes::remove_file, sandboxes::stat,
        sandboxes::list_files, sandboxes::mkdir, sandboxes::move_file,
        ws::logs, ws::stats, ws::events, ws::sandbox_process, ws::sandbox_watch,
        health::show, document,
    ),
    tags(
        (name = "workloads", description = "Run code, follow it, kill it"),
        (name = "functions", description = "Deploy once, invoke many times, over HTTP too"),
        (name = "schedules", description = "Functions fired on a cron"),
        (name = "secrets", description = "Encrypted values given to code as environment variables"),
        (name = "sandboxes", description = "Sandboxes held across many steps: processes and files"),
        (name = "volumes", description = "A tenant's named disks, mounted by its sandboxes; their data outlives every sandbox"),
        (name = "queues", description = "Messages kept until a consumer acknowledges them (visibility timeouts, retries, dead-letter queues), and topics that fan a message out to queues and functions"),
        (name = "images", description = "OCI images for the gvisor backend"),
        (name = "access", description = "Keys, audit log, quotas"),
        (name = "cluster", description = "Backends, nodes, statistics, metrics, benchmarks"),
        (name = "live", description = "WebSockets"),
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "cluster", security(()), responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn document() -> axum::Json<serde_json::Value> {
    axum::Json(spec())
}

/// The document, with this build's version, and an operation id per operation made from
/// its method and path (`get_v1_workloads_id`): handlers' names repeat across resources.
pub fn spec() -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                let id: String = format!("{method}{path}")
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect::<String>()
                    .split('_')
                    .filter(|part| !part.is_empty())
                    .collect::<Vec<_>>()
                    .join("_");
                if let Some(op) = operation.as_object_mut() {
                    op.insert("operationId".into(), serde_json::Value::String(id));
                }
            }
        }
    }
    doc
}

/// The routes being built, and what each serves.
pub(crate) struct Routes {
    paths: BTreeMap<&'static str, MethodRouter<AppState>>,
    listed: Vec<(Method, &'static str)>,
}

/// The methods `any` stands for in the document.
const ANY: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

impl Routes {
    pub fn new() -> Self {
        Routes {
            paths: BTreeMap::new(),
            listed: Vec::new(),
        }
    }

    fn on<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        let routes = self.paths.remove(path).unwrap_or_default();
        self.paths.insert(path, routes.on(filter, handler));
        self.listed.push((method, path));
        self
    }

    pub fn get<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.on(Method::GET, path, h)
    }

    pub fn post<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.on(Method::POST, path, h)
    }

    pub fn put<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.on(Method::PUT, path, h)
    }

    pub fn patch<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.on(Method::PATCH, path, h)
    }

    pub fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.on(Method::DELETE, path, h)
    }

    /// Every method (the HTTP trigger): listed as the five the document describes.
    pub fn any<H: Handler<T, AppState>, T: 'static>(mut self, path: &'static str, h: H) -> Self {
        self.paths.insert(path, axum::routing::any(h));
        self.listed.extend(ANY.iter().map(|m| (m.clone(), path)));
        self
    }

    /// Only the routes whose path `keep` accepts.
    pub fn retain(mut self, keep: impl Fn(&str) -> bool) -> Self {
        self.paths.retain(|path, _| keep(path));
        self.listed.retain(|(_, path)| keep(path));
        self
    }

    /// The routes served: (method, path as the router spells it).
    pub fn listed(&self) -> Vec<(Method, String)> {
        self.listed
            .iter()
            .map(|(m, p)| (m.clone(), (*p).to_owned()))
            .collect()
    }

    pub fn into_router(self) -> Router<AppState> {
        self.paths
            .into_iter()
            .fold(Router::new(), |router, (path, methods)| {
                router.route(path, methods)
            })
    }
}

/// The path as the document spells it: `{*rest}` is `{rest}`.
pub fn document_path(path: &str) -> String {
    path.replace("{*", "{")
}
