#!/usr/bin/env bash
# The runs of docs/gallery.md: the paper's VAE and the three examples/ models at the same budget (Nz = 20, 500 tanh
# units, Adam 1e-3, M = 100, estimator A, 5 epochs = 250,000 samples, seed 0), one after the other on one torch
# thread; then each run's test bound (whole test set) and importance-sampled log p(x) (K = 5000, first ROWS test
# rows) into docs/results/gallery/<name>.json, and its samples into docs/img/gallery/<name>.png.  About 35 minutes on
# a shared 2-core machine (the VampPrior's K = 500 pseudo-inputs through the encoder at every step are half of it).
set -euo pipefail
export OMP_NUM_THREADS=1
R=${R:-runs/gallery}
EPOCHS=${EPOCHS:-5}
ROWS=${ROWS:-500}
SAME="--dataset mnist --latent-dim 20 --hidden-dim 500 --elbo trace --optimizer adam --lr 1e-3 --batch-size 100 --epochs $EPOCHS --seed 0 --no-progress"
mkdir -p docs/results/gallery docs/img/gallery
for name in vae cvae iaf vampprior; do
    if [ $name = vae ]; then what="--init torch"; else what="--model examples/$name.py:Model --guide examples/$name.py:Guide"; fi
    command="pyro-aevb train $SAME $what --out $R/$name"
    [ -f $R/$name/checkpoint.pt ] || $command
    pyro-aevb sample $R/$name --out docs/img/gallery/$name.png
    python scripts/gallery_loglik.py $R/$name --rows $ROWS --iw-samples 5000 --command "$command" \
        --out docs/results/gallery/$name.json
done
