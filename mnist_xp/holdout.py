"""A hold-out split: validation images carved from the training set (``callbacks.EarlyStopping`` stops on it).

The test set is never looked at while choosing epochs or settings: the validation images are
drawn from the training images, a pure function of the seed, and removed from training.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from array_api_compat import array_namespace

from .backend import host_generator, to_device
from .config import SettingError
from .data import Dataset


def split_indices(seed: int, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, validation) index arrays: ``size`` of the ``n`` samples, chosen by ``seed``, go to validation."""
    if not 0 < size < n:
        raise SettingError("val", f"{size} must leave some training images: choose 1..{n - 1}")
    order = host_generator("validation", seed).permutation(n)
    return np.sort(order[size:]), np.sort(order[:size])


def carve(dataset: Dataset, size: int, seed: int) -> tuple[Dataset, Dataset]:
    """Split ``dataset``'s training part into (training, validation) data sets.

    The validation set takes the test slots of its ``Dataset`` (``X_test``, ``Y_test``,
    ``y_test``), so evaluation works on it unchanged; the real test set is left out.
    """
    xp = array_namespace(dataset.X_train)
    train, val = split_indices(seed, dataset.X_train.shape[0], size)

    def take(rows):
        index = to_device(rows, xp)
        return xp.take(dataset.X_train, index, axis=0), xp.take(dataset.Y_train, index, axis=0), dataset.y_train[rows]

    X, Y, y = take(train)
    X_val, Y_val, y_val = take(val)
    training = replace(dataset, X_train=X, Y_train=Y, y_train=y)
    validation = Dataset(X_train=X_val, Y_train=Y_val, y_train=y_val, X_test=X_val, Y_test=Y_val, y_test=y_val)
    return training, validation
