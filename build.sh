#!/usr/bin/env bash
# geonoise build driver.
#   ./build.sh demo   the paper's claim from the closed-form fields: FM Blind vs DDPM Blind over D
#   ./build.sh test   everything CI runs: unit + integration tests (Flex and wgpu on lavapipe)
#   ./build.sh cli    build the native CLI (target/.../release/geonoise)
# Installs what it needs on a fresh Debian machine (Mesa lavapipe for native wgpu).
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

build_cli() {
  setup_native
  log "building the native CLI (release)"
  cargo build --release --locked -p geonoise --bin geonoise
}

cmd_test() {
  setup_native
  # The Vulkan loader complains on every device open when this is unset; give it a private one.
  export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
  log "cargo test (release: burn is slow unoptimised)"
  local out; out=$(mktemp)
  set +e
  GEONOISE_REQUIRE_WGPU=1 cargo test --release --locked -p geonoise 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  set -e
  # One closing line for the whole run: the sum over every test binary.
  python3 - "$out" <<'PY'
import re, sys
p = f = 0
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"test result: \w+\. (\d+) passed; (\d+) failed", line)
    if m:
        p += int(m.group(1)); f += int(m.group(2))
print(f"cargo: {p} passed, {f} failed")
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

case "${1:-}" in
  demo) cmd_demo ;;
  test) cmd_test ;;
  cli) build_cli ;;
  *) echo "usage: $0 demo|test|cli" >&2; exit 2 ;;
esac
