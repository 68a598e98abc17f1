"""The backends table and the records it is made from: where a run's record goes, how the table reads it."""

from __future__ import annotations

import json

import pytest

from benchmarks import record, tables


def fake_run(seed, accuracy, seconds, backend=None, compiled=False, versions=None, recipe="fast"):
    """A recipe record of ``recipe`` with only what the tables read."""
    run = {
        "kind": "recipe",
        "recipe": recipe,
        "seed": seed,
        "device": "cpu",
        "test_accuracy": accuracy,
        "train_seconds": seconds,
        "recorded": "2026-01-02T03:04:05+00:00",
        "load_average": 0.5,
        "machine": {"cpu": "Some CPU", "cores": 4, "blas": [], "openblas_env": {}},
        "libraries": {"python": "3.11.7", "numpy": "2.0.0", **(versions or {})},
        "commit": {"id": "0123456789abcdef", "library": "fedcba9876543210"},
    }
    if backend is not None:
        run.update(backend=backend, compiled=compiled)
    return run


def write_runs(folder, runs):
    folder.mkdir(parents=True)
    for index, run in enumerate(runs):
        (folder / f"run{index}.json").write_text(json.dumps(run))


def row(table, start):
    return next(line for line in table.splitlines() if line.startswith(start))


def test_the_backends_table_has_a_row_per_backend_and_a_dash_where_nothing_is_recorded(tmp_path):
    write_runs(tmp_path / "recipes", [fake_run(seed, 0.98, 1.0 + seed) for seed in (0, 1, 2)])
    write_runs(
        tmp_path / "backends",
        [
            fake_run(0, 0.9812, 2.25, "torch", versions={"torch": "2.1.0"}),
            fake_run(2, 0.9799, 2.5, "torch", versions={"torch": "2.1.0"}),
            fake_run(1, 0.9701, 9.0, "jax", compiled=False, versions={"jax": "0.4.0", "jaxlib": "0.4.0"}),
            {**fake_run(1, 0.5, 0.1, "torch"), "device": "gpu"},
            fake_run(1, 0.9777, 7.25, "torch", recipe="keras", versions={"torch": "2.1.0"}),
            fake_run(0, 0.9, 1.0, "torch", recipe="seed"),
        ],
    )
    table = tables.render("backends", tmp_path)
    lines = table.splitlines()
    assert [line.split(" | ")[0] for line in lines[2:7]] == ["| `numpy`", "| `cupy`", "| `torch`", "| `jax`", "| `jax` eager"]
    assert row(table, "| `numpy` |").endswith(
        "| NumPy 2.0.0 | cpu | included | eager | 98.00, 98.00, 98.00 | 1.0, 2.0, 3.0 | –, –, – | –, –, – |"
    )
    assert row(table, "| `cupy` |").endswith("| –, –, – | –, –, – | –, –, – | –, –, – |")
    torch = row(table, "| `torch` |")
    assert "| PyTorch 2.1.0 | cpu, gpu, mps | `pip install '.[torch]'` |" in torch
    assert torch.endswith("| 98.12, –, 97.99 | 2.2, –, 2.5 | –, 97.77, – | –, 7.2, – |")
    assert row(table, "| `jax` |").endswith("| JAX | cpu, gpu | `pip install '.[jax]'`; for a GPU also `pip install -U 'jax[cuda12]'` "
                                             "| compiled: each epoch one `jax.jit` program | –, –, – | –, –, – | –, –, – "
                                             "| –, –, – |")
    assert row(table, "| `jax` eager |").endswith("| –, 97.01, – | –, 9.0, – | –, –, – | –, –, – |")
    caption = lines[-1]
    assert "recorded 2026-01-02 with the library at commit fedcba9876, on Some CPU (4 cores)" in caption
    assert "`cupy`: not recorded here (no GPU); `jax`: not recorded yet." in caption
    assert "Other work shared" not in caption


def test_the_backends_table_says_when_other_work_shared_the_machine(tmp_path):
    busy = fake_run(0, 0.98, 1.0, "torch")
    busy["load_average"] = 4.5
    write_runs(tmp_path / "backends", [busy])
    assert "(load average up to 4.5 on 4 cores)" in tables.render("backends", tmp_path)


def test_the_committed_tables_pass_the_check(capsys):
    assert tables.main(["--check"]) == 0, capsys.readouterr().out


def test_a_record_on_the_devices_own_backend_goes_to_the_recipes(tmp_path):
    numpy_run = fake_run(1, 0.98, 1.0)
    numpy_run.update(device="gpu")
    assert record.recipe_path(tmp_path, fake_run(1, 0.98, 1.0)) == tmp_path / "recipes" / "fast-seed1.json"
    assert record.recipe_path(tmp_path, numpy_run) == tmp_path / "recipes" / "fast-seed1-gpu.json"


@pytest.mark.parametrize(
    "backend, compiled, name",
    [
        ("torch", False, "fast-torch-seed2.json"),
        ("torch", True, "fast-torch-compiled-seed2.json"),
        ("jax", True, "fast-jax-seed2.json"),
        ("jax", False, "fast-jax-eager-seed2.json"),
    ],
)
def test_a_record_on_another_backend_is_named_by_it_and_by_its_mode(tmp_path, backend, compiled, name):
    pytest.importorskip(backend, reason=f"the {backend} extra is not installed")
    run = fake_run(2, 0.98, 1.0, backend, compiled)
    assert record.recipe_path(tmp_path, run) == tmp_path / "backends" / name


@pytest.mark.parametrize(
    "args, backend, compile",
    [
        ([], None, None),
        (["--backend", "numpy", "--no-compile"], None, False),
        (["--backend", "torch"], "torch", None),
        (["--backend", "jax", "--no-compile"], "jax", False),
    ],
)
def test_the_record_command_names_a_backend_only_where_it_is_not_the_devices_own(monkeypatch, tmp_path, args, backend, compile):
    asked = []

    def record_recipe(name, seed, device, backend, compile):
        asked.append((backend, compile))
        return fake_run(seed, 0.98, 1.0)

    from mnist_xp import backend as backends

    allowed = []
    monkeypatch.setattr(record, "record_recipe", record_recipe)
    monkeypatch.setattr(backends, "allow_float64", allowed.append)  # as the train command: float64 on JAX too
    assert record.main(["recipe", "fast", "--seed", "1", "--results", str(tmp_path), *args]) == 0
    assert asked == [(backend, compile)]
    assert allowed == [backend or "numpy"]


def test_the_record_command_refuses_a_backend_it_does_not_know(capsys):
    with pytest.raises(SystemExit):
        record.main(["recipe", "fast", "--backend", "tensorflow"])
    assert "'tensorflow' is not one of numpy, cupy, torch, jax" in capsys.readouterr().err


def test_the_every_backend_table_gives_each_recipe_s_mean_seeds_and_median_time_on_each_backend(tmp_path):
    numpy_runs = [fake_run(seed, 0.97 + seed / 100, 2.0 + seed, recipe="default") for seed in (0, 1, 2)]
    write_runs(tmp_path / "recipes", numpy_runs)
    write_runs(
        tmp_path / "backends",
        [fake_run(1, 0.99, 700.0, backend="jax", compiled=True, recipe="elastic"),
         fake_run(0, 0.975, 3.0, backend="torch", recipe="default"), fake_run(2, 0.985, 5.0, backend="torch", recipe="default")],
    )  # fmt: skip
    table = tables.render("every-backend", tmp_path)
    lines = table.splitlines()

    def cells(start):
        return [cell.strip() for cell in row(table, start).strip().strip("|").split(" | ")]

    assert lines[0] == "| recipe | `numpy` | `torch` | `jax` | `jax` eager |"
    assert cells("| `default` |") == [
        "`default`", "98.00 (seeds 0, 1, 2; 3.0 s)", "98.00 (seeds 0, 2; 4.0 s)", "–", "–"
    ]  # fmt: skip
    assert cells("| `elastic` |") == ["`elastic`", "–", "–", "99.00 (seed 1; 700.0 s)", "–"]
    assert cells("| `best` |") == ["`best`", "–", "–", "–", "–"]
    assert lines[-1].startswith("Mean test accuracy (%) of the recorded seeds and their median training time.")


def load_record(seed, runs, recipe="fast"):
    """A load record of ``recipe``: ``runs`` maps (busy cores, shared products) to (accuracy, seconds, digest)."""
    record = fake_run(seed, 0.0, 0.0, recipe=recipe)
    record["kind"] = "load"
    record["runs"] = [
        {"busy_cores": busy, "shared_products": shared, "blas_threads": 2, "test_accuracy": accuracy,
         "train_seconds": seconds, "weights_sha256": digest}
        for (busy, shared), (accuracy, seconds, digest) in runs.items()
    ]  # fmt: skip
    return record


def test_the_load_table_gives_medians_their_ratio_and_marks_a_busy_run_that_computed_other_weights(tmp_path):
    records = []
    for seed, quiet in enumerate((1.0, 1.2, 1.4)):
        runs = {
            (0, False): (0.97, 1.5, f"{seed}b" * 20),
            (1, False): (0.97, 1.5, f"{seed}b" * 20),
            (0, True): (0.98, quiet, f"{seed}a" * 20),
            (1, True): (0.98, 4 * quiet, f"{seed}a" * 20 if seed else "ff" * 20),
        }
        records.append(load_record(seed, runs))
    records.append(load_record(0, {(0, True): (0.9, 3.0, "cc" * 20)}, recipe="default"))
    write_runs(tmp_path / "load", records)
    table = tables.render("load", tmp_path)
    lines = table.splitlines()
    assert [line.split(" | ")[:2] for line in lines[2:5]] == [
        ["| `fast`", "one BLAS thread"], ["| `fast`", "2 BLAS threads, shared"], ["| `default`", "2 BLAS threads, shared"]
    ]  # fmt: skip
    assert lines[2].endswith("| 1.50 | 1.50 | 1.00 | 97.00, 97.00, 97.00 | `0b0b0b0b`, `1b1b1b1b`, `2b2b2b2b` |")
    assert lines[3].endswith("| 1.20 | 4.80 | 4.00 | 98.00, 98.00, 98.00 | `0a0a0a0a` †, `1a1a1a1a`, `2a2a2a2a` |")
    assert lines[4].endswith("| 3.00 | – | – | 90.00, –, – | `cccccccc`, –, – |")
    assert "on Some CPU (4 cores)" in lines[-1]


def test_no_load_record_gives_a_sentence_not_a_table(tmp_path):
    assert tables.render("load", tmp_path) == "No run with and without a busy core has been recorded yet."


def test_the_weights_digest_changes_with_any_weight_and_only_then():
    np = pytest.importorskip("numpy")
    params = [(np.ones((3, 2), np.float32), np.zeros(2, np.float32)), (np.ones((2, 1), np.float32), np.zeros(1, np.float32))]
    same = [(W.copy(), b.copy()) for W, b in params]
    assert record.weights_digest(params) == record.weights_digest(same)
    same[1][0][1, 0] = np.nextafter(np.float32(1), np.float32(2))
    assert record.weights_digest(params) != record.weights_digest(same)


def test_the_cpu_is_described_with_its_family_and_vector_width():
    machine = {"cpu": "AMD EPYC", "cpu_family": "26", "cpu_model": "2", "avx512": True, "cores": 2}
    assert tables.describe_cpu(machine) == "AMD EPYC (family 26, model 2; AVX-512; 2 cores)"
    assert tables.describe_cpu({"cpu": "Intel Xeon", "avx512": False, "cores": 4}) == "Intel Xeon (no AVX-512; 4 cores)"


def test_a_load_record_trains_quiet_and_busy_with_products_on_one_thread_and_shared(monkeypatch, tmp_path):
    np = pytest.importorskip("numpy")
    import mnist_xp

    seen = []

    class Trained:
        def __init__(self, threads):
            self.test_accuracy, self.train_seconds = 0.98, 1.0 + len(seen)
            self.model = type("Model", (), {"params": [(np.full((2, 2), threads, np.float32), np.zeros(2, np.float32))]})

    def train(config, data, threads=1):
        if config.epochs == 1:
            return None  # the unrecorded warm-up
        seen.append((config.seed, threads))
        return Trained(threads)

    started = []
    real_popen = record.subprocess.Popen

    def popen(command, *args, **kwargs):
        process = real_popen(command, *args, **kwargs)
        started.append((command, process))
        return process

    monkeypatch.setattr(mnist_xp, "train", train)
    monkeypatch.setattr(mnist_xp, "load_mnist", lambda dtype: None)
    monkeypatch.setattr(record.subprocess, "Popen", popen)
    monkeypatch.setattr(record, "LOAD_ROUNDS", 2)
    assert record.main(["load", "fast", "--seed", "2", "--results", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "load" / "fast-seed2.json").read_text())
    assert [(run["busy_cores"], run["shared_products"]) for run in written["runs"]] == [
        (0, False), (1, False), (0, True), (1, True)
    ]  # fmt: skip
    blas = record.numpy_blas_threads()
    assert seen == [(2, 1), (2, 1), (2, blas), (2, blas)] * 2  # the ways take turns, round after round
    assert [run["blas_threads"] for run in written["runs"]] == [1, 1, blas, blas]
    assert [run["round_seconds"] for run in written["runs"]] == [[2.0, 6.0], [3.0, 7.0], [4.0, 8.0], [5.0, 9.0]]
    assert [run["train_seconds"] for run in written["runs"]] == [4.0, 5.0, 6.0, 7.0]  # each way's median
    assert all(run["same_weights_every_round"] for run in written["runs"])
    spinners = [process for command, process in started if "while True: pass" in command]
    assert len(spinners) == 4 and all(process.poll() is not None for process in spinners)  # one per busy run, ended
    digests = [run["weights_sha256"] for run in written["runs"]]
    assert digests[0] == digests[1] and digests[2] == digests[3] and (digests[0] == digests[2]) == (blas == 1)
    assert tables.render("load", tmp_path).count("| `fast` |") == 2


def test_the_load_command_refuses_a_recipe_it_does_not_know(capsys):
    with pytest.raises(SystemExit):
        record.main(["load", "nope"])
    assert "unknown recipe 'nope'" in capsys.readouterr().err
