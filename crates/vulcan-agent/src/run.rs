//! A one-shot workload: one program, its input on stdin, its output streamed, its exit
//! reported; whatever it left running is killed.

use std::io::Write;
use std::os::fd::AsRawFd;

use vulcan_agent::{Exit, Kind, Run};

use crate::workspace::{pipe, prepare, NODE_PRELOAD};
use crate::{oom_kills, pump, Port};

/// The program a runtime runs, and the file its inline code goes to.
pub fn program(runtime: &str) -> Option<(&'static str, &'static [&'static str], &'static str)> {
    Some(match runtime {
        "python" => ("python3", &["main.py"], "main.py"),
        "node" => ("node", &["-r", NODE_PRELOAD, "main.js"], "main.js"),
        "go" => ("./main", &[], "main"),
        _ => return None,
    })
}

pub fn run(port: &Port, job: Run) -> Exit {
    let argv = job.image.as_ref().map_or(&[][..], |i| &i.argv[..]);
    let (program, args, file): (&str, Vec<&str>, &str) = match program(&job.runtime) {
        Some((program, args, file)) => (program, args.to_vec(), file),
        None if job.runtime == "oci" && !argv.is_empty() => (
            argv[0].as_str(),
            argv[1..].iter().map(String::as_str).collect(),
            "",
        ),
        None => {
            return Exit {
                error: Some(format!("the agent does not run {}", job.runtime)),
                ..Exit::default()
            }
        }
    };
    let workspace = match prepare(&job, file) {
        Ok(w) => w,
        Err(e) => {
            return Exit {
                error: Some(e),
                ..Exit::default()
            }
        }
    };
    // Node reports its exit code on fd 3 (its preload), ahead of its teardown.
    let report = match (job.runtime == "node").then(pipe).transpose() {
        Ok(report) => report,
        Err(e) => {
            return Exit {
                error: Some(format!("cannot make a pipe: {e}")),
                ..Exit::default()
            }
        }
    };
    let mut cmd = workspace.command(
        program,
        &args,
        &job.env,
        report.as_ref().map(|(_, write)| write.as_raw_fd()),
    );
    let oom_before = oom_kills();
    let mark = workspace.group.as_ref().map(|g| g.mark());
    let spawned = cmd.spawn();
    // The program has its own copy of the report's write end.
    let report = report.map(|(read, _)| read);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return Exit {
                error: Some(format!("cannot start {program}: {e}")),
                ..Exit::default()
            }
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let input = job.input.clone();
        std::thread::spawn(move || {
            if !input.is_null() {
                let mut bytes = serde_json::to_vec(&input).unwrap_or_default();
                bytes.push(b'\n');
                let _ = stdin.write_all(&bytes);
            }
        });
    }
    let out = child.stdout.take().map(|o| {
        let port = port.clone();
        std::thread::spawn(move || pump(o, port, Kind::Stdout))
    });
    let err = child.stderr.take().map(|e| {
        let port = port.clone();
        std::thread::spawn(move || pump(e, port, Kind::Stderr))
    });
    let status = workspace.wait(&mut child, report);
    // Whatever the program left running (orphans hold its pipes open) goes with it:
    // from PID 1, kill(-1) reaches every process but the agent.
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    for t in [out, err].into_iter().flatten() {
        let _ = t.join();
    }
    let events = workspace
        .group
        .as_ref()
        .map(|g| g.events())
        .unwrap_or_default();
    let used = crate::used(workspace.group.as_ref(), mark);
    // What it wrote to its volumes is on their disks before the host is told it ended
    // (the VM goes at once after).
    if !job.volumes.is_empty() {
        // SAFETY: sync has no preconditions.
        unsafe { libc::sync() };
    }
    match status.map(|ended| ended.code_and_signal()) {
        Ok((code, signal)) => Exit {
            code,
            signal,
            oom: oom_kills() > oom_before || events.oom_kills > 0,
            pids_limited: events.pids_refused > 0,
            error: None,
            used,
        },
        Err(e) => Exit {
            error: Some(format!("waiting for the program failed: {e}")),
            ..Exit::default()
        },
    }
}
