#!/usr/bin/env bash
# One call of a time-limited GPU command (the lent machines: 10 minutes a command, state in /tmp while the
# machine stays warm) for scripts/ascent_ablation.py. Idempotent: call it again and again until it says
# "driver done". It starts the driver in the background and, for row (d), the diffusion prior beside the
# teacher. A driver that is gone before it finished (the previous call ended, or (d) found no prior yet)
# restarts with --resume: the merged teacher cache is reused and the students continue from their states.
# Before it returns, it packs one tar per student (its weights and resume state) into $OUT.
#
#   ROWS=c bash scripts/device_ablation.sh 560     # as run in the tenth session (carry .gpu/data, .whl)
#   ROWS=d START=.gpu/start.safetensors bash scripts/device_ablation.sh 555   # eleventh: 3 calls, 1300 s
#   DRIVER=scripts/tune_chain.sh ROWS=dt START=...  # a driver script instead of ascent_ablation (fourteenth)
#   DRIVER=scripts/cond_chain.sh ROWS=none PACK=cond.tar START=...  # PACK: more of the driver's files to return
#
# Sessions' lessons, kept here: a call that comes more than ~30 s after the last one finds the machine given
# back (and /tmp gone); a finished background process can stay a zombie there, so "alive" means running.
set -u
T0=$(date +%s)
LIMIT=${1:-540}
ROWS=${ROWS:-c}
SEEDS=${SEEDS:-0,1,2}
SLOTS=${SLOTS:-16}
JITTER=${JITTER:-0.3}  # the teacher's sample diversity (teacher ascend --jitter)
START=${START:-fusionproxy-s}  # the teacher's start; the tenth session's teacher started at the previous bundle:
# git show 012bd18:edgefuse/weights/fusionproxy-s.safetensors > .gpu/start.safetensors; START=.gpu/start.safetensors
[ -f "$START" ] && START=$(realpath "$START")  # a file (else a bundled name), for the driver's own folder
W=${WORK:-/tmp/w}
OUT=${OUT:-$W/out}
mkdir -p "$W" "$OUT"
if [ ! -f /tmp/setup.done ]; then
    source scripts/device_setup.sh && cp -r .gpu/data /tmp/data && touch /tmp/setup.done
    nvidia-smi --query-gpu=name,memory.used --format=csv | tee "$W/gpu.txt"
else
    source scripts/device_env.sh
fi
alive() { # running, not a zombie
    [ -f "$1" ] || return 1
    local state
    state=$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$(cat "$1")/stat" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ]
}
if [[ $ROWS == *d* ]] && [ ! -f "$W/prior/edgefuse_prior.json" ] && ! alive "$W/prior.pid"; then
    R=""
    [ -f "$W/prior.state.pt" ] && R=--resume
    # the chain's prior settings (scripts/teacher_chain.sh) with a fixed step count
    setsid nohup python3 -m edgefuse teacher train-prior --data /tmp/data/roadscene_train -o "$W/prior" \
        --crop 64 --channels 16,32,64,128 --layers-per-block 2 --batch-size 256 --lr 5e-4 --steps 1540 \
        --seed 0 --device cuda --precision bf16 $R >"$W/prior.log" 2>&1 &
    echo $! >"$W/prior.pid"
fi
start_driver() {
    local R=""
    [ -f "$W/driver.started" ] && R=--resume
    touch "$W/driver.started"
    rm -f "$W/driver.rc"
    local cmd="python3 scripts/ascent_ablation.py --work $W --rs /tmp/data/roadscene_train --gpus 1 \
        --slots $SLOTS --rows $ROWS --sets dn --seeds $SEEDS --thermal-level 0.5 --prior $W/prior --no-eval \
        --jitter $JITTER --start $START $R"
    [ -n "${DRIVER:-}" ] && cmd="W=$W SLOTS=$SLOTS JITTER=$JITTER START=$START SEEDS=$SEEDS bash $DRIVER"
    setsid nohup bash -c "$cmd >>$W/driver.log 2>&1; echo \$? >$W/driver.rc" >/dev/null 2>&1 &
    echo $! >"$W/driver.pid"
    echo "[$(($(date +%s) - T0)) s] driver started $R"
}
prior_ready() { [ -n "${DRIVER:-}" ] || [[ $ROWS != *d* ]] || [ -f "$W/prior/edgefuse_prior.json" ]; }
while :; do
    if [ "$(cat "$W/driver.rc" 2>/dev/null)" = 0 ]; then
        echo "driver done"
        break
    fi
    if ! alive "$W/driver.pid" && { prior_ready || [ ! -f "$W/driver.started" ]; }; then start_driver; fi
    [ $(($(date +%s) - T0)) -ge "$LIMIT" ] && break
    sleep 10
done
echo "[$(($(date +%s) - T0)) s] packing"
tail -n 20 "$W/progress.txt" 2>/dev/null
(cd "$W" && tar -czf "$OUT/progress.tgz" ./*.log ./*.txt ./*.json 2>/dev/null)
for row in ${ROWS//,/ }; do
    for s in ${SEEDS//,/ }; do
        ls "$W/${row}_s$s".safetensors* >/dev/null 2>&1 || continue
        (cd "$W" && tar -czf "$OUT/${row}_s$s.tgz" "${row}_s$s".safetensors*)
    done
done
for f in ${PACK:-}; do # other files of the driver's to bring back (e.g. PACK=cond.tar)
    [ -f "$W/$f" ] || continue
    if [ "$(stat -c %s "$W/$f")" -gt 15000000 ]; then # files come back at 16 MiB each at most: cat f.part* > f
        split -b 15000000 -d "$W/$f" "$OUT/$f.part"
    else
        cp "$W/$f" "$OUT/"
    fi
done
if [ -f "$W/prior/edgefuse_prior.json" ] && [ ! -f "$W/prior.sent" ]; then
    tar -cf "$OUT/prior.tar" -C "$W" prior && touch "$W/prior.sent"  # (d) resumes only on this backbone
fi
ls -la "$OUT"
