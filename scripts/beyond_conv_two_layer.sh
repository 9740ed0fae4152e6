#!/usr/bin/env bash
# The runs of docs/beyond/conv_two_layer.md (issue 9), one after the other on one torch thread, then their numbers
# (scripts/beyond_measure.py -> runs/beyond/results.jsonl).  About 25 minutes on a shared 2-core machine.
# Frey Face: set PYRO_AEVB_FREY to frey_rawface.mat (or it is looked up in the cache / downloaded).
set -euo pipefail
export OMP_NUM_THREADS=1
R=runs/beyond
ADAM="--optimizer adam --lr 1e-3 --seed 0 --no-progress"
# MNIST (grey values under a Bernoulli, as the paper), Nz = 20, estimator B, 15 epochs = 750,000 samples
pyro-aevb train --dataset mnist --model mlp --init torch --latent-dim 20 --hidden-dim 500 --elbo analytic $ADAM --epochs 15 --out $R/mnist-mlp
pyro-aevb train --dataset mnist --model mlp --latent-dim 20 --hidden-dim 500 --elbo analytic --optimizer adagrad --lr 0.02 --seed 0 --no-progress --epochs 15 --out $R/mnist-mlp-paper
pyro-aevb train --dataset mnist --model conv --latent-dim 20 --hidden-dim 256 --elbo analytic $ADAM --epochs 15 --out $R/mnist-conv
# two stochastic layers (Burda et al. 2015: 100/50 latents, 200-200/100-100 tanh), dynamically binarized MNIST, 10 epochs
pyro-aevb train --dataset mnist --binarize dynamic --model two_layer --elbo trace $ADAM --epochs 10 --out $R/mnist-two-layer-a
pyro-aevb train --dataset mnist --binarize dynamic --model two_layer --elbo iwae --num-particles 5 $ADAM --epochs 10 --out $R/mnist-two-layer-iwae5
# Frey Face (Gaussian decoder), Nz = 10, 200 epochs = 353,800 samples
pyro-aevb train --dataset frey --model mlp --init torch --latent-dim 10 --hidden-dim 200 --likelihood gaussian --elbo analytic $ADAM --epochs 200 --out $R/frey-mlp
pyro-aevb train --dataset frey --model conv --latent-dim 10 --hidden-dim 200 --likelihood gaussian --elbo analytic $ADAM --epochs 200 --out $R/frey-conv
python scripts/beyond_measure.py $R/mnist-mlp $R/mnist-mlp-paper $R/mnist-conv $R/mnist-two-layer-a $R/mnist-two-layer-iwae5 \
    $R/frey-mlp $R/frey-conv --iw-samples 1000 --num-images 1000 | tee $R/results.jsonl
