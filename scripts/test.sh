#!/usr/bin/env bash
# Runs every Freshet test. On a fresh machine this is all the set-up needed:
# it installs what the build lacks, installs the Apache Kafka broker the
# Kafka tests start (once per machine), builds the server and runs all
# tests (unit tests, .slt files against the real server, the differential
# test, the extended-protocol test, crash recovery, Kafka and file sources,
# Nexmark, with a real PostgreSQL as the oracle of its fingerprints).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

# The Kafka tests need a real broker: Apache Kafka, whose jars Maven
# resolves from Maven Central once per machine into a cache outside the
# clone (a JDK runs them; the tests start a single-node KRaft broker).
TOOLS="${FRESHET_TOOLS:-$HOME/.cache/freshet-tools}"
export FRESHET_TOOLS="$TOOLS"
FRESHET_KAFKA_LIBS="${FRESHET_KAFKA_LIBS:-$(./scripts/install-kafka.sh)}"
export FRESHET_KAFKA_LIBS

# Real-client tests: psql, and the Python drivers and tools in a venv.
if ! command -v openssl >/dev/null 2>&1; then
  need_root apt-get update -qq || true
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl
fi
# strace: the durability test watches the server's fsync calls from outside.
if ! command -v strace >/dev/null 2>&1; then
  need_root apt-get update -qq || true
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace
fi
if ! command -v psql >/dev/null 2>&1; then
  echo "== installing postgresql-client (psql, for the client tests)"
  need_root apt-get update -qq || true
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client
fi
# A PostgreSQL server: the oracle the Nexmark fingerprint test compares
# with (started by the test itself on a free port, temporary data dir).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  echo "== installing postgresql (the oracle of the fingerprint tests)"
  need_root apt-get update -qq || true
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
fi
# psqlODBC through unixODBC (pyodbc needs libodbc at install and run time).
if ! odbcinst -q -d 2>/dev/null | grep -q "PostgreSQL Unicode"; then
  echo "== installing psqlODBC and unixODBC (for the client tests)"
  need_root apt-get update -qq || true
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq odbc-postgresql unixodbc unixodbc-dev
fi
VENV="$TOOLS/venv"
if ! "$VENV/bin/python" -c "import psycopg2, psycopg, sqlalchemy, pandas, pyodbc, asyncpg" >/dev/null 2>&1; then
  echo "== installing the Python client packages into $VENV (once per machine)"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q psycopg2-binary "psycopg[binary]" sqlalchemy pandas pyodbc asyncpg
fi
export FRESHET_CLIENT_PYTHON="$VENV/bin/python"
# SQLAlchemy 1.4 (what Superset runs) in a venv of its own.
VENV14="$TOOLS/venv14"
if ! "$VENV14/bin/python" -c "import psycopg2, sqlalchemy, pandas" >/dev/null 2>&1; then
  echo "== installing SQLAlchemy 1.4 into $VENV14 (once per machine)"
  python3 -m venv "$VENV14"
  "$VENV14/bin/pip" install -q psycopg2-binary "sqlalchemy<2" "pandas<2.2"
fi
export FRESHET_CLIENT_PYTHON14="$VENV14/bin/python"
# pgjdbc (Debian's package, as Metabase/DBeaver use it) with a JDK to run the
# single-file Java check, and node-postgres.
if [ ! -f /usr/share/java/postgresql.jar ] || ! command -v javac >/dev/null 2>&1; then
  echo "== installing pgjdbc and a JDK (for the client tests)"
  need_root apt-get update -qq || true
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpostgresql-jdbc-java default-jdk-headless
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "== installing node and npm (for the client tests)"
  need_root apt-get update -qq || true
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
if [ ! -d "$TOOLS/node/node_modules/pg" ]; then
  echo "== installing node-postgres into $TOOLS/node (once per machine)"
  mkdir -p "$TOOLS/node"
  (cd "$TOOLS/node" && npm install --no-audit --no-fund --silent pg@8)
fi
export FRESHET_NODE_MODULES="$TOOLS/node/node_modules"

echo "== building freshet (target dir: $CARGO_TARGET_DIR)"
cargo build --locked --workspace --bins

echo "== running tests"
FRESHET_BIN="$CARGO_TARGET_DIR/debug/freshet" cargo test --locked --workspace -- --nocapture
