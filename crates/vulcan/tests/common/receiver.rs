//! A webhook receiver on loopback: records every request (path, headers, body) and answers
//! each with the next status of a script (then 200).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Lowercase names.
    pub headers: HashMap<String, String>,
    pub body: String,
    pub at: Instant,
    /// The wall clock when it arrived (to set beside a workload's times).
    pub wall: time::OffsetDateTime,
}

impl Received {
    /// Whether `X-Vulcan-Signature` is the HMAC-SHA256 of `"<t>.<body>"` under `key`.
    pub fn signed_with(&self, key: &str) -> bool {
        let Some(header) = self.headers.get("x-vulcan-signature") else {
            return false;
        };
        let mut t = None;
        let mut v1 = None;
        for part in header.split(',') {
            match part.split_once('=') {
                Some(("t", v)) => t = Some(v.to_owned()),
                Some(("v1", v)) => v1 = Some(v.to_owned()),
                _ => {}
            }
        }
        let (Some(t), Some(v1)) = (t, v1) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{t}.{}", self.body).as_bytes());
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        expected == v1
    }
}

pub struct Receiver {
    pub port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Answers the requests to each path with `script[path]` in turn, then 200.
    pub fn start(script: &[(&str, &[u16])]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let mut plan: HashMap<String, Vec<u16>> = script
            .iter()
            .map(|(p, s)| (p.to_string(), s.iter().rev().copied().collect()))
            .collect();
        let seen = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                let mut headers = HashMap::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim().split_once(':') {
                        headers.insert(k.trim().to_lowercase(), v.trim().to_owned());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let status = plan.get_mut(&path).and_then(Vec::pop).unwrap_or(200);
                seen.lock().unwrap().push(Received {
                    path,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                    at: Instant::now(),
                    wall: time::OffsetDateTime::now_utc(),
                });
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver { port, got }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What arrived at `path` so far.
    pub fn at(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}
