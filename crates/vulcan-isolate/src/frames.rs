//! Reading a job's frames from the runner: console lines as they come, then how the job
//! ended — a returned value, a script that ran to its end, a thrown error — or nothing, if
//! the process died (out of memory, killed). Shared by one-shot runs and warm instances.

use vulcan_domain::{BackendError, LogSink, LogStream, WorkloadResult};
use vulcan_sandbox::capture::Kept;

use crate::process::{read_line, DenoProcess, Frame, Read};

/// What a job's frames said.
pub(crate) struct Outcome {
    /// `Ok(output)` (the value's JSON, or a script's printed text), `Err(error)` if it
    /// threw; `None` if the output ended without either (the process died).
    pub ended: Option<Result<String, String>>,
    /// What a script printed, kept up to one byte past the limit so that the engine sees
    /// an output over it.
    pub printed: Kept,
    /// The length of a frame over the limit, if one was dropped.
    pub oversize: Option<usize>,
}

impl Outcome {
    /// The job's result; `died` says why a process that gave no result ended.
    pub fn into_result(self, died: impl FnOnce(&Outcome) -> String) -> WorkloadResult {
        let error = match &self.ended {
            Some(Ok(_)) => None,
            Some(Err(e)) => Some(e.clone()),
            None => Some(died(&self)),
        };
        let output = match self.ended {
            Some(Ok(output)) => output,
            _ => self.printed.text(),
        };
        WorkloadResult {
            exit_code: None,
            output,
            error,
            usage: None,
        }
    }
}

/// Reads frames until the job ends (or the output does).
pub(crate) async fn collect(
    process: &mut DenoProcess,
    logs: &dyn LogSink,
    max_output: usize,
) -> Result<Outcome, BackendError> {
    let max_frame = max_output * 2 + 64 * 1024;
    let mut out = Outcome {
        ended: None,
        printed: Kept::new(max_output + 1),
        oversize: None,
    };
    // A pooled process's job begins at its keyed `b` frame: a line before it was written
    // by no part of this job (an earlier Worker's last write, racing its end).
    let mut begun = process.key.is_none();
    while out.ended.is_none() {
        let read = read_line(&mut process.stdout, max_frame, process.key.as_deref())
            .await
            .map_err(|e| BackendError(format!("reading from the isolate: {e}")))?;
        match read {
            Read::Eof => break,
            Read::Frame(Frame::Begun) => begun = true,
            Read::Raw(_) if !begun => {}
            Read::Frame(Frame::Ready) | Read::Frame(Frame::Loaded) | Read::Frame(Frame::Next) => {}
            Read::Frame(Frame::Stdout { l }) | Read::Raw(l) => {
                out.printed.push(l.as_bytes());
                out.printed.push(b"\n");
                logs.emit(LogStream::Stdout, l);
            }
            Read::Frame(Frame::Stderr { l }) => logs.emit(LogStream::Stderr, l),
            Read::Frame(Frame::Return { v }) => out.ended = Some(Ok(v)),
            Read::Frame(Frame::ScriptDone) => out.ended = Some(Ok(out.printed.text())),
            Read::Frame(Frame::Threw { m, s }) => {
                let stack = s.lines().skip(1).collect::<Vec<_>>().join("\n");
                out.ended = Some(Err(if stack.is_empty() {
                    m
                } else {
                    format!("{m}\n{stack}")
                }));
            }
            Read::Oversize(n) => {
                out.oversize = Some(n);
                logs.emit(
                    LogStream::Backend,
                    format!("[vulcan] dropped a {n}-byte line from the isolate: over the limit of {max_frame} bytes"),
                );
            }
        }
    }
    Ok(out)
}

/// Why a process gave no result: out of memory, an output too large, or how it exited.
pub(crate) fn died_error(
    stderr: &str,
    oom_killed: bool,
    mem_mb: u32,
    oversize: Option<usize>,
    max_output: usize,
    how: &str,
) -> String {
    if oom_killed || stderr.contains("out of memory") || stderr.contains("heap limit") {
        format!("memory limit exceeded: the workload needed more than its {mem_mb} MB")
    } else if let Some(n) = oversize {
        format!("output is over the limit of {max_output} bytes (a {n}-byte result)")
    } else {
        format!(
            "the isolate ended without a result ({how}): {}",
            if stderr.is_empty() {
                "no error output"
            } else {
                stderr
            }
        )
    }
}
