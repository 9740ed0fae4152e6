"""Shared fixtures: real data (MNIST subset, Frey Face) and a fixed global seed per test."""

import os
from pathlib import Path

# One thread per test process: `make test` runs two pytest workers (pytest-xdist) on the two cores,
# and notebook kernels / torchrun children inherit this instead of oversubscribing the machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pyro
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FREY_PATH = Path(os.environ.get("PYRO_AEVB_FREY", ROOT.parent / "shared" / "data" / "frey_rawface.mat"))

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_and_validate():
    pyro.set_rng_seed(0)
    pyro.enable_validation(True)
    yield


@pytest.fixture(scope="session")
def mnist():
    from pyro_aevb import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def mnist_small(mnist):
    """The first 5,000 training and 1,000 test images of MNIST (grey values)."""
    from pyro_aevb import Dataset

    return Dataset("mnist", mnist.train[:5000].clone(), mnist.test[:1000].clone(), (28, 28))


@pytest.fixture(scope="session")
def frey():
    from pyro_aevb import load_frey

    if not FREY_PATH.exists():
        pytest.fail(f"Frey Face file missing at {FREY_PATH} (CI provides ../shared/data/frey_rawface.mat)")
    return load_frey(str(FREY_PATH))
