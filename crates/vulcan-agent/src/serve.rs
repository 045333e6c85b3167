//! A warm instance of a deployed function: the code is loaded once and serves invocations
//! one at a time, for as long as the host keeps the VM.
//!
//! Python and node: a small server in the runtime's interpreter imports the handler (a
//! top-level `def handler(input)` in `main.py`; the default export of `main.mjs` or
//! `main.js`) and answers each input line on its fd 3; what the handler prints streams as
//! usual, and the server closes each invocation's output with a marker line on stdout and
//! stderr, so every line is relayed before the result. Go: the static `main` runs once per
//! invocation, in the warm VM. A server that dies (out of memory, killed) breaks the
//! instance: its invocation fails and the host stops the VM.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin};
use std::sync::mpsc;
use std::time::Duration;

use vulcan_agent::{read_frame, Exit, Kind, Run, Served, MAX_LINE};
use vulcan_sandbox::capture::LineSplitter;

use crate::workspace::{pipe, prepare, Workspace};
use crate::{oom_kills, send, Port};

/// Ends each invocation's output on stdout and stderr.
const MARK: &[u8] = b"\x00vulcan-done\x00";

const PYTHON_SERVER: &str = r#"
import json, os, sys, traceback, importlib.util
MARK = "\x00vulcan-done\x00"
results = os.fdopen(3, "w", buffering=1)
def failure(e):
    return "".join(traceback.format_exception_only(type(e), e)).strip()
try:
    sys.path.insert(0, "/work")
    spec = importlib.util.spec_from_file_location("main", "/work/main.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["main"] = module
    spec.loader.exec_module(module)
    handler = getattr(module, "handler", None)
    if not callable(handler):
        raise TypeError("main.py has no top-level function handler(input)")
except BaseException as e:
    sys.stdout.flush(); sys.stderr.flush()
    results.write(json.dumps({"error": "the function could not be loaded: " + failure(e)}) + "\n")
    sys.exit(1)
sys.stdout.flush(); sys.stderr.flush()
results.write(json.dumps({}) + "\n")
for line in sys.stdin:
    try:
        value = handler(json.loads(line))
        if hasattr(value, "__await__"):
            import asyncio
            value = asyncio.run(value)
        answer = {"output": json.dumps(value)}
    except BaseException as e:
        traceback.print_exc()
        answer = {"error": failure(e)}
    sys.stdout.write(MARK + "\n"); sys.stdout.flush()
    sys.stderr.write(MARK + "\n"); sys.stderr.flush()
    results.write(json.dumps(answer) + "\n")
"#;

const NODE_SERVER: &str = r#"
import fs from "node:fs";
import readline from "node:readline";
const MARK = "\u0000vulcan-done\u0000";
const answer = (a) => fs.writeSync(3, JSON.stringify(a) + "\n");
let handler;
try {
  const entry = fs.existsSync("/work/main.mjs") ? "/work/main.mjs" : "/work/main.js";
  const mod = await import(entry);
  handler = mod.default;
  if (typeof handler !== "function") throw new Error("the module has no default export function");
} catch (e) {
  answer({ error: "the function could not be loaded: " + (e?.message ?? String(e)) });
  process.exit(1);
}
answer({});
for await (const line of readline.createInterface({ input: process.stdin })) {
  let a;
  try {
    const value = await handler(JSON.parse(line));
    a = { output: JSON.stringify(value === undefined ? null : value) };
  } catch (e) {
    console.error(e?.stack ?? String(e));
    a = { error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
  fs.writeSync(1, MARK + "\n");
  fs.writeSync(2, MARK + "\n");
  answer(a);
}
"#;

/// Relays each line of `reader` as a frame of `kind`; a marker line is told to `marks`.
fn pump_marked(mut reader: impl Read, port: Port, kind: Kind, marks: mpsc::Sender<()>) {
    let mut lines = LineSplitter::new(MAX_LINE);
    let mut buf = vec![0u8; 64 * 1024];
    let mut relay = |line: &[u8]| {
        if line == MARK {
            let _ = marks.send(());
        } else {
            send(&port, kind, line);
        }
    };
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => lines.feed(&buf[..n], &mut relay),
        }
    }
    lines.finish(&mut relay);
}

/// A loaded server: its input, its answers, and the marks of its output.
struct Server {
    child: Child,
    stdin: ChildStdin,
    answers: BufReader<File>,
    marks: mpsc::Receiver<()>,
}

impl Server {
    fn start(port: &Port, workspace: &Workspace, job: &Run) -> Result<Server, String> {
        let (program, script, path) = match job.runtime.as_str() {
            "python" => ("python3", PYTHON_SERVER, "/tmp/vulcan-serve.py"),
            _ => ("node", NODE_SERVER, "/tmp/vulcan-serve.mjs"),
        };
        std::fs::write(workspace.root.join(path.trim_start_matches('/')), script)
            .map_err(|e| format!("cannot write the function's server: {e}"))?;
        let (answers, write_end) = pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
        let mut cmd = workspace.command(program, &[path], &job.env, Some(write_end.as_raw_fd()));
        let spawned = cmd.spawn();
        // The child has its own copy.
        drop(write_end);
        let mut child = spawned.map_err(|e| format!("cannot start {program}: {e}"))?;
        let (marks_tx, marks) = mpsc::channel();
        let stdin = child.stdin.take().ok_or("no stdin")?;
        for (stream, kind) in [
            (
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn Read + Send>),
                Kind::Stdout,
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn Read + Send>),
                Kind::Stderr,
            ),
        ] {
            if let Some(stream) = stream {
                let (port, marks) = (port.clone(), marks_tx.clone());
                std::thread::spawn(move || pump_marked(stream, port, kind, marks));
            }
        }
        Ok(Server {
            child,
            stdin,
            answers: BufReader::new(answers),
            marks,
        })
    }

    /// The next answer: loading's, or an invocation's; `None` if the server is gone.
    fn answer(&mut self) -> Option<Served> {
        let mut line = String::new();
        match self.answers.read_line(&mut line) {
            Ok(n) if n > 0 => serde_json::from_str(&line).ok(),
            _ => None,
        }
    }

    fn invoke(&mut self, input: &[u8], group_oom: impl Fn() -> bool) -> Served {
        let mut line = input.to_vec();
        line.push(b'\n');
        let sent = self
            .stdin
            .write_all(&line)
            .and_then(|()| self.stdin.flush());
        let answer = sent.ok().and_then(|()| self.answer());
        match answer {
            Some(served) => {
                // Every line the invocation printed is relayed before its result.
                for _ in 0..2 {
                    if self.marks.recv_timeout(Duration::from_secs(5)).is_err() {
                        break;
                    }
                }
                served
            }
            None => {
                let _ = self.child.wait();
                let oom = group_oom();
                Served {
                    oom,
                    error: (!oom)
                        .then(|| "the function's process ended during the invocation".into()),
                    broken: true,
                    ..Served::default()
                }
            }
        }
    }
}

/// Runs the program once with `input` (go's `./main`, or an image's command for runtime
/// oci): its output streamed, its exit reported.
fn run_once(port: &Port, workspace: &Workspace, job: &Run, input: &[u8]) -> Served {
    let argv = job.image.as_ref().map_or(&[][..], |i| &i.argv[..]);
    let (program, args): (&str, Vec<&str>) = match argv.split_first() {
        Some((program, args)) if job.runtime == "oci" => {
            (program, args.iter().map(String::as_str).collect())
        }
        _ => ("./main", Vec::new()),
    };
    let mut cmd = workspace.command(program, &args, &job.env, None);
    let oom_before = oom_kills();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Served {
                error: Some(format!("cannot start {program}: {e}")),
                ..Served::default()
            }
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let mut bytes = input.to_vec();
        bytes.push(b'\n');
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        });
    }
    let out = child.stdout.take().map(|o| {
        let port = port.clone();
        std::thread::spawn(move || crate::pump(o, port, Kind::Stdout))
    });
    let err = child.stderr.take().map(|e| {
        let port = port.clone();
        std::thread::spawn(move || crate::pump(e, port, Kind::Stderr))
    });
    let status = workspace.wait(&mut child, None);
    for t in [out, err].into_iter().flatten() {
        let _ = t.join();
    }
    let events = workspace
        .group
        .as_ref()
        .map(|g| g.events())
        .unwrap_or_default();
    match status {
        Ok(ended) => Served {
            code: {
                let (code, signal) = ended.code_and_signal();
                code.or(signal.map(|sig| 128 + sig))
            },
            oom: oom_kills() > oom_before || events.oom_kills > 0,
            pids_limited: events.pids_refused > 0,
            ..Served::default()
        },
        Err(e) => Served {
            error: Some(format!("waiting for the program failed: {e}")),
            broken: true,
            ..Served::default()
        },
    }
}

fn frame(port: &Port, kind: Kind, served: &Served) {
    send(port, kind, &serde_json::to_vec(served).unwrap_or_default());
}

/// Serves invocations until the host stops the VM (or the channel closes). Returns the
/// Exit to report if loading failed.
pub fn serve(port: &Port, reader: &mut impl Read, job: Run) -> Exit {
    let file = match job.runtime.as_str() {
        "python" => "main.py",
        "node" => "main.mjs",
        _ => "main",
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
    let mut server = None;
    // A go program, or an image's command, runs once per invocation; python and node
    // keep a handler loaded.
    if job.runtime != "go" && job.runtime != "oci" {
        match Server::start(port, &workspace, &job) {
            Ok(mut s) => match s.answer() {
                Some(loaded) if loaded.error.is_none() => server = Some(s),
                Some(failed) => {
                    frame(port, Kind::Loaded, &failed);
                    return Exit::default();
                }
                None => {
                    let _ = s.child.wait();
                    let failed = Served {
                        error: Some("the function's process ended while it loaded".into()),
                        broken: true,
                        ..Served::default()
                    };
                    frame(port, Kind::Loaded, &failed);
                    return Exit::default();
                }
            },
            Err(e) => {
                frame(
                    port,
                    Kind::Loaded,
                    &Served {
                        error: Some(e),
                        broken: true,
                        ..Served::default()
                    },
                );
                return Exit::default();
            }
        }
    }
    frame(port, Kind::Loaded, &Served::default());
    loop {
        let input = match read_frame(reader) {
            Ok((Kind::Invoke, input)) => input,
            Ok(_) | Err(_) => return Exit::default(),
        };
        let oom_before = oom_kills();
        let mark = workspace.group.as_ref().map(|g| g.mark());
        let served = match server.as_mut() {
            Some(s) => {
                let group = workspace.group.clone();
                s.invoke(&input, || {
                    oom_kills() > oom_before
                        || group.as_ref().is_some_and(|g| g.events().oom_kills > 0)
                })
            }
            None => run_once(port, &workspace, &job, &input),
        };
        let mut served = served;
        served.used = crate::used(workspace.group.as_ref(), mark);
        let broken = served.broken;
        frame(port, Kind::Result, &served);
        if broken {
            return Exit::default();
        }
    }
}
