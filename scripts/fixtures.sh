#!/usr/bin/env bash
# Makes base images without any registry, as OCI archives, and caches them outside the work tree:
#   busybox:latest   /bin/busybox from Debian's busybox-static, a symlink per applet, passwd/group, /tmp 1777
#   debian:bookworm  debootstrap --variant=minbase from the apt mirror this machine is configured with
#   busybox-multi    busybox:latest as an OCI image index for linux/amd64 and linux/arm64: the other
#                    architecture's busybox-static .deb comes from the configured mirror's pool, found
#                    through its signed InRelease and Packages index (no dpkg --add-architecture needed)
#   debian-multi     debian:bookworm as an index for linux/amd64 and linux/arm64: the other architecture
#                    is debootstrapped with --foreign and its second stage runs under QEMU user-mode
#                    emulation (qemu-user-static's binfmt_misc entry with the F flag); minutes, once
# Usage: scripts/fixtures.sh busybox|debian|busybox-multi|debian-multi [--docker]   prints the archive's path
# (--docker prints a docker-archive of the same image instead; busybox-multi has none: a docker-archive
# holds one platform). umoci and skopeo, not kiln, write them,
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

host_busybox() {
  local bb=/bin/busybox
  [ -x "$bb" ] || bb=$(command -v busybox)
  echo "$bb"
}

# fetch_busybox ARCH DEST: /bin/busybox of Debian's busybox-static for ARCH (a Debian architecture
# name), from the pool of the configured mirror, every download checked against the signed InRelease.
fetch_busybox() {
  local want=$1 dest=$2 m suite=bookworm tmp
  m=$(apt_mirror); m=${m%/}
  tmp=$(mktemp -d "$cache/.deb.XXXXXX")
  curl -fsSL -o "$tmp/InRelease" "$m/dists/$suite/InRelease"
  gpgv --keyring /usr/share/keyrings/debian-archive-keyring.gpg --output "$tmp/Release" "$tmp/InRelease" 2>/dev/null \
    || { echo "fixtures: $m/dists/$suite/InRelease: bad signature" >&2; rm -rf "$tmp"; exit 1; }
  curl -fsSL -o "$tmp/Packages.xz" "$m/dists/$suite/main/binary-$want/Packages.xz"
  local sum; sum=$(sha256sum "$tmp/Packages.xz" | cut -d' ' -f1)
  grep -q " $sum .* main/binary-$want/Packages.xz\$" "$tmp/Release" \
    || { echo "fixtures: main/binary-$want/Packages.xz does not match the Release file" >&2; rm -rf "$tmp"; exit 1; }
  local stanza file debsum
  stanza=$(xz -dc "$tmp/Packages.xz" | awk -v RS= '/(^|\n)Package: busybox-static\n/')
  file=$(printf '%s\n' "$stanza" | awk '/^Filename:/ {print $2}')
  debsum=$(printf '%s\n' "$stanza" | awk '/^SHA256:/ {print $2}')
  [ -n "$file" ] || { echo "fixtures: no busybox-static for $want in $m" >&2; rm -rf "$tmp"; exit 1; }
  curl -fsSL -o "$tmp/bb.deb" "$m/$file"
  echo "$debsum  $tmp/bb.deb" | sha256sum -c --quiet - >&2 || { echo "fixtures: $file: checksum mismatch" >&2; rm -rf "$tmp"; exit 1; }
  dpkg-deb -x "$tmp/bb.deb" "$tmp/x"
  cp "$tmp/x/bin/busybox" "$dest"
  rm -rf "$tmp"
}

make_rootfs_busybox() {
  # $2: the busybox binary (another architecture's for busybox-multi); the applet list is the host's,
  # the same Debian package's.
  local root=$1 bb=${2:-$(host_busybox)}
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,var,home,proc,sys,dev}
  cp "$bb" "$root/bin/busybox"
  "$(host_busybox)" --list-full | while read -r applet; do
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
  # $2: a Debian architecture other than the host's: the first stage unpacks, the second stage runs
  # the packages' scripts inside the new root under QEMU.
  local root=$1 want=${2:-$arch}
  if [ "$want" = "$arch" ]; then
    debootstrap --variant=minbase bookworm "$root" "$(apt_mirror)" >&2
  else
    debootstrap --variant=minbase --arch "$want" --foreign bookworm "$root" "$(apt_mirror)" >&2
    chroot "$root" /debootstrap/debootstrap --second-stage >&2
  fi
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

# One image per architecture into one layout, then an OCI image index over them (image-spec
# image-index.md: each descriptor with its platform) tagged NAME:TAG.
build_multi() {
  local name=$1 tag0=$2 cmd=$3 out=$4 work a tag; work=$(mktemp -d "$cache/.work.XXXXXX")
  trap 'rm -rf "$work"' RETURN
  umoci init --layout "$work/oci" >&2
  local entries=()
  for a in amd64 arm64; do
    tag=$tag0-$a
    if [ "$name" = busybox ]; then
      local bb=$work/busybox-$a
      if [ "$a" = "$arch" ]; then cp "$(host_busybox)" "$bb"; else fetch_busybox "$a" "$bb"; fi
      make_rootfs_busybox "$work/rootfs-$a" "$bb"
    else
      "make_rootfs_$name" "$work/rootfs-$a" "$a"
    fi
    umoci new --image "$work/oci:$tag" >&2
    umoci unpack --image "$work/oci:$tag" "$work/bundle-$a" >&2
    cp -a "$work/rootfs-$a/." "$work/bundle-$a/rootfs/"
    umoci repack --image "$work/oci:$tag" --history.created_by "kiln fixtures: $name rootfs ($a)" "$work/bundle-$a" >&2
    umoci config --image "$work/oci:$tag" --os linux --architecture "$a" \
      --config.env "PATH=$path" --config.cmd "$cmd" --history.created_by "CMD [\"$cmd\"]" >&2
    entries+=("$(jq -c --arg t "$tag" --arg a "$a" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t)
      | {mediaType, digest, size, platform: {architecture: $a, os: "linux"}}' "$work/oci/index.json")")
  done
  local idx digest
  idx=$(printf '%s\n' "${entries[@]}" | jq -cs '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: .}')
  printf '%s' "$idx" >"$work/index.blob"
  digest=$(sha256sum "$work/index.blob" | cut -d' ' -f1)
  mv "$work/index.blob" "$work/oci/blobs/sha256/$digest"
  jq -c --arg d "sha256:$digest" --argjson s "$(printf '%s' "$idx" | wc -c)" --arg t "$tag0" \
    '.manifests = [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s, annotations: {"org.opencontainers.image.ref.name": $t}}]' \
    "$work/oci/index.json" >"$work/index.json" && mv "$work/index.json" "$work/oci/index.json"
  umoci gc --layout "$work/oci" >&2
  skopeo copy -q --all "oci:$work/oci:$tag0" "oci-archive:$work/out.tar:$name:$tag0" >&2
  mv "$work/out.tar" "$out"
}

case "$which" in
  busybox-multi|debian-multi)
    [ "${2:-}" != --docker ] || { echo "fixtures: $which has no docker-archive (a docker-archive holds one platform)" >&2; exit 2; }
    out=$cache/$which.oci.tar
    if [ ! -s "$out" ]; then
      if [ "$which" = busybox-multi ]; then build_multi busybox latest sh "$out"; else build_multi debian bookworm bash "$out"; fi
    fi
    echo "$out"; exit 0 ;;
  busybox) out=$cache/busybox-latest.oci.tar; [ -s "$out" ] || build busybox latest sh "$out" ;;
  debian)  out=$cache/debian-bookworm.oci.tar; [ -s "$out" ] || build debian bookworm bash "$out" ;;
  *) echo "fixtures: unknown image $which (busybox|debian|busybox-multi|debian-multi)" >&2; exit 2 ;;
esac
if [ "${2:-}" = --docker ]; then echo "${out%.oci.tar}.docker.tar"; else echo "$out"; fi
