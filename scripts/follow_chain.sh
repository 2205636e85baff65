#!/usr/bin/env bash
# Does the student follow its teacher? docs/results/session22_follow.md's runs, on a CPU: the coefficient
# teacher (polished) on the fit check's 12 training pairs (scripts/coef_fit_check.sh, its first step), then
#   M1: the students given as STUDENTS ("NAME=CHECKPOINT ...") and the shipped one, scored beside its mean;
#   M2: students of size s fitted from scratch to those 12 pairs alone, seed SEEDS, with the teacher's terms
#       only (T) and with the bundled recipe's terms (R), two at a time (one thread each), then scored the same way;
#   M2' (the plan's amendment): the same from INIT's weights at LR (distill --init), written as fT_s*, fR_s*.
# Every stage skips what an earlier call finished.
#
#   COEF=/tmp/coef START=.gpu/start.safetensors STUDENTS="p0=runs/d_s0.safetensors" \
#       bash scripts/follow_chain.sh ../shared/data/roadscene_train runs/follow
#   INIT=runs/d_s0.safetensors LR=5e-4 COEF=... START=... bash scripts/follow_chain.sh ...   (M2')
# INIT may hold {seed} (each seed's own start); DEVICE=cuda trains on a GPU (the teacher's cache already made).
set -euo pipefail
RS=${1:?RoadScene folder} W=${2:?work folder}
SEEDS=${SEEDS:-0} EPOCHS=${EPOCHS:-50} LR=${LR:-2e-3} INIT=${INIT:-} DEVICE=${DEVICE:-cpu}
EF=(python -m edgefuse)
SAMPLE_ONLY=1 SAMPLE_EXTRA="--polish-steps ${POLISH:-60}" bash scripts/coef_fit_check.sh "$RS" "$W"
fit=(--cache "$W/coef" --data "$W/pairs" --val-fraction 0 --epochs "$EPOCHS" --repeat 8 --batch-size 16 --crop 256
    --routing none --workers 1 --lr "$LR" --device "$DEVICE")
T=(--pixel-weighting uniform --w-pixel 1 --w-ssim 0.1 --w-source-ssim 0 --w-gradient 0 --w-intensity 0)
R=(--pixel-weighting variance --w-pixel 1 --w-ssim 0.1 --w-source-ssim 1 --w-gradient 10 --w-intensity 0.5
    --thermal-level 0.5)
for s in $SEEDS; do
    for loss in T R; do
        out=$W/${INIT:+f}${loss}_s$s.safetensors # written every epoch: done only once the run has ended
        [ -f "$out.done" ] && continue
        if [ $loss = T ]; then terms=("${T[@]}"); else terms=("${R[@]}"); fi
        terms+=(${INIT:+--init "${INIT//\{seed\}/$s}"})
        [ -f "$out.state.pt" ] && terms+=(--resume)
        { OMP_NUM_THREADS=1 "${EF[@]}" distill "${fit[@]}" "${terms[@]}" --seed "$s" -o "$out" 2>&1 |
            tr '\r' '\n' | sed -u '/━/d' >>"${out%.safetensors}.log" && touch "$out.done"; } &
    done
    wait
done
args=(--student shipped=fusionproxy-s)
for x in ${STUDENTS:-}; do args+=(--student "$x"); done
shopt -s nullglob
for f in "$W"/{,f}[TR]_s*.safetensors; do n=${f##*/}; args+=(--student "${n%.safetensors}=$f"); done
python scripts/follow_check.py --cache "$W/coef" --data "$W/pairs" --base shipped "${args[@]}" --json "$W/follow.json"
