#!/usr/bin/env bash
# Row t of docs/results/session22_follow.md ("The next device run"), on one GPU machine, as the DRIVER of
# scripts/device_ablation.sh (called again until it says "driver done"; every stage skips what an earlier call
# finished): the polished coefficient teacher's dn cache (K, 50 DDIM steps, eta 1, POLISH: the twenty-first
# session's settings), its row (d) students with the bundled recipe (p, as in the twenty-first session), then
# those fine-tuned on the same cache with the teacher's terms (distill --init, lr 5e-4, 20 epochs; variance
# pixels and routed features kept, source SSIM at 0.05, the gradient and intensity terms and --thermal-level
# off), both rows scored on both held-out sets, and last the teacher itself on them (scripts/teacher_rule.py).
# The twenty-second session's p (runs/polish22) and model (runs/coef20.tar) were lost with the development VM;
# the twenty-third rebuilt the model (docs/results/session23_rebuild.md), so p is trained here again.
#
# The model travels alone in a first call (runs/coef23.tar, 57 MB; 64 MiB with anything beside it):
#   run(carry=["runs/coef23.tar"]): mkdir -p /tmp/w && tar -xf runs/coef23.tar -C /tmp/w
# and the next at once, with the prior (routing):
#   run(carry=[".gpu", ".whl"]): mkdir -p /tmp/w && { [ -d /tmp/w/prior ] || tar -xf .gpu/prior1540.tar -C /tmp/w; } && \
#   DRIVER=scripts/follow_device.sh ROWS=d,t START=.gpu/start.safetensors bash scripts/device_ablation.sh 540
# then the DRIVER line alone until "driver done". The students' states come back each call (d_s*.tgz,
# t_s*.tgz); a later session unpacks them into /tmp/w before its DRIVER line, and the cache is sampled again.
# Budget: ~450 s the cache, ~1150 s row (d), ~380 s the fine-tunes, ~70 s scoring, ~250 s the teacher.
set -euo pipefail
source scripts/chain_lib.sh # log, need_coef, dn_copies, sample_polished, distil_students, score_students
K=${K:-6} STEPS=${STEPS:-50} ETA=${ETA:-1} POLISH=${POLISH:-60} # the polished teacher's, fixed
SHARDS=${SHARDS:-16}
need_coef
dn_copies
sample_polished p_dn "$W/dn"
distil_students d "$W/asc_p_dn" # p: the bundled recipe (the twenty-first session's row (d))
# the teacher's terms and a small source-SSIM term (0.05: session22_follow.md chose it on training pairs, its
# fourth amendment), the gradient and intensity terms off
TERMS=${TERMS:-"--w-source-ssim 0.05 --w-gradient 0 --w-intensity 0 --thermal-level 0"}
distil_students t "$W/asc_p_dn" 1 --variant "t=d:--init $W/d_s{seed}.safetensors --lr 5e-4 --epochs 20 $TERMS"
score_students follow dt
heldout_teacher polish p sample_polished
judge_teacher polish # the rebuilt model, under the rule that judged the twenty-first session's
log "follow chain done"
