"""The quickstart notebook runs top to bottom on a slice of MNIST and shows what it promises.

The notebook is executed in memory with its folder as working directory, in a kernel started
from this interpreter, after its parameters cell is replaced by a small run; nothing is
written back into the repository.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

import pytest

import mnist_xp

nbformat = pytest.importorskip("nbformat", reason="running the notebook needs nbformat (the test extra)")
nbclient = pytest.importorskip("nbclient", reason="running the notebook needs nbclient (the test extra)")
pytest.importorskip("ipykernel", reason="running the notebook needs ipykernel (the test extra)")
pytest.importorskip("matplotlib", reason="the notebook draws with matplotlib (the plot extra)")
pytest.importorskip("PIL", reason="the notebook reads a picture with Pillow (the plot extra)")
pytest.importorskip("sklearn", reason="the notebook's last cell uses scikit-learn (the sklearn extra)")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402  (installed with nbclient)
from jupyter_client.manager import KernelManager  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOK = EXAMPLES / "quickstart.ipynb"
PARAMETERS = "LIMIT = 5000\nEPOCHS = 3\n"
CELL_TIMEOUT = 120


def _kernel_manager() -> KernelManager:
    """A manager for ipykernel's own spec, which starts ``sys.executable``: no kernel spec installed
    elsewhere (in the user's folders, say) can send the notebook to another interpreter."""
    specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    assert manager.kernel_spec.argv[0] == sys.executable
    return manager


@pytest.fixture(scope="module")
def executed():
    """The notebook after a run on 5,000 training images for 3 epochs, as {cell id: cell}."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1, "the notebook should have one cell tagged 'parameters'"
    parameters[0].source = PARAMETERS
    before = sorted(os.listdir(EXAMPLES))
    # The kernel imports the mnist_xp that this test imports, wherever it is installed from.
    package_root = str(Path(mnist_xp.__file__).resolve().parent.parent)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, saved]))
    try:
        client = nbclient.NotebookClient(
            notebook,
            km=_kernel_manager(),
            timeout=CELL_TIMEOUT,
            resources={"metadata": {"path": str(EXAMPLES)}},
        )
        client.execute()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    assert sorted(os.listdir(EXAMPLES)) == before, "running the notebook wrote into examples/"
    return {cell.get("id"): cell for cell in notebook.cells}


def _code(notebook) -> ast.Module:
    """The code cells of ``notebook`` as one Python module, IPython's ``%`` lines left out."""
    lines = [
        line
        for cell in notebook.cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if not line.startswith("%")
    ]
    return ast.parse("\n".join(lines))


def test_the_notebook_uses_only_the_public_api():
    tree = _code(nbformat.read(NOTEBOOK, as_version=4))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any(isinstance(node, ast.ImportFrom) and "mnist_xp" in (node.module or "") for node in ast.walk(tree))
    assert "mnist_xp" in imported and not any(name.startswith("mnist_xp.") for name in imported)
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "mnist_xp"
    }
    assert used and used <= set(mnist_xp.__all__), sorted(used - set(mnist_xp.__all__))


def _text(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")


def _images(cell) -> int:
    return sum("image/png" in output.get("data", {}) for output in cell.outputs)


def _percent(pattern: str, text: str) -> float:
    match = re.search(pattern + r" ([0-9.]+)%", text)
    assert match, f"no {pattern!r} line in:\n{text}"
    return float(match.group(1))


def test_every_cell_runs_without_error(executed):
    for cell in executed.values():
        if cell.cell_type == "code":
            errors = [output for output in cell.outputs if output.output_type == "error"]
            assert not errors, f"cell {cell.id}: {errors}"
            assert cell.execution_count is not None, f"cell {cell.id} did not run"


def test_training_reports_its_accuracy(executed):
    # The fast recipe on 5,000 images for 3 epochs reaches about 93 %.
    assert _percent("test accuracy:", _text(executed["train"])) > 88


def test_curves_and_mistakes_are_drawn(executed):
    assert _images(executed["curves"]) == 1
    assert _images(executed["mistakes"]) == 1
    wrong = int(re.match(r"(\d+) of 10000 test digits misclassified", _text(executed["mistakes"])).group(1))
    assert 0 < wrong < 1200


def test_the_seven_in_docs_is_read_as_a_seven(executed):
    assert _text(executed["picture"]).startswith("seven.png: 7 (")
    assert _images(executed["picture"]) == 1


def test_the_three_line_estimator_learns(executed):
    assert _percent("MLPClassifier test accuracy:", _text(executed["estimator"])) > 85
