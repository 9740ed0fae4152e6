"""Full VB (appendix F) vs MAP-trained AEVB at the same training budget.

    python notebooks/experiments/full_vb_vs_map.py --dataset mnist --latent-dim 20 --hidden-dim 200 \
        --epochs 5 --out runs/fullvb_mnist

Trains both with ``pyro_aevb.train`` (the CLI's code path: ``RunConfig(bayesian_decoder=...)``), then
evaluates on the first ``--eval-test`` test images:

* MAP: test bound (estimator B) and importance-sampled log p(x) (K = ``--iw``);
* full VB: the training objective per datapoint (local - KL/N) on the training set, the expected
  local test bound E_q(theta)[L(theta, phi; x)], and the posterior-predictive log-likelihood
  log E_q(theta)[p(x|theta)] (S = ``--theta`` draws, K = ``--iw`` per draw).

Writes ``OUT/results.json`` and prints one JSON line per model.
"""

import argparse
import json
import time
from pathlib import Path

import pyro
import torch

from pyro_aevb import RunConfig, evaluate_bound, load_dataset, log_likelihood, train
from pyro_aevb.evaluation import full_vb_bound, posterior_predictive_log_likelihood


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-path", default=None)
    p.add_argument("--likelihood", default=None)
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--hidden-dim", type=int, default=200)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--vb-optimizer", default="adam")
    p.add_argument("--vb-lr", type=float, default=1e-3)
    p.add_argument("--eval-test", type=int, default=1000)
    p.add_argument("--iw", type=int, default=200)
    p.add_argument("--theta", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--resume", action="store_true", help="continue the runs in OUT to --epochs (same settings)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    likelihood = a.likelihood or ("gaussian" if a.dataset == "frey" else "bernoulli")
    base = dict(dataset=a.dataset, data_path=a.data_path, likelihood=likelihood, latent_dim=a.latent_dim,
                hidden_dim=a.hidden_dim, epochs=a.epochs, elbo="analytic", seed=0)
    configs = {
        "map": RunConfig(**base),  # the paper's Adagrad 0.02, weight decay = N(0, I) prior on theta
        "map_same_optimizer": RunConfig(**base, optimizer=a.vb_optimizer, lr=a.vb_lr),  # full VB's optimizer
        "full_vb": RunConfig(**base, bayesian_decoder=True, optimizer=a.vb_optimizer, lr=a.vb_lr),
    }
    data = load_dataset(a.dataset, "none", a.data_path)
    x_test = data.test[:a.eval_test]
    results = {}
    for name, cfg in configs.items():
        t0 = time.time()
        trainer = train(cfg, Path(a.out) / name, resume=a.resume, progress=False)
        train_s = time.time() - t0
        model, guide = trainer.model.eval(), trainer.guide.eval()
        pyro.set_rng_seed(1)
        row = {"config": cfg.to_dict(), "train_samples": trainer.train_samples, "train_seconds": round(train_s, 1),
               "trainer_wall_seconds": round(trainer.wall_seconds, 1)}
        if cfg.bayesian_decoder:
            fv_train = full_vb_bound(model, guide, data.train, num_data=data.train.shape[0])
            fv_test = full_vb_bound(model, guide, x_test, num_data=data.train.shape[0])
            ll = posterior_predictive_log_likelihood(model, guide, x_test, num_theta=a.theta, num_samples=a.iw)
            row.update(train_objective_per_datapoint=fv_train.bound, train_local_bound=fv_train.local,
                       kl_theta=fv_train.kl, kl_theta_per_datapoint=fv_train.kl / data.train.shape[0],
                       test_local_bound=fv_test.local, test_log_likelihood=ll.mean, test_ll_stderr=ll.stderr,
                       theta_samples=a.theta)
        else:
            row.update(train_bound=evaluate_bound(model, guide, data.train),
                       test_bound=evaluate_bound(model, guide, x_test))
            ll = log_likelihood(model, guide, x_test, num_samples=a.iw)
            row.update(test_log_likelihood=ll.mean, test_ll_stderr=ll.stderr)
        row.update(iw_samples=a.iw, eval_test_images=x_test.shape[0], total_seconds=round(time.time() - t0, 1))
        results[name] = row
        print(json.dumps({name: {k: v for k, v in row.items() if k != "config"}}), flush=True)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
