"""The torch probes (all layers at once) agree with the sklearn reference (probes.evaluate.cross_validate)
on realistic synthetic activations: the mean-difference probe to float rounding, the logistic probe's
held-out accuracy within 0.01 on every layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probes.estimators import ProbeError
from probes.evaluate import cross_validate, group_splits
from probes.torch_probes import cross_validate_layers
from scripts.benchmark_probes import synthetic_activations


@pytest.fixture(scope="module")
def data():
    X, y, groups = synthetic_activations(n=128, d=64, n_layers=2, seed=1)
    return X, y, groups, group_splits(groups, 5)


def test_mean_diff_matches_sklearn_path(data):
    X, y, groups, splits = data
    got = cross_validate_layers("mean_diff", X, y, groups, splits, n_boot=50)
    for L in range(X.shape[0]):
        ref = cross_validate("mean_diff", X[L], y, groups, 5, n_boot=50)
        np.testing.assert_allclose(got[L]["oof"], ref["oof"], rtol=1e-4, atol=1e-3)
        for k in ("accuracy", "auroc", "accuracy_lo", "accuracy_hi", "fold_accuracy_sd", "n", "n_folds"):
            assert got[L][k] == pytest.approx(ref[k], abs=1e-6), k


def test_logistic_accuracy_agrees_with_sklearn(data):
    X, y, groups, splits = data
    got = cross_validate_layers("logistic", torch.as_tensor(X), y, groups, splits, n_boot=0)
    accs = []
    for L in range(X.shape[0]):
        ref = cross_validate("logistic", X[L], y, groups, 5, n_boot=0)
        accs.append(ref["accuracy"])
        assert abs(got[L]["accuracy"] - ref["accuracy"]) <= 0.01, (L, got[L]["accuracy"], ref["accuracy"])
        assert len(got[L]["C"]) == len(splits)
        assert set(ref) <= set(got[L])  # the same metric dict (plus the chosen C)
    assert max(accs) > 0.7  # the data carry a signal, so agreement is not agreement at chance


def test_bad_input_named():
    X, y, groups = synthetic_activations(n=32, d=8, n_layers=2)
    with pytest.raises(ProbeError, match="n_layers, n_examples, d_model"):
        cross_validate_layers("logistic", X[0], y, groups, group_splits(groups, 2))
    with pytest.raises(ProbeError, match="unknown torch probe"):
        cross_validate_layers("svm", X, y, groups, group_splits(groups, 2))
