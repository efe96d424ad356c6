#!/usr/bin/env bash
# The GPU table on a bare machine with an NVIDIA GPU and PyTorch but no Rust and no Vulkan loader
# (a rented or lent box). Build here, carry DIR and the working tree, run there:
#
#   here:  scripts/bench-gpu-remote.sh --build DIR [FEATURE ...]
#            bench_gpu built with each FEATURE (default: gpu gpu-autotune: plain, and with burn's
#            autotune; also gpu-fusion, gpu-fast: fusion, fusion+autotune), stripped and
#            compressed, and the Vulkan/GL loaders
#   there: scripts/bench-gpu-remote.sh DIR [RUN ...]
#            RUN: plain | unfused (plain with the engine's fused kernels off) | untiled (plain
#            with burn's matmul for many rows and in training, not the engine's tiled kernel) |
#            unqkv (plain with an encoder's attention as split heads and two matmuls, not the
#            one-kernel attention) | autotune | fusion |
#            fast (fusion+autotune), each optionally @N (tasks_max N instead of the adapter's) |
#            torch; default: plain autotune torch
#
# The working tree that travels to a lent machine is capped (64 MiB) and the test fixtures alone
# come near it: `--stage` sets them aside in .gpustage/ (ignored, so it stays here) but for the
# three tokenizers the benchmark reads; `--unstage` puts them back (do so before anything else).
#
#   here:  scripts/bench-gpu-remote.sh --stage; (the run, carrying .gpubin);
#          scripts/bench-gpu-remote.sh --unstage
#
# There it unpacks the loaders, points Vulkan at NVIDIA's ICD, prints the GPU, then runs each RUN
# (`bench_gpu encoder gpt2 train`; BENCH_ARGS overrides the workloads) and PyTorch on CUDA
# (benches/torch_gpu.py): every row side by side, on one machine.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --stage ]; then
  [ -e .gpustage/fixtures ] && { echo "already staged: --unstage first" >&2; exit 1; }
  mkdir -p .gpustage && mv tests/fixtures .gpustage/fixtures || exit 1
  for m in tiny-bert tiny-gpt2 tiny-llama; do
    mkdir -p "tests/fixtures/models/$m"
    cp -p ".gpustage/fixtures/models/$m/tokenizer.json" "tests/fixtures/models/$m/"
  done
  du -sh tests/fixtures
  exit 0
fi
if [ "${1:-}" = --unstage ]; then
  [ -d .gpustage/fixtures ] || { echo "nothing staged" >&2; exit 1; }
  rm -rf tests/fixtures && mv .gpustage/fixtures tests/fixtures && rmdir .gpustage
  git status --short tests/fixtures
  exit 0
fi
if [ "${1:-}" = --build ]; then
  dir=${2:?usage: --build DIR [FEATURE ...]}
  shift 2
  features=("$@"); [ "${#features[@]}" -gt 0 ] || features=(gpu gpu-autotune)
  source scripts/env.sh
  mkdir -p "$dir"
  for f in "${features[@]}"; do
    cargo build --locked --quiet --features "$f" --example bench_gpu || exit 1
    strip -o "$dir/bench_$f" "$CARGO_TARGET_DIR/debug/examples/bench_gpu"
    xz -9 -T2 -f "$dir/bench_$f"
  done
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  apt-get $o update >/dev/null
  (cd "$dir" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  ls -la "$dir"
  exit 0
fi
dir=${1:?usage: DIR [RUN ...]}
shift
runs=("$@"); [ "${#runs[@]}" -gt 0 ] || runs=(plain autotune torch)
read -r -a workloads <<< "${BENCH_ARGS:-encoder gpt2 train}"
for f in "$dir"/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] || icd=$(find / -name 'nvidia_icd*.json' -not -path '/proc/*' 2>/dev/null | head -1)
export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd XDG_RUNTIME_DIR=/tmp
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
export TUNELAB_ROOT=$PWD
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
unpack() {  # NAME -> /tmp/NAME
  [ -x "/tmp/$1" ] && return
  python3 -c 'import lzma, sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' \
    "$dir/$1.xz" > "/tmp/$1" && chmod +x "/tmp/$1"
}
for run in "${runs[@]}"; do
  if [ "$run" = torch ]; then
    echo "=== PyTorch"
    PYTHONUNBUFFERED=1 timeout "${TORCH_S:-300}" python3 benches/torch_gpu.py cuda 2>&1 | grep -v Warning
    continue
  fi
  build=${run%@*}; tasks=; [ "$run" != "$build" ] && tasks=${run#*@}
  fused=1 tiled=1 qkv=1
  [ "$build" = unfused ] && build=plain fused=0
  [ "$build" = untiled ] && build=plain tiled=0
  [ "$build" = unqkv ] && build=plain qkv=0
  bin=bench_gpu; [ "$build" = plain ] || bin=bench_gpu-$build
  unpack "$bin"
  echo "=== burn-wgpu $run${tasks:+, tasks_max $tasks}"
  env ${tasks:+TUNELAB_TASKS_MAX=$tasks} TUNELAB_FUSED_KERNELS=$fused TUNELAB_TILED_MATMUL=$tiled TUNELAB_QKV_ATTENTION=$qkv timeout "${STEP_S:-300}" \
    "/tmp/$bin" "${workloads[@]}" 2>&1 |
    grep -v XDG_RUNTIME
done
