#!/usr/bin/env bash
# Does the student follow its teacher? docs/results/session22_follow.md's runs, on a CPU: the coefficient
# teacher (polished) on the fit check's 12 training pairs (scripts/coef_fit_check.sh, its first step), then
#   M1: the students given as STUDENTS ("NAME=CHECKPOINT ...") and the shipped one, scored beside its mean;
#   M2: students of size s fitted from scratch to those 12 pairs alone, seed SEEDS, with the teacher's terms
#       only (T) and with the bundled recipe's terms (R), two at a time (one thread each), then scored the same way.
# Every stage skips what an earlier call finished.
#
#   COEF=/tmp/coef START=.gpu/start.safetensors STUDENTS="p0=runs/d_s0.safetensors" \
#       bash scripts/follow_chain.sh ../shared/data/roadscene_train runs/follow
set -euo pipefail
RS=${1:?RoadScene folder} W=${2:?work folder}
SEEDS=${SEEDS:-0} EPOCHS=${EPOCHS:-50}
EF=(python -m edgefuse)
SAMPLE_ONLY=1 SAMPLE_EXTRA="--polish-steps ${POLISH:-60}" bash scripts/coef_fit_check.sh "$RS" "$W"
fit=(--cache "$W/coef" --data "$W/pairs" --val-fraction 0 --epochs "$EPOCHS" --repeat 8 --batch-size 16 --crop 256
    --routing none --workers 1)
T=(--pixel-weighting uniform --w-pixel 1 --w-ssim 0.1 --w-source-ssim 0 --w-gradient 0 --w-intensity 0)
R=(--pixel-weighting variance --w-pixel 1 --w-ssim 0.1 --w-source-ssim 1 --w-gradient 10 --w-intensity 0.5
    --thermal-level 0.5)
for s in $SEEDS; do
    for loss in T R; do
        [ -f "$W/${loss}_s$s.safetensors" ] && continue
        if [ $loss = T ]; then terms=("${T[@]}"); else terms=("${R[@]}"); fi
        OMP_NUM_THREADS=1 "${EF[@]}" distill "${fit[@]}" "${terms[@]}" --seed "$s" -o "$W/${loss}_s$s.safetensors" \
            --resume 2>&1 | tr '\r' '\n' | sed '/━/d' >"$W/${loss}_s$s.log" &
    done
    wait
done
args=(--student shipped=fusionproxy-s)
for x in ${STUDENTS:-}; do args+=(--student "$x"); done
for f in "$W"/[TR]_s*.safetensors; do n=${f##*/}; args+=(--student "${n%.safetensors}=$f"); done
python scripts/follow_check.py --cache "$W/coef" --data "$W/pairs" --base shipped "${args[@]}" --json "$W/follow.json"
