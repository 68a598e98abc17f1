"""One epoch of Adam (Keras's defaults) over the 60,000 training images at batch 32 and 128.

``ours`` is ``loop.fit`` for one more epoch, with the update as ``train`` runs it (``ours-unfused``:
without the backend's single-pass kernel); Keras runs ``fit`` for one epoch; PyTorch
an eager loop with ``torch.optim.Adam`` set to Keras's epsilon. Each library shuffles its
own way; the work (one forward, backward and update per batch) is the same. Ours and PyTorch
also run on the GPU where there is one (Keras only on the CPU). ``ours-torch`` and ``ours-jax``
are our engine on PyTorch tensors and JAX arrays, eager and compiled (``-compiled``: ``fit``
with ``compile=True``, timed after a first epoch that compiles).
"""

from __future__ import annotations

import pytest

from mnist_xp import backend
from mnist_xp.loop import TrainState, epoch_order, fit
from mnist_xp.optim import adam

from .peers import keras_model, torch_model, torch_synchronized
from .workload import ADAM_LR, BATCH_SIZES, LIBRARIES, SEED, engine, host_params, mnist, record, step_flop

DTYPE = "float32"
ROUNDS = {"rounds": 2, "warmup_rounds": 0}


def record_epoch(benchmark, impl, device, n, batch_size):
    record(benchmark, impl=impl, work="adam-epoch", device=device, dtype=DTYPE, samples=n, flop=step_flop(n), batch=batch_size)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_ours_adam_epoch(benchmark, device, batch_size, fused, train_limit):
    """``ours`` updates with the backend's single-pass kernel where it has one, as ``train`` does; ``ours-unfused``
    with ``optim.adam``'s own lines."""
    X, Y, _ = mnist(device, DTYPE, train_limit)
    xp = backend.namespace(device)
    params = [(backend.to_device(W, xp), backend.to_device(b, xp)) for W, b in host_params(DTYPE)]
    kernels = backend.fused_kernels(xp) if fused else None
    optimizer = adam(kernel=kernels and kernels.adam)
    state = TrainState(params, optimizer.init(params))

    def one_epoch():
        return fit(state, X, Y, optimizer=optimizer, learning_rate=ADAM_LR, epochs=state.epoch + 1, batch_size=batch_size, seed=SEED)

    benchmark.pedantic(one_epoch, **ROUNDS)
    record_epoch(benchmark, "ours" if fused else "ours-unfused", device, X.shape[0], batch_size)


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_ours_adam_epoch_on_other_libraries(benchmark, device, batch_size, library, compile, train_limit):
    if train_limit is not None and batch_size != max(BATCH_SIZES):
        pytest.skip("untimed, one batch size runs every line (and compiles once)")
    to_xp = engine(library, device).to_xp
    X, Y = (to_xp(host) for host in mnist("cpu", DTYPE, train_limit)[:2])
    params = [(to_xp(W), to_xp(b)) for W, b in host_params(DTYPE)]
    optimizer = adam()
    state = TrainState(params, optimizer.init(params))

    def one_epoch():
        fit(state, X, Y, optimizer=optimizer, learning_rate=ADAM_LR, epochs=state.epoch + 1, batch_size=batch_size, seed=SEED, compile=compile)

    benchmark.pedantic(one_epoch, rounds=2, warmup_rounds=1 if compile else 0)
    impl = f"ours-{library}" + ("-compiled" if compile else "")
    record_epoch(benchmark, impl, device, X.shape[0], batch_size)


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_keras_fit_adam_epoch(benchmark, batch_size, train_limit):
    X, Y, _ = mnist("cpu", DTYPE, train_limit)
    model = keras_model(host_params(DTYPE), DTYPE, lambda keras: keras.optimizers.Adam(ADAM_LR))
    # Trace the training function for both batch shapes (full and last) before timing.
    warm = batch_size + X.shape[0] % batch_size
    model.fit(X[:warm], Y[:warm], batch_size=batch_size, epochs=1, verbose=0)
    benchmark.pedantic(lambda: model.fit(X, Y, batch_size=batch_size, epochs=1, verbose=0), **ROUNDS)
    record_epoch(benchmark, "keras", "cpu", X.shape[0], batch_size)


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_torch_eager_adam_epoch(benchmark, device, batch_size, train_limit):
    X, _, labels = mnist("cpu", DTYPE, train_limit)
    model, torch, target = torch_model(host_params(DTYPE), DTYPE, device)
    X_t, labels_t = torch.from_numpy(X).to(target), torch.from_numpy(labels).to(target)
    optimizer = torch.optim.Adam(model.parameters(), lr=ADAM_LR, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = X.shape[0]
    epochs = iter(range(1, 1_000_000))

    def one_epoch():
        order = torch.from_numpy(epoch_order(SEED, next(epochs), n)).to(target)
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(X_t[rows]), labels_t[rows])
            loss.backward()
            optimizer.step()

    benchmark.pedantic(torch_synchronized(torch, one_epoch), **ROUNDS)
    record_epoch(benchmark, "torch", device, n, batch_size)
