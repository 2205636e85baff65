#!/usr/bin/env bash
# How the bundled fusionproxy-s was made (2026-12-01, tenth session): row (c) seed 0 of
# scripts/ascent_ablation.py, distilled with variance-weighted pixels (no feature routing) from the
# metric-ascent teacher, which starts at the previous bundled student. The teacher is not a diffusion model
# (docs/distillation.md says why). One H200: the teacher takes ~240 s, each student ~290 s (three to a GPU).
#
#   1. the teacher's start: the teacher-free recipe, seed 0, trained here unless START names a checkpoint. The
#      exact start of the shipped student is the previous bundled one (seventh session, weights sha256
#      fb22776d…): git show 012bd18:edgefuse/weights/fusionproxy-s.safetensors > start.safetensors
#   2. night copies of RoadScene's training split (dark thermal frames too) and the teacher's K = 3 cache on
#      them, started at (1): `edgefuse teacher ascend` (ρ 5, 60 steps, float32, TF32 off)
#   3. `edgefuse distill` on that cache: variance-weighted pixels, the teacher-free terms of (1) beside them,
#      source SSIM 1, dark thermal frames, 60 epochs (docs/results/source_ssim_distill.md)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/roadscene_train}
WORK=${WORK:-runs/bundled}
DEVICE=${DEVICE:-cuda}
SEED=${SEED:-0}
mkdir -p "$WORK"
START=${START:-$WORK/start.safetensors}
if [ ! -f "$START" ]; then  # (1) the teacher-free recipe (edgefuse train's defaults, spelled out)
    python -m edgefuse train --data "$DATA" -o "$START" --size s --epochs 60 --repeat 16 --batch-size 32 \
        --crop 256 --w-intensity 0.5 --w-gradient 10 --w-ssim 1 --night 0.5 --thermal-level 0.5 \
        --device "$DEVICE" --workers 3 --seed 0
fi
# (2) + (3): the teacher on the night-copy union, then row (c) on it
python scripts/ascent_ablation.py --work "$WORK" --rs "$DATA" --device "$DEVICE" --gpus "${GPUS:-1}" \
    --slots "${SLOTS:-16}" --rows c --sets dn --seeds "$SEED" --thermal-level 0.5 --start "$START" --no-eval
cp "$WORK/c_s$SEED.safetensors" "${OUT:-runs/fusionproxy-s.safetensors}"
