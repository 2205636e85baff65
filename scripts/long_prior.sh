#!/usr/bin/env bash
# Does a diffusion prior trained 4x longer make the DDFM sampler's pull towards it (mu > 0) help?
# docs/results/session15_long_prior.md has the question and the rule, written before the run. On a lent GPU
# machine (carry .gpu and .whl; .gpu/prior1540.tar is the 1540-step prior of the same settings), call it
# again and again (back to back, so /tmp stays) until it says "long prior done":
#
#   bash scripts/long_prior.sh 540
#
# Call 1 trains the long prior for the call's time (resumable) and runs the sampler grid with the short one
# beside it; later calls finish the prior, run the grid with it and score both priors' held-out denoising.
set -u
T0=$(date +%s)
LIMIT=${1:-540}
STEPS=${STEPS:-6160} # 4x the chain's 1540
W=${WORK:-/tmp/lp}
OUT=${OUT:-$W/out}
mkdir -p "$W" "$OUT"
if [ ! -f /tmp/setup.done ]; then
    source scripts/device_setup.sh && cp -r .gpu/data /tmp/data && touch /tmp/setup.done
else
    source scripts/device_env.sh
fi
export OMP_NUM_THREADS=4 # the grid's metric workers, the grid and the prior share 16 cores
RS=/tmp/data/roadscene_train
[ -d "$W/prior_short" ] || { tar -xf .gpu/prior1540.tar -C "$W" && mv "$W/prior" "$W/prior_short"; }
grid() { # grid NAME: the sampler stage of scripts/tune_teacher.py (mu x eta) with prior NAME, all 34 pairs
    python3 scripts/tune_teacher.py --stage sampler --rs "$RS" --prior "$W/prior_$1" --device cuda \
        --em docs/results/teacher_tuning_objective.json --workers 8 --json "$W/grid_$1.json" >"$W/grid_$1.log" 2>&1
}
[ -f "$W/grid_short.json" ] || { grid short & }
complete() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["complete"])' "$W/prior_long/edgefuse_prior.json" 2>/dev/null; }
if [ "$(complete)" != True ]; then
    left=$((LIMIT - ($(date +%s) - T0) - 45))
    python3 -m edgefuse teacher train-prior --data "$RS" -o "$W/prior_long" --crop 64 --channels 16,32,64,128 \
        --layers-per-block 2 --batch-size 256 --lr 5e-4 --steps "$STEPS" --minutes "$(python3 -c "print($left / 60)")" \
        --seed 0 --device cuda --precision bf16 --resume 2>&1 | tr '\r' '\n' | grep -v '━' >>"$W/prior_long.log"
fi
wait
if [ "$(complete)" = True ]; then
    [ -f "$W/grid_long.json" ] || grid long
    [ -f "$W/prior_loss.json" ] || python3 scripts/prior_loss.py --data "$RS" --prior "$W/prior_short" \
        --prior "$W/prior_long" --device cuda --json "$W/prior_loss.json" >"$W/prior_loss.log" 2>&1
    [ -f "$W/grid_long.json" ] && [ -f "$W/prior_loss.json" ] && echo "long prior done"
fi
tail -n 3 "$W"/*.log
cp "$W/prior_long/edgefuse_prior.json" "$W/prior_long_info.json" 2>/dev/null
(cd "$W" && tar -czf "$OUT/long_prior.tgz" ./*.log ./*.json 2>/dev/null)
echo "[$(($(date +%s) - T0)) s] packed"
