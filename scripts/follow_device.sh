#!/usr/bin/env bash
# Row t of docs/results/session22_follow.md ("The next device run"), on one GPU machine, as the DRIVER of
# scripts/device_ablation.sh (called again until it says "driver done"; every stage skips what an earlier call
# finished): the polished coefficient teacher's dn cache, sampled again (K, 50 DDIM steps, eta 1, POLISH: the
# twenty-first session's settings), then the polished teacher's row (d) students (runs/polish22/d_s*.tgz)
# fine-tuned on it with the teacher's terms (distill --init, lr 5e-4, 20 epochs; variance pixels and routed
# features kept, source SSIM at 0.05, the gradient and intensity terms and --thermal-level off), then scored on
# both held-out sets.
#
# The model travels alone in a first call (runs/coef20.tar, 55 MB; 64 MiB with anything beside it):
#   run(carry=["runs/coef20.tar"]): mkdir -p /tmp/w && tar -xf runs/coef20.tar -C /tmp/w
# and the next at once, with the prior (routing) and the students to start from:
#   run(carry=[".gpu", ".whl", "runs/polish22"]): mkdir -p /tmp/w && \
#   { [ -d /tmp/w/prior ] || tar -xf .gpu/prior1540.tar -C /tmp/w; } && \
#   for s in 0 1 2; do [ -f /tmp/w/d_s$s.safetensors ] || tar -xzf runs/polish22/d_s$s.tgz -C /tmp/w; done && \
#   DRIVER=scripts/follow_device.sh ROWS=t START=.gpu/start.safetensors bash scripts/device_ablation.sh 540
# then the DRIVER line alone until "driver done". Budget: ~450 s the cache, ~300 s the fine-tunes, ~70 s scoring.
set -euo pipefail
source scripts/chain_lib.sh # log, need_coef, sample_polished, distil_students, score_students
K=${K:-6} STEPS=${STEPS:-50} ETA=${ETA:-1} POLISH=${POLISH:-60} # the polished teacher's, fixed
SHARDS=${SHARDS:-16}
need_coef
for s in ${SEEDS//,/ }; do
    [ -f "$W/d_s$s.safetensors" ] || { log "no start $W/d_s$s.safetensors (runs/polish22/d_s$s.tgz)"; exit 1; }
done
[ -d "$W/dn" ] || python3 scripts/night_copies.py --data "$RS" --out "$W/dn" --dark-thermal >/dev/null
sample_polished p_dn "$W/dn"
# the teacher's terms and a small source-SSIM term (0.05: session22_follow.md chose it on training pairs, its
# fourth amendment), the gradient and intensity terms off
TERMS=${TERMS:-"--w-source-ssim 0.05 --w-gradient 0 --w-intensity 0 --thermal-level 0"}
distil_students t "$W/asc_p_dn" 1 --variant "t=d:--init $W/d_s{seed}.safetensors --lr 5e-4 --epochs 20 $TERMS"
score_students follow t
log "follow chain done"
