#!/usr/bin/env bash
# What the device chains (cond_chain.sh, mix_chain.sh, coef_chain.sh, guided_chain.sh, polish_chain.sh) share;
# source it first.
# The settings every chain reads: W (the work folder), START and the ascent's SLOTS / JITTER / SEEDS from
# scripts/device_ablation.sh; the device's copies of the data (RS, LLVIP) and DEVICE, overridable for a CPU check
: "${W:?}" "${SLOTS:=16}" "${JITTER:=0.3}" "${START:?}" "${SEEDS:=0,1,2}"
RS=${RS:-/tmp/data/roadscene_train}
LLVIP=${LLVIP:-/tmp/data/llvip_sample}
DEVICE=${DEVICE:-cuda}
EF=(python3 -m edgefuse)
log() { echo "[$(date +%T)] $*" >>"$W/progress.txt"; }
# json_true FILE KEY: succeeds when FILE holds a JSON object whose KEY is true (fails if FILE is missing)
json_true() {
    python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))[sys.argv[2]] else 1)' "$1" "$2" 2>/dev/null
}
# trained DIR: a train-cond model directory whose schedule is complete (a time-limited call leaves it partial)
trained() { json_true "$1/edgefuse_conditional.json" complete; }
# judge_teacher NAME: scripts/teacher_rule.py on $W/NAME_teacher_{rsval,llvip}.json into $W/NAME_rule.json;
# ends the chain (exit 0, no students) unless the teacher is worth distilling or GATE=off
judge_teacher() {
    if [ ! -f "$W/$1_rule.json" ]; then
        python3 scripts/teacher_rule.py --score "rsval=$W/$1_teacher_rsval.json" \
            --score "llvip=$W/$1_teacher_llvip.json" --json "$W/$1_rule.json" >"$W/$1_rule.log" 2>&1 || true
        log "rule: $(tail -n 1 "$W/$1_rule.log")"
    fi
    if ! json_true "$W/$1_rule.json" worth_distilling && [ "${GATE:-on}" != off ]; then
        log "$1 chain done: not worth distilling, no students"
        exit 0
    fi
}
# score_teacher NAME SET CACHE: a teacher's CACHE of a held-out SET (rsval: RoadScene's val split in
# $W/data_rsval; llvip) scored into $W/NAME_teacher_SET.json, and its spread against the shipped student's
# error (Spearman rho, item 2) into $W/NAME_spread_SET.json with maps; needs RS and LLVIP
score_teacher() {
    local name=$1 set=$2 cache=$3 folder=$LLVIP data=$LLVIP val=()
    [ "$set" = rsval ] && folder=$W/data_rsval data=$RS val=(--val-split)
    python3 scripts/spread_error.py --cache "$cache" --data "$folder" --student d=fusionproxy-s \
        --json "$W/${name}_spread_$set.json" --maps "$W/${name}_${set}_spread_maps.jpg" \
        >"$W/${name}_spread_$set.log" 2>&1
    python3 scripts/score_cache.py --cache "$cache" --data "$data" "${val[@]}" --workers 12 --sample-metrics \
        --json "$W/${name}_teacher_$set.json.tmp" >"$W/${name}_score_$set.log" 2>&1
    mv "$W/${name}_teacher_$set.json.tmp" "$W/${name}_teacher_$set.json"
    log "$set: $(tail -n 1 "$W/${name}_score_$set.log")"
}
# score_students NAME ROWS: the students $W/<row>_s*.safetensors of ROWS (a glob class, e.g. cd) beside the
# shipped one, on RoadScene val and LLVIP, into $W/NAME_students.json
score_students() {
    [ -f "$W/$1_students.json" ] && return 0
    local students=() f
    for f in "$W"/["$2"]_s*.safetensors; do students+=(--student "$(basename "$f" .safetensors)=$f"); done
    python3 scripts/evaluate_students.py --rs "$RS" --extra "$LLVIP" --student shipped=fusionproxy-s \
        "${students[@]}" --workers 12 --json "$W/$1_students.json" >"$W/$1_students.log" 2>&1
    log "students scored"
}
# train_teacher NAME ARGS...: teacher train-cond on the dn folder's ascent cache into $W/NAME (resumable over
# calls; exits 3 while its schedule is not complete, so the next call resumes it), then $W/NAME.tar
train_teacher() {
    local name=$1 r=()
    shift
    trained "$W/$name" && return 0
    [ -f "$W/$name.state.pt" ] && r=(--resume) # a first call sizes the schedule to the minutes
    log "train-cond $name ${r[*]}"
    python3 -m edgefuse teacher train-cond --data "$W/dn" --cache "$W/asc_dn" -o "$W/$name" --val-fraction 0 \
        --device "$DEVICE" --precision bf16 --seed 0 "$@" "${r[@]}" 2>&1 | tr '\r' '\n' | sed '/━/d' \
        >>"$W/${name}_train.log"
    trained "$W/$name" || exit 3
    tar -cf "$W/$name.tar" -C "$W" "$name"
    log "trained: $(tail -n 1 "$W/${name}_train.log")"
}
# distil_students ROWS CACHE [GPUS [ARGS...]]: ascent_ablation.py's students of ROWS (e.g. c,d) from the dn
# CACHE, with the bundled recipe and the diffusion prior $W/prior routing row (d); ARGS go to ascent_ablation.py
# as they are (e.g. --variant 't=d:...'); resumable, exits 3 until done; one done mark per ROWS (a chain may
# train one row from another's students)
distil_students() {
    [ -f "$W/students_$1.done" ] && return 0
    python3 scripts/ascent_ablation.py --work "$W" --rs "$RS" --llvip "$LLVIP" --gpus "${3:-1}" --slots "$SLOTS" \
        --rows "$1" --sets '' --dn-cache "$2" --prior "$W/prior" --thermal-level 0.5 --jitter "$JITTER" \
        --start "$START" --seeds "$SEEDS" --no-eval --device "$DEVICE" --resume ${STUDENT_EXTRA:-} "${@:4}" \
        >>"$W/students_chain.log" 2>&1 || exit 3
    touch "$W/students_$1.done"
    log "students $1 done"
}
# sample_sharded NAME FOLDER ARGS...: `teacher sample-cond ARGS...` on FOLDER into $W/asc_NAME, in SHARDS
# processes on the one GPU (split and merged as ascent_ablation.py splits and merges); resumable pair by pair.
# TEACHER=ascend runs `teacher ascend ARGS...` instead
sample_sharded() {
    local name=$1 folder=$2 d pids=() p
    shift 2
    [ -f "$W/asc_$name/manifest.json" ] && return 0
    python3 - "$W" "$name" "$folder" "${SHARDS:-8}" <<'PY'
import sys
from pathlib import Path

sys.path.insert(0, "scripts")
from ascent_ablation import shard

shard(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), None, int(sys.argv[4]))
PY
    for d in "$W/$name"[0-9]*; do
        [ -f "$W/asc_${d##*/}/manifest.json" ] && continue
        python3 -m edgefuse teacher "${TEACHER:-sample-cond}" --data "$d" -o "$W/asc_${d##*/}" --device "$DEVICE" \
            --resume "$@" \
            2>&1 | tr '\r' '\n' | sed '/━/d' >"$W/${d##*/}.log" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || exit 3; done
    python3 - "$W" "$name" "$folder" <<'PY'
import sys
from pathlib import Path

sys.path.insert(0, "scripts")
from ascent_ablation import merge

work, name = Path(sys.argv[1]), sys.argv[2]
merge(work, name, sorted(work.glob(f"{name}[0-9]*")), Path(sys.argv[3]))
PY
    log "sampled $name: $(grep -h wrote "$W/$name"[0-9]*.log | tail -n 1)"
}
# sample_polished NAME FOLDER: the polished coefficient teacher ($COEF; K, STEPS, ETA, POLISH) of FOLDER in
# $W/asc_NAME (sample_sharded's processes)
sample_polished() {
    sample_sharded "$1" "$2" --model "$COEF" --k "$K" --steps "$STEPS" --eta "$ETA" --polish-steps "$POLISH" \
        ${SAMPLE_EXTRA:-}
}
# sampled_teacher_chain NAME PREFIX SAMPLER: what a sampled teacher's chain does after its own stages. SAMPLER
# PREFIX_SET FOLDER writes $W/asc_PREFIX_SET; RoadScene val and LLVIP are sampled, scored and judged
# (judge_teacher ends the chain unless it is worth distilling), then dn and the row (d) students
sampled_teacher_chain() {
    local name=$1 prefix=$2 sampler=$3
    heldout_teacher "$@"
    judge_teacher "$name"
    dn_copies
    "$sampler" "${prefix}_dn" "$W/dn"
    distil_students d "$W/asc_${prefix}_dn"
    score_students "$name" d
    log "$name chain done"
}
# heldout_teacher NAME PREFIX SAMPLER: SAMPLER's caches of RoadScene val and LLVIP ($W/asc_PREFIX_SET), each
# scored (score_teacher) into $W/NAME_teacher_SET.json
heldout_teacher() {
    local name=$1 prefix=$2 sampler=$3 set
    [ -d "$W/data_rsval" ] || python3 scripts/val_folder.py "$RS" "$W/data_rsval"
    for set in rsval llvip; do
        [ -f "$W/${name}_teacher_$set.json" ] && continue
        "$sampler" "${prefix}_$set" "$([ $set = rsval ] && echo "$W/data_rsval" || echo "$LLVIP")"
        score_teacher "$name" $set "$W/asc_${prefix}_$set"
    done
}
# dn_copies: $W/dn, RoadScene's training pairs and their dark-thermal night copies (the students' set)
dn_copies() {
    [ -d "$W/dn" ] || python3 scripts/night_copies.py --data "$RS" --out "$W/dn" --dark-thermal >/dev/null
}
# need_coef: the coefficient teacher in $COEF (default $W/coef), or the chain ends (exit 1)
need_coef() {
    COEF=${COEF:-$W/coef}
    [ -f "$COEF/edgefuse_conditional.json" ] && return 0
    log "no coefficient teacher in $COEF (the first call unpacks the model: runs/coef23.tar)"
    exit 1
}
