"""The paper's published numbers (Kingma & Welling, 2013), read off its figures.

Reading error: about +-0.5 nats on MNIST and +-10 nats on Frey Face.  Values
marked "approximately" in the issue (``≈``) are read off curves, not printed.

``FIG2[dataset][method][Nz]`` is the average variational lower bound per
datapoint at the end of training (~1e8 training samples); the paper gives one
wake-sleep level per Nz, which we compare with our wake-sleep *test* bound.
``FIG3[method][Ntrain]`` is the estimated marginal log-likelihood (appendix D
estimator) on MNIST with Nz = 3 and 100 hidden units.

``IWAE_TABLE1[layers][method][k]`` is from another paper, Burda, Grosse & Salakhutdinov (2016), *Importance
Weighted Autoencoders* (ICLR), Table 1, MNIST: the test negative log-likelihood -log p(x) (nats, estimated with
K = 5000 importance samples) and the active units (per stochastic layer, top last) of the VAE and the IWAE trained
with k samples, one or two stochastic layers (printed values, no reading error).
"""

READING_ERROR = {"mnist": 0.5, "frey": 10.0}

# setup of section 5
HIDDEN_UNITS = {"mnist": 500, "frey": 200}
LIKELIHOOD = {"mnist": "bernoulli", "frey": "gaussian"}
TRAINING_SAMPLES = 1e8

FIG2 = {
    "mnist": {
        "aevb": {
            3: {"train": -128.4, "test": -133.5},
            5: {"train": -114.8, "test": -118.8},
            10: {"train": -99.3, "test": -103.3},
            20: {"train": -97.3, "test": -99.5},
            200: {"train": -97.5, "test": -99.5},
        },
        "wake_sleep": {
            3: {"train": None, "test": -139.0},
            5: {"train": None, "test": -121.0},
            10: {"train": None, "test": -106.0},
            20: {"train": None, "test": -103.6},
            200: {"train": None, "test": -103.5},
        },
    },
    "frey": {
        "aevb": {
            2: {"train": 931.0, "test": 870.0},
            5: {"train": 1235.0, "test": 1117.0},
            10: {"train": 1463.0, "test": 1315.0},
            20: {"train": 1486.0, "test": 1319.0},
        },
        "wake_sleep": {nz: {"train": None, "test": 580.0} for nz in (2, 5, 10, 20)},
    },
}

FIG2_LATENT_DIMS = {"mnist": (3, 5, 10, 20, 200), "frey": (2, 5, 10, 20)}

FIG3 = {
    "aevb": {1000: {"train": -109.2, "test": -143.2}, 50000: {"train": -130.9, "test": -137.9}},
    "wake_sleep": {1000: {"train": -125.5, "test": -144.8}, 50000: {"train": -136.8, "test": -141.0}},
    "mcem": {1000: {"train": -109.5, "test": -141.5}, 50000: {"train": -147.0, "test": -148.5}},
}
FIG3_LATENT_DIM = 3
FIG3_HIDDEN_UNITS = 100
FIG3_NUM_TRAIN = (1000, 50000)

IWAE_TABLE1 = {
    1: {"vae": {1: {"nll": 86.76, "active_units": [19]}, 5: {"nll": 86.47, "active_units": [20]},
                50: {"nll": 86.35, "active_units": [20]}},
        "iwae": {1: {"nll": 86.76, "active_units": [19]}, 5: {"nll": 85.54, "active_units": [22]},
                 50: {"nll": 84.78, "active_units": [25]}}},
    2: {"vae": {1: {"nll": 85.33, "active_units": [16, 5]}, 5: {"nll": 85.01, "active_units": [17, 5]},
                50: {"nll": 84.78, "active_units": [17, 5]}},
        "iwae": {1: {"nll": 85.33, "active_units": [16, 5]}, 5: {"nll": 83.89, "active_units": [21, 5]},
                 50: {"nll": 82.90, "active_units": [26, 7]}}},
}
IWAE_PASSES = 3280  # sum over i = 0..7 of 3^i passes through the training set
