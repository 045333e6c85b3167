//! A run's stdout and stderr: each complete line becomes a log reply as it is written;
//! stdout is also kept (up to the run's bound) as the output.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::Replies;
use crate::Reply;

/// Stdout or stderr of one run: each complete line becomes a log reply; stdout is also
/// kept (up to the run's bound) as the output.
#[derive(Clone)]
pub(super) struct Lines(Arc<Mutex<LineState>>);

struct LineState {
    replies: Replies,
    id: u64,
    stderr: bool,
    partial: Vec<u8>,
    kept: Option<Vec<u8>>,
    max_kept: usize,
    oversize: bool,
}

impl Lines {
    pub(super) fn new(replies: Replies, id: u64, stderr: bool, max_kept: usize) -> Lines {
        Lines(Arc::new(Mutex::new(LineState {
            replies,
            id,
            stderr,
            partial: Vec::new(),
            kept: (!stderr).then(Vec::new),
            max_kept,
            oversize: false,
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LineState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, bytes: &[u8]) {
        let mut s = self.state();
        let room = s
            .max_kept
            .saturating_sub(s.kept.as_ref().map_or(0, Vec::len));
        if let Some(kept) = s.kept.as_mut() {
            kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        if bytes.len() > room && !s.stderr {
            s.oversize = true;
        }
        s.partial.extend_from_slice(bytes);
        while let Some(end) = s.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = s.partial.drain(..=end).collect();
            s.emit(&line[..line.len() - 1]);
        }
        // A line without its end is sent in pieces rather than held without bound.
        if s.partial.len() >= 64 * 1024 {
            let line = std::mem::take(&mut s.partial);
            s.emit(&line);
        }
    }

    /// Sends what is left of a last line without its end; returns what was kept.
    pub(super) fn finish(&self) -> (String, bool) {
        let mut s = self.state();
        if !s.partial.is_empty() {
            let line = std::mem::take(&mut s.partial);
            s.emit(&line);
        }
        let kept = s.kept.take().unwrap_or_default();
        (String::from_utf8_lossy(&kept).into_owned(), s.oversize)
    }
}

impl LineState {
    fn emit(&self, line: &[u8]) {
        self.replies.send(&Reply::Log {
            id: self.id,
            stderr: self.stderr,
            line: String::from_utf8_lossy(line).into_owned(),
        });
    }
}

impl IsTerminal for Lines {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Lines {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for Lines {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Lines {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Lines {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
