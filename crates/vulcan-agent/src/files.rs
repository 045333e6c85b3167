//! A held sandbox's files: a process of the agent's, chrooted into the sandbox's root,
//! answers the file calls one at a time. Inside the chroot every path, `..` and link is
//! the sandbox's own (but the magic links of the guest's `/proc`, which lead at most to the
//! agent's initramfs); nothing in the guest leads to the host's files.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use vulcan_agent::held::{
    Answer, Call, Changed, Entry, Failure, FailureKind, Op, Piece, MAX_CHUNK, MAX_ENTRIES,
};
use vulcan_agent::{read_frame, write_frame, Kind};
use vulcan_sandbox::inotify::{ChangeKind, Opener, WatchFailure, Watcher};
use vulcan_sandbox::paths::UPLOAD_PREFIX;

/// Forks the helper; returns the agent's end of its socket. Call before any thread starts.
pub fn start(root: &Path) -> std::io::Result<UnixStream> {
    let (ours, theirs) = UnixStream::pair()?;
    let root_c =
        std::ffi::CString::new(root.to_string_lossy().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: the agent has a single thread here, so the child may run ordinary code.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            drop(ours);
            // SAFETY: chroot and chdir with valid strings.
            let jailed =
                unsafe { libc::chroot(root_c.as_ptr()) == 0 && libc::chdir(c"/".as_ptr()) == 0 };
            if jailed {
                serve(theirs);
            }
            // SAFETY: leaving the forked helper without running the agent's exit paths.
            unsafe { libc::_exit(0) }
        }
        _ => Ok(ours),
    }
}

/// The helper's end of its socket, shared by the answers and the watches' threads.
type Out = Arc<Mutex<UnixStream>>;

fn send(out: &Out, kind: Kind, payload: &impl serde::Serialize) -> bool {
    let bytes = serde_json::to_vec(payload).unwrap_or_default();
    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
    write_frame(&mut *out, kind, &bytes).is_ok()
}

fn serve(mut stream: UnixStream) {
    let Ok(out) = stream.try_clone() else {
        return;
    };
    let mut files = Files {
        out: Arc::new(Mutex::new(out)),
        uploads: HashMap::new(),
        watches: HashMap::new(),
        next: 0,
    };
    while let Ok((Kind::Call, payload)) = read_frame(&mut stream) {
        let Ok(call) = serde_json::from_slice::<Call>(&payload) else {
            continue;
        };
        let answer = match files.call(call.op) {
            Ok(value) => Answer::ok(call.id, value),
            Err(failure) => Answer::failed(call.id, failure),
        };
        if !send(&files.out, Kind::Answer, &answer) {
            return;
        }
    }
}

struct Files {
    out: Out,
    uploads: HashMap<u64, Upload>,
    /// Each watch's stop flag, by the host's number.
    watches: HashMap<u64, Arc<AtomicBool>>,
    next: u64,
}

struct Upload {
    file: File,
    temp: PathBuf,
    path: String,
    owner: (u32, u32),
}

/// `path` normalised, if it is one to use ([`vulcan_sandbox::paths`]).
fn checked(path: &str) -> Result<PathBuf, Failure> {
    let parts = vulcan_sandbox::paths::parts(path)
        .map_err(|why| Failure::new(FailureKind::Invalid, why))?;
    Ok(PathBuf::from(format!("/{}", parts.join("/"))))
}

fn entry(path: &Path) -> Result<Entry, Failure> {
    let text = path.to_string_lossy();
    let meta = fs::symlink_metadata(path).map_err(|e| Failure::io(&text, &e))?;
    let kind = if meta.is_dir() {
        "dir"
    } else if meta.is_file() {
        "file"
    } else if meta.file_type().is_symlink() {
        "symlink"
    } else {
        "other"
    };
    Ok(Entry {
        path: text.into_owned(),
        name: path
            .file_name()
            .map_or_else(|| "/".to_owned(), |n| n.to_string_lossy().into_owned()),
        kind: kind.to_owned(),
        size: meta.len(),
        mode: meta.mode() & 0o7777,
        modified_s: meta.mtime(),
        modified_nanos: meta.mtime_nsec().clamp(0, 999_999_999) as u32,
        target: fs::read_link(path)
            .ok()
            .map(|t| t.to_string_lossy().into_owned()),
    })
}

fn value(v: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// Makes `dir` and what it lacks above it, each made owned by `owner`.
fn make_dirs(dir: &Path, owner: (u32, u32)) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        make_dirs(parent, owner)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => std::os::unix::fs::lchown(dir, Some(owner.0), Some(owner.1)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

impl Files {
    fn call(&mut self, op: Op) -> Result<serde_json::Value, Failure> {
        match op {
            Op::Stat { path } => entry(&checked(&path)?).map(value),
            Op::List { path, depth } => self.list(&checked(&path)?, depth.max(1)).map(value),
            Op::Read { path, offset, len } => read(&checked(&path)?, offset, len).map(value),
            Op::WriteBegin { path, uid, gid } => self.begin(&path, (uid, gid)),
            Op::WriteChunk { token, data } => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|e| Failure::new(FailureKind::Invalid, format!("not base64: {e}")))?;
                let upload = self
                    .uploads
                    .get_mut(&token)
                    .ok_or_else(|| no_upload(token))?;
                if let Err(e) = upload.file.write_all(&bytes) {
                    let failure = Failure::io(&upload.path, &e);
                    self.abort(token);
                    return Err(failure);
                }
                Ok(serde_json::json!({}))
            }
            Op::WriteEnd { token } => self.end(token).map(value),
            Op::WriteAbort { token } => {
                self.abort(token);
                Ok(serde_json::json!({}))
            }
            Op::MakeDir { path, uid, gid } => {
                let dir = &checked(&path)?;
                if dir.exists() && !dir.is_dir() {
                    return Err(Failure::new(
                        FailureKind::Exists,
                        format!("{path} exists and is not a directory"),
                    ));
                }
                make_dirs(dir, (uid, gid)).map_err(|e| Failure::io(&path, &e))?;
                entry(dir).map(value)
            }
            Op::Rename { from, to } => {
                let (source, target) = (checked(&from)?, checked(&to)?);
                fs::rename(&source, &target).map_err(|e| Failure::io(&from, &e))?;
                entry(&target).map(value)
            }
            Op::Watch {
                watch,
                path,
                recursive,
            } => self.watch(watch, &checked(&path)?, recursive),
            Op::Unwatch { watch } => {
                if let Some(stop) = self.watches.remove(&watch) {
                    stop.store(true, Ordering::SeqCst);
                }
                Ok(serde_json::json!({}))
            }
            Op::Remove { path } => {
                let target = &checked(&path)?;
                if target == Path::new("/") {
                    return Err(Failure::new(FailureKind::Invalid, "/ cannot be removed"));
                }
                let meta = fs::symlink_metadata(target).map_err(|e| Failure::io(&path, &e))?;
                let removed = if meta.is_dir() {
                    fs::remove_dir_all(target)
                } else {
                    fs::remove_file(target)
                };
                removed.map_err(|e| Failure::io(&path, &e))?;
                Ok(serde_json::json!({}))
            }
            _ => Err(Failure::new(FailureKind::Invalid, "not a file call")),
        }
    }

    fn list(&self, dir: &Path, depth: u32) -> Result<Vec<Entry>, Failure> {
        let text = dir.to_string_lossy();
        if !fs::metadata(dir)
            .map_err(|e| Failure::io(&text, &e))?
            .is_dir()
        {
            return Err(Failure::new(
                FailureKind::Invalid,
                format!("{text} is not a directory"),
            ));
        }
        let mut out = Vec::new();
        let mut stack = vec![(dir.to_path_buf(), 1u32)];
        while let Some((d, level)) = stack.pop() {
            let Ok(entries) = fs::read_dir(&d) else {
                continue;
            };
            let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            names.sort();
            for path in names {
                if out.len() >= MAX_ENTRIES {
                    return Ok(out);
                }
                let Ok(found) = entry(&path) else { continue };
                if found.kind == "dir" && level < depth {
                    stack.push((path, level + 1));
                }
                out.push(found);
            }
        }
        Ok(out)
    }

    /// Starts watch `id` of `dir` on a thread of its own, which sends its changes.
    fn watch(
        &mut self,
        id: u64,
        dir: &Path,
        recursive: bool,
    ) -> Result<serde_json::Value, Failure> {
        let shown = dir.to_string_lossy().into_owned();
        let opener: Opener = Box::new(|inside: &str| File::open(inside).map(OwnedFd::from));
        let mut watcher = Watcher::new(opener, &shown, recursive).map_err(failure_of)?;
        let stop = Arc::new(AtomicBool::new(false));
        self.watches.retain(|_, stop| !stop.load(Ordering::SeqCst));
        self.watches.insert(id, stop.clone());
        let out = self.out.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let changed = match watcher.wait(250) {
                    Ok(None) => continue,
                    Ok(Some(change)) => Changed {
                        watch: id,
                        name: change.name,
                        kind: kind_name(change.kind).to_owned(),
                        error: None,
                    },
                    Err(failure) => Changed {
                        watch: id,
                        name: String::new(),
                        kind: String::new(),
                        error: Some(failure_of(failure)),
                    },
                };
                let last = changed.error.is_some();
                if !send(&out, Kind::Changed, &changed) || last {
                    break;
                }
            }
            stop.store(true, Ordering::SeqCst);
        });
        Ok(serde_json::json!({}))
    }

    fn begin(&mut self, path: &str, owner: (u32, u32)) -> Result<serde_json::Value, Failure> {
        let target = &checked(path)?;
        if target.is_dir() {
            return Err(Failure::new(
                FailureKind::Invalid,
                format!("{path} is a directory"),
            ));
        }
        let parent = target.parent().unwrap_or(Path::new("/"));
        make_dirs(parent, owner).map_err(|e| Failure::io(path, &e))?;
        self.next += 1;
        let token = self.next;
        let temp = parent.join(format!("{UPLOAD_PREFIX}{token}"));
        let file = File::create(&temp).map_err(|e| Failure::io(path, &e))?;
        self.uploads.insert(
            token,
            Upload {
                file,
                temp,
                path: path.to_owned(),
                owner,
            },
        );
        Ok(serde_json::json!({ "token": token }))
    }

    fn end(&mut self, token: u64) -> Result<Entry, Failure> {
        let upload = self
            .uploads
            .remove(&token)
            .ok_or_else(|| no_upload(token))?;
        let path = upload.path.clone();
        let placed = upload
            .file
            .sync_data()
            .and_then(|()| {
                std::os::unix::fs::fchown(&upload.file, Some(upload.owner.0), Some(upload.owner.1))
            })
            .and_then(|()| {
                upload
                    .file
                    .set_permissions(fs::Permissions::from_mode(0o644))
            })
            .and_then(|()| fs::rename(&upload.temp, &path));
        if let Err(e) = placed {
            let _ = fs::remove_file(&upload.temp);
            return Err(Failure::io(&path, &e));
        }
        entry(Path::new(&path))
    }

    fn abort(&mut self, token: u64) {
        if let Some(upload) = self.uploads.remove(&token) {
            let _ = fs::remove_file(&upload.temp);
        }
    }
}

fn failure_of(failure: WatchFailure) -> Failure {
    let kind = if failure.not_found {
        FailureKind::NotFound
    } else if failure.invalid {
        FailureKind::Invalid
    } else {
        FailureKind::Io
    };
    Failure::new(kind, failure.message)
}

fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Create => "create",
        ChangeKind::Write => "write",
        ChangeKind::Remove => "remove",
        ChangeKind::Rename => "rename",
        ChangeKind::Chmod => "chmod",
    }
}

fn no_upload(token: u64) -> Failure {
    Failure::new(FailureKind::Invalid, format!("no upload {token} is open"))
}

fn read(path: &Path, offset: u64, len: u32) -> Result<Piece, Failure> {
    let text = path.to_string_lossy();
    let mut file = File::open(path).map_err(|e| Failure::io(&text, &e))?;
    let meta = file.metadata().map_err(|e| Failure::io(&text, &e))?;
    if !meta.is_file() {
        return Err(Failure::new(
            FailureKind::Invalid,
            format!("{text} is not a regular file"),
        ));
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Failure::io(&text, &e))?;
    let mut bytes = Vec::new();
    file.take(u64::from(len.min(MAX_CHUNK)))
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::io(&text, &e))?;
    Ok(Piece {
        data: base64::engine::general_purpose::STANDARD.encode(bytes),
        size: meta.len(),
    })
}
