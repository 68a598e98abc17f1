"""MkDocs hook: the reference pages, made from the code at build time.

``<!-- api: mnist_xp -->`` becomes one mkdocstrings entry for every name in ``mnist_xp.__all__``,
read statically (so building the pages imports neither the package nor its extras), each under
the module that defines it. ``<!-- help: train -->`` becomes the ``--help`` text of
``python -m mnist_xp.train``, printed at a fixed width so that the page does not depend on the
terminal that built it.
"""

from __future__ import annotations

import argparse
import importlib
import re

import griffe
from mkdocs.exceptions import PluginError

API = re.compile(r"^<!-- api: (?P<package>[\w.]+) -->$", re.MULTILINE)
HELP = re.compile(r"^<!-- help: (?P<command>\w+) -->$", re.MULTILINE)
HELP_WIDTH = 100


def exported(package: str) -> list[str]:
    """The full paths of the objects in ``package.__all__``, in its order.

    A name the package makes on first use (in its module ``__getattr__``, perhaps declared with an
    annotation alone) is found in the submodule that defines it.
    """
    module = griffe.load(package, resolve_aliases=False)
    if not module.exports:
        raise PluginError(f"{package} has no __all__ to document")
    paths = []
    for name in module.exports:
        name = name if isinstance(name, str) else name.name
        if name in module.imports:  # before members: a submodule may share the name (mnist_xp.train)
            paths.append(module.imports[name])
            continue
        member = module.members.get(name)
        declared_only = member is not None and member.is_attribute and member.value is None
        if member is not None and not declared_only:
            paths.append(member.target_path if member.is_alias else member.path)
            continue
        owners = [sub for sub in module.modules.values() if name in sub.members and not sub.members[name].is_alias]
        if len(owners) != 1:
            raise PluginError(f"{package}.__all__ names {name!r}, which no single submodule defines")
        paths.append(f"{owners[0].path}.{name}")
    return paths


def api_entries(package: str) -> str:
    return "\n\n".join(f"::: {path}" for path in exported(package))


def command_help(command: str) -> str:
    """``python -m mnist_xp.COMMAND --help`` as a text block."""
    try:
        cli = importlib.import_module(f"mnist_xp.cli.{command}")
    except ImportError as exc:
        raise PluginError(f"no command {command!r}: {exc}") from exc
    parser = cli.build_parser()
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=HELP_WIDTH)
    return f"```text\n{parser.format_help().rstrip()}\n```"


def on_page_markdown(markdown: str, **kwargs) -> str:
    markdown = API.sub(lambda match: api_entries(match["package"]), markdown)
    return HELP.sub(lambda match: command_help(match["command"]), markdown)
