"""The papers' table: plain MLPs trained on distorted digits, the published test error beside ours.

    python -m benchmarks.papers ROW --seed S    # train a row's network on all of MNIST -> results/papers/ROW-seedS.json

Simard, Steinkraus and Platt (ICDAR 2003) trained 784-800-10 with cross-entropy on MNIST as it is,
with affine distortions and with elastic distortions; Ciresan, Meier, Gambardella and Schmidhuber
(Neural Computation 2010) trained deeper networks with elastic and affine distortions together.
Each row here is one of their networks with our settings for it; a row that is a recipe
(``elastic``, ``best``) reads the recipe's records in results/recipes/ instead of its own.
``python -m benchmarks.tables`` puts the rows into the table marked ``papers``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from mnist_xp import RECIPES, TrainConfig

from .record import RESULTS, record_run, write

SIMARD = "Simard et al. 2003"
CIRESAN = "Ciresan et al. 2010"
AFFINE = {"rotate": 7.5, "zoom": 0.075, "shear": 7.5}


@dataclass(frozen=True)
class Row:
    """A network of a paper: its distortions in words, the paper's test error (%) and our settings for it."""

    paper: str
    distortions: str
    paper_error: float
    config: TrainConfig
    recipe: str | None = None


def rows() -> dict[str, Row]:
    elastic = RECIPES["elastic"]
    plain = replace(elastic, elastic=0.0)
    return {
        "800-none": Row(SIMARD, "none", 1.6, plain),
        "800-affine": Row(SIMARD, "affine", 1.1, replace(plain, **AFFINE)),
        "800-elastic": Row(SIMARD, "elastic", 0.7, elastic, recipe="elastic"),
        "deep": Row(f"{CIRESAN} (784-1000-500-10)", "elastic and affine", 0.49, RECIPES["best"], recipe="best"),
    }


def row_records(records: dict, name: str, row: Row) -> list[dict | None]:
    """The row's records for seeds 0, 1 and 2 (None where missing, or made with other settings than the
    row's), from ``records``: {(folder, name, seed): record} with folder "recipes" or "papers"."""
    folder, key = ("recipes", row.recipe) if row.recipe else ("papers", name)
    wanted = row.config.to_dict() | {"seed": None}
    found = [records.get((folder, key, seed)) for seed in (0, 1, 2)]
    return [run if run is not None and run["settings"] | {"seed": None} == wanted else None for run in found]


def table(records: dict, runs_caption) -> str:
    """The papers' rows with our test error on seeds 0, 1 and 2, their mean and the training times, under
    ``runs_caption(records)``: where and when the rows' runs were made."""
    lines = [
        (
            "| network | distortions | paper | paper's test error (%) | our test error (%), seeds 0, 1, 2 "
            "| our mean (%) | training time (s), seeds 0, 1, 2 |"
        ),
        "|---|---|---|---:|---|---:|---|",
    ]
    seen = []
    for name, row in rows().items():
        found = row_records(records, name, row)
        recorded = [run for run in found if run is not None]
        seen += recorded
        network = "784-" + "-".join(map(str, row.config.hidden)) + "-10"
        errors = ", ".join("–" if run is None else f"{100 * (1 - run['test_accuracy']):.2f}" for run in found)
        mean = f"{100 * (1 - statistics.fmean(r['test_accuracy'] for r in recorded)):.2f}" if recorded else "–"
        times = ", ".join("–" if run is None else f"{run['train_seconds']:.0f}" for run in found)
        lines.append(
            f"| {network} | {row.distortions} | {row.paper} | {row.paper_error:g} | {errors} | {mean} | {times} |"
        )
    caption = runs_caption(seen) if seen else "No row has been recorded yet."
    lines += ["", caption]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    names = rows()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.papers", description=__doc__.splitlines()[0])
    parser.add_argument("row", choices=[name for name, row in names.items() if row.recipe is None])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "papers", help="folder of the records")
    args = parser.parse_args(argv)
    config = replace(names[args.row].config, seed=args.seed)
    record = record_run(config, kind="paper", label=args.row)
    print(write(record, args.out / f"{args.row}-seed{args.seed}.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
