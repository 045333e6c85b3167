//! Reading a sandbox's stdout and stderr: lines go to the log sink as they come, stdout
//! is also kept (bounded) as the workload's output. Memory stays bounded whatever the
//! workload prints: long lines are cut, output past the limit is counted, not kept.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};
use vulcan_domain::{LogSink, LogStream};

/// Longest line passed on; the rest of it is dropped.
const MAX_LINE_BYTES: usize = 16 * 1024;

/// What was kept of a stream: its first bytes, as printed.
#[derive(Debug, Default)]
pub struct Captured {
    pub text: String,
    /// Bytes of stdout in all, kept or not.
    pub total_bytes: usize,
}

/// Reads `reader` to its end, emitting each line on `stream`; keeps up to `keep` bytes.
pub async fn pump(
    mut reader: impl AsyncRead + Unpin,
    stream: LogStream,
    logs: Arc<dyn LogSink>,
    keep: usize,
) -> Captured {
    let mut captured = Captured::default();
    let mut kept: Vec<u8> = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let emit = |line: &mut Vec<u8>| {
        logs.emit(stream, String::from_utf8_lossy(line).into_owned());
        line.clear();
    };
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        captured.total_bytes += n;
        let room = keep.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        for chunk in buf[..n].split_inclusive(|b| *b == b'\n') {
            let (body, ends) = match chunk.split_last() {
                Some((b'\n', body)) => (body, true),
                _ => (chunk, false),
            };
            let room = MAX_LINE_BYTES.saturating_sub(line.len());
            line.extend_from_slice(&body[..body.len().min(room)]);
            if ends {
                emit(&mut line);
            }
        }
    }
    if !line.is_empty() {
        emit(&mut line);
    }
    captured.text = String::from_utf8_lossy(&kept).into_owned();
    captured
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);
    impl LogSink for Lines {
        fn emit(&self, _: LogStream, line: String) {
            self.0.lock().unwrap().push(line);
        }
    }

    #[tokio::test]
    async fn lines_are_split_cut_and_output_bounded() {
        let sink = Arc::new(Lines::default());
        let long = "x".repeat(MAX_LINE_BYTES + 10);
        let input = format!("a\nb\n{long}\ntail");
        let got = pump(input.as_bytes(), LogStream::Stdout, sink.clone(), 6).await;
        let lines = sink.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "a");
        assert_eq!(lines[2].len(), MAX_LINE_BYTES);
        assert_eq!(lines[3], "tail");
        assert_eq!(got.text, "a\nb\nxx", "the first 6 bytes, as printed");
        assert_eq!(got.total_bytes, input.len());
    }
}
