"""The training loop: batches in, updated parameters and a per-epoch history out.

It works on whatever namespace the data lives in. Everything a run needs to continue is in
a ``TrainState``; each epoch's batch order comes from a generator seeded with ``(seed,
epoch)``, so a run resumed from any epoch sees the same batches as one never stopped.
With ``compile``, the same steps run compiled (``compiled``): on JAX a whole epoch is one program.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from array_api_compat import array_namespace, device

from . import augment, compiled, nn
from .backend import (
    host_generator,
    keep_freed_memory,
    made_ahead,
    map_blocks,
    row_blocks,
    serial_blas,
    synchronize,
    to_device,
    uniform_sampler,
)
from .schedules import constant
from .values import dtype_name, is_finite_number, is_whole_number


@dataclass
class EpochResult:
    """What one finished epoch reports; callbacks may add metrics (validation accuracy, ...)."""

    epoch: int
    loss: float
    seconds: float
    learning_rate: float
    metrics: dict = field(default_factory=dict)


@dataclass
class TrainState:
    """Everything a run needs to go on: parameters, optimizer state, epochs and steps done, history."""

    params: list
    opt_state: object
    epoch: int = 0
    step: int = 0
    history: list = field(default_factory=list)

    @property
    def losses(self):
        return [result.loss for result in self.history]


def history_records(history) -> list[dict]:
    """A run's ``EpochResult``s as plain dicts (epoch, loss, seconds, learning_rate, metrics) for JSON."""
    return [dataclasses.asdict(result) for result in history]


def history_from_records(records) -> list[EpochResult]:
    """Stored records (as ``history_records`` makes them) back to ``EpochResult``s, after checking them.

    Epochs are numbered 1, 2, ...; loss, time and rate are finite numbers; metrics are named
    numbers (or other JSON scalars a callback recorded). A ValueError says what is wrong otherwise.
    """
    if not isinstance(records, list):
        raise ValueError("the training history is not a list of records")
    names = {item.name for item in dataclasses.fields(EpochResult)}
    results = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict) or set(record) != names:
            raise ValueError(f"history record {number} has the wrong fields")
        metrics = record["metrics"]
        valid = (
            is_whole_number(record["epoch"])
            and record["epoch"] == number
            and all(is_finite_number(record[key]) for key in ("loss", "seconds", "learning_rate"))
            and isinstance(metrics, dict)
            and all(isinstance(name, str) and _is_scalar(value) for name, value in metrics.items())
        )
        if not valid:
            raise ValueError(f"history record {number} is invalid")
        results.append(EpochResult(**record))
    return results


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (str, bool, int, float))


def batch_slices(n: int, batch_size: int | None):
    """Index ranges of consecutive batches over ``n`` samples (one batch if ``batch_size`` is None)."""
    size = n if batch_size is None else batch_size
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled sample order of ``epoch``: a pure function of (seed, epoch)."""
    return host_generator("order", seed, epoch).permutation(n)


@dataclass(frozen=True)
class CompactInputs:
    """Training inputs without the columns that are zero in every sample (67 of MNIST's 784 pixels).

    Such a column adds exactly nothing to the first layer's products, and its weights' loss
    gradient is exactly zero, so dropping it once gives the same step for less work.
    ``X`` holds the kept columns and ``columns`` their indices (None when every column is kept);
    ``gradient_rows`` gives each input column its row in the kept rows' gradient, or one past
    them (a row of zeros) where the column was dropped. Both ways are gathers of fixed size:
    a boolean index would make each step wait for the GPU to count its elements.
    """

    X: object
    columns: object | None
    gradient_rows: object | None = None

    def take(self, rows) -> CompactInputs:
        """The samples ``rows`` (an index array) of these inputs."""
        return CompactInputs(nn.namespace_of(self.X).take(self.X, rows, axis=0), self.columns, self.gradient_rows)

    def first_layer(self, W):
        """The rows of the first layer's weights that meet the kept columns."""
        return array_namespace(W).take(W, self.columns, axis=0)

    def full_gradient(self, dW_kept):
        """The first layer's weight gradient from its kept rows: exactly zero on the dropped ones."""
        xp = array_namespace(dW_kept)
        zeros = xp.zeros((1, dW_kept.shape[1]), dtype=dW_kept.dtype, device=device(dW_kept))
        return xp.take(xp.concat([dW_kept, zeros]), self.gradient_rows, axis=0)


COLUMN_ALIGNMENT = 16
"""Kept columns are rounded up to a multiple of this (a 64-byte row in float32) with zero columns."""


def compact_inputs(X) -> CompactInputs:
    """Drop the columns of ``X`` that are zero in every sample (one pass over the set, once a run).

    The first few all-zero columns stay, so that the kept width is a multiple of
    ``COLUMN_ALIGNMENT``: rows of an aligned width suit the matrix-product kernels better.
    """
    xp = array_namespace(X)
    index = xp.__array_namespace_info__().default_dtypes(device=device(X))["indexing"]
    kept = xp.any(X != 0, axis=0)
    width = int(xp.sum(xp.astype(kept, index)))
    padding = -width % COLUMN_ALIGNMENT
    if width + padding >= X.shape[1]:
        return CompactInputs(X, None)
    dropped_rank = xp.cumulative_sum(xp.astype(~kept, index))
    kept = kept | (~kept & (dropped_rank <= padding))
    columns = xp.nonzero(kept)[0]
    kept_rank = xp.cumulative_sum(xp.astype(kept, index)) - 1
    gradient_rows = xp.where(kept, kept_rank, xp.asarray(columns.shape[0], dtype=kept_rank.dtype, device=device(X)))
    return CompactInputs(xp.take(X, columns, axis=1), columns, gradient_rows)


def update(
    params,
    opt_state,
    inputs: CompactInputs,
    Y,
    optimizer,
    learning_rate,
    activation: str = "relu",
    dropout: nn.Dropout | None = None,
    l2: float = 0.0,
):
    """One update on one batch: the new parameters and optimizer state, and the batch loss (still on the device).

    With compacted inputs the first layer works on the kept rows of its weights; the gradient
    rows of the dropped inputs are exactly zero and are filled in as such. The L2 term is
    added afterwards on the whole weights, since it does not vanish on the dropped rows.
    A large NumPy batch is computed in blocks of rows side by side (``backend.row_blocks``).
    Nothing is changed in place, so the update can also be traced into a compiled program.
    """
    used = params
    if inputs.columns is not None:
        W, b = params[0]
        used = [(inputs.first_layer(W), b), *params[1:]]
    blocks = row_blocks(inputs.X, inputs.X.shape[0])
    loss, grads = nn.loss_and_grads_in_blocks(used, inputs.X, Y, blocks, map_blocks, activation, dropout)
    if inputs.columns is not None:
        grads[0] = (inputs.full_gradient(grads[0][0]), grads[0][1])
    if l2:
        loss = loss + nn.l2_penalty(params, l2)
        grads = nn.add_l2_gradient(grads, params, l2)
    params, opt_state = optimizer.update(params, grads, opt_state, learning_rate)
    return params, opt_state, loss


def train_step(
    state: TrainState,
    inputs: CompactInputs,
    Y,
    optimizer,
    learning_rate: float,
    activation: str = "relu",
    dropout: nn.Dropout | None = None,
    l2: float = 0.0,
):
    """One ``update`` of ``state`` on one batch; returns the batch loss (still on the device)."""
    state.params, state.opt_state, loss = update(
        state.params, state.opt_state, inputs, Y, optimizer, learning_rate, activation, dropout, l2
    )
    state.step += 1
    return loss


def compiled_train_step(optimizer, activation: str, l2: float, like):
    """``train_step`` with its ``update`` compiled (``compiled.compile_step``), for arrays like ``like``.

    It is called as ``train_step`` is, but runs the optimizer, activation and L2 it was made with.
    The rate goes in as a 0-d array, so that a schedule's new rate each step compiles nothing anew.
    """
    fast = compiled.compile_step(functools.partial(update, optimizer=optimizer, activation=activation, l2=l2), like)
    xp = array_namespace(like)

    def step(state, inputs, Y, _optimizer, learning_rate, _activation="relu", dropout=None, _l2=0.0):
        rate = xp.asarray(learning_rate, dtype=like.dtype, device=device(like))
        state.params, state.opt_state, loss = fast(
            state.params, state.opt_state, inputs, Y, learning_rate=rate, dropout=dropout
        )
        state.step += 1
        return loss

    return step


def batch_dropout(
    params, rows: int, rate: float, seed: int, epoch: int, batch: int, dtype: str, input_rate: float = 0.0, xp=None
):
    """Dropout masks for batch ``batch`` of ``epoch``: a pure function of (seed, epoch, batch), as the batch order is.

    ``rate`` applies to the hidden layers, ``input_rate`` to the input pixels. None when neither
    applies (both 0, or only hidden dropout and the network has no hidden layer). The masks are
    arrays of namespace ``xp`` (by default the parameters').
    """
    hidden_rate = rate if len(params) > 1 else 0.0
    if not hidden_rate and not input_rate:
        return None
    uniform = uniform_sampler(xp or params[0][0], "dropout", seed, epoch, batch)
    hidden_draws = [uniform((rows, W.shape[1]), dtype) for W, _ in params[:-1]] if hidden_rate else []
    masks = nn.dropout_masks(hidden_draws, hidden_rate)
    if input_rate:
        masks = masks._replace(input_mask=nn.dropout_mask(uniform((rows, params[0][0].shape[0]), dtype), input_rate))
    return masks


def shifted(inputs: CompactInputs, offsets, batch: int) -> CompactInputs:
    """The batch's inputs moved by its offset (whole inputs only), or as they are without offsets."""
    if offsets is None:
        return inputs
    return CompactInputs(augment.shift_images(inputs.X, *offsets[batch]), None)


def distorted(inputs: CompactInputs, distortion, seed: int, epoch: int, batch: int) -> CompactInputs:
    """The batch's inputs (whole inputs only) with each image distorted (``augment.Distortion``), its
    draws a pure function of (seed, epoch, batch); as they are without distortions (None)."""
    if distortion is None:
        return inputs
    X = inputs.X
    uniform = uniform_sampler(X, "distort", seed, epoch, batch)((X.shape[0], distortion.draws), dtype_name(X))
    return CompactInputs(distortion(X, uniform), None)


def epoch_batch(inputs: CompactInputs, order, slices, offsets, distortion, seed: int, epoch: int, batch: int):
    """The inputs of batch ``batch`` of ``epoch``: its rows of the epoch's ``order``, shifted and distorted."""
    rows = order[slices[batch][0] : slices[batch][1]]
    return distorted(shifted(inputs.take(rows), offsets, batch), distortion, seed, epoch, batch)


HOST = array_namespace(np.empty(0))
"""The host's namespace (NumPy), where a compiled epoch draws its masks before it starts."""

SCAN_BYTES = 64 * 2**20
"""A compiled epoch takes its batches' host-made arrays (dropout masks above all) in parts of about this size."""


@dataclass(frozen=True)
class StepSettings:
    """What every step of a compiled epoch shares, fixed for its program: the update rule, the hidden
    layers' activation, L2, the rate the hidden dropout masks carry, the training set's size and the
    images' distortions (None without)."""

    optimizer: object
    activation: str
    l2: float
    dropout: float
    samples: int
    distortion: augment.Distortion | None = None


def scanned_step(settings: StepSettings, carry, batch, data):
    """One step of a compiled epoch: ``update`` of ``carry`` (parameters, optimizer state, the epoch's
    loss so far) on ``batch`` (its rows, rate, dropout masks, shift and distortions' draws; each None
    where unused) of ``data``."""
    params, opt_state, total = carry
    rows, rate, masks, offset, draws = batch
    inputs, Y = CompactInputs(*data[:3]), data[3]
    if rows is not None:
        inputs, Y = inputs.take(rows), nn.namespace_of(Y).take(Y, rows, axis=0)
    if offset is not None:
        inputs = CompactInputs(augment.shift_images(inputs.X, offset[0], offset[1]), None)
    if draws is not None:
        inputs = CompactInputs(settings.distortion(inputs.X, draws), None)
    dropout = None if masks is None else nn.Dropout(settings.dropout, *masks)
    params, opt_state, loss = update(
        params, opt_state, inputs, Y, settings.optimizer, rate, settings.activation, dropout, settings.l2
    )
    return params, opt_state, total + loss * (Y.shape[0] / settings.samples)


def scanned_epoch(
    state: TrainState, inputs: CompactInputs, Y, slices, *, optimizer, schedule, activation, seed, epoch,
    shuffle: bool, dropout: float, input_dropout: float, l2: float, shift: int, distortion=None,
):  # fmt: skip
    """One epoch as a compiled program (``compiled.scan``); returns its loss, as ``fit``'s eager loop does.

    The host works out what is random or scheduled first, exactly as the eager loop does it:
    the batch order, each batch's dropout masks and distortions' draws (drawn on the host as for
    namespaces that have no generator of their own), shifts and rates. The batches of full size go through one
    program in parts of at most ``SCAN_BYTES`` of such arrays; the last, smaller batch through
    another. ``state.opt_state`` holds arrays where it would hold numbers (``compiled.numbers_as_arrays``).
    ``distortion`` is an active ``augment.Distortion``, or None.
    """
    xp = array_namespace(Y)
    like = state.params[0][0]
    n, dtype = Y.shape[0], dtype_name(like)
    order = epoch_order(seed, epoch, n) if shuffle else None
    offsets = augment.batch_offsets(seed, epoch, len(slices), shift) if shift else None
    data = (inputs.X, inputs.columns, inputs.gradient_rows, Y)
    carry = (state.params, state.opt_state, xp.zeros((), dtype=like.dtype, device=device(like)))
    mask_widths = (input_dropout > 0) * like.shape[0] + (dropout > 0) * sum(W.shape[1] for W, _ in state.params[:-1])
    mask_widths += 0 if distortion is None else distortion.draws
    for part in _scan_parts(slices, mask_widths * like.dtype.itemsize):
        bounds = [slices[batch] for batch in part]
        drawn = [
            batch_dropout(state.params, stop - start, dropout, seed, epoch, batch, dtype, input_dropout, HOST)
            for batch, (start, stop) in zip(part, bounds)
        ]
        masks = None
        if drawn[0] is not None:
            hidden = [np.stack(layer) for layer in zip(*(masks.masks for masks in drawn))]
            masks = (hidden, None if drawn[0].input_mask is None else np.stack([d.input_mask for d in drawn]))
        batch = (
            None if order is None else np.stack([order[start:stop] for start, stop in bounds]).astype(np.int32),
            np.asarray([schedule(state.step + batch) for batch in part], dtype=dtype),
            masks,
            None if offsets is None else np.asarray([offsets[batch] for batch in part], dtype=np.int32),
            None if distortion is None else np.stack([
                uniform_sampler(HOST, "distort", seed, epoch, batch)((stop - start, distortion.draws), dtype)
                for batch, (start, stop) in zip(part, bounds)
            ]),
        )  # fmt: skip
        rate_of_masks = 0.0 if drawn[0] is None else drawn[0].rate
        settings = StepSettings(optimizer, activation, l2, rate_of_masks, n, distortion)
        carry = compiled.scan(scanned_step, settings, carry, _on_device(batch, like), data)
    state.params, state.opt_state, total = carry
    state.step += len(slices)
    return total


def _scan_parts(slices, row_bytes: int) -> list[range]:
    """The epoch's batches in parts for ``scanned_epoch``: runs of equal size, each of at most ``SCAN_BYTES``
    of host-made arrays, at ``row_bytes`` of masks a sample besides its row number (4 bytes)."""
    size = slices[0][1] - slices[0][0]
    full = sum(1 for start, stop in slices if stop - start == size)
    most = max(1, SCAN_BYTES // (size * (row_bytes + 4)))
    count = -(-full // most)
    length = -(-full // count)
    parts = [range(first, min(first + length, full)) for first in range(0, full, length)]
    return parts + ([range(full, len(slices))] if full < len(slices) else [])


def _on_device(tree, like):
    """Host arrays in nested lists and tuples copied to the namespace and device of the array ``like``;
    None stays None."""
    if isinstance(tree, (list, tuple)):
        return type(tree)(_on_device(item, like) for item in tree)
    return None if tree is None else to_device(tree, like)


def fit(
    state: TrainState,
    X,
    Y,
    *,
    optimizer,
    learning_rate: float | Callable[[int], float],
    epochs: int,
    batch_size: int | None = None,
    activation: str = "relu",
    seed: int = 0,
    on_epoch: Callable[[TrainState, EpochResult], bool | None] | None = None,
    dropout: float = 0.0,
    input_dropout: float = 0.0,
    l2: float = 0.0,
    label_smoothing: float = 0.0,
    shift: int = 0,
    distortion: augment.Distortion | None = None,
    compile: bool = False,
    threads: int = 1,
) -> TrainState:
    """Train from ``state`` until ``epochs`` epochs are done (or ``on_epoch`` returns True).

    ``learning_rate`` is a number or a schedule ``step -> rate``. ``batch_size=None`` is batch
    gradient descent over the whole set; a number gives mini-batches shuffled every epoch.
    The epoch's loss is the sample-weighted mean of its batch losses, read from the device
    once per epoch. ``dropout`` is the rate of inverted dropout on the hidden layers (masks drawn
    per batch from (seed, epoch, batch)), ``input_dropout`` that on the input pixels; ``l2`` > 0
    adds an L2 penalty on the weights.
    ``label_smoothing`` > 0 trains on smoothed targets (``nn.smooth_labels``), and the epoch's
    loss is measured against them.
    ``shift`` > 0 moves each batch by its own random offset of up to ``shift`` pixels each way
    (``augment.shift_images``; offsets drawn per epoch from (seed, epoch)). ``distortion`` distorts
    every image of every batch anew (``augment.Distortion``; draws from (seed, epoch, batch)), after
    the shift.
    ``threads`` is how many BLAS threads share the products of a NumPy batch of up to 512 rows
    (``backend.serial_blas``); with one, a seed gives the same weights on any number of cores.
    ``compile`` runs the same steps compiled (``compiled.kind``): on JAX each epoch as one program,
    on PyTorch each step through ``torch.compile``; elsewhere it is a ``SettingError``. The batches,
    masks and rates are the eager run's, and so are the results, to float32 rounding.
    Training sets the process's malloc to keep freed memory (``backend.keep_freed_memory``).
    """
    xp = array_namespace(X, Y)
    compiling = compiled.kind(xp) if compile else None
    keep_freed_memory()
    if label_smoothing:
        Y = nn.smooth_labels(Y, label_smoothing)
    schedule = learning_rate if callable(learning_rate) else constant(learning_rate)
    n = X.shape[0]
    dtype = dtype_name(X)
    full_batch = batch_size is None or batch_size >= n
    # Compaction pays on whole-set products; on mini-batches the per-step gather and scatter of
    # the first layer's weights cost more than the skipped columns save.
    # Input-dropout masks, shifts and distortions need all the columns, so with them the inputs stay whole.
    distortion = distortion if distortion is not None and distortion.active else None
    whole = input_dropout or shift or distortion is not None
    inputs = compact_inputs(X) if full_batch and not whole else CompactInputs(X, None)
    step = train_step
    if compiling == compiled.STEP:
        step = compiled_train_step(optimizer, activation, l2, state.params[0][0])
    while state.epoch < epochs:
        epoch = state.epoch + 1
        started = time.perf_counter()
        rate = schedule(state.step)
        slices = batch_slices(n, None if full_batch else batch_size)
        offsets = augment.batch_offsets(seed, epoch, len(slices), shift) if shift else None
        numbers = state.opt_state
        if compiling is not None:
            state.opt_state = compiled.numbers_as_arrays(numbers, state.params[0][0])
        if compiling == compiled.SCAN:
            total = scanned_epoch(
                state, inputs, Y, slices, optimizer=optimizer, schedule=schedule, activation=activation, seed=seed,
                epoch=epoch, shuffle=not full_batch, dropout=dropout, input_dropout=input_dropout, l2=l2, shift=shift,
                distortion=distortion,
            )  # fmt: skip
        elif full_batch:
            masks = batch_dropout(state.params, n, dropout, seed, epoch, 0, dtype, input_dropout)
            batch_inputs = distorted(shifted(inputs, offsets, 0), distortion, seed, epoch, 0)
            with serial_blas(X, threads):
                total = step(state, batch_inputs, Y, optimizer, rate, activation, masks, l2)
        else:
            order = to_device(epoch_order(seed, epoch, n), X)
            batch_inputs = functools.partial(epoch_batch, inputs, order, slices, offsets, distortion, seed, epoch)
            total = 0.0
            with serial_blas(X, threads):
                # Distortions take long enough to be worth making for the next batch during this batch's step.
                batches = range(len(slices))
                made = made_ahead(batch_inputs, len(slices), X) if distortion is not None else map(batch_inputs, batches)
                for batch, ((start, stop), this_batch) in enumerate(zip(slices, made)):
                    masks = batch_dropout(state.params, stop - start, dropout, seed, epoch, batch, dtype, input_dropout)
                    Y_rows = xp.take(Y, order[start:stop], axis=0)
                    loss = step(state, this_batch, Y_rows, optimizer, schedule(state.step), activation, masks, l2)
                    total = total + loss * ((stop - start) / n)
        if compiling is not None:
            state.opt_state = compiled.numbers_back(state.opt_state, numbers)
        synchronize(state.params[0][0])
        result = EpochResult(epoch, float(total), time.perf_counter() - started, rate)
        state.epoch = epoch
        state.history.append(result)
        if on_epoch is not None and on_epoch(state, result):
            break
    return state
