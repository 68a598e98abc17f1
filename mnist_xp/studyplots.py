"""Pictures of an Optuna study: its optimization history, the settings' importances and a slice plot, as PNG files.

Each is drawn on a figure of its own with matplotlib's Agg canvas (as ``plots`` draws), never
through pyplot, so that neither the backend nor any style or rcParams of the process changes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .plots import require

TARGET = "validation accuracy"
DPI = 100
SLICE_SETTINGS = 4
"""The slice plot shows the settings that mattered most, so that each panel stays readable."""


def write_plots(study, folder: Path) -> list[Path]:
    """The study's optimization history, parameter importances and slice plot, as PNG files in ``folder``.

    The importances need a few completed trials that differ; without them that plot is left out and
    the slice plot shows every setting. When a few trials scored far below the rest, the value axes
    start at the lowest tenth of the completed trials, so that the good ones can be told apart.
    Nothing is drawn for a study without a completed trial.
    """
    require()
    completed = [trial for trial in study.get_trials(deepcopy=False) if trial.state.name == "COMPLETE"]
    if not completed:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    importances = _importances(study)
    focus = _value_range([trial.value for trial in completed])
    figures = {"history": _history(completed, focus)}
    if importances:
        figures["importances"] = _importance_bars(importances)
    searched = sorted({name for trial in completed for name in trial.params})
    figures["slice"] = _slices(completed, list(importances)[:SLICE_SETTINGS] or searched, focus)
    written = []
    for name, figure in figures.items():
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=DPI, bbox_inches="tight")
        written.append(path)
    return written


def _importances(study) -> dict[str, float]:
    """Each searched setting's importance for the objective, largest first; empty when the trials are too few."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluator = getattr(optuna.importance, "PedAnovaImportanceEvaluator", lambda: None)()
        try:
            return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
        except (ValueError, RuntimeError, ZeroDivisionError):  # too few trials, or none that differ
            return {}


def _figure(size: tuple[float, float]):
    Figure, FigureCanvasAgg = require()
    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _value_label(focus) -> str:
    return TARGET if focus is None else f"{TARGET} (the worst tenth below)"


def _history(completed: list, focus) -> object:
    """Each completed trial's value by trial number, and the best value so far."""
    figure = _figure((6.4, 4.8))
    axes = figure.subplots()
    numbers = [trial.number for trial in completed]
    values = [trial.value for trial in completed]
    best = [max(values[: i + 1]) for i in range(len(values))]
    axes.scatter(numbers, values, color="tab:blue", label=TARGET, zorder=2)
    axes.step(numbers, best, where="post", color="tab:red", alpha=0.6, label="best so far")
    axes.set(title="Optimization history", xlabel="trial", ylabel=_value_label(focus))
    if focus is not None:
        axes.set_ylim(*focus)
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    return figure


def _importance_bars(importances: dict[str, float]) -> object:
    """Horizontal bars of the settings' importances, the largest on top, each labelled with its value."""
    figure = _figure((6.4, 0.45 * len(importances) + 1.5))
    axes = figure.subplots()
    names, values = list(importances)[::-1], list(importances.values())[::-1]
    bars = axes.barh(names, values, color="tab:blue")
    axes.bar_label(bars, labels=[f"{value:.2f}" if value >= 0.005 else "<0.01" for value in values], padding=2)
    axes.set(title="Setting importances", xlabel=f"importance for the {TARGET}")
    axes.set_xlim(0, max(values) * 1.15 or 1)
    axes.grid(axis="x", alpha=0.3)
    return figure


def _slices(completed: list, names: list[str], focus) -> object:
    """One panel per setting: each trial's value against the setting's value, coloured by trial number."""
    import matplotlib.ticker

    figure = _figure((3.2 * len(names) + 1.5, 3.6))
    panels = figure.subplots(1, len(names), sharey=True, squeeze=False)[0]
    newest = max(trial.number for trial in completed)
    for axes, name in zip(panels, names):
        trials = [trial for trial in completed if name in trial.params]
        distribution = trials[0].distributions[name]
        choices = getattr(distribution, "choices", None)
        if choices is None:
            xs = [trial.params[name] for trial in trials]
            if getattr(distribution, "log", False):
                axes.set_xscale("log")
                axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # label decades only
            elif all(isinstance(x, int) for x in xs):
                axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        else:
            labels = [str(choice) for choice in choices]
            xs = [labels.index(str(trial.params[name])) for trial in trials]
            axes.set_xticks(range(len(labels)), labels)
        points = axes.scatter(
            xs, [trial.value for trial in trials], c=[trial.number for trial in trials], cmap="Blues",
            vmin=0, vmax=newest, edgecolors="grey", linewidths=0.5,
        )
        axes.set_xlabel(name)
        axes.grid(alpha=0.3)
    panels[0].set_ylabel(_value_label(focus))
    if focus is not None:
        panels[0].set_ylim(*focus)
    figure.colorbar(points, ax=list(panels), label="trial")
    figure.suptitle("Slice plot")
    return figure


def _value_range(values: list[float]) -> tuple[float, float] | None:
    """A value axis for the best nine tenths of the values, or None when no value lies far below them."""
    values = sorted(values)
    if len(values) < 10:
        return None
    low, high = values[len(values) // 10], values[-1]
    margin = max(high - low, 1e-3) * 0.15
    return (low - margin, high + margin) if values[0] < low - margin else None
