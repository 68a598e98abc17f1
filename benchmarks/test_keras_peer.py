"""``python -m benchmarks.peers keras``: the tutorial's Keras model, trained by Keras itself."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


def run_python(*args: str) -> subprocess.CompletedProcess:
    """Python in the repository's root, where ``benchmarks`` is importable as it is from a checkout."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    command = [sys.executable, *args]
    return subprocess.run(command, check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_without_tensorflow_it_is_a_one_line_error():
    code = "import sys; sys.modules['tensorflow'] = None; from benchmarks.peers import main; sys.exit(main(['keras']))"
    result = run_python("-c", code)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: the keras peer needs TensorFlow, which is not installed; install it with: pip install 'mnist-xp[keras]'"
    )


def test_a_bad_option_is_a_usage_error():
    result = run_python("-m", "benchmarks.peers", "keras", "--epochs", "0")
    assert result.returncode == 2 and "argument --epochs: '0' must be positive" in result.stderr


@pytest.mark.skipif(not HAS_TENSORFLOW, reason="TensorFlow is not installed (pip install 'mnist-xp[keras]')")
def test_it_trains_the_tutorial_model():
    result = run_python("-m", "benchmarks.peers", "keras", "--epochs", "1", "--limit", "2000")
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("keras: test accuracy") and "1 epochs, batch 32" in line
    assert 80 < float(line.split()[3]) < 100
