#!/usr/bin/env bash
# Regenerates pretrained/images: the classifier that scores samples, the four U-Nets of the
# paper's image experiment (FM and DDPM, blind and conditional) and the paper's other blind
# models (EqM Blind, uEDM Blind) on Fashion-MNIST, the manifest, the sample figures, the metric
# table (Euler, DDIM, ancestral, with 95 % intervals), and the measurements of DDPM Cond's gap
# (gap.md: samplers, steps, clipping; gap-dpm.md: DPM-Solver++(2M) beside DDIM on both grids;
# denoise.md: the clean estimates' errors by noise level; gap/: DDPM Cond with the min-SNR-5 loss,
# its table and its clean estimates' errors).
# `train-all.sh mnist` does the same for MNIST in pretrained/images/mnist (the four models, their
# figure and table). `./build.sh images` runs both with the CLI it builds.
#
# Resumable: a finished file is kept; an unfinished run goes on exactly from its state in runs/
# (raw and EMA weights, Adam's moments and the batch stream, saved every 250 steps).
# MAX_SECONDS=N stops each run after N seconds of this call (the state is saved), so the work can
# be spread over several sittings.
# The runs go two at a time, one thread each: on 2 cores that trains faster in all than
# one run on both cores. Measured: FM Blind and DDPM Blind together made 3.10 + 2.90 steps/s;
# one run on both cores makes 3.66 (273 ms per step, `geonoise images bench`).
set -euo pipefail
cd "$(dirname "$0")"
DATA="${1:-fashion-mnist}"
case "$DATA" in
  fashion-mnist) ;;
  mnist) mkdir -p mnist && cd mnist ;;
  *) echo "usage: $0 [fashion-mnist|mnist]" >&2; exit 2 ;;
esac
G="${GEONOISE:-geonoise}"
RECIPE=(--channels 16 --mults 1,2 --patch 2 --steps 10000 --batch 128 --lr 1e-3 --ema 0.999 --seed 0 --data "$DATA")
LIMIT=()
[ -n "${MAX_SECONDS:-}" ] && LIMIT=(--max-seconds "$MAX_SECONDS")

[ -f classifier.safetensors ] || "$G" images classifier --data "$DATA" --out classifier.safetensors > /dev/null

train() { # name, then the flags that make that model
  local name=$1; shift
  [ -f "$name.safetensors" ] && return 0
  RAYON_NUM_THREADS=1 "$G" images train "$@" "${RECIPE[@]}" "${LIMIT[@]}" \
    --out "$name.safetensors" --state "runs/$name.state" > "runs/$name.json"
}
pair() { # two "name flags…" strings, trained side by side
  # shellcheck disable=SC2086
  train $1 & pa=$!
  # shellcheck disable=SC2086
  train $2 & pb=$!
  wait "$pa"; wait "$pb"
  for m in "${1%% *}" "${2%% *}"; do
    [ -f "$m.safetensors" ] || { echo "$m stopped before its last step; run this again to go on" >&2; exit 0; }
  done
}
mkdir -p runs
# The paper's four.
pair "fm-blind --model fm --blind" "ddpm-blind --model ddpm --blind"
pair "fm-cond --model fm" "ddpm-cond --model ddpm"
FOUR=fm-blind,ddpm-blind,fm-cond,ddpm-cond
if [ "$DATA" = mnist ]; then
  "$G" images manifest --dir . --command "./build.sh images (pretrained/images/train-all.sh mnist)" > /dev/null
  "$G" images figure --dir . --n 64 --steps 100 --sampler ancestral --seed 0 --out figure-ancestral.png > /dev/null
  "$G" images table --dir . --n 1000 --steps 100 --sampler euler,ddim,ancestral --seed 0 --markdown --json table.json > table.md
  cat table.md
  exit 0
fi
# The paper's other blind models, trained the same way.
pair "eqm-blind --model eqm --blind" "uedm-blind --model uedm --blind"
# DDPM Cond's gap, the loss's weighting: DDPM Cond trained with the min-SNR-5 loss, kept apart in
# gap/ (the page and the notebook load this folder's models, not gap/'s), scored with this
# folder's classifier.
mkdir -p gap/runs
(cd gap && train ddpm-cond-min-snr --model ddpm --weighting min-snr)
[ -f gap/ddpm-cond-min-snr.safetensors ] || { echo "gap/ddpm-cond-min-snr stopped before its last step; run this again to go on" >&2; exit 0; }

"$G" images manifest --dir . --command "./build.sh images" > /dev/null
"$G" images figure --dir . --n 64 --steps 100 --sampler euler --seed 0 --out figure-euler.png > /dev/null
"$G" images figure --dir . --n 64 --steps 100 --sampler ancestral --seed 0 --out figure-ancestral.png > /dev/null
"$G" images figure --dir . --models fm-blind,eqm-blind,uedm-blind,ddpm-blind --n 64 --steps 100 --sampler ancestral --seed 0 --out figure-blind.png > /dev/null
# DDPM Cond's gap: the samplers, their steps and clipping of the clean estimate, for the two
# conditional models (300 samples a row), and the clean estimates' errors level by level.
"$G" images table --dir . --models fm-cond,ddpm-cond --n 300 --steps 50,100,250 --sampler ddim,ancestral --clip off,1 --seed 0 --markdown --json gap.json > gap.md
# DPM-Solver++(2M) beside DDIM on both grids, for the conditional twins and DDPM Blind.
"$G" images table --dir . --models fm-cond,ddpm-cond,ddpm-blind --n 300 --steps 50,100,250 --sampler ddim,dpm2m --time-grid default,log-snr --seed 0 --markdown --json gap-dpm.json > gap-dpm.md
"$G" images manifest --dir gap --command "./build.sh images" > /dev/null
"$G" images table --dir gap --models ddpm-cond-min-snr --classifier classifier.safetensors --n 1000 --steps 100 --sampler euler,ddim,ancestral --seed 0 --markdown --json gap/table.json > gap/table.md
"$G" images denoise --dir gap --models ddpm-cond-min-snr --n 1000 --log-snr=-10,-8,-6,-4,-2,0,2,4,6,8 --seed 0 --markdown > gap/denoise.md
"$G" images denoise --dir . --models "$FOUR,eqm-blind,uedm-blind" --n 1000 --log-snr=-10,-8,-6,-4,-2,0,2,4,6,8 --seed 0 --markdown > denoise.md
"$G" images table --dir . --models "$FOUR,eqm-blind,uedm-blind" --n 1000 --steps 100 --sampler euler,ddim,ancestral --seed 0 --markdown --json table.json > table.md
cat table.md
