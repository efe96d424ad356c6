#!/usr/bin/env bash
# Serves the app at http://127.0.0.1:${PORT:-8080} (installs the build tools first when missing).
# Extra arguments go to `trunk serve` (for example --release).
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$TUNELAB_ROOT/scripts/setup-build.sh"
cd "$TUNELAB_ROOT"
# No autoreload: Trunk injects it as an inline script, which the page's CSP refuses.
exec trunk serve --no-autoreload --address 127.0.0.1 --port "${PORT:-8080}" "$@"
