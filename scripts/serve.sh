#!/usr/bin/env bash
# Serves the app at http://127.0.0.1:${PORT:-8080} (installs the build tools first when missing).
# Extra arguments go to `trunk serve` (for example --release).
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$TUNELAB_ROOT/scripts/setup-build.sh"
cd "$TUNELAB_ROOT"
exec trunk serve --address 127.0.0.1 --port "${PORT:-8080}" "$@"
