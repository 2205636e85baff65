#!/usr/bin/env bash
# Does --thermal-level pin down what students do on dark real night pairs? Each checkpoint given is
# fine-tuned twice with the teacher-free loss, the same draws and steps, once without and once with the dark
# thermal augmentation; both groups are then scored on RoadScene val + LLVIP and compared over the starts
# (scripts/seed_compare.py: the i-th checkpoint is "seed" i of both groups).
#
#   WORK=runs/thermal_level scripts/thermal_level_finetune.sh runs/b_s1.safetensors runs/c_s1.safetensors ...
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_RS=${DATA_RS:-../shared/data/roadscene_train}
DATA_LLVIP=${DATA_LLVIP:-../shared/data/llvip_sample}
WORK=${WORK:-runs/thermal_level}
EPOCHS=${EPOCHS:-6}      # 6 × 134 × 8 / 16 = 402 steps
PY=${PYTHON:-python}
mkdir -p "$WORK"
i=0
students=()
for ckpt in "$@"; do
  for arm in ctl aug; do
    extra=(--thermal-level 0); [[ $arm == aug ]] && extra=(--thermal-level 0.5)  # train's default is 0.5 now
    $PY -m edgefuse train --data "$DATA_RS" --init "$ckpt" -o "$WORK/${arm}_s$i.safetensors" --epochs "$EPOCHS" \
      --repeat 8 --batch-size 16 --crop 128 --lr 3e-4 --night 0.5 "${extra[@]}" --workers 0 --seed 0 \
      > "$WORK/${arm}_s$i.log" 2>&1 &
    students+=(--student "${arm}_s$i=$WORK/${arm}_s$i.safetensors")
  done
  wait  # the two arms of one start side by side
  i=$((i + 1))
done
$PY scripts/evaluate_students.py --rs "$DATA_RS" --extra "$DATA_LLVIP" "${students[@]}" --json "$WORK/eval.json"
(cd scripts && $PY seed_compare.py --eval "../$WORK/eval.json" --compare aug=ctl --md "../$WORK/compare.md" \
  --json "../$WORK/compare.json")
