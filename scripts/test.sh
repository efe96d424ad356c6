#!/usr/bin/env bash
# Runs every test, in three levels, and fails when any level fails:
#   1. native  - cargo test of the engine on burn's CPU backend (golden parity, data, training)
#   2. wasm    - wasm-bindgen-test in headless Chromium (WebGPU via SwiftShader, and CPU in wasm)
#   3. e2e     - Trunk build, dist/ served on 127.0.0.1, the app driven in headless Chromium
# Installs whatever is missing first (scripts/setup-build.sh, scripts/setup-test.sh).
# Pass level names to run only some: scripts/test.sh native e2e
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$TUNELAB_ROOT"
"$TUNELAB_ROOT/scripts/setup-build.sh" || exit 1
"$TUNELAB_ROOT/scripts/setup-test.sh" || exit 1

levels=("$@"); [ "${#levels[@]}" -gt 0 ] || levels=(native wasm e2e)
declare -A result
start_all=$SECONDS

run_native() {
  cargo test --locked 2>&1
}
run_wasm() {
  # webdriver.json (crate root) gives Chromium the SwiftShader WebGPU flags.
  cargo test --locked --target wasm32-unknown-unknown --features webgpu --test wasm 2>&1
}
run_e2e() {
  trunk build --dist "$CARGO_TARGET_DIR/dist-e2e" 2>&1 &&
    TUNELAB_DIST="$CARGO_TARGET_DIR/dist-e2e" node tests/e2e/run.mjs 2>&1
}

for level in "${levels[@]}"; do
  say "level $level: starting"
  t0=$SECONDS
  if "run_$level"; then result[$level]="PASS"; else result[$level]="FAIL"; fi
  result[$level]="${result[$level]} ($((SECONDS - t0)) s)"
done

echo
failed=0
for level in "${levels[@]}"; do
  printf 'RESULT %-7s %s\n' "$level" "${result[$level]}"
  case "${result[$level]}" in FAIL*) failed=1 ;; esac
done
printf 'RESULT total   %s (%d s)\n' "$([ $failed = 0 ] && echo PASS || echo FAIL)" "$((SECONDS - start_all))"
exit $failed
