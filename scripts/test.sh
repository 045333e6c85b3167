#!/usr/bin/env bash
# Sets up everything the tests need (scripts/setup.sh), checks formatting and lints, and
# runs every test: unit tests, and end-to-end tests against the real binary, a real
# SQLite file and real Deno processes. Needs root (the isolate jail uses chroot).
set -euo pipefail
# A build from scratch (as CI's clean clone is) gains nothing from incremental state: it
# only doubles the target directory.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
