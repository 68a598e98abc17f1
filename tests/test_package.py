"""The package as tools see it: every submodule imports, the public functions survive that, and the API docs build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

WALK_AND_TRAIN = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import mnist_xp

    imported, skipped = [], []
    for info in pkgutil.walk_packages(mnist_xp.__path__, "mnist_xp."):
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] == "mnist_xp":
                raise
            skipped.append(info.name)  # an optional dependency is missing
        else:
            imported.append(info.name)
    shadowed = {name: type(getattr(mnist_xp, name)).__name__ for name in mnist_xp.__all__ if name != "MLPClassifier"}
    result = mnist_xp.train("fast", limit=500)
    print(json.dumps({"imported": imported, "skipped": skipped, "types": shadowed, "epochs": len(result.history),
                      "commands": {name: sys.modules["mnist_xp." + name].__file__ for name in ("train", "tune")}}))
    """
)


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter, so that no earlier import in this process hides a submodule's first import."""
    env = dict(os.environ, PYTHONWARNINGS="error::UserWarning")
    command = [sys.executable, "-c", code, *args]
    return subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=300)


def test_importing_every_submodule_keeps_the_public_functions_and_train_still_trains():
    result = run_python(WALK_AND_TRAIN)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert {"mnist_xp.train", "mnist_xp.tune", "mnist_xp.predict", "mnist_xp.cli.train"} <= set(report["imported"])
    assert report["types"]["train"] == "function" and report["types"]["load_mnist"] == "function"
    assert "module" not in report["types"].values()
    assert report["epochs"] == 4  # the fast recipe's, run through mnist_xp.train after everything was imported
    assert report["commands"]["train"].endswith("train.py")  # the command's module is still there, by its full name


def test_other_attributes_are_set_as_on_any_module(monkeypatch):
    import mnist_xp
    import mnist_xp.cli.train

    assert mnist_xp.cli.__name__ == "mnist_xp.cli" and mnist_xp.cli.train.__name__ == "mnist_xp.cli.train"

    def stand_in(*args, **kwargs):
        return "stand-in"

    monkeypatch.setattr(mnist_xp, "train", stand_in)
    assert mnist_xp.train() == "stand-in"


@pytest.mark.parametrize("command", ["train", "tune", "predict", "show", "export"])
def test_every_command_module_still_runs_with_python_dash_m(command):
    arguments = [sys.executable, "-m", f"mnist_xp.{command}", "--help"]
    result = subprocess.run(arguments, check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m mnist_xp.{command}")


DOCUMENT = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys, warnings
    from pathlib import Path
    import pdoc
    import mnist_xp

    specs = ["mnist_xp"]
    for info in pkgutil.iter_modules(mnist_xp.__path__, "mnist_xp."):
        if info.name.rpartition(".")[2] in mnist_xp.__all__:
            continue  # pdoc walks these from mnist_xp itself
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] == "mnist_xp":
                raise
            continue  # an optional dependency is missing
        specs.append(info.name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*specs, output_directory=Path(sys.argv[1]))
    print(json.dumps({"specs": specs, "warnings": [str(warning.message) for warning in caught]}))
    """
)


def test_the_api_documentation_builds(tmp_path):
    """pdoc documents the package and every module; a module it cannot import or a public name it cannot find fails.

    Its warnings about annotations it cannot evaluate (a NamedTuple's fields under postponed
    annotations) are about how it renders a signature, and pass.
    """
    pytest.importorskip("pdoc")
    result = run_python(DOCUMENT, str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    problems = [warning for warning in report["warnings"] if "type annotation" not in warning]
    assert not problems
    for spec in report["specs"]:
        assert (tmp_path / f"{spec.replace('.', '/')}.html").is_file(), spec
    assert {"mnist_xp", "mnist_xp.config", "mnist_xp.cli"} <= set(report["specs"])
    assert 'id="MLPClassifier"' in (tmp_path / "mnist_xp.html").read_text()
