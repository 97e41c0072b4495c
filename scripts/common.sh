# Shared set-up for the run and test scripts: one build cache outside the
# clone, and the system packages the build needs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/freshet-target}"

need_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# RocksDB's bindings are generated with bindgen, which needs libclang.
if ! dpkg -s libclang-dev >/dev/null 2>&1 && ! ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1; then
  echo "== installing libclang-dev (needed to build RocksDB)" >&2
  need_root apt-get update -qq || true
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev >&2
fi
