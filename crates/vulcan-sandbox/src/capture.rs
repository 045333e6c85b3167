//! A program's output, bounded however much it prints: split into lines (each cut at a
//! maximum length), the first bytes of stdout kept as the workload's output with a count
//! of all of them, and the last bytes of stderr kept for the error of a run that failed.
//!
//! Every backend reads its program's output through these, so a line, an output and an
//! error tail are cut the same way on every tier.

/// Longest line passed on as one log line; the rest of a longer line is dropped.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// How much of stderr's end is kept for an error message.
pub const TAIL_BYTES: usize = 4096;

/// Splits a byte stream into lines of at most `max_line` bytes (without their newline).
#[derive(Debug)]
pub struct LineSplitter {
    max_line: usize,
    line: Vec<u8>,
}

impl LineSplitter {
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            max_line,
            line: Vec::new(),
        }
    }

    /// Feeds bytes; `emit` gets each line completed by them.
    pub fn feed(&mut self, bytes: &[u8], mut emit: impl FnMut(&[u8])) {
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            let (body, ends) = match chunk.split_last() {
                Some((b'\n', body)) => (body, true),
                _ => (chunk, false),
            };
            let room = self.max_line.saturating_sub(self.line.len());
            self.line.extend_from_slice(&body[..body.len().min(room)]);
            if ends {
                emit(&self.line);
                self.line.clear();
            }
        }
    }

    /// Ends the stream: a last line without a newline is emitted too.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.line.is_empty() {
            emit(&self.line);
            self.line.clear();
        }
    }
}

/// The first `keep` bytes of a stream, and how many there were in all.
#[derive(Debug, Default)]
pub struct Kept {
    keep: usize,
    bytes: Vec<u8>,
    total: u64,
}

impl Kept {
    pub fn new(keep: usize) -> Self {
        Kept {
            keep,
            bytes: Vec::new(),
            total: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.keep.saturating_sub(self.bytes.len());
        self.bytes
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Bytes seen in all, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether more was seen than kept.
    pub fn overflowed(&self) -> bool {
        self.total > self.keep as u64
    }

    /// What was kept, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// The last `keep` bytes of a stream.
#[derive(Debug, Default)]
pub struct Tail {
    keep: usize,
    text: String,
}

impl Tail {
    pub fn new(keep: usize) -> Self {
        Tail {
            keep,
            text: String::new(),
        }
    }

    /// Adds one line.
    pub fn push_line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        if self.text.len() > self.keep {
            let mut cut = self.text.len() - self.keep;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.text.drain(..cut);
        }
    }

    /// Everything kept, trimmed.
    pub fn text(&self) -> &str {
        self.text.trim()
    }

    /// The last non-empty line kept.
    pub fn last_line(&self) -> &str {
        self.text
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_chunks_and_cut_at_the_limit() {
        let mut split = LineSplitter::new(4);
        let mut lines = Vec::new();
        split.feed(b"ab", |l| lines.push(l.to_vec()));
        split.feed(b"c\nlonger line\n\ntail", |l| lines.push(l.to_vec()));
        split.finish(|l| lines.push(l.to_vec()));
        assert_eq!(lines, [&b"abc"[..], b"long", b"", b"tail"]);
    }

    #[test]
    fn kept_keeps_the_first_bytes_and_counts_all() {
        let mut kept = Kept::new(5);
        kept.push(b"hello");
        assert!(!kept.overflowed());
        kept.push(b" world");
        assert_eq!((kept.text().as_str(), kept.total()), ("hello", 11));
        assert!(kept.overflowed());
    }

    #[test]
    fn the_tail_keeps_the_last_line_of_a_long_stream() {
        let mut tail = Tail::new(32);
        for i in 0..1000 {
            tail.push_line(&format!("noise {i}"));
        }
        tail.push_line("the real error");
        tail.push_line("");
        assert_eq!(tail.last_line(), "the real error");
        assert!(tail.text().len() <= 32);
        let mut multibyte = Tail::new(5);
        multibyte.push_line("ééééé");
        assert!(multibyte.text().chars().all(|c| c == 'é'));
    }
}
