#!/usr/bin/env bash
# How the bundled fusionproxy-s was trained (one H100, ~5 min; run 2026-11-27 as one of a 6-run loss-weight
# sweep, chosen on held-out pairs with scripts/evaluate_students.py: see docs/results/bundled.md).
set -euo pipefail
DATA=${DATA:-../shared/data/roadscene_train}
python -m edgefuse train --data "$DATA" -o "${OUT:-runs/fusionproxy-s.safetensors}" --size s \
    --epochs 60 --repeat 16 --batch-size 32 --crop 256 --w-gradient 5 --w-ssim 1 \
    --device "${DEVICE:-cuda}" --workers 3 --seed 0
