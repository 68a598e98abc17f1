"""Compiled training: a JAX epoch as one program, a PyTorch step through ``torch.compile``.

``loop.fit(..., compile=True)`` comes here for what only a library can do; the arithmetic
stays in ``loop``, ``nn`` and ``optim``, written once. On JAX, ``scan`` runs an epoch's steps
as one ``jax.jit`` program (``jax.lax.scan`` over the batches), so no step is dispatched from
Python; on PyTorch, ``compile_step`` hands the step to ``torch.compile`` (with CUDA graphs on a
GPU). What is random or scheduled is worked out on the host beforehand and fed in as arrays,
so a compiled run sees the same batches, masks and rates as an eager one.
"""

from __future__ import annotations

import functools

from array_api_compat import array_namespace, device, is_jax_namespace, is_torch_namespace

from .errors import SettingError
from .values import is_real_number, is_whole_number

SCAN = "scan"
"""The whole epoch is one program (JAX)."""
STEP = "step"
"""Each step is one compiled call from the epoch's loop (PyTorch)."""
TORCH_BACKEND = "inductor"
"""The compiler that ``torch.compile`` hands the captured step to."""


def kind(xp) -> str:
    """How runs on namespace ``xp`` compile: ``SCAN`` or ``STEP``; a ``SettingError`` where nothing compiles."""
    if is_jax_namespace(xp):
        return SCAN
    if is_torch_namespace(xp):
        return STEP
    name = xp.__name__.split(".")[-1]
    raise SettingError("compile", f"applies to the jax and torch backends; {name} runs its steps as they are")


def wanted(compile: bool | None, xp) -> bool:
    """Whether a run on ``xp`` compiles: as ``compile`` says, or where it pays when that is None.

    It pays on JAX, where a compiled epoch is several times faster than eager steps, compilation
    included; not on PyTorch on a CPU, where compiling a step costs far more than it saves.
    A ``SettingError`` if ``compile`` is true where nothing compiles (``kind``).
    """
    if compile is None:
        return is_jax_namespace(xp)
    if compile:
        kind(xp)
    return bool(compile)


def numbers_as_arrays(tree, like):
    """``tree`` (nested lists and tuples) with every Python number made a 0-d array of ``like``'s dtype and device.

    A compiled program takes what changes from call to call as arrays, not as constants it
    would be compiled anew for (Adam's step count). In the parameters' float type, the count
    is exact and Adam's bias correction keeps the run's precision.
    """
    if isinstance(tree, (list, tuple)):
        return type(tree)(numbers_as_arrays(item, like) for item in tree)
    if is_real_number(tree):
        return array_namespace(like).asarray(tree, dtype=like.dtype, device=device(like))
    return tree


def numbers_back(tree, template):
    """``tree`` with the 0-d arrays that stand for ``template``'s Python numbers made such numbers again."""
    if isinstance(template, (list, tuple)):
        return type(template)(numbers_back(item, part) for item, part in zip(tree, template))
    if is_whole_number(template):
        return round(float(tree))
    if is_real_number(template):
        return float(tree)
    return tree


def scan(step, settings, carry, batches, data):
    """``carry`` after ``carry = step(settings, carry, batch, data)`` for each batch of ``batches``, in order.

    One compiled JAX program: ``batches`` is a tree of arrays whose first axis runs over the
    steps, ``data`` the arrays every step reads (the training set). ``step`` and ``settings``
    are fixed for a program (hashable: equal ones reuse it), as are the arrays' shapes; the
    carry comes back in the structure it went in (lists stay lists).
    """
    import jax

    # The program's outputs are placed on their device for good ("committed"); the carry goes in so
    # from the first epoch on, or the second epoch would compile the program again for such inputs.
    carry = jax.device_put(carry, jax.tree_util.tree_leaves(carry)[0].sharding)
    return _scan_program()(step, settings, carry, batches, data)


@functools.cache
def _scan_program():
    import jax

    def run(step, settings, carry, batches, data):
        structure = jax.tree_util.tree_structure(carry)

        def body(carry, batch):
            leaves = jax.tree_util.tree_leaves(step(settings, carry, batch, data))
            return jax.tree_util.tree_unflatten(structure, leaves), None

        return jax.lax.scan(body, carry, batches)[0]

    return jax.jit(run, static_argnums=(0, 1))


def compile_step(step, like):
    """``step`` compiled by ``torch.compile`` for tensors on ``like``'s device; on a CUDA GPU with CUDA graphs.

    Each shape of batch compiles once (the last, smaller batch of an epoch a second time).
    """
    import torch

    mode = "reduce-overhead" if device(like).type == "cuda" else None
    return torch.compile(step, backend=TORCH_BACKEND, mode=mode, dynamic=False)
