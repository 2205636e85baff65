#!/usr/bin/env bash
# Does the coefficient-space teacher under- or over-fit? On training pairs it learnt from (every third of the
# 34 tuning pairs of RoadScene's training split: no held-out pair is read), score side by side: its ensemble
# mean, the metric-ascent teacher it learnt from (same recipe: K = 3, rho 5, jitter 0.3, 60 steps) and the
# ascent's start alone. If it keeps most of the ascent's gain here but not on held-out pairs, it overfits;
# if it keeps as little here, it underfits. CPU is enough (~20 minutes on 2 cores). SAMPLE_EXTRA: more
# sample-cond options (the polished teacher: --polish-steps 60). SAMPLE_ONLY=1 stops after the teacher's cache.
#
#   COEF=/tmp/coef START=.gpu/start.safetensors bash scripts/coef_fit_check.sh ../shared/data/roadscene_train /tmp/fit
set -euo pipefail
RS=${1:?RoadScene folder} W=${2:?work folder}
: "${COEF:?the coefficient teacher (train-cond --target coefficients)}" "${START:?the start checkpoint of the ascent}"
DEVICE=${DEVICE:-cpu} K=${K:-6} WORKERS=${WORKERS:-2}
EF=(python -m edgefuse)
mkdir -p "$W"
[ -d "$W/pairs" ] || python - "$RS" "$W/pairs" <<'EOF'
import os, sys
from pathlib import Path

sys.path.insert(0, "scripts")
from tune_teacher import tuning_indices

from edgefuse.data import find_pairs

src, dst = find_pairs(sys.argv[1]), Path(sys.argv[2])
for sub in ("vi", "ir"):
    (dst / sub).mkdir(parents=True)
for i in tuning_indices(src)[::3]:
    for sub, f in (("vi", src.pairs[i].visible), ("ir", src.pairs[i].thermal)):
        os.symlink(f.resolve(), dst / sub / f.name)
EOF
[ -f "$W/coef/manifest.json" ] || "${EF[@]}" teacher sample-cond --model "$COEF" --data "$W/pairs" -o "$W/coef" \
    --k "$K" --steps 50 --eta 1 --device "$DEVICE" --resume ${SAMPLE_EXTRA:-}
[ -n "${SAMPLE_ONLY:-}" ] && exit 0 # scripts/follow_chain.sh needs the teacher's cache alone
# the dtype ascent_ablation.py gives the ascent: float64 on a CPU, float32 on a GPU (they agree to 5e-4)
DTYPE=$([ "$DEVICE" = cpu ] && echo float64 || echo float32)
[ -f "$W/asc/manifest.json" ] || "${EF[@]}" teacher ascend --data "$W/pairs" -o "$W/asc" --student "$START" --k 3 \
    --steps 60 --loss-weight 5 --jitter 0.3 --dtype "$DTYPE" --device "$DEVICE" --no-save-samples --resume
[ -d "$W/start" ] || "${EF[@]}" fuse --data "$W/pairs" -o "$W/start" --checkpoint "$START"
for c in coef asc; do
    python scripts/score_cache.py --cache "$W/$c" --data "$W/pairs" --workers "$WORKERS" --json "$W/$c.json" | tail -n 1
done
"${EF[@]}" eval --fused "$W/start" --data "$W/pairs" --json "$W/start.json" | tail -n 3
