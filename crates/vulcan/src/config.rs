//! `vulcan serve` configuration: every flag has a `VULCAN_*` variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// What holds a sandbox that does not name its isolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxIsolationArg {
    Auto,
    Gvisor,
    Microvm,
}

/// What runs wasm workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WasmEngine {
    Wasmtime,
    Deno,
}

/// Configuration of `vulcan serve`. Precedence: flag, then environment, then `.env`, then default.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the HTTP API listens on.
    #[arg(long, env = "VULCAN_LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,

    /// Where the other nodes of a cluster reach this node's API (requests about a sandbox
    /// it holds are forwarded there) [default: http:// and the listen address, or the
    /// host's first address when it listens on all of them].
    #[arg(long, env = "VULCAN_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// A separate address for functions' HTTP triggers (`/fn/...`), so that the pages
    /// functions answer with are on another origin than the dashboard's; the API's address
    /// then no longer serves them. None by default (triggers are on the API's address).
    #[arg(long, env = "VULCAN_TRIGGER_ADDR")]
    pub trigger_addr: Option<SocketAddr>,

    /// Directory for Vulcan's state (database, isolate jail, runner).
    #[arg(long, env = "VULCAN_DATA_DIR", default_value = ".vulcan")]
    pub data_dir: PathBuf,

    /// SQLite database file [default: <data dir>/vulcan.db].
    #[arg(long, env = "VULCAN_DB_PATH")]
    pub db_path: Option<PathBuf>,

    /// A PostgreSQL database shared by the nodes of a cluster
    /// (postgres://user@host:port/db); without it, the SQLite file.
    #[arg(long, env = "VULCAN_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Seconds without a heartbeat after which a node is lost (its running workloads fail,
    /// its claims go back to the queue); a node cut off from the store this long stops
    /// what it runs.
    #[arg(long, env = "VULCAN_NODE_LEASE_S", default_value_t = 10)]
    pub node_lease_s: u64,

    /// Log filter: error, warn, info, debug, trace, or per target (info,vulcan_engine=debug).
    #[arg(long, env = "VULCAN_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log line format.
    #[arg(long, env = "VULCAN_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// This node's id, recorded on every workload [default: the hostname].
    #[arg(long, env = "VULCAN_NODE_ID")]
    pub node_id: Option<String>,

    /// Largest request body accepted, in bytes (larger ones get 413).
    #[arg(long, env = "VULCAN_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Timeout of a workload that does not set resources.timeout_s.
    #[arg(long, env = "VULCAN_DEFAULT_TIMEOUT_S", default_value_t = 30)]
    pub default_timeout_s: u32,

    /// Largest resources.timeout_s accepted.
    #[arg(long, env = "VULCAN_MAX_TIMEOUT_S", default_value_t = 600)]
    pub max_timeout_s: u32,

    /// Memory (MiB) of a workload that does not set resources.mem_mb.
    #[arg(long, env = "VULCAN_DEFAULT_MEM_MB", default_value_t = 128)]
    pub default_mem_mb: u32,

    /// Largest resources.mem_mb accepted.
    #[arg(long, env = "VULCAN_MAX_MEM_MB", default_value_t = 4096)]
    pub max_mem_mb: u32,

    /// Largest resources.cpus accepted [default: this host's CPU count].
    #[arg(long, env = "VULCAN_MAX_CPUS")]
    pub max_cpus: Option<u32>,

    /// Largest output a workload may return, in bytes; beyond it the workload fails.
    #[arg(long, env = "VULCAN_MAX_OUTPUT_BYTES", default_value_t = 1024 * 1024)]
    pub max_output_bytes: usize,

    /// Log lines kept per workload; further lines are counted and dropped.
    #[arg(long, env = "VULCAN_MAX_LOG_LINES", default_value_t = 10_000)]
    pub max_log_lines: u64,

    /// Log bytes kept per workload; further lines are counted and dropped.
    #[arg(long, env = "VULCAN_MAX_LOG_BYTES", default_value_t = 1024 * 1024)]
    pub max_log_bytes: u64,

    /// Seconds running workloads get to finish on shutdown before they are stopped.
    #[arg(long, env = "VULCAN_SHUTDOWN_GRACE_S", default_value_t = 10)]
    pub shutdown_grace_s: u64,

    /// The Deno binary of the isolate backend [default: .tools/deno (scripts/setup.sh), then PATH].
    #[arg(long, env = "VULCAN_DENO_BIN")]
    pub deno_bin: Option<PathBuf>,

    /// Idle Deno processes the isolate backend keeps warm (0 disables the pool).
    #[arg(long, env = "VULCAN_ISOLATE_POOL_SIZE", default_value_t = 4)]
    pub isolate_pool_size: usize,

    /// Isolate workloads run at once; more wait in line.
    #[arg(long, env = "VULCAN_ISOLATE_CONCURRENCY", default_value_t = 16)]
    pub isolate_concurrency: u32,

    /// Run Deno in a chroot as nobody (needs root). Off lets workload modules import host files.
    #[arg(long, env = "VULCAN_ISOLATE_JAIL", value_enum, default_value = "on")]
    pub isolate_jail: Switch,

    /// What runs wasm workloads: wasmtime (in a helper process) or deno (as before).
    #[arg(
        long,
        env = "VULCAN_WASM_ENGINE",
        value_enum,
        default_value = "wasmtime"
    )]
    pub wasm_engine: WasmEngine,

    /// The memory bound (MiB) of the wasmtime helper's cgroup: all its runs together.
    #[arg(long, env = "VULCAN_WASM_MEMORY_MB", default_value_t = 2048)]
    pub wasm_memory_mb: u64,

    /// The longest a WebAssembly module may take to compile (its first run), in seconds.
    #[arg(long, env = "VULCAN_WASM_COMPILE_TIMEOUT_S", default_value_t = 30)]
    pub wasm_compile_timeout_s: u64,

    /// The most memory compiling one WebAssembly module may use, in MiB.
    #[arg(long, env = "VULCAN_WASM_COMPILE_MEMORY_MB", default_value_t = 1024)]
    pub wasm_compile_memory_mb: u64,

    /// The runsc binary of the gvisor backend [default: runsc on PATH].
    #[arg(long, env = "VULCAN_RUNSC_BIN")]
    pub runsc_bin: Option<PathBuf>,

    /// runsc --platform: ptrace works on any host; systrap or kvm where the host supports them.
    #[arg(long, env = "VULCAN_GVISOR_PLATFORM", default_value = "ptrace")]
    pub gvisor_platform: String,

    /// gvisor workloads run at once; more wait in line.
    #[arg(long, env = "VULCAN_GVISOR_CONCURRENCY", default_value_t = 8)]
    pub gvisor_concurrency: u32,

    /// Host tasks one gVisor sandbox may have (its own threads included): the fork-bomb bound.
    #[arg(long, env = "VULCAN_GVISOR_PIDS_LIMIT", default_value_t = 512)]
    pub gvisor_pids_limit: u32,

    /// Registries reached over plain HTTP, comma-separated host:port (e.g. 127.0.0.1:5000).
    #[arg(long, env = "VULCAN_INSECURE_REGISTRIES", value_delimiter = ',')]
    pub insecure_registries: Vec<String>,

    /// Registries pulls may go to, comma-separated host:port, besides those an admin has
    /// registered an image from. A workload naming an image from any other is refused
    /// before the server opens a connection.
    #[arg(long, env = "VULCAN_ALLOWED_REGISTRIES", value_delimiter = ',')]
    pub allowed_registries: Vec<String>,

    /// Seconds a whole image pull may take; a registry that stalls fails the pull.
    #[arg(long, env = "VULCAN_IMAGE_PULL_TIMEOUT_S", default_value_t = 600)]
    pub image_pull_timeout_s: u64,

    /// Registry logins, comma-separated host=user:password.
    #[arg(
        long,
        env = "VULCAN_REGISTRY_CREDENTIALS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub registry_credentials: Vec<String>,

    /// Require API keys. Off is refused unless the listen address is loopback.
    #[arg(long, env = "VULCAN_AUTH", value_enum, default_value = "on")]
    pub auth: Switch,

    /// An admin key kept in configuration only [default: one is created on first start and
    /// written to <data dir>/admin.key, mode 0600].
    #[arg(long, env = "VULCAN_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,

    /// The key secrets are sealed with: base64 of 32 random bytes (`openssl rand -base64
    /// 32`) [default: on a single node, one is created on first start in <data dir>/secret.key,
    /// mode 0600; a cluster must set it, the same on every node].
    #[arg(long, env = "VULCAN_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// The key secrets were sealed with before a rotation: still opens them until `vulcan
    /// secrets rotate-key` has sealed them all under VULCAN_SECRET_KEY.
    #[arg(long, env = "VULCAN_SECRET_KEY_PREVIOUS", hide_env_values = true)]
    pub secret_key_previous: Option<String>,

    /// Seconds between pings of WebSocket clients; a client that answers none of three
    /// (it is not reading) is closed with 1008.
    #[arg(long, env = "VULCAN_WS_PING_S", default_value_t = 20)]
    pub ws_ping_s: u64,

    /// Failed authentications answered per client address and minute; further attempts
    /// without a valid key get 429 in that minute (a valid key is always served; 0: no
    /// limit).
    #[arg(long, env = "VULCAN_AUTH_FAILURES_PER_MINUTE", default_value_t = 30)]
    pub auth_failures_per_minute: u32,

    /// WebSockets one key may have open at once; more are refused with 429.
    #[arg(long, env = "VULCAN_WS_MAX_PER_KEY", default_value_t = 32)]
    pub ws_max_per_key: usize,

    /// Reverse proxies (comma-separated addresses or ranges like 10.0.0.0/8) whose
    /// X-Forwarded-For names the client: failed logins are then counted per client behind
    /// them. None by default (the peer address is the client).
    #[arg(long, env = "VULCAN_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,

    /// Days audit records are kept; older ones are removed by the server, and the removal
    /// is itself recorded (0: keep them forever).
    #[arg(long, env = "VULCAN_AUDIT_RETENTION_DAYS", default_value_t = 90)]
    pub audit_retention_days: u64,

    /// Per-tenant quota (tenants without their own): workloads pending or running at once.
    #[arg(long, env = "VULCAN_TENANT_MAX_CONCURRENT", default_value_t = 64)]
    pub tenant_max_concurrent: u32,

    /// Per-tenant quota: submissions per rolling minute.
    #[arg(long, env = "VULCAN_TENANT_PER_MINUTE", default_value_t = 600)]
    pub tenant_per_minute: u32,

    /// Per-tenant quota: CPUs of its active workloads together.
    #[arg(long, env = "VULCAN_TENANT_MAX_CPUS", default_value_t = 64)]
    pub tenant_max_cpus: u32,

    /// Per-tenant quota: memory (MiB) of its active workloads together.
    #[arg(long, env = "VULCAN_TENANT_MAX_MEM_MB", default_value_t = 16384)]
    pub tenant_max_mem_mb: u32,

    /// Per-tenant quota: schedules a tenant may have.
    #[arg(long, env = "VULCAN_TENANT_MAX_SCHEDULES", default_value_t = 100)]
    pub tenant_max_schedules: u32,

    /// Per-tenant quota: the shortest time between two ticks of one schedule, in seconds
    /// (a cron that ticks more often is refused).
    #[arg(
        long,
        env = "VULCAN_TENANT_MIN_SCHEDULE_INTERVAL_S",
        default_value_t = 1
    )]
    pub tenant_min_schedule_interval_s: u32,

    /// Network egress: off (no workload has a network), allow-listed (only what a tenant's
    /// quota lists in egress_allow) or open (any public address a workload's policy names).
    #[arg(long, env = "VULCAN_EGRESS", default_value = "off")]
    pub egress: vulcan_engine::EgressMode,

    /// The addresses sandboxes with a network get, a /30 each.
    #[arg(long, env = "VULCAN_EGRESS_SUBNET", default_value = "10.213.0.0/16")]
    pub egress_subnet: String,

    /// The resolver allowed names are looked up with (ip:port) [default: the first
    /// nameserver of /etc/resolv.conf].
    #[arg(long, env = "VULCAN_EGRESS_DNS")]
    pub egress_dns: Option<std::net::SocketAddr>,

    /// Workloads that may wait for a slot, per backend; beyond it submissions get 503.
    #[arg(long, env = "VULCAN_QUEUE_LIMIT", default_value_t = 256)]
    pub queue_limit: usize,

    /// QEMU for the microvm backend [default: qemu-system-x86_64 on PATH].
    #[arg(long, env = "VULCAN_QEMU_BIN")]
    pub qemu_bin: Option<PathBuf>,

    /// The guest assets (vmlinuz, initramfs.cpio, rootfs.ext4) [default: .tools/guest from scripts/guest.sh].
    #[arg(long, env = "VULCAN_MICROVM_ASSETS")]
    pub microvm_assets: Option<PathBuf>,

    /// An initramfs to boot instead of the assets' one.
    #[arg(long, env = "VULCAN_MICROVM_INITRAMFS")]
    pub microvm_initramfs: Option<PathBuf>,

    /// Accelerator: auto (KVM if a probe guest boots under it, else TCG), kvm or tcg.
    #[arg(long, env = "VULCAN_MICROVM_ACCEL", value_enum, default_value = "auto")]
    pub microvm_accel: AccelArg,

    /// Warm VMs per runtime: a number for every runtime, or python=1,node=1,go=0.
    #[arg(
        long,
        env = "VULCAN_MICROVM_POOL",
        default_value = "python=1,node=1,go=1"
    )]
    pub microvm_pool: String,

    /// microvm workloads run at once; more wait in line.
    #[arg(long, env = "VULCAN_MICROVM_CONCURRENCY", default_value_t = 4)]
    pub microvm_concurrency: u32,

    /// Seconds a VM may take to boot to its agent.
    #[arg(long, env = "VULCAN_MICROVM_BOOT_TIMEOUT_S", default_value_t = 20)]
    pub microvm_boot_timeout_s: u64,

    /// Restore microVMs from snapshots of booted guests (made at the first need of each
    /// runtime, memory and vCPU shape, kept in <data dir>/microvm/snapshots) instead of
    /// booting them: on or off.
    #[arg(
        long,
        env = "VULCAN_MICROVM_SNAPSHOTS",
        value_enum,
        default_value = "on"
    )]
    pub microvm_snapshots: Switch,

    /// Disk the microVM templates may take, in MiB: image roots converted for microVMs
    /// (<data dir>/microvm/templates) and the snapshots of VMs booted from them. Past it
    /// the least recently used template goes.
    #[arg(long, env = "VULCAN_TEMPLATE_DISK_MB", default_value_t = 8192)]
    pub template_disk_mb: u64,

    /// Volumes one tenant may have.
    #[arg(long, env = "VULCAN_VOLUME_MAX_PER_TENANT", default_value_t = 20)]
    pub volume_max_per_tenant: u32,

    /// Queues one tenant may have.
    #[arg(long, env = "VULCAN_QUEUE_MAX_PER_TENANT", default_value_t = 100)]
    pub queue_max_per_tenant: u32,

    /// Running and paused sandboxes one tenant may have (across the cluster).
    #[arg(long, env = "VULCAN_SANDBOX_MAX_PER_TENANT", default_value_t = 20)]
    pub sandbox_max_per_tenant: u32,

    /// Memory (MiB) one tenant's running sandboxes may hold together.
    #[arg(long, env = "VULCAN_SANDBOX_TENANT_MEM_MB", default_value_t = 16_384)]
    pub sandbox_tenant_mem_mb: u32,

    /// Disk (MiB) one tenant's running and paused sandboxes may hold together.
    #[arg(long, env = "VULCAN_SANDBOX_TENANT_DISK_MB", default_value_t = 65_536)]
    pub sandbox_tenant_disk_mb: u32,

    /// Sandboxes this node holds at once.
    #[arg(long, env = "VULCAN_SANDBOX_MAX_PER_NODE", default_value_t = 64)]
    pub sandbox_max_per_node: u32,

    /// The longest a sandbox's deadline may be from now, in seconds (`timeout_s`).
    #[arg(long, env = "VULCAN_SANDBOX_MAX_TIMEOUT_S", default_value_t = 86_400)]
    pub sandbox_max_timeout_s: u32,

    /// The isolation of a sandbox that does not name one (an E2B SDK's never does): `auto`
    /// is gVisor where it runs, else a microVM.
    #[arg(
        long,
        env = "VULCAN_SANDBOX_ISOLATION",
        value_enum,
        default_value = "auto"
    )]
    pub sandbox_isolation: SandboxIsolationArg,

    /// The disk a sandbox may fill when it does not say (`resources.disk_mb`), in MiB.
    #[arg(long, env = "VULCAN_SANDBOX_DISK_MB", default_value_t = 1024)]
    pub sandbox_disk_mb: u32,

    /// Largest size an image may unpack to, in MiB.
    #[arg(long, env = "VULCAN_IMAGE_MAX_MB", default_value_t = 8192)]
    pub image_max_mb: u64,
}

/// The first `name` on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `rel` under the working directory, then under each directory above the binary (where a
/// checkout's `.tools` is, for `target/release/vulcan`).
fn near_here(rel: &str) -> impl Iterator<Item = PathBuf> + '_ {
    let exe_dirs = std::env::current_exe()
        .ok()
        .map(|exe| {
            exe.ancestors()
                .skip(1)
                .map(PathBuf::from)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    std::iter::once(PathBuf::from("."))
        .chain(exe_dirs)
        .map(move |dir| dir.join(rel))
}

const DENO_IN_TOOLS: &str = ".tools/deno/node_modules/@deno/linux-x64-glibc/deno";

impl ServeArgs {
    pub fn db_path(&self) -> PathBuf {
        self.db_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("vulcan.db"))
    }

    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "local".into())
        })
    }

    /// The configured Deno, else the one scripts/setup.sh installs (looked for from the
    /// working directory and from the binary's own location), else `deno` on PATH.
    pub fn deno(&self) -> Option<PathBuf> {
        if let Some(path) = &self.deno_bin {
            return Some(path.clone());
        }
        near_here(DENO_IN_TOOLS)
            .chain(on_path("deno"))
            .find(|p| p.is_file())
    }

    pub fn qemu(&self) -> Option<PathBuf> {
        self.qemu_bin
            .clone()
            .or_else(|| on_path("qemu-system-x86_64"))
    }

    /// The configured guest assets, else `.tools/guest` near the working directory or the
    /// binary (where scripts/guest.sh puts them).
    pub fn microvm_assets(&self) -> PathBuf {
        if let Some(p) = &self.microvm_assets {
            return p.clone();
        }
        near_here(".tools/guest")
            .find(|d| d.join("vmlinuz").is_file())
            .unwrap_or_else(|| PathBuf::from(".tools/guest"))
    }

    /// `VULCAN_MICROVM_POOL` as runtime → size.
    pub fn microvm_pool(
        &self,
    ) -> Result<std::collections::HashMap<vulcan_domain::Runtime, usize>, String> {
        use vulcan_domain::Runtime;
        let runtimes = [Runtime::Python, Runtime::Node, Runtime::Go];
        let text = self.microvm_pool.trim();
        if let Ok(n) = text.parse::<usize>() {
            return Ok(runtimes.into_iter().map(|r| (r, n)).collect());
        }
        let mut pool: std::collections::HashMap<Runtime, usize> =
            runtimes.into_iter().map(|r| (r, 0)).collect();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let parsed = entry.split_once('=').and_then(|(rt, n)| {
                let rt: Runtime = rt.trim().parse().ok()?;
                Some((rt, n.trim().parse::<usize>().ok()?))
            });
            match parsed {
                Some((rt, n)) if runtimes.contains(&rt) => {
                    pool.insert(rt, n);
                }
                _ => {
                    return Err(format!(
                        "VULCAN_MICROVM_POOL entry {entry:?} is not valid: use a number, or python=N,node=N,go=N"
                    ))
                }
            }
        }
        Ok(pool)
    }

    pub fn runsc(&self) -> Option<PathBuf> {
        self.runsc_bin.clone().or_else(|| on_path("runsc"))
    }

    /// `host=user:password` entries as a map, or which entry is malformed.
    pub fn registry_credentials(
        &self,
    ) -> Result<std::collections::HashMap<String, (String, String)>, String> {
        self.registry_credentials
            .iter()
            .filter(|e| !e.trim().is_empty())
            .map(|entry| {
                let parsed = entry.split_once('=').and_then(|(host, login)| {
                    let (user, password) = login.split_once(':')?;
                    Some((
                        host.trim().to_owned(),
                        (user.to_owned(), password.to_owned()),
                    ))
                });
                parsed.ok_or_else(|| {
                    let host = entry.split('=').next().unwrap_or_default();
                    format!(
                        "VULCAN_REGISTRY_CREDENTIALS entry for {host:?} is not host=user:password"
                    )
                })
            })
            .collect()
    }
}
