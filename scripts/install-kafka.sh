#!/usr/bin/env bash
# Installs the Apache Kafka broker jars the tests run (once per machine) and
# prints the directory that holds them. Maven resolves them from Maven
# Central into a cache outside the clone; a JDK (17+) runs them.
set -euo pipefail
cd "$(dirname "$0")"
VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' kafka/pom.xml)"
TOOLS="${FRESHET_TOOLS:-$HOME/.cache/freshet-tools}"
LIBS="$TOOLS/kafka-$VERSION/libs"
if [ ! -f "$LIBS/kafka_2.13-$VERSION.jar" ]; then
  if ! command -v mvn >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
    echo "== installing maven and a JDK (to run the Kafka broker the tests use)" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq >&2 || true
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven default-jdk-headless >&2
  fi
  echo "== installing Apache Kafka $VERSION into $LIBS (once per machine)" >&2
  rm -rf "$LIBS.part"
  mvn -q -B -f kafka/pom.xml dependency:copy-dependencies \
    -DoutputDirectory="$LIBS.part" >&2
  rm -rf "$LIBS"
  mv "$LIBS.part" "$LIBS"
fi
echo "$LIBS"
