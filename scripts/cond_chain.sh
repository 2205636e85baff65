#!/usr/bin/env bash
# The conditional diffusion teacher (the Diff-IF route), start to end on one GPU machine, as the DRIVER of
# scripts/device_ablation.sh (which keeps calling it until it exits 0; every stage skips what an earlier call
# finished). The plan and its rule, written before the run: docs/results/session15_conditional_plan.md.
#   1. the ascent teacher of the bundled recipe (ascent_ablation --rows '' --keep-samples): the dn cache (training
#      pairs + night copies, K samples kept) is the conditional teacher's targets; rsval/llvip its own scores;
#   2. teacher train-cond on the dn cache for COND_MINUTES (resumable);
#   3. its DDIM steps and η chosen on the 34 tuning pairs of the training split (tune_teacher.py --stage cond);
#   4. teacher sample-cond with them on RoadScene val and LLVIP, scored by score_cache.py (mean and spread),
#      and spread_error.py (does the spread predict the shipped student's error; maps);
#   5. with COND_DN=1, sample-cond on the dn folder too: the cache a student would distil from.
#
#   DRIVER=scripts/cond_chain.sh ROWS=none PACK="cond.tar cond_llvip_spread_maps.jpg" START=.gpu/start.safetensors \
#       bash scripts/device_ablation.sh 540
set -euo pipefail
source scripts/chain_lib.sh # log, train_teacher
K=${K:-6}
# ASC_EXTRA / COND_EXTRA / TUNE_EXTRA / SAMPLE_EXTRA: options appended for a quick check on a CPU
# ASC_SETS=dn: only the conditional teacher's training data (the ascent teacher's held-out scores of an
# earlier run of the same recipe stand; saves ~150 s of a GPU session)
if [ ! -f "$W/ascent.done" ]; then
    python3 scripts/ascent_ablation.py --work "$W" --rs "$RS" --llvip "$LLVIP" --gpus 1 --slots "$SLOTS" \
        --rows '' --sets "${ASC_SETS:-dn,rsval,llvip}" --thermal-level 0.5 --jitter "$JITTER" --start "$START" \
        --seeds "$SEEDS" --no-eval --device "$DEVICE" --keep-samples --resume ${ASC_EXTRA:-}
    touch "$W/ascent.done"
fi
train_teacher cond --crop "${COND_CROP:-128}" --channels "${COND_CHANNELS:-32,64,128,128}" \
    --batch-size "${COND_BATCH:-64}" --minutes "${COND_MINUTES:-12}" ${COND_EXTRA:-}
if [ ! -f "$W/tune_cond.json" ]; then
    python3 scripts/tune_teacher.py --stage cond --rs "$RS" --model "$W/cond" --k "$K" --device "$DEVICE" \
        --workers 12 --json "$W/tune_cond.json" ${TUNE_EXTRA:-} >"$W/tune_cond.log" 2>&1
    log "chosen: $(tail -n 1 "$W/tune_cond.log")"
fi
read -r STEPS ETA < <(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["best"]["config"]; print(c["steps"], c["eta"])' "$W/tune_cond.json")
[ -d "$W/data_rsval" ] || python3 scripts/val_folder.py "$RS" "$W/data_rsval"
sample() { # sample NAME FOLDER: the conditional teacher's cache of FOLDER
    "${EF[@]}" teacher sample-cond --model "$W/cond" --data "$2" -o "$W/cond_$1" --k "$K" --steps "$STEPS" \
        --eta "$ETA" --device "$DEVICE" --resume ${SAMPLE_EXTRA:-} 2>&1 | tr '\r' '\n' | sed '/━/d' >>"$W/cond_sample.log"
}
for set in rsval llvip; do
    [ -f "$W/cond_teacher_$set.json" ] && continue
    folder=$([ $set = rsval ] && echo "$W/data_rsval" || echo "$LLVIP")
    sample $set "$folder"
    val=$([ $set = rsval ] && echo "--val-split" || true)
    python3 scripts/score_cache.py --cache "$W/cond_$set" --data "$([ $set = rsval ] && echo "$RS" || echo "$LLVIP")" \
        $val --workers 12 --sample-metrics --json "$W/cond_teacher_$set.json" >"$W/cond_score_$set.log" 2>&1
    # item 2: does the spread predict the shipped student's error (Spearman ρ), and where is it (maps)
    python3 scripts/spread_error.py --cache "$W/cond_$set" --data "$folder" --student d=fusionproxy-s \
        --json "$W/cond_spread_$set.json" --maps "$W/cond_${set}_spread_maps.jpg" >"$W/cond_spread_$set.log" 2>&1
    log "$set: $(tail -n 1 "$W/cond_score_$set.log")"
done
if [ "${COND_DN:-0}" = 1 ] && [ ! -f "$W/cond_dn/manifest.json" ]; then
    sample dn "$W/dn"
    log "dn sampled"
fi
log "cond chain done"
