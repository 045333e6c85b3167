#!/usr/bin/env bash
# Sets up everything the tests need (scripts/setup.sh), checks formatting and lints, and
# runs every test: unit tests, and end-to-end tests against the real binary, a real
# SQLite file and real Deno processes. Needs root (the isolate jail uses chroot).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
