"""The supervised baseline of docs/beyond/m2.md: q(y|x)'s network, trained on the labelled points alone.

    python scripts/m2_baseline.py --labels 100 --hidden-dim 500 --activation softplus --json

The network is the classifier of the M2 guide built with the same arguments as ``pyro-aevb train --model m2``
(so the architecture is q(y|x)'s), the labelled points are ``--labels N`` of MNIST's training set chosen as
``train --labels N`` chooses them (:func:`pyro_aevb.balanced_labels`), and it is trained by Adam on the mean
cross-entropy of minibatches drawn from them (:func:`pyro_aevb.evaluation.train_supervised`).  Prints the test
error (a fraction of the 10,000 test images).
"""

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from pyro_aevb import balanced_labels, load_mnist  # noqa: E402
from pyro_aevb.evaluation import classification_error, train_supervised  # noqa: E402
from pyro_aevb.guides import M2Guide  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labels", type=int, required=True)
    p.add_argument("--hidden-dim", type=int, default=500)
    p.add_argument("--num-hidden-layers", type=int, default=1)
    p.add_argument("--activation", default="softplus")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = load_mnist()
    labels = balanced_labels(data.train_labels, args.labels)
    torch.manual_seed(args.seed)
    network = M2Guide(data.data_dim, 10, 1, (args.hidden_dim,) * args.num_hidden_layers, args.activation).classifier
    start = time.perf_counter()
    classifier = train_supervised(network, data.train, labels, args.steps, args.batch_size, args.lr, args.seed)
    error = classification_error(classifier, data.test, data.test_labels)
    result = {"labels": args.labels, "baseline_test_error": error, "steps": args.steps, "batch_size": args.batch_size, "wall_seconds": time.perf_counter() - start}
    print(json.dumps(result) if args.json else "\n".join(f"{k:20s} {v}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
