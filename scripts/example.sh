#!/usr/bin/env bash
# kiln's main job on a fresh machine: set up, make the busybox base image, load it, list the store.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
./kiln load -i "$(bash scripts/fixtures.sh busybox)"
./kiln images
