//! For tests and benchmarks (feature `testing`): a throwaway PostgreSQL server — Debian's
//! PostgreSQL binaries, `initdb` in a temporary directory, started as the `postgres` user
//! (PostgreSQL refuses to run as root) on a free loopback port, never the system's own
//! server, stopped and removed when dropped — and [`workload`], a pending workload to
//! store.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A PostgreSQL server of a test's own.
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    databases: AtomicU32,
    /// Whether the server counts statements (`pg_stat_statements`).
    counts_statements: bool,
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Where Debian puts the server binaries (`/usr/lib/postgresql/<version>/bin`).
fn bin_dir() -> Result<PathBuf, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("PostgreSQL is not installed (run scripts/setup.sh): {e}"))?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| "no initdb under /usr/lib/postgresql (run scripts/setup.sh)".into())
}

impl PgServer {
    /// Initialises and starts a server; fails with what is missing.
    pub fn start() -> Result<PgServer, String> {
        PgServer::start_with(false)
    }

    /// A server that counts every statement (`pg_stat_statements`, created in each new
    /// database), for a benchmark's figures.
    pub fn start_counting_statements() -> Result<PgServer, String> {
        PgServer::start_with(true)
    }

    fn start_with(counts_statements: bool) -> Result<PgServer, String> {
        let bin = bin_dir()?;
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vulcan-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        // The server runs as `postgres` and must be able to write here.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .map_err(|e| e.to_string())?;
        let server = PgServer {
            bin,
            dir,
            port: free_port()?,
            databases: AtomicU32::new(0),
            counts_statements,
        };
        server.as_postgres(
            "initdb",
            &[
                "-D",
                &server.data().to_string_lossy(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        )?;
        server.pg_ctl(&["start", "-w"])?;
        Ok(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn as_postgres(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {tool}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `pg_ctl` with the server's options; the log goes to a file (a server that inherited
    /// the caller's stdout would hold its pipe open).
    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=300{}",
            self.port,
            self.dir.display(),
            if self.counts_statements {
                " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
            } else {
                ""
            }
        );
        let data = self.data().to_string_lossy().into_owned();
        let log = self.dir.join("pg.log").to_string_lossy().into_owned();
        let mut all = vec!["-D", &data, "-l", &log, "-o", &options];
        all.extend_from_slice(args);
        self.as_postgres("pg_ctl", &all)
    }

    /// A new, empty database; its URL.
    pub fn database(&self) -> Result<String, String> {
        let name = format!("t{}", self.databases.fetch_add(1, Ordering::Relaxed));
        self.as_postgres(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                &name,
            ],
        )?;
        let url = self.url(&name);
        if self.counts_statements {
            self.psql(&url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
        }
        Ok(url)
    }

    /// One SQL statement through `psql` on the database at `url`; its output, unaligned.
    pub fn psql(&self, url: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([url, "-Atqc", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(format!("psql: {}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Restarts the server (fast: open connections are cut).
    pub fn restart(&self) -> Result<(), String> {
        self.pg_ctl(&["restart", "-m", "fast", "-w"])
    }

    /// The server's log, for a test's failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pg.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A pending workload of the default tenant with its spec (node code, an archive, a
/// secret's name, a note), created now to the millisecond, as stores keep times.
pub fn workload(
    id: &str,
    isolation: vulcan_domain::Isolation,
) -> (vulcan_domain::Workload, vulcan_domain::WorkloadSpec) {
    use vulcan_domain::{Code, Isolation, Resources, Runtime, Workload, WorkloadSpec};
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(now);
    let run = Code {
        runtime: Runtime::Node,
        isolation,
        code: Some("export default () => 1".into()),
        code_archive: Some(vec![1, 2, 3]),
        image: None,
        command: None,
        env: Default::default(),
        secrets: vec!["DB_PASSWORD".into()],
        network: Default::default(),
        resources: Resources::default(),
    };
    let w = Workload::pending(
        id.to_owned(),
        "default".into(),
        &run,
        Isolation::Auto,
        "h".into(),
        now,
        Some("req-1".into()),
    );
    let spec = WorkloadSpec {
        id: id.to_owned(),
        tenant: "default".into(),
        run,
        input: serde_json::json!({"a": 1}),
        note: Some("auto: a note".into()),
        invocation: None,
        async_policy: None,
        volumes: Vec::new(),
        node: None,
        trace: None,
        attached: Vec::new(),
    };
    (w, spec)
}
