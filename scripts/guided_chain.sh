#!/usr/bin/env bash
# The coefficient teacher guided by the metric ascent inside its DDIM (sample-cond --guide-steps), start to
# end on one GPU machine, as the DRIVER of scripts/device_ablation.sh (called again until it exits 0; every
# stage skips what an earlier call finished). The plan and its rules, written before any score:
# docs/results/session20_guided_plan.md. Its training-pair check failed in the twentieth session (the guided
# mean keeps 27 % / 22 % of the ascent's gain on night copies, floors 80 %), so it has not run on a device.
#   1. the guided teacher (K, 30 DDIM steps, eta 1, GUIDE Adam steps a step: fixed in the plan) on RoadScene
#      val and LLVIP, SHARDS processes on the one GPU, scored (score_cache.py, spread_error.py) and judged by
#      scripts/teacher_rule.py;
#   2. only if it is worth distilling: its dn cache (samples kept), row (d) students, SEEDS, the bundled
#      recipe (ascent_ablation --dn-cache), scored with scripts/evaluate_students.py.
#
# The model (runs/coef20.tar, 55 MB) cannot travel beside .gpu or .whl (64 MiB a call, the tracked tree
# included: refused in the twenty-first session): a first call carries it alone,
#   run(carry=["runs/coef20.tar"]): mkdir -p /tmp/w && tar -xf runs/coef20.tar -C /tmp/w
# and the next, at once (the machine and /tmp stay while calls come back to back),
#   run(carry=[".gpu", ".whl"]): mkdir -p /tmp/w && { [ -d /tmp/w/prior ] || tar -xf .gpu/prior1540.tar -C /tmp/w; } && \
#   DRIVER=scripts/guided_chain.sh ROWS=d PACK="guided_llvip_spread_maps.jpg guided_rsval_spread_maps.jpg" \
#       START=.gpu/start.safetensors bash scripts/device_ablation.sh 540
set -euo pipefail
source scripts/chain_lib.sh # log, json_true, need_coef, sample_sharded, sampled_teacher_chain
K=${K:-6} STEPS=${STEPS:-30} ETA=${ETA:-1} GUIDE=${GUIDE:-2} # fixed by the plan
SHARDS=${SHARDS:-8}
need_coef
# guided NAME FOLDER: the guided teacher's cache of FOLDER in $W/asc_NAME
guided() {
    sample_sharded "$1" "$2" --model "$COEF" --k "$K" --steps "$STEPS" --eta "$ETA" --guide-steps "$GUIDE" \
        ${SAMPLE_EXTRA:-}
}
sampled_teacher_chain guided g guided
