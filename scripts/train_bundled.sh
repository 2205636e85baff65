#!/usr/bin/env bash
# How the bundled fusionproxy-s was made (2026-12-01, eleventh session): row (d) seed 0 of
# scripts/ascent_ablation.py, distilled with variance-weighted pixels and feature alignment routed by the
# diffusion prior's encoder, from the metric-ascent teacher, which starts at the previous teacher-free bundled
# student. The teacher is not a diffusion model (docs/distillation.md says why); the prior is (d)'s frozen
# backbone. One H200: the teacher ~300 s beside the prior ~320 s, then the student ~870 s (three to a GPU).
#
#   1. the teacher's start: the teacher-free recipe, seed 0, trained here unless START names a checkpoint. The
#      exact start of the shipped student is the seventh session's bundled student (weights sha256
#      fb22776d…): git show 012bd18:edgefuse/weights/fusionproxy-s.safetensors > start.safetensors
#   2. the diffusion prior (the chain's settings, 1540 steps), unless PRIOR names one
#   3. night copies of RoadScene's training split (dark thermal frames too) and the teacher's K = 3 cache on
#      them, started at (1): `edgefuse teacher ascend` (ρ 5, 60 steps, float32, TF32 off)
#   4. `edgefuse distill` on that cache: variance-weighted pixels, routing by (2)'s features, the teacher-free
#      terms of (1) beside them, source SSIM 1, dark thermal frames, 60 epochs
#      (docs/results/source_ssim_distill.md)
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
PRIOR=${PRIOR:-$WORK/prior}
if [ ! -f "$PRIOR/edgefuse_prior.json" ]; then  # (2) scripts/teacher_chain.sh's prior, a fixed step count
    python -m edgefuse teacher train-prior --data "$DATA" -o "$PRIOR" --crop 64 --channels 16,32,64,128 \
        --layers-per-block 2 --batch-size 256 --lr 5e-4 --steps 1540 --seed 0 --device "$DEVICE" --precision bf16
fi
# (3) + (4): the teacher on the night-copy union, then row (d) on it
python scripts/ascent_ablation.py --work "$WORK" --rs "$DATA" --device "$DEVICE" --gpus "${GPUS:-1}" \
    --slots "${SLOTS:-16}" --rows d --sets dn --seeds "$SEED" --thermal-level 0.5 --start "$START" \
    --prior "$PRIOR" --no-eval
cp "$WORK/d_s$SEED.safetensors" "${OUT:-runs/fusionproxy-s.safetensors}"
