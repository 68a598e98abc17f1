"""Benchmark session set-up: plain ``pytest`` runs every benchmark once as a test; the run records the BLAS."""

from __future__ import annotations

import warnings

import numpy  # noqa: F401  (loads NumPy's BLAS, so threadpoolctl can report it)
import pytest

from mnist_xp import backend
from mnist_xp.errors import BackendError

from . import machine


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Without --benchmark-only, time nothing: each benchmark body runs once, so it cannot rot."""
    if not config.getoption("benchmark_only", False):
        config.option.benchmark_disable = True


def pytest_report_header(config):
    env = machine.openblas_env()
    lines = [f"BLAS: {machine.describe(machine.blas_libraries())}", f"OPENBLAS_* variables: {env or 'none set'}"]
    warning = machine.forced_coretype_warning(env)
    return lines + ([f"WARNING: {warning}"] if warning else [])


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["openblas_env"] = machine.openblas_env()
    machine_info["blas"] = machine.blas_libraries()
    machine_info["cpu_details"] = machine.cpu_details()


PLAIN_TEST_IMAGES = 1000
"""Run once as plain tests, the benchmarks train on this many images: enough to exercise every line."""


@pytest.fixture(scope="session")
def train_limit(request):
    """None (all 60,000 training images) when timing, a small slice when running as plain tests."""
    return None if request.config.getoption("benchmark_only", False) else PLAIN_TEST_IMAGES


@pytest.fixture(scope="session", autouse=True)
def warn_forced_coretype():
    warning = machine.forced_coretype_warning(machine.openblas_env())
    if warning:
        warnings.warn(warning, stacklevel=1)


@pytest.fixture(scope="session", autouse=True)
def same_allocator_for_everyone():
    """Training sets malloc to keep freed memory (process-wide); set it before any benchmark, so every library runs with it."""
    backend.keep_freed_memory()


@pytest.fixture(params=["cpu", "gpu"])
def device(request):
    """Each device benchmark runs on the CPU (NumPy) and, where CuPy sees a CUDA GPU, on the GPU."""
    if request.param == "gpu":
        try:
            backend.namespace("gpu")
        except BackendError as exc:
            pytest.skip(f"CuPy benchmarks need a GPU: {exc}")
    return request.param
