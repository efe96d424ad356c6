#!/usr/bin/env bash
# Runs the native benchmarks on burn's CPU backend and prints their numbers:
#   encoder  - all-MiniLM-L6-v2 sentences/s (batch 1 x 128 tokens, batch 32 x 32 tokens)
#   gpt2     - GPT-2 small shape: time to first token after a 64-token prefill, tokens/s
#   finetune - head and full fine-tuning of all-MiniLM-L6-v2 on movie reviews: accuracy, time
#   wasm     - burn's CPU backends (Flex and ndarray) in wasm in headless Chromium, on a model of
#              all-MiniLM-L6-v2's shape: sentences/s (not in the default set: a wasm build of
#              burn with ndarray)
# Usage: scripts/bench.sh [encoder|gpt2|finetune|wasm ...]   (default: encoder gpt2 finetune)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$TUNELAB_ROOT"
"$TUNELAB_ROOT/scripts/setup-test.sh" >/dev/null
which=("$@"); [ "${#which[@]}" -gt 0 ] || which=(encoder gpt2 finetune)
for b in "${which[@]}"; do
  say "benchmark $b"
  if [ "$b" = wasm ]; then
    # webdriver.json gives Chromium its flags; --nocapture prints the numbers.
    cargo test --locked --target wasm32-unknown-unknown --features ndarray --test wasm_bench -- --nocapture
  else
    cargo run --locked --quiet --example "bench_$b"
  fi
done
