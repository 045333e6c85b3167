//! A held sandbox ([`vulcan_agent::held`]): the image's root on the sandbox's own disk,
//! processes started and followed on call, files served by a chrooted helper
//! ([`crate::files`]). Runs until the host stops the VM (or closes the port).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use vulcan_agent::held::{
    output_frame, Answer, Call, Failure, FailureKind, Op, ProcEnded, Spawn, Usage, STDERR, STDOUT,
};
use vulcan_agent::{read_frame, write_frame, Kind, Run, Served};
use vulcan_sandbox::pty;

use crate::workspace::{mount_volumes, pidfd_open, prepare_held, Workspace};
use crate::{send, Port};

/// How long an ended process's output may still be read before its end is reported (a
/// child it left holding the pipes would otherwise hold the report back for ever).
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// A process started on call, until it is reaped.
struct Held {
    /// Its stdin, or its terminal's controlling side.
    stdin: Option<File>,
    /// Whether `stdin` is a terminal (closing it is typing ^D).
    terminal: bool,
    pidfd: Option<OwnedFd>,
}

type Table = Arc<Mutex<HashMap<u32, Held>>>;

fn answer(port: &Port, answer: &Answer) {
    send(
        port,
        Kind::Answer,
        &serde_json::to_vec(answer).unwrap_or_default(),
    );
}

/// Answers the Run with why the sandbox cannot be held.
fn refuse(port: &Port, why: String) {
    let failed = Served {
        error: Some(why),
        ..Served::default()
    };
    send(
        port,
        Kind::Loaded,
        &serde_json::to_vec(&failed).unwrap_or_default(),
    );
}

/// Holds the sandbox; returns (the VM powers off) when the host closes the port.
pub fn hold(port: &Port, reader: &mut File, job: Run) {
    let workspace = match prepare_held(&job) {
        Ok(w) => w,
        Err(e) => return refuse(port, e),
    };
    if let Err(e) = mount_volumes(&workspace.root, &job.volumes) {
        return refuse(port, e);
    }
    // Forked before any thread of ours exists.
    let files = match crate::files::start(&workspace.root) {
        Ok(f) => f,
        Err(e) => return refuse(port, format!("cannot start the files helper: {e}")),
    };
    let mut to_files = match files.try_clone() {
        Ok(f) => f,
        Err(_) => return,
    };
    {
        // The helper's answers (and its watches' changes) go out as they come.
        let port = port.clone();
        let mut from_files = files;
        std::thread::spawn(move || {
            while let Ok((kind, payload)) = read_frame(&mut from_files) {
                send(&port, kind, &payload);
            }
        });
    }
    send(
        port,
        Kind::Loaded,
        &serde_json::to_vec(&Served::default()).unwrap_or_default(),
    );
    let workspace = Arc::new(workspace);
    let table: Table = Arc::default();
    {
        let (workspace, table) = (workspace.clone(), table.clone());
        std::thread::spawn(move || look_after(&workspace, &table));
    }
    loop {
        let payload = match read_frame(reader) {
            Ok((Kind::Call, payload)) => payload,
            Ok(_) => continue,
            Err(_) => return,
        };
        let call: Call = match serde_json::from_slice(&payload) {
            Ok(c) => c,
            Err(e) => {
                crate::log(&format!("an invalid call: {e}"));
                continue;
            }
        };
        let id = call.id;
        let done = match call.op {
            Op::Spawn(spawn) => spawn_process(port, &workspace, &table, spawn)
                .map(|pid| serde_json::json!({ "pid": pid })),
            Op::Stdin { pid, data } => {
                write_stdin(&table, pid, &data).map(|()| serde_json::json!({}))
            }
            Op::CloseStdin { pid } => {
                let terminal = lock(&table).get_mut(&pid).is_some_and(|held| {
                    if !held.terminal {
                        held.stdin = None;
                    }
                    held.terminal
                });
                // A terminal is not closed: the end of its input is typed (^D).
                if terminal {
                    let _ = write_input(&table, pid, b"\x04".to_vec());
                }
                Ok(serde_json::json!({}))
            }
            Op::Resize { pid, rows, cols } => {
                resize(&table, pid, rows, cols).map(|()| serde_json::json!({}))
            }
            Op::Signal { pid, signal } => {
                send_signal(&table, pid, signal).map(|()| serde_json::json!({}))
            }
            Op::Usage => Ok(serde_json::to_value(usage(&workspace)).unwrap_or_default()),
            Op::Sync => {
                // SAFETY: sync takes no arguments and cannot fail.
                unsafe { libc::sync() };
                Ok(serde_json::json!({}))
            }
            Op::Seed(seed) => {
                if !crate::seed(&seed) {
                    crate::log("cannot set the clock and entropy after a resume");
                }
                Ok(serde_json::json!({}))
            }
            // The rest are file calls: the helper answers them.
            _ => {
                if write_frame(&mut to_files, Kind::Call, &payload).is_err() {
                    answer(
                        port,
                        &Answer::failed(
                            id,
                            Failure::new(FailureKind::Io, "the files helper is gone"),
                        ),
                    );
                }
                continue;
            }
        };
        let reply = match done {
            Ok(value) => Answer::ok(id, value),
            Err(failure) => Answer::failed(id, failure),
        };
        answer(port, &reply);
    }
}

/// How often the agent looks after the sandbox (fork bombs, orphans that ended).
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// What PID 1 owes a sandbox that lives long, every [`LOOK_EVERY`]:
/// - a process whose parent ended is the agent's child: when it ends it is reaped here
///   (one Vulcan follows is left to its own waiter), or its zombie would hold one of the
///   sandbox's tasks for ever;
/// - a fork bomb holds a sandbox at its task limit for ever (each exit makes room for
///   another fork), starving what the user starts next: once forks are refused at the limit,
///   every process in the sandbox's cgroup is killed (`cgroup.kill`); each followed one ends
///   by SIGKILL, and the files, and the sandbox, stay.
fn look_after(workspace: &Workspace, table: &Table) {
    let mut refused = workspace.group.as_ref().map(|g| g.events().pids_refused);
    loop {
        std::thread::sleep(LOOK_EVERY);
        if let (Some(group), Some(before)) = (&workspace.group, refused) {
            let now = group.events().pids_refused;
            if now > before {
                crate::log("forks were refused at the sandbox's task limit: killing its processes");
                let _ = std::fs::write(group.dir().join("cgroup.kill"), "1");
            }
            refused = Some(now);
        }
        for pid in ended_orphans() {
            if !lock(table).contains_key(&pid) {
                // SAFETY: waitpid on a child of ours that has ended; nothing else is touched.
                unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG) };
            }
        }
    }
}

/// The agent's children that have ended and wait to be reaped (zombies whose parent is 1).
fn ended_orphans() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) state ppid …`: the name may hold anything, so after its last `)`.
            let mut after = stat
                .rsplit_once(')')
                .map_or("", |(_, a)| a)
                .split_whitespace();
            after.next() == Some("Z") && after.next() == Some("1")
        })
        .collect()
}

fn lock(table: &Table) -> std::sync::MutexGuard<'_, HashMap<u32, Held>> {
    table.lock().unwrap_or_else(|p| p.into_inner())
}

fn spawn_process(
    port: &Port,
    workspace: &Arc<Workspace>,
    table: &Table,
    spawn: Spawn,
) -> Result<u32, Failure> {
    let Some((program, args)) = spawn.argv.split_first() else {
        return Err(Failure::new(FailureKind::Invalid, "no command to run"));
    };
    let inside = workspace.root.join(spawn.cwd.trim_start_matches('/'));
    if !spawn.cwd.starts_with('/') || !inside.is_dir() {
        return Err(Failure::new(
            FailureKind::Invalid,
            format!("cwd {} is not a directory in the sandbox", spawn.cwd),
        ));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = workspace.command_as(
        program,
        &args,
        &spawn.env,
        None,
        (spawn.uid, spawn.gid),
        &spawn.cwd,
    );
    if !spawn.stdin {
        cmd.stdin(Stdio::null());
    }
    let no_terminal =
        |e: std::io::Error| Failure::new(FailureKind::Io, format!("cannot open a terminal: {e}"));
    let terminal = match spawn.pty {
        Some((rows, cols)) => {
            let (master, slave) = pty::open(pty::Size { rows, cols }).map_err(no_terminal)?;
            let side = || slave.try_clone().map(Stdio::from).map_err(no_terminal);
            cmd.stdin(side()?).stdout(side()?).stderr(side()?);
            // SAFETY: take_as_controlling makes async-signal-safe calls only.
            unsafe { cmd.pre_exec(|| pty::take_as_controlling()) };
            Some(File::from(master))
        }
        None => None,
    };
    // The table is locked across the start so that the process's end (reported by its own
    // thread) cannot be looked for before it is in.
    let mut held = lock(table);
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::new(FailureKind::Process, format!("cannot start {program}: {e}")))?;
    drop(cmd);
    let pid = child.id();
    let pumps: Vec<Box<dyn Read + Send>> = match &terminal {
        Some(term) => vec![Box::new(term.try_clone().map_err(no_terminal)?)],
        None => [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|e| Box::new(e) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    held.insert(
        pid,
        Held {
            terminal: terminal.is_some(),
            stdin: terminal.or_else(|| child.stdin.take().map(|s| File::from(OwnedFd::from(s)))),
            pidfd: pidfd_open(pid),
        },
    );
    drop(held);
    let (read_tx, read_rx) = mpsc::channel::<()>();
    let streams = [STDOUT, STDERR];
    let pumped = pumps.len();
    for (mut pipe, stream) in pumps.into_iter().zip(streams) {
        let (port, done) = (port.clone(), read_tx.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => send(&port, Kind::Output, &output_frame(pid, stream, &buf[..n])),
                }
            }
            let _ = done.send(());
        });
    }
    let (port, table) = (port.clone(), table.clone());
    std::thread::spawn(move || {
        use std::os::unix::process::ExitStatusExt;
        let status = child.wait();
        for _ in 0..pumped {
            if read_rx.recv_timeout(OUTPUT_GRACE).is_err() {
                break;
            }
        }
        lock(&table).remove(&pid);
        let (code, signal) = match status {
            Ok(s) => (s.code(), s.signal()),
            Err(_) => (None, None),
        };
        let ended = ProcEnded { pid, code, signal };
        send(
            &port,
            Kind::Ended,
            &serde_json::to_vec(&ended).unwrap_or_default(),
        );
    });
    Ok(pid)
}

fn gone(pid: u32) -> Failure {
    Failure::new(FailureKind::Process, format!("process {pid} has ended"))
}

fn write_stdin(table: &Table, pid: u32, data: &str) -> Result<(), Failure> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| Failure::new(FailureKind::Invalid, format!("stdin is not base64: {e}")))?;
    write_input(table, pid, bytes)
}

fn write_input(table: &Table, pid: u32, bytes: Vec<u8>) -> Result<(), Failure> {
    // Written off the call loop: a process that does not read must not stop the others.
    let mut stdin = {
        let mut held = lock(table);
        let held = held.get_mut(&pid).ok_or_else(|| gone(pid))?;
        let stdin = held.stdin.as_ref().ok_or_else(|| {
            Failure::new(
                FailureKind::Process,
                format!(
                    "process {pid} has no stdin open (start it with stdin, and do not close it)"
                ),
            )
        })?;
        let fd = stdin.as_raw_fd();
        // SAFETY: dup of a descriptor that is open while the table holds it.
        let dup = unsafe { libc::dup(fd) };
        if dup < 0 {
            return Err(Failure::new(FailureKind::Io, "cannot write to stdin"));
        }
        // SAFETY: a descriptor just made, owned by nothing else.
        unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(dup) }
    };
    std::thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    });
    Ok(())
}

fn resize(table: &Table, pid: u32, rows: u16, cols: u16) -> Result<(), Failure> {
    let held = lock(table);
    let held = held.get(&pid).ok_or_else(|| gone(pid))?;
    let term = held
        .stdin
        .as_ref()
        .filter(|_| held.terminal)
        .ok_or_else(|| {
            Failure::new(
                FailureKind::Invalid,
                format!("process {pid} was not started on a terminal"),
            )
        })?;
    pty::resize(term, pty::Size { rows, cols })
        .map_err(|e| Failure::new(FailureKind::Io, format!("cannot resize the terminal: {e}")))
}

fn send_signal(table: &Table, pid: u32, signal: i32) -> Result<(), Failure> {
    let held = lock(table);
    let held = held.get(&pid).ok_or_else(|| gone(pid))?;
    // By pidfd where there is one: a pid reused after the process was reaped is never hit.
    // SAFETY: plain system calls on integers and a descriptor the table holds open.
    let rc = unsafe {
        match &held.pidfd {
            Some(fd) => libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            ) as i32,
            None => libc::kill(pid as libc::pid_t, signal),
        }
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Failure::new(
            FailureKind::Invalid,
            format!("cannot send signal {signal} to process {pid}: {e}"),
        ));
    }
    Ok(())
}

fn usage(workspace: &Workspace) -> Usage {
    let (cpu_ms, memory_bytes) = workspace.group.as_ref().map_or((0, 0), |g| {
        let read = |file: &str| std::fs::read_to_string(g.dir().join(file)).unwrap_or_default();
        let cpu_us = read("cpu.stat")
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let memory = read("memory.current").trim().parse::<u64>().unwrap_or(0);
        (cpu_us / 1000, memory)
    });
    // SAFETY: statvfs fills the struct it is given.
    let disk_bytes = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c"/overlay".as_ptr(), &mut stat) == 0 {
            (stat.f_blocks - stat.f_bfree) * stat.f_frsize
        } else {
            0
        }
    };
    Usage {
        cpu_ms,
        memory_bytes,
        disk_bytes,
    }
}
