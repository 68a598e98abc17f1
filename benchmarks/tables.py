"""Turn the recorded runs in results/ into the tables of README.md and the manual's pages.

    python -m benchmarks.tables          # rewrite every table between its markers
    python -m benchmarks.tables --check  # exit 1, naming the files, where a table differs from the records

A table lives between two markers in a Markdown file,

    <!-- table: recipes -->
    ...
    <!-- /table -->

and everything between them is made here from the records (``python -m benchmarks.record``
writes them): ``recipes`` from results/recipes/, ``backends`` from the ``fast`` and ``keras`` recipes'
records there and in results/backends/, ``every-backend`` from every recipe's records in both,
``benchmarks`` from the newest record in results/benchmarks/,
``load`` from results/load/ (``python -m benchmarks.record load``).
Nothing in a table is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

from mnist_xp import TrainConfig, augment

from .report import PEERS, WORK_NAMES, ratio, seconds

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
SEEDS = (0, 1, 2)
BACKENDS_RECIPES = ("fast", "keras")
"""The recipes whose runs the backends table shows, in its order."""
RUNS = {
    ("numpy", False): "eager",
    ("cupy", False): "eager",
    ("torch", False): "eager; `--compile`: each step through `torch.compile`",
    ("jax", True): "compiled: each epoch one `jax.jit` program",
    ("jax", False): "eager (`--no-compile`)",
}
"""The backends table's rows, (backend, compiled), each with how it runs; a backend's second row is named by its mode."""
INSTALL_NOTES = {"jax": "; for a GPU also `pip install -U 'jax[cuda12]'`"}
MARKED = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.DOTALL)


def load_records(folder: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def describe_settings(settings: dict) -> str:
    """A recipe's settings in a few words, such as 'nesterov, lr 0.3, cosine, batch 128, 4 epochs'."""
    words = [settings["optimizer"]]
    if settings["optimizer"] in ("momentum", "nesterov") and settings["momentum"] != 0.9:
        words[0] += f" {settings['momentum']:g}"
    words.append(f"lr {settings['lr']:g}")
    if settings["schedule"] != "constant":
        words.append(settings["schedule"])
    if settings["warmup"]:
        words.append(f"{settings['warmup']:g}-epoch warm-up")
    if settings["init"] != "he":
        words.append(f"{settings['init']} init")
    for name, label in (("dropout", "dropout"), ("input_dropout", "input dropout"), ("l2", "L2")):
        if settings[name]:
            words.append(f"{label} {settings[name]:g}")
    if settings["label_smoothing"]:
        words.append(f"label smoothing {settings['label_smoothing']:g}")
    if settings["shift"]:
        words.append(f"shifts of up to {settings['shift']} px")
    distortion = augment.from_config(TrainConfig.from_dict(settings))
    if distortion.active:
        words.append(f"distortions: {distortion.describe()}")
    batch = settings["batch_size"]
    words.append("full batch" if batch == "full" else f"batch {batch}")
    words.append(f"{settings['epochs']} epochs")
    if settings["dtype"] != "float32":
        words.append(settings["dtype"])
    return ", ".join(words)


def describe_blas(machine: dict) -> list[str]:
    """NumPy's BLAS where the record says which it is, else every BLAS the process had loaded."""
    libraries = [lib for lib in machine["blas"] if lib.get("package") == "numpy"] or machine["blas"]
    return sorted({f"{lib['internal_api']} {lib['version']} ({lib['architecture']} kernel)" for lib in libraries})


def describe_cpu(machine: dict) -> str:
    """The CPU's model name with its family and model numbers where recorded, whether it has AVX-512, and its cores."""
    details = []
    if machine.get("cpu_family"):
        details.append(f"family {machine['cpu_family']}, model {machine.get('cpu_model', '?')}")
    if "avx512" in machine:
        details.append("AVX-512" if machine["avx512"] else "no AVX-512")
    details.append(f"{machine['cores']} cores")
    return f"{machine['cpu']} ({'; '.join(details)})"


def describe_machine(record: dict) -> str:
    machine, libraries = record["machine"], record["libraries"]
    blas = describe_blas(machine)
    forced = ", ".join(f"{key}={value}" for key, value in machine.get("openblas_env", {}).items())
    parts = [describe_cpu(machine), ", ".join(blas) or "no BLAS recorded"]
    if forced:
        parts.append(forced)
    labels = (("python", "Python"), ("numpy", "NumPy"), ("numba", "Numba"))
    versions = [f"{label} {libraries[key]}" for key, label in labels if libraries.get(key)]
    return "; ".join(parts + [", ".join(versions)])


def percent(value: float) -> str:
    return f"{100 * value:.2f}"


def recipes_table(records: list[dict], recipe_settings: dict[str, dict]) -> str:
    """One row per recipe (in ``recipe_settings``' order): test accuracy and training time for each seed."""
    runs = {(r["recipe"], r["seed"]): r for r in records if r["kind"] == "recipe" and r["device"] == "cpu"}
    lines = [
        "| recipe | network | settings | test accuracy (%), seeds 0, 1, 2 | mean | training time (s), seeds 0, 1, 2 |",
        "|---|---|---|---|---:|---|",
    ]
    missing = []
    for name, settings in recipe_settings.items():
        found = [runs.get((name, seed)) for seed in SEEDS]
        recorded = [run for run in found if run is not None]
        if not recorded:
            missing.append(name)
        settings = recorded[0]["settings"] if recorded else settings
        network = recorded[0]["network"] if recorded else "784-" + "-".join(map(str, settings["hidden"])) + "-10"
        accuracies = ", ".join("–" if run is None else percent(run["test_accuracy"]) for run in found)
        mean = percent(statistics.fmean(run["test_accuracy"] for run in recorded)) if recorded else "–"
        times = ", ".join("–" if run is None else f"{run['train_seconds']:.1f}" for run in found)
        lines.append(f"| `{name}` | {network} | {describe_settings(settings)} | {accuracies} | {mean} | {times} |")
    lines.append("")
    lines.append(recipes_caption(list(runs.values()), missing))
    return "\n".join(lines)


def recipes_caption(records: list[dict], missing: list[str]) -> str:
    text = runs_caption(records)
    if records and missing:
        text += " Not recorded yet: " + ", ".join(f"`{name}`" for name in missing) + "."
    return text


def recorded_where(records: list[dict]) -> str:
    """'recorded DATE[ to DATE] with the library at commit C, ..., on MACHINE[; and on ...]' for ``records``."""
    dates = sorted(record["recorded"][:10] for record in records)
    commits = sorted({(record["commit"].get("library") or record["commit"]["id"] or "?")[:10] for record in records})
    machines = sorted({describe_machine(record) for record in records})
    span = dates[0] + (f" to {dates[-1]}" if dates[-1] != dates[0] else "")
    return f"recorded {span} with the library at commit {', '.join(commits)}, on {'; and on '.join(machines)}"


def runs_caption(records: list[dict]) -> str:
    """Where and when recipe runs were recorded: the data, dates, commits, machines, and the load if it was high."""
    if not records:
        return "No recipe has been recorded yet."
    text = (
        "Trained on all 60,000 training images and tested on the 10,000 test images, on the CPU; "
        f"{recorded_where(records)}."
    )
    busiest = max(records, key=lambda record: record["load_average"] / record["machine"]["cores"])
    if busiest["load_average"] >= busiest["machine"]["cores"]:
        text += (
            f" Other work shared the machine during some of these runs (load average up to {busiest['load_average']:g} "
            f"on {busiest['machine']['cores']} cores), so their training times may be above what it takes alone."
        )
    return text


def run_label(name: str, compiled: bool) -> str:
    """A backend's name for its first row of ``RUNS``; its other row is also named by its mode."""
    first = next(key for key in RUNS if key[0] == name)
    return f"`{name}`" + ("" if first == (name, compiled) else " compiled" if compiled else " eager")


def backend_of(record: dict) -> tuple[str, bool]:
    """A recipe record's (backend, compiled): records without them are NumPy's, eager (results/recipes/)."""
    return record.get("backend", "numpy"), record.get("compiled", False)


def library_name(library, runs: list[dict]) -> str:
    """A library's title and the versions of its package (such as 'cupy-cuda12x' for CuPy) that ``runs`` used."""
    package = library.module.split(".")[0]
    versions = sorted(
        {version for run in runs for key, version in run["libraries"].items() if key.split("-")[0] == package}
    )
    return f"{library.title} {', '.join(versions)}".rstrip()


def backends_table(records: list[dict]) -> str:
    """One row per backend and mode of ``RUNS``: its library, devices and install, and each of ``BACKENDS_RECIPES``'
    runs (test accuracy and training time for each seed)."""
    from mnist_xp.backend import LIBRARIES

    runs = {
        (r["recipe"], *backend_of(r), r["seed"]): r
        for r in records
        if r["kind"] == "recipe" and r["recipe"] in BACKENDS_RECIPES and r["device"] == "cpu"
    }
    header = ["backend", "library", "devices", "install", "runs"]
    for name in BACKENDS_RECIPES:
        header += [f"`{name}`: test accuracy (%), seeds 0, 1, 2", f"`{name}`: training time (s), seeds 0, 1, 2"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes = []
    for (name, compiled), how in RUNS.items():
        library = LIBRARIES[name]
        label = run_label(name, compiled)
        install = f"`pip install '.[{library.extra}]'`" if library.extra else "included"
        found = {recipe: [runs.get((recipe, name, compiled, seed)) for seed in SEEDS] for recipe in BACKENDS_RECIPES}
        recorded = [run for runs_of in found.values() for run in runs_of if run is not None]
        cells = [label, library_name(library, recorded), ", ".join(library.devices), install + INSTALL_NOTES.get(name, ""), how]
        for recipe_runs in found.values():
            cells.append(", ".join("–" if run is None else percent(run["test_accuracy"]) for run in recipe_runs))
            cells.append(", ".join("–" if run is None else f"{run['train_seconds']:.1f}" for run in recipe_runs))
        lines.append("| " + " | ".join(cells) + " |")
        if not recorded:
            notes.append(f"{label}: not recorded " + ("yet" if "cpu" in library.devices else "here (no GPU)"))
    lines.append("")
    caption = runs_caption(list(runs.values()))
    lines.append(caption + (" " + "; ".join(notes) + "." if notes else ""))
    return "\n".join(lines)


def every_backend_table(records: list[dict]) -> str:
    """One row per recipe (in ``mnist_xp.RECIPES``' order) and one column per backend and mode of ``RUNS`` that
    runs on the CPU: the mean test accuracy of the recorded seeds, which seeds, and their median training time."""
    from mnist_xp import RECIPES
    from mnist_xp.backend import LIBRARIES

    runs: dict = {}
    for r in records:
        if r["kind"] == "recipe" and r["device"] == "cpu":
            runs.setdefault((r["recipe"], *backend_of(r)), {})[r["seed"]] = r
    columns = [(name, compiled) for name, compiled in RUNS if "cpu" in LIBRARIES[name].devices]
    labels = [run_label(name, compiled) for name, compiled in columns]
    lines = ["| recipe | " + " | ".join(labels) + " |", "|---|" + "---|" * len(columns)]
    for recipe in RECIPES:
        cells = [f"`{recipe}`"]
        for name, compiled in columns:
            found = runs.get((recipe, name, compiled), {})
            if not found:
                cells.append("–")
                continue
            seeds = sorted(found)
            mean = statistics.mean(found[seed]["test_accuracy"] for seed in seeds)
            time = median_seconds(list(found.values()))
            which = "seed" if len(seeds) == 1 else "seeds"
            cells.append(f"{percent(mean)} ({which} {', '.join(map(str, seeds))}; {time:.1f} s)")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        (
            "Mean test accuracy (%) of the recorded seeds and their median training time. "
            + runs_caption([run for found in runs.values() for run in found.values()])
        ),
    ]
    return "\n".join(lines)


def benchmarks_table(records: list[dict]) -> str:
    """The newest benchmark record: median times of ours and its peers, their ratios, and our step's variants."""
    if not records:
        return "No benchmark run has been recorded yet."
    record = max(records, key=lambda r: r["recorded"] or "")
    times: dict = {}
    for bench in record["benchmarks"]:
        key = (bench["work"], bench["device"], bench["dtype"], bench["batch"])
        times.setdefault(key, {})[bench["impl"]] = bench["median"]
    lines = [
        "| work | device | dtype | ours (s) | floor (s) | Keras (s) | PyTorch (s) | ours/floor | ours/Keras | ours/PyTorch |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    variants = []
    for (work, device, dtype, batch), impls in sorted(times.items(), key=lambda item: (item[0][0] != "step", item[0])):
        ours = impls.get("ours")
        name = WORK_NAMES.get(work, work).format(batch=batch)
        cells = [name, device, dtype, seconds(ours), *(seconds(impls.get(impl)) for impl, _ in PEERS)]
        cells += [ratio(ours, impls.get(impl)) for impl, _ in PEERS]
        lines.append("| " + " | ".join(cells) + " |")
        for impl in sorted(impl for impl in impls if impl.startswith("ours-")):
            variant = [name, device, dtype, impl.removeprefix("ours-"), seconds(impls[impl]), ratio(ours, impls[impl])]
            variants.append("| " + " | ".join(variant) + " |")
    if variants:
        lines += ["", "| work | device | dtype | variant | variant (s) | ours/variant |", "|---|---|---|---|---:|---:|"]
        lines += variants
    machine = record["machine"]
    blas = describe_blas(machine)
    forced = ", ".join(f"{key}={value}" for key, value in machine.get("openblas_env", {}).items())
    lines += [
        "",
        (
            f"Medians of one run recorded {(record['recorded'] or '?')[:16].replace('T', ' ')} UTC at commit "
            f"{(record['commit']['id'] or '?')[:10]}, on {describe_cpu(machine)}, "
            f"{', '.join(blas) or 'no BLAS recorded'}{'; ' + forced if forced else ''}, "
            f"Python {record['libraries'].get('python', '?')}. A dash: that contestant was not installed or does not run "
            "there."
        ),
    ]
    load, cores = record.get("load_average"), machine["cores"]
    if load is not None and cores and load >= cores:
        lines[-1] += (
            f" Other work shared the machine during this run (load average up to {load:g} on {cores} cores), so its "
            "times and ratios are not what the machine gives alone."
        )
    return "\n".join(lines)


LOAD_RECIPES = ("fast", "default")
"""The recipes the load table shows, in its order."""


def median_seconds(runs: list[dict]) -> float | None:
    """The median training time of ``runs`` (None without any)."""
    return statistics.median(run["train_seconds"] for run in runs) if runs else None


def load_table(records: list[dict]) -> str:
    """Training times with the machine to itself and with one core busy, with the steps' products on one
    BLAS thread (as training runs them) and shared between NumPy's BLAS threads.

    One row per recipe and way: the median over seeds of each condition's time and their ratio,
    and for each seed the test accuracy and the start of the weights' SHA-256 (runs with the same
    digest computed the same network; a dagger marks a seed whose busy run computed another).
    """
    runs: dict = {}
    threads: dict = {}
    for record in records:
        for run in record["runs"]:
            key = (record["recipe"], run["shared_products"])
            runs.setdefault(key, {})[(record["seed"], run["busy_cores"])] = run
            threads.setdefault(key, set()).add(run["blas_threads"] if run["shared_products"] else 1)
    if not runs:
        return "No run with and without a busy core has been recorded yet."
    lines = [
        (
            "| recipe | products on | quiet (s) | one core busy (s) | busy / quiet | test accuracy (%), seeds 0, 1, 2 "
            "| weights (SHA-256), seeds 0, 1, 2 |"
        ),
        "|---|---|---:|---:|---:|---|---|",
    ]
    order = {name: index for index, name in enumerate(LOAD_RECIPES)}
    for name, shared in sorted(runs, key=lambda key: (order.get(key[0], len(order)), key[0], key[1])):
        found = runs[(name, shared)]
        quiet, busy = (median_seconds([run for (_, load), run in found.items() if load == busy]) for busy in (0, 1))
        accuracies, digests = [], []
        for seed in SEEDS:
            run, loaded = found.get((seed, 0)), found.get((seed, 1))
            accuracies.append("–" if run is None else percent(run["test_accuracy"]))
            differs = run is not None and loaded is not None and loaded["weights_sha256"] != run["weights_sha256"]
            digests.append("–" if run is None else f"`{run['weights_sha256'][:8]}`" + (" †" if differs else ""))
        counts = "/".join(str(count) for count in sorted(threads[(name, shared)]))
        way = f"{counts} BLAS threads, shared" if shared else "one BLAS thread"
        cells = [
            f"`{name}`", way, "–" if quiet is None else f"{quiet:.2f}", "–" if busy is None else f"{busy:.2f}",
            "–" if quiet is None or busy is None else f"{busy / quiet:.2f}", ", ".join(accuracies), ", ".join(digests),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    where = recorded_where(records)
    lines += [
        "",
        (
            "Medians over the seeds of the training time on all 60,000 images, NumPy; each seed's time the median "
            "of its rounds, the four ways taking turns in one process, a busy core being another process that spins "
            "for the whole run. "
            "Training runs each batch's products on one BLAS thread (`backend.serial_blas`); the shared rows run "
            "them on all of NumPy's BLAS threads (`--threads N`). Accuracies and digests are the quiet "
            "runs'; † marks a seed whose busy run computed other weights. "
            f"{where[0].upper()}{where[1:]}."
        ),
    ]
    return "\n".join(lines)


def default_settings() -> dict[str, dict]:
    """Every recipe's settings, in ``mnist_xp.RECIPES``' order, for the rows of recipes not yet recorded."""
    from mnist_xp import RECIPES

    return {name: config.to_dict() for name, config in RECIPES.items()}


def render(name: str, results: Path = RESULTS) -> str:
    if name == "recipes":
        return recipes_table(load_records(results / "recipes"), default_settings())
    if name == "backends":
        return backends_table(load_records(results / "recipes") + load_records(results / "backends"))
    if name == "every-backend":
        return every_backend_table(load_records(results / "recipes") + load_records(results / "backends"))
    if name == "benchmarks":
        return benchmarks_table(load_records(results / "benchmarks"))
    if name == "load":
        return load_table(load_records(results / "load"))
    if name == "papers":
        from .papers import table

        found = [(folder, record) for folder in ("recipes", "papers") for record in load_records(results / folder)]
        keyed = {
            (folder, r.get("recipe") or r.get("paper"), r["seed"]): r for folder, r in found if r["device"] == "cpu"
        }
        return table(keyed, runs_caption)
    raise ValueError(f"no table called {name!r}")


def rewrite(text: str, results: Path = RESULTS) -> str:
    """``text`` with every marked table made afresh from the records."""
    return MARKED.sub(lambda m: f"{m[1]}\n{render(m['name'], results)}\n\n{m[4]}", text)


def documents(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def stale(root: Path = ROOT, results: Path = RESULTS) -> list[Path]:
    """The documents whose tables differ from what the records give."""
    return [
        path for path in documents(root) if path.exists() and rewrite(path.read_text(), results) != path.read_text()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tables", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 where a table is out of date")
    args = parser.parse_args(argv)
    changed = stale()
    if args.check:
        for path in changed:
            print(f"{path.relative_to(ROOT)}: a table differs from the records (run python -m benchmarks.tables)")
        return 1 if changed else 0
    for path in changed:
        path.write_text(rewrite(path.read_text()))
        print(f"rewrote the tables of {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
