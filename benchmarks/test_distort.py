"""What distorting every image costs: an epoch of the ``elastic`` recipe's network with and without it.

``ours`` is one epoch of ``loop.fit`` of 784-800-10 at the recipe's batch size and update rule, on
undistorted images; ``ours-distorted`` the same epoch with the recipe's distortions (elastic and
affine, a new draw for every image), drawn and applied on the device as training does. The report's
``ours/variant`` is then 1 / (1 + the distortions' share of a step).
"""

from __future__ import annotations

import pytest

from mnist_xp import augment, backend
from mnist_xp.config import recipe
from mnist_xp.loop import TrainState, fit
from mnist_xp.pipeline import initial_state, make_optimizer

from .workload import mnist, record, step_flop

RECIPE = recipe("elastic")
ROUNDS = {"rounds": 5, "warmup_rounds": 1}


@pytest.mark.parametrize("distorted", [False, True], ids=["plain", "distorted"])
def test_elastic_epoch(benchmark, distorted, train_limit):
    X, Y, _ = mnist("cpu", RECIPE.dtype, train_limit)
    xp = backend.namespace("cpu")
    layers = [X.shape[1], *RECIPE.hidden, Y.shape[1]]
    optimizer = make_optimizer(RECIPE, xp)
    state: TrainState = initial_state(RECIPE, layers, xp, optimizer)
    distortion = augment.from_config(RECIPE) if distorted else None

    def one_epoch():
        return fit(
            state, X, Y, optimizer=optimizer, learning_rate=RECIPE.lr * 0.01, epochs=state.epoch + 1,
            batch_size=RECIPE.batch_size, seed=RECIPE.seed, distortion=distortion,
        )  # fmt: skip

    benchmark.pedantic(one_epoch, **ROUNDS)
    flop = step_flop(X.shape[0], layers)
    impl = "ours-distorted" if distorted else "ours"
    record(benchmark, impl=impl, work="elastic-epoch", device="cpu", dtype=RECIPE.dtype, samples=X.shape[0], flop=flop,
           batch=RECIPE.batch_size)  # fmt: skip
