#!/usr/bin/env bash
# Runs the native benchmarks on burn's CPU backend and prints their numbers:
#   encoder  - all-MiniLM-L6-v2 sentences/s (batch 1 x 128 tokens, batch 32 x 32 tokens)
#   gpt2     - GPT-2 small shape: time to first token after a 64-token prefill, tokens/s
#   finetune - head and full fine-tuning of all-MiniLM-L6-v2 on movie reviews: accuracy, time
# Usage: scripts/bench.sh [encoder|gpt2|finetune ...]   (default: all)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$TUNELAB_ROOT"
"$TUNELAB_ROOT/scripts/setup-test.sh" >/dev/null
which=("$@"); [ "${#which[@]}" -gt 0 ] || which=(encoder gpt2 finetune)
for b in "${which[@]}"; do
  say "benchmark $b"
  cargo run --locked --quiet --example "bench_$b"
done
