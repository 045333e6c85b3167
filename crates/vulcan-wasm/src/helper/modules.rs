//! The compiled modules the helper keeps, by SHA-256, with their imports resolved
//! ([`InstancePre`]): the last [`CACHED_MODULES`], least recently used first out. The helper
//! never compiles: it loads what the server's compile process made ([`crate::compile`])
//! and sent. Modules are looked up and added by the one thread that reads requests, in
//! their order, so that the server's count of what the helper has stays exact.

use std::collections::VecDeque;

use wasmtime::{Engine, InstancePre, Linker, Module};

use super::State;
use crate::CACHED_MODULES;

/// The namespace of WASI preview 1's functions: the only imports a module may have.
pub const WASI: &str = "wasi_snapshot_preview1";

pub(super) struct Modules {
    pub engine: Engine,
    linker: Linker<State>,
    kept: VecDeque<(String, InstancePre<State>)>,
}

impl Modules {
    pub fn new(engine: Engine, linker: Linker<State>) -> Modules {
        Modules {
            engine,
            linker,
            kept: VecDeque::new(),
        }
    }

    /// The module `sha`, if kept (it becomes the most recently used).
    pub fn get(&mut self, sha: &str) -> Option<InstancePre<State>> {
        let at = self.kept.iter().position(|(s, _)| s == sha)?;
        let entry = self.kept.remove(at)?;
        let pre = entry.1.clone();
        self.kept.push_back(entry);
        Some(pre)
    }

    /// Loads the compiled code of module `sha` and keeps it (the least recently used goes
    /// if there are too many). It was made by this binary's compile process with the same
    /// settings; the engine checks that before using it.
    pub fn load(&mut self, sha: &str, compiled: &[u8]) -> Result<InstancePre<State>, String> {
        // SAFETY: the bytes are what `compile` made from a module — never the module's
        // author's bytes — and reached this process only through the server's pipe.
        let module = unsafe { Module::deserialize(&self.engine, compiled) }
            .map_err(|e| format!("cannot load the compiled module: {e}"))?;
        for import in module.imports() {
            if import.module() != WASI {
                return Err(unknown_import(import.module(), import.name()));
            }
        }
        let pre = self.linker.instantiate_pre(&module).map_err(|e| {
            format!("the module's imports cannot be satisfied: {e} (only WASI preview 1 functions exist)")
        })?;
        if let Some(at) = self.kept.iter().position(|(s, _)| s == sha) {
            self.kept.remove(at);
        } else if self.kept.len() >= CACHED_MODULES {
            self.kept.pop_front();
        }
        self.kept.push_back((sha.to_owned(), pre.clone()));
        Ok(pre)
    }
}

/// What a module importing anything but WASI is told.
pub fn unknown_import(module: &str, name: &str) -> String {
    format!(
        "the module imports {module}.{name}, which Vulcan does not provide: a module may import WASI preview 1 functions ({WASI}) only"
    )
}
