#!/usr/bin/env bash
# The quickstart's first command: builds fstore and runs it on the bundled `ctr` example
# with embedded defaults (no servers): validate the definitions, apply them to a local
# registry, describe the sample spec, and compute its training samples from the example's
# Parquet data (showing a few rows); then export the model's input module and train and
# serve through it (examples/ctr/train_and_serve.py).
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
echo "\$ fstore describe spec:ctr --registry $registry"
"$fstore" describe spec:ctr --registry "$registry"
echo
out="${FSTORE_SAMPLES:-$root/.fstore/samples}"
echo "\$ fstore sample ctr --registry $registry --out $out --show 5"
"$fstore" sample ctr --registry "$registry" --out "$out" --show 5
echo
module="$root/.fstore/ctr_model_inputs.py"
echo "\$ fstore export ctr_model --registry $registry --format python --out $module"
"$fstore" export ctr_model --registry "$registry" --format python --out "$module"
echo
echo "\$ python3 examples/ctr/train_and_serve.py …   # train on the samples, replay one event online"
python3 examples/ctr/train_and_serve.py --fstore "$fstore" --registry "$registry" \
  --samples "$out" --module "$module" --work "$root/.fstore/replay" 2>/dev/null
