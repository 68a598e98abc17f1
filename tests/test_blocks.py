"""Large NumPy batches computed in blocks of rows, side by side: the same step, whatever the number of cores."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from mnist_xp import backend as backends
from mnist_xp import nn
from mnist_xp.loop import TrainState, fit
from mnist_xp.optim import adam


def problem(asarray, rows=300, sizes=(20, 16, 10), seed=0):
    """Random inputs, one-hot targets (a 0/1 column for a single unit) and parameters, made by ``asarray``."""
    rng = np.random.default_rng(seed)
    X = asarray(rng.random((rows, sizes[0])))
    labels = rng.integers(0, max(sizes[-1], 2), rows)
    Y = asarray(np.eye(max(sizes[-1], 2))[labels][:, : sizes[-1]])
    params = nn.init_params(list(sizes), lambda shape: asarray(rng.standard_normal(shape)))
    return X, Y, params


def blocks_of(rows, size):
    return [(start, min(start + size, rows)) for start in range(0, rows, size)]


@pytest.mark.parametrize("classes", [10, 1], ids=["softmax", "sigmoid"])
@pytest.mark.parametrize("with_dropout", [False, True], ids=["plain", "dropout"])
def test_loss_and_grads_in_blocks_equal_those_of_the_whole_batch(backend, classes, with_dropout):
    X, Y, params = problem(backend.asarray, sizes=(20, 16, 12, classes))
    dropout = None
    if with_dropout:
        rng = np.random.default_rng(1)
        draws = [backend.asarray(rng.random((X.shape[0], W.shape[1]))) for W, _ in params[:-1]]
        dropout = nn.dropout_masks(draws, 0.3)._replace(
            input_mask=nn.dropout_mask(backend.asarray(rng.random(tuple(X.shape))), 0.2)
        )
    whole_loss, whole_grads = nn.loss_and_grads(params, X, Y, "relu", dropout)
    loss, grads = nn.loss_and_grads_in_blocks(params, X, Y, blocks_of(300, 70), None, "relu", dropout)
    assert float(loss) == pytest.approx(float(whole_loss), rel=1e-12)
    for pair, whole_pair in zip(grads, whole_grads):
        for part, whole in zip(pair, whole_pair):
            np.testing.assert_allclose(backend.to_numpy(part), backend.to_numpy(whole), rtol=1e-10, atol=1e-14)


def test_a_single_block_is_the_plain_step_itself(backend):
    X, Y, params = problem(backend.asarray)
    loss, grads = nn.loss_and_grads_in_blocks(params, X, Y, [(0, 300)])
    whole_loss, whole_grads = nn.loss_and_grads(params, X, Y)
    assert float(loss) == float(whole_loss)
    for pair, whole_pair in zip(grads, whole_grads):
        for part, whole in zip(pair, whole_pair):
            np.testing.assert_array_equal(backend.to_numpy(part), backend.to_numpy(whole))


def test_only_numpy_batches_over_the_serial_size_are_split_into_two_blocks_or_more():
    big = backends.BLOCK_ROWS * 7 + 3
    X = np.zeros((1, 1))
    blocks = backends.row_blocks(X, big)
    assert len(blocks) == 8
    assert blocks[0][0] == 0 and blocks[-1][1] == big
    assert all(stop == next_start for (_, stop), (next_start, _) in zip(blocks, blocks[1:]))
    sizes = [stop - start for start, stop in blocks]
    assert max(sizes) <= backends.BLOCK_ROWS and max(sizes) - min(sizes) <= 1
    half = backends.BLOCK_ROWS // 2
    assert backends.row_blocks(X, backends.BLOCK_ROWS) == [(0, half), (half, backends.BLOCK_ROWS)]
    assert backends.row_blocks(X, backends.SERIAL_ROWS) == [(0, backends.SERIAL_ROWS)]
    assert len(backends.row_blocks(X, backends.SERIAL_ROWS + 1)) == 2
    strict = pytest.importorskip("array_api_strict")
    assert backends.row_blocks(strict.asarray([1.0]), big) == [(0, big)]


def test_map_blocks_keeps_the_order_and_runs_the_blas_on_one_thread_meanwhile():
    def block(start, stop):
        threads = {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}
        return start, stop, threads

    blocks = blocks_of(100, 10)
    results = backends.map_blocks(block, blocks)
    assert [(start, stop) for start, stop, _ in results] == blocks
    assert all(threads == {1} for _, _, threads in results)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_can_still_compute_blocks():
    blocks = blocks_of(40, 10)
    assert backends.map_blocks(lambda start, stop: stop - start, blocks) == [10] * 4
    child = os.fork()
    if child == 0:
        try:
            os._exit(0 if backends.map_blocks(lambda start, stop: start, blocks) == [0, 10, 20, 30] else 1)
        finally:
            os._exit(2)
    for _ in range(200):
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        pytest.fail("the forked child hung in map_blocks")
    assert os.waitstatus_to_exitcode(status) == 0


def test_made_ahead_gives_each_result_in_turn_made_on_another_thread():
    main = threading.get_ident()
    made = list(backends.made_ahead(lambda index: (index, threading.get_ident()), 5, np.zeros(1)))
    assert [index for index, _ in made] == [0, 1, 2, 3, 4]
    assert all(thread != main for _, thread in made)


def test_made_ahead_makes_each_result_when_asked_on_one_core_or_another_namespace(monkeypatch):
    asked = []

    def make(index):
        asked.append(index)
        return index, threading.get_ident()

    strict = pytest.importorskip("array_api_strict")
    made = backends.made_ahead(make, 3, strict.asarray([1.0]))
    assert asked == []
    assert next(made) == (0, threading.get_ident()) and asked == [0]
    assert list(made) == [(1, threading.get_ident()), (2, threading.get_ident())]
    monkeypatch.setattr(backends, "_cores", lambda: 1)
    made = backends.made_ahead(make, 3, np.zeros(1))
    assert next(made) == (0, threading.get_ident()) and asked == [0, 1, 2, 0]
    assert list(made) == [(1, threading.get_ident()), (2, threading.get_ident())]


def test_made_ahead_raises_what_the_work_raised():
    def make(index):
        if index == 2:
            raise ValueError("bad batch")
        return index

    made = backends.made_ahead(make, 4, np.zeros(1))
    assert [next(made), next(made)] == [0, 1]
    with pytest.raises(ValueError, match="bad batch"):
        next(made)


def train_full_batch(X, Y, params, epochs=3):
    optimizer = adam()
    state = TrainState([(W.copy(), b.copy()) for W, b in params], optimizer.init(params))
    return fit(state, X, Y, optimizer=optimizer, learning_rate=1e-2, epochs=epochs, dropout=0.2, seed=3).params


def test_blocked_training_is_bit_for_bit_the_same_on_one_core_or_several(monkeypatch):
    X, Y, params = problem(np.asarray)
    monkeypatch.setattr(backends, "SERIAL_ROWS", 32)
    monkeypatch.setattr(backends, "BLOCK_ROWS", 64)
    assert len(backends.row_blocks(X, X.shape[0])) == 5
    several = train_full_batch(X, Y, params)
    monkeypatch.setattr(backends, "_block_pool", lambda: ThreadPoolExecutor(max_workers=1))
    one = train_full_batch(X, Y, params)
    for pair, other in zip(several, one):
        for a, b in zip(pair, other):
            np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(backends, "SERIAL_ROWS", 10_000)
    whole = train_full_batch(X, Y, params)
    for pair, other in zip(several, whole):
        for a, b in zip(pair, other):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
