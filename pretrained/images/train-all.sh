#!/usr/bin/env bash
# Regenerates pretrained/images: the classifier that scores samples, the four U-Nets of the
# paper's image experiment (FM and DDPM, blind and conditional) on Fashion-MNIST, the manifest,
# the sample figure and the metric table. `./build.sh images` runs it with the CLI it builds.
#
# Resumable: a finished file is kept; an unfinished run goes on exactly from its state in runs/
# (raw and EMA weights, Adam's moments and the batch stream, saved every 250 steps).
# MAX_SECONDS=N stops each run after N seconds of this call (the state is saved), so the work can
# be spread over several sittings.
# The four runs go two at a time, one thread each: on 2 cores that trains faster in all than
# one run on both cores. Measured: FM Blind and DDPM Blind together made 3.10 + 2.90 steps/s;
# one run on both cores makes 3.66 (273 ms per step, `geonoise images bench`).
set -euo pipefail
cd "$(dirname "$0")"
G="${GEONOISE:-geonoise}"
RECIPE=(--channels 16 --mults 1,2 --patch 2 --steps 10000 --batch 128 --lr 1e-3 --ema 0.999 --seed 0 --data fashion-mnist)
LIMIT=()
[ -n "${MAX_SECONDS:-}" ] && LIMIT=(--max-seconds "$MAX_SECONDS")

[ -f classifier.safetensors ] || "$G" images classifier --data fashion-mnist --out classifier.safetensors > /dev/null

train() { # model blind|cond
  local flag=(); [ "$2" = blind ] && flag=(--blind)
  [ -f "$1-$2.safetensors" ] && return 0
  RAYON_NUM_THREADS=1 "$G" images train --model "$1" "${flag[@]}" "${RECIPE[@]}" "${LIMIT[@]}" \
    --out "$1-$2.safetensors" --state "runs/$1-$2.state" > "runs/$1-$2.json"
}
mkdir -p runs
for pair in "fm blind|ddpm blind" "fm cond|ddpm cond"; do
  IFS='|' read -r a b <<< "$pair"
  # shellcheck disable=SC2086
  train $a & pa=$!
  # shellcheck disable=SC2086
  train $b & pb=$!
  wait "$pa"; wait "$pb"
  for m in "${a// /-}" "${b// /-}"; do
    [ -f "$m.safetensors" ] || { echo "$m stopped before its last step; run this again to go on" >&2; exit 0; }
  done
done

"$G" images manifest --dir . --command "./build.sh images" > /dev/null
"$G" images figure --dir . --n 64 --steps 100 --sampler euler --seed 0 --out figure-euler.png > /dev/null
"$G" images figure --dir . --n 64 --steps 100 --sampler ancestral --seed 0 --out figure-ancestral.png > /dev/null
"$G" images table --dir . --n 1000 --steps 100 --sampler euler,ancestral --seed 0 --markdown --json table.json > table.md
cat table.md
