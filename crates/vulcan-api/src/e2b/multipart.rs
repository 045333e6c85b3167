//! `multipart/form-data` request bodies, read part by part as they arrive (an upload of
//! any size never sits in memory whole): what E2B's SDKs send to `POST /files`.

use axum::body::{Body, BodyDataStream};
use futures_util::StreamExt;

/// Longest header block a part may have.
const MAX_HEADERS: usize = 16 * 1024;

pub struct Multipart {
    body: BodyDataStream,
    /// `\r\n--<boundary>`: what ends a part's data.
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    eof: bool,
    /// Inside a part's data.
    in_part: bool,
    finished: bool,
}

/// One part's name and file name, from its `Content-Disposition`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
}

impl Multipart {
    /// The boundary of a `multipart/form-data` content type; `None` for any other.
    pub fn boundary(content_type: &str) -> Option<String> {
        let mut params = content_type.split(';');
        let kind = params.next()?.trim();
        if !kind.eq_ignore_ascii_case("multipart/form-data") {
            return None;
        }
        let boundary = params.find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| v.trim().trim_matches('"').to_owned())
        })?;
        (!boundary.is_empty() && boundary.len() <= 70).then_some(boundary)
    }

    pub fn new(body: Body, boundary: &str) -> Self {
        Multipart {
            body: body.into_data_stream(),
            delimiter: [b"\r\n--".as_slice(), boundary.as_bytes()].concat(),
            // The first delimiter has no CRLF before it: one is put there.
            buf: b"\r\n".to_vec(),
            eof: false,
            in_part: false,
            finished: false,
        }
    }

    /// Reads more of the body; false at its end.
    async fn fill(&mut self) -> Result<bool, String> {
        if self.eof {
            return Ok(false);
        }
        match self.body.next().await {
            Some(Ok(piece)) => {
                self.buf.extend_from_slice(&piece);
                Ok(true)
            }
            Some(Err(e)) => Err(format!("the upload was cut off: {e}")),
            None => {
                self.eof = true;
                Ok(false)
            }
        }
    }

    /// The next part, positioned at its data; `None` after the last.
    pub async fn next_part(&mut self) -> Result<Option<Part>, String> {
        while self.in_part {
            self.chunk().await?;
        }
        if self.finished {
            return Ok(None);
        }
        // Find the delimiter (skipping a preamble), then "--" (the end) or a part.
        let at = loop {
            if let Some(at) = find(&self.buf, &self.delimiter) {
                break at;
            }
            if !self.fill().await? {
                return Err("the multipart body has no part: its boundary was not found".into());
            }
        };
        self.buf.drain(..at + self.delimiter.len());
        while self.buf.len() < 2 {
            if !self.fill().await? {
                return Err("the multipart body ends after a boundary".into());
            }
        }
        if self.buf.starts_with(b"--") {
            self.finished = true;
            return Ok(None);
        }
        let end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            if self.buf.len() > MAX_HEADERS {
                return Err(format!("a part's headers are over {MAX_HEADERS} bytes"));
            }
            if !self.fill().await? {
                return Err("the multipart body ends inside a part's headers".into());
            }
        };
        let headers = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        self.in_part = true;
        let disposition = headers
            .split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition"))
            .map(|(_, v)| v.to_owned())
            .ok_or("a part has no Content-Disposition header")?;
        Ok(Some(Part {
            name: param(&disposition, "name").unwrap_or_default(),
            filename: param(&disposition, "filename"),
        }))
    }

    /// The next piece of the current part's data; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        if !self.in_part {
            return Ok(None);
        }
        loop {
            if let Some(at) = find(&self.buf, &self.delimiter) {
                if at == 0 {
                    self.in_part = false;
                    return Ok(None);
                }
                return Ok(Some(self.buf.drain(..at).collect()));
            }
            // All but what could be the start of a delimiter is data: handed on at
            // once, so the buffer stays small and is never searched twice over.
            let safe = self.buf.len().saturating_sub(self.delimiter.len() - 1);
            if safe > 0 {
                return Ok(Some(self.buf.drain(..safe).collect()));
            }
            if !self.fill().await? {
                return Err(
                    "the multipart body ends inside a part: its closing boundary is missing".into(),
                );
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `name="value"` (or unquoted) in a header value.
fn param(header: &str, name: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').replace("\\\"", "\""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn body_in_pieces(bytes: &[u8], piece: usize) -> Body {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
            bytes.chunks(piece).map(|c| Ok(c.to_vec())).collect();
        Body::from_stream(stream::iter(pieces))
    }

    async fn all_of(m: &mut Multipart) -> Vec<u8> {
        let mut data = Vec::new();
        while let Some(piece) = m.chunk().await.unwrap() {
            data.extend(piece);
        }
        data
    }

    #[tokio::test]
    async fn parts_are_read_whatever_the_pieces_the_body_arrives_in() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/tmp/a b.txt\"\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
        body.extend_from_slice(&big);
        body.extend_from_slice(b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"rel.txt\"\r\n\r\nline\r\n--not the boundary\r\n--XyZ--\r\n");
        for piece in [1, 7, 4096, body.len()] {
            let mut m = Multipart::new(body_in_pieces(&body, piece), "XyZ");
            let first = m.next_part().await.unwrap().unwrap();
            assert_eq!(first.filename.as_deref(), Some("/tmp/a b.txt"));
            assert_eq!(first.name, "file");
            assert_eq!(all_of(&mut m).await, big, "pieces of {piece}");
            let second = m.next_part().await.unwrap().unwrap();
            assert_eq!(second.filename.as_deref(), Some("rel.txt"));
            assert_eq!(all_of(&mut m).await, b"line\r\n--not the boundary");
            assert!(m.next_part().await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn a_cut_off_body_is_an_error_not_a_short_file() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nhalf of it";
        let mut m = Multipart::new(body_in_pieces(body, 5), "b");
        m.next_part().await.unwrap().unwrap();
        let mut failed = None;
        loop {
            match m.chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        assert!(failed.unwrap().contains("closing boundary"));
    }

    #[test]
    fn only_form_data_with_a_boundary_is_taken() {
        assert_eq!(Multipart::boundary("application/octet-stream"), None);
        assert_eq!(Multipart::boundary("multipart/form-data"), None);
        assert_eq!(
            Multipart::boundary("multipart/form-data; boundary=\"q\"").as_deref(),
            Some("q")
        );
    }
}
