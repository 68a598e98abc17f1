"""The benchmark report: ratios from a saved run, the BLAS state, the forced-kernel warning."""

from __future__ import annotations

import json

from benchmarks import report
from benchmarks.machine import forced_coretype_warning, openblas_env


def bench(impl, work, median, batch="full", dtype="float32"):
    info = {"impl": impl, "work": work, "device": "cpu", "dtype": dtype, "batch": batch}
    return {"extra_info": info, "stats": {"median": median}}


def run_with(env, benchmarks):
    blas = [{"internal_api": "openblas", "version": "0.3", "architecture": "SkylakeX", "num_threads": 2}]
    return {"datetime": "2026-01-02T03:04:05", "machine_info": {"openblas_env": env, "blas": blas}, "benchmarks": benchmarks}


def test_report_divides_our_median_by_each_peer(tmp_path, capsys):
    path = tmp_path / "run.json"
    benchmarks = [bench("ours", "step", 0.5), bench("floor", "step", 0.4), bench("keras", "step", 1.0)]
    benchmarks += [bench("ours", "adam-epoch", 2.0, batch=32), bench("torch", "adam-epoch", 8.0, batch=32)]
    path.write_text(json.dumps(run_with({}, benchmarks)))
    assert report.main([str(path)]) == 0
    text = capsys.readouterr().out
    step_row = next(line for line in text.splitlines() if line.startswith("| full-batch SGD step"))
    assert step_row.split("|")[8:11] == [" 1.25 ", " 0.50 ", " – "]
    epoch_row = next(line for line in text.splitlines() if line.startswith("| Adam epoch, batch 32"))
    assert epoch_row.split("|")[8:11] == [" – ", " – ", " 0.25 "]
    assert "kernel SkylakeX" in text and "none set" in text and "Warning" not in text


def test_report_shows_short_times_to_three_significant_digits(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run_with({}, [bench("ours", "step", 0.001234), bench("floor", "step", 0.25)])))
    assert report.main([str(path)]) == 0
    step_row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| full-batch SGD step"))
    assert step_row.split("|")[4:6] == [" 0.00123 ", " 0.250 "]


def test_report_warns_about_a_forced_core_type(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run_with({"OPENBLAS_CORETYPE": "Haswell"}, [bench("ours", "step", 0.5)])))
    assert report.main([str(path)]) == 0
    assert "OPENBLAS_CORETYPE=Haswell" in capsys.readouterr().out


def test_openblas_env_keeps_only_openblas_variables():
    env = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576", "OMP_NUM_THREADS": "2"}
    assert openblas_env(env) == {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576"}
    assert forced_coretype_warning({}) is None


def test_report_refuses_an_unreadable_run_in_one_line(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    assert report.main([str(path)]) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_profile_step_prints_every_piece_and_the_machine(capsys):
    from benchmarks import profile_step

    assert profile_step.main(["--reps", "1", "--limit", "1000"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("CPU: ")
    for heading in ("Full-batch SGD step, float32", "Full-batch SGD step, float64", "Adam step, batch 128"):
        assert f"### {heading}" in text
    pieces = ("| X W1 | product |", "| softmax and loss | element-wise |", "| floor: the five products |")
    for piece in (*pieces, "| Adam update, optim.adam's own lines |"):
        assert piece in text


def test_report_sets_our_step_against_its_own_variants(tmp_path, capsys):
    path = tmp_path / "run.json"
    benchmarks = [bench("ours", "adam-epoch", 0.3, batch=128), bench("ours-unfused", "adam-epoch", 0.4, batch=128)]
    path.write_text(json.dumps(run_with({}, benchmarks)))
    assert report.main([str(path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "| unfused |" in line)
    assert row.split("|")[4:7] == [" unfused ", " 0.400 ", " 0.75 "]


def test_report_names_the_fastest_backend_for_each_piece_of_work(tmp_path, capsys):
    path = tmp_path / "run.json"
    benchmarks = [bench("ours", "adam-epoch", 1.0, batch=32), bench("ours-jax-compiled", "adam-epoch", 0.25, batch=32)]
    benchmarks += [bench("ours-torch", "adam-epoch", 2.0, batch=32), bench("torch", "adam-epoch", 1.25, batch=32)]
    benchmarks += [bench("ours", "step", 0.5), bench("ours-torch-compiled", "step", 0.4)]
    path.write_text(json.dumps(run_with({}, benchmarks)))
    assert report.main([str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not any("| jax-compiled |" in line for line in lines)  # a backend is no variant of the NumPy step
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("Our engine on each backend")) :]
    rows = [line.split("|")[1:-1] for line in table if line.startswith("| ")]
    epoch = next(row for row in rows if row[0] == " Adam epoch, batch 32 ")
    assert epoch[3:] == [" 1.000 ", " 2.000 ", " – ", " – ", " 0.250 ", " JAX compiled ", " 0.20 "]
    step = next(row for row in rows if row[0] == " full-batch SGD step ")
    assert step[3:] == [" 0.500 ", " – ", " 0.400 ", " – ", " – ", " PyTorch compiled ", " – "]
