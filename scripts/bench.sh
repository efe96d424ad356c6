#!/usr/bin/env bash
# Runs the native benchmarks on burn's CPU backend and prints their numbers:
#   encoder  - all-MiniLM-L6-v2 sentences/s (batch 1 x 128 tokens, batch 32 x 32 tokens)
#   gpt2     - GPT-2 small shape: time to first token after a 64-token prefill, tokens/s
#   finetune - head and full fine-tuning of all-MiniLM-L6-v2 on movie reviews: accuracy, time
#   wasm     - burn's CPU backends (Flex and ndarray) in wasm in headless Chromium, on a model of
#              all-MiniLM-L6-v2's shape: sentences/s (not in the default set: a wasm build of
#              burn with ndarray)
#   transformersjs - the peer: transformers.js on all-MiniLM-L6-v2 in the same headless Chromium,
#              same texts and shapes as `wasm` (installs transformers.js from npm, and torch +
#              transformers in a venv to export the ONNX file it needs: several GB, once)
# Usage: scripts/bench.sh [encoder|gpt2|finetune|wasm|transformersjs ...]
#        (default: encoder gpt2 finetune)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$TUNELAB_ROOT"
"$TUNELAB_ROOT/scripts/setup-test.sh" >/dev/null
which=("$@"); [ "${#which[@]}" -gt 0 ] || which=(encoder gpt2 finetune)
for b in "${which[@]}"; do
  say "benchmark $b"
  if [ "$b" = transformersjs ]; then
    tjs="$TUNELAB_CACHE/transformersjs"
    if [ ! -f "$tjs/node_modules/@huggingface/transformers/package.json" ]; then
      mkdir -p "$tjs"
      # --ignore-scripts: onnxruntime-node's install script downloads from nuget (and is not used).
      (cd "$tjs" && npm install --silent --ignore-scripts --no-save @huggingface/transformers@4.3.1)
    fi
    model="$tjs/models/all-MiniLM-L6-v2"
    if [ ! -f "$model/onnx/model.onnx" ]; then
      venv="$TUNELAB_CACHE/pyenv-torch"
      [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
      "$venv/bin/python" -c 'import torch, transformers, onnx, onnxscript' 2>/dev/null ||
        "$venv/bin/pip" install --quiet torch transformers onnx onnxscript
      mkdir -p "$model/onnx"
      for f in config.json tokenizer.json tokenizer_config.json special_tokens_map.json; do
        cp "$TUNELAB_MODELS/all-MiniLM-L6-v2/$f" "$model/"
      done
      "$venv/bin/python" benches/export_onnx.py "$TUNELAB_MODELS/all-MiniLM-L6-v2" "$model/onnx/model.onnx"
    fi
    node benches/transformersjs.mjs "$tjs" "$model"
  elif [ "$b" = wasm ]; then
    # webdriver.json gives Chromium its flags; --nocapture prints the numbers.
    cargo test --locked --target wasm32-unknown-unknown --features ndarray --test wasm_bench -- --nocapture
  else
    cargo run --locked --quiet --example "bench_$b"
  fi
done
