"""``Model.to_onnx`` and ``python -m mnist_xp.export``: the ONNX graph against mnist-xp's own answers, and the
command's bad input."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from small_model import small_run

import mnist_xp
from mnist_xp import Model, load_mnist, nn, npzio
from mnist_xp import model as model_module
from mnist_xp.cli import export

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


def random_model(sizes, activation="relu", dtype="float32", seed=0) -> Model:
    """A network with He-scaled random weights: enough to compare two runtimes on the same arithmetic."""
    rng = np.random.default_rng(seed)
    params = [
        (rng.normal(0, (2 / n_in) ** 0.5, (n_in, n_out)).astype(dtype), rng.normal(0, 0.1, n_out).astype(dtype))
        for n_in, n_out in itertools.pairwise(sizes)
    ]
    return Model(params, activation)


@pytest.fixture(scope="module")
def test_images():
    data = load_mnist()
    return data.X_test, data.y_test


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The suite's small model (``small_model.small_run``), saved, and exported by the command: ``(model, onnx_path)``."""
    folder = tmp_path_factory.mktemp("onnx")
    small_run()[0].model.save(folder / "small.npz")
    assert export.main([str(folder / "small.npz"), "--onnx", str(folder / "small.onnx")]) == 0
    return Model.load(folder / "small.npz"), folder / "small.onnx"


def run_onnx(path, X) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"pixels": np.asarray(X, dtype=np.float32)})[0]


def op_types(path) -> list[str]:
    return [node.op_type for node in onnx.load(str(path)).graph.node]


def test_the_graph_is_standard_onnx(trained):
    _, path = trained
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert op_types(path) == ["MatMul", "Add", "Relu", "MatMul", "Add", "Softmax"]
    (pixels,) = proto.graph.input
    batch, features = pixels.type.tensor_type.shape.dim
    assert pixels.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert batch.dim_param and not batch.HasField("dim_value")
    assert features.dim_value == 784
    assert {p.key: p.value for p in proto.metadata_props}["layer_sizes"] == "784-64-10"


def test_onnxruntime_gives_mnist_xps_answers_on_all_test_images(trained, test_images):
    model, path = trained
    X, _ = test_images
    expected = model.predict_proba(X)
    everything = run_onnx(path, X)  # one batch of 10,000
    assert everything.shape == (10_000, 10)
    assert np.abs(everything - expected).max() <= 1e-5
    assert np.array_equal(everything.argmax(axis=1), model.predict(X))
    one_by_one = np.concatenate([run_onnx(path, X[i : i + 1]) for i in range(20)])  # batches of 1
    assert np.abs(one_by_one - expected[:20]).max() <= 1e-5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", sorted(nn.ACTIVATIONS))
def test_every_activation_and_a_deeper_network(activation, dtype, tmp_path, test_images):
    """Every activation of ``nn.ACTIVATIONS`` becomes its ONNX operator, and onnxruntime gives mnist-xp's answers
    (a float64 model is stored in float32)."""
    model = random_model([784, 48, 24, 10], activation, dtype, seed=3)
    model.save(tmp_path / "m.npz")
    assert export.main([str(tmp_path / "m.npz"), "--onnx", str(tmp_path / "m.onnx")]) == 0
    entry = nn.ACTIVATIONS[activation]
    assert op_types(tmp_path / "m.onnx") == ["MatMul", "Add", entry.onnx_op] * 2 + ["MatMul", "Add", "Softmax"]
    for node in onnx.load(str(tmp_path / "m.onnx")).graph.node:
        if node.op_type == entry.onnx_op:
            attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert attributes == pytest.approx(entry.onnx_attributes)
    X = test_images[0][:2000]
    got, expected = run_onnx(tmp_path / "m.onnx", X), model.predict_proba(X)
    assert np.abs(got - expected).max() <= 1e-5
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))


def test_model_to_onnx_writes_the_graph(tmp_path, test_images):
    model = random_model([784, 16, 10], "leaky_relu", seed=6)
    model.to_onnx(tmp_path / "m.onnx", name="sixteen")
    assert files_in(tmp_path) == {"m.onnx"}
    assert onnx.load(str(tmp_path / "m.onnx")).graph.name == "sixteen"
    X = test_images[0][:500]
    assert np.abs(run_onnx(tmp_path / "m.onnx", X) - model.predict_proba(X)).max() <= 1e-5


def test_a_single_output_unit_ends_in_a_sigmoid(tmp_path, test_images):
    model = random_model([784, 16, 1], "relu", seed=5)
    model.save(tmp_path / "m.npz")
    assert export.main([str(tmp_path / "m.npz"), "--onnx", str(tmp_path / "m.onnx")]) == 0
    assert op_types(tmp_path / "m.onnx")[-1] == "Sigmoid"
    X = test_images[0][:500]
    assert np.abs(run_onnx(tmp_path / "m.onnx", X) - model.predict_proba(X)).max() <= 1e-5


# ---- the command's bad input: one error line, exit status 1, nothing half-written -----------------


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.npz"
    random_model([784, 8, 10]).save(path)
    return path


def files_in(folder) -> set[str]:
    return {path.name for path in folder.iterdir()}


def fails_in_one_line(argv, capsys, *words) -> None:
    assert export.main([str(arg) for arg in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err


@pytest.mark.parametrize("option", ["--html", "--onnx"])
def test_a_missing_model_file(option, tmp_path, capsys):
    fails_in_one_line([tmp_path / "nothing.npz", option, tmp_path / "out"], capsys, "nothing.npz")
    assert files_in(tmp_path) == set()


@pytest.mark.parametrize("option", ["--html", "--onnx"])
def test_a_damaged_model_file(option, model_file, tmp_path, capsys):
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(model_file.read_bytes()[:3000])
    fails_in_one_line([damaged, option, tmp_path / "out"], capsys, "damaged.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a model at all")
    fails_in_one_line([tmp_path / "garbage.npz", option, tmp_path / "out"], capsys, "garbage.npz")
    assert files_in(tmp_path) == {"model.npz", "damaged.npz", "garbage.npz"}


@pytest.mark.parametrize("option", ["--html", "--onnx"])
def test_an_output_in_a_missing_folder(option, model_file, tmp_path, capsys):
    fails_in_one_line([model_file, option, tmp_path / "no" / "such" / "out"], capsys, "does not exist")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("option", ["--html", "--onnx"])
def test_an_existing_output_needs_force(option, model_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("keep me")
    fails_in_one_line([model_file, option, out], capsys, "--force")
    assert out.read_text() == "keep me"
    assert export.main([str(model_file), option, str(out), "--force"]) == 0
    assert out.read_bytes() != b"keep me" and len(out.read_bytes()) > 10_000
    assert files_in(tmp_path) == {"model.npz", "out"}


def test_one_refused_output_means_no_output_at_all(model_file, tmp_path, capsys):
    (tmp_path / "taken.onnx").write_text("keep me")
    fails_in_one_line([model_file, "--html", tmp_path / "page.html", "--onnx", tmp_path / "taken.onnx"], capsys)
    assert files_in(tmp_path) == {"model.npz", "taken.onnx"}


@pytest.mark.parametrize("option", ["--html", "--onnx"])
def test_a_failed_write_leaves_no_half_written_file(option, model_file, tmp_path, capsys, monkeypatch):
    """The model writes its exports atomically: a write that fails halfway leaves no file, and an old file whole."""

    def write_half_then_fail(path, write, error=mnist_xp.MnistXpError):
        def half(stream):
            write(stream)
            stream.truncate(100)
            raise OSError(28, "No space left on device")

        npzio.write_atomically(path, half, error)

    monkeypatch.setattr(model_module, "write_atomically", write_half_then_fail)
    fails_in_one_line([model_file, option, tmp_path / "out"], capsys, "No space left")
    assert files_in(tmp_path) == {"model.npz"}
    (tmp_path / "out").write_text("keep me")
    fails_in_one_line([model_file, option, tmp_path / "out", "--force"], capsys, "No space left")
    assert files_in(tmp_path) == {"model.npz", "out"} and (tmp_path / "out").read_text() == "keep me"


def test_the_page_needs_a_digit_classifier(tmp_path, capsys):
    random_model([784, 8, 3]).save(tmp_path / "three.npz")
    fails_in_one_line([tmp_path / "three.npz", "--html", tmp_path / "page.html"], capsys, "10 outputs")
    assert export.main([str(tmp_path / "three.npz"), "--onnx", str(tmp_path / "three.onnx")]) == 0


def test_usage(model_file, capsys):
    with pytest.raises(SystemExit) as stop:
        export.main([str(model_file)])
    assert stop.value.code == 2
    assert "--html" in capsys.readouterr().err
    shown = subprocess.run(
        [sys.executable, "-m", "mnist_xp.export", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--html" in shown and "--onnx" in shown and "--force" in shown


def test_a_fitted_estimator_hands_back_its_network_as_a_model(tmp_path, test_images):
    """scikit-learn's face and the model's meet: ``model_`` is the fitted network, saved and exported as any model."""
    pytest.importorskip("sklearn", reason="the sklearn extra is not installed")
    data = load_mnist(limit=1000)
    X, y = np.asarray(data.X_train), data.y_train
    estimator = mnist_xp.MLPClassifier((32,), activation="tanh", max_iter=3, random_state=0).fit(X, y)
    assert isinstance(estimator.model_, Model) and estimator.model_.layer_sizes == [784, 32, 10]
    estimator.model_.to_onnx(tmp_path / "fitted.onnx")
    X_test = np.asarray(test_images[0][:200])
    expected = estimator.predict_proba(X_test)
    np.testing.assert_allclose(run_onnx(tmp_path / "fitted.onnx", X_test), expected, atol=1e-6)
    estimator.model_.save(tmp_path / "fitted.npz")
    np.testing.assert_array_equal(Model.load(tmp_path / "fitted.npz").predict_proba(X_test), expected)
