#!/usr/bin/env bash
# Builds a small OCI image from busybox-static and pushes it to a registry.
#   scripts/oci-image.sh REGISTRY/NAME:TAG [busybox|bash|python|numpy]
# With "bash", the image also holds the host's /bin/bash (E2B's SDKs run commands with it).
# With "python", it also holds Debian's python3 (/usr/bin/python3) and the libraries it needs. With "numpy", it is a whole Debian root (debootstrap, minbase) with python3 and
# python3-numpy from the Debian mirror apt uses (about 200 MB; the root is cached in
# .tools/images/numpy-root, so a second build only packs it).
# Used by the gvisor tests and the benchmark against a local docker-registry; plain HTTP
# (--dest-tls-verify=false), so use it with a registry on 127.0.0.1.
set -euo pipefail
ref=${1:?usage: oci-image.sh REGISTRY/NAME:TAG [busybox|bash|python|numpy]}
flavour=${2:-busybox}
tag=${ref##*:}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
layout=$work/layout
bundle=$work/bundle

numpy_root() {
  local cache stamp mirror
  cache="$(cd "$(dirname "$0")/.." && pwd)/.tools/images/numpy-root"
  stamp="bookworm minbase python3 python3-numpy v1"
  if [ "$(cat "$cache.stamp" 2>/dev/null)" != "$stamp" ]; then
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    rm -rf "$cache" "$cache.partial"
    mkdir -p "$(dirname "$cache")"
    echo "oci-image: debootstrap bookworm with python3-numpy from $mirror (a minute or two)" >&2
    debootstrap --variant=minbase --include=python3,python3-numpy bookworm "$cache.partial" "$mirror" \
      >"$cache.log" 2>&1 || { tail -20 "$cache.log" >&2; exit 1; }
    rm -rf "$cache.partial/var/cache/apt/archives"/*.deb "$cache.partial/var/lib/apt/lists"/*
    mv "$cache.partial" "$cache"
    echo "$stamp" >"$cache.stamp"
  fi
  echo "$cache"
}

umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
root=$bundle/rootfs
if [ "$flavour" = numpy ]; then
  cp -a "$(numpy_root)"/. "$root"/
  umoci repack --image "$layout:$tag" "$bundle"
  umoci config --image "$layout:$tag" --config.cmd python3 \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  skopeo copy --quiet --dest-tls-verify=false "oci:$layout:$tag" "docker://$ref"
  exit 0
fi
mkdir -p "$root/bin" "$root/etc" "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
# Copies the host's program $1 to $2 in the root, with the libraries it loads.
with_libs() {
  mkdir -p "$root$(dirname "$2")"
  cp "$1" "$root$2"
  for lib in $(ldd "$1" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}
if [ "$flavour" = bash ]; then
  # What E2B's SDKs run commands with: /bin/bash -l -c.
  rm -f "$root/bin/bash"
  with_libs "$(readlink -f /bin/bash)" /bin/bash
fi
if [ "$flavour" = python ]; then
  py=$(readlink -f /usr/bin/python3)
  with_libs "$py" /usr/bin/python3
  pylib=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
  mkdir -p "$root$pylib"
  cp -r "$pylib"/. "$root$pylib"/
  rm -rf "$root$pylib"/test "$root$pylib"/idlelib "$root$pylib"/tkinter
fi
umoci repack --image "$layout:$tag" "$bundle"
umoci config --image "$layout:$tag" --config.cmd sh --config.env PATH=/usr/bin:/bin
skopeo copy --quiet --dest-tls-verify=false "oci:$layout:$tag" "docker://$ref"
