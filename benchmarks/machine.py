"""What the machine is and what its BLAS is doing in this process: the CPU as ``lscpu`` names it, the kernel
threadpoolctl sees and the OPENBLAS_* variables."""

from __future__ import annotations

import os
import subprocess


def openblas_env(environ=os.environ) -> dict:
    """The OPENBLAS_* environment variables of this process (they can force an older kernel)."""
    return {key: value for key, value in sorted(environ.items()) if key.startswith("OPENBLAS_")}


def lscpu() -> dict:
    """``lscpu``'s fields as a dict (empty where the command is missing)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, env={"LC_ALL": "C"}).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    fields = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in fields}


def cpu_details(cpu: dict | None = None) -> dict:
    """The CPU's family and model numbers and whether it has AVX-512, from ``lscpu``'s fields (``cpu``)."""
    cpu = lscpu() if cpu is None else cpu
    return {
        "cpu_family": cpu.get("CPU family"),
        "cpu_model": cpu.get("Model"),
        "avx512": "avx512f" in cpu.get("Flags", "").split(),
    }


def blas_libraries() -> list[dict]:
    """Every BLAS loaded so far with its kernel ('architecture') and thread count, per threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "threadpoolctl is not installed: pip install 'mnist-xp[bench]'"}]
    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer", "filepath")
    return [{key: info.get(key) for key in keys} for info in threadpool_info() if info.get("user_api") == "blas"]


def forced_coretype_warning(env: dict) -> str | None:
    """A warning when OPENBLAS_CORETYPE pins a kernel, else None."""
    coretype = env.get("OPENBLAS_CORETYPE")
    if coretype is None:
        return None
    return (
        f"OPENBLAS_CORETYPE={coretype} forces OpenBLAS's {coretype} kernels, which can be much slower than the "
        "ones it would pick for this CPU; compare with: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest ..."
    )


def describe(blas: list[dict]) -> str:
    """One line per BLAS: library, version, kernel and threads."""
    if not blas:
        return "no BLAS loaded"
    return "; ".join(
        info["note"]
        if "note" in info
        else f"{info['internal_api']} {info['version']} kernel {info['architecture']}, {info['num_threads']} threads"
        for info in blas
    )
