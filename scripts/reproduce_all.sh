#!/usr/bin/env bash
# Regenerate every figure of the paper at one budget: quick (minutes, CI), medium, or paper (~1e8 samples/run).
# Frey Face: frey_rawface.mat is found through $PYRO_AEVB_FREY, the cache, ../shared/data beside the checkout,
# or downloaded (or pass --data-path FILE to each command).
# Outputs land in runs/reproduce/<figure>_<dataset>_<budget>/ (PNG, curves.csv, results.json, results.md).
set -euo pipefail
BUDGET="${1:-quick}"
pyro-aevb reproduce fig2 --dataset mnist --budget "$BUDGET"
pyro-aevb reproduce fig2 --dataset frey --budget "$BUDGET"
pyro-aevb reproduce fig3 --budget "$BUDGET"
pyro-aevb reproduce fig4 --dataset mnist --budget "$BUDGET"
pyro-aevb reproduce fig4 --dataset frey --budget "$BUDGET"
pyro-aevb reproduce fig5 --dataset mnist --budget "$BUDGET"
