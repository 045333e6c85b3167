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
        functions::activate, functions::remove, functions::invoke, functions::invoke_async,
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
    components(schemas(audit::AuditOutcome, logs::StreamChoice)),
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
                    constrain_path_names(path, op);
                    if path.starts_with("/ws/") {
                        handshake_headers(op);
                    }
                }
            }
        }
    }
    add_links(&mut doc);
    widen_unsigned(&mut doc);
    binary_bodies(&mut doc);
    if let Some(body) =
        doc.pointer_mut("/paths/~1v1~1queues/post/requestBody/content/application~1json/schema")
    {
        *body = serde_json::json!({"$ref": "#/components/schemas/NewQueue"});
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(|s| s.as_object_mut())
    {
        // A queue is named on POST, and by its path on PUT.
        if let Some(settings) = schemas.get("QueueSettings").cloned() {
            let mut new = settings;
            new["required"] = serde_json::json!(["name"]);
            new["properties"]["name"]["type"] = "string".into();
            schemas.insert("NewQueue".into(), new);
            if let Some(props) = schemas["QueueSettings"]["properties"].as_object_mut() {
                props.remove("name");
            }
        }
        // `code` and `code_archive` are one or the other.
        if let Some(code) = schemas.get_mut("CodeBody") {
            code["not"] = serde_json::json!({
                "properties": {"code": {"type": "string"}, "code_archive": {"type": "string"}},
                "required": ["code", "code_archive"],
            });
        }
        // Environment variable names (`submission::check_env`), wherever a body takes them.
        for schema in schemas.values_mut() {
            if let Some(env) = schema.pointer_mut("/properties/env") {
                env["propertyNames"] = serde_json::json!({"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"});
                env["maxProperties"] = 128.into();
            }
        }
        // Network rules: the forms `NetRule` reads, but for an address with a prefix other
        // than /32, whose bits past the prefix a pattern cannot check.
        for (schema, field) in [
            ("Quota", "egress_allow"),
            ("NetworkPolicy", "allow"),
            ("NetworkPolicy", "deny"),
        ] {
            if let Some(items) = schemas
                .get_mut(schema)
                .and_then(|s| s.pointer_mut(&format!("/properties/{field}/items")))
            {
                items["pattern"] = NET_RULE.into();
                items["maxLength"] = 253.into();
            }
        }
        // A schedule's cron, time zone, overlap and function. The time zones and the overlap
        // policies (`Overlap`, from the domain) are named schemas, so that a generated
        // client has one type for each.
        let zones: Vec<serde_json::Value> =
            vulcan_engine::time_zone_names().map(Into::into).collect();
        schemas.insert(
            "TimeZone".into(),
            serde_json::json!({"type": "string", "enum": zones, "description": "An IANA time zone name."}),
        );
        for (schema, patch) in [("ScheduleRequest", false), ("SchedulePatch", true)] {
            let Some(props) = schemas
                .get_mut(schema)
                .and_then(|s| s.get_mut("properties"))
            else {
                continue;
            };
            props["cron"]["pattern"] = CRON.into();
            props["function"]["pattern"] = patterns::FUNCTION.into();
            props["timezone"] = named(&props["timezone"], "TimeZone", patch);
            props["overlap"] = named(&props["overlap"], "Overlap", true);
        }
        if let Some(signal) = schemas.get_mut("SignalBody") {
            signal["properties"]["signal"] = serde_json::json!({"oneOf": [
                {"type": "integer", "minimum": 1, "maximum": 64},
                {"type": "string", "pattern": SIGNAL_NAME},
            ]});
        }
        // `stdin` and `pty` need `background`: a foreground run has ended by the time its
        // pid is known. (As `if`/`then` rather than an `anyOf` of partial objects, which
        // client generators read as alternative bodies.)
        if let Some(start) = schemas.get_mut("StartProcess") {
            start["if"] = serde_json::json!({"anyOf": [
                {"properties": {"stdin": {"const": true}}, "required": ["stdin"]},
                {"properties": {"pty": {"type": "object"}}, "required": ["pty"]},
            ]});
            start["then"] = serde_json::json!(
                {"properties": {"background": {"const": true}}, "required": ["background"]}
            );
        }
    }
    doc
}

/// A property that takes one of the values of the named schema `name` (or `null` when
/// `nullable`), keeping the property's description.
fn named(property: &serde_json::Value, name: &str, nullable: bool) -> serde_json::Value {
    let reference = serde_json::json!({"$ref": format!("#/components/schemas/{name}")});
    let mut schema = if nullable {
        serde_json::json!({"oneOf": [reference, {"type": "null"}]})
    } else {
        reference
    };
    if let Some(description) = property.get("description") {
        schema["description"] = description.clone();
    }
    schema
}

/// A cron the server takes: five fields (minute hour day-of-month month day-of-week) or six
/// with seconds first, each `*`, `*/step` or a number. The server also reads croner's lists,
/// ranges, names and `L`/`W`/`#`, which a pattern cannot check for sense; days of the month
/// stop at 28 here so that every cron the pattern allows fires.
const CRON: &str = "^(([1-5]?[0-9]|[*](/[1-9])?) )?([1-5]?[0-9]|[*](/[1-9])?) (1?[0-9]|2[0-3]|[*](/[1-9])?) ([1-9]|1[0-9]|2[0-8]|[*](/[1-9])?) ([1-9]|1[0-2]|[*](/[1-9])?) ([0-6]|[*](/[1-6])?)$";

/// A network rule: `host[:port]`, `*.domain[:port]` or `a.b.c.d[/32][:port]`.
const NET_RULE: &str = "^((\\*\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+)|([A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}(/32)?))(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?$";

/// The signals known by name (any case, `SIG` or not): `request::sandboxes::processes::signal_number`.
const SIGNAL_NAME: &str = "^([Ss][Ii][Gg])?([Hh][Uu][Pp]|[Ii][Nn][Tt]|[Qq][Uu][Ii][Tt]|[Aa][Bb][Rr][Tt]|[Kk][Ii][Ll][Ll]|[Uu][Ss][Rr]1|[Ss][Ee][Gg][Vv]|[Uu][Ss][Rr]2|[Pp][Ii][Pp][Ee]|[Aa][Ll][Rr][Mm]|[Tt][Ee][Rr][Mm]|[Cc][Oo][Nn][Tt])$";

/// utoipa names an unsigned field's width by its format (`uint32`), which JSON Schema tools
/// do not read: the largest value the server takes is stated as a maximum.
fn widen_unsigned(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            // utoipa spells them `u-int32`.
            let width = match map.get("format").and_then(|f| f.as_str()) {
                Some("u-int8" | "uint8") => Some(("uint8", u64::from(u8::MAX))),
                Some("u-int16" | "uint16") => Some(("uint16", u64::from(u16::MAX))),
                Some("u-int32" | "uint32") => Some(("uint32", u64::from(u32::MAX))),
                Some("u-int64" | "uint64") => Some(("uint64", u64::MAX)),
                _ => None,
            };
            if let Some((format, largest)) = width {
                map.insert("format".into(), format.into());
                map.entry("maximum").or_insert(largest.into());
            }
            map.values_mut().for_each(widen_unsigned);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(widen_unsigned),
        _ => {}
    }
}

/// Raw bytes (`application/octet-stream`, a `Vec<u8>` or `Bytes` in the handler) as the
/// binary string generators map to their file or blob type, not an array of integers.
fn binary_bodies(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(raw) = map.get_mut("application/octet-stream") {
                raw["schema"] = serde_json::json!({"type": "string", "format": "binary"});
            }
            map.values_mut().for_each(binary_bodies);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(binary_bodies),
        _ => {}
    }
}

/// The names the server checks, as patterns (each mirrors its checker exactly).
pub mod patterns {
    /// A queue's, topic's or volume's name (`vulcan_domain::check_resource_name`).
    pub const RESOURCE: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";
    /// A function's name (`vulcan_domain::valid_function_name`).
    pub const FUNCTION: &str = "^[a-z0-9][a-z0-9-]{0,62}$";
    /// A secret's name (`vulcan_domain::valid_secret_name`).
    pub const SECRET: &str = "^[A-Z_][A-Z0-9_]{0,63}$";
    /// A key's or tenant's name.
    pub const KEY_NAME: &str = "^[A-Za-z0-9._-]{1,64}$";
    /// An image reference: `[registry/]repository[:tag][@sha256:<hex>]`.
    pub const IMAGE: &str = "^((localhost|[A-Za-z0-9-]*[.][A-Za-z0-9.-]*|[A-Za-z0-9.-]+:[0-9]+)/)?[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-fA-F]{64})?$";
}

/// The pattern of path parameter `name` of `path`, where the server checks it.
fn path_pattern(path: &str, name: &str) -> Option<&'static str> {
    let resource = |prefix: &str| path.starts_with(prefix) && name == "name";
    if resource("/v1/queues/") || resource("/v1/topics/") || resource("/v1/volumes/") {
        return Some(patterns::RESOURCE);
    }
    if resource("/v1/functions/") || (path.starts_with("/fn/") && name == "name") {
        return Some(patterns::FUNCTION);
    }
    if resource("/v1/secrets/") {
        return Some(patterns::SECRET);
    }
    if name == "tenant" {
        return Some(patterns::KEY_NAME);
    }
    if path.starts_with("/v1/images/") && name == "reference" {
        return Some(patterns::IMAGE);
    }
    None
}

fn constrain_path_names(path: &str, op: &mut serde_json::Map<String, serde_json::Value>) {
    let Some(params) = op.get_mut("parameters").and_then(|p| p.as_array_mut()) else {
        return;
    };
    for param in params {
        let located = |key: &str| param[key].as_str().map(str::to_owned);
        let (Some(name), Some(place)) = (located("name"), located("in")) else {
            continue;
        };
        if place != "path" {
            continue;
        }
        if let Some(pattern) = path_pattern(path, &name) {
            param["schema"]["pattern"] = pattern.into();
        }
    }
}

/// A WebSocket route's handshake (RFC 6455), as headers it requires; a plain request is
/// answered 400.
fn handshake_headers(op: &mut serde_json::Map<String, serde_json::Value>) {
    let header = |name: &str, schema: serde_json::Value| serde_json::json!({"name": name, "in": "header", "required": true, "schema": schema});
    let headers = [
        header(
            "Connection",
            serde_json::json!({"type": "string", "enum": ["Upgrade"]}),
        ),
        header(
            "Upgrade",
            serde_json::json!({"type": "string", "enum": ["websocket"]}),
        ),
        header(
            "Sec-WebSocket-Version",
            serde_json::json!({"type": "string", "enum": ["13"]}),
        ),
        header(
            "Sec-WebSocket-Key",
            serde_json::json!({"type": "string", "pattern": "^[A-Za-z0-9+/]{22}==$"}),
        ),
    ];
    let params = op
        .entry("parameters")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if let Some(params) = params.as_array_mut() {
        params.extend(headers);
    }
}

/// Links from what makes a resource to what reads, changes and removes it: (the making
/// operation, its status, the parameter, where its value is in the answer, the operations
/// that take it).
const LINKS: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "post_v1_workloads_async",
        "202",
        "id",
        "$response.body#/id",
        &[
            "get_v1_workloads_id",
            "get_v1_workloads_id_spec",
            "get_v1_workloads_id_logs_history",
            "delete_v1_workloads_id",
        ],
    ),
    (
        "post_v1_keys",
        "201",
        "id",
        "$response.body#/id",
        &["delete_v1_keys_id"],
    ),
    (
        "post_v1_schedules",
        "201",
        "id",
        "$response.body#/id",
        &[
            "get_v1_schedules_id",
            "patch_v1_schedules_id",
            "delete_v1_schedules_id",
        ],
    ),
    (
        "post_v1_queues",
        "201",
        "name",
        "$response.body#/name",
        &[
            "get_v1_queues_name",
            "post_v1_queues_name_messages",
            "post_v1_queues_name_receive",
            "post_v1_queues_name_purge",
            "delete_v1_queues_name",
        ],
    ),
    (
        "post_v1_topics",
        "201",
        "name",
        "$response.body#/name",
        &[
            "get_v1_topics_name",
            "post_v1_topics_name_publish",
            "delete_v1_topics_name",
        ],
    ),
    (
        "post_v1_volumes",
        "201",
        "name",
        "$response.body#/name",
        &["get_v1_volumes_name", "delete_v1_volumes_name"],
    ),
    (
        "put_v1_functions_name",
        "201",
        "name",
        "$response.body#/name",
        &[
            "get_v1_functions_name",
            "get_v1_functions_name_versions",
            "post_v1_functions_name_invoke",
            "delete_v1_functions_name",
        ],
    ),
    (
        "post_v1_sandboxes",
        "201",
        "id",
        "$response.body#/id",
        &[
            "get_v1_sandboxes_id",
            "get_v1_sandboxes_id_metrics",
            "get_v1_sandboxes_id_processes",
            "post_v1_sandboxes_id_pause",
            "delete_v1_sandboxes_id",
        ],
    ),
];

fn add_links(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for operation in paths
        .values_mut()
        .filter_map(|i| i.as_object_mut())
        .flat_map(|i| i.values_mut())
    {
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for (_, status, param, value, targets) in LINKS.iter().filter(|l| l.0 == id) {
            let links: serde_json::Map<String, serde_json::Value> = targets
                .iter()
                .map(|target| {
                    (
                        (*target).to_owned(),
                        serde_json::json!({"operationId": target, "parameters": {*param: value}}),
                    )
                })
                .collect();
            operation["responses"][*status]["links"] = links.into();
        }
    }
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
