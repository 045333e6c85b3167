//! The OpenAPI document: it describes every route the router serves, validates with a
//! standard validator, and a property-based fuzz run of the real server from it
//! (Schemathesis, every check and phase) finds nothing: no 5xx, no answer outside the
//! document, no valid request refused and no invalid one taken.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use common::Server;

/// Python tools scripts/setup.sh installs into .tools/py.
fn tool(name: &str) -> PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.tools/py/bin")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}

#[test]
fn every_route_served_is_in_the_document_and_nothing_else_is() {
    let doc = vulcan_api::openapi::spec();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = vulcan_api::served_routes()
        .into_iter()
        .map(|(method, path)| {
            (
                method.as_str().to_owned(),
                vulcan_api::openapi::document_path(&path),
            )
        })
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in the document: {undocumented:?}"
    );
    let stale: Vec<_> = documented.difference(&served).collect();
    assert!(
        stale.is_empty(),
        "in the document but not served: {stale:?}"
    );
    assert!(served.len() >= 50, "{}", served.len());
    assert_eq!(doc["openapi"], "3.1.0");
}

#[test]
fn the_document_validates_and_a_fuzz_run_with_every_check_finds_nothing() {
    let admin = "vk_fuzz_0123456789";
    // The heavy backends are left out: the fuzzer's valid workloads run in isolates.
    let server = Server::start(&[
        ("VULCAN_AUTH", "on"),
        ("VULCAN_ADMIN_KEY", admin),
        ("VULCAN_QEMU_BIN", "/nonexistent/qemu"),
        ("VULCAN_RUNSC_BIN", "/nonexistent/runsc"),
        ("VULCAN_AUTH_FAILURES_PER_MINUTE", "100000"),
    ]);
    // Served without a key.
    let text = ureq::get(&server.url("/openapi.json"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["info"]["title"], "Vulcan");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let validated = Command::new(tool("openapi-spec-validator"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        validated.status.success(),
        "{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );

    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let fuzz = Command::new(tool("st"))
        .current_dir(dir.path())
        .arg("--config-file")
        .arg(&config)
        .args(["run", &server.url("/openapi.json")])
        .args(["-H", &format!("X-API-Key: {admin}")])
        // Every check: no 5xx, every answer as documented, every valid request taken and
        // every invalid one refused, in every phase including stateful sequences that follow
        // the document's links.
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--seed", "1"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&fuzz.stdout);
    assert!(
        fuzz.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&fuzz.stderr)
    );
    assert!(out.contains("passed"), "{out}");
    // The server is still healthy after it.
    assert_eq!(server.get("/healthz").0, 200);
}
