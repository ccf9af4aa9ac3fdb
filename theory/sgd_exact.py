"""Exact expected SGD dynamics on a diagonal quadratic with additive noise
(THEORY.md 4.4 and 4.6; the noisy quadratic model of 4.8 is the case ``s_i^2 = h_i / B``)."""

from __future__ import annotations

import numpy as np

from ._coords import broadcast_coords
from ._curves import exact_curve, expected_measure
from ._exact_inputs import check_noisy_coords, quantity_weights, require_no_random_walk
from ._recurrence import (
    averaged_second_moment,
    chunked_rows,
    log_abs_one_minus,
    power_and_geometric_sum,
)
from .conditions import (
    Conditions,
    Curve,
    Scalar,
    check_choice,
    check_steps,
    check_vector,
    fmt,
    make_curve,
    make_scalar,
)

__all__ = [
    "averaged_sgd_asymptotic",
    "averaged_sgd_exact",
    "sgd_exact_quadratic",
    "sgd_exact_quadratic_schedule",
    "sgd_stationary_quadratic",
]

_SRC_SGD = "THEORY.md 4.4 (exact, diagonal quadratic, additive noise)"
_SRC_SCHED = ("THEORY.md 4.4 generalised to a step schedule (the one-step identity holds "
              "for each step; exact, diagonal quadratic, additive noise)")
_SRC_AVG = "THEORY.md 4.6; Polyak-Juditsky 1992; Bach-Moulines 2013 (constant step)"


def _coords(eigenvalues, alpha, noise_var, m0):
    lam, a, _, s2, m0 = check_noisy_coords(eigenvalues, alpha, noise_var, m0)
    return lam, a, s2, m0


def sgd_exact_quadratic(
    t: np.ndarray | int,
    eigenvalues: np.ndarray,
    alpha: float | np.ndarray,
    noise_var: float | np.ndarray,
    m0: float | np.ndarray,
    quantity: str = "f_gap",
) -> Curve:
    """Exact ``E Delta_t`` or ``E||e_t||^2`` of constant-step SGD on a diagonal quadratic.

    Model: ``f = 1/2 sum_i lambda_i e_i^2 + f*``, ``g = grad f + xi``, ``xi`` independent across
    steps with ``E xi = 0`` and ``Cov xi = diag(s_i^2)`` (isotropic ``s^2 = sigma^2/(d B)``;
    curvature-aligned NQM ``s_i^2 = h_i/B``; any distribution). With ``r_i = (1-alpha_i
    lambda_i)^2`` and ``m_{t,i} = E e_{t,i}^2``:

    ``m_{t+1,i} = r_i m_{t,i} + alpha_i^2 s_i^2``, so
    ``m_{t,i} = r_i^t m_{0,i} + alpha_i^2 s_i^2 (1 - r_i^t)/(1 - r_i)``
    ``= r_i^t (m_{0,i} - m_{inf,i}) + m_{inf,i}``, ``m_{inf,i} = alpha s^2/(lambda (2 - alpha
    lambda))`` for ``0 < alpha lambda < 2``. ``E Delta_t = 1/2 sum lambda_i m_{t,i}``,
    ``E||e_t||^2 = sum m_{t,i}``. The geometric sum is evaluated without cancellation
    (``expm1``/``log1p``), so ``r`` near 1 and ``lambda_i = 0`` (random walk, ``m_t = m_0 + t
    alpha^2 s^2``) are exact.

    Parameters
    ----------
    t : array_like of int
        Steps ``>= 0``.
    eigenvalues : array_like, shape (d,)
        ``lambda_i >= 0``.
    alpha : float or array_like (d,)
        Step ``> 0``; per coordinate for a diagonal preconditioner (``alpha R_ii``,
        THEORY.md 3) or NQM ``alpha h_i^{-p}``.
    noise_var : float or array_like (d,)
        ``s_i^2 >= 0`` (0 gives exact GD).
    m0 : float or array_like (d,)
        ``E e_{0,i}^2 >= 0`` (``e0**2`` for a deterministic start).
    quantity : {"f_gap", "dist2"}

    Returns
    -------
    Curve
        ``kind="exact"``, always applicable (identity for every step size); ``floor`` = the
        limit as ``t -> inf`` (the stationary value of :func:`sgd_stationary_quadratic` when
        stable, ``inf`` when it diverges); ``rate`` = largest ``r_i`` among contributing
        coordinates.

    Source: THEORY.md 4.4.
    """
    quantity = check_choice("quantity", quantity, ("f_gap", "dist2"))
    t = check_steps(t, integer=True)
    lam, a, s2, m0 = _coords(eigenvalues, alpha, noise_var, m0)
    h = a * lam
    q = 1.0 - h
    with np.errstate(over="ignore"):  # a step far beyond stability: r, c = inf (diverges)
        r = q * q
        omr = h * (2.0 - h)
        c = a * a * s2
    w = quantity_weights(lam, quantity)
    log_r = 2.0 * log_abs_one_minus(h)
    keep = (w != 0) & ((m0 != 0) | (c != 0))
    flat = t.ravel()
    values = np.zeros(flat.shape)
    if keep.any():
        lrk, omrk, ck, m0k, wk = log_r[keep], omr[keep], c[keep], m0[keep], w[keep]
        rows = chunked_rows(flat.size, lrk.size)
        with np.errstate(over="ignore", invalid="ignore"):
            for s in range(0, flat.size, rows):
                tt = flat[s : s + rows, None].astype(float)
                rt, geo = power_and_geometric_sum(lrk, omrk, tt)
                m = rt * m0k + ck * geo
                m = np.where(np.isnan(m), np.inf, m)
                values[s : s + rows] = (m * wk).sum(axis=-1)
    values = values.reshape(t.shape)
    limit = np.zeros_like(lam)
    stable = (h > 0) & (h < 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        limit[stable] = c[stable] / omr[stable]
    flat_r = ~stable & (r == 1)  # lambda = 0 or alpha lambda = 2
    limit[flat_r] = np.where(c[flat_r] > 0, np.inf, m0[flat_r])
    grow = ~stable & (r > 1)
    limit[grow] = np.where((c[grow] > 0) | (m0[grow] > 0), np.inf, 0.0)
    floor = float(np.sum(w * np.where(keep, limit, 0.0)))  # keep implies w != 0
    rate = float(r[keep].max()) if keep.any() else 0.0
    return exact_curve(t.shape, values, source=_SRC_SGD, quantity=quantity,
                       measure=expected_measure(quantity), rate=rate, floor=floor)


def sgd_exact_quadratic_schedule(
    t: np.ndarray | int,
    eigenvalues: np.ndarray,
    alphas: np.ndarray,
    noise_var: float | np.ndarray,
    m0: float | np.ndarray,
    quantity: str = "f_gap",
) -> Curve:
    """Exact ``E Delta_t`` or ``E||e_t||^2`` of SGD with a step schedule on a diagonal quadratic.

    Model of :func:`sgd_exact_quadratic` (``f = 1/2 sum_i lambda_i e_i^2 + f*``, additive noise
    ``xi_t`` independent across steps, ``E xi = 0``, ``Cov xi = diag(s_i^2)``, any
    distribution), but the step from ``w_t`` to ``w_{t+1}`` is ``alpha_t``, a deterministic
    sequence. The one-step identity of THEORY.md 4.4 uses nothing but the current step, so
    with ``m_{t,i} = E e_{t,i}^2``

    ``m_{t+1,i} = (1 - alpha_t lambda_i)^2 m_{t,i} + alpha_t^2 s_i^2``,
    ``E Delta_t = 1/2 sum_i lambda_i m_{t,i}``, ``E||e_t||^2 = sum_i m_{t,i}``.

    (The cross term ``-2 alpha_t (1 - alpha_t lambda_i) E[e_{t,i} xi_{t,i}]`` vanishes because
    ``xi_t`` is independent of ``e_t`` with mean 0.) The recursion is evaluated step by step
    (``O(T d)``), an identity for every schedule, so the curve is always applicable. For a
    constant schedule it reproduces :func:`sgd_exact_quadratic` up to rounding
    (``O(T eps)`` relative).

    Parameters
    ----------
    t : array_like of int
        Steps ``0 <= t <= T`` (``T = len(alphas)``) at which to return the values; any shape.
    eigenvalues : array_like, shape (d,)
        ``lambda_i >= 0``.
    alphas : array_like, shape (T,) or (T, d)
        ``alpha_t >= 0`` for ``t = 0 ... T-1``; a (T, d) array gives per-coordinate steps
        (a diagonal preconditioner, THEORY.md 3). For the lab's ``inverse_time`` schedule
        ``alpha_t = beta/(gamma + t + 1)`` (THEORY.md 4.2's ``alpha_s``, ``s = t + 1``).
    noise_var : float or array_like (d,)
        ``s_i^2 >= 0`` (``sigma^2/(d B)`` for isotropic noise; 0 gives exact GD).
    m0 : float or array_like (d,)
        ``E e_{0,i}^2 >= 0`` (``e0**2`` for a deterministic start).
    quantity : {"f_gap", "dist2"}

    Returns
    -------
    Curve
        ``kind="exact"``, ``tight=True``, always applicable; ``rate`` and ``floor`` are NaN
        (a finite schedule has no limit; for ``alpha_t = beta/(gamma + t)`` with
        ``2 beta lambda_i > 1`` the tail is ``~ beta^2 s_i^2/((2 beta lambda_i - 1) t)`` per
        coordinate, THEORY.md 4.2).

    Raises
    ------
    ValueError
        Non-finite or negative inputs, ``alphas`` of the wrong shape, a step outside
        ``[0, T]``.

    Source: THEORY.md 4.4 (the identity), applied step by step; 4.2 for the schedule.
    """
    quantity = check_choice("quantity", quantity, ("f_gap", "dist2"))
    t = check_steps(t, integer=True)
    lam = check_vector("eigenvalues", eigenvalues, low=0.0, allow_scalar=False)
    s2 = check_vector("noise_var", noise_var, low=0.0)
    m0 = check_vector("m0", m0, low=0.0)
    lam, s2, m0 = broadcast_coords(eigenvalues=lam, noise_var=s2, m0=m0)
    try:
        alphas = np.asarray(alphas, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError("alphas is not allowed: expected an array of finite step sizes") from exc
    if alphas.ndim not in (1, 2) or (alphas.ndim == 2 and alphas.shape[1] != lam.size):
        raise ValueError(f"alphas has shape {alphas.shape}: expected (T,) or (T, {lam.size})")
    if not np.all(np.isfinite(alphas)):
        raise ValueError("alphas contains non-finite values: expected finite step sizes")
    if alphas.size and float(alphas.min()) < 0:
        raise ValueError(f"alphas has an entry {fmt(alphas.min())} out of range: allowed "
                         "[0, inf)")
    n_steps = alphas.shape[0]
    if t.size and int(t.max()) > n_steps:
        raise ValueError(f"t={int(t.max())} is out of range: allowed steps in [0, {n_steps}] "
                         f"(len(alphas)={n_steps})")
    last = int(t.max()) if t.size else 0
    path = np.empty(last + 1)
    m = m0
    # the same expressions the lab's experiments used, so their tables are unchanged
    path[0] = 0.5 * lam @ m if quantity == "f_gap" else m.sum()
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(last):
            a = alphas[k]
            m = (1.0 - a * lam) ** 2 * m + a * a * s2
            path[k + 1] = 0.5 * lam @ m if quantity == "f_gap" else m.sum()
    path = np.where(np.isnan(path), np.inf, path)  # inf * 0 from an overflowed coordinate
    values = path[t]
    return exact_curve(t.shape, values, source=_SRC_SCHED, quantity=quantity,
                       measure=expected_measure(quantity))


def sgd_stationary_quadratic(
    eigenvalues: np.ndarray,
    alpha: float | np.ndarray,
    noise_var: float | np.ndarray,
    quantity: str = "f_gap",
) -> Scalar:
    """Stationary ``E Delta_inf`` or ``E||e_inf||^2`` of constant-step SGD on a diagonal quadratic.

    ``m_{inf,i} = alpha_i s_i^2 / (lambda_i (2 - alpha_i lambda_i))``;
    ``E Delta_inf = sum_i alpha_i s_i^2 / (2 (2 - alpha_i lambda_i))`` (about
    ``alpha sigma^2/(4B)`` for isotropic noise and ``alpha L << 1``). Coordinates with
    ``lambda_i = 0`` contribute 0 to ``Delta`` at every step; for ``dist2`` with noise they
    random-walk (no stationary value). Conditions: ``0 < alpha_i lambda_i < 2`` for every
    contributing coordinate, else ``applicable=False``. Tight (exact).

    Source: THEORY.md 4.4.
    """
    quantity = check_choice("quantity", quantity, ("f_gap", "dist2"))
    lam, a, s2 = _coords(eigenvalues, alpha, noise_var, 0.0)[:3]
    h = a * lam
    cond = Conditions()
    pos = lam > 0
    unstable = pos & (h >= 2)
    if unstable.any():
        i = int(np.argmax(np.where(unstable, h, -np.inf)))
        cond.require(
            False,
            f"alpha*lambda={fmt(h[i])} >= 2 (coordinate {i}): SGD is unstable, no stationary value",
        )
    require_no_random_walk(cond, quantity, pos, s2)

    def compute() -> float:
        hp, ap, sp, lp = h[pos], a[pos], s2[pos], lam[pos]
        if quantity == "f_gap":
            return float(np.sum(ap * sp / (2.0 * (2.0 - hp))))
        return float(np.sum(ap * sp / (lp * (2.0 - hp))))

    return make_scalar(cond, compute, tight=True, source=_SRC_SGD)


def averaged_sgd_exact(
    T: np.ndarray | int,
    eigenvalues: np.ndarray,
    alpha: float | np.ndarray,
    noise_var: float | np.ndarray,
    m0: float | np.ndarray,
    quantity: str = "f_gap",
) -> Curve:
    """Exact ``E f(bar w_T) - f*`` (or ``E||bar w_T - w*||^2``) of averaged constant-step SGD.

    ``bar w_T = (1/T) sum_{t=1}^T w_t`` under the model of :func:`sgd_exact_quadratic`, with
    ``q_i = 1 - alpha_i lambda_i``:
    ``E bar e_i = e_{0,i} q_i (1 - q_i^T) / (T (1 - q_i))``,
    ``Var bar e_i = s_i^2/(lambda_i^2 T^2) sum_{j=1}^T (1 - q_i^j)^2``,
    ``E f(bar w_T) - f* = 1/2 sum_i lambda_i [(E bar e_i)^2 + Var bar e_i]``
    (``(E bar e_i)^2`` uses ``m0_i = E e_{0,i}^2``: exact for a deterministic or an independent
    random start). Evaluated by exact block doubling (no division by ``1 - q``), so small or
    zero ``lambda_i`` are exact. Always applicable (identity); as ``T -> inf`` it approaches
    ``tr(A^{-1} Cov xi)/(2T)`` (:func:`averaged_sgd_asymptotic`) for ``0 < alpha lambda < 2``.

    Parameters
    ----------
    T : array_like of int
        Numbers of averaged iterates, ``>= 1``.
    eigenvalues, alpha, noise_var, m0
        As in :func:`sgd_exact_quadratic`.

    Source: THEORY.md 4.6; Polyak-Juditsky 1992; Bach-Moulines 2013.
    """
    quantity = check_choice("quantity", quantity, ("f_gap", "dist2"))
    T = check_steps(T, "T", integer=True, low=1)
    lam, a, s2, m0 = _coords(eigenvalues, alpha, noise_var, m0)
    q = 1.0 - a * lam
    c = a * a * s2
    w = quantity_weights(lam, quantity)
    values = averaged_second_moment(q, m0, c, w, T)
    stable = bool(np.all(((a * lam > 0) & (a * lam < 2)) | (w == 0)))
    measure = "E f(bar w_T) - f*" if quantity == "f_gap" else "E||bar w_T - w*||^2"
    return exact_curve(T.shape, values, source=_SRC_AVG, quantity=quantity, measure=measure,
                       floor=0.0 if stable else np.nan)


def averaged_sgd_asymptotic(
    T: np.ndarray | int,
    eigenvalues: np.ndarray,
    noise_var: float | np.ndarray,
) -> Curve:
    """Asymptotic ``E f(bar w_T) - f* ~ (s^2/(2T)) sum_i 1/lambda_i = tr(A^{-1} Cov xi)/(2T)``.

    Optimal and kappa-free (Polyak-Juditsky 1992). Needs every ``lambda_i > 0`` with nonzero
    noise, else ``applicable=False``. ``kind="asymptotic"``.

    Source: THEORY.md 4.6.
    """
    T = check_steps(T, "T", low=1)
    lam = check_vector("eigenvalues", eigenvalues, low=0.0)
    s2 = check_vector("noise_var", noise_var, low=0.0)
    lam, s2 = broadcast_coords(eigenvalues=lam, noise_var=s2)
    cond = Conditions()
    bad = (lam == 0) & (s2 > 0)
    cond.require(
        not bad.any(),
        "an eigenvalue is 0 with nonzero noise: tr(A^{-1} Cov xi) is infinite",
    )
    total = float(np.sum(np.where(s2 > 0, s2 / np.where(lam > 0, lam, 1.0), 0.0)))
    return make_curve(
        T.shape,
        cond,
        lambda: total / (2.0 * T),
        tight=True,
        source=_SRC_AVG,
        quantity="f_gap",
        kind="asymptotic",
        measure="E f(bar w_T) - f*",
        floor=0.0,
    )
