#!/usr/bin/env bash
# The real-GPU rows of the WebGPU table in two runs on a GPU machine with nothing installed and no
# network (the project's device machines: NVIDIA, no Node, no Vulkan loader, PyTorch there). The
# kit is made here, carried there, and each run writes its results under $OUT:
#
#   bench/gpu.sh kit      here: make .gpu/ (ignored): Node, dawn.node, the TF.js bundles, www/pkg,
#                         the stripped CLI and the Vulkan loader's debs, each compressed; needs
#                         ./build.sh wasm, the release CLI, bench/node_modules and apt's registry
#   bench/gpu.sh dawn     there: the page's wasm core against TF.js webgpu on Dawn (bench/dawn.mjs
#                         on the GPU, every row); carry .gpu/debs .gpu/node.xz .gpu/dawn.tar.xz
#                         .gpu/pkg.tar.xz
#   bench/gpu.sh native   there: `geonoise bench-step` on wgpu (Vulkan) and on Flex with every
#                         core, against bench/torch_step.py on CUDA, the toy and the large model;
#                         carry .gpu/debs .gpu/geonoise.xz
#
# The two runs carry different parts because the tree that travels (tracked files and the
# carried ones) is limited to 64 MiB: the repository is about 27 MB, Node alone 24 MB compressed.
# `bench/gpu.sh dawn --null` and `bench/gpu.sh native --lavapipe` run the same steps on a machine
# without a GPU (Dawn's null backend; Mesa's lavapipe), to check the kit before a GPU is at hand.
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.gpu
OUT=${OUT:-$KIT/out}

log() { echo "== $*" >&2; }
die() { echo "gpu.sh: $*" >&2; exit 2; }

kit() {
  local target=${CARGO_TARGET_DIR:-target}/release/geonoise
  [ -f www/pkg/geonoise_bg.wasm ] || die "www/pkg is missing: run ./build.sh wasm"
  [ -x "$target" ] || die "$target is missing: run ./build.sh cli (or cargo build --release -p geonoise)"
  [ -d bench/node_modules/webgpu ] || die "bench/node_modules is missing: run npm ci in bench/"
  rm -rf "$KIT" && mkdir -p "$KIT/debs"
  log "Node $(node --version)"
  xz -T0 -6 -c "$(readlink -f "$(command -v node)")" > "$KIT/node.xz"
  log "dawn.node (linux-x64) and the TF.js bundles"
  tar -cJf "$KIT/dawn.tar.xz" -C bench/node_modules --exclude 'webgpu/dist/darwin-*' --exclude 'webgpu/dist/win32-*' --exclude 'webgpu/dist/linux-arm64' \
    webgpu @tensorflow/tfjs/dist/tf.es2017.min.js @tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.es2017.min.js
  tar -cJf "$KIT/pkg.tar.xz" -C www pkg
  log "the CLI, stripped"
  strip -o "$KIT/geonoise" "$target" && xz -T0 -6 "$KIT/geonoise"
  log "the Vulkan loader and glvnd (Debian debs)"
  local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/geonoise-apt-amd64)
  mkdir -p /tmp/geonoise-apt-amd64/partial
  apt-get "${o[@]}" update -qq
  (cd "$KIT/debs" && apt-get "${o[@]}" download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  du -b "$KIT"/* "$KIT"/debs | sort -k2 >&2
  echo "tracked tree $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) bytes; carry for 'dawn': $(du -cb $KIT/debs $KIT/node.xz $KIT/dawn.tar.xz $KIT/pkg.tar.xz | tail -1 | cut -f1), for 'native': $(du -cb $KIT/debs $KIT/geonoise.xz | tail -1 | cut -f1)" >&2
}

# The loader and glvnd unpacked into / (there is no display stack there) and NVIDIA's ICD; not for
# the checks without a GPU (they run here, on this machine's own Vulkan or none).
vulkan() {
  [ "${NO_GPU:-}" ] && return 0
  for f in "$KIT"/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
  export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
  export __EGL_VENDOR_LIBRARY_FILENAMES=${__EGL_VENDOR_LIBRARY_FILENAMES:-/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json}
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1 || true
}

dawn() {
  mkdir -p "$OUT" /tmp/geonoise-gpu
  case " $* " in *" --null "*) NO_GPU=1 ;; esac
  vulkan
  local node=/tmp/geonoise-gpu/node
  xz -dc "$KIT/node.xz" > "$node" && chmod +x "$node"
  # The runner reads bench/node_modules and www/pkg; a kit's copies go there unless they exist.
  [ -d bench/node_modules/webgpu ] || { mkdir -p bench/node_modules && tar -xJf "$KIT/dawn.tar.xz" -C bench/node_modules; }
  [ -f www/pkg/geonoise_bg.wasm ] || tar -xJf "$KIT/pkg.tar.xz" -C www
  log "bench/dawn.mjs $*"
  "$node" bench/dawn.mjs "$@" --json "$OUT/dawn.json" 2>&1 | tee "$OUT/dawn.txt"
}

native() {
  mkdir -p "$OUT" /tmp/geonoise-gpu
  vulkan
  local bin=/tmp/geonoise-gpu/geonoise
  xz -dc "$KIT/geonoise.xz" > "$bin" && chmod +x "$bin"
  local cores; cores=$(nproc)
  local toy=(--dim 128 --width 128 --depth 3 --batch 512 --n 2000) large=(--dim 512 --width 1024 --depth 4 --batch 4096 --n 2000)
  local py=${PYTHON:-python3} sizes=(toy large) runs=(1 2) steps=20
  # Without a GPU (lavapipe): the toy once, a few steps, and no CUDA side.
  [ "${NO_GPU:-}" ] && { sizes=(toy); runs=(1); steps=3; }
  line() { echo "{\"size\": \"$1\", \"run\": $2, \"side\": \"$3\", \"result\": $4}"; }
  {
    for size in "${sizes[@]}"; do
      local -n args=$size
      for run in "${runs[@]}"; do
        line "$size" "$run" "geonoise wgpu" "$("$bin" bench-step --device wgpu "${args[@]}" --steps "$steps")"
        line "$size" "$run" "geonoise flex, $cores threads" "$("$bin" bench-step --device flex --threads "$cores" "${args[@]}" --steps 5)"
        [ "${NO_GPU:-}" ] || line "$size" "$run" "PyTorch CUDA" "$("$py" bench/torch_step.py --device cuda "${args[@]}" --steps "$steps")"
      done
    done
  } 2>&1 | tee "$OUT/native.jsonl"
}

case "${1:-}" in
  kit) kit ;;
  dawn) shift; dawn "$@" ;;
  native) shift; if [ "${1:-}" = --lavapipe ]; then NO_GPU=1; fi; native ;;
  *) echo "usage: $0 kit | dawn [dawn.mjs options] | native [--lavapipe]" >&2; exit 2 ;;
esac
