//! Code written for E2B's SDKs runs against Vulcan unchanged on microVMs too: the same
//! flows as tests/e2b.rs (the real `e2b` packages, a real server with auth on, a real local
//! registry), the sandboxes held in real QEMU microVMs (TCG here) by
//! `VULCAN_SANDBOX_ISOLATION=microvm`. Slow: its own target.

mod common;
#[path = "e2b/support.rs"]
mod support;

use support::{javascript_flow, python_flow, setup};

/// VMs under TCG need the CPUs: one flow at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_python_sdk_runs_unchanged_against_vulcan_on_microvms() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    python_flow(&setup("e2b-py-vm", "microvm"));
}

#[test]
fn the_javascript_sdk_runs_unchanged_against_vulcan_on_microvms() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    javascript_flow(&setup("e2b-js-vm", "microvm"));
}
