#!/usr/bin/env bash
# The teacher -> distillation chain, as stages that can run in separate (time-limited) GPU commands:
#
#   prior     train the luminance prior on RoadScene's training split, both modalities (resumable:
#             a second `prior` stage continues the schedule)                   edgefuse teacher train-prior
#   tune      choose μ, η, jitter, steps of the sampler on the *tuning subset of the training pairs*
#             (scripts/tune_teacher.py --stage sampler; the objective was chosen on the same pairs on CPU:
#             docs/results/teacher_tuning_objective.json)
#   sample    the K-sample ensemble over all RoadScene pairs and the LLVIP pairs   edgefuse teacher sample
#   students  3 seeds × rows (a) train, (b) uniform, (c) variance, (d) variance + routed features, one
#             process each, spread over the visible GPUs (ROWS="a d": only those rows)
#   ablation  scripts/ablation.py: every row on RoadScene val + LLVIP (mean ± std over seeds), the teacher
#             with and without its prior, ensemble-spread statistics, maps
#   speed     scripts/gpu_speed.py: batch-1 latency of the bundled form and the distilled student;
#             scripts/form_speed.py: today's form and the full-resolution selection side by side
#
#   STAGES="prior tune sample" scripts/teacher_chain.sh; STAGES="students ablation speed" scripts/teacher_chain.sh
#
# Tiny CPU check (a minute): DEVICE=cpu PRIOR_CROP=32 PRIOR_CHANNELS=8,16,32 PRIOR_MINUTES=0.1 PRIOR_BATCH=8 \
#   TUNE_LIMIT=2 TUNE_GRID=tiny K=2 SUBSET=6 LLVIP_LIMIT=2 EPOCHS=1 REPEAT=1 CROP=64 BATCH=4 SEEDS=0 \
#   STAGES="prior tune sample students ablation" scripts/teacher_chain.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_RS=${DATA_RS:-../shared/data/roadscene_train}
DATA_LLVIP=${DATA_LLVIP:-../shared/data/llvip_sample}
WORK=${WORK:-runs/teacher_chain}
OUT=${OUT:-$WORK/out}
DEVICE=${DEVICE:-cuda}
PRECISION=${PRECISION:-bf16}
STAGES=${STAGES:-prior tune sample students ablation speed}
# prior
PRIOR_CROP=${PRIOR_CROP:-64}
PRIOR_CHANNELS=${PRIOR_CHANNELS:-16,32,64,128}
PRIOR_LPB=${PRIOR_LPB:-2}
PRIOR_BATCH=${PRIOR_BATCH:-256}
PRIOR_STEPS=${PRIOR_STEPS:-200000}
PRIOR_MINUTES=${PRIOR_MINUTES:-4}
PRIOR_LR=${PRIOR_LR:-5e-4}
# teacher
OBJECTIVE_JSON=${OBJECTIVE_JSON:-docs/results/teacher_tuning_objective.json}
TUNE_LIMIT=${TUNE_LIMIT:-0}
TUNE_GRID=${TUNE_GRID:-full}
K=${K:-6}
SUBSET=${SUBSET:-0}  # >0: only the first N RoadScene pairs (symlinked into $WORK/data_rs), for tiny checks
LLVIP_LIMIT=${LLVIP_LIMIT:-0}
# students (same size, recipe and budget for every row: by default the bundled one, scripts/train_bundled.sh)
SIZE=${SIZE:-s}
FORM=${FORM:---no-select}  # today's form (--select: the opt-in full-resolution selection, 1.5x slower on CPU int8)
EPOCHS=${EPOCHS:-60}
REPEAT=${REPEAT:-16}
CROP=${CROP:-256}
BATCH=${BATCH:-32}
LR=${LR:-2e-3}
DISTILL_ARGS=${DISTILL_ARGS:-}  # extra `edgefuse distill` options for rows b-d (loss weights)
TRAIN_ARGS=${TRAIN_ARGS:-}  # extra `edgefuse train` options for row a (loss weights)
WORKERS=${WORKERS:-2}
SEEDS=${SEEDS:-0 1 2}
ROWS=${ROWS:-a b c d}  # which ablation rows the students stage trains
JOB_THREADS=${JOB_THREADS:-2}
EDGEFUSE=${EDGEFUSE:-python -m edgefuse}

mkdir -p "$WORK/logs" "$OUT"
OUT=$(cd "$OUT" && pwd)  # absolute: the ablation stage tars from inside $WORK
LOG="$OUT/chain.log"
touch "$LOG"
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
    grep -v -E 'torchao|_pytree|register_constant|Failed to load|accelerate|Warning|^\s*$' \
        "$WORK/logs/$name.log" | tail -n 2 >>"$LOG" || true
}
has() { [[ " $STAGES " == *" $1 "* ]]; }
ngpu() {
    if [[ "$DEVICE" == cuda* ]]; then python -c 'import torch; print(max(1, torch.cuda.device_count()))'; else echo 1; fi
}
NGPU=$(ngpu)
gpu_env() { # gpu_env N: the CUDA_VISIBLE_DEVICES prefix for job N (round robin)
    if [[ "$DEVICE" == cuda* ]]; then echo "CUDA_VISIBLE_DEVICES=$(($1 % NGPU))"; else echo ""; fi
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
say "stages: $STAGES; device=$DEVICE ($NGPU GPU) K=$K prior=$PRIOR_CHANNELS@$PRIOR_CROP ${PRIOR_MINUTES}min"

if has prior; then
    run train_prior $EDGEFUSE teacher train-prior --data "$DATA_RS" -o "$WORK/prior" --crop "$PRIOR_CROP" \
        --channels "$PRIOR_CHANNELS" --layers-per-block "$PRIOR_LPB" --batch-size "$PRIOR_BATCH" --lr "$PRIOR_LR" \
        --steps "$PRIOR_STEPS" --minutes "$PRIOR_MINUTES" --seed 0 --device "$DEVICE" --precision "$PRECISION" --resume
    cp "$WORK/prior/edgefuse_prior.json" "$OUT/prior_info.json"
    tar -cf "$OUT/prior.tar" -C "$WORK" prior  # back early: a later stage may hit the command's time limit
fi

if has tune; then
    run tune_sampler python scripts/tune_teacher.py --stage sampler --rs "$DATA_RS" --prior "$WORK/prior" \
        --em "$OBJECTIVE_JSON" --device "$DEVICE" --workers "$(( $(nproc) > 4 ? $(nproc) - 2 : 2 ))" \
        --limit "$TUNE_LIMIT" --grid "$TUNE_GRID" --json "$OUT/tune_sampler.json"
fi

if has sample; then
    SAMPLE=(teacher sample --prior "$WORK/prior" --config "$OUT/tune_sampler.json" --k "$K" --seed 0
        --device "$DEVICE" --precision "$PRECISION" --resume)
    pids=()
    env $(gpu_env 0) $EDGEFUSE "${SAMPLE[@]}" --data "$DATA_RS" -o "$WORK/cache_rs" >"$WORK/logs/sample_rs.log" 2>&1 &
    pids+=($!)
    env $(gpu_env 1) $EDGEFUSE "${SAMPLE[@]}" --data "$DATA_LLVIP" -o "$WORK/cache_llvip" --limit "$LLVIP_LIMIT" \
        >"$WORK/logs/sample_llvip.log" 2>&1 &
    pids+=($!)
    for p in "${pids[@]}"; do wait "$p" || { say "sampling FAILED"; tail -n 20 "$WORK"/logs/sample_*.log; exit 1; }; done
    say "sampling ok: $(tail -n 1 "$WORK/logs/sample_rs.log") | $(tail -n 1 "$WORK/logs/sample_llvip.log")"
    cp "$WORK/cache_rs/manifest.json" "$OUT/cache_rs_manifest.json"
fi

if has students; then
    COMMON=(--data "$DATA_RS" --size "$SIZE" $FORM --epochs "$EPOCHS" --repeat "$REPEAT" --crop "$CROP"
        --batch-size "$BATCH" --lr "$LR" --device "$DEVICE" --workers "$WORKERS")
    DISTILL=(distill --cache "$WORK/cache_rs" "${COMMON[@]}" $DISTILL_ARGS)
    mkdir -p "$WORK/students"
    pids=(); n=0
    for seed in $SEEDS; do
        for row in $ROWS; do
            case $row in
                a) cmd=(train "${COMMON[@]}" --thermal-level 0 $TRAIN_ARGS) ;;  # as its runs were
                b) cmd=("${DISTILL[@]}" --pixel-weighting uniform --routing none) ;;
                c) cmd=("${DISTILL[@]}" --pixel-weighting variance --routing none) ;;
                d) cmd=("${DISTILL[@]}" --pixel-weighting variance --routing feature) ;;
            esac
            env $(gpu_env $n) OMP_NUM_THREADS=$JOB_THREADS $EDGEFUSE "${cmd[@]}" --seed "$seed" \
                -o "$WORK/students/${row}_s$seed.safetensors" >"$WORK/logs/${row}_s$seed.log" 2>&1 &
            pids+=($!); n=$((n + 1))
        done
    done
    status=0
    for p in "${pids[@]}"; do wait "$p" || status=1; done
    if [[ $status != 0 ]]; then
        say "a student FAILED"; for f in "$WORK"/logs/[abcd]_s*.log; do echo "== $f"; tail -n 5 "$f"; done; exit 1
    fi
    say "students ok"
fi

if has ablation; then
    ABL=(--rs "$DATA_RS" --cache-rs "$WORK/cache_rs" --llvip "$DATA_LLVIP" --cache-llvip "$WORK/cache_llvip"
        --json "$OUT/ablation.json" --md "$OUT/ablation.md" --previews "$OUT/previews.jpg"
        --spread-maps "$OUT/spread_maps.jpg" --device "$DEVICE" --reference fusionproxy-s)
    for f in "$WORK"/students/*.safetensors; do k=$(basename "$f" .safetensors); ABL+=(--student "$k=$f"); done
    run ablation python scripts/ablation.py "${ABL[@]}"
    cat "$OUT/ablation.md" >>"$LOG"
    # weights only (the .state.pt resume files are 4x larger) and log tails: what a device's $OUT can carry back
    (cd "$WORK" && tar -czf "$OUT/students.tgz" students/*.safetensors && tail -c 3000 logs/*.log >"$OUT/logs_tail.txt")
fi

if has speed; then
    run speed_old python scripts/gpu_speed.py --checkpoint fusionproxy-s --json "$OUT/speed_bundled.json" \
        --batches 1 --modes graph,compile --dtypes fp16
    run speed_new python scripts/gpu_speed.py --checkpoint "$WORK/students/d_s0.safetensors" \
        --json "$OUT/speed_distilled.json" --batches 1 --modes graph,compile --dtypes fp16
    run form_speed python scripts/form_speed.py  # the two forms side by side (item 3's GPU latency budget)
    tail -n 6 "$WORK/logs/speed_old.log" "$WORK/logs/speed_new.log" >>"$LOG"
    grep "^size" "$WORK/logs/form_speed.log" >>"$LOG" || true
fi
say "done: $(ls "$OUT" | tr '\n' ' ')"
