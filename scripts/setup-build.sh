#!/usr/bin/env bash
# Installs what building the app needs, each only when missing: the wasm target, Trunk (built with
# the rustc it requires), wasm-bindgen-cli at Cargo.lock's version, and wasm-opt (binaryen) from npm.
# Idempotent: a second run installs nothing and says so.
set -euo pipefail
source "$(dirname "$0")/env.sh"
installed=0

if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install Rust with rustup first (https://rustup.rs)" >&2; exit 1
fi
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "installing the wasm32-unknown-unknown target"; rustup target add wasm32-unknown-unknown; installed=1
fi

if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
  if ! rustup toolchain list | grep -q "^$TRUNK_RUST_TOOLCHAIN"; then
    say "installing rustc $TRUNK_RUST_TOOLCHAIN (Trunk $TRUNK_VERSION needs it)"
    rustup toolchain install "$TRUNK_RUST_TOOLCHAIN" --profile minimal --no-self-update
  fi
  say "installing Trunk $TRUNK_VERSION (a long build: ~30-45 min on 2 cores)"
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_TARGET_DIR="$TUNELAB_CACHE/tools-target" \
    cargo "+$TRUNK_RUST_TOOLCHAIN" install trunk --locked --version "$TRUNK_VERSION"
  installed=1
fi

wbg="$(lock_version wasm-bindgen)"
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wbg" ]; then
  say "installing wasm-bindgen-cli $wbg (the version Cargo.lock pins)"
  # No --locked: the locked tree pulls a yanked crate that no longer resolves.
  CARGO_TARGET_DIR="$TUNELAB_CACHE/tools-target" cargo install wasm-bindgen-cli --version "$wbg" --force
  installed=1
fi

if [ "$(wasm-opt --version 2>/dev/null | awk '{print $3}')" != "${BINARYEN_VERSION%%.*}" ]; then
  say "installing wasm-opt (binaryen $BINARYEN_VERSION from npm; Debian's 108 breaks the wasm)"
  mkdir -p "$TUNELAB_TOOLS"
  npm install --silent --no-audit --no-fund --prefix "$TUNELAB_TOOLS" "binaryen@$BINARYEN_VERSION"
  installed=1
fi

if [ "$installed" = 0 ]; then
  say "build tools: all present ($(trunk --version), $(wasm-bindgen --version), wasm-opt $(wasm-opt --version | awk '{print $3}')); nothing installed"
else
  say "build tools ready"
fi
