#!/usr/bin/env bash
# kiln's main job on a fresh machine: set up, make the busybox base image, load it, build the
# two-stage example, list the store and run the result.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
./kiln load -i "$(bash scripts/fixtures.sh busybox)"
./kiln build -t hello examples/hello
./kiln images
./kiln history hello
./kiln run --rm hello
