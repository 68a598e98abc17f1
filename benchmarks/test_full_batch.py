"""One full-batch training step on all 60,000 training images, and its parts, against the peers.

``ours`` is ``loop.train_step`` on ``loop.compact_inputs`` (what ``fit`` runs);
``ours-plain`` the same step on the inputs as loaded; ``floor`` only the five matrix products
a step cannot avoid, on the inputs as loaded, with the same library; ``ours-torch`` and ``ours-jax``
our step on PyTorch tensors and JAX arrays, eager and compiled.
"""

from __future__ import annotations

import pytest

from mnist_xp import backend, nn
from mnist_xp.loop import CompactInputs, TrainState, compact_inputs, compiled_train_step, scanned_epoch, train_step
from mnist_xp.optim import sgd
from mnist_xp.schedules import constant

from .peers import keras_model, torch_model, torch_synchronized
from .workload import (
    LAYERS,
    LIBRARIES,
    SEED,
    SGD_LR,
    backward_flop,
    engine,
    floor_products,
    forward_flop,
    host_params,
    mnist,
    record,
    step_flop,
)

DTYPES = ("float32", "float64")
ROUNDS = {"rounds": 5, "warmup_rounds": 1}


def device_params(device: str, dtype: str):
    xp = backend.namespace(device)
    return [(backend.to_device(W, xp), backend.to_device(b, xp)) for W, b in host_params(dtype)]


def synchronized(fn, device_array):
    def run():
        result = fn()
        backend.synchronize(device_array)
        return result

    return run


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward(benchmark, device, dtype, train_limit):
    X, _, _ = mnist(device, dtype, train_limit)
    params = device_params(device, dtype)
    benchmark.pedantic(synchronized(lambda: nn.forward(params, X), X), **ROUNDS)
    record(benchmark, impl="ours", work="forward", device=device, dtype=dtype, samples=X.shape[0], flop=forward_flop(X.shape[0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward(benchmark, device, dtype, train_limit):
    X, Y, _ = mnist(device, dtype, train_limit)
    params = device_params(device, dtype)
    outputs = nn.forward(params, X)
    benchmark.pedantic(synchronized(lambda: nn.backward(params, outputs, Y), X), **ROUNDS)
    record(benchmark, impl="ours", work="backward", device=device, dtype=dtype, samples=X.shape[0], flop=backward_flop(X.shape[0]))


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "plain"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_step(benchmark, device, dtype, compact, train_limit):
    X, Y, _ = mnist(device, dtype, train_limit)
    params = device_params(device, dtype)
    optimizer = sgd()
    state = TrainState(params, optimizer.init(params))
    inputs = compact_inputs(X) if compact else CompactInputs(X, None)
    benchmark.pedantic(synchronized(lambda: train_step(state, inputs, Y, optimizer, SGD_LR), X), **ROUNDS)
    impl = "ours" if compact else "ours-plain"
    record(benchmark, impl=impl, work="step", device=device, dtype=dtype, samples=X.shape[0], flop=step_flop(X.shape[0]))


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("library", LIBRARIES)
def test_step_on_other_libraries(benchmark, device, library, compile, train_limit):
    """``ours-torch`` and ``ours-jax``, float32: the step that ``fit`` runs on PyTorch tensors and JAX arrays, eager
    and compiled (a ``torch.compile``'d update; on JAX an epoch of one step, one program)."""
    to_xp, wait = engine(library, device)[1:]
    X, Y = (to_xp(host) for host in mnist("cpu", "float32", train_limit)[:2])
    params = [(to_xp(W), to_xp(b)) for W, b in host_params("float32")]
    optimizer = sgd()
    state = TrainState(params, optimizer.init(params))
    inputs = compact_inputs(X)
    step = compiled_train_step(optimizer, "relu", 0.0, X) if compile and library == "torch" else train_step
    settings = {"optimizer": optimizer, "schedule": constant(SGD_LR), "activation": "relu", "seed": SEED, "epoch": 1}
    settings |= {"shuffle": False, "dropout": 0.0, "input_dropout": 0.0, "l2": 0.0, "shift": 0}

    def timed():
        if compile and library == "jax":
            scanned_epoch(state, inputs, Y, [(0, X.shape[0])], **settings)
        else:
            step(state, inputs, Y, optimizer, SGD_LR)
        wait(state.params)

    benchmark.pedantic(timed, **ROUNDS)
    impl = f"ours-{library}" + ("-compiled" if compile else "")
    record(benchmark, impl=impl, work="step", device=device, dtype="float32", samples=X.shape[0], flop=step_flop(X.shape[0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_floor(benchmark, device, dtype, train_limit):
    """The products of one step alone: X W1, A1 W2 forward; A1^T dZ2, dZ2 W2^T, X^T dZ1 backward."""
    X, Y, _ = mnist(device, dtype, train_limit)
    benchmark.pedantic(synchronized(floor_products(X, Y, device_params(device, dtype)), X), **ROUNDS)
    record(benchmark, impl="floor", work="step", device=device, dtype=dtype, samples=X.shape[0], flop=step_flop(X.shape[0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_keras_train_on_batch(benchmark, dtype, train_limit):
    X, Y, _ = mnist("cpu", dtype, train_limit)
    model = keras_model(host_params(dtype), dtype, lambda keras: keras.optimizers.SGD(SGD_LR))
    benchmark.pedantic(lambda: model.train_on_batch(X, Y), **ROUNDS)
    record(benchmark, impl="keras", work="step", device="cpu", dtype=dtype, samples=X.shape[0], flop=step_flop(X.shape[0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_eager_step(benchmark, device, dtype, train_limit):
    X, _, labels = mnist("cpu", dtype, train_limit)
    model, torch, target = torch_model(host_params(dtype), dtype, device)
    X_t, labels_t = torch.from_numpy(X).to(target), torch.from_numpy(labels).to(target)
    optimizer = torch.optim.SGD(model.parameters(), lr=SGD_LR)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(X_t), labels_t)
        loss.backward()
        optimizer.step()
        return loss

    benchmark.pedantic(torch_synchronized(torch, step), **ROUNDS)
    record(benchmark, impl="torch", work="step", device=device, dtype=dtype, samples=X.shape[0], flop=step_flop(X.shape[0]))


def test_flop_counts_match_the_layer_shapes():
    """784-128-10 on n samples: forward n(784*128 + 128*10) multiply-adds, backward one product more."""
    n = 60_000
    assert forward_flop(n) == 2 * n * (LAYERS[0] * LAYERS[1] + LAYERS[1] * LAYERS[2])
    assert backward_flop(n) == forward_flop(n) + 2 * n * LAYERS[1] * LAYERS[2]
