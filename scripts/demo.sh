#!/usr/bin/env bash
# The quickstart's first command: builds fstore and runs it on the bundled `ctr` example
# with embedded defaults (no servers): validate the definitions, apply them to a local
# registry, plan against it, and describe the sample spec.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup.sh" >/dev/null
source "$root/scripts/env.sh"
cargo build --quiet --bin fstore
fstore="$CARGO_TARGET_DIR/debug/fstore"
registry="${FSTORE_REGISTRY:-$root/.fstore/registry}"

echo "\$ fstore validate examples/ctr"
"$fstore" validate examples/ctr
echo
echo "\$ fstore apply examples/ctr --registry $registry"
"$fstore" apply examples/ctr --registry "$registry"
echo
echo "\$ fstore plan examples/ctr --registry $registry"
"$fstore" plan examples/ctr --registry "$registry"
echo
echo "\$ fstore describe spec:ctr --registry $registry"
"$fstore" describe spec:ctr --registry "$registry"
