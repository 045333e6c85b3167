//! Authentication, authorisation and the audit trail.
//!
//! A key is `vk_<id>_<secret>`: the id names the stored record, the secret is 32 random
//! bytes (hex) of which only the SHA-256 is stored, compared in constant time. It comes in
//! `X-API-Key` or `Authorization: Bearer`. `VULCAN_ADMIN_KEY`, when set, is an admin key
//! kept in configuration only. Every mutation (POST, PUT, DELETE) is appended to the audit
//! log before the answer goes out; failed authentications are counted per source address
//! and minute, refused past a threshold, and logged in aggregate ([`LoginFailures`]).

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use vulcan_domain::{AuditEntry, Permission, Quota, Role, StoreError, Workload, DEFAULT_TENANT};
use vulcan_engine::{Engine, ImagePulls};

use crate::client::TrustedProxies;
use crate::login_failures::{LoginFailures, Source};
use crate::public_calls::PublicCalls;
use crate::telemetry::RequestId;
use crate::{ApiError, AppState};

/// Who is calling, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key id (`admin-env` for `VULCAN_ADMIN_KEY`, `auth-off` with auth off).
    pub key_id: String,
    pub role: Role,
    pub tenant: String,
}

impl Caller {
    /// 403 naming the missing permission unless the role has it.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "this key's role ({}) lacks the permission {permission}",
                    self.role
                ),
            ))
        }
    }

    /// The tenant whose data this caller is limited to; `None` sees every tenant.
    pub fn scope(&self) -> Option<&str> {
        (!self.role.allows(Permission::AllTenants)).then_some(self.tenant.as_str())
    }

    /// What the caller's runs may have pulled when they name an unregistered image:
    /// admins anything, `images:write` from allowed registries, others nothing.
    pub fn image_pulls(&self) -> ImagePulls {
        if self.scope().is_none() {
            ImagePulls::Any
        } else if self.role.allows(Permission::ImagesWrite) {
            ImagePulls::Allowed
        } else {
            ImagePulls::Never
        }
    }

    /// Whether the caller may see `workload`; others' workloads are answered 404, as if
    /// they did not exist.
    pub fn sees(&self, workload: &Workload) -> bool {
        self.scope().is_none_or(|t| t == workload.tenant)
    }
}

/// The target of a mutation, set by its handler on the response for the audit log.
#[derive(Debug, Clone)]
pub struct AuditTarget(pub String);

/// Authentication settings.
#[derive(Clone)]
pub struct Auth {
    pub enabled: bool,
    /// SHA-256 of `VULCAN_ADMIN_KEY`.
    admin_env: Option<[u8; 32]>,
    failures: Arc<LoginFailures>,
    /// Calls of public functions without a key, audited in aggregate.
    public_calls: Arc<PublicCalls>,
    /// Peers whose `X-Forwarded-For` names the client (`VULCAN_TRUSTED_PROXIES`).
    proxies: Arc<TrustedProxies>,
    /// Audit records older than this are removed by the server (`None`: kept forever).
    pub audit_retention: Option<Duration>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A new key: (id, full token, hash of its secret).
pub fn generate_key() -> std::io::Result<(String, String, String)> {
    let mut random = [0u8; 40];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    let id = hex(&random[..8]);
    let secret = hex(&random[8..]);
    let token = format!("vk_{id}_{secret}");
    Ok((id, token, hex(&sha256(secret.as_bytes()))))
}

/// The subprotocol prefix a browser's WebSocket carries its key in
/// (`new WebSocket(url, ["vulcan", "vulcan.key." + key])`).
pub const WS_KEY_PROTOCOL: &str = "vulcan.key.";

/// The key a request carries: `X-API-Key`, `Authorization: Bearer`, or (WebSockets from
/// browsers, which cannot set headers) a `Sec-WebSocket-Protocol` value `vulcan.key.<key>`.
fn token_from(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let (scheme, token) = auth.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(WS_KEY_PROTOCOL))
}

/// Query parameters that look like a key: a key in a URL ends up in logs and histories,
/// so such a request is refused.
const KEY_PARAMETERS: [&str; 6] = [
    "key",
    "api_key",
    "apikey",
    "api-key",
    "token",
    "access_token",
];

fn key_in_url(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            KEY_PARAMETERS.iter().any(|k| name.eq_ignore_ascii_case(k))
        })
    })
}

impl Auth {
    pub fn new(enabled: bool, admin_key: Option<&str>) -> Self {
        Auth {
            enabled,
            admin_env: admin_key.map(|k| sha256(k.as_bytes())),
            failures: Arc::new(LoginFailures::new(DEFAULT_FAILURES_PER_MINUTE)),
            public_calls: Arc::default(),
            proxies: Arc::new(TrustedProxies::default()),
            audit_retention: None,
        }
    }

    /// Believes `X-Forwarded-For` from these peers: failed logins are then counted per
    /// client behind them, not per proxy.
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = Arc::new(proxies);
        self
    }

    /// Failed authentications answered per source and minute before further attempts
    /// get 429 (0: no limit).
    pub fn with_failure_limit(mut self, per_minute: u32) -> Self {
        self.failures = Arc::new(LoginFailures::new(per_minute));
        self
    }

    /// Removes audit records older than `retention` (hourly, and at start).
    pub fn with_audit_retention(mut self, retention: Option<Duration>) -> Self {
        self.audit_retention = retention;
        self
    }

    /// Checks a token; the error says what is wrong without revealing what exists. Keys
    /// are verified against the engine's copy of every key: no store read per request
    /// (see `vulcan_engine`'s access module).
    async fn verify(&self, engine: &Engine, token: &str) -> Result<Caller, (String, String)> {
        let invalid = |actor: &str| (actor.to_owned(), "the API key is not valid".to_owned());
        if let Some(expected) = &self.admin_env {
            if constant_time_eq(&sha256(token.as_bytes()), expected) {
                return Ok(Caller {
                    key_id: "admin-env".into(),
                    role: Role::Admin,
                    tenant: "admin".into(),
                });
            }
        }
        let Some((id, secret)) = token.strip_prefix("vk_").and_then(|t| t.split_once('_')) else {
            return Err(invalid("anonymous"));
        };
        let (key, hash) = match engine.key(id).await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(invalid("anonymous")),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the API keys");
                return Err(invalid("anonymous"));
            }
        };
        if !constant_time_eq(hex(&sha256(secret.as_bytes())).as_bytes(), hash.as_bytes()) {
            return Err(invalid("anonymous"));
        }
        if key.revoked_at.is_some() {
            return Err((key.id, "the API key has been revoked".into()));
        }
        if key
            .expires_at
            .is_some_and(|t| t <= OffsetDateTime::now_utc())
        {
            return Err((key.id, "the API key has expired".into()));
        }
        Ok(Caller {
            key_id: key.id,
            role: key.role,
            tenant: key.tenant,
        })
    }
}

/// The quota `caller`'s submissions are held to; `None` for admins.
pub async fn quota_of(engine: &Engine, caller: &Caller) -> Result<Option<Quota>, StoreError> {
    if caller.scope().is_none() {
        return Ok(None);
    }
    engine.quota_of(&caller.tenant).await.map(Some)
}

/// Failed authentications answered per source and minute by default.
pub const DEFAULT_FAILURES_PER_MINUTE: u32 = 30;

/// Writes what is audited in aggregate — failed logins, calls of public functions
/// without a key — counted so far (all of it, or only that of minutes that are over).
pub async fn flush_aggregates(state: &AppState, all: bool) {
    let now = OffsetDateTime::now_utc();
    let failures = state.auth.failures.drain(now, all);
    for entry in failures
        .into_iter()
        .chain(state.auth.public_calls.drain(now, all))
    {
        append(state, entry).await;
    }
}

/// Removes audit records past the retention, and records that it did.
async fn prune_audit(state: &AppState, retention: Duration) {
    let before = OffsetDateTime::now_utc() - retention;
    let record = AuditEntry {
        seq: 0,
        at: OffsetDateTime::now_utc(),
        actor: "vulcan".into(),
        role: None,
        tenant: None,
        action: "audit.prune".into(),
        target: None,
        outcome: "ok".into(),
        status: 0,
        detail: Some(format!(
            "retention {} days (VULCAN_AUDIT_RETENTION_DAYS)",
            retention.as_secs() / 86_400
        )),
        count: 1,
        request_id: None,
    };
    match state.engine.prune_audit(before, &record).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "pruned the audit log"),
        Err(e) => tracing::error!(error = %e, "cannot prune the audit log"),
    }
}

/// The audit log's upkeep, until the server stops: aggregated failed logins are written
/// once their minute is over, and records past the retention are removed hourly.
pub async fn audit_upkeep(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        flush_aggregates(&state, false).await;
        if let Some(retention) = state.auth.audit_retention {
            if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                prune_audit(&state, retention).await;
                last_prune = Some(std::time::Instant::now());
            }
        }
    }
}

/// The audit action of a mutating route.
fn action(method: &Method, route: &str) -> String {
    let known = match (method.as_str(), route) {
        ("POST", "/v1/workloads") | ("POST", "/v1/workloads/async") => "workload.create",
        ("DELETE", "/v1/workloads/{id}") => "workload.kill",
        ("POST", "/v1/images") => "image.pull",
        ("DELETE", "/v1/images/{*reference}") => "image.delete",
        ("POST", "/v1/keys") => "key.create",
        ("DELETE", "/v1/keys/{id}") => "key.revoke",
        ("POST", "/v1/benchmarks") => "benchmark.start",
        ("PUT", "/v1/tenants/{tenant}/quota") => "quota.set",
        ("PUT", "/v1/functions/{name}") => "function.deploy",
        ("PUT", "/v1/functions/{name}/active") => "function.activate",
        ("DELETE", "/v1/functions/{name}") => "function.delete",
        ("POST", "/v1/functions/{name}/invoke") => "function.invoke",
        (_, "/fn/{tenant}/{name}") | (_, "/fn/{tenant}/{name}/{*path}") => "function.http",
        ("POST", "/v1/schedules") => "schedule.create",
        ("PATCH", "/v1/schedules/{id}") => "schedule.update",
        ("DELETE", "/v1/schedules/{id}") => "schedule.delete",
        ("PUT", "/v1/secrets/{name}") => "secret.put",
        ("DELETE", "/v1/secrets/{name}") => "secret.delete",
        ("POST", "/v1/secrets/rotate-key") => "secret.rotate_key",
        ("POST", "/v1/volumes") => "volume.create",
        ("DELETE", "/v1/volumes/{name}") => "volume.delete",
        ("POST", "/v1/queues") => "queue.create",
        ("PUT", "/v1/queues/{name}") => "queue.put",
        ("DELETE", "/v1/queues/{name}") => "queue.delete",
        ("POST", "/v1/queues/{name}/purge") => "queue.purge",
        ("POST", "/v1/queues/{name}/messages") => "queue.send",
        ("POST", "/v1/queues/{name}/receive") => "queue.receive",
        ("POST", "/v1/queues/{name}/ack") => "queue.ack",
        ("POST", "/v1/queues/{name}/nack") => "queue.nack",
        ("POST", "/v1/topics") => "topic.create",
        ("DELETE", "/v1/topics/{name}") => "topic.delete",
        ("POST", "/v1/topics/{name}/subscriptions") => "topic.subscribe",
        ("DELETE", "/v1/topics/{name}/subscriptions/{id}") => "topic.unsubscribe",
        ("POST", "/v1/topics/{name}/publish") => "topic.publish",
        ("POST", "/v1/sandboxes") => "sandbox.create",
        ("DELETE", "/v1/sandboxes/{id}") => "sandbox.delete",
        ("POST", "/v1/sandboxes/{id}/timeout") => "sandbox.timeout",
        ("POST", "/v1/sandboxes/{id}/pause") => "sandbox.pause",
        ("POST", "/v1/sandboxes/{id}/resume") => "sandbox.resume",
        ("POST", "/v1/sandboxes/{id}/processes") => "sandbox.process",
        ("POST", "/v1/sandboxes/{id}/processes/{pid}/input") => "sandbox.input",
        ("POST", "/v1/sandboxes/{id}/processes/{pid}/signal") => "sandbox.signal",
        ("POST", "/v1/sandboxes/{id}/processes/{pid}/resize") => "sandbox.resize",
        ("PUT", "/v1/sandboxes/{id}/files") => "sandbox.upload",
        ("DELETE", "/v1/sandboxes/{id}/files") => "sandbox.remove_file",
        ("POST", "/v1/sandboxes/{id}/files/mkdir") => "sandbox.mkdir",
        ("POST", "/v1/sandboxes/{id}/files/move") => "sandbox.move",
        // E2B's control plane (see `e2b`).
        ("POST", "/v2/sandboxes") => "sandbox.create",
        ("DELETE", "/sandboxes/{id}") => "sandbox.delete",
        ("POST", "/sandboxes/{id}/timeout") => "sandbox.timeout",
        ("POST", "/sandboxes/{id}/pause") => "sandbox.pause",
        ("POST", "/v2/sandboxes/{id}/connect") => "sandbox.connect",
        _ => "",
    };
    if known.is_empty() {
        format!("{} {route}", method.as_str())
    } else {
        known.to_owned()
    }
}

/// `ok`, `denied` or `failed`: how an answered status reads in the audit log.
pub fn outcome_of(status: u16) -> &'static str {
    match status {
        200..=299 => "ok",
        401 | 403 => "denied",
        _ => "failed",
    }
}

async fn append(state: &AppState, entry: AuditEntry) {
    let action = entry.action.clone();
    if let Err(e) = state.engine.append_audit(entry).await {
        tracing::error!(error = %e, action = %action, "cannot append to the audit log");
    }
}

/// The tenant and name of the public function an HTTP-trigger path names, if it names one.
async fn public_function(state: &AppState, route: &str, path: &str) -> Option<(String, String)> {
    if !route.starts_with("/fn/") {
        return None;
    }
    let mut parts = path.trim_start_matches("/fn/").splitn(3, '/');
    let (tenant, name) = (parts.next()?, parts.next()?);
    let function = state.engine.function(tenant, name).await.ok()?;
    function
        .public
        .then(|| (tenant.to_owned(), name.to_owned()))
}

/// Authenticates every request but `/healthz`, and audits mutations and failed logins.
pub async fn access(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    if route == "/healthz" || route == "/openapi.json" {
        return next.run(req).await;
    }
    if key_in_url(req.uri().query()) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a key in the URL is refused (URLs end up in logs): send it as X-API-Key, Authorization: Bearer, or for a WebSocket the Sec-WebSocket-Protocol value vulcan.key.<key>",
        )
        .into_response();
    }
    let method = req.method().clone();
    let public = public_function(&state, &route, req.uri().path()).await;
    let caller = if let Some((tenant, _)) = &public {
        let tenant = tenant.clone();
        // A public function's HTTP trigger: anyone may invoke it, as its tenant.
        Caller {
            key_id: "public".into(),
            role: Role::Developer,
            tenant,
        }
    } else if !state.auth.enabled {
        let has_body = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .is_some_and(|l| l.as_bytes() != b"0")
            || req
                .headers()
                .contains_key(axum::http::header::TRANSFER_ENCODING);
        if let Err(refused) = crate::client::check_local(req.headers(), has_body, &route) {
            let status = if refused.contains("Content-Type") {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            } else {
                StatusCode::FORBIDDEN
            };
            return ApiError::new(status, refused).into_response();
        }
        Caller {
            key_id: "auth-off".into(),
            role: Role::Admin,
            tenant: DEFAULT_TENANT.into(),
        }
    } else {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let source = Source::of(state.auth.proxies.client(peer, req.headers()));
        let now = OffsetDateTime::now_utc();
        let refused = state.auth.failures.refuse(&source, now);
        let verified = match token_from(req.headers()) {
            None => Err((
                "anonymous".to_owned(),
                "no API key: send it as X-API-Key or Authorization: Bearer (the first admin key is in <data dir>/admin.key)".to_owned(),
            )),
            Some(token) => state.auth.verify(&state.engine, token).await,
        };
        // A valid key is always served: the limit bounds what bad keys cost, not access.
        match (verified, refused) {
            (Ok(caller), _) => caller,
            (Err(_), Some(wait)) => {
                return ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("too many failed authentications from this address; retry in {wait} s with a valid key"),
                )
                .retry_after(wait)
                .into_response();
            }
            (Err((actor, message)), None) => {
                let key = (actor != "anonymous").then_some(actor.as_str());
                let reason = format!("{method} {}: {message}", req.uri().path());
                state.auth.failures.record(&source, now, key, &reason);
                return ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
            }
        }
    };
    req.extensions_mut().insert(caller.clone());
    let request_id = req.extensions().get::<RequestId>().cloned();
    let mutation = matches!(
        method,
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    );
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    if let (true, Some((tenant, name))) = (mutation, &public) {
        let target = format!("{tenant}/{name}");
        let status = response.status().as_u16();
        state.auth.public_calls.record(
            &target,
            &action(&method, &route),
            status,
            OffsetDateTime::now_utc(),
        );
    } else if mutation {
        let target = response
            .extensions()
            .get::<AuditTarget>()
            .map(|t| t.0.clone())
            .or_else(|| Some(path.clone()));
        let detail = response
            .extensions()
            .get::<ApiError>()
            .map(|e| e.message.clone());
        append(
            &state,
            AuditEntry {
                seq: 0,
                at: OffsetDateTime::now_utc(),
                actor: caller.key_id,
                role: Some(caller.role.as_str().into()),
                tenant: Some(caller.tenant),
                action: action(&method, &route),
                target,
                outcome: outcome_of(response.status().as_u16()).into(),
                status: response.status().as_u16(),
                detail,
                count: 1,
                request_id: request_id.map(|r| r.0),
            },
        )
        .await;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_only_their_hash_is_kept() {
        let (id, token, hash) = generate_key().unwrap();
        let (id2, token2, _) = generate_key().unwrap();
        assert_ne!(
            (id.as_str(), token.as_str()),
            (id2.as_str(), token2.as_str())
        );
        assert!(token.starts_with(&format!("vk_{id}_")));
        let secret = token.rsplit('_').next().unwrap();
        assert_eq!(secret.len(), 64);
        // What is kept is the digest of the secret, not the secret.
        assert_ne!(hash, secret);
        assert_eq!(hash, hex(&sha256(secret.as_bytes())));
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn tokens_come_from_either_header() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer vk_a_b".parse().unwrap());
        assert_eq!(token_from(&h), Some("vk_a_b"));
        h.insert("x-api-key", "vk_c_d".parse().unwrap());
        assert_eq!(token_from(&h), Some("vk_c_d"));
        let mut ws = HeaderMap::new();
        ws.insert(
            "sec-websocket-protocol",
            "vulcan, vulcan.key.vk_e_f".parse().unwrap(),
        );
        assert_eq!(token_from(&ws), Some("vk_e_f"));
    }

    #[test]
    fn keys_in_urls_are_spotted() {
        assert!(key_in_url(Some("since=3&api_key=vk_x")));
        assert!(key_in_url(Some("Token=1")));
        assert!(!key_in_url(Some("since=3&kind=workload")));
        assert!(!key_in_url(None));
    }
}
