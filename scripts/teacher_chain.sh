#!/usr/bin/env bash
# The whole teacher -> distillation chain in one command, then the ablation table.
#
#   1. train the luminance prior on RoadScene's training split      (edgefuse teacher train-prior)
#   2. sample the K-sample teacher ensemble over all RoadScene pairs (edgefuse teacher sample)
#   3. in parallel: sample LLVIP (evaluation only) | train (a) | distil (b), (c), (d), (c)+unrouted features
#   4. scripts/ablation.py: metrics on RoadScene val + LLVIP, fidelity to the teacher mean, timing
#
# Every size/steps knob is an environment variable (defaults: the H100 run, ~6-7 min; see
# docs/distillation.md for the estimate). Tiny CPU check:
#   DEVICE=cpu PRIOR_CROP=32 PRIOR_CHANNELS=8,16,32 PRIOR_STEPS=20 PRIOR_MINUTES=0 K=2 STEPS=2 SUBSET=6 \
#   LLVIP_LIMIT=2 EPOCHS=1 REPEAT=1 CROP=64 BATCH=4 PARALLEL=0 scripts/teacher_chain.sh
# Results (<= 8 files) land in $OUT: ablation.json, ablation.md, previews.png, chain.log, students.tar, prior.tar.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_RS=${DATA_RS:-../shared/data/roadscene_train}
DATA_LLVIP=${DATA_LLVIP:-../shared/data/llvip_sample}
WORK=${WORK:-runs/teacher_chain}
OUT=${OUT:-$WORK/out}
DEVICE=${DEVICE:-cuda}
PRECISION=${PRECISION:-bf16}
# prior
PRIOR_CROP=${PRIOR_CROP:-64}
PRIOR_CHANNELS=${PRIOR_CHANNELS:-16,32,64,128}
PRIOR_LPB=${PRIOR_LPB:-2}
PRIOR_BATCH=${PRIOR_BATCH:-128}
PRIOR_STEPS=${PRIOR_STEPS:-100000}
PRIOR_MINUTES=${PRIOR_MINUTES:-2.5}
PRIOR_LR=${PRIOR_LR:-5e-4}
# teacher sampling
K=${K:-8}
STEPS=${STEPS:-20}
PHI=${PHI:-3.0}
PRIOR_WEIGHT=${PRIOR_WEIGHT:-1.0}
EM_ITERS=${EM_ITERS:-3}
SUBSET=${SUBSET:-0}  # >0: use only the first N RoadScene pairs (symlinked into $WORK/data_rs), for tiny checks
LLVIP_LIMIT=${LLVIP_LIMIT:-0}
# students (same size and budget for every row)
SIZE=${SIZE:-s}
EPOCHS=${EPOCHS:-10}
REPEAT=${REPEAT:-8}
CROP=${CROP:-256}
BATCH=${BATCH:-16}
LR=${LR:-2e-3}
WORKERS=${WORKERS:-2}
PARALLEL=${PARALLEL:-1}
JOB_THREADS=${JOB_THREADS:-2}  # intra-op CPU threads of each parallel job (6 jobs share the host's cores)
SEED=${SEED:-0}
EDGEFUSE=${EDGEFUSE:-python -m edgefuse}

mkdir -p "$WORK/logs" "$OUT"
LOG="$OUT/chain.log"
: >"$LOG"
T0=$(date +%s)
say() { echo "[chain +$(($(date +%s) - T0))s] $*" | tee -a "$LOG"; }
run() { # run NAME CMD...: log to its own file, append a tail to chain.log, fail loudly
    local name=$1; shift
    local t=$(date +%s)
    if "$@" >"$WORK/logs/$name.log" 2>&1; then
        say "$name ok ($(($(date +%s) - t)) s)"
    else
        say "$name FAILED ($(($(date +%s) - t)) s):"; tail -n 30 "$WORK/logs/$name.log" | tee -a "$LOG"; return 1
    fi
    grep -v -E 'torchao|_pytree|register_constant|Failed to load|accelerate|Warning|float\(loss\)|^\s*$' \
        "$WORK/logs/$name.log" | tail -n 3 >>"$LOG" || true
}
if [[ "$SUBSET" -gt 0 ]]; then
    python - "$DATA_RS" "$WORK/data_rs" "$SUBSET" <<'PY'
import os, sys
from pathlib import Path
from edgefuse.data import find_pairs
src, dst, n = find_pairs(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
for sub in ("vi", "ir"):
    (dst / sub).mkdir(parents=True, exist_ok=True)
for p in src.pairs[:n]:
    for sub, f in (("vi", p.visible), ("ir", p.thermal)):
        link = dst / sub / f.name
        if not link.exists():
            os.symlink(f.resolve(), link)
PY
    DATA_RS="$WORK/data_rs"
fi
say "device=$DEVICE K=$K steps=$STEPS prior=$PRIOR_CHANNELS@$PRIOR_CROP ${PRIOR_MINUTES}min students=$SIZE ${EPOCHS}x${REPEAT}"

if [[ -f "$WORK/prior/model_index.json" && "${REUSE_PRIOR:-0}" == 1 ]]; then
    say "prior: reusing $WORK/prior"
else
    run train_prior $EDGEFUSE teacher train-prior --data "$DATA_RS" -o "$WORK/prior" --crop "$PRIOR_CROP" \
        --channels "$PRIOR_CHANNELS" --layers-per-block "$PRIOR_LPB" --batch-size "$PRIOR_BATCH" --lr "$PRIOR_LR" \
        --steps "$PRIOR_STEPS" --minutes "$PRIOR_MINUTES" --seed "$SEED" --device "$DEVICE" --precision "$PRECISION"
fi

SAMPLE=(teacher sample --prior "$WORK/prior" --k "$K" --steps "$STEPS" --phi "$PHI" --prior-weight "$PRIOR_WEIGHT"
    --em-iters "$EM_ITERS" --seed "$SEED" --device "$DEVICE" --precision "$PRECISION" --resume)
run sample_rs $EDGEFUSE "${SAMPLE[@]}" --data "$DATA_RS" -o "$WORK/cache_rs"

COMMON=(--data "$DATA_RS" --size "$SIZE" --epochs "$EPOCHS" --repeat "$REPEAT" --crop "$CROP" --batch-size "$BATCH"
    --lr "$LR" --seed "$SEED" --device "$DEVICE" --workers "$WORKERS")
DISTILL=(distill --cache "$WORK/cache_rs" "${COMMON[@]}")
jobs_=(
    "sample_llvip|$EDGEFUSE ${SAMPLE[*]@Q} --data ${DATA_LLVIP@Q} -o ${WORK@Q}/cache_llvip --limit $LLVIP_LIMIT --no-save-samples"
    "train_a|$EDGEFUSE train ${COMMON[*]@Q} -o ${WORK@Q}/students/a.safetensors"
    "distill_b|$EDGEFUSE ${DISTILL[*]@Q} --pixel-weighting uniform --routing none -o ${WORK@Q}/students/b.safetensors"
    "distill_c|$EDGEFUSE ${DISTILL[*]@Q} --pixel-weighting variance --routing none -o ${WORK@Q}/students/c.safetensors"
    "distill_d|$EDGEFUSE ${DISTILL[*]@Q} --pixel-weighting variance --routing feature -o ${WORK@Q}/students/d.safetensors"
    "distill_c_all|$EDGEFUSE ${DISTILL[*]@Q} --pixel-weighting variance --routing all -o ${WORK@Q}/students/c_all.safetensors"
)
mkdir -p "$WORK/students"
pids=()
for job in "${jobs_[@]}"; do
    name=${job%%|*}; cmd=${job#*|}
    if [[ "$PARALLEL" == 1 ]]; then
        OMP_NUM_THREADS=$JOB_THREADS run "$name" bash -c "$cmd" &
        pids+=($!)
    else
        run "$name" bash -c "$cmd"
    fi
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
[[ $status == 0 ]] || { say "a stage failed; see above"; exit 1; }

ABL=(--rs "$DATA_RS" --cache-rs "$WORK/cache_rs" --llvip "$DATA_LLVIP" --cache-llvip "$WORK/cache_llvip"
    --json "$OUT/ablation.json" --md "$OUT/ablation.md" --previews "$OUT/previews.png" --device "$DEVICE")
for k in a b c d c_all; do ABL+=(--student "$k=$WORK/students/$k.safetensors"); done
run ablation python scripts/ablation.py "${ABL[@]}"
cat "$OUT/ablation.md" >>"$LOG"

# bring back checkpoints and small reports, never the sample caches
tar -cf "$OUT/students.tar" -C "$WORK" students/a.safetensors students/b.safetensors students/c.safetensors \
    students/d.safetensors students/c_all.safetensors cache_rs/manifest.json cache_llvip/manifest.json logs
tar -cf "$OUT/prior.tar" -C "$WORK" prior
say "done: $(ls "$OUT" | tr '\n' ' ')"
