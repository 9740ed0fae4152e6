"""The ``pyro-aevb`` command line: a thin layer over :mod:`pyro_aevb.runs`.

    pyro-aevb train --dataset mnist --latent-dim 20 --hidden-dim 500 --likelihood bernoulli \\
        --elbo analytic --optimizer adagrad --lr 0.02 --batch-size 100 --epochs 2 --seed 0 --out runs/x
    pyro-aevb train ... --out runs/x --resume        # continue a killed or finished run
    pyro-aevb evaluate runs/x --json
    pyro-aevb sample runs/x --out samples.png
    pyro-aevb data mnist                             # fetch and verify a dataset
    pyro-aevb inpaint runs/x --mask top-half --json  # and encode, reconstruct, denoise, latent-map, interpolate

Every anticipated failure prints one line ``pyro-aevb: error: ...`` and exits with a documented status
(:mod:`pyro_aevb.errors`): 2 bad input, 3 training diverged, 4 run directory locked by another process,
5 a file could not be written or read (disk full, ...), 130 interrupted (Ctrl-C or SIGTERM); anything
else is a bug, reported on one line with status 70 (``PYRO_AEVB_DEBUG=1`` shows the traceback).
"""

import argparse
import os
import shlex
import signal
import sys
import warnings
from pathlib import Path

import pyro
import torch

from pyro_aevb import guides, models

from .applications.commands import HANDLERS as APPLICATIONS, add_commands
from .argtypes import nonnegative_int, picture_path, positive_float, positive_int, seed
from .checkpoint import CHECKPOINT, dumps, read_metrics
from .config import RunConfig
from .contract import check_model_guide, inspect_model
from .data import BINARIZE_MODES, UINT8_MODES, load_frey, load_mnist
from .distributed import init_distributed
from .errors import AevbError, AevbInputError, Interrupted, StorageError
from .evaluation.full_vb import posterior_predictive_log_likelihood, predictive_means
from .evaluation.sampling import conditional_means, discrete_latent, num_values, prior_means
from .evaluation.terms import latent_site_terms
from .guides import GUIDE_NAMES
from .infer.elbo import ESTIMATORS
from .infer.importance import log_likelihood
from .inputs import evaluation_inputs, taken
from .mlflow_tracking import MLflowCallback, finish_all
from .models import LIKELIHOODS
from .nn import INITS
from .plots import plot_bound_curve, save_image_grid
from .registry import SHAPE_SETTINGS, lookup, model_names
from .reproduce import DEFAULT_DATASET, reproduce, sweep_specs
from .reproduce.sweep import check_manifest, is_finished
from .optimizers import check_optimizer_kwargs, check_rates
from .schedules import SCHEDULES, check_schedule
from .runs import INHERITED_ON_RESUME, apply_settings, evaluate_run, load_run, resumed_config, train
from .sequences import per_frame
from .specs import parse_kwargs
from .tensorboard import TensorBoardCallback
from .threads import local_jobs, set_threads
from .trainer import changeable_on_resume


INTERNAL_ERROR = 70  # EX_SOFTWARE: an unanticipated failure (a bug)


class _Given(argparse.Action):
    """Store the value and remember that the flag was given (a shape flag then reaches a class of yours)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = sorted(set(getattr(namespace, "given", [])) | {self.dest})


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints the usage block otherwise)
        raise AevbInputError(message)


def build_parser() -> argparse.ArgumentParser:
    default = RunConfig()
    parser = _Parser(prog="pyro-aevb", description="Auto-Encoding Variational Bayes in Pyro")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train a VAE with Algorithm 1")
    train.add_argument("--dataset", default=default.dataset,
                       help="mnist, frey, or a path to a .npy/.npz/.pt array [N, D] or [N, H, W]")
    train.add_argument("--data-path", default=None,
                       help="MNIST data root or frey_rawface.mat path")
    train.add_argument("--binarize", default=default.binarize, choices=BINARIZE_MODES)
    train.add_argument("--uint8", default=None, choices=UINT8_MODES,
                       help="what uint8 values of an array file are: pixels (divided by 255) or counts (kept as "
                            "0..255); not given: pixels, with a warning")
    train.add_argument("--seq-len", type=positive_int, default=None, metavar="T",
                       help="datapoints are sequences of T frames [T, D] for a sequence model (--model dmm): frey's "
                            "video or an array of sequences [F, D], [N, F, D], [N, F, H, W], split in time (last 10%% "
                            "of the frames held out), cut into overlapping training windows and disjoint test windows")
    shape = " (a model or guide class of yours gets it when its constructor takes an argument of that name)"
    train.add_argument("--latent-dim", type=positive_int, default=default.latent_dim, action=_Given,
                       help="Nz, dimensions of z" + shape)
    train.add_argument("--hidden-dim", type=positive_int, default=default.hidden_dim, action=_Given,
                       help=shape.strip(" ()"))
    train.add_argument("--num-hidden-layers", type=positive_int, default=default.num_hidden_layers, action=_Given,
                       help=shape.strip(" ()"))
    train.add_argument("--activation", default=default.activation, action=_Given,
                       help=shape.strip(" ()"))
    train.add_argument("--likelihood", default=default.likelihood, choices=sorted(LIKELIHOODS), action=_Given,
                       help=shape.strip(" ()"))
    models = "; ".join(f"{name}: {lookup(name).summary}" for name in model_names())
    train.add_argument("--model", default=default.model,
                       help=f"the generative model: a registered name ({models}; pyro_aevb.registry) or your class as "
                            "package.module:Class or path/to/file.py:Class")
    train.add_argument("--labels", type=positive_int, default=None, metavar="N",
                       help="semi-supervised: keep N training labels, N/K of each of the K classes (fixed seed), the "
                            "rest unlabelled; for a model or guide that declares a label input, label_inputs = (\"y\",) "
                            "(m2; pyro_aevb.inputs)")
    train.add_argument("--alpha-over-n", type=float, default=default.alpha_over_n, metavar="A",
                       help="with --labels: the classification term of eq. (9), alpha = A * N (default 100; the paper "
                            "0.1)")
    train.add_argument("--labelled-batch-size", type=positive_int, default=default.labelled_batch_size,
                       help="with --labels: labelled rows drawn per step for the classification term")
    train.add_argument("--model-kwargs", default=None,
                       help="JSON object of constructor arguments for --model CLASS (or conv, two_layer, m2)")
    train.add_argument("--guide", default=default.guide,
                       help=f"q(z|x): {', '.join(sorted(GUIDE_NAMES))} (section 2.4) or package.module:Class")
    train.add_argument("--guide-kwargs", default=None,
                       help="JSON object of constructor arguments for --guide CLASS")
    train.add_argument("--init", default=None, choices=INITS,
                       help="initialisation of the built-in networks. paper: N(0, 0.01^2) as in section 5 (the "
                            "default, with the paper's Adagrad recipe); torch: PyTorch's default layer initialisation "
                            "(better with Adam)")
    train.add_argument("--bayesian-decoder", action="store_true",
                       help="full VB over the decoder weights, q(theta) q(z|x) (appendix F)")
    train.add_argument("--elbo", default=None, choices=sorted(ESTIMATORS),
                       help="trace = estimator A, analytic = B (the default where it applies; trace where a "
                            "discrete latent is enumerated or the guide samples the latents in another order than the "
                            "model)")
    train.add_argument("--num-particles", type=positive_int, default=default.num_particles,
                       help="L, samples of z per datapoint")
    train.add_argument("--optimizer", default=default.optimizer, choices=["adagrad", "adam"])
    train.add_argument("--optimizer-kwargs", default=None, metavar="JSON",
                       help="the optimizer's other torch arguments, e.g. '{\"betas\": [0.9, 0.999], \"eps\": 1e-4}' "
                            "(adam; adagrad: eps, lr_decay, initial_accumulator_value)")
    train.add_argument("--lr", type=float, default=default.lr)
    train.add_argument("--prior-precision", type=float, default=default.prior_precision,
                       help="weight decay on theta = precision of its N(0, I/precision) prior (0: maximum likelihood)")
    train.add_argument("--guide-weight-decay", type=float, default=default.guide_weight_decay,
                       help="L2 weight decay on the guide's parameters phi (default 0, the paper)")
    train.add_argument("--batch-size", type=positive_int, default=default.batch_size,
                       help="M")
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=positive_int, default=None)
    budget.add_argument("--train-samples", type=positive_int, default=None,
                        help="budget in training samples")
    train.add_argument("--seed", type=seed, default=default.seed)
    train.add_argument("--device", default=default.device,
                       help="cpu, cuda, cuda:N or auto")
    train.add_argument("--out", required=True,
                       help="run directory")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint (of the run's settings only "
                       f"{changeable_on_resume(cli=True)} may change)")
    train.add_argument("--overwrite", action="store_true",
                       help="start afresh in an --out that already holds a run")
    train.add_argument("--clip-grad-norm", type=positive_float, default=None,
                       help="rescale each gradient to at most this norm")
    train.add_argument("--kl-warmup", type=nonnegative_int, default=default.kl_warmup, metavar="STEPS",
                       help="anneal the weight of every latent site's KL term linearly from 0 to 1 over STEPS "
                            "optimisation steps, min(1, t/STEPS) (estimators trace and analytic; the metrics stay the "
                            "unannealed bound; docs/training_options.md)")
    train.add_argument("--lr-schedule", default=None, choices=list(SCHEDULES),
                       help="learning-rate schedule (torch.optim.lr_scheduler): step (StepLR, every step_size steps), "
                            "multistep (MultiStepLR, at the milestones' steps), cosine (CosineAnnealingLR over the "
                            "budget in steps), plateau (ReduceLROnPlateau on the test bound, once per evaluation)")
    train.add_argument("--lr-schedule-kwargs", default=None, metavar="JSON",
                       help="the schedule's torch parameters, e.g. '{\"step_size\": 5000, \"gamma\": 0.5}' (step), "
                            "'{\"eta_min\": 0.001}' (cosine), '{\"factor\": 0.5, \"patience\": 3}' (plateau); steps are "
                            "optimisation steps")
    train.add_argument("--threads", type=positive_int, default=None, metavar="N",
                       help="torch threads (default: the free cores, max(1, cores - load average), shared among the "
                            "processes torchrun starts here; docs/training_options.md)")
    train.add_argument("--min-scale", type=float, default=0.0, action=_Given,
                       help="floor added to a learned likelihood scale (gaussian, laplace): bounded density on point "
                            "masses")
    train.add_argument("--backend", default=default.backend, choices=["auto", "graph", "pyro"],
                       help="auto: the model, guide and estimator traced into one graph, or Pyro's interpreter with "
                            "a warning saying why; graph: the graph or an error; pyro: Pyro's interpreter "
                            "(docs/own_model.md)")
    train.add_argument("--compile", action="store_true",
                       help="compile the traced training step with inductor (~20 s once per minibatch shape; its own "
                            "random numbers: not the eager run's path for the same seed)")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel training under torchrun (gloo on CPU, nccl on CUDA)")
    train.add_argument("--no-progress", action="store_true")
    train.add_argument("--tensorboard", nargs="?", const="", default=None, metavar="DIR",
                       help="log bounds, KL/reconstruction terms, learning rate, samples and reconstructions per epoch "
                            "for TensorBoard (default DIR: OUT/tensorboard; needs pip install 'pyro-aevb[tensorboard]')")
    train.add_argument("--mlflow", nargs="?", const="", default=None, metavar="URI",
                       help="log the config as params, each epoch's metrics (step = training samples) and, at the "
                            "end, the run's files to MLflow (default URI: MLflow's own, MLFLOW_TRACKING_URI or its "
                            "local store in the working directory; experiment: MLFLOW_EXPERIMENT_NAME or pyro-aevb); "
                            "--resume continues the same MLflow run; needs pip install 'pyro-aevb[mlflow]'")

    evaluate = sub.add_parser("evaluate", help="test bound with estimators A and B")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--num-particles", type=positive_int, default=1)
    evaluate.add_argument("--iw-samples", type=nonnegative_int, default=0,
                          help="also estimate log p(x) on the test set by importance sampling with this many samples "
                               "(0, the default: no estimate)")
    evaluate.add_argument("--theta-samples", type=positive_int, default=None,
                          help="full-VB runs, with --iw-samples: draws theta ~ q(theta) for the posterior predictive "
                               "log-likelihood (default 10)")
    evaluate.add_argument("--latent-terms", action="store_true",
                          help="also the test KL term and the active units (Cov_x E_q[z_u|x] > 0.01) of each latent "
                               "site")
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--seed", type=seed, default=0,
                          help="seed of the Monte Carlo estimates")
    evaluate.add_argument("--json", action="store_true",
                          help="print one JSON object")
    evaluate.add_argument("--no-progress", action="store_true",
                          help="no progress bar for --iw-samples (--json shows none either)")

    sample = sub.add_parser("sample", help="PNG grid of decoded samples from the prior (sequences: one per row; a model "
                                      "with a discrete latent, m2's class: one row per value, the other latents "
                                      "fixed per column)")
    sample.add_argument("run_dir")
    sample.add_argument("--num-samples", type=positive_int, default=None,
                        help="images (default 100), or sequences for a sequence run (default 8; rows = sequences, "
                             "columns = time)")
    sample.add_argument("--seed", type=seed, default=0)
    sample.add_argument("--condition", action="append", default=[], metavar="NAME=V[,V...]",
                        help="a conditional model's input for every sample (e.g. y=3), or one grid row per value "
                             "(y=0,1,2); without it a model that takes a class-label input draws one row per class, "
                             "any other input comes from the test rows")
    sample.add_argument("--out", default=None,
                        help="PNG path (default RUN_DIR/samples.png)")

    plot = sub.add_parser("plot", help="PNG of the bound curve of a run (RUN_DIR/bound.png)")
    plot.add_argument("run_dir")
    plot.add_argument("--out", default=None)

    data = sub.add_parser("data", help="fetch and verify a dataset")
    data.add_argument("dataset", choices=["mnist", "frey"])
    data.add_argument("--data-path", default=None)

    reproduce = sub.add_parser("reproduce", help="rerun a figure of the paper (or Burda et al.'s Table 1: iwae); our "
                                                 "numbers next to the published ones")
    reproduce.add_argument("figure", choices=["fig2", "fig3", "fig4", "fig5", "iwae"])
    reproduce.add_argument("--dataset", default=None, choices=["mnist", "frey"],
                           help="default mnist (fig3: mnist only)")
    reproduce.add_argument("--budget", default="quick", choices=["quick", "medium", "paper"],
                           help="quick: minutes on a CPU (CI); paper: ~1e8 training samples per run (iwae: 3,280 "
                                "passes, Burda et al.'s)")
    reproduce.add_argument("--train-samples", type=positive_int, default=None,
                           help="override the budget's samples per run")
    reproduce.add_argument("--latent-dims", default=None,
                           help="comma-separated Nz subset (fig2, fig5)")
    reproduce.add_argument("--layers", default=None,
                           help="iwae: comma-separated numbers of stochastic layers, 1 and/or 2 (default 1)")
    reproduce.add_argument("--ks", default=None,
                           help="iwae: comma-separated samples per datapoint in training, k (default 1,5,50)")
    reproduce.add_argument("--data-path", default=None,
                           help="MNIST data root or frey_rawface.mat path")
    reproduce.add_argument("--seed", type=seed, default=0)
    reproduce.add_argument("--out", default=None,
                           help="output directory (default runs/reproduce/FIG_DATASET_BUDGET); fig2/fig3: running the "
                                "command again continues the runs in it")
    reproduce.add_argument("--jobs", type=positive_int, default=1,
                           help="fig2/fig3/iwae: runs trained side by side, one torch thread each (on a GPU, several runs "
                                "share it)")
    reproduce.add_argument("--threads", type=positive_int, default=None, metavar="N",
                           help="torch threads of each run (default: the free cores shared among the --jobs, max(1, "
                                "(cores - load average) // jobs); docs/training_options.md)")
    reproduce.add_argument("--device", default="cpu",
                           help="fig2/fig3/iwae: cpu, cuda, cuda:N or auto")
    reproduce.add_argument("--methods", default=None,
                           help="fig2/fig3: comma-separated subset of aevb, wake_sleep (fig3: also mcem); iwae: of "
                                "vae, iwae")
    reproduce.add_argument("--eval-points", type=positive_int, default=None,
                           help="fig3: train and test points each log p(x) estimate averages (the budget's by default; "
                                "the paper: 1000); iwae: test images (default: quick 500, else all)")
    reproduce.add_argument("--compile", action="store_true",
                           help="fig2/fig3/iwae: compile each run's training step with inductor (~20 s once per run; "
                                "faster per step)")
    reproduce.add_argument("--run", default=None, metavar="NAME",
                           help="fig2/fig3/iwae: train only this run of the sweep (e.g. aevb_20), as one of several "
                                "processes sharing --out; nothing is drawn (--redraw collects)")
    reproduce.add_argument("--print-commands", action="store_true",
                           help="fig2/fig3/iwae: print one resumable command per unfinished run (--run NAME), for a "
                                "scheduler (SLURM array, GNU parallel, Ray) to run; train nothing")
    reproduce.add_argument("--redraw", action="store_true",
                           help="fig2/fig3/iwae: draw the figure and tables from the runs that have finished (or evaluated) "
                                "so far, without training")
    add_commands(sub)
    parser.train_parser = train  # for _explicit_flags
    return parser


def _train(args) -> int:
    config = RunConfig(model=args.model, model_kwargs=parse_kwargs(args.model_kwargs, "--model-kwargs"),
                       guide_kwargs=parse_kwargs(args.guide_kwargs, "--guide-kwargs"), init=args.init,
                       dataset=args.dataset, data_path=args.data_path, binarize=args.binarize, seq_len=args.seq_len,
                       uint8=args.uint8,
                       latent_dim=args.latent_dim, hidden_dim=args.hidden_dim,
                       num_hidden_layers=args.num_hidden_layers, activation=args.activation,
                       likelihood=args.likelihood, guide=args.guide, bayesian_decoder=args.bayesian_decoder,
                       elbo=args.elbo, num_particles=args.num_particles,
                       optimizer=args.optimizer, lr=args.lr, prior_precision=args.prior_precision,
                       guide_weight_decay=args.guide_weight_decay,
                       batch_size=args.batch_size, epochs=args.epochs, train_samples=args.train_samples,
                       seed=args.seed, device=args.device, backend=args.backend, compile=args.compile,
                       min_scale=args.min_scale, clip_grad_norm=args.clip_grad_norm, labels=args.labels,
                       alpha_over_n=args.alpha_over_n, labelled_batch_size=args.labelled_batch_size,
                       kl_warmup=args.kl_warmup, lr_schedule=args.lr_schedule,
                       lr_schedule_kwargs=parse_kwargs(args.lr_schedule_kwargs, "--lr-schedule-kwargs",
                                                       '{"step_size": 5000, "gamma": 0.5}'),
                       optimizer_kwargs=parse_kwargs(args.optimizer_kwargs, "--optimizer-kwargs",
                                                     '{"betas": [0.9, 0.999], "eps": 1e-4}'))
    try:
        check_optimizer_kwargs(config.optimizer, config.optimizer_kwargs)
    except AevbInputError as e:
        raise AevbInputError(f"--optimizer {config.optimizer} --optimizer-kwargs: {e}") from None
    try:
        check_schedule(config.lr_schedule, config.lr_schedule_kwargs)
    except AevbInputError as e:  # the library names the parameter; here it is a flag
        raise AevbInputError(f"--lr-schedule {config.lr_schedule or '(none)'} --lr-schedule-kwargs: {e}") from None
    for name in ("lr", "prior_precision", "guide_weight_decay"):
        try:
            check_rates(**{name: getattr(config, name)})
        except AevbInputError as e:  # the library names the rate; here it is a flag
            raise AevbInputError(f"--{name.replace('_', '-')}: {e}") from None
    if args.resume:  # what the command line does not give, the run keeps: its own settings and budget
        saved = resumed_config(args.out)
        explicit = set(getattr(args, "explicit", ()))
        if saved is not None:
            if {"epochs", "train_samples"} & explicit:
                explicit |= {"epochs", "train_samples"}  # a budget given replaces the run's, in either unit
            for name in INHERITED_ON_RESUME:
                # (a shape setting the run recorded as None sized no network of it: a class of yours took its own)
                if name not in explicit and not (name in SHAPE_SETTINGS and getattr(saved, name) is None):
                    setattr(config, name, getattr(saved, name))
    config.threads = set_threads(args.threads, local_jobs())
    if config.epochs is None and config.train_samples is None:
        config.epochs = 1
    if args.distributed:
        init_distributed(config)
    callbacks = []
    if args.tensorboard is not None and (not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0):
        callbacks.append(TensorBoardCallback(args.tensorboard or Path(args.out) / "tensorboard"))
    if args.mlflow is not None and (not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0):
        callbacks.append(MLflowCallback(args.mlflow or None, os.environ.get("MLFLOW_EXPERIMENT_NAME") or "pyro-aevb"))
    given = getattr(args, "given", [])
    try:
        apply_settings(config, given)
    except AevbInputError as e:  # the library names the setting; here it is a flag
        flags = [f"--{name.replace('_', '-')}" for name in given if f"setting {name}=" in str(e)]
        raise AevbInputError(f"{' '.join(flags)}: {e}" if flags else str(e)) from None
    try:
        trainer = train(config, args.out, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite,
                        callbacks=callbacks)
    except BaseException as e:  # a tracker marks its run failed or killed, then the error goes on
        finish_all(callbacks, "KILLED" if isinstance(e, (KeyboardInterrupt, Interrupted)) else "FAILED")
        if not isinstance(e, KeyboardInterrupt):
            raise
        if (Path(args.out) / CHECKPOINT).exists():
            raise Interrupted("interrupted: the last finished epoch is in the checkpoint; continue with --resume") from None
        raise Interrupted("interrupted before the first epoch finished: nothing was saved; run the same command "
                          "again (without --resume)") from None
    finish_all(callbacks, "FINISHED")
    if trainer.rank != 0:
        return 0
    last = trainer.metrics[-1] if trainer.metrics else {}
    print(dumps({"run_dir": str(args.out), **last}))
    return 0


def _evaluate(args) -> int:
    if args.theta_samples is not None and args.iw_samples == 0:
        raise AevbInputError("--theta-samples sets the theta draws of --iw-samples' estimate (full-VB runs): give "
                             "--iw-samples K too")
    pyro.set_rng_seed(args.seed)
    run = load_run(args.run_dir, device=args.device)
    result = evaluate_run(run, num_particles=args.num_particles)
    try:
        _evaluate_estimates(args, run, result)
    except AevbError:
        _report(result, args.json)  # what was computed before the error is not lost; the error follows (stderr)
        raise
    _report(result, args.json)
    return 0


def _report(result: dict, as_json: bool) -> None:
    if as_json:
        print(dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:28s} {v:.3f}" if isinstance(v, float) else f"{k:28s} {v}")


def _evaluate_estimates(args, run, result: dict) -> None:
    """``evaluate``'s optional estimates into ``result``: --iw-samples' log-likelihood, --latent-terms."""
    if args.iw_samples > 0 or args.latent_terms:
        if run.guide is None:
            raise AevbInputError("importance sampling (--iw-samples) and --latent-terms use the run's guide "
                                 "(as proposal, as posterior); this run has none")
        data = run.load_data()
        test, inputs = data.test, evaluation_inputs(data.inputs("test"), run.model, run.guide)
        structure = check_model_guide(run.model, run.guide, test, None, inputs=inputs)  # once, for both
    if args.iw_samples > 0:
        if structure.global_latents:
            # full VB: log E_q(theta)[p(x|theta)], importance sampling over z for each theta draw
            num_theta = args.theta_samples or 10
            ll = posterior_predictive_log_likelihood(run.model, run.guide, test, num_theta=num_theta,
                                                     num_samples=args.iw_samples, inputs=inputs)
            result.update(theta_samples=num_theta)
        elif args.theta_samples is not None:
            raise AevbInputError("--theta-samples draws the global latents theta of a full-VB run; this run has none")
        else:
            ll = log_likelihood(run.model, run.guide, test, num_samples=args.iw_samples,
                                progress=not (args.json or args.no_progress), inputs=inputs)
        result.update(test_log_likelihood=ll.mean, test_log_likelihood_stderr=ll.stderr, iw_samples=args.iw_samples)
        if test.dim() == 3:  # sequences [N, T, D]: log p(x_1:T) / T
            result["test_log_likelihood_per_frame"] = per_frame(ll.mean, test.shape[1])
    if args.latent_terms:
        if structure.enumerated:
            raise AevbInputError(f"--latent-terms reports KL and active units of continuous latents; this run sums "
                                 f"out the discrete latent(s) {', '.join(map(repr, structure.enumerated))} by "
                                 "enumeration")
        result.update(latent_site_terms(run.model, run.guide, test, inputs=inputs).metrics("test_"))


def _sample_inputs(run, data, num: int, conditions) -> tuple:
    """The rows ``x_like`` (shapes only) and the model's conditioning inputs of each sample, and the grid's
    columns: ``--condition NAME=V[,V...]`` (one grid row per value), else a class grid over an integer input's
    values in the test set when the model takes exactly that one input, else the inputs of the test rows."""
    rows = torch.arange(num) % data.test.shape[0]  # shapes only: repeat rows of a small test set
    test_inputs = evaluation_inputs(data.inputs("test"), run.model, run.guide)
    inputs = {k: v[rows.to(v.device)] for k, v in taken(run.model, test_inputs).items()}
    grid, ncol = None, None
    for text in conditions:
        name, sep, values = text.partition("=")
        if not sep or not values:
            raise AevbInputError(f"--condition takes NAME=V[,V...], e.g. y=3 or y=0,1,2; got {text!r}")
        if name not in inputs:
            raise AevbInputError(f"--condition {name}: the run's model takes no input {name!r} (it takes "
                                 f"{', '.join(map(repr, inputs)) or 'none'}); a latent of the model, such as M2's "
                                 "class, is drawn, and the default grid shows one row per value of a discrete one")
        like = inputs[name]
        if like.dim() != 1:
            raise AevbInputError(f"--condition sets one number per sample, but input {name!r} has "
                                 f"{list(like.shape[1:])} per row: draw such samples from Python (prior_means(..., "
                                 "inputs=...))")
        try:
            parsed = [float(v) if like.is_floating_point() else int(v) for v in values.split(",")]
        except ValueError:
            raise AevbInputError(f"--condition {text}: values must be {'numbers' if like.is_floating_point() else 'integers'}") from None
        value = torch.tensor(parsed, dtype=like.dtype, device=like.device)
        if value.shape[0] > 1:
            if grid is not None:
                raise AevbInputError("--condition with several values makes the rows of the grid: give several "
                                     "values for one input only")
            grid = name
        inputs[name] = value
    if grid is None and not conditions and len(inputs) == 1:
        (name, like), = inputs.items()
        if like.dim() == 1 and not like.is_floating_point() and like.dtype != torch.bool:
            grid, inputs[name] = name, torch.unique(test_inputs[name])  # a class label: one row per class
    if grid is not None:
        values = inputs[grid]
        ncol = max(1, num // values.shape[0])
        num = ncol * values.shape[0]
        inputs[grid] = values.repeat_interleave(ncol)
        rows = rows[torch.arange(num) % rows.shape[0]]
    inputs = {k: (v.expand(num) if v.dim() == 1 and v.shape[0] == 1 else v[:num]) for k, v in inputs.items()}
    return data.test[rows.to(data.test.device)][:num], inputs, ncol


def _sample(args) -> int:
    run = load_run(args.run_dir)
    data = run.load_data()
    num = args.num_samples or (8 if data.seq_len else 100)
    x_like, inputs, nrow = _sample_inputs(run, data, num, args.condition)
    try:
        images, nrow = _draw(run, x_like, inputs, nrow, num, args.seed)
    except AevbInputError as e:
        if args.condition:  # say which value the model could not take
            raise AevbInputError(f"--condition {' '.join(args.condition)}: {e}") from None
        raise
    # sequences [S, T, D]: a strip, one row per sequence and one column per time step
    path = save_image_grid(images.reshape(-1, data.data_dim).clamp(0, 1), data.image_shape,
                           picture_path(args.out) if args.out else Path(args.run_dir) / "samples.png",
                           nrow=nrow or data.seq_len)
    print(path)
    return 0


def _draw(run, x_like, inputs, nrow, num: int, seed: int):
    """The decoded samples of ``_sample`` and the images per grid row."""
    structure = inspect_model(run.model, x_like, inputs=inputs)
    discrete = None if structure.global_latents else discrete_latent(run.model, x_like, structure, inputs)
    if discrete is not None and nrow is None:  # a row per value of the discrete latent (M2: per class), z per column
        nrow = max(1, num // num_values(run.model, x_like, discrete, inputs))
        first = {k: v[:nrow] for k, v in inputs.items()}
        images = conditional_means(run.model, x_like[:nrow], discrete, seed=seed, structure=structure,
                                   inputs=first)
        images = images.reshape(-1, x_like.shape[-1])
    elif structure.global_latents and inputs:  # one theta ~ q(theta), a z per sample, each with its condition
        images = prior_means(run.model, x_like, guide=run.guide, seed=seed, structure=structure, inputs=inputs)
        images = images.reshape(x_like.shape[0], -1)
    elif structure.global_latents:  # full VB: rows share z, each row one theta ~ q(theta)
        side = max(1, int(num ** 0.5))
        images = predictive_means(run.model, run.guide, x_like[:side], num_theta=side, seed=seed)
        images = images.reshape(side * side, -1)
    else:
        images = prior_means(run.model, x_like, seed=seed, structure=structure, inputs=inputs)
        images = images.reshape(x_like.shape[0], -1)
    return images, nrow


def _plot(args) -> int:
    if not Path(args.run_dir).is_dir():
        raise AevbInputError(f"run directory not found: {args.run_dir}")
    path = plot_bound_curve(read_metrics(args.run_dir), picture_path(args.out) if args.out else Path(args.run_dir) / "bound.png",
                            title=str(args.run_dir))
    print(path)
    return 0


def _data(args) -> int:
    ds = load_mnist(args.data_path) if args.dataset == "mnist" else load_frey(args.data_path)
    print(f"{ds.name}: train {tuple(ds.train.shape)}, test {tuple(ds.test.shape)}, source {ds.info.get('source')}")
    return 0


def _reproduce(args) -> int:
    kwargs = {"train_samples": args.train_samples, "data_path": args.data_path}
    if args.latent_dims is not None:
        if args.figure not in ("fig2", "fig5"):
            raise AevbInputError(f"--latent-dims applies to fig2 and fig5, not {args.figure}")
        try:
            kwargs["latent_dims"] = tuple(int(v) for v in args.latent_dims.split(","))
        except ValueError:
            raise AevbInputError(f"--latent-dims must be comma-separated integers, got {args.latent_dims!r}") from None
        if min(kwargs["latent_dims"]) < 1:
            raise AevbInputError(f"latent dims must be >= 1, got {args.latent_dims!r}")
    for flag, value, name in (("--layers", args.layers, "layers"), ("--ks", args.ks, "ks")):
        if value is None:
            continue
        if args.figure != "iwae":
            raise AevbInputError(f"{flag} applies to iwae, not {args.figure}")
        try:
            kwargs[name] = tuple(int(v) for v in value.split(","))
        except ValueError:
            raise AevbInputError(f"{flag} must be comma-separated integers, got {value!r}") from None
    set_threads(args.threads, 1)  # this process: fig4, fig5, and a sweep's runs with --jobs 1
    if args.figure in ("fig2", "fig3", "iwae"):
        kwargs.update(jobs=args.jobs, threads=args.threads, compile=args.compile, device=str(RunConfig(device=args.device).validate().resolved_device()),
                      redraw=args.redraw)
        if args.eval_points is not None:
            if args.figure not in ("fig3", "iwae"):
                raise AevbInputError("--eval-points applies to fig3 and iwae")
            kwargs["eval_points"] = args.eval_points
        if args.methods is not None:
            kwargs["methods"] = tuple(m.strip() for m in args.methods.split(",") if m.strip())
            if not kwargs["methods"]:
                raise AevbInputError("--methods must name at least one method, e.g. "
                                     f"{'vae,iwae' if args.figure == 'iwae' else 'aevb,wake_sleep'}")
    elif (args.jobs != 1 or args.device != "cpu" or args.redraw or args.methods is not None or args.eval_points
          or args.run is not None or args.print_commands or args.compile):
        raise AevbInputError(f"--jobs, --device, --methods, --compile, --run, --print-commands and --redraw apply to "
                             f"fig2, fig3 and iwae (resumable sweeps), not {args.figure}")
    dataset = args.dataset or DEFAULT_DATASET[args.figure]
    out = args.out or Path("runs") / "reproduce" / f"{args.figure}_{dataset}_{args.budget}"
    if Path(out).exists() and not Path(out).is_dir():
        raise AevbInputError(f"--out {out} is a file; reproduce writes a folder (figure, tables, runs): "
                             "name a new or existing folder")
    if args.print_commands:
        return _print_sweep_commands(args, dataset, out, kwargs)
    if args.run is not None:
        if args.redraw:
            raise AevbInputError("--run trains one run and --redraw trains none: give one of them")
        results = reproduce(args.figure, out, dataset=dataset, budget=args.budget, seed=args.seed, only=args.run,
                            **kwargs)
        print(dumps({"out": str(out), "run": args.run, "finished": bool(results["runs"])}))
        return 0
    results = reproduce(args.figure, out, dataset=dataset, budget=args.budget, seed=args.seed, **kwargs)
    print((Path(out) / "results.md").read_text())
    print(dumps({"out": str(out), "wall_seconds": results["wall_seconds"]}))
    return 0


def _print_sweep_commands(args, dataset: str, out, kwargs: dict) -> int:
    """One ``pyro-aevb reproduce ... --run NAME`` line per unfinished run of the sweep (what ``--jobs`` would run),
    each resumable, for a scheduler to run; ``--redraw`` collects."""
    if args.redraw or args.run is not None:
        raise AevbInputError("--print-commands prints the runs' commands; it takes neither --redraw nor --run")
    settings = {k: v for k, v in kwargs.items() if k not in ("jobs", "threads", "redraw")}
    extra = ["--compile"] if args.compile else []
    specs = sweep_specs(args.figure, dataset, args.budget, args.seed, **settings)
    if Path(out).is_dir():  # another sweep in this folder: refused here as the runs would refuse it
        check_manifest(Path(out), specs, write=False)
    base = ["pyro-aevb", "reproduce", args.figure, "--dataset", dataset, "--budget", args.budget, "--seed",
            str(args.seed), "--out", str(out), "--device", args.device]
    for flag, value in (("--train-samples", args.train_samples), ("--latent-dims", args.latent_dims),
                        ("--layers", args.layers), ("--ks", args.ks),
                        ("--data-path", args.data_path), ("--methods", args.methods),
                        ("--eval-points", args.eval_points), ("--threads", args.threads)):
        if value is not None:
            base += [flag, str(value)]
    for spec in specs:
        if not is_finished(out, spec):
            print(shlex.join(base + extra + ["--run", spec.name]))
    return 0


COMMANDS = {"train": _train, "evaluate": _evaluate, "sample": _sample, "plot": _plot, "data": _data,
            "reproduce": _reproduce}
COMMANDS.update(APPLICATIONS)  # encode, reconstruct, inpaint, denoise, latent-map, interpolate


def _terminate(signum, frame):
    raise KeyboardInterrupt


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"pyro-aevb: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    """Run one command; every anticipated failure is one line on stderr and a documented exit status
    (:mod:`pyro_aevb.errors`): 2 bad input, 3 diverged, 4 run directory locked, 5 storage, 130 interrupted."""
    previous_showwarning, previous_sigterm = warnings.showwarning, None
    warnings.showwarning = _show_warning
    try:
        previous_sigterm = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM ends a run like Ctrl-C
    except ValueError:  # not the main thread (e.g. called from a worker): leave signals alone
        pass
    try:
        return _run_command(argv)
    finally:
        warnings.showwarning = previous_showwarning
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)


def _user_frame(tb):
    """``file:line`` of the innermost frame of an exception that lies outside this package and the installed
    libraries (a model or guide of the user's, loaded by import path), or ``None``."""
    library = (str(Path(__file__).resolve().parent), str(Path(models.__file__).resolve().parent),
               str(Path(guides.__file__).resolve().parent), str(Path(torch.__file__).resolve().parents[1]),
               str(Path(pyro.__file__).resolve().parents[1]), str(Path(os.__file__).resolve().parent))
    where = None
    while tb is not None:
        raw = tb.tb_frame.f_code.co_filename
        filename = str(Path(raw).resolve())
        if not raw.startswith("<") and not filename.startswith(library):  # (<frozen importlib...>: Python's own)
            where = f"{Path(filename).name}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def _particle_hint(argv, error: Exception) -> str:
    """A hint for a shape error in a command that draws several latents per row (particles, samples), else ''."""
    given = list(sys.argv[1:] if argv is None else argv)
    values = {}
    for i, token in enumerate(given):
        flag, _, value = token.partition("=")
        values[flag] = value or (given[i + 1] if i + 1 < len(given) else "")
    several = (values.get("--elbo") == "iwae" or "--latent-terms" in values
               or values.get("--num-particles", "1") not in ("", "1") or values.get("--iw-samples", "0") not in ("", "0"))
    shape = any(word in str(error) for word in ("size", "shape", "dimension", "broadcast"))
    if not (several and shape):
        return ""
    return ("with --num-particles > 1, --elbo iwae, --iw-samples or --latent-terms the latents carry extra dimensions "
            "on the left -- particles, samples -- so the model and guide must broadcast over them; ")


def _explicit_flags(argv) -> list:
    """The destinations of the ``train`` options given on the command line ``argv`` (not left at a default): the
    same parse with every default of ``train`` replaced by a marker."""
    parser, unset = build_parser(), object()
    dests = vars(parser.train_parser.parse_known_args(["--out", "."])[0])
    parser.train_parser.set_defaults(**{dest: unset for dest in dests})
    return sorted(k for k, v in vars(parser.parse_args(argv)).items() if v is not unset)


def _run_command(argv) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "train":
            args.explicit = _explicit_flags(argv)
        return COMMANDS[args.command](args)
    except AevbError as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__  # one line (Pyro appends
        cause = e.__cause__  # shapes); an error of the user's code the library explained: where it was raised
        where = _user_frame(cause.__traceback__) if cause is not None and not isinstance(cause, AevbError) else None
        if where is not None:
            message = f"{message} (raised at {where})"
        print(f"{chr(10) if isinstance(e, Interrupted) else ''}pyro-aevb: error: {message}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        print("\npyro-aevb: interrupted", file=sys.stderr)
        return Interrupted.exit_status
    except OSError as e:  # a file the command reads or writes, outside the run's own atomic writes
        print(f"pyro-aevb: error: {e.strerror or e}{f': {e.filename}' if e.filename else ''} (check the path and "
              "its permissions, or write elsewhere with --out)", file=sys.stderr)
        return StorageError.exit_status
    except Exception as e:  # noqa: BLE001 -- a bug: still one line, and the traceback on request
        if os.environ.get("PYRO_AEVB_DEBUG"):
            raise
        where = _user_frame(e.__traceback__)
        if where is not None:  # raised in a model or guide of yours: bad input, not a bug of the library
            print(f"pyro-aevb: error: your code raised {type(e).__name__} at {where}: "
                  f"{str(e).splitlines()[0] if str(e) else ''} ({_particle_hint(argv, e)}PYRO_AEVB_DEBUG=1 shows the "
                  "traceback)", file=sys.stderr)
            return AevbInputError.exit_status
        print(f"pyro-aevb: internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
              "(a bug in pyro-aevb: run again with PYRO_AEVB_DEBUG=1 for the traceback and report it)",
              file=sys.stderr)
        return INTERNAL_ERROR
