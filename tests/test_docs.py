"""The manual and the README: the site builds, its formulas render, its examples run, its tables match the records.

Every fenced code block of README.md and docs/ is checked by its language:

- ``python`` blocks run, page by page, in one namespace and in a scratch folder that holds the
  files the page's commands would have made (``model.npz`` and ``fast.npz``: the suite's small
  model) and the pictures of docs/, skipping the page from a block that needs an extra, a backend
  or a device that is not here; an ``output`` block right after one must be what
  it prints (numbers may differ in the last digits, percentages by half a point: another BLAS
  rounds differently);
- ``sh`` blocks: each ``python -m mnist_xp.COMMAND ...`` is parsed by that command's own parser
  (running them all would take minutes), each ``python -m benchmarks.X`` must name a module, and
  each ``pip install '.[...]'`` must name extras that pyproject.toml defines;
- ``json`` blocks must parse; ``text`` blocks are shown as they are.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnist_xp.errors import BackendError

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LANGUAGES = {"python", "output", "sh", "json", "text"}
OPTIONAL_MODULES = {"sklearn", "onnxruntime", "onnx", "PIL", "matplotlib", "optuna", "cupy"}
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass
class Block:
    language: str
    code: str
    line: int
    follows_previous: bool  # only blank lines separate it from the block before


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order."""
    found, end = [], None
    for match in FENCE.finditer(text):
        indent = len(match["indent"])
        code = "\n".join(line[indent:] for line in match["body"].splitlines())
        language = match["info"].strip().split(" ")[0].strip("{}.")
        between = text[end : match.start()] if end is not None else "x"
        found.append(Block(language, code, text.count("\n", 0, match.start()) + 1, not between.strip()))
        end = match.end()
    return found


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted(path for path in DOCS.rglob("*.md") if "hooks" not in path.parts)]


def name(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ---- comparing printed output ------------------------------------------------------------------------

NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def same_output(printed: str, shown: str) -> bool:
    """Whether ``printed`` is ``shown``, but for numbers that another machine would round differently.

    Whole numbers must be equal; other numbers equal to within 1e-6 relative, and percentages to
    within half a point.
    """
    printed_text, shown_text = NUMBER.split(printed.strip()), NUMBER.split(shown.strip())
    if printed_text != shown_text:
        return False
    for after, got, want in zip(shown_text[1:], NUMBER.findall(printed.strip()), NUMBER.findall(shown.strip())):
        if re.fullmatch(r"-?\d+", want):
            if got != want:
                return False
        elif after.startswith("%"):
            if abs(float(got) - float(want)) > 0.5:
                return False
        elif abs(float(got) - float(want)) > 1e-6 * max(abs(float(want)), 1e-12):
            return False
    return True


def test_outputs_compare_text_exactly_and_numbers_as_a_machine_rounds_them():
    assert same_output("accuracy 98.32%\n[7 2 1]", "accuracy 98.18%\n[7 2 1]")
    assert not same_output("accuracy 97.32%", "accuracy 98.18%")
    assert not same_output("[7 2 1]", "[7 2 7]")
    assert not same_output("accuracy 98.32", "precision 98.32")
    assert same_output("0.090030571", "0.0900305712")
    assert not same_output("0.0901", "0.0900")


# ---- the examples ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page_files(tmp_path_factory):
    """What a page's examples expect to find: the suite's small model under the names the pages use, and docs/'s pictures."""
    from small_model import small_run

    folder = tmp_path_factory.mktemp("page-files")
    model = small_run()[0].model
    model.save(folder / "model.npz")
    model.save(folder / "fast.npz")
    shutil.copytree(DOCS, folder / "docs", ignore=shutil.ignore_patterns("*.md", "hooks", "assets", "reference"))
    return folder


def defined_extras() -> set[str]:
    """The extras of pyproject.toml's [project.optional-dependencies] table."""
    text = (ROOT / "pyproject.toml").read_text()
    table = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([\w-]+) = \[", table, re.MULTILINE))


def check_command(line: str, extras: set[str]) -> None:
    """Parse one shell command of the manual as described in this module's docstring."""
    words = shlex.split(line, comments=True)
    while words and ("=" in words[0] or words[0] in ("nice", "$")):
        words = words[1:]
    if words[:2] == ["python", "-m"] and words[2].startswith("mnist_xp."):
        command = words[2].removeprefix("mnist_xp.")
        parser = importlib.import_module(f"mnist_xp.cli.{command}").build_parser()
        said = io.StringIO()
        try:
            with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
                parser.parse_args(words[3:])
        except SystemExit as exit:
            if exit.code != 0:  # 0: --help
                raise AssertionError(f"{line!r}: {command}'s options refuse it: {said.getvalue()}") from None
    elif words[:2] == ["python", "-m"]:
        assert importlib.util.find_spec(words[2]) is not None, f"{line!r}: no module {words[2]}"
    elif words[:2] == ["pip", "install"]:
        for word in words[2:]:
            match = re.fullmatch(r"\.\[(.+)\]", word)
            if match:
                named = set(match[1].split(","))
                assert named <= extras, f"{line!r}: no extra {sorted(named - extras)} in pyproject.toml"


def check_shell(block: Block) -> None:
    extras = defined_extras()
    for line in block.code.splitlines():
        for command in re.split(r"\s*&&\s*", line):
            if command.strip() and not command.lstrip().startswith("#"):
                check_command(command, extras)


def run_python(block: Block, namespace: dict, where: str) -> str:
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(block.code, where, "exec"), namespace)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in OPTIONAL_MODULES:
            pytest.skip(f"{where} needs {exc.name}, an extra that is not installed")
        raise
    except BackendError as exc:
        pytest.skip(f"{where}: {exc}")
    return printed.getvalue()


@pytest.mark.parametrize("path", documents(), ids=name)
@pytest.mark.filterwarnings("ignore:MLPClassifier.*may be undertrained")  # a short fit that the page explains
def test_every_code_example_runs_as_it_says(path, page_files, tmp_path, monkeypatch):
    found = blocks(path.read_text())
    unknown = sorted({block.language for block in found} - LANGUAGES)
    assert not unknown, f"{name(path)}: code blocks in {unknown}, which no check covers; use one of {sorted(LANGUAGES)}"
    shutil.copytree(page_files, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__example__"}
    printed = None
    for block in found:
        where = f"{name(path)}:{block.line}"
        if block.language == "python":
            printed = run_python(block, namespace, where)
            continue
        if block.language == "output":
            assert printed is not None and block.follows_previous, f"{where}: an output block must follow a python block"
            assert same_output(printed, block.code), f"{where}: the example printed\n{printed}\nbut the page shows\n{block.code}"
        elif block.language == "sh":
            check_shell(block)
        elif block.language == "json":
            json.loads(block.code)
        printed = None


def test_the_checks_catch_a_wrong_option_and_a_missing_extra():
    extras = defined_extras()
    assert {"docs", "test", "gpu"} <= extras
    check_command("python -m mnist_xp.train --recipe fast --epochs 2  # a comment", extras)
    with pytest.raises(AssertionError, match="refuse"):
        check_command("python -m mnist_xp.train --no-such-option", extras)
    with pytest.raises(AssertionError, match="no extra"):
        check_command("pip install '.[test,nonexistent]'", extras)
    with pytest.raises(AssertionError, match="no module"):
        check_command("python -m benchmarks.nonexistent", extras)


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; the manual in docs/ is the place for more"


# ---- tables from records -------------------------------------------------------------------------


def test_the_tables_are_what_the_records_give():
    from benchmarks import tables

    assert tables.stale() == [], "run: python -m benchmarks.tables"


def test_a_changed_record_changes_the_tables(tmp_path):
    from benchmarks import tables

    results = tmp_path / "results"
    shutil.copytree(ROOT / "results", results)
    assert tables.stale(results=results) == []
    record_path = sorted((results / "recipes").glob("*.json"))[0]
    record = json.loads(record_path.read_text())
    record["test_accuracy"] -= 0.01
    record_path.write_text(json.dumps(record))
    assert ROOT / "docs" / "training.md" in tables.stale(results=results)


def test_the_papers_table_puts_a_row_s_records_beside_the_paper(tmp_path):
    from benchmarks import papers, tables

    results = tmp_path / "results"
    shutil.copytree(ROOT / "results", results)
    template = json.loads(sorted((results / "recipes").glob("*.json"))[0].read_text())
    none = papers.rows()["800-none"]
    (results / "papers").mkdir(exist_ok=True)
    for seed, accuracy in enumerate((0.984, 0.985, 0.983)):  # errors 1.60, 1.50, 1.70: mean 1.60
        settings = none.config.to_dict() | {"seed": seed, "lr": 0.1} if seed == 2 else none.config.to_dict()
        record = template | {"kind": "paper", "paper": "800-none", "seed": seed, "test_accuracy": accuracy,
                             "train_seconds": 60.0 + seed, "settings": settings | {"seed": seed}}  # fmt: skip
        record.pop("recipe", None)
        (results / "papers" / f"800-none-seed{seed}.json").write_text(json.dumps(record))
    table = tables.render("papers", results)
    # Seed 2's record was made with other settings than the row's: it is not the row's run.
    assert f"| 784-800-10 | none | {none.paper} | 1.6 | 1.60, 1.50, – | 1.55 | 60, 61, – |" in table
    assert ROOT / "docs" / "distortions.md" in tables.stale(results=results)


def test_a_record_names_its_machine_libraries_and_commit():
    import numpy  # noqa: F401  (the BLAS a record names is the one loaded)

    from benchmarks import record

    machine, libraries, commit = record.machine(), record.libraries(), record.commit()
    assert machine["cpu"] and machine["cores"] >= 1 and isinstance(machine["blas"], list)
    assert {"python", "numpy", "mnist-xp"} <= set(libraries)
    assert commit["id"] is None or re.fullmatch(r"[0-9a-f]{40}", commit["id"])


def test_a_benchmark_run_is_reduced_to_what_the_tables_need():
    from benchmarks import record, tables

    run = {
        "datetime": "2026-12-02T01:00:00",
        "machine_info": {"cpu": {"brand_raw": "Some CPU", "count": 2}, "python_version": "3.11.7", "blas": []},
        "commit_info": {"id": "0123456789abcdef", "dirty": False},
        "benchmarks": [
            {"name": f"test_{impl}", "stats": {"median": seconds, "rounds": 5},
             "extra_info": {"impl": impl, "work": "step", "device": "cpu", "dtype": "float32", "batch": "full"}}
            for impl, seconds in (("ours", 0.15), ("floor", 0.16), ("ours-plain", 0.2))
        ],
    }
    reduced = record.reduce_benchmarks(run)
    assert [bench["impl"] for bench in reduced["benchmarks"]] == ["floor", "ours", "ours-plain"]
    table = tables.benchmarks_table([reduced])
    assert "| full-batch SGD step | cpu | float32 | 0.150 | 0.160 | – | – | 0.94 | – | – |" in table
    assert "| full-batch SGD step | cpu | float32 | plain | 0.200 | 0.75 |" in table


# ---- the site ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site as ``mkdocs build --strict`` makes it: any warning fails the build."""
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra is not installed (pip install '.[docs]'); .ci/run installs it")
    folder = tmp_path_factory.mktemp("site")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env["NO_MKDOCS_2_WARNING"] = "1"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(folder)],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stdout}\n{build.stderr}"
    return folder


def test_the_site_builds_with_warnings_as_errors(site):
    pages = {name: site / name.replace(".md", ".html") for name in (
        "index.md", "getting-started.md", "how-it-works.md", "training.md", "recipes.md", "checkpoints.md", "images.md",
        "export.md", "tuning.md", "backends.md", "benchmarks.md", "reference/api.md", "reference/commands.md",
        "changelog.md",
    )}
    assert all(path.exists() for path in pages.values()), [name for name, path in pages.items() if not path.exists()]


def test_the_site_fetches_nothing_from_the_network(site):
    fetched = re.compile(r"""<(?:script|link|img|iframe|source|video|audio)\b[^>]*\s(?:src|href)=["']?(?:https?:)?//""")
    for page in site.rglob("*.html"):
        found = fetched.search(page.read_text())
        assert not found, f"{page.name} loads something from the network: {found and found[0]}"


def test_the_reference_documents_everything_the_package_exports(site):
    import mnist_xp

    page = (site / "reference" / "api.html").read_text()
    for exported in mnist_xp.__all__:
        assert re.search(rf'id="mnist_xp\.[\w.]*\b{exported}"', page), f"{exported} is missing from the API reference"


def test_how_it_works_shows_the_code_as_it_is(site):
    import html
    import inspect

    from mnist_xp import nn

    page = (site / "how-it-works.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    for function in (nn.softmax, nn.backward, nn.forward):
        lines, first = inspect.getsourcelines(function)
        assert re.search(rf'href="#__codelineno-\d+-{first}">{first}<', page), f"{function.__name__}: line {first} is not shown"
        for line in lines:
            assert line.strip() in text, f"{function.__name__}: {line.strip()!r} is not on the page"


def test_a_source_line_naming_nothing_stops_the_build():
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    from mkdocs.exceptions import PluginError

    sys.path.insert(0, str(DOCS / "hooks"))
    try:
        include_source = importlib.import_module("include_source")
    finally:
        sys.path.remove(str(DOCS / "hooks"))
    text = include_source.expand("<!-- source: mnist_xp/nn.py relu -->")
    assert "def relu(z):" in text and 'title="mnist_xp/nn.py"' in text
    with pytest.raises(PluginError, match="no_such_function"):
        include_source.expand("<!-- source: mnist_xp/nn.py no_such_function -->")


def test_the_formulas_render_offline_in_chromium(site):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (the test extra)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    requested = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.goto((site / "how-it-works.html").as_uri())
            page.wait_for_load_state("load")
            formulas = page.locator(".arithmatex").count()
            rendered = page.locator(".arithmatex .katex").count()
            errors = page.locator(".katex-error").count()
            fonts = page.evaluate(
                "async () => { await document.fonts.ready; return [...document.fonts]"
                ".filter(face => face.family.includes('KaTeX') && face.status === 'loaded').length; }"
            )
        finally:
            browser.close()
    assert formulas > 40 and rendered == formulas and errors == 0, (formulas, rendered, errors)
    assert fonts > 0, "KaTeX's fonts did not load"
    assert all(url.startswith(("file:", "data:")) for url in requested), [u for u in requested if not u.startswith("file:")]
