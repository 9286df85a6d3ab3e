#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts a real Redis and a real
# Kafka-protocol broker on 127.0.0.1, runs every test against them, stops them.
# A service test that cannot reach its server fails (FSTORE_REQUIRE_SERVICES=1).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup.sh"
source "$root/scripts/env.sh"

state=$(mktemp -d "${TMPDIR:-/tmp}/fstore-test.XXXXXX")
trap '"$root/scripts/services.sh" stop "$state"; rm -rf "$state"' EXIT
"$root/scripts/services.sh" start "$state"
source "$state/env"
export FSTORE_REQUIRE_SERVICES=1

echo "test: building (target dir $CARGO_TARGET_DIR)"
cargo build --workspace --all-targets --quiet
cargo test --workspace --quiet "$@"
