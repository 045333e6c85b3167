//! Deno's cache directory, one per process, primed from a template.
//!
//! Each process gets a writable cache directory of its own: Deno runs slowly without
//! one, and a shared one would keep every workload's compiled code side by side. A fresh
//! one costs ~2 ms of every start, though: Deno creates its SQLite caches and compiles
//! the runner from scratch. So the backend runs the runner once at start-up, keeps the
//! caches it wrote (the runner's compiled code and module analysis, nothing of any
//! workload's), and copies them into each new process's directory. A few directories
//! are made ahead, so that a cold start does not wait for the copy either.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Primed directories kept ready.
const SPARE: usize = 8;

/// A process's own cache directory; removed with the process.
#[derive(Debug)]
pub struct CacheDir(pub PathBuf);

impl Drop for CacheDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes the processes' cache directories.
#[derive(Debug)]
pub struct CacheDirs {
    /// Where the directories are made.
    scratch: PathBuf,
    /// Who owns them: the jail's user.
    owner: Option<(u32, u32)>,
    /// Where the template is kept (outside the jail).
    template_dir: PathBuf,
    /// The template's files, once captured.
    template: OnceLock<Vec<PathBuf>>,
    spare: Mutex<Vec<CacheDir>>,
    restocking: AtomicBool,
    next: AtomicU64,
}

/// Whether `path` is one of Deno's cache databases (not a log or index beside one).
fn is_database(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    path.is_file() && !name.ends_with("-wal") && !name.ends_with("-shm")
}

impl CacheDirs {
    /// Directories under `scratch` owned by `owner`, primed from a template kept in
    /// `template_dir`. Whatever a crash left in `scratch` is removed.
    pub fn new(scratch: PathBuf, owner: Option<(u32, u32)>, template_dir: PathBuf) -> Arc<Self> {
        let _ = std::fs::remove_dir_all(&scratch);
        Arc::new(CacheDirs {
            scratch,
            owner,
            template_dir,
            template: OnceLock::new(),
            spare: Mutex::new(Vec::new()),
            restocking: AtomicBool::new(false),
            next: AtomicU64::new(0),
        })
    }

    fn spare(&self) -> std::sync::MutexGuard<'_, Vec<CacheDir>> {
        self.spare.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_primed(&self) -> bool {
        self.template.get().is_some()
    }

    /// A directory for a new process: a spare one if there is one, else one made now.
    /// Before the template is captured, directories start empty.
    pub fn take(self: &Arc<Self>) -> io::Result<CacheDir> {
        let spare = self.spare().pop();
        self.restock();
        match spare {
            Some(dir) => Ok(dir),
            None => self.make(),
        }
    }

    fn make(&self) -> io::Result<CacheDir> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = CacheDir(self.scratch.join(format!("p{n}")));
        std::fs::create_dir_all(&dir.0)?;
        self.chown(&dir.0)?;
        for file in self.template.get().into_iter().flatten() {
            let Some(name) = file.file_name() else {
                continue;
            };
            let target = dir.0.join(name);
            std::fs::copy(file, &target)?;
            self.chown(&target)?;
        }
        Ok(dir)
    }

    fn chown(&self, path: &Path) -> io::Result<()> {
        match self.owner {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
            None => Ok(()),
        }
    }

    /// Makes spare directories up to [`SPARE`] on a blocking thread, once primed.
    fn restock(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.is_primed()
            || self.spare().len() >= SPARE
            || self.restocking.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let dirs = self.clone();
        runtime.spawn_blocking(move || {
            while dirs.spare().len() < SPARE {
                match dirs.make() {
                    Ok(dir) => dirs.spare().push(dir),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot make a deno cache directory ahead");
                        break;
                    }
                }
            }
            dirs.restocking.store(false, Ordering::SeqCst);
        });
    }

    /// Keeps the caches a priming run left in `from` as the template: each database with
    /// its write-ahead log folded in, so that a copy is whole on its own. Only the
    /// top-level databases are kept (not `gen/`, which holds the priming job's code).
    pub fn capture(self: &Arc<Self>, from: &Path) -> io::Result<()> {
        let _ = std::fs::remove_dir_all(&self.template_dir);
        std::fs::create_dir_all(&self.template_dir)?;
        let mut kept = Vec::new();
        for entry in std::fs::read_dir(from)? {
            let path = entry?.path();
            if !is_database(&path) {
                continue;
            }
            let conn = rusqlite::Connection::open(&path).map_err(io::Error::other)?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(io::Error::other)?;
            drop(conn);
            let Some(name) = path.file_name() else {
                continue;
            };
            let target = self.template_dir.join(name);
            std::fs::copy(&path, &target)?;
            kept.push(target);
        }
        let _ = self.template.set(kept);
        self.restock();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_captured_database_is_whole_without_its_log_and_is_copied_to_each_process() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        std::fs::create_dir_all(run.join("gen")).unwrap();
        std::fs::write(run.join("gen/job.js"), "workload code").unwrap();
        let db = rusqlite::Connection::open(run.join("cache_v2")).unwrap();
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('compiled');",
        )
        .unwrap();
        assert!(
            run.join("cache_v2-wal").exists(),
            "the row is still in the log"
        );

        let dirs = CacheDirs::new(
            tmp.path().join("scratch"),
            None,
            tmp.path().join("template"),
        );
        let unprimed = dirs.take().unwrap();
        assert_eq!(
            std::fs::read_dir(&unprimed.0).unwrap().count(),
            0,
            "not captured yet"
        );

        dirs.capture(&run).unwrap();
        drop(db);
        assert!(dirs.is_primed());
        for _ in 0..2 * SPARE {
            let dir = dirs.take().unwrap();
            let names: Vec<_> = std::fs::read_dir(&dir.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(names, ["cache_v2"], "no log, no workload code");
            let copy = rusqlite::Connection::open(dir.0.join("cache_v2")).unwrap();
            let v: String = copy.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap();
            assert_eq!(v, "compiled");
            drop(dir);
        }
        assert!(!unprimed.0.join("x").exists());
        let path = unprimed.0.clone();
        drop(unprimed);
        assert!(!path.exists(), "a process's directory goes with it");
    }
}
