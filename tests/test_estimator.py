"""``mnist_xp.MLPClassifier``: scikit-learn's own estimator checks, and that it is the engine's training underneath."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from helpers import BAD_SETTINGS, same_weights
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import mnist_xp
from mnist_xp import MLPClassifier, nn
from mnist_xp.backend import namespace
from mnist_xp.data import Dataset, one_hot
from mnist_xp.errors import BackendError

undertrained_ok = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def small(**params) -> MLPClassifier:
    """An estimator quick enough for the tests, that still learns the checks' small problems."""
    settings = {"hidden_layer_sizes": (16,), "max_iter": 50, "learning_rate_init": 0.01, "random_state": 0}
    return MLPClassifier(**(settings | params))


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@parametrize_with_checks([small()])
def test_scikit_learn_estimator_checks(estimator, check, monkeypatch):
    # check_array_api_input (NumPy inputs with array API dispatch on) runs only when this is set.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@undertrained_ok
def test_fit_is_the_engine_run_of_its_config(digits):
    X, y = digits
    X = X[:600].astype(np.float32)
    y = y[:600]
    estimator = MLPClassifier((32,), batch_size=64, alpha=1e-3, max_iter=4, n_iter_no_change=100, random_state=3)
    estimator.fit(X, y)
    config = estimator.config_
    assert (config.hidden, config.optimizer, config.batch_size, config.epochs, config.seed) == ((32,), "adam", 64, 4, 3)
    assert config.l2 == pytest.approx(1e-3 / 64)  # scikit-learn's alpha is per sample of a batch
    data = Dataset(X, one_hot(y, 10).astype(np.float32), y, None, None, None)
    result = mnist_xp.train(config, data=data)
    assert estimator.loss_curve_ == result.losses
    for W, b, (W_engine, b_engine) in zip(estimator.coefs_, estimator.intercepts_, result.model.params):
        np.testing.assert_array_equal(W, W_engine)
        np.testing.assert_array_equal(b, b_engine)


@undertrained_ok
def test_predictions_are_the_engines_forward_pass(iris):
    X, y = iris
    estimator = small(activation="logistic").fit(X, y)
    assert estimator.config_.activation == "sigmoid"
    params = list(zip(estimator.coefs_, estimator.intercepts_))
    expected = nn.predict(params, X.astype(np.float32), "sigmoid")
    probabilities = estimator.predict_proba(X)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(estimator.predict(X), estimator.classes_[np.argmax(expected, axis=1)])
    assert [W.shape for W in estimator.coefs_] == [(4, 16), (16, 3)]


@undertrained_ok
def test_string_labels_round_trip(iris):
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    estimator = small().fit(X, names)
    assert list(estimator.classes_) == ["setosa", "versicolor", "virginica"]
    predicted = estimator.predict(X)
    assert predicted.dtype == names.dtype and set(predicted) <= set(names)
    assert estimator.score(X, names) > 0.9


@undertrained_ok
def test_binary_problem_has_two_softmax_outputs(iris):
    X, y = iris
    labels = np.where(y == 0, "yes", "no")
    estimator = small().fit(X, labels)
    assert estimator.predict_proba(X).shape == (len(X), 2)
    assert estimator.coefs_[-1].shape == (16, 2)
    assert list(estimator.classes_) == ["no", "yes"]
    assert estimator.score(X, labels) > 0.95


def test_partial_fit_continues_training(iris):
    X, y = iris
    estimator = small(learning_rate_init=0.003)
    with pytest.raises(ValueError, match="classes"):
        estimator.partial_fit(X, y)
    estimator.partial_fit(X[y != 2], y[y != 2], classes=[0, 1, 2])
    assert estimator.n_iter_ == 1 and list(estimator.classes_) == [0, 1, 2]
    weights = estimator.coefs_[0].copy()
    for calls in range(2, 21):
        estimator.partial_fit(X, y)
        assert estimator.n_iter_ == calls and len(estimator.loss_curve_) == calls
    assert not np.array_equal(weights, estimator.coefs_[0])
    assert estimator.loss_curve_[-1] < 0.8 * estimator.loss_curve_[1]
    with pytest.raises(ValueError, match="unseen labels"):
        estimator.partial_fit(X[:3], [0, 1, 5])
    with pytest.raises(ValueError, match="classes"):
        estimator.partial_fit(X, y, classes=[0, 1])


@undertrained_ok
def test_same_random_state_gives_identical_weights(iris):
    X, y = iris
    first, second, other = small().fit(X, y), small().fit(X, y), small(random_state=1).fit(X, y)
    for W, W_again in zip(first.coefs_, second.coefs_):
        np.testing.assert_array_equal(W, W_again)
    assert not np.array_equal(first.coefs_[0], other.coefs_[0])
    # A RandomState draws the seed: equal generators give equal fits, and one generator moves on between fits.
    seeded = [small(random_state=np.random.RandomState(7)).fit(X, y) for _ in range(2)]
    np.testing.assert_array_equal(seeded[0].coefs_[0], seeded[1].coefs_[0])
    shared = small(random_state=np.random.RandomState(7))
    assert not np.array_equal(shared.fit(X, y).coefs_[0].copy(), shared.fit(X, y).coefs_[0])
    unseeded = small(random_state=None)
    assert unseeded.fit(X, y).config_.seed != clone(unseeded).fit(X, y).config_.seed


@undertrained_ok
def test_load_digits_accuracy_in_a_pipeline():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    model = make_pipeline(StandardScaler(), MLPClassifier((64,), learning_rate_init=0.01, max_iter=15, random_state=0))
    model.fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.95


@undertrained_ok
def test_real_mnist_slice():
    data = mnist_xp.load_mnist(limit=4000)
    estimator = MLPClassifier((128,), batch_size=32, max_iter=4, random_state=0)
    estimator.fit(data.X_train, data.y_train)
    assert estimator.n_features_in_ == 784 and list(estimator.classes_) == list(range(10))
    assert estimator.score(data.X_test, data.y_test) > 0.9


@undertrained_ok
def test_grid_search_and_clone(iris):
    X, y = iris
    search = GridSearchCV(
        small(max_iter=30), {"alpha": [1e-4, 1e-1], "hidden_layer_sizes": [(4,), np.array([16])]}, cv=3
    )
    search.fit(X, y)
    assert search.best_estimator_.n_iter_ >= 1 and search.best_score_ > 0.8
    copy = clone(search.best_estimator_)
    assert copy.get_params() == search.best_estimator_.get_params()
    with pytest.raises(NotFittedError):
        copy.predict(X)


PARAMETER_OF = {
    "hidden": "hidden_layer_sizes",
    "lr": "learning_rate_init",
    "epochs": "max_iter",
    "batch_size": "batch_size",
    "seed": "random_state",
    "l2": "alpha",
    "momentum": "momentum",
    "dtype": "dtype",
    "dropout": "dropout",
    "label_smoothing": "label_smoothing",
}
"""The estimator's parameter for each engine setting it passes on as it is (its activations have their own names)."""


@pytest.mark.parametrize(
    "parameter, value, complaint",
    [(PARAMETER_OF[name], value, complaint) for name, value, complaint in BAD_SETTINGS if name in PARAMETER_OF],
    ids=[f"{PARAMETER_OF[name]}={value!r}" for name, value, _ in BAD_SETTINGS if name in PARAMETER_OF],
)
def test_a_bad_engine_setting_is_refused_at_fit_naming_its_parameter(iris, parameter, value, complaint):
    X, y = iris
    estimator = small(**{parameter: value})  # accepted until fit, as scikit-learn requires
    with pytest.raises(ValueError) as raised:
        estimator.fit(X, y)
    assert str(raised.value) == f"MLPClassifier: {parameter}={value!r} {complaint}"
    assert not estimator.__sklearn_is_fitted__()


@pytest.mark.parametrize(
    "parameter, value",
    [
        ("activation", "identity"),
        ("solver", "lbfgs"),
        ("random_state", "seven"),
        ("device", "tpu"),
        ("tol", -1.0),
        ("n_iter_no_change", 0),
        ("validation_fraction", 1.0),
        ("warm_start", "yes"),
    ],
)
def test_bad_parameter_is_refused_at_fit_naming_it(iris, parameter, value):
    X, y = iris
    estimator = small(**{parameter: value})  # accepted until fit, as scikit-learn requires
    with pytest.raises(ValueError, match=f"^MLPClassifier: {parameter}={value!r} "):
        estimator.fit(X, y)
    assert not estimator.__sklearn_is_fitted__()


def test_numpy_scalars_are_accepted(iris):
    X, y = iris
    estimator = small(
        hidden_layer_sizes=np.int64(8), max_iter=np.int64(3), alpha=np.float32(1e-4), batch_size=np.int32(50)
    )
    with pytest.warns(ConvergenceWarning):
        estimator.fit(X, y)
    assert estimator.config_.hidden == (8,) and estimator.n_iter_ == 3


def test_stopping_rule_on_the_training_loss(iris):
    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        estimator = small(tol=10.0, n_iter_no_change=3).fit(X, y)
    # The first epoch sets the best loss; the rule stops once 3 + 1 epochs in a row fail to beat it by tol.
    assert estimator.n_iter_ == 5
    assert estimator.best_loss_ == min(estimator.loss_curve_)
    with pytest.warns(ConvergenceWarning, match="max_iter=5"):
        small(max_iter=5).fit(X, y)


def test_early_stopping_keeps_the_best_validation_epochs_weights(digits):
    X, y = digits
    stopping = {"early_stopping": True, "validation_fraction": 0.2, "n_iter_no_change": 2}
    estimator = small(max_iter=200, **stopping).fit(X, y)
    scores = estimator.validation_scores_
    best = 1 + int(np.argmax(scores))  # the first epoch with the best score
    assert best < estimator.n_iter_ < 200 and len(scores) == estimator.n_iter_
    assert estimator.best_validation_score_ == scores[best - 1] > 0.9
    assert estimator.best_loss_ is None
    # The same fit cut at the best epoch ends on that epoch's weights, the best of its own epochs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cut = small(max_iter=best, **stopping).fit(X, y)
    assert cut.validation_scores_ == scores[:best] and cut.n_iter_ == best
    kept = list(zip(estimator.coefs_, estimator.intercepts_))
    assert same_weights(kept, list(zip(cut.coefs_, cut.intercepts_)))


@undertrained_ok
def test_warm_start_continues_fit(iris):
    X, y = iris
    estimator = small(max_iter=5).fit(X, y)
    estimator.set_params(warm_start=True)
    estimator.fit(X, y)
    assert estimator.n_iter_ == 10 and len(estimator.loss_curve_) == 10
    estimator.set_params(hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        estimator.fit(X, y)
    estimator.set_params(warm_start=False).fit(X, y)
    assert estimator.n_iter_ == 5 and estimator.coefs_[0].shape == (4, 8)


@undertrained_ok
def test_solver_and_dtype_reach_the_engine(iris):
    X, y = iris
    cases = [
        ({"solver": "sgd"}, "nesterov"),
        ({"solver": "sgd", "nesterovs_momentum": False}, "momentum"),
        ({"solver": "sgd", "momentum": 0.0}, "sgd"),
        ({"solver": "adamw"}, "adamw"),
    ]
    for params, optimizer in cases:
        assert small(max_iter=2, **params).fit(X, y).config_.optimizer == optimizer
    estimator = small(max_iter=2, dtype="float64").fit(X, y)
    assert estimator.coefs_[0].dtype == np.float64 and estimator.predict_proba(X).dtype == np.float64


def test_divergence_is_reported(iris):
    X, y = iris
    with pytest.raises(mnist_xp.MnistXpError, match="learning_rate_init"):
        small(solver="sgd", momentum=0.0, learning_rate_init=1e30).fit(X * 1e10, y)


def test_gpu_fit_agrees_with_cpu():
    try:
        namespace("gpu")
    except BackendError as exc:
        pytest.skip(str(exc))
    X, y = make_classification(n_samples=400, n_features=30, n_informative=10, n_classes=4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cpu = small(dtype="float64", max_iter=5).fit(X, y)
        gpu = small(dtype="float64", max_iter=5, device="gpu").fit(X, y)
    np.testing.assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-9)
