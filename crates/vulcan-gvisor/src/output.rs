//! Reading a sandbox's stdout and stderr: lines go to the log sink as they come; the first
//! bytes of a stream are kept (stdout: the workload's output) and its last lines (stderr:
//! the error of a failed run). Memory stays bounded whatever the workload prints; the cuts
//! are [`vulcan_sandbox::capture`]'s, the same on every backend.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};
use vulcan_domain::{LogSink, LogStream};
use vulcan_sandbox::capture::{Kept, LineSplitter, Tail, MAX_LINE_BYTES, TAIL_BYTES};

/// What was kept of a stream.
#[derive(Debug, Default)]
pub struct Captured {
    /// Its first bytes, as printed, and the count of all of them.
    pub kept: Kept,
    /// Its last lines.
    pub tail: Tail,
}

/// Reads `reader` to its end, emitting each line on `stream`; keeps up to `keep` bytes.
pub async fn pump(
    mut reader: impl AsyncRead + Unpin,
    stream: LogStream,
    logs: Arc<dyn LogSink>,
    keep: usize,
) -> Captured {
    let mut captured = Captured {
        kept: Kept::new(keep),
        tail: Tail::new(TAIL_BYTES),
    };
    let mut lines = LineSplitter::new(MAX_LINE_BYTES);
    let mut buf = vec![0u8; 16 * 1024];
    let mut emit = |line: &[u8]| {
        let line = String::from_utf8_lossy(line).into_owned();
        captured.tail.push_line(&line);
        logs.emit(stream, line);
    };
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        lines.feed(&buf[..n], &mut emit);
        captured.kept.push(&buf[..n]);
    }
    lines.finish(&mut emit);
    captured
}

#[cfg(test)]
mod tests {
    use super::*;
    use vulcan_domain::testing::RecordingSink;

    #[tokio::test]
    async fn lines_are_split_cut_and_output_bounded() {
        let sink = Arc::new(RecordingSink::default());
        let long = "x".repeat(MAX_LINE_BYTES + 10);
        let input = format!("a\nb\n{long}\ntail");
        let got = pump(input.as_bytes(), LogStream::Stdout, sink.clone(), 6).await;
        let lines = sink.stream(LogStream::Stdout);
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "a");
        assert_eq!(lines[2].len(), MAX_LINE_BYTES);
        assert_eq!(lines[3], "tail");
        assert_eq!(got.kept.text(), "a\nb\nxx", "the first 6 bytes, as printed");
        assert_eq!(got.kept.total(), input.len() as u64);
        assert_eq!(got.tail.last_line(), "tail", "and the last line");
    }
}
