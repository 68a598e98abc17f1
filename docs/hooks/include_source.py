"""MkDocs hook: show a function, class or constant of the source where a page names it.

A line of the form

    <!-- source: mnist_xp/nn.py softmax backward -->

becomes one Python code block per name, holding that definition as it is in the file now, with
the file's own line numbers. A page therefore changes when the code does, and a name that is no
longer defined stops the build.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mkdocs.exceptions import PluginError

DIRECTIVE = re.compile(r"^<!-- source: (?P<path>\S+) (?P<names>[^>]+?) -->$", re.MULTILINE)
ROOT = Path(__file__).resolve().parents[2]


def _defines(node: ast.AST, name: str) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(target, ast.Name) and target.id == name for target in node.targets)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.target.id == name
    return False


def find(tree: ast.Module, dotted: str) -> ast.AST | None:
    """The definition of ``dotted`` ('name' or 'Class.method') in ``tree``, or None."""
    body = tree.body
    node = None
    for part in dotted.split("."):
        node = next((candidate for candidate in body if _defines(candidate, part)), None)
        if node is None:
            return None
        body = getattr(node, "body", [])
    return node


def definition(path: str, name: str) -> tuple[int, str]:
    """The first line number and the text of ``name`` in the file ``path`` (decorators and all)."""
    source = (ROOT / path).read_text()
    node = find(ast.parse(source), name)
    if node is None:
        raise PluginError(f"{path} defines no {name!r} (named in a <!-- source: --> line)")
    first = min([node.lineno, *(decorator.lineno for decorator in getattr(node, "decorator_list", []))])
    lines = source.splitlines()[first - 1 : node.end_lineno]
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return first, "\n".join(line[indent:] for line in lines)


def block(path: str, name: str) -> str:
    first, text = definition(path, name)
    return f'```python title="{path}" linenums="{first}"\n{text}\n```'


def expand(markdown: str) -> str:
    """``markdown`` with every source line replaced by the code blocks it names."""

    def replace(match: re.Match) -> str:
        return "\n\n".join(block(match["path"], name) for name in match["names"].split())

    return DIRECTIVE.sub(replace, markdown)


def on_page_markdown(markdown: str, **kwargs) -> str:
    return expand(markdown)
