"""The probes of ``probes.estimators`` in torch, fitted for all layers at once on the model's device.

``cross_validate_layers(probe, X, y, groups, splits)`` takes activations ``X`` [n_layers, n, d] (or a
list of [n, d]), the outer splits (a list of ``(train_idx, test_idx)``, e.g. ``probes.evaluate.group_splits``)
and returns, for every layer, the metric dict of ``probes.evaluate.cross_validate`` (accuracy, AUROC,
cluster-bootstrap CIs, fold spread, n, families, folds, ``oof``), plus ``C`` (the C chosen per fold).

- ``mean_diff``: difference of the training-fold class means, threshold at the midpoint: the same
  arithmetic as ``MeanDiffProbe``, batched over layers.
- ``logistic``: as ``LogisticProbe``: standardise on the training fold, L2 logistic regression with the
  intercept penalised like a weight (liblinear's objective ``C sum log(1+exp(-y f)) + |w|^2/2 + b^2/2``),
  ``C`` picked by an inner grouped CV over ``Cs`` (ties to the smallest C), refit on the whole training
  fold. Solved in the dual-free kernel form: the optimum lies in the span of the training rows, so
  ``w = Z^T a`` and every problem of one (fold, layer) -- each inner fold x each C, and the refits --
  shares one Gram matrix ``K = Z Z^T + 1`` (n x n instead of n x d). All of them, over all layers, are
  one block-separable objective minimised by L-BFGS (``torch.optim.LBFGS``, strong-Wolfe line search).

sklearn stays the reference: tests check held-out accuracy agrees with ``probes.evaluate.cross_validate``
within 0.01.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import GroupKFold

from probes.estimators import DEFAULT_CS, ProbeError
from probes.evaluate import ClusterBootstrap, auroc

TORCH_PROBES = ("mean_diff", "logistic")


def _stack(X: Any, device: torch.device | str | None) -> torch.Tensor:
    if isinstance(X, (list, tuple)):
        X = torch.stack([torch.as_tensor(np.asarray(x, dtype=np.float32)) for x in X])
    t = torch.as_tensor(X)
    if t.ndim != 3:
        raise ProbeError(f"cross_validate_layers: X must be [n_layers, n_examples, d_model], got shape {tuple(t.shape)}")
    t = t.to(device=device or t.device, dtype=torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise ProbeError("cross_validate_layers: X holds NaN/inf; re-cache the activations in float32")
    return t


def _labels(y: Any, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ProbeError(f"cross_validate_layers: {y.shape[0] if y.ndim else 0} labels for {n} rows of X")
    classes = np.unique(y)
    if classes.size != 2:
        raise ProbeError(f"cross_validate_layers: labels must have exactly two classes, got {classes.size}")
    return (y == classes[1]).astype(np.int64)


def _mean_diff_scores(Xtr: torch.Tensor, ytr: torch.Tensor, Xte: torch.Tensor) -> torch.Tensor:
    """[L, n_te] decision scores of the mean-difference probe fitted per layer on (Xtr, ytr)."""
    pos = ytr.bool()
    mu1 = Xtr[:, pos].double().mean(1)
    mu0 = Xtr[:, ~pos].double().mean(1)
    diff = mu1 - mu0
    norm = diff.norm(dim=-1, keepdim=True)
    if bool((norm == 0).any()):
        raise ProbeError("mean_diff: the two class means are identical at some layer; no direction to find")
    unit = (diff / norm).float()
    thr = (0.5 * (mu1 + mu0)).float()
    return torch.einsum("lnd,ld->ln", Xte, unit) - (thr * unit).sum(-1, keepdim=True)


def _fit_kernel_logistic(K: torch.Tensor, yy: torch.Tensor, masks: torch.Tensor, inv_c: torch.Tensor,
                         max_iter: int, tol: float, solver: str = "newton") -> torch.Tensor:
    """Coefficients A [L, n, P] minimising, for every layer and problem p,
    ``sum_i m_ip log(1 + exp(-y_i f_ip)) + a_p^T K a_p / (2 C_p)`` with ``f = K a`` and ``a_p`` zero
    outside the problem's training rows ``m_p`` (K [L, n, n], yy [n] in +-1, masks [n, P], inv_c [P]).

    ``newton``: Newton's method in the kernel form (Rasmussen & Williams, alg. 3.1), one batched
    Cholesky of ``B = I + C S K S`` (S = sqrt of the logistic weights) per iteration: ~10 iterations,
    each O(n^3) per problem; fast on a GPU. ``lbfgs``: L-BFGS over all problems jointly: O(n^2) per
    iteration but many more iterations (ill-conditioned at large C)."""
    if solver == "lbfgs":
        return _fit_lbfgs(K, yy, masks, inv_c, max_iter, tol)
    if solver != "newton":
        raise ProbeError(f"unknown solver {solver!r}; use newton or lbfgs")
    L, n, _ = K.shape
    P = masks.shape[1]
    chunk = max(1, int(2**27 // (P * n * n)))  # layers per batched Cholesky: B stays under ~512 MB in float32
    if L > chunk:
        return torch.cat([_fit_kernel_logistic(K[i:i + chunk], yy, masks, inv_c, max_iter, tol, solver)
                          for i in range(0, L, chunk)])
    C = (1.0 / inv_c)[None, None, :]  # [1, 1, P]
    y = yy[None, :, None]
    eye = torch.eye(n, device=K.device, dtype=K.dtype)
    A = torch.zeros(L, n, P, device=K.device, dtype=K.dtype)
    F = torch.zeros_like(A)
    for _ in range(max_iter):
        p = torch.sigmoid(F)
        w = masks * p * (1 - p)  # d2 loss / d f2
        g = masks * (-y * torch.sigmoid(-y * F))  # d loss / d f
        s = w.sqrt()
        b = w * F - g
        Kb = torch.bmm(K, b)  # [L, n, P]
        # B_p = I + C_p S_p K S_p  ->  [L, P, n, n]
        B = eye + (C.transpose(1, 2)[..., None] * s.transpose(1, 2)[..., :, None] * K[:, None]
                   * s.transpose(1, 2)[..., None, :])
        rhs = (s * (C * Kb)).transpose(1, 2)[..., None]  # [L, P, n, 1]
        sol = torch.cholesky_solve(rhs, torch.linalg.cholesky(B))[..., 0].transpose(1, 2)  # [L, n, P]
        A_new = C * (b - s * sol)
        F_new = torch.bmm(K, A_new)
        step = float((F_new - F).abs().max()) / (1.0 + float(F_new.abs().max()))
        A, F = A_new, F_new
        if step < tol:
            break
    return A


def _fit_lbfgs(K: torch.Tensor, yy: torch.Tensor, masks: torch.Tensor, inv_c: torch.Tensor,
               max_iter: int, tol: float) -> torch.Tensor:
    L, n, _ = K.shape
    A = torch.zeros(L, n, masks.shape[1], device=K.device, dtype=K.dtype)
    opt = torch.optim.LBFGS([A], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=tol,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")
    y = yy[None, :, None]

    def closure():
        F = torch.bmm(K, A)
        loss = (masks * torch.nn.functional.softplus(-y * F)).sum() + 0.5 * (inv_c * (A * F)).sum()
        r = masks * (-y * torch.sigmoid(-y * F)) + inv_c * A  # d loss / d f, then through f = K a
        A.grad = masks * torch.bmm(K, r)
        return loss

    opt.step(closure)
    return A


def _logistic_scores(Xtr: torch.Tensor, ytr: np.ndarray, gtr: np.ndarray, Xte: torch.Tensor, Cs: Sequence[float],
                     inner_folds: int, max_iter: int, tol: float, solver: str) -> tuple[torch.Tensor, np.ndarray]:
    """[L, n_te] log-odds on Xte of the inner-CV-tuned logistic probe per layer, and the C chosen per layer."""
    mu = Xtr.mean(1, keepdim=True)
    sd = Xtr.std(1, unbiased=False, keepdim=True)
    sd = torch.where(sd == 0, torch.ones_like(sd), sd)
    Ztr, Zte = (Xtr - mu) / sd, (Xte - mu) / sd
    K = torch.bmm(Ztr, Ztr.transpose(1, 2)) + 1.0  # + 1: the (penalised) intercept feature
    n = Ztr.shape[1]
    k = min(inner_folds, np.unique(gtr).size)
    inner = list(GroupKFold(n_splits=k).split(np.zeros(n), ytr, gtr)) if k >= 2 else []
    inner = [(tr, te) for tr, te in inner if np.unique(ytr[tr]).size == 2]
    nc = len(Cs)
    masks = np.zeros((n, (len(inner) + 1) * nc), dtype=np.float32)
    for i, (tr, _) in enumerate(inner):
        masks[tr, i * nc:(i + 1) * nc] = 1.0
    masks[:, len(inner) * nc:] = 1.0  # the refits on the whole training fold, one per C
    dev = Ztr.device
    inv_c = torch.tensor([1.0 / c for c in Cs] * (len(inner) + 1), device=dev)
    yy = torch.as_tensor(2.0 * ytr - 1.0, device=dev, dtype=torch.float32)
    A = _fit_kernel_logistic(K, yy, torch.as_tensor(masks, device=dev), inv_c, max_iter, tol, solver)
    F = torch.bmm(K, A)  # [L, n, P]
    scores = np.zeros((K.shape[0], nc))
    for i, (_, te) in enumerate(inner):
        pred = (F[:, te, i * nc:(i + 1) * nc] > 0).cpu().numpy()
        scores += (pred == ytr[te][None, :, None]).mean(1)
    best = scores.argmax(1) if inner else np.full(K.shape[0], Cs.index(1.0) if 1.0 in Cs else nc - 1)
    a = A[torch.arange(K.shape[0], device=dev), :, torch.as_tensor(len(inner) * nc + best, device=dev)]  # [L, n]
    Kte = torch.bmm(Zte, Ztr.transpose(1, 2)) + 1.0
    return torch.einsum("lmn,ln->lm", Kte, a), np.asarray(Cs)[best]


def cross_validate_layers(probe: str, X: Any, y: Any, groups: Sequence[Any],
                          splits: Sequence[tuple[np.ndarray, np.ndarray]], *, Cs: Sequence[float] = DEFAULT_CS,
                          inner_folds: int = 3, solver: str = "newton", max_iter: int | None = None,
                          tol: float = 1e-5, n_boot: int = 500, seed: int = 0, device: torch.device | str | None = None) -> list[dict[str, Any]]:
    """One metric dict per layer of ``X`` (the dict of ``probes.evaluate.cross_validate``), all layers at once.

    ``X``: [n_layers, n, d] array/tensor (or a list of [n, d]); fitted on ``device`` (default: X's).
    ``splits``: the outer (train_idx, test_idx) folds. ``groups``: template families (inner CV, bootstrap).
    ``solver``: ``newton`` (default; ``max_iter`` 50, ``tol`` on the relative change of the decision values) or
    ``lbfgs`` (``max_iter`` 1000, ``tol`` on the gradient).
    """
    max_iter = max_iter or (50 if solver == "newton" else 1000)
    if probe not in TORCH_PROBES:
        raise ProbeError(f"unknown torch probe {probe!r}; choose from {', '.join(TORCH_PROBES)}")
    Xt = _stack(X, device)
    L, n, _ = Xt.shape
    yb = _labels(y, n)
    groups = np.asarray([str(g) for g in groups])
    if groups.shape != yb.shape:
        raise ProbeError(f"cross_validate_layers: {groups.size} group ids for {n} rows")
    oof = np.zeros((L, n))
    fold_acc = np.zeros((L, len(splits)))
    chosen: list[list[float]] = []
    for f, (tr, te) in enumerate(splits):
        tr, te = np.asarray(tr), np.asarray(te)
        if np.unique(yb[tr]).size < 2:
            raise ProbeError("cross_validate_layers: a training fold holds one class only; every template family "
                             "should contain examples of both conditions (paired prompts)")
        Xtr, Xte = Xt[:, torch.as_tensor(tr, device=Xt.device)], Xt[:, torch.as_tensor(te, device=Xt.device)]
        if probe == "mean_diff":
            s = _mean_diff_scores(Xtr, torch.as_tensor(yb[tr], device=Xt.device), Xte)
        else:
            s, c = _logistic_scores(Xtr, yb[tr], groups[tr], Xte, list(map(float, Cs)), inner_folds, max_iter, tol,
                                    solver)
            chosen.append(c.tolist())
        oof[:, te] = s.double().cpu().numpy()
        fold_acc[:, f] = ((oof[:, te] > 0) == yb[te]).mean(1)
    out = []
    boot = ClusterBootstrap(groups, n_boot, seed) if n_boot else None  # the same draws for every layer
    for layer in range(L):
        s = oof[layer]
        correct = ((s > 0) == yb).astype(np.float64)
        (acc_lo, acc_hi), (auc_lo, auc_hi) = ((boot.mean_ci(correct, groups), boot.auroc_ci(yb, s, groups))
                                              if boot else ((np.nan, np.nan), (np.nan, np.nan)))
        m = {"accuracy": float(np.mean((s > 0) == yb)), "accuracy_lo": float(acc_lo), "accuracy_hi": float(acc_hi),
             "auroc": auroc(yb, s), "auroc_lo": float(auc_lo), "auroc_hi": float(auc_hi),
             "fold_accuracy_sd": float(np.std(fold_acc[layer])), "n": int(n),
             "n_families": int(np.unique(groups).size), "n_folds": len(splits), "oof": s, "correct": correct}
        if chosen:
            m["C"] = [c[layer] for c in chosen]
        out.append(m)
    return out
