"""Linear probes as scikit-learn estimators (``BaseEstimator`` + ``ClassifierMixin``): ``fit(X, y)``,
``predict`` (returns the original labels), ``decision_function``, ``score`` (accuracy); parameters are
stored untouched by ``__init__`` (``get_params``/``set_params``/``clone`` work) and fitted attributes end in
``_`` (``classes_``, ``direction_``, ``threshold_``, ...).

Both probes take binary labels (two distinct values: the larger, in sorted order, is the positive class,
``classes_[1]``) and expose ``direction_``: a unit vector in the input (raw activation) space pointing from
the negative towards the positive class.

``direction_from(source, X, y, ...)`` gives the direction a probe supplies: the mean difference, the logistic
weights, or the first principal component of the paired differences (``DIRECTION_SOURCES``).

- ``MeanDiffProbe``: difference of class means (mass-mean probe); ``diff_`` is the raw difference,
  ``decision_function(X) = X @ direction_ - threshold_`` with the threshold at the midpoint of the
  projected class means. ``remove`` (vectors [k, d]): their span is projected out of the difference
  (``self_model_orth``: the self-model direction without polarity and negation).
- ``LogisticProbe``: features standardised on the training data only, then L2 logistic regression with
  ``C`` chosen by an inner (grouped when ``groups`` is given) cross-validation over ``Cs``.
  ``direction_`` is the coefficient mapped back to raw space (coef / scale), normalised.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from probes.geometry import orthonormal_basis, project_out

DEFAULT_CS = (0.001, 0.01, 0.1, 1.0)


class ProbeError(ValueError):
    pass


def check_xy(X, y, where: str = "probe") -> tuple[np.ndarray, np.ndarray]:
    """Float32 [n, d] features and 0/1 labels; clear errors for the usual mistakes."""
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.ndim != 2:
        raise ProbeError(f"{where}: X must be [n_examples, d_model], got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ProbeError(f"{where}: y has {y.shape[0] if y.ndim else 0} labels for {X.shape[0]} rows of X")
    classes = np.unique(y)
    if classes.size != 2:
        raise ProbeError(f"{where}: labels must have exactly two classes, got {classes.size} "
                         f"({', '.join(map(str, classes[:5]))}); a contrast needs examples of both conditions")
    if not np.all(np.isfinite(X)):
        raise ProbeError(f"{where}: X holds NaN/inf; re-cache the activations in float32")
    return X, (y == classes[1]).astype(np.int64)


class _Probe(ClassifierMixin, BaseEstimator):
    direction_: np.ndarray
    threshold_: float
    classes_: np.ndarray

    def _set_classes(self, y) -> None:
        self.classes_ = np.unique(np.asarray(y))

    def decision_function(self, X) -> np.ndarray:
        raise NotImplementedError

    def predict(self, X) -> np.ndarray:
        """The original labels: ``classes_[1]`` where the decision function is > 0, else ``classes_[0]``."""
        return self.classes_[(self.decision_function(X) > 0).astype(np.int64)]

    def project(self, X) -> np.ndarray:
        """Scalar projection of X onto ``direction_`` (no threshold)."""
        return np.asarray(X, dtype=np.float32) @ self.direction_


class MeanDiffProbe(_Probe):
    """Difference-of-means direction; classify by projecting onto it, threshold at the class-mean midpoint."""

    def __init__(self, remove=None):
        self.remove = remove

    def fit(self, X, y, groups=None) -> MeanDiffProbe:
        self._set_classes(y)
        X, y = check_xy(X, y, "MeanDiffProbe.fit")
        self.remove_basis_ = None if self.remove is None else orthonormal_basis(self.remove)
        mu1 = X[y == 1].mean(0, dtype=np.float64)
        mu0 = X[y == 0].mean(0, dtype=np.float64)
        diff = mu1 - mu0
        if self.remove_basis_ is not None:
            diff = project_out(diff, self.remove_basis_)
        norm = np.linalg.norm(diff)
        if norm == 0:
            raise ProbeError("MeanDiffProbe.fit: the two class means are identical (e.g. last_prompt rows of paired "
                             "examples that share their prompt); no direction to find")
        self.diff_ = diff.astype(np.float32)
        self.direction_ = (diff / norm).astype(np.float32)
        self.threshold_ = float(0.5 * (mu1 + mu0) @ self.direction_)
        return self

    def decision_function(self, X) -> np.ndarray:
        return self.project(X) - self.threshold_


class LogisticProbe(_Probe):
    """Standardise (train data only), then L2 logistic regression with C picked by inner CV."""

    def __init__(self, Cs=DEFAULT_CS, inner_folds: int = 3, max_iter: int = 200, seed: int = 0):
        self.Cs = Cs
        self.inner_folds = inner_folds
        self.max_iter = max_iter
        self.seed = seed

    def _model(self, C: float) -> LogisticRegression:
        # liblinear: fastest here (n ~ d ~ hundreds); features are standardised, so its penalised
        # intercept is harmless
        return LogisticRegression(C=C, solver="liblinear", max_iter=self.max_iter)

    def _inner_splits(self, Z, y, groups):
        if groups is not None and len(np.unique(groups)) >= 2:
            k = min(self.inner_folds, len(np.unique(groups)))
            return list(GroupKFold(n_splits=k).split(Z, y, groups))
        k = min(self.inner_folds, int(np.bincount(y).min()))
        if k < 2:
            return []
        return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=self.seed).split(Z, y))

    def fit(self, X, y, groups=None) -> LogisticProbe:
        self._set_classes(y)
        X, y = check_xy(X, y, "LogisticProbe.fit")
        Cs = tuple(float(c) for c in self.Cs)
        self.scaler_ = StandardScaler().fit(X)
        Z = self.scaler_.transform(X)
        scores = np.zeros(len(Cs))
        splits = self._inner_splits(Z, y, None if groups is None else np.asarray(groups))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for tr, te in splits:
                if np.unique(y[tr]).size < 2:
                    continue
                for j, C in enumerate(Cs):
                    m = self._model(C).fit(Z[tr], y[tr])
                    scores[j] += np.mean(m.predict(Z[te]) == y[te])
            # ties go to the strongest regularisation (smallest C)
            self.C_ = Cs[int(np.argmax(scores))] if splits else 1.0
            self.cv_scores_ = scores / max(1, len(splits))
            self.model_ = self._model(self.C_).fit(Z, y)
        w = self.model_.coef_[0] / self.scaler_.scale_
        self.coef_raw_ = w.astype(np.float32)
        self.direction_ = (w / np.linalg.norm(w)).astype(np.float32)
        self.threshold_ = float(-self.model_.intercept_[0] + self.scaler_.mean_ @ w)
        return self

    def decision_function(self, X) -> np.ndarray:
        """Log-odds of the positive class (equals ``X @ coef_raw_ - threshold_``)."""
        return self.model_.decision_function(self.scaler_.transform(np.asarray(X, dtype=np.float32)))


PROBES = {"mean_diff": MeanDiffProbe, "logistic": LogisticProbe}


def make_probe(name: str, **kw) -> _Probe:
    if name not in PROBES:
        raise ProbeError(f"unknown probe {name!r}; choose from {', '.join(PROBES)}")
    return PROBES[name](**kw)


DIRECTION_SOURCES = ("mean_diff", "logistic", "pca_paired")


def direction_from(source: str, X, y, pairs=None, groups=None, remove=None) -> np.ndarray:
    """The raw direction (negative -> positive class) that ``source`` supplies, scaled to the norm of the class-
    mean difference so that every source's ``raw`` is comparable (steering only reads the unit vector and the
    residual norm, so the scale never enters a dose):

    - ``mean_diff``: the difference of class means (``MeanDiffProbe``);
    - ``logistic``: the weights of ``LogisticProbe`` (inner-CV C; ``groups`` for the inner grouped CV);
    - ``pca_paired``: the first principal direction (uncentred: the top right-singular vector) of the paired
      differences ``x[positive] - x[negative]`` over ``pairs`` (the examples' ``pair_id``; pairs without
      exactly one row of each class are skipped), signed to agree with the mean difference.

    ``remove`` (vectors [k, d]): their span is projected out of the result, as for ``MeanDiffProbe``."""
    if source not in DIRECTION_SOURCES:
        raise ProbeError(f"unknown direction source {source!r}; choose one of {', '.join(DIRECTION_SOURCES)}")
    md = MeanDiffProbe(remove=remove).fit(X, y)
    if source == "mean_diff":
        return md.diff_
    X, yy = check_xy(X, y, f"direction_from({source})")
    if source == "logistic":
        v = LogisticProbe().fit(X, yy, groups=groups).direction_.astype(np.float64)
    else:
        if pairs is None:
            raise ProbeError("direction_from('pca_paired') needs the pair of every row (the examples' pair_id)")
        by: dict = {}
        for i, pid in enumerate(pairs):
            by.setdefault(pid, []).append(i)
        diffs = [X[[j for j in idx if yy[j] == 1][0]] - X[[j for j in idx if yy[j] == 0][0]]
                 for pid, idx in by.items() if pid is not None and sorted(yy[idx].tolist()) == [0, 1]]
        if len(diffs) < 2:
            raise ProbeError(f"direction_from('pca_paired'): {len(diffs)} complete pairs (one row of each class); "
                             "need at least 2 -- cache both answers of each pair, or use mean_diff")
        v = np.linalg.svd(np.asarray(diffs, dtype=np.float64), full_matrices=False)[2][0]
    if md.remove_basis_ is not None:
        v = project_out(v, md.remove_basis_)
    v = v / np.linalg.norm(v)
    v = v if float(v @ md.diff_) >= 0 else -v
    return (v * np.linalg.norm(md.diff_)).astype(np.float32)
