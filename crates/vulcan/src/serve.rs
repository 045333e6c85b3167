//! `vulcan serve`: wires the store, the backends, the engine and the API, then serves
//! until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;
use vulcan_domain::{AccessStore, Alone, ApiKey, ImageIndex, Quota, Role, SecretStore, SignalBus};
use vulcan_engine::secrets::{Keyring, SecretKey};
use vulcan_engine::{BackendRegistry, Engine, EngineConfig, Limits, LogLimits, Metrics};
use vulcan_gvisor::image::{RegistryClient, RegistryOptions};
use vulcan_gvisor::{GvisorBackend, GvisorConfig, ImageStore};
use vulcan_isolate::{IsolateBackend, IsolateConfig, WasmSettings};
use vulcan_microvm::{AccelChoice, MicrovmBackend, MicrovmConfig};
use vulcan_store::{PgStore, SqliteStore};

use crate::config::{AccelArg, LogFormat, SandboxIsolationArg, ServeArgs, Switch, WasmEngine};

mod egress;
mod traces;
use egress::{egress, host_addresses, keep_peers_unreachable};

/// Logs to stderr, and spans to an OTLP collector when one is set ([`traces`]).
fn init_logging(args: &ServeArgs) -> Result<Option<traces::Exporting>, String> {
    let filter: Targets = args
        .log_level
        .parse()
        .map_err(|e| format!("VULCAN_LOG_LEVEL={:?} is not valid: {e}", args.log_level))?;
    let (otel, exporting) = match traces::wanted() {
        true => {
            let (tracer, exporting) = traces::install(&args.node_id())?;
            // Every span Vulcan opens, whatever the log level.
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(
                    Targets::new().with_targets(
                        ["vulcan", "vulcan_api", "vulcan_engine"]
                            .map(|crate_name| (crate_name, tracing::Level::INFO)),
                    ),
                );
            (Some(layer), Some(exporting))
        }
        false => (None, None),
    };
    tracing_subscriber::registry()
        .with(otel)
        .with(log_lines(args.log_format, filter))
        .init();
    Ok(exporting)
}

/// The log lines on stderr, in `format`, letting through what `filter` does.
fn log_lines<S>(
    format: LogFormat,
    filter: Targets,
) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
    }
}

pub fn run(args: ServeArgs) -> ExitCode {
    let exporting = match init_logging(&args) {
        Ok(exporting) => exporting,
        Err(e) => {
            eprintln!("vulcan: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vulcan: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        let sending = exporting.as_ref().and_then(traces::Exporting::start);
        let served = serve(args).await;
        if let Some(exporting) = exporting {
            exporting.stop(sending, Duration::from_secs(3)).await;
        }
        served
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("vulcan: {e}");
            ExitCode::FAILURE
        }
    }
}

fn engine_config(args: &ServeArgs) -> EngineConfig {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let mut config = EngineConfig::new(args.node_id());
    config.defaults.timeout_s = args.default_timeout_s;
    config.defaults.mem_mb = args.default_mem_mb;
    config.limits = Limits {
        max_cpus: args.max_cpus.unwrap_or(cpus),
        max_mem_mb: args.max_mem_mb,
        max_timeout_s: args.max_timeout_s,
        max_output_bytes: args.max_output_bytes,
        ..Limits::default()
    };
    config.logs = LogLimits {
        max_lines: args.max_log_lines,
        max_bytes: args.max_log_bytes,
        ..LogLimits::default()
    };
    config.default_quota = Quota {
        max_concurrent: args.tenant_max_concurrent,
        per_minute: args.tenant_per_minute,
        max_cpus: args.tenant_max_cpus,
        max_mem_mb: args.tenant_max_mem_mb,
        max_schedules: Some(args.tenant_max_schedules),
        min_schedule_interval_s: Some(args.tenant_min_schedule_interval_s.max(1)),
        egress_allow: Vec::new(),
    };
    config.egress = args.egress;
    config.max_queue = args.queue_limit;
    config.lease = Duration::from_secs(args.node_lease_s.max(2));
    // Signals are the fast path; the poll only covers one that was lost (only possible
    // between nodes).
    config.poll = if args.database_url.is_some() {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(2)
    };
    config
}

/// Where state is kept: the ports of one store, and how this node talks with the others.
struct Backing {
    stores: vulcan_engine::Stores,
    images: Arc<dyn ImageIndex>,
}

impl Backing {
    /// Every port from one store, with `bus`.
    fn of(store: impl vulcan_engine::EveryPort + ImageIndex, bus: Arc<dyn SignalBus>) -> Backing {
        Backing {
            stores: vulcan_engine::Stores::of(store.clone(), bus),
            images: Arc::new(store),
        }
    }
}

/// PostgreSQL if `VULCAN_DATABASE_URL` is set (a cluster), else the SQLite file.
async fn open_store(args: &ServeArgs) -> Result<Backing, String> {
    if let Some(url) = &args.database_url {
        let store = PgStore::connect(url).await.map_err(|e| e.to_string())?;
        tracing::info!("store open (PostgreSQL, shared by the cluster)");
        return Ok(Backing::of(store.clone(), Arc::new(store)));
    }
    let db_path = args.db_path();
    let store = SqliteStore::open(&db_path).map_err(|e| e.to_string())?;
    tracing::info!(path = %db_path.display(), "store open (SQLite, WAL)");
    Ok(Backing::of(store, Arc::new(Alone)))
}

fn decode_key(name: &str, text: &str) -> Result<SecretKey, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| {
            format!("{name} is not base64 ({e}): make one with `openssl rand -base64 32`")
        })?;
    SecretKey::from_bytes(&bytes).map_err(|e| format!("{name}: {e}"))
}

/// The keys secrets are sealed with: VULCAN_SECRET_KEY, or (a node on its own) the one in
/// `<data dir>/secret.key`, created on first start. A cluster without a key is refused.
/// The key must open every stored secret: a wrong one is refused here, not found later.
async fn keyring(args: &ServeArgs, store: &dyn SecretStore) -> Result<Keyring, String> {
    let current = match &args.secret_key {
        Some(text) => decode_key("VULCAN_SECRET_KEY", text)?,
        None if args.database_url.is_some() => {
            return Err("a cluster needs VULCAN_SECRET_KEY (base64 of 32 random bytes, `openssl rand -base64 32`), the same on every node: secrets sealed by one node are opened by another".into())
        }
        None => {
            let path = args.data_dir.join("secret.key");
            match std::fs::read_to_string(&path) {
                Ok(text) => decode_key(&path.display().to_string(), &text)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    use base64::Engine as _;
                    use std::io::Write;
                    use std::os::unix::fs::OpenOptionsExt;
                    let (key, bytes) = SecretKey::generate();
                    let mut file = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&path)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    writeln!(file, "{}", base64::engine::general_purpose::STANDARD.encode(bytes))
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    tracing::warn!(path = %path.display(), key_id = key.id(), "created the key secrets are sealed with; it is in this file (mode 0600): keep a copy, secrets cannot be opened without it");
                    key
                }
                Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
            }
        }
    };
    let previous = args
        .secret_key_previous
        .as_deref()
        .map(|t| decode_key("VULCAN_SECRET_KEY_PREVIOUS", t))
        .transpose()?;
    let keyring = Keyring { current, previous };
    vulcan_engine::secrets::check_key(store, Some(&keyring))
        .await
        .map_err(|e| format!("the secret key does not fit the stored secrets: {e}"))?;
    Ok(keyring)
}

/// With auth on and no key yet (and no VULCAN_ADMIN_KEY), creates the first admin key and
/// writes it to `<data dir>/admin.key`, readable by its owner only.
async fn bootstrap_admin(args: &ServeArgs, store: &dyn AccessStore) -> Result<(), String> {
    if args.auth == Switch::Off || args.admin_key.is_some() {
        return Ok(());
    }
    let existing = store.keys(None).await.map_err(|e| e.to_string())?;
    if !existing.is_empty() {
        return Ok(());
    }
    let (id, key, hash) = vulcan_api::auth::generate_key()
        .map_err(|e| format!("cannot read random bytes for the admin key: {e}"))?;
    let path = args.data_dir.join("admin.key");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // Never through a link or over a file someone put there: a new file, or nothing.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => format!(
                    "{} exists, but the database holds no key: it is not a key this server made. Remove it and start again to get a new admin key",
                    path.display()
                ),
                _ => format!("cannot write {}: {e}", path.display()),
            })?;
        writeln!(file, "{key}").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let record = ApiKey {
        id,
        name: "admin".into(),
        role: Role::Admin,
        tenant: "admin".into(),
        created_at: time::OffsetDateTime::now_utc(),
        expires_at: None,
        revoked_at: None,
        created_by: "bootstrap".into(),
    };
    store
        .create_key(&record, &hash)
        .await
        .map_err(|e| e.to_string())?;
    tracing::warn!(path = %path.display(), "created the first admin key; it is in this file (mode 0600): send it as X-API-Key");
    Ok(())
}

async fn serve(mut args: ServeArgs) -> Result<(), String> {
    let started = Instant::now();
    if args.auth == Switch::Off && !args.listen_addr.ip().is_loopback() {
        return Err(format!(
            "VULCAN_AUTH=off is only allowed on a loopback address, and VULCAN_LISTEN_ADDR is {}: turn auth on, or listen on 127.0.0.1",
            args.listen_addr
        ));
    }
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    // Everything below (and every child process: runsc, QEMU, cp) gets absolute paths:
    // a relative one means something else to a process that starts elsewhere.
    args.data_dir = std::fs::canonicalize(&args.data_dir)
        .map_err(|e| format!("cannot resolve {}: {e}", args.data_dir.display()))?;
    crate::doctor::log_summary(&args);
    let trusted_proxies = vulcan_api::TrustedProxies::parse(&args.trusted_proxies)?;
    let backing = open_store(&args).await?;
    bootstrap_admin(&args, backing.stores.access.as_ref()).await?;

    let mut config = engine_config(&args);
    config.keyring = Some(keyring(&args, backing.stores.secrets.as_ref()).await?);
    let egress = egress(&args).await?;
    config.addresses = host_addresses(egress.as_ref().map(|e| e.subnet()));
    config.api_url = advertised(&args, &config.addresses);
    config.max_queues_per_tenant = args.queue_max_per_tenant;
    let mut isolate = IsolateConfig::new(args.deno(), args.data_dir.join("isolate"));
    isolate.egress = egress.clone();
    isolate.pool_size = args.isolate_pool_size;
    isolate.pool_heap_mb = args.default_mem_mb;
    isolate.max_concurrency = args.isolate_concurrency;
    isolate.max_output_bytes = args.max_output_bytes;
    isolate.jail = args.isolate_jail == Switch::On;
    if args.wasm_engine == WasmEngine::Wasmtime {
        isolate.wasm = Some(WasmSettings {
            program: std::env::current_exe()
                .map_err(|e| format!("cannot find the vulcan binary for the wasm helper: {e}"))?,
            root: args.data_dir.join("wasm-root"),
            slots: args.isolate_concurrency,
            max_mem_mb: args.max_mem_mb,
            memory_mb: args.wasm_memory_mb,
            compile_timeout: Duration::from_secs(args.wasm_compile_timeout_s.max(1)),
            compile_memory_mb: args.wasm_compile_memory_mb.max(64),
        });
    }
    let mut registry = BackendRegistry::new();
    registry.register(Arc::new(IsolateBackend::start(isolate)));

    let pull_timeout = Duration::from_secs(args.image_pull_timeout_s);
    let client = RegistryClient::new(RegistryOptions {
        insecure: args.insecure_registries.clone(),
        credentials: args.registry_credentials()?,
        allowed: args
            .allowed_registries
            .iter()
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect(),
        pull_timeout,
    });
    let images = ImageStore::open(
        args.data_dir.join("images"),
        client,
        args.image_max_mb * 1024 * 1024,
        backing.images.clone(),
        config.node_id.clone(),
    )
    .await?;
    let mut gvisor = GvisorConfig::new(args.runsc(), args.data_dir.join("gvisor"));
    gvisor.platform = args.gvisor_platform.clone();
    gvisor.egress = egress.clone();
    gvisor.max_concurrency = args.gvisor_concurrency;
    gvisor.max_output_bytes = args.max_output_bytes;
    gvisor.pids_limit = args.gvisor_pids_limit;
    // An implicit pull has its own deadline (and error); the run's preparation bound is
    // just beyond it.
    gvisor.preparation_timeout = pull_timeout + Duration::from_secs(30);
    let gvisor = Arc::new(GvisorBackend::start(gvisor, images.clone()));
    registry.register(gvisor.clone());
    let mut sandbox_drivers: Vec<Arc<dyn vulcan_domain::SandboxDriver>> = vec![Arc::new(
        vulcan_gvisor::sandboxes::GvisorSandboxes::new(&gvisor),
    )];

    let mut microvm = MicrovmConfig::new(
        args.qemu(),
        args.microvm_assets(),
        args.data_dir.join("microvm"),
    );
    microvm.initramfs = args.microvm_initramfs.clone();
    microvm.accel = match args.microvm_accel {
        AccelArg::Auto => AccelChoice::Auto,
        AccelArg::Kvm => AccelChoice::Kvm,
        AccelArg::Tcg => AccelChoice::Tcg,
    };
    microvm.pool = args.microvm_pool()?;
    microvm.pool_resources = config.defaults;
    microvm.max_concurrency = args.microvm_concurrency;
    microvm.max_output_bytes = args.max_output_bytes;
    microvm.boot_timeout = Duration::from_secs(args.microvm_boot_timeout_s);
    microvm.snapshots = args.microvm_snapshots == Switch::On;
    microvm.egress = egress.clone();
    microvm.images = Some(Arc::new(images.clone()));
    microvm.template_disk_bytes = args.template_disk_mb * 1024 * 1024;
    microvm.builder = Some(Arc::new(vulcan_gvisor::gobuild::GoSource::new(
        gvisor.clone(),
        args.data_dir.join("go"),
    )));
    let microvm = MicrovmBackend::start(microvm).await;
    sandbox_drivers.push(Arc::new(microvm.sandboxes()));
    registry.register(Arc::new(microvm));
    for info in registry.list() {
        match &info.reason {
            None => tracing::info!(backend = %info.name, "backend available"),
            Some(reason) => tracing::warn!(backend = %info.name, %reason, "backend unavailable"),
        }
    }

    if let Some(egress) = &egress {
        tokio::spawn(keep_peers_unreachable(
            egress.clone(),
            backing.stores.nodes.clone(),
            config.node_id.clone(),
        ));
    }
    let sandbox_limits = sandbox_limits(&args, config.limits.max_cpus);
    let engine = Engine::new(config, backing.stores, registry, Metrics::new())
        .with_images(Arc::new(images))
        .with_sandboxes(sandbox_drivers, sandbox_limits);
    let (failed, rerun) = engine
        .recover()
        .await
        .map_err(|e| format!("recovery failed: {e}"))?;
    if failed + rerun > 0 {
        tracing::info!(
            failed,
            requeued = rerun,
            "recovered workloads left unfinished by the last run"
        );
    }
    let (kept, lost) = engine
        .recover_sandboxes()
        .await
        .map_err(|e| format!("recovering sandboxes failed: {e}"))?;
    if kept > 0 {
        tracing::info!(kept, "paused sandboxes taken back from the last run");
    }
    if lost > 0 {
        tracing::warn!(
            lost,
            "sandboxes this node held when it last stopped are lost"
        );
    }
    engine.start();
    let listener = listen(args.listen_addr)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen_addr))?;
    tracing::info!(addr = %args.listen_addr, node = %engine.config().node_id, "vulcan listening");
    let state = vulcan_api::AppState {
        engine: engine.clone(),
        benchmarks: vulcan_engine::Benchmarks::new(engine.clone()),
        auth: vulcan_api::Auth::new(args.auth == Switch::On, args.admin_key.as_deref())
            .with_failure_limit(args.auth_failures_per_minute)
            .with_trusted_proxies(trusted_proxies)
            .with_audit_retention(
                (args.audit_retention_days > 0)
                    .then(|| Duration::from_secs(args.audit_retention_days * 86_400)),
            ),
        started,
        max_body_bytes: args.max_body_bytes,
        ws_ping: Duration::from_secs(args.ws_ping_s.max(1)),
        triggers_at: args.trigger_addr,
        ws_seats: std::sync::Arc::new(vulcan_api::WsSeats::new(args.ws_max_per_key.max(1))),
    };
    let upkeep = tokio::spawn(vulcan_api::auth::audit_upkeep(state.clone()));
    let app = vulcan_api::router(state.clone());
    let (closing, closed) = tokio::sync::watch::channel(false);
    let triggers = match args.trigger_addr {
        Some(addr) => {
            let listener = listen(addr)
                .map_err(|e| format!("cannot listen on {addr} (VULCAN_TRIGGER_ADDR): {e}"))?;
            tracing::info!(%addr, "functions' HTTP triggers listening");
            Some(tokio::spawn(serve_on(
                listener,
                vulcan_api::trigger_router(state.clone()),
                closed,
            )))
        }
        None => None,
    };

    let grace = Duration::from_secs(args.shutdown_grace_s);
    let stopping = engine.clone();
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel();
    let shutdown = async move {
        wait_for_signal().await;
        tracing::info!(grace_s = grace.as_secs(), "shutting down");
        let _ = closing.send(true);
        // Stopping the engine ends open log streams and waiting requests.
        let engine_stopped = tokio::spawn(async move { stopping.shutdown(grace).await });
        let _ = stopped_tx.send(engine_stopped);
    };
    serve_with(listener, app, shutdown).await?;
    if let Some(triggers) = triggers {
        let _ = triggers.await;
    }
    if let Ok(engine_stopped) = stopped_rx.await {
        let _ = engine_stopped.await;
    }
    // The networks made ahead of time; the sandboxes' own went with them.
    if let Some(egress) = egress {
        let _ = tokio::task::spawn_blocking(move || egress.drain()).await;
    }
    upkeep.abort();
    vulcan_api::auth::flush_aggregates(&state, true).await;
    tracing::info!("stopped");
    Ok(())
}

/// Where the other nodes reach this one's API: as configured, else the listen address
/// (the host's first address in place of one that means all of them).
fn advertised(args: &ServeArgs, addresses: &[std::net::Ipv4Addr]) -> String {
    if let Some(url) = &args.advertise_url {
        return url.trim_end_matches('/').to_owned();
    }
    let listen = args.listen_addr;
    let host = match listen.ip() {
        ip if ip.is_unspecified() => addresses
            .first()
            .map_or_else(|| "127.0.0.1".to_owned(), ToString::to_string),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", listen.port())
}

/// What sandboxes may ask for on this server; `max_cpus` as workloads.
fn sandbox_limits(args: &ServeArgs, max_cpus: u32) -> vulcan_engine::SandboxLimits {
    let mut limits = vulcan_engine::SandboxLimits {
        max_per_tenant: args.sandbox_max_per_tenant,
        tenant_mem_mb: args.sandbox_tenant_mem_mb,
        tenant_disk_mb: args.sandbox_tenant_disk_mb,
        max_per_node: args.sandbox_max_per_node,
        max_timeout_s: args.sandbox_max_timeout_s.max(1),
        max_mem_mb: args.max_mem_mb,
        max_cpus,
        volume_dir: args.data_dir.join("volumes"),
        max_volumes_per_tenant: args.volume_max_per_tenant,
        ..Default::default()
    };
    limits.default_timeout_s = limits.default_timeout_s.min(limits.max_timeout_s);
    limits.defaults.disk_mb = args.sandbox_disk_mb.clamp(64, limits.max_disk_mb);
    limits.default_isolation = match args.sandbox_isolation {
        SandboxIsolationArg::Auto => vulcan_domain::Isolation::Auto,
        SandboxIsolationArg::Gvisor => vulcan_domain::Isolation::Gvisor,
        SandboxIsolationArg::Microvm => vulcan_domain::Isolation::Microvm,
    };
    limits.defaults.mem_mb = limits.defaults.mem_mb.min(limits.max_mem_mb);
    limits
}

/// Serves `app` on `listener` until `shutdown` resolves.
async fn serve_with(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    use axum::serve::ListenerExt;
    // Small JSON answers must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // Each request knows its peer's address: failed logins are counted per source.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("server error: {e}"))
}

/// Serves the triggers' listener until the server shuts down.
async fn serve_on(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    mut closed: tokio::sync::watch::Receiver<bool>,
) {
    let shutdown = async move {
        let _ = closed.wait_for(|c| *c).await;
    };
    if let Err(e) = serve_with(listener, app, shutdown).await {
        tracing::error!("functions' HTTP triggers: {e}");
    }
}

/// A listener with a deep accept queue: a burst of connections waits to be accepted
/// instead of being reset by the kernel.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
