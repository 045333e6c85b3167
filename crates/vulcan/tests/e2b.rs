//! Code written for E2B's SDKs runs against Vulcan unchanged: the real `e2b` packages
//! from PyPI and npm (pinned in scripts/setup.sh, in .tools/e2b-py and .tools/e2b-js) drive
//! a real server with auth on, on gVisor, through a real local registry and an image with
//! bash in it. Each SDK runs the same flow (tests/e2b/flow.py, tests/e2b/flow.mjs).

mod common;
#[path = "e2b/support.rs"]
mod support;

use serde_json::json;
use support::{call, javascript_flow, python_flow, setup, Setup};

#[test]
fn the_python_sdk_runs_unchanged_against_vulcan_on_gvisor() {
    let setup = setup("e2b-py", "gvisor");
    python_flow(&setup);
    tenants_and_tokens_hold(&setup);
}

#[test]
fn the_javascript_sdk_runs_unchanged_against_vulcan_on_gvisor() {
    let setup = setup("e2b-js", "gvisor");
    javascript_flow(&setup);
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
