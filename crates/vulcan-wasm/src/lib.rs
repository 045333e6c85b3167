//! WebAssembly workloads on wasmtime, outside the server's process.
//!
//! The server starts one helper process (`vulcan wasm-helper`, this crate's [`helper`]
//! with the `engine` feature) and talks to it over its stdin and stdout, one JSON object
//! per line: [`Request`]s in, [`Reply`]s out. The helper confines itself (no network, an
//! empty root, nobody) before it reads its first request, then serves many workloads at
//! once, each in a fresh instance of its own store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "engine")]
pub mod helper;

/// What the server asks of the helper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Request {
    /// Runs a module: a WASI command (`_start`) with `input` as one line of JSON on stdin,
    /// or else the exported function `input.fn` (default `main`) with `input.args`.
    Run {
        id: u64,
        module_b64: String,
        input: serde_json::Value,
        env: BTreeMap<String, String>,
        /// The cap on the instance's linear memory.
        mem_mb: u32,
        /// A bound of the helper's own, a little past the server's timeout.
        timeout_ms: u64,
        /// Stdout kept as the output, at most.
        max_output: usize,
    },
    /// Stops a run at its next epoch check (within milliseconds).
    Kill { id: u64 },
}

/// What the helper answers, tagged with the run's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Reply {
    /// The helper is confined and ready for requests.
    Ready,
    /// One line the module wrote to stdout or stderr.
    Log { id: u64, stderr: bool, line: String },
    /// The run ended.
    Done {
        id: u64,
        exit_code: Option<i32>,
        output: String,
        error: Option<String>,
        /// CPU time of the thread that ran it.
        cpu_ms: u64,
        /// The linear memory's largest size.
        peak_memory_bytes: u64,
        /// Whether the module was compiled for this run (not found in the cache).
        compiled: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_are_one_tagged_json_object_each() {
        let kill = serde_json::to_string(&Request::Kill { id: 7 }).unwrap();
        assert_eq!(kill, r#"{"t":"kill","id":7}"#);
        let line = r#"{"t":"log","id":3,"stderr":false,"line":"hi"}"#;
        assert_eq!(
            serde_json::from_str::<Reply>(line).unwrap(),
            Reply::Log {
                id: 3,
                stderr: false,
                line: "hi".into()
            }
        );
    }
}
