#!/usr/bin/env bash
# The whole test suite: set-up (packages, compile), base-image fixtures (cached), then Node's test
# runner over every compiled test file. Its summary is the last thing printed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
KILN_BUSYBOX_OCI=$(bash scripts/fixtures.sh busybox)
export KILN_BUSYBOX_OCI
export KILN_BUSYBOX_DOCKER=${KILN_BUSYBOX_OCI%.oci.tar}.docker.tar
KILN_BUSYBOX_MULTI_OCI=$(bash scripts/fixtures.sh busybox-multi)
export KILN_BUSYBOX_MULTI_OCI
# hadolint's own rule specs, read from a hadolint checkout (never committed here): KILN_HADOLINT, or
# the one the workspace's fetch tool keeps beside it. Without one, test/lint/hadolint-agreement skips.
if [ -z "${KILN_HADOLINT:-}" ] && [ -d /work/.mirror/hadolint+hadolint/repo ]; then
  export KILN_HADOLINT=/work/.mirror/hadolint+hadolint/repo
fi
# The longest files first, so that the end of the run is many short files on both workers rather
# than one long file on one of them.
first=(dist/test/build/everyday.test.js dist/test/registry/server/scale-out.test.js dist/test/build/compat.test.js
  dist/test/registry/server/faults.test.js dist/test/sign/registry.test.js)
mapfile -t rest < <(find dist/test -name '*.test.js' | sort)
files=()
for f in "${first[@]}"; do [ -f "$f" ] && files+=("$f"); done
for f in "${rest[@]}"; do [[ " ${first[*]} " == *" $f "* ]] || files+=("$f"); done
exec node --enable-source-maps --test --test-concurrency="${KILN_TEST_CONCURRENCY:-2}" "${files[@]}"
