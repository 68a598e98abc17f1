"""``MLPClassifier``: the project's engine as a scikit-learn classifier.

The parameters take scikit-learn's names (``sklearn.neural_network.MLPClassifier``) where they
mean the same thing. They become a ``TrainConfig``, whose checks apply, and every fit is a run of
``train``, the one pipeline, with scikit-learn's stopping rule (on ``tol`` and ``n_iter_no_change``)
as an ``EarlyStopping`` callback. The estimator adds what scikit-learn expects around that: input
validation, label encoding, warm starts and ``partial_fit``; ``model_`` is the fitted network as a
``Model``, to save or export.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from . import nn
from .backend import check_choice, place, place_of, to_device, to_host
from .callbacks import Callback, EarlyStopping
from .config import MAX_SEED, SettingError, TrainConfig
from .data import Dataset, one_hot
from .errors import DivergenceError
from .metrics import class_probabilities
from .pipeline import make_optimizer, train
from .values import dtype_name, is_real_number, is_whole_number, plain_number

ACTIVATIONS = {activation.sklearn_name or name: name for name, activation in nn.ACTIVATIONS.items()}
"""The estimator's activation names (scikit-learn's, else the engine's) and the engine's names for them."""
SOLVERS = ("sgd", "adam", "adamw")
AUTO_BATCH = 200
"""``batch_size='auto'`` is min(200, n_samples), as in scikit-learn."""
PARAMETER_OF = {
    "hidden": "hidden_layer_sizes",
    "lr": "learning_rate_init",
    "epochs": "max_iter",
    "l2": "alpha",
    "seed": "random_state",
    "optimizer": "solver",
}
"""The estimator's parameter behind each ``TrainConfig`` field whose name differs."""
INPUT_DTYPES = (np.float32, np.float64)


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """A multilayer perceptron classifier trained by the mnist-xp engine, on NumPy, CuPy, PyTorch or JAX.

    Any number of features and classes; labels of any type scikit-learn accepts. The output is a
    softmax over the classes, two units for a binary problem, trained on cross-entropy. The
    parameters up to ``n_iter_no_change`` mean what they mean in
    ``sklearn.neural_network.MLPClassifier``; ``device`` and the ones after it are the engine's own.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
        The width of each hidden layer; one int is one layer.
    activation : {'relu', 'tanh', 'logistic', 'leaky_relu'}, default 'relu'
        The hidden layers' activation; 'logistic' is the sigmoid.
    solver : {'adam', 'sgd', 'adamw'}, default 'adam'
        The update rule. 'sgd' uses ``momentum`` (Nesterov's if ``nesterovs_momentum``; plain SGD
        when it is 0); Adam uses beta1 0.9, beta2 0.999, epsilon 1e-7; 'adamw' adds a decoupled
        weight decay of 0.004.
    alpha : float, default 1e-4
        L2 penalty scaled as scikit-learn scales it: (alpha / 2) ||W||^2 per batch, divided by the
        batch's size. The engine's ``l2`` (a penalty on the batch-mean loss) is alpha / batch size.
    batch_size : int, 'auto' or 'full', default 'auto'
        'auto' is min(200, n_samples); a size of n_samples or more (or 'full') is full-batch descent.
    learning_rate_init : float, default 1e-3
        The constant learning rate.
    max_iter : int, default 200
        Epochs per ``fit`` (it may stop earlier, see ``tol``).
    random_state : int, RandomState or None, default None
        An int is the engine's seed (weights, batch order, dropout), so a fit is reproducible;
        None draws a seed from NumPy's global generator and a RandomState draws it from that.
    tol : float, default 1e-4
        The least improvement that counts, for the stopping rule of ``n_iter_no_change``.
    verbose : bool, default False
        Print each epoch's loss.
    warm_start : bool, default False
        ``fit`` continues from the fitted weights (the optimizer starts afresh, as in scikit-learn).
    momentum : float, default 0.9
        The momentum of ``solver='sgd'``.
    nesterovs_momentum : bool, default True
        Nesterov's momentum rather than the classical one, with ``solver='sgd'``.
    early_stopping : bool, default False
        In ``fit`` (not ``partial_fit``), hold out a stratified ``validation_fraction`` of the training
        set, score accuracy on it after every epoch, stop on the rule of ``n_iter_no_change`` and keep
        the weights of the best epoch.
    validation_fraction : float, default 0.1
        The share of the training set held out with ``early_stopping``.
    n_iter_no_change : int, default 10
        ``fit`` stops once the training loss (with ``early_stopping``, the validation accuracy) has
        failed to improve on its best by ``tol`` for more than ``n_iter_no_change`` epochs in a row;
        a ``fit`` that runs ``max_iter`` epochs without stopping so warns with a ``ConvergenceWarning``.
    device : {'cpu', 'gpu', 'mps'}, default 'cpu'
        Where the network trains and runs: 'gpu' is a CUDA (or ROCm) GPU, 'mps' Apple silicon (PyTorch only).
    backend : str or None, default None
        The array library that trains and runs the network: 'numpy', 'cupy', 'torch' or 'jax'
        (None: CuPy for 'gpu', NumPy otherwise).
    dtype : {'float32', 'float64'}, default 'float32'
        The float type of the weights and of the computation.
    dropout : float, default 0.0
        Inverted-dropout rate on the hidden layers while training.
    label_smoothing : float, default 0.0
        How far each one-hot target is moved toward equal odds for every class while training.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels, sorted; ``predict`` answers with them.
    n_features_in_ : int
        The number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The features' names, where ``fit`` was given them (a DataFrame with string column names).
    loss_curve_ : list of float
        The training loss of each epoch, the penalty included.
    n_iter_ : int
        The epochs trained in all.
    best_loss_ : float or None
        The lowest of ``loss_curve_``; None with ``early_stopping``.
    validation_scores_ : list of float
        With ``early_stopping``: the validation accuracy of each epoch.
    best_validation_score_ : float
        With ``early_stopping``: the best of ``validation_scores_``, whose weights are kept.
    coefs_ : list of ndarray
        The weight matrix of each layer, (inputs, outputs), as host (NumPy) arrays.
    intercepts_ : list of ndarray
        The bias vector of each layer, as host (NumPy) arrays.
    config_ : TrainConfig
        The engine's settings of the last call to ``fit`` or ``partial_fit`` (its ``l2`` is alpha / batch size).
    model_ : Model
        The fitted network, on ``backend`` and ``device``: ``model_.save(path)``, ``model_.to_onnx(path)``,
        ``model_.to_html(path)``.

    Notes
    -----
    The weights start from the engine's He-normal draw (scikit-learn's are Glorot-uniform). There
    is no ``shuffle``: the engine shuffles every epoch, in an order drawn from the seed.
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate_init=0.001,
        max_iter=200,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        device="cpu",
        backend=None,
        dtype="float32",
        dropout=0.0,
        label_smoothing=0.0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.backend = backend
        self.dtype = dtype
        self.dropout = dropout
        self.label_smoothing = label_smoothing

    def fit(self, X, y):
        """Train on (X, y) for up to ``max_iter`` epochs: from fresh weights, or the fitted ones with ``warm_start``."""
        return self._train(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """Train one epoch on (X, y), continuing from the fitted weights and optimizer state.

        The first call needs ``classes``, every label that any call will see.
        """
        return self._train(X, y, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Probabilities (n_samples, n_classes) of each class, in the order of ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=INPUT_DTYPES)
        return class_probabilities(self._state.params, X, self.config_.activation)

    def predict(self, X):
        """The most probable class of each sample, as a label of ``classes_``."""
        probabilities = self.predict_proba(X)
        return self.classes_[to_host(nn.predicted_class(probabilities))]

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "_state")

    @property
    def coefs_(self) -> list:
        """The weight matrix of each layer, (inputs, outputs), as host arrays."""
        return [to_host(W) for W, _ in self._state.params]

    @property
    def intercepts_(self) -> list:
        """The bias vector of each layer, as host arrays."""
        return [to_host(b) for _, b in self._state.params]

    def _train(self, X, y, incremental: bool, classes=None):
        config = self._settings()
        continuing = self.__sklearn_is_fitted__() and (incremental or self.warm_start)
        X, y = validate_data(self, X, y, reset=not continuing, dtype=INPUT_DTYPES)
        check_classification_targets(y)
        encoder = self._label_encoder(y, incremental, classes, continuing)
        labels = encoder.transform(y)
        n_classes = len(encoder.classes_)
        early_stopping = self.early_stopping and not incremental
        if early_stopping:
            X, X_val, labels, labels_val = self._validation_split(X, labels, config.seed)
        where = place(self.device, self.backend)
        rows = X.shape[0] if config.full_batch else min(config.batch_size, X.shape[0])
        config = replace(config, l2=config.l2 / rows)
        state = None
        if continuing:
            self._check_continuable(self._state, [X.shape[1], *config.hidden, n_classes], config, where)
            # A shallow copy: training replaces the arrays rather than writing into them, so the fitted state stays
            # whole should this run fail.
            state = replace(self._state, history=list(self._state.history))
            if not incremental or config.optimizer != self.config_.optimizer:
                state.opt_state = make_optimizer(config, where.xp).init(state.params)
        done = 0 if state is None else state.epoch
        callbacks = [_Verbose()] if self.verbose else []
        stopper = None
        if not incremental:
            stopper = EarlyStopping(
                "val_accuracy" if early_stopping else "loss",
                mode="max" if early_stopping else "min",
                patience=self.n_iter_no_change + 1,
                min_delta=self.tol,
                restore_best_weights=early_stopping,
            )
            callbacks.append(stopper)
        run = replace(config, epochs=done + (1 if incremental else config.epochs))
        data = _dataset(X, labels, n_classes, where, config.dtype)
        validation = _dataset(X_val, labels_val, n_classes, where, config.dtype, held_out=True) if early_stopping else None
        try:
            result = train(run, data=data, validation=validation, state=state, callbacks=callbacks)
        except DivergenceError as exc:
            raise DivergenceError(exc.epoch, exc.problem, exc.learning_rate, config.lr, "learning_rate_init") from None
        state = result.state
        if stopper is not None and stopper.best_params is not None:
            state.params = stopper.best_params
        self._encoder, self.classes_ = encoder, encoder.classes_
        self._state = state
        self.model_ = result.model
        self.config_ = config
        self.n_iter_ = state.epoch
        self.loss_curve_ = list(state.losses)
        self.best_loss_ = None if early_stopping else min(self.loss_curve_)
        if early_stopping:
            self.validation_scores_ = list(stopper.scores)
            self.best_validation_score_ = max(stopper.scores)
        if incremental:
            return self
        if stopper.stopped:
            if self.verbose:
                print(f"No improvement of more than tol={self.tol} in {self.n_iter_no_change + 1} epochs: stopping.")
        elif state.epoch == run.epochs:
            warnings.warn(
                f"MLPClassifier: max_iter={config.epochs} epochs ran without meeting the stopping rule "
                f"(tol={self.tol}, n_iter_no_change={self.n_iter_no_change}); the network may be undertrained",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _label_encoder(self, y, incremental: bool, classes, continuing: bool) -> LabelEncoder:
        """The fitted encoder when continuing, else a new one of the labels of y (in ``partial_fit``, of ``classes``)."""
        if incremental and not continuing and classes is None:
            raise ValueError("MLPClassifier: classes must be given on the first call to partial_fit")
        if continuing:
            if incremental and classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
                raise ValueError(
                    f"MLPClassifier: classes={classes!r} differ from classes_={self.classes_!r} fitted before"
                )
        else:
            known = unique_labels(y if classes is None else classes)
            if len(known) < 2:
                raise ValueError(f"MLPClassifier needs samples of at least 2 classes; y holds 1 class ({known[0]!r})")
            return LabelEncoder().fit(known)
        return self._encoder

    def _settings(self) -> TrainConfig:
        """The engine's settings from the parameters, every one checked here, with ``l2`` still alpha.

        ``batch_size='auto'`` becomes 200: the engine takes a batch of n_samples or more as the
        whole set. A refused value raises a ValueError naming the estimator's parameter.
        """
        if self.activation not in ACTIVATIONS:
            _refuse("activation", self.activation, f"is not one of {', '.join(ACTIVATIONS)}")
        if self.solver not in SOLVERS:
            _refuse("solver", self.solver, f"is not one of {', '.join(SOLVERS)}")
        try:
            check_choice(self.device, self.backend)
        except SettingError as exc:
            value = getattr(self, exc.name)
            _refuse(exc.name, value, exc.complaint.removeprefix(f"{value!r} "))
        for name in ("nesterovs_momentum", "early_stopping", "warm_start", "verbose"):
            if not isinstance(getattr(self, name), (bool, np.bool_)) and not is_whole_number(getattr(self, name)):
                _refuse(name, getattr(self, name), "is not a bool")
        if not is_real_number(self.tol) or not 0 <= self.tol < float("inf"):
            _refuse("tol", self.tol, "must be a finite number >= 0")
        if not is_whole_number(self.n_iter_no_change) or self.n_iter_no_change < 1:
            _refuse("n_iter_no_change", self.n_iter_no_change, "must be a whole number >= 1")
        if not is_real_number(self.validation_fraction) or not 0 < self.validation_fraction < 1:
            _refuse("validation_fraction", self.validation_fraction, "must be a number above 0 and below 1")
        momentum = plain_number(self.momentum)
        if self.solver == "sgd":
            optimizer = "sgd" if momentum == 0 else "nesterov" if self.nesterovs_momentum else "momentum"
        else:
            optimizer = self.solver
        batch_size = AUTO_BATCH if _same(self.batch_size, "auto") else plain_number(self.batch_size)
        settings = {
            "hidden": _layers(self.hidden_layer_sizes),
            "activation": ACTIVATIONS[self.activation],
            "optimizer": optimizer,
            "lr": plain_number(self.learning_rate_init),
            "epochs": plain_number(self.max_iter),
            "batch_size": batch_size,
            "dtype": self.dtype,
            "seed": self._seed(),
            "momentum": momentum,
            "l2": plain_number(self.alpha),
            "dropout": plain_number(self.dropout),
            "label_smoothing": plain_number(self.label_smoothing),
        }
        try:
            config = TrainConfig(**settings)
        except SettingError as exc:
            name = PARAMETER_OF.get(exc.name, exc.name)
            _refuse(name, getattr(self, name), exc.complaint.removeprefix(f"{settings[exc.name]!r} "))
        return config

    def _seed(self):
        """The engine's seed: ``random_state`` itself if an int (checked by TrainConfig), else drawn from it."""
        if is_whole_number(self.random_state):
            return int(self.random_state)
        try:
            rng = check_random_state(self.random_state)
        except ValueError:
            _refuse("random_state", self.random_state, "is not an int, a RandomState or None")
        return int(rng.randint(MAX_SEED))

    def _validation_split(self, X, labels, seed: int):
        """(X, X_val, labels, labels_val): a stratified ``validation_fraction`` of the samples held out for early stopping."""
        X, X_val, labels, labels_val = train_test_split(
            X, labels, test_size=self.validation_fraction, random_state=seed, stratify=labels
        )
        if X_val.shape[0] < 2:
            raise ValueError(
                f"MLPClassifier: validation_fraction={self.validation_fraction} leaves {X_val.shape[0]} validation "
                "sample: raise it, or give more samples"
            )
        return X, X_val, labels, labels_val

    def _check_continuable(self, state, layer_sizes: list[int], config: TrainConfig, where) -> None:
        """A warm start or partial_fit continues the fitted network only if the layers, dtype, backend and device
        still match it."""
        fitted = [int(state.params[0][0].shape[0])] + [int(W.shape[1]) for W, _ in state.params]
        have = (fitted, dtype_name(state.params[0][0]), *place_of(state.params[0][0]))
        want = (layer_sizes, config.dtype, where.backend, where.device)
        if have != want:
            raise ValueError(
                f"MLPClassifier: cannot continue the fitted network (layers {have[0]}, {', '.join(have[1:])}) "
                f"as layers {want[0]}, {', '.join(want[1:])}: hidden_layer_sizes, dtype, backend or device changed; "
                "fit afresh (warm_start=False) or clone the estimator"
            )


class _Verbose(Callback):
    """``verbose``: prints each epoch's loss, and its validation score where there is one, as scikit-learn does."""

    def on_epoch_end(self, run, result):
        print(f"Iteration {result.epoch}, loss = {result.loss:.8f}")
        if "val_accuracy" in result.metrics:
            print(f"Validation score: {result.metrics['val_accuracy']:.6f}")


def _dataset(X, labels, n_classes: int, where, dtype: str, held_out: bool = False) -> Dataset:
    """Samples and their encoded labels as a ``Dataset`` on the estimator's backend and device: to train on, or ``held_out``."""
    X, Y = to_device(X, where, dtype), to_device(one_hot(labels, n_classes), where, dtype)
    if held_out:  # a validation set is read from the test slots, as ``holdout.carve`` puts it there
        return Dataset(X_train=X, Y_train=Y, y_train=labels, X_test=X, Y_test=Y, y_test=labels)
    return Dataset(X_train=X, Y_train=Y, y_train=labels, X_test=None, Y_test=None, y_test=None)


def _refuse(name: str, value, complaint: str):
    raise ValueError(f"MLPClassifier: {name}={value!r} {complaint}")


def _same(value, word: str) -> bool:
    return isinstance(value, str) and value == word


def _layers(value):
    """``hidden_layer_sizes`` as a tuple: one int is one layer; anything that is not a sequence is left for TrainConfig to refuse."""
    if is_whole_number(value):
        return (int(value),)
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(plain_number(size) for size in value)
    return value
