"""Exact second moments of minibatch SGD on least squares (THEORY.md 4, sampled noise).

The additive model of THEORY.md 4.4 does not describe minibatch sampling on a finite sum: the
gradient noise is multiplicative (it contains the minibatch Hessian times the error) and its
variance grows away from ``w*``. For least squares the first two moments of the error still
close exactly, for any step size, and this module evaluates them.
"""

from __future__ import annotations

import math

import numpy as np

from ._curves import exact_curve, expected_measure
from .conditions import (
    Curve,
    check_choice,
    check_int,
    check_positive,
    check_steps,
    check_vector,
)

__all__ = ["SAMPLED_LS_MAX_DIM", "SAMPLING_SCHEMES", "sgd_sampled_least_squares_exact"]

#: Largest dimension accepted: the d^2 x d^2 linear map of the second moment is built
#: explicitly (d = 64: 16.8M float64 entries, 134 MB).
SAMPLED_LS_MAX_DIM = 64
SAMPLING_SCHEMES = ("with_replacement", "without_replacement")

_SRC = ("THEORY.md 4 (minibatch noise, without-replacement factor (n-B)/(n-1)); exact "
        "second-moment recursion of sampled least squares (derivation in the docstring)")


def _check_matrix(name: str, x: object) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} is not allowed: expected a 2-D array of finite numbers") from exc
    if arr.ndim != 2:
        raise ValueError(f"{name} has shape {arr.shape}: expected a 2-D array (n, d)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values: expected finite real numbers")
    return arr


def sgd_sampled_least_squares_exact(
    t: np.ndarray | int,
    A: np.ndarray,
    b: np.ndarray,
    alpha: float,
    B: int,
    scheme: str,
    e0: np.ndarray,
    quantity: str = "f_gap",
) -> Curve:
    """Exact ``E f(w_t) - f*`` or ``E||w_t - w*||^2`` of minibatch SGD on least squares.

    Problem: ``f(w) = (1/n) sum_i 1/2 (a_i^T w - b_i)^2`` (rows ``a_i`` of ``A``), ``A`` of full
    column rank, ``w*`` the least-squares solution, residuals ``r_i = a_i^T w* - b_i``,
    ``A_i = a_i a_i^T``, ``H = A^T A / n``. Method: ``w_{t+1} = w_t - alpha g_t``,
    ``g_t = (1/B) sum_{i in I_t} grad f_i(w_t)`` with a batch ``I_t`` of ``B`` indices drawn
    afresh at every step, independently of the past: ``B`` i.i.d. uniform indices
    (``"with_replacement"``) or a uniform ``B``-subset (``"without_replacement"``).

    Derivation. With ``e = w - w*``, ``H^ = (1/B) sum_{i in I} A_i`` and
    ``g* = (1/B) sum_{i in I} r_i a_i``, one step is ``e' = (I - alpha H^) e - alpha g*``. The
    batch is independent of ``e``; ``E H^ = H`` and ``E g* = 0`` (the normal equations
    ``sum_i r_i a_i = 0``). Averaging over a batch needs only the probabilities that it holds
    an index (``B/n``) or an ordered pair of distinct indices: for any matrices ``X_i``,
    ``E[(1/B^2) sum_{k,l in I} X_k Y_l] = c1 (1/n) sum_i X_i Y_i + c2 Xbar Ybar`` with

    * with replacement: ``c1 = 1/B``, ``c2 = (B - 1)/B``;
    * without replacement: ``c1 = (n - B)/(B (n - 1))``, ``c2 = n (B - 1)/(B (n - 1))``
      (pair probability ``B(B-1)/(n(n-1))``; ``c1 = 0``, ``c2 = 1`` at ``B = n``: full GD).

    ``c1 + c2 = 1``, and ``c1`` is THEORY.md 4's variance factor ``1/B`` times
    ``(n - B)/(n - 1)`` without replacement. Applying this to the three products of the step,
    and using ``sum_i r_i a_i = 0`` to cancel every term with a ``c2`` except ``H M H``, gives
    for ``v_t = E e_t`` and ``M_t = E e_t e_t^T`` exactly

    ``v_{t+1} = (I - alpha H) v_t``,
    ``M_{t+1} = M - alpha (H M + M H) + alpha^2 [c1 K(M) + c2 H M H + c1 (2 J(v) + S)]``,

    ``K(M) = (1/n) sum_i (a_i^T M a_i) A_i``, ``J(v) = (1/n) sum_i r_i (a_i^T v) A_i``,
    ``S = (1/n) sum_i r_i^2 A_i`` (``tr S = sigma^2(w*) = (1/n) sum_i ||grad f_i(w*)||^2``).
    ``E f(w_t) - f* = 1/2 tr(H M_t)`` (exactly, by the normal equations) and
    ``E||w_t - w*||^2 = tr M_t``.

    Stationary value: when the spectral radius ``rho`` of the linear part
    ``M -> M - alpha(HM + MH) + alpha^2 (c1 K(M) + c2 HMH)`` is ``< 1``, ``v_t -> 0`` (``rho >=
    rho(I - alpha H)^2``) and ``M_t`` converges to the fixed point with ``v = 0``; to first
    order in ``alpha`` it satisfies ``HM + MH = alpha c1 S``, so the floor of ``f`` is
    ``alpha c1 sigma^2(w*)/4 (1 + O(alpha L))`` -- THEORY.md 4.4's ``alpha sigma^2/(4B)``
    with ``sigma^2 = sigma^2(w*)`` (times ``(n - B)/(n - 1)`` without replacement).

    Higher moments are not covered and may diverge while ``rho < 1``: the stationary law of
    this random linear recursion is heavy-tailed when some batches have ``alpha
    lambda_max(H^) > 2`` (e.g. n = 20, d = 3, L_max/L = 8, B = 4, alpha = 1/L: the second-moment
    map has radius 0.92 but the fourth-moment map ``E[(I - alpha H^)^{kron 4}]`` 3.8), and then
    the sample variance of ``f(w_t) - f*`` over replicates grows with t, so a Monte Carlo
    standard error means little. ``||I - alpha H^|| <= 1`` for every batch rules this out:
    ``alpha L_max <= 2`` with replacement (a batch may repeat the largest row), ``alpha``
    times the mean of the B largest ``||a_i||^2`` at most 2 without (``lambda_max(H^) <=
    tr H^``).

    Not covered: random reshuffling (the batches of an epoch are dependent), step schedules.

    Parameters
    ----------
    t : array_like of int
        Steps ``>= 0`` (any shape).
    A : array_like, shape (n, d)
        Rows ``a_i``; full column rank (``n >= d``), ``d <= SAMPLED_LS_MAX_DIM``.
    b : array_like, shape (n,)
        Targets.
    alpha : float
        Constant step ``> 0`` (any size: the recursion is an identity; it may grow).
    B : int
        Batch size, ``1 <= B <= n``.
    scheme : {"with_replacement", "without_replacement"}
    e0 : array_like, shape (d,)
        Deterministic start ``w_0 - w*`` (``v_0 = e0``, ``M_0 = e0 e0^T``).
    quantity : {"f_gap", "dist2"}

    Returns
    -------
    Curve
        ``kind="exact"``, ``tight=True``, always applicable. ``floor``: the stationary value
        (``inf`` when ``rho >= 1``). ``rate``: ``max(rho, rho(I - alpha H))``, the spectral
        radius of the joint linear map of ``(v, M)``, which bounds the asymptotic per-step
        factor of ``|values - floor|``. ``extras``: ``radius`` (``rho``; ``< 1`` iff the
        second moments converge), ``c1``, ``c2``, ``sigma2_star`` (``tr S``), ``w_star``.

    Raises
    ------
    ValueError
        Shapes that do not match, non-finite input, ``A`` without full column rank,
        ``B`` outside ``[1, n]``, ``d > SAMPLED_LS_MAX_DIM``, an unknown scheme.

    Notes
    -----
    ``M`` is carried as a ``d^2``-vector (row-major ``vec``: ``vec(X M Y) = (X kron Y^T)
    vec M``) and the linear map is built once as a ``d^2 x d^2`` matrix, so the antisymmetric
    part of ``M`` -- zero in exact arithmetic -- evolves under the true map and rounding cannot
    excite a spurious mode. Cost ``O(T d^4)`` time, ``O(n d^2 + d^4)`` memory.

    Source: THEORY.md 4 (noise model and the ``(n - B)/(n - 1)`` factor), 4.4 (the additive
    limit); the recursion is derived above.
    """
    quantity = check_choice("quantity", quantity, ("f_gap", "dist2"))
    scheme = check_choice("scheme", scheme, SAMPLING_SCHEMES)
    t = check_steps(t, integer=True)
    A = _check_matrix("A", A)
    n, d = A.shape
    if d > SAMPLED_LS_MAX_DIM:
        raise ValueError(f"A has d={d} columns: allowed d <= {SAMPLED_LS_MAX_DIM} (the "
                         "d^2 x d^2 second-moment map is built explicitly)")
    if n < d or np.linalg.matrix_rank(A) < d:
        raise ValueError(f"A (shape {A.shape}) does not have full column rank: allowed "
                         "n >= d rows spanning R^d (w* must be unique)")
    b = check_vector("b", b, allow_scalar=False)
    if b.shape != (n,):
        raise ValueError(f"b has shape {b.shape}: expected ({n},) to match A")
    e0 = check_vector("e0", e0, allow_scalar=False)
    if e0.shape != (d,):
        raise ValueError(f"e0 has shape {e0.shape}: expected ({d},) to match A")
    alpha = check_positive("alpha", alpha)
    B = check_int("B", B, 1)
    if B > n:
        raise ValueError(f"B={B} is out of range: allowed integers in [1, n={n}]")

    if scheme == "with_replacement":
        c1, c2 = 1.0 / B, (B - 1.0) / B
    elif B == n:  # the whole sum every step: full-batch GD
        c1, c2 = 0.0, 1.0
    else:
        c1, c2 = (n - B) / (B * (n - 1.0)), n * (B - 1.0) / (B * (n - 1.0))
    w_star = np.linalg.lstsq(A, b, rcond=None)[0]
    r = A @ w_star - b
    H = A.T @ A / n
    outer = np.einsum("ij,ik->ijk", A, A).reshape(n, d * d)  # vec(A_i)
    K = outer.T @ outer / n  # vec K(M) = K vec M
    J = (outer * r[:, None]).T @ A / n  # vec J(v) = J v
    S = (outer * (r * r)[:, None]).sum(axis=0) / n
    eye = np.eye(d)
    lin = (np.eye(d * d) - alpha * (np.kron(H, eye) + np.kron(eye, H))
           + alpha**2 * (c1 * K + c2 * np.kron(H, H)))
    drift = alpha**2 * c1 * 2.0 * J
    inject = alpha**2 * c1 * S
    g = np.eye(d) - alpha * H
    weights = 0.5 * H.ravel() if quantity == "f_gap" else eye.ravel()

    last = int(t.max()) if t.size else 0
    path = np.empty(last + 1)
    v = e0.copy()
    x = np.outer(v, v).ravel()
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(last + 1):
            path[k] = weights @ x
            if k < last:
                x = lin @ x + drift @ v + inject
                v = g @ v
    path = np.where(np.isnan(path), np.inf, path)
    values = path[t]
    radius = float(np.max(np.abs(np.linalg.eigvals(lin))))
    rate = max(radius, float(np.max(np.abs(np.linalg.eigvalsh(g)))))
    if radius < 1:
        floor = float(weights @ np.linalg.solve(np.eye(d * d) - lin, inject))
    else:
        floor = math.inf
    extras = {"radius": radius, "c1": c1, "c2": c2,
              "sigma2_star": float(np.trace(S.reshape(d, d))), "w_star": w_star}
    return exact_curve(t.shape, values, source=_SRC, quantity=quantity,
                       measure=expected_measure(quantity), rate=rate, floor=floor, extras=extras)
