#!/usr/bin/env bash
# Builds a small OCI image from busybox-static and pushes it to a registry.
#   scripts/oci-image.sh REGISTRY/NAME:TAG [python]
# With "python", the image also holds Debian's python3 (/usr/bin/python3) and the libraries
# it needs.
# Used by the gvisor tests and the benchmark against a local docker-registry; plain HTTP
# (--dest-tls-verify=false), so use it with a registry on 127.0.0.1.
set -euo pipefail
ref=${1:?usage: oci-image.sh REGISTRY/NAME:TAG [python]}
flavour=${2:-busybox}
tag=${ref##*:}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
layout=$work/layout
bundle=$work/bundle

umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
root=$bundle/rootfs
mkdir -p "$root/bin" "$root/etc" "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
if [ "$flavour" = python ]; then
  py=$(readlink -f /usr/bin/python3)
  mkdir -p "$root/usr/bin"
  cp "$py" "$root/usr/bin/python3"
  for lib in $(ldd "$py" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  pylib=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
  mkdir -p "$root$pylib"
  cp -r "$pylib"/. "$root$pylib"/
  rm -rf "$root$pylib"/test "$root$pylib"/idlelib "$root$pylib"/tkinter
fi
umoci repack --image "$layout:$tag" "$bundle"
umoci config --image "$layout:$tag" --config.cmd sh --config.env PATH=/usr/bin:/bin
skopeo copy --quiet --dest-tls-verify=false "oci:$layout:$tag" "docker://$ref"
