#!/usr/bin/env bash
# Runs the native benchmarks on burn's CPU backend and prints their numbers:
#   encoder  - all-MiniLM-L6-v2 sentences/s (batch 1 x 128 tokens, batch 32 x 32 tokens)
#   gpt2     - GPT-2 small shape: time to first token after a 64-token prefill, tokens/s
#   decoders - GPT-2 small, SmolLM2-135M and Qwen2.5-0.5B shapes (random weights, the Llama-family
#              ones as one bfloat16 model.safetensors, as the Hub ships them): load time, time to
#              first token after 64 tokens and greedy decoding's tokens/s, natively
#              (bench_decoders) beside PyTorch on the same CPU (benches/torch_gpu.py cpu decoders),
#              then in wasm in headless Chromium on the CPU (wasm_bench's decoders_in_wasm, with the
#              wasm memory's high-water mark beside the engine's estimate)
#   finetune - head and full fine-tuning of all-MiniLM-L6-v2 on movie reviews: accuracy, time
#   wasm     - burn's CPU backends (Flex and ndarray) in wasm in headless Chromium, on a model of
#              all-MiniLM-L6-v2's shape: sentences/s (not in the default set: a wasm build of
#              burn with ndarray)
#   wasm-profile - Chromium's sampling profiler on all-MiniLM-L6-v2's shape in wasm on the CPU,
#              embedding one 128-token text, then full fine-tuning (wasm_bench's
#              encoder_for_the_profiler): the functions with the most self time in each
#              (PROFILE_ROWS, default 25), and who calls those named in PROFILE_CALLERS
#   wasm-parts - parts of the CPU path in wasm (wasm_bench's cpu_parts_in_wasm): attention per
#              layer of MiniLM's shape at 1 x 128 and 32 x 32, the memory bandwidth a plain loop
#              reads, one row times cold weights (decoding's product: burn's, and the LM head
#              by a dot product per row), in GB/s, and the packed
#              product's register tile at its peak, with and without relaxed SIMD's fused
#              multiply-add, in GFLOP/s
#   table    - a 100,000-row labelled CSV read in wasm in headless Chromium: time and wasm memory
#              of the table and the training/test sets, against the file's size
#   peer     - `transformersjs`, then Tunelab's CPU backend in wasm in the same headless Chromium on the
#              same shapes and 1,000 reviews in batches of 32 (feature extraction; with its own
#              kernels, and burn's ops alone), twice in turn: the side by
#              side table of the README
#   peer-gpt2 - transformers.js decoding with a GPT-2 small-shaped model (benches/transformersjs_gpt2.mjs;
#              an ONNX export with a KV cache made once by benches/export_gpt2_onnx.py, its greedy
#              tokens checked against PyTorch's), then Tunelab's CPU backend in wasm on the same
#              shape and prompt (wasm_bench's gpt2_in_wasm), twice in turn: first token after 64
#              tokens, and tokens/s
#   lora     - full fine-tuning against LoRA (r 8, query and value): training examples/s and peak
#              memory natively (bench_finetune, 400 reviews, one epoch, one process each), each
#              beside HF's Trainer on the same settings (PEFT for LoRA; benches/trainer_cpu.py), then in
#              wasm in headless Chromium (wasm_bench's fine_tuning_in_wasm)
#   trainer  - full fine-tuning speed natively beside the peer: Tunelab's full mode on 400 reviews,
#              one epoch (bench_finetune with FULL_EXAMPLES=400 FULL_EPOCHS=1 TEST_EXAMPLES=64), then
#              HF's Trainer on the same settings on the CPU (benches/trainer_cpu.py, in the venv that
#              `transformersjs` installs; installs it if missing)
#   coldstart - page open to the first classification with the model already in browser storage
#              (CPU), Tunelab's release build beside transformers.js, on all-MiniLM-L6-v2 with a
#              2-label head (benches/make_classifier.py writes it, and its ONNX export, once), and
#              Tunelab with WebGPU offered (SwiftShader: the first result comes from the CPU-only
#              engine, and when the WebGPU engine took over is printed); then the same build with
#              the WebGPU engine started first, as every browser with WebGPU did before
#   transformersjs - the peer: transformers.js on all-MiniLM-L6-v2 in the same headless Chromium,
#              same texts and shapes as `wasm` (installs transformers.js from npm, and torch +
#              transformers in a venv to export the ONNX file it needs: several GB, once)
#   gpu      - the GPU table: MiniLM embedding, GPT-2 small, SmolLM2-135M and Qwen2.5-0.5B shapes
#              prefill and decode, full fine-tuning
#              through native burn-wgpu (the browser's WGSL kernels; Vulkan, or Mesa's lavapipe
#              without a GPU), with kernel launches and readbacks per forward / token / step;
#              then the same rows in PyTorch (benches/torch_gpu.py) when torch is installed
#   gpu-fast - the same with burn's fusion and autotune on
#   gpu-counts - launches and readbacks only, on narrow models (minutes on lavapipe)
#   workers  - engine workers on the CPU in headless Chromium: the app (debug build, as the e2e
#              tests build it) with 1 worker and with one per core, real all-MiniLM-L6-v2:
#              head-mode feature extraction of ROWS movie reviews (default 1000), classifying
#              256 reviews, 32 short ones, and one 128-token text; a prompt evaluated on 48
#              reviews with a GPT-2-small-shaped model (random weights, written once to the cache)
#   size     - what a visitor downloads: the release build's wasm and JS, raw, gzipped and
#              brotli-compressed, in all and for a browser with and without WebGPU (which get
#              different engine workers), and what each crate contributes to each wasm file (by
#              the function names in cargo's wasm, before wasm-opt strips them)
# Usage: scripts/bench.sh [encoder|gpt2|decoders|finetune|wasm|wasm-profile|wasm-parts|table|peer|peer-gpt2|lora|trainer|coldstart|transformersjs|gpu|gpu-fast|gpu-counts|workers|size ...]
#        (default: encoder gpt2 finetune)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$TUNELAB_ROOT"
"$TUNELAB_ROOT/scripts/setup-test.sh" >/dev/null
which=("$@"); [ "${#which[@]}" -gt 0 ] || which=(encoder gpt2 finetune)

# The peers' tools, installed once into the cache: transformers.js from npm (its folder is
# printed); torch_python (scripts/env.sh) makes the venv with torch and transformers.
transformersjs() {
  local tjs="$TUNELAB_CACHE/transformersjs"
  if [ ! -f "$tjs/node_modules/@huggingface/transformers/package.json" ]; then
    mkdir -p "$tjs"
    # --ignore-scripts: onnxruntime-node's install script downloads from nuget (and is not used).
    (cd "$tjs" && npm install --silent --ignore-scripts --no-save @huggingface/transformers@4.3.1) >&2
  fi
  echo "$tjs"
}
# The release build in $CARGO_TARGET_DIR/dist-release.
release_build() {
  "$TUNELAB_ROOT/scripts/setup-build.sh" >/dev/null
  trunk build --release --dist "$CARGO_TARGET_DIR/dist-release" >/dev/null 2>&1 ||
    { echo "trunk build --release failed: run it by hand to see why" >&2; exit 1; }
}
expanded=()
for b in "${which[@]}"; do
  if [ "$b" = peer ]; then expanded+=(transformersjs wasm-tunelab transformersjs wasm-tunelab)
  elif [ "$b" = peer-gpt2 ]; then expanded+=(transformersjs-gpt2 wasm-gpt2 transformersjs-gpt2 wasm-gpt2)
  else expanded+=("$b"); fi
done
for b in "${expanded[@]}"; do
  say "benchmark $b"
  if [ "$b" = transformersjs ]; then
    tjs="$(transformersjs)"
    model="$tjs/models/all-MiniLM-L6-v2"
    if [ ! -f "$model/onnx/model.onnx" ]; then
      py="$(torch_python onnx onnxscript)"
      mkdir -p "$model/onnx"
      for f in config.json tokenizer.json tokenizer_config.json special_tokens_map.json; do
        cp "$TUNELAB_MODELS/all-MiniLM-L6-v2/$f" "$model/"
      done
      "$py" benches/export_onnx.py "$TUNELAB_MODELS/all-MiniLM-L6-v2" "$model/onnx/model.onnx"
    fi
    node benches/transformersjs.mjs "$tjs" "$model"
  elif [ "$b" = transformersjs-gpt2 ]; then
    tjs="$(transformersjs)"
    model="$TUNELAB_CACHE/bench-models/onnx/gpt2-small-random"
    [ -f "$model/greedy.json" ] || "$(torch_python onnx onnxscript)" benches/export_gpt2_onnx.py "$model" >/dev/null 2>&1
    node benches/transformersjs_gpt2.mjs "$tjs" "$model"
  elif [ "$b" = wasm-gpt2 ]; then
    cargo test --locked --target wasm32-unknown-unknown --features webgpu --test wasm_bench -- --nocapture gpt2_in_wasm 2>&1 |
      grep -E "^Tunelab"
  elif [ "$b" = gpu ] || [ "$b" = gpu-fast ] || [ "$b" = gpu-counts ]; then
    features=gpu; [ "$b" = gpu-fast ] && features=gpu-fast
    args=(); [ "$b" = gpu-counts ] && args=(counts)
    cargo run --locked --quiet --features "$features" --example bench_gpu -- "${args[@]}"
    if [ "$b" != gpu-counts ]; then
      py=python3
      "$py" -c 'import torch, transformers' 2>/dev/null || py="$TUNELAB_CACHE/pyenv-torch/bin/python"
      if "$py" -c 'import torch, transformers' 2>/dev/null; then
        "$py" benches/torch_gpu.py
      else
        say "PyTorch is not installed: skipping benches/torch_gpu.py (scripts/bench.sh transformersjs installs it)"
      fi
    fi
  elif [ "$b" = workers ]; then
    "$TUNELAB_ROOT/scripts/setup-build.sh" >/dev/null
    trunk build --dist "$CARGO_TARGET_DIR/dist-e2e" >/dev/null 2>&1 ||
      { echo "trunk build failed: run it by hand to see why" >&2; exit 1; }
    bench_models="$TUNELAB_CACHE/bench-models"
    [ -f "$bench_models/gpt2-small-random/model.safetensors" ] ||
      cargo run --locked --quiet --example write_random_gpt2 -- "$bench_models/gpt2-small-random"
    TUNELAB_DIST="$CARGO_TARGET_DIR/dist-e2e" BENCH_MODELS="$bench_models" node benches/workers.mjs
  elif [ "$b" = size ]; then
    release_build
    node benches/sizes.mjs "$CARGO_TARGET_DIR/dist-release"
    for bin in tunelab worker worker_cpu; do
      python3 benches/wasm_sizes.py "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/$bin.wasm" 15
    done
  elif [ "$b" = table ]; then
    cargo test --locked --target wasm32-unknown-unknown --features webgpu --test wasm_table_bench -- --nocapture 2>&1 |
      grep -E "table bench|test result|panicked"
  elif [ "$b" = coldstart ]; then
    release_build
    tjs="$(transformersjs)"
    bench_models="$TUNELAB_CACHE/bench-models"
    [ -f "$bench_models/minilm-classifier/onnx/model.onnx" ] ||
      "$(torch_python onnx onnxscript)" benches/make_classifier.py "$TUNELAB_MODELS/all-MiniLM-L6-v2" "$bench_models/minilm-classifier"
    node benches/coldstart.mjs "$CARGO_TARGET_DIR/dist-release" "$bench_models" "$tjs"
    # The same build with the WebGPU engine started first (its files over the CPU-only one's):
    # what every browser with WebGPU got before the page opened on the CPU-only engine.
    gpu_engine="$CARGO_TARGET_DIR/dist-release-webgpu-engine"
    rm -rf "$gpu_engine" && cp -r "$CARGO_TARGET_DIR/dist-release" "$gpu_engine"
    cp "$gpu_engine/worker.js" "$gpu_engine/worker_cpu.js"
    cp "$gpu_engine/worker_bg.wasm" "$gpu_engine/worker_cpu_bg.wasm"
    echo "the same build, the WebGPU engine started first:"
    COLDSTART_CPU_ONLY=1 node benches/coldstart.mjs "$gpu_engine" "$bench_models" "$tjs"
  elif [ "$b" = trainer ]; then
    FULL_EXAMPLES=400 FULL_EPOCHS=1 TEST_EXAMPLES=64 cargo run --locked --quiet --example bench_finetune -- full 2>/dev/null
    "$(torch_python accelerate)" benches/trainer_cpu.py "$TUNELAB_MODELS/all-MiniLM-L6-v2" 400 1 2>/dev/null | grep -E "^(machine|HF)"
  elif [ "$b" = lora ]; then
    # Full fine-tuning, then LoRA, each in its own process (for its peak memory), natively; then
    # both in wasm in headless Chromium.
    for mode in full lora; do
      FULL_EXAMPLES=400 FULL_EPOCHS=1 TEST_EXAMPLES=64 cargo run --locked --quiet --example bench_finetune -- "$mode" 2>/dev/null |
        grep -E "^(machine|[A-Z][a-z]+ fine-tuning: (optimisation|peak))"
      # The peer: HF's Trainer (PEFT for LoRA) on the same settings and CPU.
      "$(torch_python accelerate peft)" benches/trainer_cpu.py "$TUNELAB_MODELS/all-MiniLM-L6-v2" 400 1 "$mode" 2>/dev/null | grep -E "^HF"
    done
    cargo test --locked --target wasm32-unknown-unknown --features webgpu --test wasm_bench -- --nocapture fine_tuning_in_wasm 2>&1 |
      grep -E "^(model|wasm )"
  elif [ "$b" = decoders ]; then
    cargo run --locked --quiet --example bench_decoders
    # The peer on the same CPU: PyTorch eager fp32 (benches/torch_gpu.py's decoder rows).
    "$(torch_python)" benches/torch_gpu.py cpu decoders 2>/dev/null | grep -E "^(torch|\| (GPT|Smol|Qwen))"
    cargo test --locked --target wasm32-unknown-unknown --features webgpu --test wasm_bench -- --nocapture decoders_in_wasm 2>&1 |
      grep -E "^(browser|decoders|wasm )"
  elif [ "$b" = wasm-profile ]; then
    # wasm-bindgen's runner serves the test page without a browser (NO_HEADLESS); the script
    # opens it in headless Chromium with the profiler on.
    cargo test --locked --target wasm32-unknown-unknown --features webgpu --test wasm_bench --no-run 2>/dev/null
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    log="$(mktemp)"
    NO_HEADLESS=1 WASM_BINDGEN_TEST_ADDRESS="127.0.0.1:$port" cargo test --locked --target wasm32-unknown-unknown \
      --features webgpu --test wasm_bench -- --nocapture encoder_for_the_profiler >"$log" 2>&1 &
    runner=$!
    for _ in $(seq 120); do grep -q "127.0.0.1:$port" "$log" && break; sleep 1; done
    node benches/wasm_profile.mjs "http://127.0.0.1:$port" "${PROFILE_ROWS:-25}" || true
    pkill -P "$runner" 2>/dev/null; kill "$runner" 2>/dev/null; pkill -f "wasm-bindgen-test-runner.*encoder_for_the_profiler" 2>/dev/null
    rm -f "$log"
  elif [ "$b" = wasm-parts ]; then
    cargo test --locked --target wasm32-unknown-unknown --features webgpu --test wasm_bench -- --nocapture cpu_parts_in_wasm 2>&1 |
      grep -E "^(browser|attention|memory|one row|round . register)"
  elif [ "$b" = wasm-tunelab ]; then
    cargo test --locked --target wasm32-unknown-unknown --features webgpu --test wasm_bench -- --nocapture cpu_backends_in_wasm 2>&1 |
      grep -E "^(browser|model|round)"
  elif [ "$b" = wasm ]; then
    # webdriver.json gives Chromium its flags; --nocapture prints the numbers.
    cargo test --locked --target wasm32-unknown-unknown --features webgpu,ndarray --test wasm_bench -- --nocapture
  else
    cargo run --locked --quiet --example "bench_$b"
  fi
done
