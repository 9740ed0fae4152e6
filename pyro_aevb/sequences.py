"""Sequence datasets: every datapoint is a sequence x_{1:T} = (x_1, ..., x_T) of T frames, data ``[N, T, D]``.

A sequence model (the deep Markov model of Krishnan, Shalit & Sontag, 2017, in ``models/dmm.py``, or one of
yours) is an ordinary model/guide pair of the contract (:mod:`pyro_aevb.contract`) whose ``x`` is a minibatch
``[M, T, D]``.  The ``data`` plate is over *sequences*: eq. (8) scales M of the N sequences by N/M, and the
bound per datapoint is the bound of one sequence, L(x_{1:T}) <= log p(x_{1:T}).  Per frame it is L / T,
which is what compares with an i.i.d. model of the same frames (:func:`per_frame`).

From source sequences to windows of T = ``--seq-len`` frames.  A source sequence of F frames (Frey Face's
video, F = 1,965; each sequence of a user's array) is **split in time**: its first F_train = F - F_test frames
are for training, its last F_test = round(f F) frames (f = 0.1) are held out -- later frames never seen in
training, rather than a random 10% of frames that would sit between (near-duplicate) training frames.  Then

    training windows  x_{s+1 : s+T},                 s = 0, 1, ..., F_train - T         (stride 1)
    test windows      x_{F_train+kT+1 : F_train+(k+1)T},  k = 0, ..., floor(F_test / T) - 1  (stride T)

Training windows overlap, so the model sees every start phase (F_train - T + 1 sequences, not F_train / T);
they are not independent, so the plate's N counts windows and sum_i L_i counts an interior frame T times -- a
training objective (with the N(0, I) prior on theta weighted against it), not the log-likelihood of the video.
Test windows do not overlap: every held-out frame is scored at most once, so the per-frame test bound is an
average over distinct frames; the last F_test mod T frames of the tail are left out (neither trained nor
tested on).  :func:`frames_in_time` gives those same training frames and scored test frames as i.i.d. rows,
for a baseline that models frames independently.

Sources (:func:`load_sequences`): ``"frey"`` (one sequence); an array file holding one sequence ``[F, D]``,
sequences ``[N, F, D]`` or sequences of images ``[N, F, H, W]`` (each split in time as above); or an
``.npz`` / ``.pt`` with ``train`` and ``test`` sequences, used as they are (training sequences cut into
stride-1 windows, test sequences into stride-T windows): the way to hold out whole sequences instead.
"""

from pathlib import Path
from typing import Optional, Tuple

import torch

from .data import FREY_IMAGE_SHAPE, Dataset, as_float_tensor, frey_frames, read_array_file, read_uint8
from .errors import AevbInputError
from .inputs import check_finite

TEST_FRACTION = 0.1


def split_in_time(sequences: torch.Tensor, test_fraction: float = TEST_FRACTION) -> Tuple[torch.Tensor, torch.Tensor]:
    """``[S, F, D]`` -> the first F - F_test frames ``[S, F_train, D]`` and the last F_test = round(f F)
    ``[S, F_test, D]`` of every sequence (at least one frame on each side)."""
    frames = sequences.shape[1]
    if frames < 2:
        raise AevbInputError(f"a sequence of {frames} frame(s) cannot be split in time into training and test frames")
    n_test = min(max(1, int(round(frames * test_fraction))), frames - 1)
    return sequences[:, :frames - n_test], sequences[:, frames - n_test:]


def windows(sequences: torch.Tensor, seq_len: int, stride: int) -> torch.Tensor:
    """All windows of ``seq_len`` frames at ``stride`` of every sequence ``[S, F, D]``: ``[S * n, seq_len, D]``,
    n = floor((F - seq_len) / stride) + 1, in order (sequence by sequence, in time)."""
    s, f, d = sequences.shape
    if seq_len > f:
        return sequences.new_zeros((0, seq_len, d))
    return sequences.unfold(1, seq_len, stride).permute(0, 1, 3, 2).reshape(-1, seq_len, d).contiguous()


def _check_seq_len(seq_len: int, train: torch.Tensor, test: torch.Tensor, where: str) -> None:
    if int(seq_len) < 1:
        raise AevbInputError(f"--seq-len must be >= 1 frame, got {seq_len}")
    if seq_len > test.shape[1]:
        raise AevbInputError(f"--seq-len {seq_len} is longer than the {test.shape[1]} held-out test frames of each "
                             f"sequence of {where}: no test window fits; use --seq-len <= {test.shape[1]}")
    if seq_len > train.shape[1]:
        raise AevbInputError(f"--seq-len {seq_len} is longer than the {train.shape[1]} training frames of each "
                             f"sequence of {where}; use --seq-len <= {train.shape[1]}")


def window_dataset(name: str, train: torch.Tensor, test: torch.Tensor, seq_len: int,
                   image_shape: Optional[Tuple[int, int]] = None, info: Optional[dict] = None) -> Dataset:
    """A :class:`~pyro_aevb.data.Dataset` of windows of ``seq_len`` frames: stride 1 over the training sequences
    ``[S, F_train, D]``, stride ``seq_len`` over the test sequences ``[S', F_test, D]``."""
    _check_seq_len(seq_len, train, test, name)
    test_windows = windows(test, seq_len, seq_len)
    info = dict(info or {}, seq_len=int(seq_len), train_frames=int(train.shape[0] * train.shape[1]),
                test_frames_scored=int(test_windows.shape[0] * seq_len))
    return Dataset(name, windows(train, seq_len, 1), test_windows, image_shape, info=info)


def time_split_dataset(name: str, sequences: torch.Tensor, seq_len: int, image_shape=None, info=None,
                       test_fraction: float = TEST_FRACTION) -> Dataset:
    """Split every sequence ``[S, F, D]`` in time, then cut windows (module docstring)."""
    train, test = split_in_time(sequences, test_fraction)
    return window_dataset(name, train, test, seq_len, image_shape, dict(info or {}, split="time"))


def frames_in_time(sequences: torch.Tensor, seq_len: int, test_fraction: float = TEST_FRACTION
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The frames a time-split sequence dataset uses, as i.i.d. rows: every training frame ``[S F_train, D]``
    and exactly the test frames its test windows score ``[S floor(F_test / T) T, D]`` -- the data of an i.i.d.
    baseline (e.g. the paper's VAE) evaluated on the same frames as the sequence model."""
    train, test = split_in_time(sequences, test_fraction)
    _check_seq_len(seq_len, train, test, "the data")
    d = sequences.shape[-1]
    return train.reshape(-1, d), windows(test, seq_len, seq_len).reshape(-1, d)


def as_sequences(array, what: str, uint8: Optional[str] = None) -> Tuple[torch.Tensor, Optional[Tuple[int, int]]]:
    """A user array as float32 sequences ``[S, F, D]`` with the frames' image shape: ``[F, D]`` is one
    sequence, ``[N, F, D]`` N sequences, ``[N, F, H, W]`` N sequences of H x W images (uint8 read as ``uint8``
    says: :func:`pyro_aevb.data.uint8_mode`)."""
    t = as_float_tensor(array, what, uint8)
    if t.dim() not in (2, 3, 4):
        raise AevbInputError(f"{what}: expected sequences of shape [F, D] (one sequence of F frames), [N, F, D] or "
                             f"[N, F, H, W], got {list(t.shape)}")
    if t.numel() < 1:
        raise AevbInputError(f"{what}: empty array of shape {list(t.shape)}")
    check_finite(t, what)
    if t.dim() == 2:
        t = t.unsqueeze(0)
    image_shape = tuple(t.shape[2:]) if t.dim() == 4 else None
    return t.reshape(t.shape[0], t.shape[1], -1).contiguous(), image_shape


def load_sequences(name: str, seq_len: int, path: Optional[str] = None, uint8: Optional[str] = None) -> Dataset:
    """``"frey"`` (the video, split in time) or an array file of sequences, as windows of ``seq_len`` frames;
    ``uint8`` as in :func:`pyro_aevb.data.load_array_file`."""
    if name == "mnist":
        raise AevbInputError("--seq-len cuts sequences of frames into windows; MNIST's images are not a sequence "
                             "(use frey, or an array file of sequences [N, F, D])")
    if name == "frey":
        frames, p = frey_frames(path)
        return time_split_dataset("frey", frames.unsqueeze(0), seq_len, FREY_IMAGE_SHAPE, {"source": str(p)})
    p = Path(name).expanduser()
    obj = read_array_file(p)
    uint8, read = read_uint8(obj, uint8, str(p))
    info = {"source": str(p), **read}
    if isinstance(obj, dict):
        if "train" in obj:
            train, shape = as_sequences(obj["train"], f"{p}[train]", uint8)
            if "test" not in obj:
                return time_split_dataset(p.stem, train, seq_len, shape, info)
            test, _ = as_sequences(obj["test"], f"{p}[test]", uint8)
            if test.shape[-1] != train.shape[-1]:
                raise AevbInputError(f"{p}: train frames have {train.shape[-1]} values but test frames "
                                     f"{test.shape[-1]}")
            return window_dataset(p.stem, train, test, seq_len, shape, dict(info, split="given"))
        if len(obj) != 1:
            raise AevbInputError(f"{p}: expected one array or 'train'/'test' entries, found {sorted(obj)}")
        obj = next(iter(obj.values()))
    sequences, shape = as_sequences(obj, str(p), uint8)
    return time_split_dataset(p.stem, sequences, seq_len, shape, info)


def require_sequences(x: torch.Tensor, what: str) -> None:
    """A sequence model takes a minibatch of sequences ``[M, T, D]``; anything else is one clear error."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise AevbInputError(
            f"the {what} models sequences and takes x of shape [M, T, D] (M sequences of T frames), got "
            f"{list(getattr(x, 'shape', []))}: cut the data into sequences with --seq-len T "
            "(load_dataset(..., seq_len=T))")


def per_frame(value: float, seq_len: Optional[int]) -> Optional[float]:
    """A bound (or log-likelihood) per sequence of ``seq_len`` frames as nats per frame (``None`` for rows)."""
    return None if seq_len is None else value / seq_len
