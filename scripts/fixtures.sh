#!/usr/bin/env bash
# Makes base images without any registry, as OCI archives, and caches them outside the work tree:
#   busybox:latest   /bin/busybox from Debian's busybox-static, a symlink per applet, passwd/group, /tmp 1777
#   debian:bookworm  debootstrap --variant=minbase from the apt mirror this machine is configured with
# Usage: scripts/fixtures.sh busybox|debian [--docker]   prints the archive's path
# (--docker prints a docker-archive of the same image instead). umoci and skopeo, not kiln, write them,
# so the fixtures double as images from independent tools.
set -euo pipefail
which=${1:?usage: fixtures.sh busybox|debian [--docker]}
cache=${KILN_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln-fixtures}
mkdir -p "$cache"
case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

apt_mirror() {
  # Deb822 sources first (URIs:), then one-line sources (deb URL suite ...). Never a hard-coded host.
  local m
  m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$m" ] || m=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | grep -v security | awk '{ for (i=2;i<=NF;i++) if ($i !~ /^\[/) { print $i; exit } }' | head -n1 || true)
  [ -n "$m" ] || { echo "fixtures: no Debian mirror found in /etc/apt" >&2; exit 1; }
  echo "$m"
}

make_rootfs_busybox() {
  local root=$1 bb=/bin/busybox
  [ -x "$bb" ] || bb=$(command -v busybox)
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,var,home,proc,sys,dev}
  cp "$bb" "$root/bin/busybox"
  "$bb" --list-full | while read -r applet; do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -sf /bin/busybox "$root/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  chmod 700 "$root/root"
}

make_rootfs_debian() {
  local root=$1
  debootstrap --variant=minbase bookworm "$root" "$(apt_mirror)" >&2
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* 2>/dev/null || true
}

build() {
  local name=$1 tag=$2 cmd=$3 out=$4
  local work; work=$(mktemp -d "$cache/.work.XXXXXX")
  trap 'rm -rf "$work"' RETURN
  "make_rootfs_$name" "$work/rootfs"
  umoci init --layout "$work/oci" >&2
  umoci new --image "$work/oci:$tag" >&2
  umoci unpack --image "$work/oci:$tag" "$work/bundle" >&2
  cp -a "$work/rootfs/." "$work/bundle/rootfs/"
  umoci repack --image "$work/oci:$tag" --history.created_by "kiln fixtures: $name rootfs" "$work/bundle" >&2
  umoci config --image "$work/oci:$tag" --os linux --architecture "$arch" \
    --config.env "PATH=$path" --config.cmd "$cmd" --history.created_by "CMD [\"$cmd\"]" >&2
  umoci gc --layout "$work/oci" >&2
  skopeo copy -q "oci:$work/oci:$tag" "oci-archive:$work/out.tar:$name:$tag" >&2
  skopeo copy -q "oci:$work/oci:$tag" "docker-archive:$work/out.docker.tar:$name:$tag" >&2
  mv "$work/out.docker.tar" "${out%.oci.tar}.docker.tar"
  mv "$work/out.tar" "$out"
}

case "$which" in
  busybox) out=$cache/busybox-latest.oci.tar; [ -s "$out" ] || build busybox latest sh "$out" ;;
  debian)  out=$cache/debian-bookworm.oci.tar; [ -s "$out" ] || build debian bookworm bash "$out" ;;
  *) echo "fixtures: unknown image $which (busybox|debian)" >&2; exit 2 ;;
esac
if [ "${2:-}" = --docker ]; then echo "${out%.oci.tar}.docker.tar"; else echo "$out"; fi
