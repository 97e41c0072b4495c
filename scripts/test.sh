#!/usr/bin/env bash
# Runs every Freshet test. On a fresh machine this is all the set-up needed:
# it installs what the build lacks, builds the server and runs all tests
# (unit tests, .slt files against the real server, the differential test,
# crash recovery).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/freshet-target}"

need_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# RocksDB's bindings are generated with bindgen, which needs libclang.
if ! dpkg -s libclang-dev >/dev/null 2>&1 && ! ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1; then
  echo "== installing libclang-dev (needed to build RocksDB)"
  need_root apt-get update -qq || true
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev
fi

echo "== building freshet (target dir: $CARGO_TARGET_DIR)"
cargo build --locked -p freshet-server --bin freshet

echo "== running tests"
FRESHET_BIN="$CARGO_TARGET_DIR/debug/freshet" cargo test --locked --workspace -- --nocapture
