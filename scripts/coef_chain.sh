#!/usr/bin/env bash
# The coefficient-space conditional diffusion teacher, start to end on one GPU machine, as the DRIVER of
# scripts/device_ablation.sh (called again until it exits 0; every stage skips what an earlier call finished).
# The plan and its rules, written before the run: docs/results/session19_coefficient_plan.md.
#   1. the ascent teacher of the bundled recipe on dn (RoadScene's training pairs + night copies), keeping each
#      pair's start and climbed coefficient maps (ascent_ablation --rows '' --keep-coefficients);
#   2. teacher train-cond --target coefficients on them for COEF_MINUTES (resumable); with FIT_GATE=1 the
#      training-pair gate of the written-down rerun (scripts/coef_fit_check.sh, scripts/fit_gate.py);
#   3. teacher sample-cond (K, 50 DDIM steps, eta 1: fixed in the plan) on RoadScene val and LLVIP, scored
#      (score_cache.py, spread_error.py) and judged by scripts/teacher_rule.py;
#   4. only if it is worth distilling: its dn cache (samples kept), row (d) students, SEEDS, the bundled
#      recipe (ascent_ablation --dn-cache), scored with scripts/evaluate_students.py.
#
#   mkdir -p /tmp/w && { [ -d /tmp/w/prior ] || tar -xf .gpu/prior1540.tar -C /tmp/w; } && \
#   DRIVER=scripts/coef_chain.sh ROWS=d PACK="coef.tar coef_llvip_spread_maps.jpg coef_rsval_spread_maps.jpg" \
#       START=.gpu/start.safetensors bash scripts/device_ablation.sh 540
# The twenty-third session's rebuild of the twentieth session's model (docs/results/session23_rebuild.md):
#   COEF_MINUTES=15 COEF_ONLY=1 DRIVER=scripts/coef_chain.sh ROWS=d PACK=coef.tar \
#       START=.gpu/start.safetensors bash scripts/device_ablation.sh 540
set -euo pipefail
source scripts/chain_lib.sh # log, train_teacher, score_teacher, judge_teacher, distil_students, score_students
K=${K:-6}
STEPS=${STEPS:-50} ETA=${ETA:-1} # fixed by the plan (the seventeenth session's choice for the pixel model)
# ASC_EXTRA / COEF_EXTRA / SAMPLE_EXTRA / STUDENT_EXTRA: options appended for a quick check on a CPU;
# GATE=off (checks only) starts the students whatever the rule says
if [ ! -f "$W/ascent.done" ]; then
    python3 scripts/ascent_ablation.py --work "$W" --rs "$RS" --llvip "$LLVIP" --gpus 1 --slots "$SLOTS" \
        --rows '' --sets dn --thermal-level 0.5 --jitter "$JITTER" --start "$START" --seeds "$SEEDS" \
        --no-eval --device "$DEVICE" --keep-coefficients --resume ${ASC_EXTRA:-} >>"$W/ascent_chain.log" 2>&1
    touch "$W/ascent.done"
    log "ascent dn done"
fi
train_teacher coef --target coefficients --crop "${COEF_CROP:-32}" --channels "${COEF_CHANNELS:-32,64,128,256}" \
    --batch-size "${COEF_BATCH:-128}" --minutes "${COEF_MINUTES:-7}" ${COEF_EXTRA:-}
# COEF_ONLY=1: stop once the model is trained (the twenty-third session rebuilt the model for
# scripts/polish_chain.sh, which has its own gate, after the development VM lost runs/coef20.tar)
if [ "${COEF_ONLY:-0}" = 1 ]; then
    log "coef chain done: trained, COEF_ONLY"
    exit 0
fi
# FIT_GATE=1 (the written-down rerun, not the nineteenth session's run): sample the held-out sets only if the
# teacher keeps enough of the ascent's gain on 12 training pairs it learnt from (scripts/fit_gate.py)
if [ "${FIT_GATE:-0}" = 1 ]; then
    if [ ! -f "$W/fit_gate.json" ]; then
        COEF=$W/coef START=$START DEVICE=$DEVICE WORKERS=12 bash scripts/coef_fit_check.sh "$RS" "$W/fit" \
            >"$W/fit_check.log" 2>&1
        python3 scripts/fit_gate.py "$W/fit" --json "$W/fit_gate.json" >>"$W/fit_check.log" 2>&1 || true
        log "fit gate: $(tail -n 1 "$W/fit_check.log")"
    fi
    if ! json_true "$W/fit_gate.json" pass; then
        log "coef chain done: the fit gate stops it before the held-out sets"
        exit 0
    fi
fi
[ -d "$W/data_rsval" ] || python3 scripts/val_folder.py "$RS" "$W/data_rsval"
sample() { # sample NAME FOLDER: the coefficient teacher's cache of FOLDER
    "${EF[@]}" teacher sample-cond --model "$W/coef" --data "$2" -o "$W/coef_$1" --k "$K" --steps "$STEPS" \
        --eta "$ETA" --device "$DEVICE" --resume ${SAMPLE_EXTRA:-} 2>&1 | tr '\r' '\n' | sed '/━/d' >>"$W/coef_sample.log"
    [ -f "$W/coef_$1/manifest.json" ]
}
for set in rsval llvip; do
    [ -f "$W/coef_teacher_$set.json" ] && continue
    sample $set "$([ $set = rsval ] && echo "$W/data_rsval" || echo "$LLVIP")"
    log "sampled $set: $(grep wrote "$W/coef_sample.log" | tail -n 1)"
    score_teacher coef $set "$W/coef_$set"
done
judge_teacher coef
if [ ! -f "$W/coef_dn/manifest.json" ]; then
    sample dn "$W/dn"
    log "sampled dn"
fi
distil_students d "$W/coef_dn"
score_students coef d
log "coef chain done"
