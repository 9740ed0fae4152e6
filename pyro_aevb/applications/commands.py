"""The applications on the command line: ``pyro-aevb encode|reconstruct|inpaint|denoise|latent-map|interpolate RUN``.

Each loads a run (:func:`pyro_aevb.load_run`), takes images of the run's dataset (or ``--dataset``), writes a
picture (``--out``, default inside the run directory) and prints its numbers -- one JSON line with ``--json``.
The data are checked as ``train`` checks them: the model's data dimension and the likelihood's support.
"""

import json
from pathlib import Path

import pyro

from ..argtypes import at_least_two, picture_path, positive_int, seed
from ..config import RunConfig
from ..contract import check_data_support
from ..data import Dataset
from ..errors import AevbInputError
from ..loading import load_dataset
from ..inputs import condition, evaluation_inputs, rows, taken
from ..runs import load_run
from .denoise import denoise
from .encode import encode
from .inpaint import inpaint
from .interpolate import interpolate
from .latent_map import latent_map
from .masks import parse_mask
from .noise import parse_noise
from .pictures import image_shape_of, picture_shape
from .posterior import PROPOSALS
from .reconstruct import reconstruct_images


def _common(parser, num_images, picture):
    parser.add_argument("run_dir",
                        help="a run directory (pyro-aevb train --out ...)")
    parser.add_argument("--dataset", default=None,
                        help="mnist, frey or an array file (default: the run's dataset)")
    parser.add_argument("--data-path", default=None,
                        help="MNIST data root or frey_rawface.mat path")
    parser.add_argument("--split", default="test", choices=["test", "train"],
                        help="which images (default test)")
    parser.add_argument("--num-images", type=positive_int, default=num_images,
                        help=f"use the first N images of the split (default {num_images or 'all'})")
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--out", default=None,
                        help=f"output path (default RUN_DIR/{picture})")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line with the numbers")


def _sampling(parser):
    parser.add_argument("--num-samples", type=positive_int, default=100,
                        help="K, importance samples of z per image")
    parser.add_argument("--rounds", type=positive_int, default=3,
                        help="encoder rounds: the encoder is rerun on each round's estimate")
    parser.add_argument("--proposal", default="encoder", choices=PROPOSALS,
                        help="encoder: q(z | imputed image), iterated (default); prior: p(z)")


def add_commands(sub) -> None:
    """Add the application subcommands to ``sub`` (argparse subparsers); :data:`HANDLERS` runs them."""
    encode = sub.add_parser("encode", help="posterior means and scales of every image (.npz)")
    _common(encode, None, "latents.npz")

    reconstruct = sub.add_parser("reconstruct", help="images beside their reconstructions; error and bound")
    _common(reconstruct, None, "reconstruct.png")

    inpaint = sub.add_parser("inpaint", help="fill in missing pixels by posterior inference on z")
    _common(inpaint, 1000, "inpaint.png")
    inpaint.add_argument("--mask", required=True,
                         help="missing pixels: top-half, bottom-half, left-half, right-half, random:P or a .npy/.pt "
                              "0/1 array (1 = missing) of shape [D], [H, W], [N, D] or [N, H, W]")
    _sampling(inpaint)

    denoise = sub.add_parser("denoise", help="remove noise by posterior inference on z under a noise model")
    _common(denoise, 1000, "denoise.png")
    denoise.add_argument("--noise", required=True,
                         help="salt-pepper:P (fraction of pixels hit) or gaussian:S (std)")
    _sampling(denoise)

    latent_map = sub.add_parser("latent-map", help="test set in latent space by label, decoded manifold, linear probe")
    _common(latent_map, None, "latent_map.png")
    latent_map.add_argument("--grid", type=positive_int, default=20,
                            help="decoded manifold: grid points per side")
    latent_map.add_argument("--probe-train", type=positive_int, default=5000,
                            help="labelled training images the linear probes are fitted on")
    latent_map.add_argument("--no-labels", action="store_true",
                            help="for data without labels: an uncoloured map and no linear probe")

    interpolate = sub.add_parser("interpolate", help="decoded straight paths between images in latent space")
    _common(interpolate, None, "interpolate.png")
    interpolate.add_argument("--pairs", type=positive_int, default=8,
                             help="paths, between images 2k and 2k+1")
    interpolate.add_argument("--steps", type=at_least_two, default=10,
                             help="frames per path (>= 2)")


# ---------------------------------------------------------------------------------------------- inputs


def _load(args):
    """The run, its data (checked against the model) and the chosen images (with their labels)."""
    run = load_run(args.run_dir, device=args.device)
    if run.guide is None:
        raise AevbInputError(f"the run in {args.run_dir} has no recognition model (guide), which {args.command} "
                             "needs: train it with a guide (e.g. --elbo analytic)")
    if args.dataset is None and args.data_path is None:
        data = run.load_data()
    else:
        device = RunConfig(device=args.device).validate().resolved_device()
        data = load_dataset(args.dataset or run.config.dataset, run.config.binarize, args.data_path,
                            uint8=run.config.uint8).to(device)
    seq_len = data.seq_len or run.config.seq_len
    if seq_len:
        raise AevbInputError(f"{args.command} works on images, but the datapoints of this run are sequences of "
                             f"{seq_len} frames (--seq-len): use evaluate and sample for a sequence model")
    expected = run.config.data_dim
    if expected is not None and data.data_dim != expected:
        raise AevbInputError(f"dataset {data.name!r} has {data.data_dim} values per image but the run's model was "
                             f"trained on {expected}: use data of the run's shape")
    pyro.set_rng_seed(args.seed)  # every Monte Carlo number of the command follows --seed
    inputs = evaluation_inputs(data.inputs(args.split), run.model, run.guide)
    check_data_support(run.model, getattr(data, args.split), f"{data.name} {args.split} data (the run records "
                       f"dataset {run.config.dataset!r}, binarize {run.config.binarize!r}; pass --dataset FILE for "
                       "the data it was trained on)", inputs=inputs)
    x = getattr(data, args.split)
    labels = getattr(data, f"{args.split}_labels")
    if args.num_images is not None:
        x = x[:args.num_images]
        labels = labels[:args.num_images] if labels is not None else None
        inputs = rows(inputs, slice(0, args.num_images))
    # a conditional model's inputs, bound to the chosen rows: the applications call it on those rows
    args.inputs_taken = sorted({*taken(run.model, inputs), *taken(run.guide, inputs)})
    run.model, run.guide = condition(run.model, inputs), condition(run.guide, inputs)
    return run, data, x, labels


def _rows_only(args, what: str) -> None:
    """Refuse a conditional model where the command decodes latents that are not rows of the data."""
    if args.inputs_taken:
        raise AevbInputError(f"{args.command} decodes {what}, which are not rows of the data, and this model takes "
                             f"the conditioning input(s) {', '.join(map(repr, args.inputs_taken))}: draw it from "
                             "Python with pyro_aevb.condition(model, inputs) for the inputs you want, or use sample "
                             "--condition")


def _out(args, default: str) -> Path:
    if not args.out:
        return Path(args.run_dir) / default
    return Path(args.out) if default.endswith(".npz") else picture_path(args.out)


def _clamp(data: Dataset):
    return float(data.train.min()), float(data.train.max())


def _report(args, metrics: dict) -> int:
    if args.json:
        print(json.dumps(metrics))
    else:
        for k, v in metrics.items():
            print(f"{k:30s} {v:.4f}" if isinstance(v, float) else f"{k:30s} {v}")
    return 0


# ---------------------------------------------------------------------------------------------- commands


def _encode(args) -> int:
    run, data, x, labels = _load(args)
    out = _out(args, "latents.npz")
    if out.suffix != ".npz":
        raise AevbInputError(f"--out {out}: encode writes a NumPy .npz archive; give a path ending in .npz")
    codes = encode(run.model, run.guide, x, labels, seed=args.seed)
    codes.save(out)
    picture = codes.save_picture(out.with_suffix(".png"))
    return _report(args, {**codes.metrics(), "labels": labels is not None, "out": str(out), "picture": str(picture)})


def _reconstruct(args) -> int:
    run, data, x, _ = _load(args)
    own = args.dataset is None and args.data_path is None  # else the run's training set is not `data`
    num_data = (data if own else run.load_data()).train.shape[0]  # N_train: the theta-KL of full VB per datapoint
    result = reconstruct_images(run.model, run.guide, x, seed=args.seed, num_data=num_data)
    picture = result.save_picture(_out(args, "reconstruct.png"), picture_shape(data.data_dim, data.image_shape))
    return _report(args, {**result.metrics(), "picture": str(picture)})


def _inpaint(args) -> int:
    run, data, x, _ = _load(args)
    image_shape = image_shape_of(data.data_dim, data.image_shape)  # None: the halves refuse; random:P, files do not
    missing = parse_mask(args.mask, x.shape[0], data.data_dim, image_shape, seed=args.seed).to(x.device)
    result = inpaint(run.model, run.guide, x, missing, data.train.mean(0), args.num_samples, args.rounds,
                     args.proposal, _clamp(data), args.seed)
    picture = result.save_picture(_out(args, "inpaint.png"), picture_shape(data.data_dim, data.image_shape))
    return _report(args, {**result.metrics(), "mask": args.mask, "picture": str(picture)})


def _denoise(args) -> int:
    run, data, x, _ = _load(args)
    low, high = _clamp(data)
    noise = parse_noise(args.noise, low, high)
    result = denoise(run.model, run.guide, x, noise, args.num_samples, args.rounds, args.proposal, (low, high),
                     args.seed)
    picture = result.save_picture(_out(args, "denoise.png"), picture_shape(data.data_dim, data.image_shape))
    return _report(args, {**result.metrics(), "picture": str(picture)})


def _latent_map(args) -> int:
    run, data, x, labels = _load(args)
    _rows_only(args, "a grid of latent values")
    probe_x = probe_labels = None
    if args.no_labels:
        labels = None
    else:
        if labels is None or data.train_labels is None:
            raise AevbInputError(f"dataset {data.name!r} has no labels to colour the map by and to fit the linear "
                                 "probe on: pass --no-labels for an uncoloured map without the probe")
        probe_x, probe_labels = data.train[:args.probe_train], data.train_labels[:args.probe_train]
    result = latent_map(run.model, run.guide, x, labels, probe_x, probe_labels, args.grid, args.seed)
    picture = result.save_picture(_out(args, "latent_map.png"), picture_shape(data.data_dim, data.image_shape))
    return _report(args, {**result.metrics(), "picture": str(picture)})


def _interpolate(args) -> int:
    run, data, x, _ = _load(args)
    _rows_only(args, "points between two codes")
    if x.shape[0] < 2 * args.pairs:
        raise AevbInputError(f"{args.pairs} pairs need {2 * args.pairs} images, but only {x.shape[0]} were chosen: "
                             "lower --pairs or raise --num-images")
    pairs = x[:2 * args.pairs]
    result = interpolate(run.model, run.guide, pairs[0::2], pairs[1::2], args.steps, args.seed)
    picture = result.save_picture(_out(args, "interpolate.png"), picture_shape(data.data_dim, data.image_shape))
    return _report(args, {**result.metrics(), "picture": str(picture)})


#: subcommand -> handler(args) -> exit status
HANDLERS = {"encode": _encode, "reconstruct": _reconstruct, "inpaint": _inpaint, "denoise": _denoise,
            "latent-map": _latent_map, "interpolate": _interpolate}
