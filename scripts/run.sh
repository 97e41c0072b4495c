#!/usr/bin/env bash
# Builds and runs the Freshet server on a local data dir (./freshet-data by
# default). Arguments go to `freshet`, e.g. `./scripts/run.sh --listen 0.0.0.0:4566`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
exec cargo run --locked -q --bin freshet -- "$@"
