# Two commands for a fresh machine (see README.md):
#   make run    -- venv + install + MNIST + the paper's MNIST configuration for 40 epochs (2e6 samples, ~3 minutes on 2 cores), then its
#                  samples, reconstructions, latent map and bound curve
#   make test   -- venv + install + the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EPOCHS ?= 40
RUN    ?= runs/mnist-paper

.PHONY: install run test test-slow clean

# constraints.txt pins the exact versions the suite runs on; pyproject.toml keeps the ranges (docs/install.md)
$(BIN)/pyro-aevb: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,docs]'
	touch $@

install: $(BIN)/pyro-aevb

# Paper, section 5: Nz = 20, 500 tanh hidden units, Bernoulli decoder, Adagrad (step 0.02), M = 100, L = 1,
# weight decay = N(0, I) prior.  A second `make run` continues the same run (--resume) up to EPOCHS.
run: install
	$(BIN)/pyro-aevb data mnist
	$(BIN)/pyro-aevb train --dataset mnist --latent-dim 20 --hidden-dim 500 --likelihood bernoulli \
		--elbo analytic --optimizer adagrad --lr 0.02 --init paper --batch-size 100 --epochs $(EPOCHS) --seed 0 \
		--out $(RUN) $(if $(wildcard $(RUN)/checkpoint.pt),--resume,)
	$(BIN)/pyro-aevb evaluate $(RUN)
	$(BIN)/pyro-aevb sample $(RUN) --out $(RUN)/samples.png
	$(BIN)/pyro-aevb reconstruct $(RUN) --out $(RUN)/reconstructions.png
	$(BIN)/pyro-aevb latent-map $(RUN) --out $(RUN)/latent_map.png
	$(BIN)/pyro-aevb plot $(RUN) --out $(RUN)/bound.png

test: install
	$(BIN)/pyro-aevb data mnist
	$(BIN)/python -m pytest -q -n 2 --durations=15

# The documentation site (docs/, Sphinx + MyST): docs/_build/html/index.html; warnings are errors.
.PHONY: docs
docs: install
	$(BIN)/python -m sphinx -b html -W --keep-going -j 1 -q docs docs/_build/html

test-slow: install
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf build dist *.egg-info .pytest_cache
