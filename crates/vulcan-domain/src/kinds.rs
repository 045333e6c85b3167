//! The two closed vocabularies of a request: which language runtime, and which isolation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The language runtime a workload is written for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Go,
    Node,
    Python,
    Wasm,
    Oci,
}

/// How a workload is isolated from the host. `Auto` only appears in requests: a stored
/// workload always carries the isolation that was actually used.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    Auto,
    Isolate,
    Gvisor,
    Microvm,
}

/// A runtime or isolation name that is not one of Vulcan's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}: expected one of {expected}")]
pub struct ParseKindError {
    kind: &'static str,
    value: String,
    expected: &'static str,
}

impl Runtime {
    pub const ALL: [Runtime; 5] = [
        Runtime::Go,
        Runtime::Node,
        Runtime::Python,
        Runtime::Wasm,
        Runtime::Oci,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Go => "go",
            Runtime::Node => "node",
            Runtime::Python => "python",
            Runtime::Wasm => "wasm",
            Runtime::Oci => "oci",
        }
    }

    /// The isolation `auto` prefers for this runtime, before availability is considered.
    pub fn preferred_isolation(self) -> Isolation {
        match self {
            Runtime::Node | Runtime::Wasm => Isolation::Isolate,
            Runtime::Python | Runtime::Go => Isolation::Microvm,
            Runtime::Oci => Isolation::Gvisor,
        }
    }
}

impl Isolation {
    /// The concrete isolations, in the order `auto` falls back through them.
    pub const CONCRETE: [Isolation; 3] =
        [Isolation::Isolate, Isolation::Gvisor, Isolation::Microvm];

    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Auto => "auto",
            Isolation::Isolate => "isolate",
            Isolation::Gvisor => "gvisor",
            Isolation::Microvm => "microvm",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Runtime {
    type Err = ParseKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Runtime::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ParseKindError {
                kind: "runtime",
                value: s.to_owned(),
                expected: "go, node, python, wasm, oci",
            })
    }
}

impl FromStr for Isolation {
    type Err = ParseKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Isolation::Auto]
            .into_iter()
            .chain(Isolation::CONCRETE)
            .find(|i| i.as_str() == s)
            .ok_or_else(|| ParseKindError {
                kind: "isolation",
                value: s.to_owned(),
                expected: "auto, isolate, gvisor, microvm",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_the_documented_backend_for_each_runtime() {
        assert_eq!(Runtime::Node.preferred_isolation(), Isolation::Isolate);
        assert_eq!(Runtime::Wasm.preferred_isolation(), Isolation::Isolate);
        assert_eq!(Runtime::Python.preferred_isolation(), Isolation::Microvm);
        assert_eq!(Runtime::Go.preferred_isolation(), Isolation::Microvm);
        assert_eq!(Runtime::Oci.preferred_isolation(), Isolation::Gvisor);
    }

    #[test]
    fn names_round_trip_and_unknown_names_say_what_is_expected() {
        for r in Runtime::ALL {
            assert_eq!(r.as_str().parse::<Runtime>(), Ok(r));
        }
        let err = "ruby".parse::<Runtime>().unwrap_err().to_string();
        assert!(err.contains("\"ruby\"") && err.contains("python"), "{err}");
        assert_eq!("microvm".parse::<Isolation>(), Ok(Isolation::Microvm));
        assert!("docker".parse::<Isolation>().is_err());
    }
}

/// The backends a benchmark measures: every isolation but `auto` (the document's name for
/// the values `Isolation` takes there).
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ConcreteIsolation {
    Isolate,
    Gvisor,
    Microvm,
}

/// The isolations that hold a sandbox (processes and files: not `isolate`).
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum SandboxIsolation {
    Auto,
    Gvisor,
    Microvm,
}
