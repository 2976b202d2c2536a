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


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small folds on one thread: spinning OpenMP threads collapse on a shared, busy CPU (the benchmark sets
    OMP_WAIT_POLICY=PASSIVE instead, which must happen before torch loads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


def test_solver_reaches_liblinear_optimum():
    """One problem through the Cholesky features and truncated Newton gives liblinear's decision values."""
    from sklearn.linear_model import LogisticRegression

    from probes.torch_probes import _jittered_cholesky, _newton_cg

    X, y, _ = synthetic_activations(n=96, d=160, n_layers=1, seed=2)
    Z = (X[0] - X[0].mean(0)) / X[0].std(0)
    Zt = torch.as_tensor(Z)[None]
    Lc = _jittered_cholesky(torch.bmm(Zt, Zt.transpose(1, 2)) + 1.0)
    masks = torch.ones(96, 2)
    beta, stats = _newton_cg(Lc, torch.as_tensor(2.0 * y - 1.0, dtype=torch.float32), masks,
                             torch.tensor([0.01, 1.0]), tol=1e-5, max_iter=50, rank=8, seed=0)
    f = torch.bmm(Lc, beta)[0].numpy()
    for j, C in enumerate((0.01, 1.0)):
        ref = LogisticRegression(C=C, solver="liblinear", tol=1e-8, max_iter=1000).fit(Z, y).decision_function(Z)
        np.testing.assert_allclose(f[:, j], ref, atol=2e-3 * (1 + np.abs(ref).max()))
    assert stats["newton"] < 50  # converged, not stopped by the cap


@pytest.mark.parametrize("d", [12, 96])  # n_train = 72: primal, then kernel features
def test_logistic_agrees_primal_branch_and_duplicate_rows(d):
    """d + 1 < n_train uses the primal features [Z, 1]; duplicated rows make K singular (the ridge copes)."""
    X, y, groups = synthetic_activations(n=96, d=d, n_layers=2, seed=3)
    X = X[:1]  # mid-depth: the signal is strongest there
    X[:, 2::8] = X[:, 0::8]  # each family's third row repeats its first (same label)
    splits = group_splits(groups, 4)
    got = cross_validate_layers("logistic", X, y, groups, splits, n_boot=0)[0]
    ref = cross_validate("logistic", X[0], y, groups, 4, n_boot=0)
    assert abs(got["accuracy"] - ref["accuracy"]) <= 0.0105, (got["accuracy"], ref["accuracy"])
    assert ref["accuracy"] > 0.6  # a signal, so agreement is not agreement at chance


def test_fit_layers_torch_backend_matches_sklearn(data):
    """The probes stage's ``backend="torch"``: the same metric lists (paired accuracy with the same bootstrap
    draws, selectivity) as the sklearn path; mean_diff to rounding, logistic accuracy within 0.01."""
    from probes.extract import fit_layers, make_design

    X, y, groups, _ = data
    pairs = [f"{g}-{i // 2}" for i, g in enumerate(groups)]  # rows 2k, 2k+1 of a family answer one prompt
    design = make_design(y, groups, pairs=pairs, n_boot=50)
    out = {b: fit_layers(lambda L: X[L], design, [0, 1], ("mean_diff", "logistic"), n_boot=50, backend=b)
           for b in ("sklearn", "torch")}
    np.testing.assert_allclose(out["torch"][0], out["sklearn"][0])
    sk, tm = out["sklearn"][2], out["torch"][2]
    assert set(tm["logistic"]) == set(sk["logistic"]) and "paired_accuracy" in sk["logistic"]
    for k in ("accuracy", "auroc", "paired_accuracy", "paired_accuracy_lo", "n"):
        np.testing.assert_allclose(tm["mean_diff"][k], sk["mean_diff"][k], atol=1e-6, err_msg=k)
    np.testing.assert_allclose(tm["logistic"]["accuracy"], sk["logistic"]["accuracy"], atol=0.01)
    with pytest.raises(ProbeError, match="unknown probe backend"):
        fit_layers(lambda L: X[L], design, [0], ("mean_diff",), backend="jax")
