//! Modules compiled once, each in a process of its own (`vulcan wasm-helper --compile`,
//! confined like the helper, its data memory capped, killed past its time bound), and
//! kept by SHA-256: the last [`KEPT`] of them. Two runs of a module not compiled yet share
//! one compile; compiles run one at a time (a compile is CPU a run is waiting for).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OnceCell;

/// Compiled modules kept.
const KEPT: usize = 64;

/// What a module compiled to.
pub type Code = Arc<Vec<u8>>;

/// A compile under way (or done), shared by the runs waiting for it.
type Compiling = Arc<OnceCell<Result<Code, String>>>;

/// How modules are compiled, and the ones that were.
pub struct Compiled {
    program: PathBuf,
    root: PathBuf,
    timeout: Duration,
    memory_mb: u64,
    kept: Mutex<VecDeque<(String, Code)>>,
    compiling: Mutex<HashMap<String, Compiling>>,
    one_at_a_time: tokio::sync::Semaphore,
}

impl Compiled {
    pub fn new(program: PathBuf, root: PathBuf, timeout: Duration, memory_mb: u64) -> Compiled {
        Compiled {
            program,
            root,
            timeout,
            memory_mb,
            kept: Mutex::new(VecDeque::new()),
            compiling: Mutex::new(HashMap::new()),
            one_at_a_time: tokio::sync::Semaphore::new(1),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, Code)>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn find(&self, sha: &str) -> Option<Code> {
        let mut kept = self.kept();
        let at = kept.iter().position(|(s, _)| s == sha)?;
        let entry = kept.remove(at)?;
        let code = entry.1.clone();
        kept.push_back(entry);
        Some(code)
    }

    /// The compiled code of `module` (whose SHA-256 is `sha`), and whether it was compiled
    /// now; or why it cannot be.
    pub async fn get(&self, sha: &str, module: &[u8]) -> Result<(Code, bool), String> {
        if let Some(code) = self.find(sha) {
            return Ok((code, false));
        }
        let cell = self
            .compiling
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(sha.to_owned())
            .or_default()
            .clone();
        let mut compiled_here = false;
        let result = cell
            .get_or_init(|| async {
                compiled_here = true;
                let _turn = self.one_at_a_time.acquire().await;
                self.compile(module).await.map(Arc::new)
            })
            .await
            .clone();
        self.compiling
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sha);
        let code = result?;
        if compiled_here {
            let mut kept = self.kept();
            if kept.len() >= KEPT {
                kept.pop_front();
            }
            kept.push_back((sha.to_owned(), code.clone()));
        }
        Ok((code, compiled_here))
    }

    /// Runs one compile process on `module`.
    async fn compile(&self, module: &[u8]) -> Result<Vec<u8>, String> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| format!("cannot create {}: {e}", self.root.display()))?;
        let mut child = super::helper_process(&self.program, &self.root)
            .arg("--compile-memory-mb")
            .arg(self.memory_mb.to_string())
            .spawn()
            .map_err(|e| format!("cannot start a compile process: {e}"))?;
        let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the compile process has no pipes".into());
        };
        let module = module.to_vec();
        let feed = async move {
            let fed = stdin.write_all(&module).await;
            drop(stdin);
            fed
        };
        let mut compiled = Vec::new();
        let mut said = Vec::new();
        let work = async {
            let (fed, read, errs) = tokio::join!(
                feed,
                stdout.read_to_end(&mut compiled),
                stderr.read_to_end(&mut said)
            );
            let status = child.wait().await;
            (fed, read, errs, status)
        };
        let (_, read, _, status) = match tokio::time::timeout(self.timeout, work).await {
            Ok(done) => done,
            Err(_) => {
                return Err(format!(
                    "compiling the module took longer than {} s (VULCAN_WASM_COMPILE_TIMEOUT_S); it was stopped",
                    self.timeout.as_secs()
                ))
            }
        };
        let said = String::from_utf8_lossy(&said).trim().to_owned();
        let status = status.map_err(|e| format!("waiting for the compile process: {e}"))?;
        read.map_err(|e| format!("reading the compiled module: {e}"))?;
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(0), _) => Ok(compiled),
            (Some(vulcan_wasm::COMPILE_REFUSED), _) => Err(said),
            _ if said.contains("memory allocation") => Err(format!(
                "compiling the module needed more than {} MiB of memory (VULCAN_WASM_COMPILE_MEMORY_MB)",
                self.memory_mb
            )),
            _ => Err(format!("the compile process failed ({status}): {said}")),
        }
    }
}
