"""The statistics of block tomography: estimators, their variances and error propagation.

Pure numpy functions shared by every tomography plan (:mod:`quicq.hardware.tomography`,
:mod:`quicq.hardware.pauli_tomography`): the combination of signed and magnitude estimates with
fixed inverse-variance weights, delta-method magnitude errors with post-selection, ±1 shot
variances, the polar projection onto orthonormal columns, and first-order errors of compounds.
The derivations are in the docstring of :mod:`quicq.hardware.tomography`.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from quicq.circuits.ir import subsets

__all__ = ["combine", "compound_with_errors", "magnitudes", "polar", "shot_variance"]


def polar(A: np.ndarray) -> np.ndarray:
    """Nearest matrix with orthonormal columns (Frobenius norm): U·Vᵀ of the thin SVD; batched."""
    U, _, Vt = np.linalg.svd(A, full_matrices=False)
    return U @ Vt


def combine(x: np.ndarray, n_x: float, m: np.ndarray, n_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean of the signed estimate x and sign(x)·m, with *fixed* weights n_x : 4·n_m.

    Without noise both estimates have variance ∝ (1 − U²): (1 − U²)/n_x for x from n_x
    effective shots, (1 − U²)/(4·n_m) for √p̂ from n_m kept shots (delta method). The
    inverse-variance weights are therefore n_x and 4·n_m whatever U is — weights computed from
    each estimate's own value would correlate with its error and bias the mean.

    Returns (estimate, variance). The variance is (1 − c²)/(n_x + 4·n_m) plus the sign term:
    where |x| is comparable to its error the sign may be wrong, which moves sign(x)·m by 2m;
    with flip probability f = Φ(−|x|/σ_x) that adds (w_m/(w_x + w_m))²·4m²·f(1 − f).
    """
    from scipy.special import ndtr

    s = np.where(x >= 0, 1.0, -1.0)
    wx, wm = n_x, 4.0 * n_m
    total = wx + wm
    c = (wx * x + wm * s * m) / total
    var = np.maximum(1.0 - c**2, 1.0 / np.maximum(total, 1.0)) / total
    sd_x = np.sqrt(np.maximum(1.0 - x**2, 1.0 / n_x) / n_x)
    flip = ndtr(-np.abs(x) / sd_x)
    return c, var + (wm / total) ** 2 * 4.0 * m**2 * flip * (1.0 - flip)


def magnitudes(probs: np.ndarray, shots: int | None, postselect: bool
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From (B, D) in-sector probabilities/frequencies: (|entry| estimates, their variance, kept).

    ``probs`` are the outcome probabilities (or frequencies) of the allowed outcomes only;
    their sum is the kept fraction. With ``postselect`` they are renormalised to it. Variances
    are the delta-method (1 − p)/(4·N_kept) with p floored at 1/N_kept (∞ when nothing was
    kept); per-shot values (N = 1) in exact mode.
    """
    kept = probs.sum(-1, keepdims=True)
    p = probs / np.where(kept > 0, kept, 1.0) if postselect else probs
    if shots is None:
        n_eff = np.ones_like(kept)
        floor = 1e-12
    else:
        n_eff = (kept if postselect else np.ones_like(kept)) * shots
        floor = 1.0 / np.maximum(n_eff, 1.0)
    var = np.where(n_eff > 0, np.maximum(1.0 - p, floor) / (4.0 * np.maximum(n_eff, 1e-300)), np.inf)
    return np.sqrt(np.clip(p, 0.0, None)), var, kept[..., 0]


def shot_variance(mean: np.ndarray, shots: int | None) -> np.ndarray:
    """Variance of a ±1 mean from ``shots`` samples, floored at 1/shots² (1e-12 per shot if exact)."""
    if shots is None:
        return np.maximum(1.0 - mean**2, 1e-12)
    return np.maximum(1.0 - mean**2, 1.0 / shots) / shots


@functools.lru_cache(maxsize=64)
def _minor_tables(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For every weight-k subset S: its elements s_p (D, k), and the rank of S∖s_p among (k−1)-subsets."""
    prev = {s: i for i, s in enumerate(subsets(n, k - 1))}
    subs = subsets(n, k)
    elem = np.array(subs, dtype=np.int64)
    rank = np.array([[prev[s[:p] + s[p + 1:]] for p in range(k)] for s in subs], dtype=np.int64)
    elem.setflags(write=False)
    rank.setflags(write=False)
    return elem, rank


def compound_with_errors(U: np.ndarray, se: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """C_k(U) and first-order propagated standard errors (independent entry errors ``se``).

    ∂det U[S,T] / ∂U[s_p, t_q] = ± det U[S∖s_p, T∖t_q] = ± C_{k−1}(U)[S∖s_p, T∖t_q], so
    var C_k[S,T] = Σ_{p,q} C_{k−1}[S∖s_p, T∖t_q]² · se[s_p, t_q]².
    """
    from quicq.engine import compound

    n = U.shape[-1]
    Ut = torch.as_tensor(U, dtype=torch.float64)
    Ck = compound(Ut, k).numpy()
    if k == 1:
        return Ck, se.copy()
    Cm = compound(Ut, k - 1).numpy() ** 2
    elem, rank = _minor_tables(n, k)  # (D, k) each
    var = np.zeros_like(Ck)
    se2 = se**2
    for p in range(k):
        for q in range(k):
            minor = Cm[..., rank[:, p], :][..., :, rank[:, q]]
            err = se2[..., elem[:, p], :][..., :, elem[:, q]]
            var += minor * err
    return Ck, np.sqrt(var)
