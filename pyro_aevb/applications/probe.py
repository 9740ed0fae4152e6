"""Linear probe: how much of the class is linearly readable from a representation.

A multinomial logistic regression (scikit-learn, L2-regularised, features standardised on the training rows)

    p(y = c | f) = softmax_c(W f + b),

fitted on the features f of labelled training images and scored by its accuracy on test images.  Run on the
posterior means E_q[z|x] and on the raw pixels x it asks whether the J-dimensional code keeps the class as
linearly as the D pixels do.  Chance is the frequency of the most common test class.
"""

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..errors import AevbInputError


def _numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def linear_probe_accuracy(train_features, train_labels, test_features, test_labels, max_iter: int = 500) -> float:
    """Test accuracy of a logistic regression fitted on ``(train_features, train_labels)``."""
    f_train, y_train, f_test, y_test = map(_numpy, (train_features, train_labels, test_features, test_labels))
    if len(f_train) != len(y_train) or len(f_test) != len(y_test):
        raise AevbInputError(f"a linear probe needs one label per row: {len(f_train)} rows / {len(y_train)} labels "
                             f"(train), {len(f_test)} / {len(y_test)} (test)")
    if len(np.unique(y_train)) < 2:
        raise AevbInputError("a linear probe needs at least two classes among the training labels")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a probe stopped at max_iter is still a valid probe
        probe.fit(f_train.reshape(len(f_train), -1), y_train)
    return float((probe.predict(f_test.reshape(len(f_test), -1)) == y_test).mean())


def chance_accuracy(test_labels) -> float:
    """Accuracy of always answering the most common test class."""
    _, counts = np.unique(_numpy(test_labels), return_counts=True)
    return float(counts.max() / counts.sum())
