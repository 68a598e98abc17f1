"""Where a training step's time goes on this machine, piece by piece (medians, in milliseconds).

    python -m benchmarks.profile_step [--reps N] [--limit N]

Three profiles of the 784-128-10 network on the real training set, on the CPU:

- the full-batch SGD step (float32 and float64) as ``training.train_step`` runs it: the products
  and the element-wise pieces of one block of rows (``backend.row_blocks``), each on one thread
  as ``backend.map_blocks`` runs them, then the whole blocked step against the same step unsplit
  with the BLAS on its default threads, and the floor (the five products on the inputs as loaded);
- the batch-128 Adam step: its forward, loss, backward and update (with and without the single-pass
  update compiled by Numba), and the step as a whole.

The machine's CPU model, BLAS kernel and ``OPENBLAS_*`` variables head the output.
"""

from __future__ import annotations

import argparse
import platform
import time
from contextlib import nullcontext

import numpy as np
from threadpoolctl import threadpool_limits

from mnist_xp import backend, nn
from mnist_xp.loop import CompactInputs, TrainState, compact_inputs, epoch_order, train_step
from mnist_xp.optim import adam, sgd

from .machine import blas_libraries, describe, openblas_env
from .workload import SEED, SGD_LR, floor_products, host_params, mnist


def median_ms(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1e3


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def block_pieces(X, Y, params):
    """The pieces of ``nn.loss_and_grads`` on one block, as (name, kind, thunk); kind is 'product' or 'element-wise'."""
    (W1, b1), (W2, b2) = params
    Z1 = X @ W1
    A1 = nn.relu(Z1 + b1)
    Z2 = A1 @ W2 + b2
    P, _ = nn.output_probabilities_and_loss(Z2, Y)
    dZ2 = (P - Y) / Y.shape[0]
    dZ1 = dZ2 @ W2.T
    mask = nn.relu_derivative(A1)
    return [
        ("X W1", "product", lambda: X @ W1),
        ("+ b1", "element-wise", lambda: Z1 + b1),
        ("ReLU", "element-wise", lambda: nn.relu(Z1)),
        ("A1 W2", "product", lambda: A1 @ W2),
        ("+ b2", "element-wise", lambda: Z2 + b2),
        ("softmax and loss", "element-wise", lambda: nn.output_probabilities_and_loss(Z2, Y)),
        ("dZ2 = (P - Y) / m", "element-wise", lambda: (P - Y) / Y.shape[0]),
        ("A1^T dZ2", "product", lambda: A1.T @ dZ2),
        ("db2", "element-wise", lambda: nn.column_sums(dZ2)),
        ("dZ2 W2^T", "product", lambda: dZ2 @ W2.T),
        ("ReLU'", "element-wise", lambda: nn.relu_derivative(A1)),
        ("dZ1 *= ReLU'", "element-wise", lambda: dZ1 * mask),
        ("X^T dZ1", "product", lambda: X.T @ dZ1),
        ("db1", "element-wise", lambda: nn.column_sums(dZ1)),
    ]


def full_batch(dtype: str, reps: int, limit: int | None) -> list[str]:
    X, Y, _ = mnist("cpu", dtype, limit)
    params = host_params(dtype)
    inputs = compact_inputs(X)
    kept = [(inputs.first_layer(params[0][0]), params[0][1]), params[1]]
    blocks = backend.row_blocks(X, X.shape[0])
    start, stop = blocks[0]
    lines = [
        f"### Full-batch SGD step, {dtype}, {X.shape[0]} images in {len(blocks)} blocks of about {stop - start} rows",
        "",
    ]
    lines += ["| piece (one block, one thread) | kind | ms |", "|---|---|---:|"]
    totals = {"product": 0.0, "element-wise": 0.0}
    with threadpool_limits(1, user_api="blas") if len(blocks) > 1 else nullcontext():
        for name, kind, thunk in block_pieces(inputs.X[start:stop], Y[start:stop], kept):
            ms = median_ms(thunk, reps)
            totals[kind] += ms
            lines.append(f"| {name} | {kind} | {ms:.3f} |")
    lines += [
        f"| all products | | {totals['product']:.3f} |",
        f"| all element-wise | | {totals['element-wise']:.3f} |",
        "",
    ]
    optimizer = sgd()
    state = TrainState(params, optimizer.init(params))
    whole = [
        ("the step, in blocks side by side", lambda: train_step(state, inputs, Y, optimizer, SGD_LR)),
        ("the step unsplit, BLAS on its threads", lambda: unsplit_step(state, inputs, Y, optimizer)),
        ("floor: the five products", floor_products(X, Y, params)),
    ]
    lines += ["| whole step | ms |", "|---|---:|"]
    lines += [f"| {name} | {median_ms(thunk, reps):.1f} |" for name, thunk in whole]
    return lines + [""]


def unsplit_step(state, inputs, Y, optimizer):
    """``train_step`` with the whole batch as one block, as it ran before steps were split."""
    serial_rows = backend.SERIAL_ROWS
    backend.SERIAL_ROWS = Y.shape[0]
    try:
        return train_step(state, inputs, Y, optimizer, SGD_LR)
    finally:
        backend.SERIAL_ROWS = serial_rows


def adam_step(batch_size: int, reps: int, limit: int | None) -> list[str]:
    X, Y, _ = mnist("cpu", "float32", limit)
    params = host_params("float32")
    optimizer = adam()
    state = TrainState(params, optimizer.init(params))
    rows = epoch_order(SEED, 1, X.shape[0])[:batch_size]
    X_rows, Y_rows = np.take(X, rows, axis=0), np.take(Y, rows, axis=0)
    outputs = nn.forward(params, X_rows)
    probabilities, _ = nn.output_probabilities_and_loss(outputs[-1], Y_rows)
    _, grads = nn.loss_and_grads(params, X_rows, Y_rows)
    opt_state = optimizer.init(params)
    kernels = backend.fused_kernels(backend.namespace("cpu"))
    fused = adam(kernel=kernels.adam) if kernels is not None else None
    fused_state = TrainState(params, optimizer.init(params))
    pieces = [
        ("gather the batch", lambda: np.take(X, rows, axis=0)),
        ("forward", lambda: nn.forward(params, X_rows)),
        ("softmax and loss", lambda: nn.output_probabilities_and_loss(outputs[-1], Y_rows)),
        ("backward", lambda: nn.backward(params, outputs, Y_rows, probabilities=probabilities)),
        ("Adam update, optim.adam's own lines", lambda: optimizer.update(params, grads, opt_state, 1e-3)),
        ("the whole step, so", lambda: train_step(state, CompactInputs(X_rows, None), Y_rows, optimizer, 1e-3)),
    ]
    if fused is not None:
        pieces += [
            ("Adam update, single pass (Numba)", lambda: fused.update(params, grads, opt_state, 1e-3)),
            ("the whole step, so", lambda: train_step(fused_state, CompactInputs(X_rows, None), Y_rows, fused, 1e-3)),
        ]
    lines = [f"### Adam step, batch {batch_size}, float32", "", "| piece | µs |", "|---|---:|"]
    with backend.serial_blas(X):
        lines += [f"| {name} | {median_ms(thunk, reps * 40) * 1e3:.0f} |" for name, thunk in pieces]
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_step", description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=9, help="timed repetitions of each full-batch piece (default 9)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only (default all)")
    args = parser.parse_args(argv)
    backend.keep_freed_memory()
    header = [
        f"CPU: {cpu_model()}; BLAS: {describe(blas_libraries())}; OPENBLAS_* variables: {openblas_env() or 'none set'}",
        "",
    ]
    body = full_batch("float32", args.reps, args.limit) + full_batch("float64", args.reps, args.limit)
    print("\n".join(header + body + adam_step(128, args.reps, args.limit)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
