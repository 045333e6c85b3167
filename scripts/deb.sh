#!/usr/bin/env bash
# Builds the Debian package: OUT_DIR/vulcan_<version>_<arch>.deb (OUT_DIR: dist/) with the
# binary, the systemd unit, a man page per command, bash/zsh/fish completions, a settings
# file (/etc/vulcan/vulcan.env, a conffile), the Grafana dashboard and alert rules, and
# each tier's tools as Recommends. Needs dpkg-dev (dpkg-deb, dpkg-shlibdeps).
#
#   scripts/deb.sh [OUT_DIR]          builds the release binary (no debug info) and packs it
#   VULCAN_DEB_BINARY=PATH scripts/deb.sh [OUT_DIR]
#                                     packs that binary instead, its debug info stripped (the
#                                     tests pack the binary they built, not a second build)
#   VULCAN_DEB_COMPRESSION=xz|gzip|none   how dpkg-deb compresses it (xz)
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-dist}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
binary=${VULCAN_DEB_BINARY:-}
if [ -z "$binary" ]; then
  cargo build --release --locked -p vulcan
  binary=target/release/vulcan
fi
[ -x "$binary" ] || { echo "deb: no binary at $binary" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d "$root/DEBIAN"

install -D -m 755 "$binary" "$root/usr/bin/vulcan"
strip --strip-debug "$root/usr/bin/vulcan"
vulcan=$root/usr/bin/vulcan

# The unit, calling the packaged binary; its header says where things are.
install -d "$root/lib/systemd/system"
{
  echo "# Vulcan as a system service, installed by the vulcan package. Start it with"
  echo "#   systemctl enable --now vulcan"
  sed -n '/^# Settings go in/,$p' contrib/systemd/vulcan.service |
    sed 's|/usr/local/bin/vulcan|/usr/bin/vulcan|'
} >"$root/lib/systemd/system/vulcan.service"
grep -q '^ExecStart=/usr/bin/vulcan serve$' "$root/lib/systemd/system/vulcan.service"

# A man page per command, compressed as Debian keeps them.
"$vulcan" man "$stage/man1" >/dev/null
install -d "$root/usr/share/man/man1"
for page in "$stage"/man1/*.1; do
  gzip -9n -c "$page" >"$root/usr/share/man/man1/$(basename "$page").gz"
done

install -d "$root/usr/share/bash-completion/completions" \
  "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d"
"$vulcan" completions bash >"$root/usr/share/bash-completion/completions/vulcan"
"$vulcan" completions zsh >"$root/usr/share/zsh/vendor-completions/_vulcan"
"$vulcan" completions fish >"$root/usr/share/fish/vendor_completions.d/vulcan.fish"

# Settings: read by the unit; kept across upgrades and removal (a conffile), readable by
# root only (it may hold a database password).
install -d -m 755 "$root/etc/vulcan"
cat >"$root/etc/vulcan/vulcan.env" <<'EOF'
# Settings of the vulcan service: VULCAN_* variables, one per line (see `man vulcan-serve`
# and /usr/share/doc/vulcan/README.Debian). Restart the service after a change.
#
# The API listens on loopback only unless this is changed:
#VULCAN_LISTEN_ADDR=127.0.0.1:8080
# The isolate tier's Deno (see README.Debian for how to fetch it):
#VULCAN_DENO_BIN=/var/lib/vulcan/.tools/deno/node_modules/@deno/linux-x64-glibc/deno
# A cluster's shared PostgreSQL (the embedded SQLite in /var/lib/vulcan otherwise):
#VULCAN_DATABASE_URL=postgres://vulcan:PASSWORD@db.example:5432/vulcan
EOF
chmod 600 "$root/etc/vulcan/vulcan.env"
echo /etc/vulcan/vulcan.env >"$root/DEBIAN/conffiles"

install -D -m 644 contrib/grafana/vulcan.json "$root/usr/share/vulcan/grafana/vulcan.json"
install -D -m 644 contrib/prometheus/alerts.yml "$root/usr/share/vulcan/prometheus/alerts.yml"

doc=$root/usr/share/doc/vulcan
install -d "$doc"
cat >"$doc/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: vulcan

Files: *
Copyright: The Vulcan developers
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
cat >"$doc/README.Debian" <<'EOF'
vulcan for Debian
=================

The service is installed, not started: `systemctl enable --now vulcan`. It runs as root
(it makes cgroups, loop mounts, network namespaces, gVisor sandboxes and QEMU VMs), keeps
its state in /var/lib/vulcan (the SQLite database, images, volumes, the first admin key in
/var/lib/vulcan/admin.key) and reads its settings from /etc/vulcan/vulcan.env.

`vulcan doctor` says, tier by tier, what this host can run and the exact fix for the rest:

- isolate: Deno, which Debian does not package. Fetch it from npm into the service's
  directory (it is looked for there):
    npm install --prefix /var/lib/vulcan/.tools/deno @deno/linux-x64-glibc
- gvisor: the runsc package (Recommends).
- microvm: the qemu-system-x86 package (Recommends) and a guest kernel and root
  filesystem, built from a source checkout with scripts/guest.sh; set
  VULCAN_MICROVM_ASSETS to where they are.

Removing the package keeps /etc/vulcan and /var/lib/vulcan (workloads, volumes and keys
are data); purging removes /etc/vulcan but still leaves /var/lib/vulcan to be removed by
hand.
EOF
printf 'vulcan (%s) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- Vulcan developers <vulcan@localhost>  %s\n' \
  "$version" "$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" \
  "$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" |
  gzip -9n >"$doc/changelog.Debian.gz"

cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
  echo "vulcan: start it with 'systemctl enable --now vulcan'; 'vulcan doctor' checks the host"
fi
exit 0
EOF
cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
  systemctl stop vulcan.service >/dev/null 2>&1 || true
fi
exit 0
EOF
cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
  rm -rf "${DPKG_ROOT:-}/etc/vulcan"
fi
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
EOF
chmod 755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

# The libraries the binary links, as dpkg-shlibdeps names their packages.
install -d "$stage/shlibs/debian"
printf 'Source: vulcan\n\nPackage: vulcan\nArchitecture: any\n' >"$stage/shlibs/debian/control"
depends=$(cd "$stage/shlibs" && dpkg-shlibdeps -O -e "$vulcan" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "deb: dpkg-shlibdeps named no dependencies" >&2; exit 1; }

cat >"$root/DEBIAN/control" <<EOF
Package: vulcan
Version: $version
Architecture: $arch
Maintainer: Vulcan developers <vulcan@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends, e2fsprogs
Recommends: runsc, qemu-system-x86, iproute2, nftables, npm
Suggests: postgresql
Section: admin
Priority: optional
Description: run untrusted code in V8 isolates, gVisor sandboxes and microVMs
 Vulcan runs code people submit on your own hardware, behind one HTTP API and one
 CLI: JavaScript, TypeScript and Wasm in V8 isolates (Deno), any OCI image under
 gVisor, and Python, Node and Go in QEMU microVMs. It keeps workloads, functions,
 schedules, queues and sandboxes in an embedded SQLite database, or shares a
 PostgreSQL database across a cluster of nodes.
EOF

mkdir -p "$out"
deb="$out/vulcan_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"${VULCAN_DEB_COMPRESSION:-xz}" --build "$root" "$deb" >/dev/null
echo "deb: $deb ($(du -h "$deb" | cut -f1); the binary $(du -h "$vulcan" | cut -f1))"
