//! Code written for E2B's SDK runs against Vulcan unchanged: the real `e2b` package from
//! PyPI (pinned in scripts/setup.sh, in .tools/e2b-py) drives a real server with auth on,
//! on gVisor, through a real local registry and image with bash in it.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::sandbox_host::Host;
use common::Server;
use serde_json::{json, Value};
use vulcan_gvisor::testing::Registry;

fn sdk_python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/e2b-py/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh (it installs E2B's SDK)",
        python.display()
    );
    python
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

#[test]
fn the_python_sdk_runs_unchanged_against_vulcan_on_gvisor() {
    let python = sdk_python();
    let registry = Registry::start();
    let image = registry.push("bash:e2b", "bash");
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

    let flow = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2b/flow.py");
    let out = Command::new(&python)
        .arg(&flow)
        .env("E2B_API_URL", &server.base)
        .env("E2B_SANDBOX_URL", &server.base)
        .env("E2B_API_KEY", &key_a)
        .env("E2B_TEMPLATE", &image)
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

    // Tenants hold on the E2B routes too: B cannot see, extend or kill A's sandbox.
    let (status, created) = call(
        &server,
        "POST",
        "/v2/sandboxes",
        &key_a,
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
        let (status, body) = call(&server, method, &path, &key_b, body);
        assert_eq!(status, 404, "{method} {path} with B's key: {body}");
        assert!(
            body["message"].is_string() && body["code"] == 404,
            "E2B's error shape: {body}"
        );
    }
    let (status, listed) = call(&server, "GET", "/v2/sandboxes", &key_b, None);
    assert_eq!((status, listed), (200, json!([])), "B lists none of A's");
    let (status, shown) = call(&server, "GET", &format!("/sandboxes/{id}"), &key_a, None);
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["state"], "running");

    // envd answers only with the sandbox's own token.
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
    assert_eq!(health(&key_a), 502, "an API key is not a sandbox's token");

    let (status, _) = call(&server, "DELETE", &format!("/sandboxes/{id}"), &key_a, None);
    assert_eq!(status, 204);
    assert_eq!(health(&token), 502, "a killed sandbox's envd is gone");
    let (status, body) = call(&server, "GET", &format!("/sandboxes/{id}"), &key_a, None);
    assert_eq!(status, 404, "{body}");
}
