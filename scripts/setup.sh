#!/usr/bin/env bash
# Installs what kiln and its tests need on a fresh Debian machine, then compiles kiln.
# Idempotent and quick when everything is present. Debian packages are installed only as root.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: runc (the default sandbox), bubblewrap (the light executor), skopeo/umoci/buildah
# (independent peers in the interoperability tests; umoci+skopeo also make the base-image fixtures),
# busybox-static and debootstrap (fixture root filesystems), attr (xattrs), zstd (zstd layers),
# iproute2 (network checks in tests), tmux (terminal tests of run -it and the debugging shell),
# shellcheck (kiln lint runs it on RUN scripts), util-linux unshare (rootless mode), git (git
# build contexts), xz-utils and bzip2 (ADD of such archives), openssh-client (ssh-agent and ssh-add
# hold the keys of kiln build --ssh ID=KEYFILE; the ssh tests run a real agent). postgresql-15 and Ceph's ceph-mon,
# ceph-osd, radosgw and ceph-common: the real PostgreSQL and S3 servers the registry's scale-out
# backends are tested against (test/support/postgres.ts, radosgw.ts start throwaway ones on free
# loopback ports). Debian's postgresql-15 makes a cluster 15/main on port 5432 and starts it where
# services may start; the tests never use it. The ceph packages start no cluster daemon (there is no
# /etc/ceph/ceph.conf), only, under systemd, the ceph-crash watcher, which listens on nothing.
# haproxy: the load balancer in front of the registry replicas' fault tests (test/support/haproxy.ts
# starts its own on a free port; Debian's haproxy service, on its empty default config, serves nothing).
# chromium: the real browser the web UI's tests drive with playwright-core (test/registry/server/ui.test.ts).
# qemu-user-static and binfmt-support: RUN steps of foreign platforms (kiln build --platform linux/arm64)
# run under QEMU user-mode emulation; the interpreters are registered with binfmt_misc below, with the F
# flag, so the kernel opens them on the host and they work inside the sandbox's mount namespace.
# slapd and ldap-utils: the OpenLDAP server the registry's LDAP sign-in is tested against
# (test/support/slapd.ts starts its own, with its own cn=config, on a free loopback port; the
# package's own slapd service is stopped and disabled below, the tests never use it).
need=()
for pair in runc:runc bwrap:bubblewrap skopeo:skopeo umoci:umoci buildah:buildah debootstrap:debootstrap \
            getfattr:attr zstd:zstd ip:iproute2 mknod:coreutils podman:podman docker-registry:docker-registry wrk:wrk cc:build-essential newuidmap:uidmap \
            ceph-mon:ceph-mon ceph-osd:ceph-osd radosgw:radosgw monmaptool:ceph-common haproxy:haproxy \
            chromium:chromium tmux:tmux shellcheck:shellcheck unshare:util-linux git:git xz:xz-utils bzip2:bzip2 ssh-agent:openssh-client; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
[ -x /bin/busybox ] || need+=(busybox-static)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)   # not on PATH
[ -x /usr/sbin/slapd ] || need+=(slapd)   # not on PATH for users
command -v ldapadd >/dev/null 2>&1 || need+=(ldap-utils)
[ -x /usr/bin/time ] || need+=(time)   # GNU time: CPU and peak memory in bench/build.ts
[ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v update-binfmts >/dev/null 2>&1 || need+=(binfmt-support)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
    # Debian's slapd configures and may start a system server (dc=nodomain on port 389): not ours.
    if [[ " ${need[*]} " == *" slapd "* ]]; then
      { service slapd stop && update-rc.d slapd disable; } >/dev/null 2>&1 || true
    fi
  else
    echo "setup: missing Debian packages (run as root to install): ${need[*]}" >&2
  fi
fi

# binfmt_misc: mounted and the QEMU interpreters enabled (Debian's qemu-user-static declares them with
# fix_binary yes, the F flag). Outside systemd nothing does this at boot; as root it is done here.
if [ "$(id -u)" = 0 ] && command -v update-binfmts >/dev/null 2>&1; then
  [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  if [ -e /proc/sys/fs/binfmt_misc/status ]; then
    for f in /usr/share/binfmts/qemu-*; do
      [ -e "$f" ] || continue
      n=$(basename "$f")
      [ -e "/proc/sys/fs/binfmt_misc/$n" ] || update-binfmts --import "$n" >/dev/null 2>&1 || true
      grep -qx enabled "/proc/sys/fs/binfmt_misc/$n" 2>/dev/null || update-binfmts --enable "$n" >/dev/null 2>&1 || true
    done
  else
    echo "setup: binfmt_misc is not mounted (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc): foreign-platform RUN steps will fail" >&2
  fi
fi

# better-sqlite3 has no prebuilt binary that can be downloaded here (its prebuilds are on GitHub), so
# every clean install compiles SQLite from source: a minute of one core. What it compiles depends
# only on the package's version, Node's ABI and the architecture, so the result is kept beside the
# fixtures (outside the work tree) and copied into the next clean install instead. Every other
# package's install script runs as npm ci would run it.
native_cache=${KILN_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln-fixtures}/native
install_node_modules() {
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2 || return 1
  local key addon=node_modules/better-sqlite3/build/Release/better_sqlite3.node others
  key="better-sqlite3-$(node -p "require('./node_modules/better-sqlite3/package.json').version")-abi$(node -p process.versions.modules)-$(uname -m).node"
  if [ -s "$native_cache/$key" ]; then
    mkdir -p "$(dirname "$addon")" && cp "$native_cache/$key" "$addon"
  else
    npm rebuild better-sqlite3 --loglevel=error >&2 || return 1
    mkdir -p "$native_cache" && cp "$addon" "$native_cache/.$key.$$" && mv "$native_cache/.$key.$$" "$native_cache/$key"
  fi
  # The packages with an install script, wherever they are in the tree, but better-sqlite3.
  others=$(node -e '
    const { readdirSync, readFileSync, existsSync } = require("node:fs");
    const found = new Set();
    const walk = (dir) => {
      for (const e of existsSync(dir) ? readdirSync(dir) : []) {
        if (e.startsWith(".")) continue;
        if (e.startsWith("@")) { walk(`${dir}/${e}`); continue; }
        const pkg = `${dir}/${e}/package.json`;
        if (!existsSync(pkg)) continue;
        const p = JSON.parse(readFileSync(pkg, "utf8"));
        const s = p.scripts || {};
        if ((s.preinstall || s.install || s.postinstall) && p.name !== "better-sqlite3") found.add(p.name);
        walk(`${dir}/${e}/node_modules`);
      }
    };
    walk("node_modules");
    console.log([...found].join(" "));')
  # shellcheck disable=SC2086
  [ -z "$others" ] || npm rebuild $others --loglevel=error >&2
  node -e 'require("better-sqlite3")(":memory:").close()' >&2
}
if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  install_node_modules || npm install --no-audit --no-fund --loglevel=error >&2
fi
npx --no-install tsc -p tsconfig.json >&2
node scripts/bundle.mjs >&2
node scripts/build-web.mjs >&2
