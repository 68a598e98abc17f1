"""The backends' single-pass optimizer kernels give the update rules' own results, bit for bit.

The first test runs on every backend for which ``backend.fused_kernels`` has kernels (NumPy with
Numba installed); the others test the Numba kernels themselves.
"""

from __future__ import annotations

import numpy as np
import pytest

from mnist_xp import backend as backends
from mnist_xp import optim
from mnist_xp.config import DEFAULT, TrainConfig
from mnist_xp.loop import TrainState, fit
from mnist_xp.pipeline import make_optimizer


@pytest.fixture
def kernels():
    """The Numba kernels module (skips where Numba cannot be imported)."""
    pytest.importorskip("numba", reason="the fused kernels need Numba")
    from mnist_xp import kernels

    return kernels


RULES = {
    "momentum": lambda kernel: optim.momentum(0.9, kernel=kernel and kernel.momentum),
    "nesterov": lambda kernel: optim.momentum(0.8, nesterov=True, kernel=kernel and kernel.momentum),
    "adam": lambda kernel: optim.adam(kernel=kernel and kernel.adam),
    "adamw": lambda kernel: optim.adam(beta1=0.8, epsilon=1e-6, weight_decay=0.05, kernel=kernel and kernel.adam),
}


def awkward_values(rng, shape, dtype):
    """Normal draws at many scales, with exact zeros, tiny and huge values mixed in."""
    values = rng.standard_normal(shape) * 10.0 ** rng.integers(-12, 4, shape)
    values[rng.random(shape) < 0.1] = 0.0
    return values.astype(dtype)


def parameters(rng, dtype, shapes=((7, 5), (5,), (5, 3), (3,))):
    arrays = [awkward_values(rng, shape, dtype) for shape in shapes]
    return list(zip(arrays[::2], arrays[1::2]))


def assert_identical(a, b):
    if isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_identical(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b, strict=True)
        assert np.array_equal(np.signbit(a), np.signbit(b))
    else:
        assert a == b


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_each_kernel_gives_its_rule_s_results_bit_for_bit_step_after_step(backend, rule, dtype):
    fused_kernels = backends.fused_kernels(backend.xp)
    if fused_kernels is None:
        pytest.skip(f"no fused kernels for {backend.name} here")

    def on_device(pairs):
        return [tuple(backend.asarray(a, dtype) for a in pair) for pair in pairs]

    reference, fused = RULES[rule](None), RULES[rule](fused_kernels)
    params = on_device(parameters(np.random.default_rng(7), dtype))
    state_ref = reference.init(params)
    state_fused = fused.init(params)
    params_ref = params_fused = params
    for step, rate in enumerate([0.1, 1e-3, 0.0, 3.0, 1e-7]):
        grads = on_device(parameters(np.random.default_rng(step), dtype))
        params_ref, state_ref = reference.update(params_ref, grads, state_ref, rate)
        params_fused, state_fused = fused.update(params_fused, grads, state_fused, rate)
        assert_identical(to_host(params_fused), to_host(params_ref))
        assert_identical(to_host(state_fused), to_host(state_ref))


def to_host(tree):
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_host(item) for item in tree)
    return tree if isinstance(tree, (int, float)) else backends.to_host(tree)


def test_kernels_decline_arrays_they_do_not_take_and_the_rule_runs_its_own_lines(kernels):
    rng = np.random.default_rng(1)
    p, g, v = (rng.standard_normal((6, 4)) for _ in range(3))
    assert kernels.momentum(p, g, v, 0.1, 0.9, False) is not None
    assert kernels.momentum(np.asfortranarray(p), g, v, 0.1, 0.9, False) is None
    assert kernels.momentum(p[:, ::2], g[:, ::2], v[:, ::2], 0.1, 0.9, False) is None
    assert kernels.momentum(p, g.astype(np.float32), v, 0.1, 0.9, False) is None
    half = [a.astype(np.float16) for a in (p, g, v)]
    assert kernels.momentum(*half, 0.1, 0.9, False) is None
    rule, plain = optim.momentum(0.9, kernel=kernels.KERNELS.momentum), optim.momentum(0.9)
    transposed = [(p.T, p[0])]
    state = rule.init(transposed)
    assert_identical(
        rule.update(transposed, [(g.T, g[0])], state, 0.1), plain.update(transposed, [(g.T, g[0])], state, 0.1)
    )


def test_the_backend_offers_the_numba_kernels_for_numpy_only(kernels):
    assert backends.fused_kernels(backends.namespace("cpu")) is kernels.KERNELS
    strict = pytest.importorskip("array_api_strict")
    assert backends.fused_kernels(backends.array_namespace(strict.asarray(0.0))) is None


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_training_with_the_kernels_is_bit_for_bit_training_without(kernels, optimizer):
    rng = np.random.default_rng(3)
    X = rng.random((200, 12)).astype(np.float32)
    Y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 200)]
    config = TrainConfig(**{**DEFAULT.__dict__, "optimizer": optimizer})
    results = []
    for xp in (None, backends.namespace("cpu")):
        rule = make_optimizer(config, xp)
        start = [
            (W.copy(), b.copy())
            for W, b in parameters(np.random.default_rng(4), "float32", ((12, 8), (8,), (8, 4), (4,)))
        ]
        state = TrainState(start, rule.init(start))
        fit(state, X, Y, optimizer=rule, learning_rate=0.05, epochs=3, batch_size=32, dropout=0.1, l2=1e-3, seed=1)
        results.append((state.params, state.opt_state))
    assert_identical(results[1], results[0])


def test_plain_sgd_runs_never_load_numba():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from mnist_xp import backend\n"
        "from mnist_xp.config import DEFAULT\n"
        "from mnist_xp.pipeline import make_optimizer\n"
        "make_optimizer(DEFAULT, backend.namespace('cpu'))\n"
        "print('numba' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert DEFAULT.optimizer == "sgd" and result.stdout.strip() == "False"
