"""The package's layout: the library never imports the commands, and its imports run one way."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import mnist_xp

PACKAGE = Path(mnist_xp.__file__).parent
ORDER = [
    "errors", "values", "npzio", "kernels", "backend", "nn", "optim", "schedules", "config", "data", "images", "augment", "compiled", "loop",
    "metrics", "holdout", "modelfile", "checkpoint", "resume", "guard", "webpage", "onnxgraph", "model", "callbacks",
    "pipeline", "estimator", "plots", "tuning", "studyplots",
]
"""Files -> arrays on the device -> model and its exports -> reports and pictures: each module may import only those before it."""
SHIMS = {"train", "predict", "show", "export", "tune"}
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def imported_modules(path: Path) -> set[str]:
    """The package's own modules that the top-level module ``path`` imports (relative imports and ``mnist_xp.*``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        module = node.module or ""
        if node.level == 0 and not module.startswith("mnist_xp"):
            continue
        parts = [part for part in module.split(".") if part][1 if node.level == 0 else 0 :]
        names.update(parts[:1] or [alias.name for alias in node.names])
    return names


def library_modules() -> list[Path]:
    return sorted(path for path in PACKAGE.glob("*.py") if path.stem not in SHIMS | {"__init__"})


def test_every_library_module_has_its_place_in_the_order():
    assert sorted(path.stem for path in library_modules()) == sorted(
        name for name in ORDER if (PACKAGE / f"{name}.py").exists()
    )


def test_library_imports_run_downward_and_never_reach_the_commands():
    for path in library_modules():
        allowed = set(ORDER[: ORDER.index(path.stem)]) | {"datasets", "__version__"}
        imported = imported_modules(path)
        assert "cli" not in imported, f"{path.name} imports the command line"
        assert imported <= allowed, f"{path.name} imports {sorted(imported - allowed)}, which come after it"


ARRAY_LIBRARIES = {"numpy", "cupy", "torch", "jax", "jaxlib", "array_api_strict"}
NAMES_LIBRARIES = {"backend", "kernels", "compiled"}
"""The modules that may import a device's array library: the backend registry, the Numba kernels, the compiled loops."""


def top_level_imports(path: Path) -> set[str]:
    """Every package that the module ``path`` imports anywhere (inside functions too), by its top-level name."""
    tree = ast.parse(path.read_text())
    imports = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imports |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module and not node.level
    }
    return imports


def test_the_math_names_no_array_library():
    for name in ("nn", "optim", "schedules"):
        imports = top_level_imports(PACKAGE / f"{name}.py")
        assert not imports & ARRAY_LIBRARIES, f"{name}.py imports {sorted(imports & ARRAY_LIBRARIES)}"


def test_only_the_backend_imports_a_devices_library():
    for path in library_modules():
        if path.stem not in NAMES_LIBRARIES:
            imports = top_level_imports(path) & (ARRAY_LIBRARIES - {"numpy"})
            assert not imports, f"{path.name} imports {sorted(imports)}"


def test_shims_only_run_their_command():
    for name in SHIMS:
        path = PACKAGE / f"{name}.py"
        if path.exists():
            assert imported_modules(path) <= {"cli"} and f"from .cli.{name} import main" in path.read_text()


def test_the_public_surface_is_small_and_importable():
    assert len(mnist_xp.__all__) <= 12
    for name in mnist_xp.__all__:
        if name != "MLPClassifier":
            assert getattr(mnist_xp, name) is not None


def strings_that_are_not_docstrings(tree: ast.AST) -> list[ast.Constant]:
    """Every text constant of a module that is not a docstring (a bare string statement), f-strings' parts included."""
    documentation = {
        id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in documentation
    ]


def test_the_library_names_no_command_line_flag():
    """Errors and messages name parameters (``limit``); only the commands in ``cli/`` turn them into ``--limit``."""
    for path in library_modules():
        named = [
            f"line {node.lineno}: {node.value!r}"
            for node in strings_that_are_not_docstrings(ast.parse(path.read_text()))
            if FLAG.search(node.value)
        ]
        assert not named, f"{path.name} names a flag: {named}"
