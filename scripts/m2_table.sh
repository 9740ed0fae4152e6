#!/usr/bin/env bash
# The runs of docs/beyond/m2.md: M2 with 100, 600, 1000 and 3000 MNIST labels (6 epochs = 300,000 samples each,
# one torch thread), their test error (`evaluate --json`), the supervised baseline on the same labels, and the
# class-conditional samples.  A run directory that holds a run is continued (--resume), so the script can be
# stopped and started again.  Outputs in runs/m2-<N>/ and runs/m2_table.jsonl.  Usage: scripts/m2_table.sh [N ...]
set -euo pipefail
export OMP_NUM_THREADS=1
LABELS="${*:-100 600 1000 3000}"
for n in $LABELS; do
  resume=""
  [ -f "runs/m2-$n/checkpoint.pt" ] && resume="--resume"
  pyro-aevb train --model m2 --labels "$n" --latent-dim 50 --hidden-dim 500 --activation softplus \
      --model-kwargs '{"hidden_dims": [128]}' --optimizer adam --lr 3e-3 --epochs 6 --seed 0 --no-progress \
      --out "runs/m2-$n" $resume > /dev/null
  result=$(pyro-aevb evaluate "runs/m2-$n" --json)
  baseline=$(python scripts/m2_baseline.py --labels "$n" --hidden-dim 500 --activation softplus --json)
  echo "{\"labels\": $n, \"evaluate\": $result, \"baseline\": $baseline}" | tee -a runs/m2_table.jsonl
done
pyro-aevb sample "runs/m2-$(echo $LABELS | awk '{print $NF}')" --out docs/img/beyond/m2_analogies.png
