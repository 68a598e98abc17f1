"""Record a run as JSON: what it measured, on which machine, with which libraries, at which commit.

    python -m benchmarks.record recipe NAME --seed S          # -> results/recipes/NAME-seedS.json
    python -m benchmarks.record recipe NAME --seed S --backend B [--compile | --no-compile]
                                                              # -> results/backends/NAME-B[-MODE]-seedS.json
    python -m benchmarks.record load NAME --seed S            # -> results/load/NAME-seedS.json
    python -m benchmarks.record bench --name NAME [-k EXPR]   # -> results/benchmarks/NAME.json
    python -m benchmarks.record bench RUN.json --name NAME

``recipe`` trains one recipe on the bundled MNIST (all 60,000 training images) and keeps its
test accuracy and training time; on NumPy it goes to results/recipes/, on another backend (or
compiled otherwise than the backend's default) to results/backends/, named by backend and mode
(``fast-jax-seed0.json`` compiled as JAX is by default, ``fast-jax-eager-seed0.json``). ``load``
trains a recipe on NumPy in four ways, taking turns in one process for ``LOAD_ROUNDS`` rounds:
with the machine to itself and with one core kept busy by another process, each with the steps'
products on one BLAS thread, as training runs them, and shared between NumPy's BLAS threads, for
comparison. ``bench`` runs ``pytest benchmarks --benchmark-only`` (or takes
a run that ``--benchmark-json RUN.json`` wrote) and keeps what the tables need: each benchmark's
median time and rounds. Both keep the load average while they ran, which says whether other work
shared the machine.
``python -m benchmarks.tables`` turns the records into the tables of the README and the manual.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import numpy

from .machine import blas_libraries, cpu_details, lscpu, openblas_env

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
LIBRARIES = (
    "numpy", "array-api-compat", "numba", "cupy-cuda12x", "cupy-cuda13x", "torch", "jax", "jaxlib", "scikit-learn",
)


def machine() -> dict:
    """The CPU model and core count, the BLAS with its kernel and threads, and the OPENBLAS_* variables."""
    cpu = lscpu()
    return {
        "cpu": cpu.get("Model name") or platform.processor() or "unknown CPU",
        **cpu_details(cpu),
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.machine()}",
        "blas": [blas_entry(info) for info in blas_libraries() if "note" not in info],
        "openblas_env": openblas_env(),
    }


def blas_entry(info: dict) -> dict:
    """A BLAS as threadpoolctl sees it, with the package that ships it ('numpy' for NumPy's own)."""
    entry = {key: info.get(key) for key in ("internal_api", "version", "architecture", "num_threads")}
    folder = Path(info.get("filepath") or "").parent.name
    entry["package"] = folder.removesuffix(".libs") or None
    return entry


def libraries() -> dict:
    """Python's version and those of the libraries a run may use (the ones installed)."""
    found = {"python": platform.python_version()}
    for name in ("mnist-xp", *LIBRARIES):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    import mnist_xp

    found["mnist-xp"] = mnist_xp.__version__
    return found


def git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def commit() -> dict:
    """The commit checked out, the last commit that changed the library, and whether its files differ from that."""
    changes = git("status", "--porcelain", "--", "mnist_xp")
    return {
        "id": git("rev-parse", "HEAD"),
        "library": git("log", "-1", "--format=%H", "--", "mnist_xp"),
        "library_changed": bool(changes) if changes is not None else None,
    }


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def compiles(backend: str, device: str, compile: bool | None) -> bool:
    """Whether a run on ``backend`` and ``device`` compiles, ``compile`` None meaning the backend's default."""
    from mnist_xp import backend as backends
    from mnist_xp.compiled import wanted

    return wanted(compile, backends.namespace(device, backend))


def record_recipe(name: str, seed: int, device: str = "cpu", backend: str | None = None, compile: bool | None = None) -> dict:
    """Train the recipe ``name`` with ``seed`` on all of MNIST and return its record.

    ``backend`` None is the device's default; ``compile`` None compiles where the backend does by default.
    A record made on a named ``backend`` says which, and whether it ran compiled.
    """
    import mnist_xp

    config = replace(mnist_xp.RECIPES[name], seed=seed)
    return record_run(config, kind="recipe", label=name, device=device, backend=backend, compile=compile)


def record_run(
    config, *, kind: str, label: str, device: str = "cpu", backend: str | None = None, compile: bool | None = None
) -> dict:
    """Train ``config`` on all of MNIST and return its record, of ``kind`` ("recipe", "paper") and named ``label``."""
    import mnist_xp

    started = now()
    before = os.getloadavg()[0]
    result = mnist_xp.train(config, device=device, backend=backend, compile=compile)
    load = max(before, os.getloadavg()[0])
    run = {"backend": backend, "compiled": compiles(backend, device, compile)} if backend is not None else {}
    return {
        "kind": kind,
        kind: label,
        "seed": config.seed,
        "device": device,
        **run,
        "network": "-".join(str(size) for size in result.model.layer_sizes),
        "test_accuracy": result.test_accuracy,
        "test_loss": result.test["loss"],
        "train_seconds": round(result.train_seconds, 3),
        "epochs": len(result.history),
        "settings": config.to_dict(),
        "recorded": started,
        "load_average": round(load, 2),
        "machine": machine(),
        "libraries": libraries(),
        "commit": commit(),
    }


LOAD_CONDITIONS = ((0, False), (1, False), (0, True), (1, True))
"""A load record's runs, in the order they are made: (cores kept busy, whether the steps' products are shared
between NumPy's BLAS threads, ``train(threads=...)``, instead of run on one thread as training runs them by default)."""


LOAD_ROUNDS = 3
"""A load record trains each of ``LOAD_CONDITIONS`` this many times, the conditions taking turns, and keeps the median."""


def record_load(name: str, seed: int) -> dict:
    """Train the recipe ``name`` with ``seed`` on NumPy in each of ``LOAD_CONDITIONS`` and return the record.

    A run of one epoch goes first, unrecorded, so that no recorded run pays for what a process
    loads once. Then the conditions take turns, ``LOAD_ROUNDS`` rounds, so that a slow spell of a
    shared machine falls on all of them; each keeps its median time and every round's. A busy core
    is another Python process spinning for the whole run. Each condition also keeps the test
    accuracy, the threads of NumPy's BLAS and a SHA-256 of the final weights, which says whether
    two runs computed the same network (and whether its rounds all did).
    """
    import mnist_xp

    config = replace(mnist_xp.RECIPES[name], seed=seed)
    data = mnist_xp.load_mnist(dtype=config.dtype)
    started, before = now(), os.getloadavg()[0]
    mnist_xp.train(replace(config, epochs=1), data=data)  # loads what the first run would load (Numba's kernels)
    blas_threads = numpy_blas_threads() or os.cpu_count() or 1
    results: dict = {condition: [] for condition in LOAD_CONDITIONS}
    for _ in range(LOAD_ROUNDS):
        for busy, shared in LOAD_CONDITIONS:
            spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
            try:
                result = mnist_xp.train(config, data=data, threads=blas_threads if shared else 1)
            finally:
                for spinner in spinners:
                    spinner.kill()
                    spinner.wait()
            results[(busy, shared)].append(result)
    runs = []
    for (busy, shared), rounds in results.items():
        digests = {weights_digest(result.model.params) for result in rounds}
        runs.append(
            {
                "busy_cores": busy,
                "shared_products": shared,
                "blas_threads": blas_threads if shared else 1,
                "test_accuracy": rounds[0].test_accuracy,
                "train_seconds": round(statistics.median(result.train_seconds for result in rounds), 3),
                "round_seconds": [round(result.train_seconds, 3) for result in rounds],
                "weights_sha256": weights_digest(rounds[0].model.params),
                "same_weights_every_round": len(digests) == 1,
            }
        )
    return {
        "kind": "load",
        "recipe": name,
        "seed": seed,
        "device": "cpu",
        "runs": runs,
        "settings": config.to_dict(),
        "recorded": started,
        "load_average": round(before, 2),
        "machine": machine(),
        "libraries": libraries(),
        "commit": commit(),
    }


def numpy_blas_threads() -> int | None:
    """The threads NumPy's BLAS would use now (None if threadpoolctl does not see it)."""
    blas = [info for info in blas_libraries() if blas_entry(info)["package"] == "numpy"]
    return blas[0]["num_threads"] if blas else None


def weights_digest(params) -> str:
    """SHA-256 of a network's weights and biases, layer by layer, as the host arrays hold their bytes."""
    digest = hashlib.sha256()
    for pair in params:
        for array in pair:
            digest.update(numpy.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def reduce_benchmarks(run: dict) -> dict:
    """What the tables need of a pytest-benchmark run: its machine and each benchmark's median and rounds."""
    info = run.get("machine_info", {})
    benchmarks = []
    for bench in run["benchmarks"]:
        extra = bench.get("extra_info", {})
        if "impl" not in extra or not bench.get("stats"):
            continue
        stats = bench["stats"]
        benchmarks.append(
            {
                "name": bench["name"],
                "work": extra["work"],
                "device": extra["device"],
                "dtype": extra["dtype"],
                "batch": str(extra["batch"]),
                "impl": extra["impl"],
                "median": stats["median"],
                "rounds": stats["rounds"],
            }
        )
    return {
        "kind": "benchmarks",
        "recorded": run.get("datetime"),
        "machine": {
            "cpu": info.get("cpu", {}).get("brand_raw") or info.get("processor") or "unknown CPU",
            "cores": info.get("cpu", {}).get("count"),
            **info.get("cpu_details", {}),
            "blas": [blas_entry(lib) for lib in info.get("blas", []) if "note" not in lib],
            "openblas_env": info.get("openblas_env", {}),
        },
        "libraries": {"python": info.get("python_version")},
        "commit": {"id": run.get("commit_info", {}).get("id"), "dirty": run.get("commit_info", {}).get("dirty")},
        "benchmarks": sorted(benchmarks, key=lambda bench: bench["name"]),
    }


def run_benchmarks(select: str | None = None) -> dict:
    """Run ``pytest benchmarks --benchmark-only`` now and reduce its run, with the load average around it."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "run.json"
        command = [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only", f"--benchmark-json={output}", "-q"]
        command += ["-p", "no:cacheprovider", *(["-k", select] if select else [])]
        before = os.getloadavg()[0]
        subprocess.run(command, cwd=ROOT, check=True)
        after = os.getloadavg()[0]
        record = reduce_benchmarks(json.loads(output.read_text()))
    record["load_average"] = round(max(before, after), 2)
    return record


def recipe_path(results: Path, record: dict) -> Path:
    """Where a recipe's record goes: a run on the device's own backend in recipes/, one on another in backends/.

    A backend's records are named by it, with ``-compiled`` or ``-eager`` where the run differs from
    the backend's default; a device other than the CPU is a suffix, as it has been in recipes/.
    """
    name, seed, device = record["recipe"], record["seed"], record["device"]
    suffix = "" if device == "cpu" else f"-{device}"
    if "backend" not in record:
        return results / "recipes" / f"{name}-seed{seed}{suffix}.json"
    compiled = record["compiled"]
    mode = "" if compiled == compiles(record["backend"], device, None) else ("-compiled" if compiled else "-eager")
    return results / "backends" / f"{name}-{record['backend']}{mode}-seed{seed}{suffix}.json"


def write(record: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.record", description=__doc__.splitlines()[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    recipe = kinds.add_parser("recipe", help="train a recipe on all of MNIST and record it")
    recipe.add_argument("name", help="a recipe of mnist_xp.RECIPES")
    recipe.add_argument("--seed", type=int, default=0)
    recipe.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    recipe.add_argument("--backend", default=None, help="numpy, cupy, torch or jax (default: the device's own)")
    recipe.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, default=None,
        help="run compiled, or with --no-compile eagerly (default: as the backend does)",
    )
    recipe.add_argument("--results", type=Path, default=RESULTS, help="folder of the recipes/ and backends/ records")
    load = kinds.add_parser("load", help="train a recipe on NumPy with and without a busy core, and record it")
    load.add_argument("name", help="a recipe of mnist_xp.RECIPES")
    load.add_argument("--seed", type=int, default=0)
    load.add_argument("--results", type=Path, default=RESULTS, help="folder of the load/ records")
    bench = kinds.add_parser("bench", help="reduce a pytest-benchmark JSON run to a record")
    bench.add_argument("run", type=Path, nargs="?", help="a file written by pytest --benchmark-json (default: run them now)")
    bench.add_argument("-k", dest="select", default=None, help="run only the benchmarks that pytest -k EXPR selects")
    bench.add_argument("--name", required=True, help="the record's name, e.g. cpu-2026-12-02")
    bench.add_argument("--out", type=Path, default=RESULTS / "benchmarks", help="folder of the records")
    args = parser.parse_args(argv)
    if args.kind == "bench" and args.run is None:
        record = run_benchmarks(args.select)
        path = write(record, args.out / f"{args.name}.json")
        print(path)
        return 0
    if args.kind in ("load", "recipe"):
        import mnist_xp

        if args.name not in mnist_xp.RECIPES:
            parser.error(f"unknown recipe {args.name!r}: choose one of {', '.join(sorted(mnist_xp.RECIPES))}")
    if args.kind == "load":
        path = write(record_load(args.name, args.seed), args.results / "load" / f"{args.name}-seed{args.seed}.json")
    elif args.kind == "recipe":
        from mnist_xp.backend import allow_float64, check_choice
        from mnist_xp.errors import MnistXpError

        try:
            backend = check_choice(args.device, args.backend)
            allow_float64(backend)  # as the train command does: a float64 recipe (``seed``) runs on JAX too
            own = backend == check_choice(args.device) and not args.compile
            record = record_recipe(args.name, args.seed, args.device, None if own else backend, args.compile)
        except MnistXpError as error:
            parser.error(str(error))
        path = write(record, recipe_path(args.results, record))
    else:
        path = write(reduce_benchmarks(json.loads(args.run.read_text())), args.out / f"{args.name}.json")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
