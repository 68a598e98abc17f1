"""Dropping always-zero input columns changes the work, not the result."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_xp import backend as backends
from mnist_xp import data, nn
from mnist_xp.loop import COLUMN_ALIGNMENT, CompactInputs, TrainState, batch_dropout, compact_inputs, train_step
from mnist_xp.optim import adam, sgd


def test_compact_inputs_drop_the_columns_zero_in_every_sample_keeping_an_aligned_width(backend):
    rng = np.random.default_rng(0)
    host = rng.uniform(size=(3, 2 * COLUMN_ALIGNMENT + 8))
    zero = [0, 2, 5, 6, 9, 11, 20, 30, 31, 39]  # 30 nonzero columns: the first 2 zero ones stay
    host[:, zero] = 0.0
    host[1, 7] = 0.0  # zero in one sample only: kept
    inputs = compact_inputs(backend.asarray(host))
    expected = np.ones(host.shape[1], dtype=bool)
    expected[zero[2:]] = False
    np.testing.assert_array_equal(backend.to_numpy(inputs.columns), np.flatnonzero(expected))
    rows = np.full(host.shape[1], expected.sum())
    rows[expected] = np.arange(expected.sum())
    np.testing.assert_array_equal(backend.to_numpy(inputs.gradient_rows), rows)
    np.testing.assert_array_equal(backend.to_numpy(inputs.X), host[:, expected])
    assert inputs.X.shape[1] % COLUMN_ALIGNMENT == 0
    assert compact_inputs(backend.asarray(host[:, 12:22])).columns is None  # too few zero columns to gain


@pytest.mark.parametrize("make_optimizer, lr", [(sgd, 0.5), (adam, 1e-3)], ids=["sgd", "adam"])
@pytest.mark.parametrize("batch", [None, 50], ids=["full-batch", "mini-batch"])
@pytest.mark.parametrize("dropout, l2", [(0.0, 0.0), (0.3, 1e-2)], ids=["plain", "dropout-l2"])
def test_steps_on_compacted_mnist_match_the_plain_steps(backend, make_optimizer, lr, batch, dropout, l2):
    dataset = data.load(backend.xp, "float64", limit=300)
    X, Y = dataset.X_train, dataset.Y_train
    inputs = compact_inputs(X)
    assert inputs.columns is not None and inputs.X.shape[1] < X.shape[1]  # MNIST's border pixels are all blank

    def run(batches):
        params = nn.init_params([784, 16, 10], backends.standard_normal(backends.host_rng(3), backend.xp, "float64"))
        optimizer = make_optimizer()
        state = TrainState(params, optimizer.init(params))
        for number, start in enumerate(range(0, X.shape[0], batch or X.shape[0])):
            rows = backend.xp.arange(start, min(start + (batch or X.shape[0]), X.shape[0]))
            masks = batch_dropout(state.params, rows.shape[0], dropout, 3, 1, number, "float64")
            train_step(state, batches.take(rows), backend.xp.take(Y, rows, axis=0), optimizer, lr, "relu", masks, l2)
        return state.params

    plain = run(CompactInputs(X, None))
    compact = run(inputs)
    for (W_plain, b_plain), (W, b) in zip(plain, compact):
        np.testing.assert_allclose(backend.to_numpy(W), backend.to_numpy(W_plain), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(backend.to_numpy(b), backend.to_numpy(b_plain), rtol=1e-12, atol=1e-15)
