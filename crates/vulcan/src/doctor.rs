//! `vulcan doctor`: what this host can run, tier by tier, with the fix for what it cannot.
//! It reads the same settings as `vulcan serve` (VULCAN_* variables, a .env file, flags)
//! and changes nothing: it starts no backend, no pool and no VM. `vulcan serve` logs the
//! same checks (but the database's, which it makes by connecting) when it starts.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::config::ServeArgs;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ok,
    /// It works, but not as well as it could.
    Warn,
    /// The tier cannot run.
    Fail,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warn => "warn",
            State::Fail => "fail",
        }
    }
}

/// One thing looked at.
#[derive(Debug, Clone)]
pub struct Check {
    /// `host`, `isolate`, `gvisor`, `microvm` or `database`.
    pub tier: &'static str,
    pub name: &'static str,
    pub state: State,
    pub detail: String,
    /// What to do about it, when it is not ok.
    pub fix: Option<String>,
}

fn check(tier: &'static str, name: &'static str, state: State, detail: String) -> Check {
    Check {
        tier,
        name,
        state,
        detail,
        fix: None,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Check {
        if self.state != State::Ok {
            self.fix = Some(fix.into());
        }
        self
    }
}

/// The tiers a host may run.
pub const TIERS: [&str; 3] = ["isolate", "gvisor", "microvm"];

/// `program --version`'s first line.
fn first_line_of_version(program: &Path) -> Result<String, String> {
    let out = std::process::Command::new(program)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} does not run: {e}", program.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().next() {
        Some(line) if out.status.success() => Ok(line.trim().to_owned()),
        _ => Err(format!(
            "{} --version failed ({})",
            program.display(),
            out.status
        )),
    }
}

/// A program found (and running) for `tier`, or the fix.
fn program(tier: &'static str, what: &str, path: Option<PathBuf>, fix: &str) -> Check {
    match path {
        None => check(tier, "program", State::Fail, format!("no {what} found")).fix(fix),
        Some(path) => match first_line_of_version(&path) {
            Ok(version) => check(
                tier,
                "program",
                State::Ok,
                format!("{} ({version})", path.display()),
            ),
            Err(why) => check(tier, "program", State::Fail, why).fix(fix),
        },
    }
}

/// Free bytes on the filesystem that holds `path` (or its nearest existing ancestor).
fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let c = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs is zeroed plain data, filled by the call from a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail * st.f_frsize)
}

/// Whether this process runs as root.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The checks that need nothing but this host.
pub fn host_checks(args: &ServeArgs) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(if is_root() {
        check("host", "user", State::Ok, "root".into())
    } else {
        check(
            "host",
            "user",
            State::Fail,
            "not root: gVisor sandboxes and microVMs need root (runsc, loop devices, taps)".into(),
        )
        .fix("run vulcan serve as root (the systemd unit in contrib/ does), or use only the isolate tier")
    });
    checks.push(if vulcan_sandbox::cgroup::is_v2() {
        check(
            "host",
            "cgroups",
            State::Ok,
            "cgroup v2 (unified) at /sys/fs/cgroup".into(),
        )
    } else {
        check(
            "host",
            "cgroups",
            State::Warn,
            "cgroup v1: limits work, but CPU accounting and pressure are coarser".into(),
        )
        .fix("boot with systemd.unified_cgroup_hierarchy=1 for cgroup v2")
    });
    let wanted = (args.image_max_mb + args.template_disk_mb) * 1024 * 1024;
    checks.push(match free_bytes(&args.data_dir) {
        Some(free) if free >= wanted => check(
            "host",
            "disk",
            State::Ok,
            format!(
                "{} GiB free for {} (images and templates may take {} GiB)",
                free >> 30,
                args.data_dir.display(),
                wanted >> 30
            ),
        ),
        Some(free) => check(
            "host",
            "disk",
            State::Warn,
            format!(
                "{} GiB free for {}, less than images and templates may take ({} GiB)",
                free >> 30,
                args.data_dir.display(),
                wanted >> 30
            ),
        )
        .fix("free disk space, or lower VULCAN_IMAGE_MAX_MB and VULCAN_TEMPLATE_DISK_MB"),
        None => check(
            "host",
            "disk",
            State::Warn,
            format!("cannot tell the free space for {}", args.data_dir.display()),
        )
        .fix("check that VULCAN_DATA_DIR names a directory on a local disk"),
    });

    checks.push(program(
        "isolate",
        "Deno",
        args.deno(),
        "bash scripts/setup.sh installs Deno from npm (@deno/linux-x64-glibc) into .tools/, or set VULCAN_DENO_BIN",
    ));

    checks.push(program(
        "gvisor",
        "runsc",
        args.runsc(),
        "apt-get install runsc (Debian), or set VULCAN_RUNSC_BIN",
    ));
    checks.push(if args.gvisor_platform == "kvm" {
        check(
            "gvisor",
            "platform",
            State::Warn,
            "kvm: hangs on hosts whose KVM is paravirtualized".into(),
        )
        .fix("VULCAN_GVISOR_PLATFORM=ptrace unless the host has real VT-x/AMD-V")
    } else {
        check(
            "gvisor",
            "platform",
            State::Ok,
            args.gvisor_platform.clone(),
        )
    });

    checks.push(program(
        "microvm",
        "QEMU",
        args.qemu(),
        "apt-get install qemu-system-x86, or set VULCAN_QEMU_BIN",
    ));
    let assets = args.microvm_assets();
    let missing: Vec<&str> = ["vmlinuz", "initramfs.cpio", "rootfs.ext4"]
        .into_iter()
        .filter(|f| !assets.join(f).is_file())
        .collect();
    checks.push(if missing.is_empty() {
        check("microvm", "guest", State::Ok, format!("kernel, initramfs and root in {}", assets.display()))
    } else {
        check(
            "microvm",
            "guest",
            State::Fail,
            format!("{} missing from {}", missing.join(", "), assets.display()),
        )
        .fix("bash scripts/guest.sh builds them (a Debian kernel, the agent, python, node and go), or set VULCAN_MICROVM_ASSETS")
    });
    checks.push(accelerator(&assets));
    checks
}

/// KVM where a guest really boots under it (as the backend's own probe found), else TCG.
fn accelerator(assets: &Path) -> Check {
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm");
    let probed = std::fs::read_to_string(assets.join("kvm-probe")).unwrap_or_default();
    let tcg = |detail: String| {
        check("microvm", "accelerator", State::Warn, detail).fix(
            "a host with VT-x/AMD-V and a usable /dev/kvm boots and restores microVMs many times faster",
        )
    };
    match (kvm, probed.trim().rsplit_once(' ')) {
        (Err(e), _) => tcg(format!("TCG (software emulation): /dev/kvm cannot be opened ({e})")),
        (Ok(_), Some((_, "kvm"))) => check(
            "microvm",
            "accelerator",
            State::Ok,
            "KVM (a probe guest booted under it)".into(),
        ),
        (Ok(_), Some((_, "tcg"))) => tcg(
            "TCG: /dev/kvm is there but a standard guest did not boot under it (e.g. paravirtualized KVM)"
                .into(),
        ),
        (Ok(_), _) => check(
            "microvm",
            "accelerator",
            State::Ok,
            "/dev/kvm opens; the server probes it with a guest at its first start".into(),
        ),
    }
}

/// The database the server would use: SQLite's file, or what PostgreSQL says.
pub async fn database_check(args: &ServeArgs) -> Check {
    let Some(url) = &args.database_url else {
        return check(
            "database",
            "store",
            State::Ok,
            format!("embedded SQLite at {}", args.db_path().display()),
        );
    };
    match vulcan_store::PgStore::probe(url).await {
        Ok((version, skew)) if skew.abs() <= 1.0 => check(
            "database",
            "store",
            State::Ok,
            format!("PostgreSQL {version}, its clock {skew:+.2} s from this host's"),
        ),
        Ok((version, skew)) => check(
            "database",
            "store",
            State::Warn,
            format!("PostgreSQL {version}, but its clock is {skew:+.1} s from this host's: leases and schedules go by the clocks"),
        )
        .fix("run NTP (systemd-timesyncd or chrony) on every node and on the database's host"),
        Err(why) => check("database", "store", State::Fail, why)
            .fix("check VULCAN_DATABASE_URL, that the server runs and that this host may connect (pg_hba.conf)"),
    }
}

/// Whether `tier` can run, by the checks: the host's failures stop the tiers that need
/// root (gVisor, microVMs), a tier's own stop it, and the database's stop every tier.
pub fn tier_runs(checks: &[Check], tier: &str) -> bool {
    checks.iter().filter(|c| c.state == State::Fail).all(|c| {
        let host_stops = c.tier == "host" && tier != "isolate";
        !(c.tier == tier || c.tier == "database" || host_stops)
    })
}

/// `vulcan doctor`: prints the checks, and exits non-zero when a tier named in `require`
/// cannot run (with none named, zero whatever it found).
pub fn run(args: &ServeArgs, require: &[String], json_out: bool) -> std::process::ExitCode {
    for tier in require {
        if !TIERS.contains(&tier.as_str()) {
            eprintln!("error: --require {tier:?} is not a tier: give isolate, gvisor or microvm");
            return std::process::ExitCode::from(2);
        }
    }
    let mut checks = host_checks(args);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start a runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    checks.push(runtime.block_on(database_check(args)));
    let runs: Vec<(&str, bool)> = TIERS.iter().map(|t| (*t, tier_runs(&checks, t))).collect();
    if json_out {
        let report = json!({
            "tiers": runs.iter().map(|(t, ok)| (t.to_string(), json!(if *ok { "ok" } else { "fail" }))).collect::<serde_json::Map<_, _>>(),
            "checks": checks.iter().map(|c| json!({
                "tier": c.tier, "check": c.name, "state": c.state.as_str(),
                "detail": c.detail, "fix": c.fix,
            })).collect::<Vec<_>>(),
        });
        println!("{report:#}");
    } else {
        for c in &checks {
            println!(
                "{:<9} {:<12} {:<5} {}",
                c.tier,
                c.name,
                c.state.as_str(),
                c.detail
            );
            if let Some(fix) = &c.fix {
                println!("{:<28} fix: {fix}", "");
            }
        }
        let summary: Vec<String> = runs
            .iter()
            .map(|(t, ok)| format!("{t} {}", if *ok { "can run" } else { "cannot run" }))
            .collect();
        println!("\n{}", summary.join(", "));
    }
    let failed: Vec<&String> = require
        .iter()
        .filter(|t| !runs.iter().any(|(tier, ok)| *ok && tier == t))
        .collect();
    if failed.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// What `vulcan serve` logs at start: every check but the database's (what cannot run as
/// a warning; what runs, if less well than it could, with its fix).
pub fn log_summary(args: &ServeArgs) {
    for c in host_checks(args) {
        let (state, fix) = (c.state.as_str(), c.fix.as_deref().unwrap_or(""));
        match c.state {
            State::Ok => {
                tracing::info!(tier = c.tier, check = c.name, state, detail = %c.detail, "doctor")
            }
            State::Warn => {
                tracing::info!(tier = c.tier, check = c.name, state, detail = %c.detail, fix, "doctor")
            }
            State::Fail => {
                tracing::warn!(tier = c.tier, check = c.name, state, detail = %c.detail, fix, "doctor")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing(tier: &'static str) -> Check {
        check(tier, "x", State::Fail, String::new())
    }

    #[test]
    fn a_failure_stops_its_tier_the_hosts_stop_the_root_tiers_and_the_databases_all() {
        let warn = check("microvm", "accelerator", State::Warn, String::new());
        assert!(TIERS
            .iter()
            .all(|t| tier_runs(std::slice::from_ref(&warn), t)));
        let gvisor = [failing("gvisor")];
        assert!(!tier_runs(&gvisor, "gvisor") && tier_runs(&gvisor, "isolate"));
        let host = [failing("host")];
        assert!(tier_runs(&host, "isolate"));
        assert!(!tier_runs(&host, "gvisor") && !tier_runs(&host, "microvm"));
        let database = [failing("database")];
        assert!(TIERS.iter().all(|t| !tier_runs(&database, t)));
    }

    #[test]
    fn a_fix_is_kept_only_for_what_is_not_ok() {
        assert!(check("host", "x", State::Ok, String::new())
            .fix("do")
            .fix
            .is_none());
        assert_eq!(
            check("host", "x", State::Warn, String::new())
                .fix("do")
                .fix
                .as_deref(),
            Some("do")
        );
    }
}
