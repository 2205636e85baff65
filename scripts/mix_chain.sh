#!/usr/bin/env bash
# The mixed teacher ensemble (the issue's "several objectives"): the metric-ascent teacher's K = 3 samples and
# the conditional diffusion teacher's K = 3 per pair in one cache (`edgefuse teacher mix`), as the DRIVER of
# scripts/device_ablation.sh (called again until it exits 0; every stage skips what an earlier call finished).
# The plan and its rules, written before the run: docs/results/session17_mix_plan.md.
#   1. the ascent teacher of the bundled recipe on dn (samples kept), RoadScene val and LLVIP
#      (ascent_ablation --rows ''), beside the conditional teacher's sampling of the same three sets
#      (COND_MODEL: a tar of a trained `train-cond` directory named cond/, e.g. the seventeenth session's);
#   2. teacher mix of the two per set; the mixes of RoadScene val and LLVIP scored (score_cache.py,
#      spread_error.py) and judged by scripts/teacher_rule.py;
#   3. only if it is worth distilling: rows (c) and (d) from the dn mix, SEEDS, the bundled recipe
#      (ascent_ablation --dn-cache), then scored with scripts/evaluate_students.py.
#
#   COND_MODEL=.gpu/cond17.tar DRIVER=scripts/mix_chain.sh ROWS=c,d PACK="mix_llvip_spread_maps.jpg" \
#       START=.gpu/start.safetensors bash scripts/device_ablation.sh 540
set -euo pipefail
source scripts/chain_lib.sh # log, judge_teacher, distil_students, score_students
: "${COND_MODEL:?}"
GPUS=${GPUS:-1}
K_COND=${K_COND:-3}                               # the ascent teacher's K is 3: equal shares
COND_STEPS=${COND_STEPS:-50} COND_ETA=${COND_ETA:-1} # chosen on the tuning pairs in the seventeenth session
# ASC_EXTRA / SAMPLE_EXTRA / STUDENT_EXTRA: options appended for a quick check on a CPU;
# GATE=off (checks only) starts the students whatever the rule says
[ -d "$W/cond" ] || tar -xf "$COND_MODEL" -C "$W"
[ -d "$W/data_rsval" ] || python3 scripts/val_folder.py "$RS" "$W/data_rsval"
ascent() {
    python3 scripts/ascent_ablation.py --work "$W" --rs "$RS" --llvip "$LLVIP" --gpus "$GPUS" --slots "$SLOTS" \
        --rows '' --sets dn,rsval,llvip --thermal-level 0.5 --jitter "$JITTER" --start "$START" \
        --seeds "$SEEDS" --no-eval --device "$DEVICE" --keep-samples --resume ${ASC_EXTRA:-} &&
        touch "$W/ascent.done"
}
sample() { # sample NAME FOLDER: the conditional teacher's cache of FOLDER (one process per GPU)
    local run=("${EF[@]}")
    [ "$GPUS" -gt 1 ] && run=(python3 -m torch.distributed.run --standalone --nproc_per_node "$GPUS" -m edgefuse)
    "${run[@]}" teacher sample-cond --model "$W/cond" --data "$2" -o "$W/cond_$1" --k "$K_COND" \
        --steps "$COND_STEPS" --eta "$COND_ETA" --device "$DEVICE" --resume ${SAMPLE_EXTRA:-} 2>&1 |
        tr '\r' '\n' | sed '/━/d' >>"$W/cond_sample.log"
    [ -f "$W/cond_$1/manifest.json" ]
}
if [ ! -f "$W/ascent.done" ]; then
    ascent >>"$W/ascent_chain.log" 2>&1 &
    ASC_PID=$!
fi
# the sampling runs beside the ascent: its processes leave the GPU mostly idle (many small kernels)
for set in rsval llvip dn; do
    [ -f "$W/cond_$set/manifest.json" ] && continue
    case $set in dn) folder=$W/dn ;; rsval) folder=$W/data_rsval ;; llvip) folder=$LLVIP ;; esac
    # dn: the night copies the ascent run makes first; its shards (dn0, ...) come once they are all written
    while [ $set = dn ] && [ ! -d "$W/dn0" ]; do
        [ -f "$W/ascent.done" ] || kill -0 "${ASC_PID:-0}" 2>/dev/null || exit 3
        sleep 5
    done
    sample $set "$folder"
    log "cond $set sampled"
done
if [ -n "${ASC_PID:-}" ]; then wait "$ASC_PID" || exit 3; fi
[ -f "$W/ascent.done" ] || exit 3
for set in rsval llvip dn; do
    [ -f "$W/mix_$set/manifest.json" ] && continue
    "${EF[@]}" teacher mix "$W/asc_$set" "$W/cond_$set" -o "$W/mix_$set" --workers 12 2>&1 | tr '\r' '\n' | sed '/━/d' \
        >>"$W/mix.log"
    log "mixed $set: $(tail -n 1 "$W/mix.log")"
done
for set in rsval llvip; do
    [ -f "$W/mix_teacher_$set.json" ] && continue
    data=$([ $set = rsval ] && echo "$RS" || echo "$LLVIP")
    folder=$([ $set = rsval ] && echo "$W/data_rsval" || echo "$LLVIP")
    val=$([ $set = rsval ] && echo "--val-split" || true)
    python3 scripts/spread_error.py --cache "$W/mix_$set" --data "$folder" --student d=fusionproxy-s \
        --json "$W/mix_spread_$set.json" --maps "$W/mix_${set}_spread_maps.jpg" >"$W/mix_spread_$set.log" 2>&1
    # the conditional teacher's K = 3 alone too (the ascent teacher's: teacher_<set>.json of ascent_ablation)
    python3 scripts/score_cache.py --cache "$W/cond_$set" --data "$data" $val --workers 12 \
        --json "$W/cond_teacher_$set.json" >"$W/cond_score_$set.log" 2>&1
    python3 scripts/score_cache.py --cache "$W/mix_$set" --data "$data" $val --workers 12 \
        --json "$W/mix_teacher_$set.json.tmp" >"$W/mix_score_$set.log" 2>&1
    mv "$W/mix_teacher_$set.json.tmp" "$W/mix_teacher_$set.json"
    log "$set mix: $(tail -n 1 "$W/mix_score_$set.log")"
done
judge_teacher mix
distil_students c,d "$W/mix_dn" "$GPUS"
score_students mix cd
log "mix chain done"
