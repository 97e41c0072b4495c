#!/usr/bin/env bash
# Runs every Freshet test. On a fresh machine this is all the set-up needed:
# it installs what the build lacks, builds the server and runs all tests
# (unit tests, .slt files against the real server, the differential test,
# the extended-protocol test, crash recovery).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

echo "== building freshet (target dir: $CARGO_TARGET_DIR)"
cargo build --locked --workspace --bins

echo "== running tests"
FRESHET_BIN="$CARGO_TARGET_DIR/debug/freshet" cargo test --locked --workspace -- --nocapture
