#!/usr/bin/env bash
# The coefficient teacher polished by the metric ascent (sample-cond --polish-steps), start to end on one GPU
# machine, as the DRIVER of scripts/device_ablation.sh (called again until it exits 0; every stage skips what
# an earlier call finished). The plan and its rules, written before any score: docs/results/
# session21_polish_plan.md.
#   1. the training-pair gate (its rule 1b): the polished teacher against the ascent teacher on the 12 day
#      pairs of the fit check (scripts/coef_fit_check.sh, scripts/fit_gate.py --above-ascent 0.01);
#   2. the polished teacher (K, 50 DDIM steps, eta 1, POLISH Adam steps: fixed in the plan) on RoadScene val
#      and LLVIP, SHARDS processes on the one GPU, scored and judged by scripts/teacher_rule.py;
#   3. only if it is worth distilling: its dn cache (samples kept), row (d) students, SEEDS, the bundled
#      recipe, scored with scripts/evaluate_students.py;
#   4. report only, after the students (the plan's K check): the ascent teacher at K = 6 on both held-out sets,
#      scored beside the polished teacher, for a like-for-like spread and rho.
#
# The model travels alone in a first call (runs/coef20.tar, 55 MB, passes 64 MiB with .gpu or .whl beside it):
#   run(carry=["runs/coef20.tar"]): mkdir -p /tmp/w && tar -xf runs/coef20.tar -C /tmp/w
# and the next, at once (the machine and /tmp stay while calls come back to back),
#   run(carry=[".gpu", ".whl"]): mkdir -p /tmp/w && { [ -d /tmp/w/prior ] || tar -xf .gpu/prior1540.tar -C /tmp/w; } && \
#   DRIVER=scripts/polish_chain.sh ROWS=d PACK="polish_llvip_spread_maps.jpg polish_rsval_spread_maps.jpg" \
#       START=.gpu/start.safetensors bash scripts/device_ablation.sh 540
# The twenty-first session ran this until its device time ran out with the students at epoch 33 of 60; their
# states and the chain's judged scores are in runs/polish21/ (ignored). The twenty-second session resumed them
# (the plan's amendment) and ran the last stage, in three calls after the model's, as follows: the
# first call as above, then the second with them unpacked first, so the gate and the held-out sets are skipped,
# the dn cache is sampled again (same model, seeds, settings) and the students continue from their states:
#   run(carry=[".gpu", ".whl", "runs/polish21"]): mkdir -p /tmp/w && tar -xf .gpu/prior1540.tar -C /tmp/w && \
#   tar -xzf runs/polish21/progress.tgz -C /tmp/w ./polish_gate.json ./polish_rule.json \
#       ./polish_teacher_rsval.json ./polish_teacher_llvip.json && \
#   for s in 0 1 2; do tar -xzf runs/polish21/d_s$s.tgz -C /tmp/w; done && \
#   DRIVER=scripts/polish_chain.sh ROWS=d START=.gpu/start.safetensors bash scripts/device_ablation.sh 540
# and twice more with the DRIVER line alone (unpacking the states again would put the students back to 33).
set -euo pipefail
source scripts/chain_lib.sh # log, json_true, need_coef, sample_polished, sampled_teacher_chain
K=${K:-6} STEPS=${STEPS:-50} ETA=${ETA:-1} POLISH=${POLISH:-60} # fixed by the plan
SHARDS=${SHARDS:-16}
need_coef
if [ ! -f "$W/polish_gate.json" ]; then
    COEF=$COEF START=$START DEVICE=$DEVICE WORKERS=12 SAMPLE_EXTRA="--polish-steps $POLISH ${SAMPLE_EXTRA:-}" \
        bash scripts/coef_fit_check.sh "$RS" "$W/fit" >"$W/fit_check.log" 2>&1
    python3 scripts/fit_gate.py "$W/fit" --above-ascent 0.01 --json "$W/polish_gate.json" >>"$W/fit_check.log" \
        2>&1 || true
    log "training-pair gate: $(tail -n 1 "$W/fit_check.log")"
fi
if ! json_true "$W/polish_gate.json" pass; then
    log "polish chain done: the training-pair gate stops it before the held-out sets"
    exit 0
fi
sampled_teacher_chain polish p sample_polished
# (4) the ascent teacher of the recipe (the dn cache's settings: rho 5, 60 steps, float32) at the polished K
ascent_k() {
    TEACHER=ascend sample_sharded "$1" "$2" --student "$START" --k "$K" --steps 60 --loss-weight 5 \
        --jitter "$JITTER" --dtype float32
}
for set in rsval llvip; do
    [ -f "$W/asck_teacher_$set.json" ] && continue
    ascent_k "a${K}_$set" "$([ $set = rsval ] && echo "$W/data_rsval" || echo "$LLVIP")"
    score_teacher asck $set "$W/asc_a${K}_$set"
done
log "K check done"

