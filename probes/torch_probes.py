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
  fold. Per (layer, outer fold) every problem -- each inner fold x each C, and the refits for every C (the
  C is picked afterwards) -- has its optimum in the span of the fold's training rows. With
  ``K = Z Z^T + 1 = Lc Lc^T`` (Cholesky, a 1e-5 relative ridge) each is an ordinary L2 logistic regression
  with features ``F = Lc`` (n_train dims instead of d) and penalty ``|beta|^2/2``: the same objective,
  exactly; inner problems mask rows of the same F. When d + 1 < n_train the features are ``[Z, 1]``.
  All problems of a chunk of layers are solved together by truncated Newton (``_newton_cg``): each CG
  step is two batched GEMMs shared by the problems of a layer, O(n^2) per problem instead of Newton's
  O(n^3). Held-out rows are scored with ``w = Z^T a`` (``a = Lc^-T beta``) and intercept ``sum(a)``.

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
    if not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):  # the sum: one pass, no copies
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


def _mean_diff_oof(Xt: torch.Tensor, yb: np.ndarray, splits: Sequence[tuple[np.ndarray, np.ndarray]]
                   ) -> torch.Tensor:
    """[L, n] held-out scores of the mean-difference probe, every outer fold and layer at once: the class
    means of each training fold are one GEMM with an [n, 2 x folds] averaging matrix (float32 products,
    float64 in ``MeanDiffProbe``: scores agree to ~1e-5); each row is scored by its own test fold's unit
    direction and midpoint."""
    L, n, d = Xt.shape
    nf = len(splits)
    M = torch.zeros(n, 2 * nf, dtype=Xt.dtype, device=Xt.device)
    fold_of = np.zeros(n, dtype=np.int64)
    for f, (tr, te) in enumerate(splits):
        for c, col in ((1, 2 * f), (0, 2 * f + 1)):
            rows = tr[yb[tr] == c]
            M[torch.as_tensor(rows, device=Xt.device), col] = 1.0 / rows.size
        fold_of[te] = f
    fo = torch.as_tensor(fold_of, device=Xt.device)
    out = torch.empty(L, n, dtype=torch.float32, device=Xt.device)
    for lo in range(0, L):
        Xc = Xt[lo:lo + 1]
        mus = torch.matmul(M.T[None], Xc).double()
        mu1, mu0 = mus[:, 0::2], mus[:, 1::2]  # [1, folds, d]
        diff = mu1 - mu0
        norm = diff.norm(dim=-1, keepdim=True)
        if bool((norm == 0).any()):
            raise ProbeError("mean_diff: the two class means are identical at some layer; no direction to find")
        unit = (diff / norm).float()
        thr = ((0.5 * (mu1 + mu0)).float() * unit).sum(-1)  # [l, folds]
        proj = torch.einsum("lnd,lfd->lnf", Xc, unit)  # every row on every fold's direction
        out[lo:lo + 1] = proj.gather(2, fo[None, :, None].expand(proj.shape[0], n, 1))[..., 0] - thr[:, fo]
    return out


def _jittered_cholesky(K: torch.Tensor) -> torch.Tensor:
    """Cholesky factor of K + eps I per layer, eps = 1e-5 x the mean diagonal (raised 10x while it fails)."""
    scale = K.diagonal(dim1=-2, dim2=-1).mean(-1)[:, None, None]
    eye = torch.eye(K.shape[-1], device=K.device, dtype=K.dtype)
    for rel in (1e-5, 1e-4, 1e-3, 1e-2):
        Lc, info = torch.linalg.cholesky_ex(K + rel * scale * eye)
        if not bool(info.any()):
            return Lc
    raise ProbeError("logistic probe: the Gram matrix of the standardised training rows is not positive definite "
                     "even with a 1% ridge; the activations hold NaN-like or degenerate values")


def _top_subspace(F: torch.Tensor, rank: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(V [B, r, k], G = F V [B, n, k]): the top-``rank`` right singular subspace of each F (randomised range
    finder, two power iterations, Rayleigh-Ritz), orthonormal columns."""
    B, n, r = F.shape
    k = min(rank, r, n)
    gen = torch.Generator(device=F.device).manual_seed(seed)
    Q = torch.randn(r, min(k + 8, r), generator=gen, device=F.device, dtype=F.dtype).expand(B, -1, -1)
    Ft = F.transpose(1, 2)
    for _ in range(3):
        Q = torch.linalg.qr(torch.bmm(Ft, torch.bmm(F, Q))).Q
    S = torch.bmm(F, Q)
    _, W = torch.linalg.eigh(torch.bmm(S.transpose(1, 2), S))
    W = W[..., -k:]
    return torch.bmm(Q, W), torch.bmm(S, W)


def _precondition(res: torch.Tensor, V: torch.Tensor, Vt: torch.Tensor, Tinv: torch.Tensor) -> torch.Tensor:
    """M^-1 res for M = the Hessian on span(V) (its inverse Tinv [B, P, k, k]) plus the identity off it."""
    c = torch.bmm(Vt, res)  # [B, k, P]
    sol = (Tinv * c.transpose(1, 2)[..., None, :]).sum(-1).transpose(1, 2)
    return res + torch.bmm(V, sol - c)


def _hvp(F: torch.Tensor, Ft: torch.Tensor, w: torch.Tensor, p: torch.Tensor, layers: torch.Tensor) -> torch.Tensor:
    """(I + F^T diag(w) F) p for the layers still iterating (the others get p: their CG step is void)."""
    if bool(layers.all()):
        return torch.bmm(Ft, w * torch.bmm(F, p)) + p
    out = p.clone()
    for b in torch.nonzero(layers).flatten().tolist():
        out[b] += Ft[b] @ (w[b] * (F[b] @ p[b]))
    return out


def _newton_cg(F: torch.Tensor, yy: torch.Tensor, masks: torch.Tensor, Cs: torch.Tensor, tol: float,
               max_iter: int, rank: int, seed: int) -> tuple[torch.Tensor, dict[str, int]]:
    """beta [B, r, P] minimising, for every layer b and problem p,
    ``C_p sum_i m_ip log(1 + exp(-y_i f_i)) + |beta|^2 / 2`` with ``f = F_b beta`` (F [B, n, r], yy [n] in +-1,
    masks [n, P] 0/1, Cs [P]): truncated Newton (liblinear's primal method is trust-region Newton-CG) with
    per-problem Armijo backtracking, stopped per problem when |grad| <= tol |grad at 0|. Every CG step is two
    batched GEMMs shared by the P problems of a layer. CG is preconditioned by the exact Hessian on the
    top-``rank`` right singular subspace of F (where logistic Hessians of activations are stiffest) and the
    identity on its complement."""
    B, n, r = F.shape
    P = masks.shape[1]
    y = yy[None, :, None]
    Cm = (Cs[None, :] * masks)[None]  # [1, n, P]
    Ft = F.transpose(1, 2).contiguous()
    V, G = _top_subspace(F, rank, seed)
    Vt = V.transpose(1, 2)
    k = V.shape[-1]
    eye = torch.eye(k, device=F.device, dtype=F.dtype)
    GG = (G[..., :, None] * G[..., None, :]).reshape(B, n, k * k)  # rows' outer products, for T below
    beta = torch.zeros(B, r, P, device=F.device, dtype=F.dtype)
    f = torch.zeros(B, n, P, device=F.device, dtype=F.dtype)

    def objective(b, f):
        return (Cm * torch.nn.functional.softplus(-y * f)).sum(1) + 0.5 * (b * b).sum(1)

    def gradient(b, f):
        s = torch.sigmoid(-y * f)
        return s, torch.bmm(Ft, Cm * (-y * s)) + b

    s, g = gradient(beta, f)
    g0 = g.norm(dim=1).clamp_min(1e-30)
    stats = {"newton": 0, "cg": 0}
    for _ in range(max_iter):
        gn = g.norm(dim=1)
        live = gn > tol * g0  # [B, P]
        if not bool(live.any()):
            break
        stats["newton"] += 1
        w = Cm * s * (1 - s)  # [B, n, P]: C m sigma(1 - sigma)
        T = eye + torch.bmm(w.transpose(1, 2).contiguous(), GG).reshape(B, P, k, k)  # I + G^T diag(w_p) G
        Tinv = torch.cholesky_inverse(torch.linalg.cholesky(T))

        # CG on H x = -g, H = I + F^T diag(w) F, to the forcing tolerance min(0.5, sqrt(|g|/|g0|)) |g|
        eta = torch.clamp(torch.sqrt(gn / g0), max=0.5) * gn
        x = torch.zeros_like(beta)
        res = -g
        z = _precondition(res, V, Vt, Tinv)
        p = z
        rz = (res * z).sum(1)
        for _ in range(r):
            active = live & (res.norm(dim=1) > eta)
            if not bool(active.any()):
                break
            stats["cg"] += 1
            Hp = _hvp(F, Ft, w, p, active.any(1))
            alpha = torch.where(active, rz / (p * Hp).sum(1).clamp_min(1e-30), torch.zeros_like(rz))
            x = x + alpha[:, None] * p
            res = res - alpha[:, None] * Hp
            z = _precondition(res, V, Vt, Tinv)
            rz_new = (res * z).sum(1)
            p = z + (rz_new / rz.clamp_min(1e-30))[:, None] * p
            rz = rz_new
        # per-problem Armijo backtracking along x
        Fx = torch.bmm(F, x)
        o0, slope = objective(beta, f), (g * x).sum(1)
        t = torch.ones_like(o0)
        for _ in range(30):
            ok = objective(beta + t[:, None] * x, f + t[:, None] * Fx) <= o0 + 1e-4 * t * slope
            if bool(ok.all()):
                break
            t = torch.where(ok, t, 0.5 * t)
        beta = beta + t[:, None] * x
        f = f + t[:, None] * Fx
        s, g = gradient(beta, f)
    return beta, stats


def _logistic_scores(Xtr: torch.Tensor, ytr: np.ndarray, gtr: np.ndarray, Xte: torch.Tensor, Cs: Sequence[float],
                     inner_folds: int, max_iter: int, tol: float, rank: int, seed: int
                     ) -> tuple[torch.Tensor, np.ndarray, dict[str, int]]:
    """[L, n_te] log-odds on Xte of the inner-CV-tuned logistic probe per layer, the C chosen per layer, and
    the solver's counts (Newton steps, CG steps)."""
    mu = Xtr.mean(1, keepdim=True)
    sd = Xtr.std(1, unbiased=False, keepdim=True)
    sd = torch.where(sd == 0, torch.ones_like(sd), sd)
    Ztr, Zte = (Xtr - mu) / sd, (Xte - mu) / sd
    L, n, d = Ztr.shape
    dev = Ztr.device
    kernel = n <= d + 1
    if kernel:  # K = Z Z^T + 1 (the +1: the penalised intercept) = Lc Lc^T; features F = Lc, n dims instead of d
        Lc = _jittered_cholesky(torch.bmm(Ztr, Ztr.transpose(1, 2)) + 1.0)
        F = Lc
    else:  # fewer dims than rows: the primal features [Z, 1]
        F = torch.cat([Ztr, torch.ones(L, n, 1, device=dev, dtype=Ztr.dtype)], -1)
    k = min(inner_folds, np.unique(gtr).size)
    inner = list(GroupKFold(n_splits=k).split(np.zeros(n), ytr, gtr)) if k >= 2 else []
    inner = [(tr, te) for tr, te in inner if np.unique(ytr[tr]).size == 2]
    nc = len(Cs)
    masks = np.zeros((n, (len(inner) + 1) * nc), dtype=np.float32)
    for i, (tr, _) in enumerate(inner):
        masks[tr, i * nc:(i + 1) * nc] = 1.0
    masks[:, len(inner) * nc:] = 1.0  # the refits on the whole training fold, one per C
    Cvec = torch.tensor(list(Cs) * (len(inner) + 1), device=dev, dtype=Ztr.dtype)
    yy = torch.as_tensor(2.0 * ytr - 1.0, device=dev, dtype=Ztr.dtype)
    beta, stats = _newton_cg(F, yy, torch.as_tensor(masks, device=dev), Cvec, tol, max_iter, rank, seed)
    scores = np.zeros((L, nc))
    for i, (_, te) in enumerate(inner):
        f = torch.bmm(F[:, torch.as_tensor(te, device=dev)], beta[..., i * nc:(i + 1) * nc])
        scores += ((f > 0).cpu().numpy() == ytr[te][None, :, None]).mean(1)
    # ties go to the smallest C (argmax takes the first), as in LogisticProbe
    best = scores.argmax(1) if inner else np.full(L, Cs.index(1.0) if 1.0 in Cs else nc - 1)
    b = beta[torch.arange(L, device=dev), :, torch.as_tensor(len(inner) * nc + best, device=dev)]  # [L, r]
    if kernel:  # beta = Lc^T a, w = Z^T a, intercept = sum(a)
        a = torch.linalg.solve_triangular(Lc.transpose(1, 2), b[..., None], upper=True)[..., 0]
        w, b0 = torch.einsum("lnd,ln->ld", Ztr, a), a.sum(1)
    else:
        w, b0 = b[:, :d], b[:, d]
    return torch.einsum("lmd,ld->lm", Zte, w) + b0[:, None], np.asarray(Cs)[best], stats


def cross_validate_layers(probe: str, X: Any, y: Any, groups: Sequence[Any],
                          splits: Sequence[tuple[np.ndarray, np.ndarray]], *, Cs: Sequence[float] = DEFAULT_CS,
                          inner_folds: int = 3, max_iter: int = 50, tol: float = 1e-4, rank: int = 32,
                          n_boot: int = 500, seed: int = 0, device: torch.device | str | None = None,
                          chunk_bytes: int = 2**29, stats: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """One metric dict per layer of ``X`` (the dict of ``probes.evaluate.cross_validate``), all layers at once.

    ``X``: [n_layers, n, d] array/tensor (or a list of [n, d]); fitted on ``device`` (default: X's).
    ``splits``: the outer (train_idx, test_idx) folds. ``groups``: template families (inner CV, bootstrap).
    Logistic solver: ``max_iter`` Newton steps at most, stopped per problem at ``tol`` x the initial gradient
    norm (liblinear stops at 5e-5 on balanced data; at 1e-3 an inner-CV near-tie can flip the chosen C); ``rank``: the CG
    preconditioner's subspace. Layers go through in chunks whose working set stays near ``chunk_bytes``.
    ``stats`` (a dict, optional) receives the solver's counts: Newton steps and CG steps summed over chunks.
    """
    if probe not in TORCH_PROBES:
        raise ProbeError(f"unknown torch probe {probe!r}; choose from {', '.join(TORCH_PROBES)}")
    Xt = _stack(X, device)
    L, n, d = Xt.shape
    yb = _labels(y, n)
    groups = np.asarray([str(g) for g in groups])
    if groups.shape != yb.shape:
        raise ProbeError(f"cross_validate_layers: {groups.size} group ids for {n} rows")
    oof = np.zeros((L, n))
    fold_acc = np.zeros((L, len(splits)))
    chosen: list[list[float]] = []
    splits = [(np.asarray(tr), np.asarray(te)) for tr, te in splits]
    for tr, _ in splits:
        if np.unique(yb[tr]).size < 2:
            raise ProbeError("cross_validate_layers: a training fold holds one class only; every template family "
                             "should contain examples of both conditions (paired prompts)")
    md = _mean_diff_oof(Xt, yb, splits) if probe == "mean_diff" else None
    for f, (tr, te) in enumerate(splits):
        tr_t, te_t = torch.as_tensor(tr, device=Xt.device), torch.as_tensor(te, device=Xt.device)
        if probe == "mean_diff":
            s = md[:, te_t]
        else:
            chunk = max(1, chunk_bytes // (4 * tr.size * (2 * d + 4 * tr.size + rank * rank)))
            parts, cs = [], []
            for lo in range(0, L, chunk):
                Xc = Xt[lo:lo + chunk]
                sc, c, st = _logistic_scores(Xc[:, tr_t], yb[tr], groups[tr], Xc[:, te_t], list(map(float, Cs)),
                                             inner_folds, max_iter, tol, rank, seed)
                parts.append(sc)
                cs.append(c)
                if stats is not None:
                    for k, v in st.items():
                        stats[k] = stats.get(k, 0) + v
            s = torch.cat(parts)
            chosen.append(np.concatenate(cs).tolist())
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
