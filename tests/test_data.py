"""Datasets: the paper's MNIST split, Frey Face, binarization and user arrays."""

import numpy as np
import pytest
import torch

from pyro_aevb import AevbInputError, load_array_file
from pyro_aevb.data import MNIST_PKL_SHA256, apply_binarization, mnist_pkl_path, sha256_file
from pyro_aevb.loading import load_dataset
from pyro_aevb.plots import save_image_grid


def test_mnist_is_the_papers_split(mnist):
    """mnist.pkl.gz: 50,000 train / 10,000 test images, grey values k/256 in [0, 1)."""
    assert mnist.train.shape == (50000, 784) and mnist.test.shape == (10000, 784)
    assert mnist.train.dtype == torch.float32
    assert mnist.train.min() == 0 and mnist.train.max() == 255 / 256
    assert torch.equal(mnist.train * 256, (mnist.train * 256).round())
    assert sha256_file(mnist_pkl_path(download=False)) == MNIST_PKL_SHA256


def test_frey_split_is_fixed(frey):
    """1,965 faces of 28x20 in [0, 1]; the random 10% hold-out is the same every time (split_seed=0)."""
    from tests.conftest import FREY_PATH
    from pyro_aevb import load_frey

    assert frey.train.shape == (1769, 560) and frey.test.shape == (196, 560)
    assert frey.image_shape == (28, 20)
    assert 0 <= frey.train.min() and frey.train.max() <= 1
    again = load_frey(str(FREY_PATH))
    assert torch.equal(again.test, frey.test)
    assert not torch.equal(load_frey(str(FREY_PATH), split_seed=1).test, frey.test)


def test_frey_missing_file():
    with pytest.raises(AevbInputError, match="not found"):
        load_dataset("frey", path="/nonexistent/frey_rawface.mat")


def test_binarization(mnist_small):
    static = apply_binarization(mnist_small, "static")
    assert set(static.train.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(static.train, apply_binarization(mnist_small, "static").train)  # fixed seed
    # E[Bernoulli(p)] = p: the binarized mean image matches the grey one within sampling error
    # (5,000 draws per pixel: standard error <= 0.5/sqrt(5000) = 0.007; allow 5 of them)
    assert (static.train.mean(0) - mnist_small.train.mean(0)).abs().max() < 0.035
    dynamic = apply_binarization(mnist_small, "dynamic")
    assert dynamic.binarize == "dynamic" and torch.equal(dynamic.train, mnist_small.train)
    assert set(dynamic.test.unique().tolist()) == {0.0, 1.0}


def test_user_arrays(tmp_path):
    """[N, H, W] uint8 arrays become [N, H*W] floats / 255 (the default reading, announced); npz train/test pairs
    are kept as given."""
    images = np.random.default_rng(0).integers(0, 256, size=(50, 6, 5), dtype=np.uint8)
    np.save(tmp_path / "a.npy", images)
    with pytest.warns(RuntimeWarning, match="uint8"):
        ds = load_array_file(str(tmp_path / "a.npy"))
    assert ds.image_shape == (6, 5) and ds.data_dim == 30
    assert ds.train.shape[0] + ds.test.shape[0] == 50 and ds.test.shape[0] == 5
    assert ds.train.max() <= 1.0
    np.savez(tmp_path / "b.npz", train=np.random.rand(10, 3), test=np.random.rand(4, 3))
    ds = load_array_file(str(tmp_path / "b.npz"))
    assert ds.train.shape == (10, 3) and ds.test.shape == (4, 3)
    torch.save({"train": torch.rand(8, 2), "test": torch.rand(3, 3)}, tmp_path / "c.pt")
    with pytest.raises(AevbInputError, match="dimensions"):
        load_array_file(str(tmp_path / "c.pt"))
    (tmp_path / "d.csv").write_text("1,2\n")
    with pytest.raises(AevbInputError, match="unsupported"):
        load_array_file(str(tmp_path / "d.csv"))


def test_rows_without_an_image_shape_are_drawn_square_or_refused_with_the_fix(tmp_path):
    """A grid of 36-column rows is drawn 6x6; 30 columns (rows [N, 30] from a file) have no square shape: the
    refusal says how to give one (rows saved as [N, H, W])."""
    assert save_image_grid(torch.rand(4, 36), None, tmp_path / "square.png").exists()
    with pytest.raises(AevbInputError, match=r"no image shape known \(a data file of rows \[N, H, W\] gives one"):
        save_image_grid(torch.rand(4, 30), None, tmp_path / "flat.png")
