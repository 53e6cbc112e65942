#!/usr/bin/env bash
# Regenerates every checkpoint in this folder and manifest.json, deterministically from the
# seeds in the recipe (GridRecipe in crate/src/pretrained.rs): FM, DDPM, EDM and EqM, blind and
# conditional, at D = 2, 8, 32, 128, 512. Resumable: cells already done are skipped (--force to
# retrain). Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
./build.sh cli
"${CARGO_TARGET_DIR:-$HOME/.cache/geonoise-target}/release/geonoise" train-grid --out pretrained "$@"
