//! gVisor's long-lived sandboxes driven as a library: a real local registry and image,
//! real runsc, real loop-mounted disks. The HTTP tests in `crates/vulcan/tests/sandboxes.rs`
//! are the acceptance tests; these pin the driver's own contract.

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vulcan_domain::{
    FileErrorKind, LiveSandbox, LogStream, ProcessLaunch, ProcessOutput, SandboxDriver,
    SandboxLaunch, SandboxResources,
};
use vulcan_gvisor::control;
use vulcan_gvisor::image::{RegistryClient, RegistryOptions};
use vulcan_gvisor::sandboxes::GvisorSandboxes;
use vulcan_gvisor::testing::Registry;
use vulcan_gvisor::{GvisorBackend, GvisorConfig, ImageStore};
use vulcan_store::SqliteStore;

async fn driver(registry: &Registry, dir: &Path) -> GvisorSandboxes {
    let client = RegistryClient::new(RegistryOptions {
        insecure: vec![registry.host.clone()],
        allowed: vec![registry.host.clone()],
        ..RegistryOptions::default()
    });
    let index = SqliteStore::open(dir.join("vulcan.db")).expect("a SQLite store");
    let images = ImageStore::open(
        dir.join("images"),
        client,
        512 * 1024 * 1024,
        Arc::new(index),
        "node-1".into(),
    )
    .await
    .expect("an image store");
    let backend = GvisorBackend::start(
        GvisorConfig::new(Some("runsc".into()), dir.join("gvisor")),
        images,
    );
    let driver = GvisorSandboxes::new(&backend);
    let available = driver.availability();
    assert!(
        available.available,
        "gvisor sandboxes unavailable: {available:?}"
    );
    driver
}

/// Everything a process wrote, by stream, in order.
#[derive(Default)]
struct Recorded(Mutex<Vec<(LogStream, Vec<u8>)>>);

impl ProcessOutput for Recorded {
    fn chunk(&self, stream: LogStream, bytes: &[u8]) {
        self.0.lock().unwrap().push((stream, bytes.to_vec()));
    }
}

impl Recorded {
    fn text(&self, stream: LogStream) -> String {
        let all = self.0.lock().unwrap();
        let bytes: Vec<u8> = all
            .iter()
            .filter(|(s, _)| *s == stream)
            .flat_map(|(_, b)| b.clone())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn sh(script: &str) -> ProcessLaunch {
    ProcessLaunch {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        ..ProcessLaunch::default()
    }
}

async fn run(sandbox: &dyn LiveSandbox, script: &str) -> (Option<i32>, String, String) {
    let out = Arc::new(Recorded::default());
    let process = sandbox.spawn(&sh(script), out.clone()).await.unwrap();
    let exit = process.wait().await;
    (
        exit.exit_code,
        out.text(LogStream::Stdout),
        out.text(LogStream::Stderr),
    )
}

fn mounted_under(dir: &Path) -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let dir = dir.to_string_lossy().into_owned();
    mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| m.starts_with(&dir))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_sandbox_runs_processes_keeps_its_files_within_its_disk_and_leaves_nothing() {
    let registry = Registry::start();
    let image = registry.push("busybox:sandbox", "busybox");
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = driver(&registry, dir.path()).await;
    let sandbox = driver
        .create(SandboxLaunch {
            volumes: Vec::new(),
            id: "sbxlib1".into(),
            image,
            resources: SandboxResources {
                cpus: 1,
                mem_mb: 128,
                disk_mb: 32,
            },
            env: [("GREETING".to_owned(), "hi".to_owned())].into(),
        })
        .await
        .expect("a sandbox");
    assert!(sandbox.alive());

    assert_eq!(
        run(sandbox.as_ref(), "echo $GREETING; echo oops >&2; exit 7").await,
        (Some(7), "hi\n".into(), "oops\n".into())
    );

    // Processes start through the sandbox's control socket, not `runsc exec` (which stays
    // the way back): this runsc speaks the protocol the server uses.
    let null = std::fs::File::open("/dev/null").unwrap();
    let (out_read, out_write) = std::io::pipe().unwrap();
    let exec = |argv: &[String], out: &dyn AsFd| {
        control::execute(&control::Exec {
            container: "sbxlib1",
            argv,
            env: &["PATH=/bin".into()],
            cwd: "/",
            uid: 0,
            gid: 0,
            extra_gids: &[],
            capabilities: 0,
            stdio: [null.as_fd(), out.as_fd(), out.as_fd()],
        })
    };
    let pid = exec(
        &["sh", "-c", "echo direct; exit 3"].map(String::from),
        &out_write,
    )
    .expect("the control socket starts a process");
    drop(out_write);
    let status = control::wait("sbxlib1", pid).await.unwrap();
    assert_eq!(control::ended(status), (Some(3), None));
    assert_eq!(std::io::read_to_string(out_read).unwrap(), "direct\n");
    let missing = exec(&["/no/such/program".into()], &null);
    assert!(
        matches!(missing, Err(control::ControlError::Refused(_))),
        "a missing program is refused, not taken for a missing socket: {missing:?}"
    );

    // What a process writes anywhere stays for the next one.
    let (code, _, _) = run(
        sandbox.as_ref(),
        "mkdir -p /opt/tool && echo v1 > /opt/tool/version && echo t > /tmp/t",
    )
    .await;
    assert_eq!(code, Some(0));
    assert_eq!(
        run(sandbox.as_ref(), "cat /opt/tool/version /tmp/t")
            .await
            .1,
        "v1\nt\n"
    );

    // stdin reaches the process, and closing it ends `cat`.
    let out = Arc::new(Recorded::default());
    let cat = sandbox
        .spawn(
            &ProcessLaunch {
                argv: vec!["cat".into()],
                stdin: true,
                ..ProcessLaunch::default()
            },
            out.clone(),
        )
        .await
        .unwrap();
    cat.write_stdin(b"echoed back\n").await.unwrap();
    cat.close_stdin().await;
    assert_eq!(cat.wait().await.exit_code, Some(0));
    assert_eq!(out.text(LogStream::Stdout), "echoed back\n");

    // A process that never ends is ended by a signal, and says so.
    let sleeper = sandbox
        .spawn(&sh("sleep 1000"), Arc::new(Recorded::default()))
        .await
        .unwrap();
    assert!(
        sleeper.pid() > 1,
        "a pid inside the sandbox: {}",
        sleeper.pid()
    );
    let waited = tokio::time::timeout(Duration::from_millis(300), sleeper.wait()).await;
    assert!(waited.is_err(), "it still runs");
    sleeper.signal(9).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), sleeper.wait())
        .await
        .expect("the signal ends it");
    assert_eq!(
        exit,
        vulcan_domain::ProcessExit {
            exit_code: None,
            signal: Some(9)
        }
    );

    // Files: written from the host, read inside; written inside, read from the host.
    let files = sandbox.files();
    let mut upload = files.open_write("/home/data.txt").await.unwrap();
    upload.write(b"from the host\n").await.unwrap();
    upload.finish().await.unwrap();
    assert_eq!(
        run(sandbox.as_ref(), "cat /home/data.txt").await.1,
        "from the host\n"
    );
    let mut reader = files.open_read("/opt/tool/version").await.unwrap();
    assert_eq!(reader.read(1024).await.unwrap(), b"v1\n");

    // The disk is the limit: a filler meets ENOSPC inside, an upload past it fails
    // and leaves nothing, and the sandbox still answers.
    let (code, _, err) = run(sandbox.as_ref(), "dd if=/dev/zero of=/fill bs=1M count=64").await;
    assert_ne!(code, Some(0), "filling past 32 MB fails: {err}");
    assert!(err.contains("space"), "{err}");
    let mut upload = files.open_write("/more").await.unwrap();
    let failed = async {
        for _ in 0..64 {
            upload.write(&[7u8; 1024 * 1024]).await?;
        }
        Ok::<_, vulcan_domain::FileError>(())
    }
    .await;
    assert_eq!(failed.unwrap_err().kind, FileErrorKind::NoSpace);
    drop(upload);
    assert!(files.stat("/more").await.is_err());
    assert_eq!(run(sandbox.as_ref(), "rm /fill && echo ok").await.1, "ok\n");
    assert!(sandbox.usage().memory_bytes > 0);

    sandbox.destroy().await;
    assert!(!sandbox.alive(), "killed at once");
    driver.settle().await;
    assert!(
        mounted_under(dir.path()).is_empty(),
        "{:?}",
        mounted_under(dir.path())
    );
    assert!(!dir.path().join("gvisor/sandboxes/sbxlib1").exists());
}
