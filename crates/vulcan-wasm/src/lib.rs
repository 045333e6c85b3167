//! WebAssembly workloads on wasmtime, outside the server's process.
//!
//! The server compiles a module once, in a process of its own ([`compile`]: `vulcan
//! wasm-helper --compile`, bounded in time and memory, confined like the helper), and keeps
//! what it made. It starts one helper process (`vulcan wasm-helper`, this crate's
//! [`helper`] with the `engine` feature) and talks to it over its stdin and stdout, one
//! JSON object per line: [`Request`]s in, [`Reply`]s out. The helper confines itself (no
//! network, an empty root, nobody) before it reads its first request, then serves many
//! workloads at once, each in a fresh instance of its own store, from compiled modules it
//! is sent once and keeps (the last [`CACHED_MODULES`], the server keeping count of which).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "engine")]
pub mod compile;
#[cfg(feature = "engine")]
pub mod helper;

/// Compiled modules a helper keeps, least recently used first out. The server keeps the
/// same count, in the same order, of what it has sent: it sends a module's compiled code
/// only to a helper that does not have it.
pub const CACHED_MODULES: usize = 64;

/// The exit status of a compile process whose module was refused (not valid, or importing
/// beyond WASI); the reason is on its stderr.
pub const COMPILE_REFUSED: i32 = 2;

/// What the server asks of the helper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Request {
    /// Runs a module: a WASI command (`_start`) with `input` as one line of JSON on stdin,
    /// or else the exported function `input.fn` (default `main`) with `input.args`.
    Run {
        id: u64,
        /// The module's SHA-256, hex: the key of its compiled code.
        module: String,
        /// Its compiled code (what `compile` made), base64; sent when the helper does
        /// not have it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        compiled_b64: Option<String>,
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
    },
    /// The run named a module the helper does not have: send it again with the code.
    Missing { id: u64 },
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
