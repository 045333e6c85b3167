//! The CLI's HTTP client: JSON in and out, every failure turned into a message that says
//! what to do.

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use serde_json::Value;

/// Why a CLI command failed. The process exits with 125 (Vulcan's failure, not the
/// workload's), as `docker run` does.
#[derive(Debug)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type CliResult<T> = Result<T, CliError>;

#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    api_key: Option<String>,
}

/// One server-sent event.
pub struct Event {
    pub name: String,
    pub data: Value,
}

impl Client {
    pub fn new(server: &str, api_key: Option<String>) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .build();
        Client {
            base: server.trim_end_matches('/').to_owned(),
            agent,
            api_key,
        }
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let req = self.agent.request(method, &format!("{}{path}", self.base));
        match &self.api_key {
            Some(key) => req.set("X-API-Key", key),
            None => req,
        }
    }

    fn answer(&self, result: Result<ureq::Response, ureq::Error>) -> CliResult<ureq::Response> {
        match result {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(status, resp)) => {
                let body = resp.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_owned))
                    .unwrap_or(body);
                Err(CliError(format!("the server answered {status}: {message}")))
            }
            Err(ureq::Error::Transport(t)) => Err(CliError(format!(
                "cannot reach the Vulcan server at {}: {t}. Is `vulcan serve` running there? Point --server or VULCAN_URL at it.",
                self.base
            ))),
        }
    }

    fn json(resp: ureq::Response) -> CliResult<Value> {
        let text = resp
            .into_string()
            .map_err(|e| CliError(format!("reading the server's answer failed: {e}")))?;
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| CliError(format!("the server's answer is not JSON: {e}")))
    }

    pub fn get(&self, path: &str) -> CliResult<Value> {
        let resp = self.answer(self.request("GET", path).call())?;
        Self::json(resp)
    }

    pub fn post(&self, path: &str, body: &Value) -> CliResult<Value> {
        let resp = self.answer(
            self.request("POST", path)
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
        )?;
        Self::json(resp)
    }

    pub fn put(&self, path: &str, body: &Value) -> CliResult<Value> {
        let resp = self.answer(
            self.request("PUT", path)
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
        )?;
        Self::json(resp)
    }

    pub fn patch(&self, path: &str, body: &Value) -> CliResult<Value> {
        let resp = self.answer(
            self.request("PATCH", path)
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
        )?;
        Self::json(resp)
    }

    pub fn delete(&self, path: &str) -> CliResult<Value> {
        let resp = self.answer(self.request("DELETE", path).call())?;
        Self::json(resp)
    }

    /// `PUT`s the bytes of `body` as a stream (a file upload).
    pub fn put_stream(&self, path: &str, body: impl Read) -> CliResult<Value> {
        let resp = self.answer(
            self.request("PUT", path)
                .set("Content-Type", "application/octet-stream")
                .send(body),
        )?;
        Self::json(resp)
    }

    /// The body of a `GET`, as a stream (a file download).
    pub fn get_stream(&self, path: &str) -> CliResult<impl Read + Send> {
        Ok(self.answer(self.request("GET", path).call())?.into_reader())
    }

    /// Follows a server-sent event stream, calling `on_event` for each event until it
    /// returns false or the stream ends.
    pub fn events(&self, path: &str, mut on_event: impl FnMut(Event) -> bool) -> CliResult<()> {
        let resp = self.answer(
            self.request("GET", path)
                .set("Accept", "text/event-stream")
                .call(),
        )?;
        let mut reader = BufReader::new(resp.into_reader().take(u64::MAX));
        let (mut name, mut data) = (String::new(), String::new());
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .map_err(|e| CliError(format!("the log stream broke: {e}")))?;
            if n == 0 {
                return Ok(());
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if !data.is_empty() || !name.is_empty() {
                    let event = Event {
                        name: if name.is_empty() {
                            "message".into()
                        } else {
                            std::mem::take(&mut name)
                        },
                        data: serde_json::from_str(&data).unwrap_or(Value::String(data.clone())),
                    };
                    data.clear();
                    if !on_event(event) {
                        return Ok(());
                    }
                }
            } else if let Some(v) = l.strip_prefix("event:") {
                name = v.trim().to_owned();
            } else if let Some(v) = l.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
    }
}
