"""Turn a saved benchmark run into a markdown table of time ratios.

    pytest --benchmark-only --benchmark-json RUN.json
    python -m benchmarks.report RUN.json

Each row is one piece of work (a full-batch step, an Adam epoch at a batch size) on one device
and dtype; the columns are median times and the ratios ours / floor, ours / Keras and
ours / PyTorch (below 1 means ours is faster). A second table sets our engine on each backend
(NumPy or CuPy, PyTorch and JAX, eager and compiled) side by side, names the fastest for each
piece of work, and divides its time by idiomatic PyTorch's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .machine import describe, forced_coretype_warning

PEERS = (("floor", "floor"), ("keras", "Keras"), ("torch", "PyTorch"))
WORK_NAMES = {
    "step": "full-batch SGD step",
    "adam-epoch": "Adam epoch, batch {batch}",
    "elastic-epoch": "784-800-10 epoch, batch {batch}",
}
BACKENDS = (
    ("ours", "NumPy or CuPy"),
    ("ours-torch", "PyTorch"),
    ("ours-torch-compiled", "PyTorch compiled"),
    ("ours-jax", "JAX"),
    ("ours-jax-compiled", "JAX compiled"),
)
"""Our engine on each backend: the benchmarks' ``impl`` and the report's name for it."""


def medians(run: dict) -> dict:
    """{(work, device, dtype, batch): {impl: median seconds}} from a pytest-benchmark JSON run."""
    table: dict = {}
    for bench in run["benchmarks"]:
        info = bench.get("extra_info", {})
        if "impl" not in info or not bench.get("stats"):
            continue
        key = (info["work"], info["device"], info["dtype"], str(info["batch"]))
        table.setdefault(key, {})[info["impl"]] = bench["stats"]["median"]
    return table


def ratio(ours: float | None, other: float | None) -> str:
    return "–" if ours is None or other is None else f"{ours / other:.2f}"


def seconds(value: float | None) -> str:
    """Times of 0.1 s or more to the millisecond; shorter ones (a GPU's) to three significant digits."""
    if value is None:
        return "–"
    return f"{value:.3f}" if value >= 0.1 else f"{value:.3g}"


def render(run: dict) -> str:
    machine = run.get("machine_info", {})
    env = machine.get("openblas_env", {})
    cpu = machine.get("cpu", {}).get("brand_raw", machine.get("processor", "unknown CPU"))
    lines = [
        (
            f"Run of {run.get('datetime', 'unknown date')[:16].replace('T', ' ')} UTC on {cpu} "
            f"({machine.get('cpu', {}).get('count', '?')} cores), Python {machine.get('python_version', '?')}."
        ),
        "",
        f"BLAS: {describe(machine.get('blas', []))}. OPENBLAS_* variables: "
        + (", ".join(f"{k}={v}" for k, v in env.items()) or "none set")
        + ".",
        "",
    ]
    warning = forced_coretype_warning(env)
    if warning:
        lines += [f"**Warning:** {warning}", ""]
    lines += [
        "| work | device | dtype | ours (s) | floor (s) | Keras (s) | PyTorch (s) | ours/floor | ours/Keras | ours/PyTorch |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = sorted(medians(run).items(), key=lambda item: (item[0][0] != "step", item[0]))
    variants = []
    backends = dict(BACKENDS)
    for (work, device, dtype, batch), times in rows:
        ours = times.get("ours")
        name = WORK_NAMES.get(work, work).format(batch=batch)
        cells = [name, device, dtype, seconds(ours), *(seconds(times.get(impl)) for impl, _ in PEERS)]
        cells += [ratio(ours, times.get(impl)) for impl, _ in PEERS]
        lines.append("| " + " | ".join(cells) + " |")
        for impl in sorted(impl for impl in times if impl.startswith("ours-") and impl not in backends):
            cells = [name, device, dtype, impl.removeprefix("ours-"), seconds(times[impl]), ratio(ours, times[impl])]
            variants.append("| " + " | ".join(cells) + " |")
    if variants:
        lines += ["", "Our step against its own variants (ours/variant below 1 means the step as shipped is faster):", ""]
        lines += ["| work | device | dtype | variant | variant (s) | ours/variant |", "|---|---|---|---|---:|---:|", *variants]
    return "\n".join(lines + fastest_backends(rows))


def fastest_backends(rows) -> list[str]:
    """The table of our engine on each backend, for the pieces of work run on more than one; [] if there are none."""
    names = [name for _, name in BACKENDS]
    table = []
    for (work, device, dtype, batch), times in rows:
        ours = {name: times[impl] for impl, name in BACKENDS if impl in times}
        if len(ours) < 2:
            continue
        fastest = min(ours, key=ours.get)
        cells = [WORK_NAMES.get(work, work).format(batch=batch), device, dtype]
        cells += [seconds(ours.get(name)) for name in names]
        cells += [fastest, ratio(ours[fastest], times.get("torch"))]
        table.append("| " + " | ".join(cells) + " |")
    if not table:
        return []
    header = ["work", "device", "dtype", *(f"{name} (s)" for name in names), "fastest", "fastest/PyTorch"]
    return [
        "",
        (
            "Our engine on each backend, eager and compiled (fastest/PyTorch below 1 means our fastest beats "
            "idiomatic PyTorch eager):"
        ),
        "",
        "| " + " | ".join(header) + " |",
        "|---|---|---|" + "---:|" * len(names) + "---|---:|",
        *table,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a JSON file written by pytest --benchmark-json")
    args = parser.parse_args(argv)
    try:
        run = json.loads(args.run.read_text())
        print(render(run))
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot read a benchmark run from {args.run}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
