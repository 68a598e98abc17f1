"""The same seed gives the same weights on one, two and four BLAS threads.

OpenBLAS rounds a product differently on each thread count, so training runs every product on
one BLAS thread: batches of up to 512 rows whole, larger ones in blocks of rows side by side
(``backend.serial_blas``, ``backend.row_blocks``), and distortions are made for the next batch
on another core (``backend.made_ahead``). Each run here is a fresh process with its BLAS set to
that many threads (more than the machine's cores, too), as on a machine with more or fewer cores;
the run on one thread may also use only one core, so that it makes each batch's distortions itself.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import run_main
from threadpoolctl import threadpool_info

import mnist_xp
from mnist_xp import nn
from mnist_xp.config import SettingError

TRAIN = """
import hashlib, os, sys
if {threads} == 1 and hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:1])
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
import mnist_xp
threadpool_limits({threads}, user_api="blas")  # beyond the cores too, which OPENBLAS_NUM_THREADS does not allow
config = mnist_xp.TrainConfig(hidden=(64,), batch_size={batch!r}, epochs=2, optimizer="adam", lr=0.003, seed=5, **{extra})
result = mnist_xp.train(config, limit={limit})
digest = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for pair in result.model.params for a in pair))
threads = sorted({{info["num_threads"] for info in threadpool_info() if "numpy" in info["filepath"]}})  # NumPy's BLAS
print(digest.hexdigest(), result.test_accuracy, threads)
"""


def trained(batch, limit: int, threads: int, extra: dict) -> tuple[str, str, str]:
    """The weights' digest, the test accuracy and the BLAS thread counts of a run in a process on ``threads`` threads."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    code = TRAIN.format(batch=batch, limit=limit, threads=threads, extra=extra)
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    digest, accuracy, counts = result.stdout.split(maxsplit=2)
    return digest, accuracy, counts.strip()


DISTORTED = {"elastic": 34.0, "elastic_sigma": 4.0, "rotate": 10.0}


@pytest.mark.parametrize(
    "batch, limit, extra",
    [(32, 3000, {}), (128, 3000, {}), (128, 1500, DISTORTED), (600, 3000, {}), ("full", 10_000, {})],
    ids=["batch-32", "batch-128", "batch-128-distorted", "batch-600-in-blocks", "full-batch-in-blocks"],
)
def test_a_seed_gives_the_same_weights_on_one_two_and_four_blas_threads(batch, limit, extra):
    runs = {threads: trained(batch, limit, threads, extra) for threads in (1, 2, 4)}
    assert [counts for _, _, counts in runs.values()] == ["[1]", "[2]", "[4]"], runs  # each ran as it was told
    assert len({digest for digest, _, _ in runs.values()}) == 1, runs
    assert len({accuracy for _, accuracy, _ in runs.values()}) == 1, runs


def blas_threads_in_steps(monkeypatch, **options) -> set:
    """The thread counts NumPy's BLAS had during a short run's steps."""
    seen = set()
    real = nn.loss_and_grads

    def spy(*args, **kwargs):
        seen.update(info["num_threads"] for info in threadpool_info() if "numpy" in info["filepath"])
        return real(*args, **kwargs)

    monkeypatch.setattr(nn, "loss_and_grads", spy)
    mnist_xp.train(mnist_xp.TrainConfig(hidden=(16,), batch_size=128, epochs=1), limit=300, **options)
    return seen


def test_training_runs_its_products_on_one_blas_thread_unless_asked_for_more(monkeypatch):
    assert blas_threads_in_steps(monkeypatch) == {1}
    assert blas_threads_in_steps(monkeypatch, threads=3) == {3}


@pytest.mark.parametrize("threads", [0, 257, 1.5, True, "2"])
def test_threads_must_be_a_whole_number_from_one_to_256(threads):
    with pytest.raises(SettingError, match="^threads: must be a whole number from 1 to 256") as refused:
        mnist_xp.train(mnist_xp.TrainConfig(epochs=1), limit=100, threads=threads)
    assert refused.value.name == "threads"


def test_threads_are_refused_on_a_backend_with_its_own_thread_pool(capsys):
    pytest.importorskip("torch")
    with pytest.raises(SettingError, match="^threads: sets NumPy's BLAS threads; other backends use their own"):
        mnist_xp.train(mnist_xp.TrainConfig(epochs=1), limit=100, backend="torch", threads=2)
    code, _, err = run_main(["--threads", "2", "--backend", "torch", "--limit", "100", "--epochs", "1"], capsys)
    assert code == 2 and "argument --threads: sets NumPy's BLAS threads" in err
