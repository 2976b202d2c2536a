"""Linear probes with a scikit-learn feel: ``fit(X, y)``, ``predict``, ``decision_function``, ``score``.

Both probes take binary labels (0/1 or two distinct values: the larger, in sorted order, is the
positive class unless ``fit`` is given 0/1) and expose ``direction_``: a unit vector in the input
(raw activation) space pointing from the negative towards the positive class.

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


class _Probe:
    direction_: np.ndarray
    threshold_: float

    def decision_function(self, X) -> np.ndarray:
        raise NotImplementedError

    def predict(self, X) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(np.int64)

    def score(self, X, y) -> float:
        """Accuracy on (X, y); y as 0/1 (or booleans)."""
        return float(np.mean(self.predict(X) == np.asarray(y).astype(np.int64)))

    def project(self, X) -> np.ndarray:
        """Scalar projection of X onto ``direction_`` (no threshold)."""
        return np.asarray(X, dtype=np.float32) @ self.direction_


class MeanDiffProbe(_Probe):
    """Difference-of-means direction; classify by projecting onto it, threshold at the class-mean midpoint."""

    def __init__(self, remove=None):
        self.remove = None if remove is None else orthonormal_basis(remove)

    def fit(self, X, y, groups=None) -> MeanDiffProbe:
        X, y = check_xy(X, y, "MeanDiffProbe.fit")
        mu1 = X[y == 1].mean(0, dtype=np.float64)
        mu0 = X[y == 0].mean(0, dtype=np.float64)
        diff = mu1 - mu0
        if self.remove is not None:
            diff = project_out(diff, self.remove)
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
        self.Cs = tuple(float(c) for c in Cs)
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
        X, y = check_xy(X, y, "LogisticProbe.fit")
        self.scaler_ = StandardScaler().fit(X)
        Z = self.scaler_.transform(X)
        scores = np.zeros(len(self.Cs))
        splits = self._inner_splits(Z, y, None if groups is None else np.asarray(groups))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for tr, te in splits:
                if np.unique(y[tr]).size < 2:
                    continue
                for j, C in enumerate(self.Cs):
                    m = self._model(C).fit(Z[tr], y[tr])
                    scores[j] += np.mean(m.predict(Z[te]) == y[te])
            # ties go to the strongest regularisation (smallest C)
            self.C_ = self.Cs[int(np.argmax(scores))] if splits else 1.0
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
