//! Compiling a module, in a process of its own (`vulcan wasm-helper --compile`): a module
//! is code from a stranger, and so is the work of compiling it — a module can be made to
//! take minutes and gigabytes. The process confines itself as the helper does, caps its
//! own data memory (`RLIMIT_DATA`: a compile past it fails its allocation and aborts), and
//! is killed by the server past its time bound. It reads the module on stdin and writes
//! the compiled code on stdout, which the helper loads ([`crate::helper`]); a module that
//! is not valid, or imports anything but WASI, is refused with the reason on stderr and
//! exit status [`COMPILE_REFUSED`].

use std::io::{Read, Write};
use std::path::Path;

use wasmtime::{Engine, Module};

use crate::helper::{compiler_config, confine, unknown_import, WASI};
use crate::COMPILE_REFUSED;

/// The compiled code of `module`, or why it is refused.
pub fn precompile(module: &[u8]) -> Result<Vec<u8>, String> {
    let engine =
        Engine::new(&compiler_config()).map_err(|e| format!("cannot set up wasmtime: {e}"))?;
    let compiled = engine.precompile_module(module).map_err(|e| {
        format!(
            "the code is not a valid WebAssembly module: {}",
            e.root_cause()
        )
    })?;
    // SAFETY: the bytes were made just now, by this engine.
    let loaded = unsafe { Module::deserialize(&engine, &compiled) }
        .map_err(|e| format!("cannot load what was compiled: {e}"))?;
    if let Some(import) = loaded.imports().find(|i| i.module() != WASI) {
        return Err(unknown_import(import.module(), import.name()));
    }
    Ok(compiled)
}

/// The compile process: confined to `root`, its data memory capped at `memory_mb`, it
/// compiles the module on stdin to stdout. Returns the exit status.
pub fn serve(root: &Path, memory_mb: u64) -> i32 {
    let mut module = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut module) {
        eprintln!("cannot read the module: {e}");
        return 1;
    }
    if let Err(e) = confine(root) {
        eprintln!("cannot confine the compile process: {e}");
        return 1;
    }
    let bytes = memory_mb.saturating_mul(1 << 20);
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) } != 0 {
        eprintln!(
            "cannot bound the compile's memory: {}",
            std::io::Error::last_os_error()
        );
        return 1;
    }
    match precompile(&module) {
        Ok(compiled) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(&compiled).and_then(|()| out.flush()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("cannot write the compiled module: {e}");
                    1
                }
            }
        }
        Err(refused) => {
            eprintln!("{refused}");
            COMPILE_REFUSED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_compiles_and_one_importing_beyond_wasi_is_refused() {
        let fine = wat::parse_str(
            r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
                 (func (export "main") (result i32) (i32.const 42)))"#,
        )
        .unwrap();
        let compiled = precompile(&fine).unwrap();
        assert!(!compiled.is_empty());
        let foreign =
            wat::parse_str(r#"(module (import "env" "launch" (func)) (func (export "main")))"#)
                .unwrap();
        let refused = precompile(&foreign).unwrap_err();
        assert!(refused.contains("env.launch"), "{refused}");
        let junk = precompile(b"\0asm garbage").unwrap_err();
        assert!(junk.contains("not a valid WebAssembly module"), "{junk}");
    }
}
