#!/usr/bin/env bash
# The loss-weight choice of docs/results/session14_loss_tune.md, start to end on one GPU machine, as the
# DRIVER of scripts/device_ablation.sh (which keeps calling it until it exits 0; every stage skips what an
# earlier call finished):
#   1. the recipe's teacher cache of the night-copy union (ascent_ablation --rows '' --sets dn, samples kept);
#   2. scripts/tune_distill.py on the nested training split, one process per config (3 seeds each);
#   3. scripts/tune_choice.py applies the rule written before the run;
#   4. if a config other than the base is chosen: row (d) with its options, 3 seeds, the bundled recipe.
#
#   DRIVER=scripts/tune_chain.sh ROWS=dt START=.gpu/start.safetensors bash scripts/device_ablation.sh 560
set -eu
: "${W:?}" "${SLOTS:=16}" "${JITTER:=0.3}" "${START:?}" "${SEEDS:=0,1,2}"
RS=${RS:-/tmp/data/roadscene_train}
DEVICE=${DEVICE:-cuda}
# ASC_EXTRA / TUNE_EXTRA: options appended for a quick check on a CPU (e.g. --steps 1; --epochs 1)
COMMON=(--work "$W" --rs "$RS" --gpus 1 --slots "$SLOTS" --rows '' --sets dn --thermal-level 0.5
    --jitter "$JITTER" --start "$START" --seeds "$SEEDS" --no-eval --device "$DEVICE" ${ASC_EXTRA:-})
log() { echo "[$(date +%T)] $*" >>"$W/progress.txt"; }

[ -f "$W/asc_dn/manifest.json" ] || python3 scripts/ascent_ablation.py "${COMMON[@]}" --keep-samples

# the bundled recipe's weights: teacher-free (train_bundled.sh) and distilled (ascent_ablation's rows)
CONTROL="a w_intensity=0.5 w_gradient=10 w_ssim=1 night=0.5 thermal_level=0.5"
BASE="b w_intensity=0.5 w_gradient=10 w_source_ssim=1 thermal_level=0.5"
CONFIGS=("$CONTROL" "$BASE" "$BASE w_pixel=2" "$BASE w_pixel=4" "${BASE/w_gradient=10/w_gradient=5}"
    "${BASE/w_intensity=0.5/w_intensity=0}")
# six runs share 16 cores: with torch's default of 16 threads each they scored no seed in 23 minutes (load ~92;
# fourteenth session), with 2 each all six finished in 2 minutes (fifteenth). Every run logs its epochs and its
# scoring time (kill -USR1 PID prints a run's stack into its log). Only these runs: the students of step 4
# keep the bundled recipe's defaults
pids=()
for i in "${!CONFIGS[@]}"; do
    [ -f "$W/tune_$i.json" ] && continue
    log "tune $i: ${CONFIGS[$i]}"
    OMP_NUM_THREADS=2 python3 scripts/tune_distill.py --rs "$RS" --cache "$W/asc_dn" --union "$W/dn" \
        --config "${CONFIGS[$i]}" --device "$DEVICE" --night-gamma 3 --metric-workers 2 --threads 2 --json "$W/tune_$i.json" \
        ${TUNE_EXTRA:-} >"$W/tune_$i.log" 2>&1 &
    pids+=($!)
done
for p in ${pids[@]+"${pids[@]}"}; do wait "$p"; done
ARGS=$(python3 scripts/tune_choice.py "$W"/tune_*.json --control "$CONTROL" --base "$BASE" \
    --json "$W/choice.json" 2>>"$W/progress.txt")
log "choice: '${ARGS}'"
[ -n "$ARGS" ] || exit 0
until [ -f "$W/prior/edgefuse_prior.json" ]; do sleep 10; done # row (d)'s backbone, trained beside
python3 scripts/ascent_ablation.py "${COMMON[@]}" --resume --prior "$W/prior" --variant "dt=d:$ARGS"
