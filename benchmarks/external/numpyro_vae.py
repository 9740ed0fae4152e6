"""The paper's MNIST VAE in NumPyro, timed per 50,000-sample epoch (run with benchmarks/.venv-numpyro/bin/python).

Written the way NumPyro's ``examples/vae.py`` writes a VAE: stax networks (784-500-20, tanh; the encoder's two
heads give the mean and, through ``exp``, the standard deviation), a model and a guide that read the networks'
parameters with ``numpyro.param``, ``SVI`` with ``TraceMeanField_ELBO`` (analytic KL: estimator B), and one
jitted function that runs all the steps of an epoch in a ``lax.fori_loop`` over minibatches cut from a
permutation of the training array on the device.  As in the paper (and pyro-aevb): Bernoulli likelihood on
logits, the minibatch scaled by N/M, Adagrad with lr 0.02 (``momentum=0``, as torch's), and weight decay 1 on
the decoder written as its N(0, I) prior (a ``numpyro.factor``: the same gradient), M = 100.

    benchmarks/.venv-numpyro/bin/python benchmarks/external/numpyro_vae.py --samples 10000 --rounds 3
    ... --serve        # for step_speed.py: prints {"ready": ...}, then times one round per line read on stdin

The first call of the jitted epoch (compilation) is not timed.  Each timed round is ``--samples`` training
samples; the JSON reports seconds per round and the median scaled to 50,000 samples.  ``--data`` is an .npy
array [N, 784] of binary pixels (step_speed.py writes the one it trains on); without it, random binary pixels
of MNIST's size (the cost of a step does not depend on the values).
"""

import argparse
import json
import os
import statistics
import sys
import time


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None)
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--serve", action="store_true")
    args = p.parse_args()
    if args.threads == 1:  # XLA's CPU backend uses every core unless told otherwise
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

    import jax
    import jax.numpy as jnp
    import numpy as np
    import numpyro
    import numpyro.distributions as dist
    from jax.example_libraries import stax
    from numpyro.infer import SVI, TraceMeanField_ELBO

    hidden, latent, batch = 500, 20, 100
    if args.data:
        train = jnp.asarray(np.load(args.data), dtype=jnp.float32)
    else:
        train = (jax.random.uniform(jax.random.PRNGKey(1), (50000, 784)) < 0.13).astype(jnp.float32)
    n, steps = train.shape[0], args.samples // batch

    encoder_init, encode = stax.serial(stax.Dense(hidden), stax.Tanh, stax.FanOut(2),
                                       stax.parallel(stax.Dense(latent), stax.serial(stax.Dense(latent), stax.Exp)))
    decoder_init, decode = stax.serial(stax.Dense(hidden), stax.Tanh, stax.Dense(784))
    _, encoder_params = encoder_init(jax.random.PRNGKey(2), (batch, 784))
    _, decoder_params = decoder_init(jax.random.PRNGKey(3), (batch, latent))

    def model(x):
        params = numpyro.param("decoder", decoder_params)
        # weight decay 1 on theta = its N(0, I) prior (MAP, section 5 of the paper)
        numpyro.factor("decoder_prior", -0.5 * sum(jnp.vdot(w, w) for w in jax.tree_util.tree_leaves(params)))
        with numpyro.plate("data", x.shape[0]), numpyro.handlers.scale(scale=n / x.shape[0]):
            z = numpyro.sample("z", dist.Normal(jnp.zeros(latent), 1.0).to_event(1))
            numpyro.sample("x", dist.Bernoulli(logits=decode(params, z)).to_event(1), obs=x)

    def guide(x):
        params = numpyro.param("encoder", encoder_params)
        with numpyro.plate("data", x.shape[0]), numpyro.handlers.scale(scale=n / x.shape[0]):
            loc, scale = encode(params, x)
            numpyro.sample("z", dist.Normal(loc, scale).to_event(1))

    svi = SVI(model, guide, numpyro.optim.Adagrad(0.02, momentum=0.0), TraceMeanField_ELBO())
    state = svi.init(jax.random.PRNGKey(0), train[:batch])

    @jax.jit
    def epoch(state, key):  # `steps` SVI steps over minibatches of a fresh permutation
        perm = jax.random.permutation(key, n)

        def body(i, carry):
            state, loss_sum = carry
            idx = jax.lax.dynamic_slice_in_dim(perm, i * batch, batch)
            state, loss = svi.update(state, train[idx])
            return state, loss_sum + loss

        return jax.lax.fori_loop(0, steps, body, (state, 0.0))

    key = jax.random.PRNGKey(4)

    def timed_round():
        nonlocal state, key
        key, sub = jax.random.split(key)
        t0 = time.perf_counter()
        state, loss_sum = epoch(state, sub)
        loss_sum.block_until_ready()
        return time.perf_counter() - t0, float(loss_sum) / steps / n

    timed_round()  # compilation, not timed
    info = {"framework": "numpyro", "numpyro": numpyro.__version__, "jax": jax.__version__,
            "samples": steps * batch, "threads": args.threads}
    if args.serve:
        print(json.dumps({"ready": True, **info}), flush=True)
        for _ in sys.stdin:
            seconds, loss = timed_round()
            print(json.dumps({"seconds": seconds, "loss_per_datapoint": loss}), flush=True)
        return
    seconds = [timed_round()[0] for _ in range(args.rounds)]
    print(json.dumps({**info, "seconds_per_round": seconds,
                      "seconds_per_50k": statistics.median(seconds) * 50000 / (steps * batch)}))


if __name__ == "__main__":
    main()
