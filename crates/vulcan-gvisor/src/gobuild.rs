//! Go from source. `runtime: go` with `code` (a `package main` file) or a `code_archive`
//! holding `go.mod` is built by `go build` in a gVisor sandbox — the host's Go toolchain as
//! its read-only root, the source read-write at `/work`, no network, `CGO_ENABLED=0`, no
//! module downloads (`GOPROXY=off`: the standard library and vendored code only) — into a
//! static binary, which then runs where Go runs (a microVM). Builds are kept by the SHA-256
//! of the Go version and the source, so the same code is built once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use vulcan_domain::{
    Builder, ImageConfig, LogSink, LogStream, Resources, Runtime, WorkloadResult, WorkloadSpec,
};
use vulcan_sandbox::archive::{self, Rules};

use crate::bundle;
use crate::sandbox_cgroups::CgroupBase;
use crate::GvisorBackend;

/// A build's bound on time.
const BUILD_TIMEOUT: Duration = Duration::from_secs(300);
/// A build's memory (the compiler and linker of a large program want some).
const BUILD_MEM_MB: u32 = 1024;
/// Compiler output kept for the workload's error.
const ERROR_LINES: usize = 40;

/// The host's Go toolchain, mirrored (hard links where it can) into a root of its own.
struct Toolchain {
    rootfs: PathBuf,
    goroot: PathBuf,
    version: String,
}

/// Builds Go source in gVisor sandboxes (see the module documentation).
pub struct GoSource {
    gvisor: Arc<GvisorBackend>,
    dir: PathBuf,
    toolchain: tokio::sync::OnceCell<Result<Toolchain, String>>,
}

fn go_env(name: &str) -> Result<String, String> {
    let out = std::process::Command::new("go")
        .args(["env", name])
        .env("GOTOOLCHAIN", "local")
        .output()
        .map_err(|e| format!("the go toolchain is not installed here ({e}): install golang-go to build Go source"))?;
    let value = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || value.is_empty() {
        return Err(format!("`go env {name}` failed"));
    }
    Ok(value)
}

/// Copies `path` (a file or a tree) into `root` (absolute) at the same absolute path, as
/// hard links where the filesystem allows; `follow` copies what a symbolic link points to
/// instead.
fn mirror(path: &Path, root: &Path, follow: bool) -> Result<(), String> {
    // `cp` runs from `/` (`--parents` recreates the path below `root` and wants it
    // relative to the working directory): a relative root would land under `/`.
    let root =
        std::path::absolute(root).map_err(|e| format!("cannot resolve {}: {e}", root.display()))?;
    let relative = path.strip_prefix("/").unwrap_or(path);
    let copy = |flags: &str| {
        std::process::Command::new("cp")
            .current_dir("/")
            .arg(flags)
            .arg("--parents")
            .arg(relative)
            .arg(&root)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let (linked, copied) = if follow {
        ("-lL", "-pL")
    } else {
        ("-al", "-a")
    };
    if copy(linked) || copy(copied) {
        Ok(())
    } else {
        Err(format!(
            "cannot copy {} into the toolchain root",
            path.display()
        ))
    }
}

impl Toolchain {
    /// The toolchain's root under `dir`, made on first use (write, then rename).
    fn prepare(dir: &Path) -> Result<Toolchain, String> {
        let version = go_env("GOVERSION")?;
        let goroot = std::fs::canonicalize(go_env("GOROOT")?)
            .map_err(|e| format!("the Go root cannot be found: {e}"))?;
        let rootfs = dir.join("toolchain").join(&version);
        let done = Toolchain {
            rootfs: rootfs.clone(),
            goroot: goroot.clone(),
            version,
        };
        if rootfs.join(".complete").exists() {
            return Ok(done);
        }
        let partial = rootfs.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).map_err(|e| e.to_string())?;
        mirror(&goroot, &partial, false)?;
        // Distributions link parts of the Go root elsewhere (Debian: src and pkg/include
        // -> /usr/share/go-N): what those links point to comes along.
        let mut stack = vec![goroot.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)
                .map_err(|e| e.to_string())?
                .flatten()
            {
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_symlink() {
                    if let Ok(target) = std::fs::canonicalize(entry.path()) {
                        if !target.starts_with(&goroot)
                            && !partial
                                .join(target.strip_prefix("/").unwrap_or(&target))
                                .exists()
                        {
                            mirror(&target, &partial, false)?;
                        }
                    }
                }
            }
        }
        // The go command may be linked against the C library; the programs it builds are not.
        let ldd = std::process::Command::new("ldd")
            .arg(goroot.join("bin/go"))
            .output()
            .map_err(|e| e.to_string())?;
        for lib in String::from_utf8_lossy(&ldd.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
        {
            mirror(Path::new(lib), &partial, true)?;
        }
        for d in ["work", "tmp", "proc", "dev", "sys"] {
            std::fs::create_dir_all(partial.join(d)).map_err(|e| e.to_string())?;
        }
        std::fs::write(partial.join(".complete"), b"").map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&rootfs);
        std::fs::rename(&partial, &rootfs).map_err(|e| e.to_string())?;
        Ok(done)
    }
}

/// The digest of a build: the Go version, then every file and symbolic link of the
/// source (a link by its target: two sources that differ only in a link are two builds),
/// sorted by path.
fn digest(version: &str, src: &Path) -> std::io::Result<String> {
    let mut entries = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() || kind.is_symlink() {
                entries.push((entry.path(), kind.is_symlink()));
            }
        }
    }
    entries.sort();
    let mut hash = Sha256::new();
    hash.update(version.as_bytes());
    for (path, link) in entries {
        let rel = path.strip_prefix(src).unwrap_or(&path);
        hash.update(if link { [1] } else { [0] });
        hash.update(rel.as_os_str().as_encoded_bytes());
        hash.update([0]);
        if link {
            hash.update(std::fs::read_link(&path)?.as_os_str().as_encoded_bytes());
        } else {
            hash.update(std::fs::read(&path)?);
        }
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Where `go build` writes the program, inside the source directory.
const OUTPUT_DIR: &str = ".vulcan-build";
/// The largest program a build may leave.
const MAX_PROGRAM_BYTES: u64 = 512 * 1024 * 1024;

/// Removes the build's sandbox, cgroup and source directory however the build ends.
struct BuildGuard {
    gvisor: Arc<GvisorBackend>,
    id: String,
    src: PathBuf,
}

impl Drop for BuildGuard {
    fn drop(&mut self) {
        if let Ok(ready) = self.gvisor.ready() {
            if ready.runsc.exists(&self.id) {
                ready.runsc.destroy(&self.id);
            }
            ready.cgroups.remove(&self.id);
        }
        let _ = std::fs::remove_dir_all(self.gvisor.bundle_dir(&self.id));
        let _ = std::fs::remove_dir_all(&self.src);
    }
}

impl GoSource {
    /// Builds with `gvisor`'s runsc; keeps toolchain, sources and builds under `dir`.
    pub fn new(gvisor: Arc<GvisorBackend>, dir: PathBuf) -> GoSource {
        GoSource {
            gvisor,
            dir: std::path::absolute(&dir).unwrap_or(dir),
            toolchain: tokio::sync::OnceCell::new(),
        }
    }

    async fn toolchain(&self) -> Result<&Toolchain, String> {
        let dir = self.dir.clone();
        self.toolchain
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || Toolchain::prepare(&dir))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()))
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Writes the source into `src`: `Ok(false)` when there is nothing to build (an archive
    /// without `go.mod`, that is a prebuilt `main`).
    async fn write_source(
        &self,
        spec: &WorkloadSpec,
        src: &Path,
        version: &str,
    ) -> Result<bool, String> {
        std::fs::create_dir_all(src).map_err(|e| e.to_string())?;
        match (&spec.run.code, &spec.run.code_archive) {
            (Some(code), None) => {
                // "go1.19.8" -> "1.19": the language version of a one-file module.
                let language: String = version
                    .trim_start_matches("go")
                    .split('.')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(".");
                std::fs::write(src.join("main.go"), code)
                    .and_then(|()| {
                        std::fs::write(
                            src.join("go.mod"),
                            format!("module main\n\ngo {language}\n"),
                        )
                    })
                    .map_err(|e| e.to_string())?;
                Ok(true)
            }
            (None, Some(bytes)) => {
                let (bytes, dir) = (bytes.clone(), src.to_path_buf());
                tokio::task::spawn_blocking(move || {
                    archive::unpack(&dir, &bytes[..], Rules::code_archive())
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("\"code_archive\" was refused: {e}"))?;
                Ok(src.join("go.mod").is_file())
            }
            _ => Ok(false),
        }
    }

    /// Runs `go build` in a sandbox; the binary's bytes, or why not (its output is in `logs`).
    async fn compile(
        &self,
        id: &str,
        toolchain: &Toolchain,
        src: &Path,
        logs: &Arc<dyn LogSink>,
    ) -> Result<Vec<u8>, WorkloadResult> {
        let ready = self
            .gvisor
            .ready()
            .map_err(|e| WorkloadResult::failed(format!("Go source cannot be built here: {e}")))?;
        // The output directory is Vulcan's: whatever the source put at its name goes.
        let output = src.join(OUTPUT_DIR);
        if std::fs::symlink_metadata(&output).is_ok_and(|m| m.is_dir()) {
            let _ = std::fs::remove_dir_all(&output);
        } else {
            let _ = std::fs::remove_file(&output);
        }
        std::fs::create_dir(&output).map_err(|e| {
            WorkloadResult::failed(format!("cannot make the build's output directory: {e}"))
        })?;
        let goroot = toolchain.goroot.display().to_string();
        let vendored = src.join("vendor").is_dir();
        let env = [
            format!("PATH={goroot}/bin:/usr/bin:/bin"),
            format!("GOROOT={goroot}"),
            "HOME=/tmp".into(),
            "GOCACHE=/tmp/go-cache".into(),
            "GOPATH=/tmp/go".into(),
            "CGO_ENABLED=0".into(),
            "GOPROXY=off".into(),
            "GOTOOLCHAIN=local".into(),
            "GOFLAGS=".to_owned() + if vendored { "-mod=vendor" } else { "-mod=mod" },
        ];
        let image = ImageConfig {
            entrypoint: vec![],
            cmd: vec![
                format!("{goroot}/bin/go"),
                "build".into(),
                "-o".into(),
                format!("{}/{OUTPUT_DIR}/main", bundle::WORK_DIR),
                ".".into(),
            ],
            env: env.to_vec(),
            working_dir: bundle::WORK_DIR.into(),
            user: String::new(),
        };
        let none = BTreeMap::new();
        let resources = Resources {
            cpus: 1,
            mem_mb: BUILD_MEM_MB,
            timeout_s: BUILD_TIMEOUT.as_secs() as u32,
            net_mbps: None,
        };
        let run = bundle::RunSpec {
            network: None,
            rootfs: &toolchain.rootfs,
            image: &image,
            command: None,
            env: &none,
            resources,
            pids_limit: self.gvisor.config.pids_limit,
            cgroup: &CgroupBase::runsc_path(id),
            work: Some(src),
            hold: None,
            pod: None,
        };
        let config = bundle::config(&run, 0, 0).map_err(WorkloadResult::failed)?;
        let dir = self.gvisor.bundle_dir(id);
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("config.json"), crate::json_of(&config)))
            .map_err(|e| WorkloadResult::failed(format!("cannot write the build's bundle: {e}")))?;
        let _group = ready
            .cgroups
            .create(
                id,
                bundle::memory_limit_bytes(BUILD_MEM_MB),
                self.gvisor.config.pids_limit,
            )
            .map_err(|e| {
                WorkloadResult::failed(format!("cannot set up the build's cgroup: {e}"))
            })?;
        let mut child = ready
            .runsc
            .run(&dir, id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                WorkloadResult::failed(format!("cannot start runsc for the build: {e}"))
            })?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        // The compiler writes to stderr; both streams become the workload's stderr lines.
        let out_task = stdout.map(|o| {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(o).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.emit(LogStream::Stderr, line);
                }
            })
        });
        let err_task = stderr.map(|e| {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut said = Vec::new();
                let mut lines = BufReader::new(e).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if said.len() < ERROR_LINES {
                        said.push(line.clone());
                    }
                    logs.emit(LogStream::Stderr, line);
                }
                said
            })
        });
        let ran = tokio::time::timeout(BUILD_TIMEOUT, child.wait()).await;
        if let Some(task) = out_task {
            let _ = task.await;
        }
        let said = match err_task {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let status = match ran {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => {
                return Err(WorkloadResult::failed(format!(
                    "waiting for the build failed: {e}"
                )))
            }
            Err(_) => {
                return Err(WorkloadResult::failed(format!(
                    "go build took longer than {} s",
                    BUILD_TIMEOUT.as_secs()
                )))
            }
        };
        if !status.success() {
            let result = WorkloadResult {
                exit_code: status.code(),
                output: String::new(),
                error: Some(format!("go build failed:\n{}", said.join("\n"))),
                usage: None,
            };
            return Err(result);
        }
        // Read beneath the source directory without following any link in it: the
        // source came from the caller and could lead elsewhere on this host.
        vulcan_sandbox::beneath::read(src, &Path::new(OUTPUT_DIR).join("main"), MAX_PROGRAM_BYTES)
            .map_err(|e| WorkloadResult::failed(format!("go build wrote no program: {e}")))
    }
}

#[async_trait]
impl Builder for GoSource {
    async fn build(
        &self,
        mut spec: WorkloadSpec,
        logs: &Arc<dyn LogSink>,
    ) -> Result<WorkloadSpec, WorkloadResult> {
        if spec.run.runtime != Runtime::Go {
            return Ok(spec);
        }
        let toolchain = match self.toolchain().await {
            Ok(t) => t,
            // Without a toolchain, prebuilt archives still run; source fails saying why.
            Err(e) if spec.run.code.is_some() => return Err(WorkloadResult::failed(e)),
            Err(_) => return Ok(spec),
        };
        let id = format!("gobuild-{}", spec.id);
        let src = self.dir.join("src").join(&spec.id);
        let _guard = BuildGuard {
            gvisor: self.gvisor.clone(),
            id: id.clone(),
            src: src.clone(),
        };
        match self.write_source(&spec, &src, &toolchain.version).await {
            Ok(true) => {}
            Ok(false) => return Ok(spec),
            Err(e) => return Err(WorkloadResult::failed(e)),
        }
        let key =
            digest(&toolchain.version, &src).map_err(|e| WorkloadResult::failed(e.to_string()))?;
        let kept = self.dir.join("builds").join(&key).join("main");
        let short = &key[..12];
        let binary = match std::fs::read(&kept) {
            Ok(binary) => {
                logs.emit(
                    LogStream::Backend,
                    format!("[vulcan] go build skipped: this source was built before with {} (sha256 {short}…)", toolchain.version),
                );
                binary
            }
            Err(_) => {
                logs.emit(
                    LogStream::Backend,
                    format!("[vulcan] go build: building with {} in a gVisor sandbox (no network, CGO off)", toolchain.version),
                );
                let started = Instant::now();
                let binary = self.compile(&id, toolchain, &src, logs).await?;
                let dir = kept.parent().unwrap_or(&self.dir);
                let partial = dir.with_extension("partial");
                let kept_ok = std::fs::create_dir_all(&partial)
                    .and_then(|()| std::fs::write(partial.join("main"), &binary))
                    .and_then(|()| std::fs::rename(&partial, dir));
                if let Err(e) = kept_ok {
                    tracing::warn!(error = %e, "cannot keep a Go build");
                    let _ = std::fs::remove_dir_all(&partial);
                }
                logs.emit(
                    LogStream::Backend,
                    format!(
                        "[vulcan] go build: built in {} ms (sha256 {short}…); the same source will not be built again",
                        started.elapsed().as_millis()
                    ),
                );
                binary
            }
        };
        let archive = archive::pack_file("main", &binary, 0o755)
            .map_err(|e| WorkloadResult::failed(format!("cannot pack the built program: {e}")))?;
        spec.run.code = None;
        spec.run.code_archive = Some(archive);
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_in_the_source_is_part_of_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for src in [&a, &b] {
            std::fs::create_dir_all(src).unwrap();
            std::fs::write(src.join("main.go"), "package main").unwrap();
        }
        assert_eq!(digest("go1", &a).unwrap(), digest("go1", &b).unwrap());
        std::os::unix::fs::symlink("/proc/self/cwd/x", b.join(OUTPUT_DIR)).unwrap();
        assert_ne!(digest("go1", &a).unwrap(), digest("go1", &b).unwrap());
        std::os::unix::fs::symlink("/elsewhere", a.join(OUTPUT_DIR)).unwrap();
        assert_ne!(
            digest("go1", &a).unwrap(),
            digest("go1", &b).unwrap(),
            "and by its target"
        );
    }

    #[test]
    fn the_toolchain_is_mirrored_under_a_relative_root() {
        let cwd = std::env::current_dir().unwrap();
        let dir = tempfile::tempdir_in(&cwd).unwrap();
        let file = dir.path().join("tool");
        std::fs::write(&file, b"x").unwrap();
        let relative_root = dir.path().strip_prefix(&cwd).unwrap().join("root");
        std::fs::create_dir_all(&relative_root).unwrap();
        mirror(&file, &relative_root, false).unwrap();
        let copied = dir
            .path()
            .join("root")
            .join(file.strip_prefix("/").unwrap());
        assert_eq!(std::fs::read(copied).unwrap(), b"x");
    }
}
