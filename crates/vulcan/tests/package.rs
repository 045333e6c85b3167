//! The Debian package (scripts/deb.sh), built from the binary this build made: its control
//! fields and files checked, installed with dpkg into a scratch root, its unit verified by
//! systemd-analyze, and a server started from the unit's own command line answering
//! `/healthz`; then removed, its settings kept.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn ok(what: &str, out: Output) -> String {
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed: {said}");
    said
}

fn run(what: &str, command: &mut Command) -> String {
    ok(
        what,
        command.output().unwrap_or_else(|e| panic!("{what}: {e}")),
    )
}

/// A scratch root dpkg installs into: its database, and nothing else.
fn scratch_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "var/log",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    root
}

fn dpkg(root: &Path, args: &[&str]) -> String {
    let mut command = Command::new("dpkg");
    command
        .arg(format!("--root={}", root.display()))
        // The scripts honour DPKG_ROOT; the scratch root has no shell to chroot into.
        .args(["--force-script-chrootless", "--force-depends"])
        .args(args);
    run(&format!("dpkg {args:?}"), &mut command)
}

/// `key=value` lines of the unit's `[Service]` section named `key`.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_debian_package_installs_a_server_that_starts_from_its_unit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    run(
        "scripts/deb.sh",
        Command::new("bash")
            .arg(repo("scripts/deb.sh"))
            .arg(&out)
            .env("VULCAN_DEB_BINARY", env!("CARGO_BIN_EXE_vulcan"))
            .env("VULCAN_DEB_COMPRESSION", "none"),
    );
    let deb = out.join(format!("vulcan_{}_amd64.deb", env!("CARGO_PKG_VERSION")));
    assert!(deb.exists(), "no {}", deb.display());

    // What it says of itself: the libraries it links (from dpkg-shlibdeps), each tier's
    // tools as Recommends.
    let field = |name: &str| {
        run(
            "dpkg-deb --field",
            Command::new("dpkg-deb").arg("--field").arg(&deb).arg(name),
        )
        .trim()
        .to_owned()
    };
    assert_eq!(field("Package"), "vulcan");
    assert_eq!(field("Version"), env!("CARGO_PKG_VERSION"));
    assert!(
        field("Depends").contains("libc6 (>= 2."),
        "{}",
        field("Depends")
    );
    let recommends = field("Recommends");
    for tier in ["runsc", "qemu-system-x86", "nftables"] {
        assert!(recommends.contains(tier), "{recommends}");
    }
    let contents = run(
        "dpkg-deb --contents",
        Command::new("dpkg-deb").arg("--contents").arg(&deb),
    );
    for file in [
        "./usr/bin/vulcan",
        "./lib/systemd/system/vulcan.service",
        "./etc/vulcan/vulcan.env",
        "./usr/share/man/man1/vulcan.1.gz",
        "./usr/share/man/man1/vulcan-serve.1.gz",
        "./usr/share/man/man1/vulcan-sandbox-create.1.gz",
        "./usr/share/bash-completion/completions/vulcan",
        "./usr/share/zsh/vendor-completions/_vulcan",
        "./usr/share/fish/vendor_completions.d/vulcan.fish",
        "./usr/share/doc/vulcan/copyright",
        "./usr/share/vulcan/prometheus/alerts.yml",
    ] {
        assert!(
            contents.contains(file),
            "{file} is not in the package: {contents}"
        );
    }

    // Installed into a scratch root: every file where the package put it.
    let root = scratch_root(dir.path());
    dpkg(&root, &["-i", deb.to_str().unwrap()]);
    let status = dpkg(&root, &["-s", "vulcan"]);
    assert!(status.contains("Status: install ok installed"), "{status}");
    let binary = root.join("usr/bin/vulcan");
    let version = run("vulcan --version", Command::new(&binary).arg("--version"));
    assert!(version.starts_with("vulcan "), "{version}");
    let sections = run("readelf -S", Command::new("readelf").arg("-S").arg(&binary));
    assert!(
        !sections.contains(".debug_info"),
        "the packaged binary carries debug info"
    );
    let settings = root.join("etc/vulcan/vulcan.env");
    let mode = std::os::unix::fs::PermissionsExt::mode(&settings.metadata().unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o600,
        "the settings may hold a database password"
    );
    let completion =
        std::fs::read_to_string(root.join("usr/share/bash-completion/completions/vulcan")).unwrap();
    assert!(completion.contains("sandbox"), "{completion}");

    // The unit as installed verifies, with its binary and man pages where they are here.
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/vulcan.service")).unwrap();
    let exec = unit_values(&unit, "ExecStart");
    assert_eq!(exec, ["/usr/bin/vulcan serve"]);
    let here = dir.path().join("vulcan.service");
    std::fs::write(
        &here,
        unit.replace(
            "ExecStart=/usr/bin/vulcan",
            &format!("ExecStart={}", binary.display()),
        ),
    )
    .unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&here)
        .env("MANPATH", root.join("usr/share/man"))
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let said = ok("systemd-analyze verify", verified);
    assert!(!said.contains("vulcan.service"), "{said}");

    // A server started as the unit starts it: its command, environment and directory,
    // under the scratch root, on a free port.
    let mut command =
        Command::new(root.join(exec[0].split(' ').next().unwrap().trim_start_matches('/')));
    command.args(exec[0].split(' ').skip(1));
    for pair in unit_values(&unit, "Environment") {
        let (name, value) = pair.split_once('=').unwrap();
        let value = if value.starts_with('/') {
            root.join(value.trim_start_matches('/'))
                .display()
                .to_string()
        } else {
            value.to_owned()
        };
        command.env(name, value);
    }
    let cwd = unit_values(&unit, "WorkingDirectory")[0];
    let cwd = root.join(cwd.trim_start_matches('/'));
    std::fs::create_dir_all(&cwd).unwrap();
    let port = free_port();
    let mut server = command
        .current_dir(&cwd)
        .env("VULCAN_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let healthy = loop {
        match ureq::get(&format!("http://127.0.0.1:{port}/healthz")).call() {
            Ok(answer) => break answer.status(),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                let _ = server.kill();
                panic!("the packaged server did not answer /healthz: {e}");
            }
        }
    };
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let stopped = server.wait().unwrap();
    assert_eq!(healthy, 200);
    assert!(stopped.success(), "{stopped}");
    assert!(
        root.join("var/lib/vulcan/vulcan.db").exists(),
        "its state is in the unit's state directory"
    );

    // Removed: the binary goes, the settings (a conffile) and the state stay.
    dpkg(&root, &["-r", "vulcan"]);
    assert!(!binary.exists());
    assert!(settings.exists(), "removal keeps the settings");
    dpkg(&root, &["--purge", "vulcan"]);
    assert!(!settings.exists(), "purging removes the settings");
    assert!(
        root.join("var/lib/vulcan/vulcan.db").exists(),
        "and never the data"
    );
}
