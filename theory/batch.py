"""Batch size on the noisy quadratic model: exact steps to a target, the critical batch size.

The noisy quadratic model (NQM; Zhang et al. 2019, THEORY.md 4.8): ``f = 1/2 sum_i h_i x_i^2``
(``x = w - w*`` in the eigenbasis), minibatch gradients ``g = H x + xi`` with ``Cov xi = H/B``
(per-example covariance ``Sigma = H``). Per eigen-direction the expected dynamics are exact
and closed-form, for

* SGD (THEORY.md 4.4 with ``s_i^2 -> h_i/B``),
* heavy ball (4.5, the 2x2 second-moment recursion solved in closed form below),
* a diagonal preconditioner ``H^{-p}`` (THEORY.md 3: step ``alpha h_i^{-p}`` per coordinate).

On top of them: :func:`expected_loss` (``E f(w_t) - f*`` at any step, ``O(d)`` per
configuration and step), :func:`steps_to_target` (the first step at which it is ``<= eps``,
root finding in ``t`` vectorised over configurations), :func:`nqm_step_search` (the best
constant step -- and momentum -- on a log grid for each batch size), :func:`fit_steps_examples`
(``S_min``, ``E_min``, ``B_crit`` of the steps--examples hyperbola of McCandlish et al. 2018
fitted to the exact ``S(B)``, with the departure of the curve from it) and
:func:`diagonal_noise_scales` (``B_noise``, ``B_simple`` of THEORY.md 4.8 for diagonal
``H``, ``Sigma``, vectorised over points).

Closed form of one heavy-ball direction (``beta`` in [0, 1); ``beta = 0`` is SGD). With
``a = 1 + beta - s lambda`` (``s`` the step of the coordinate) and ``U_t`` the solution of
``U_{t+1} = a U_t - beta U_{t-1}``, ``U_{-1} = 0``, ``U_0 = 1`` (``e_1^T M^t = (U_t, -beta
U_{t-1})`` for the companion matrix ``M`` of 2.1), the covariance recursion of 4.5,
``Sigma_{t+1} = M Sigma_t M^T + s^2 sigma^2 e_1 e_1^T`` from ``Sigma_0 = m_0 1 1^T``, has the
exact solution ``Sigma_t - Sigma_inf = M^t (Sigma_0 - Sigma_inf) M^{tT}`` with the stationary
``Sigma_inf = [[g0, g1], [g1, g0]]``, ``g0 = s sigma^2 (1+beta) / (lambda (1-beta) (2(1+beta) -
s lambda))`` (4.5) and ``g1 = a g0 / (1+beta)``; hence

``E x_t^2 = g0 + (m_0 - g0)(U_t^2 + beta^2 U_{t-1}^2) - 2 beta (m_0 - g1) U_t U_{t-1}``.

``U_t`` is evaluated from the roots of ``r^2 - a r + beta``: ``beta^{t/2} sin((t+1) theta) /
sin theta`` for complex roots, ``r_1^t expm1((t+1) L) / expm1(L)`` with ``L = log(r_2/r_1)``
for real ones (no cancellation at double roots). For ``beta = 0`` this is 4.4:
``E x_t^2 = (1 - s lambda)^{2t} (m_0 - m_inf) + m_inf``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .conditions import check_int, check_positive, check_range, check_vector, fmt

__all__ = [
    "HyperbolaFit",
    "StepSearch",
    "TargetSteps",
    "diagonal_noise_scales",
    "expected_loss",
    "fit_steps_examples",
    "nqm_coordinates",
    "nqm_curvatures",
    "nqm_largest_step",
    "nqm_step_search",
    "nqm_steps_to_target",
    "stationary_loss",
    "steps_to_target",
]

_SRC = "THEORY.md 4.4, 4.5, 4.8 (exact NQM dynamics); Zhang et al. 2019"
#: float64 entries (configurations x coordinates) processed at once
_CHUNK = 1 << 20
#: default horizon of the root finder (steps); beyond it a target counts as unreachable
T_MAX = float(2**40)


# --------------------------------------------------------------------------- inputs
def _config_arrays(
    eigenvalues: object, step: object, noise_var: object, m0: object, beta: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """Validate and broadcast to rows: lam, step, noise, m0 as (n, d), beta as (n,)."""
    lam = check_vector("eigenvalues", eigenvalues, low=0.0, low_inclusive=False,
                       allow_scalar=False)
    d = lam.size
    step = np.asarray(step, dtype=float)
    noise = np.asarray(noise_var, dtype=float)
    m0 = np.asarray(m0, dtype=float)
    beta = np.asarray(beta, dtype=float)
    for name, arr, low, strict in (("step", step, 0.0, True), ("noise_var", noise, 0.0, False),
                                   ("m0", m0, 0.0, False), ("beta", beta, 0.0, False)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains non-finite values: expected finite real numbers")
        if arr.size and (arr.min() <= low if strict else arr.min() < low):
            bound = "(0, inf)" if strict else "[0, inf)"
            raise ValueError(f"{name} has an entry {fmt(arr.min())} out of range: allowed {bound}")
    if beta.size and beta.max() >= 1.0:
        raise ValueError(f"beta has an entry {fmt(beta.max())} out of range: allowed [0, 1)")
    per_coord = []
    for name, arr in (("step", step), ("noise_var", noise), ("m0", m0)):
        if arr.ndim == 0:
            arr = arr[None]
        if arr.shape[-1] not in (1, d):
            raise ValueError(f"{name} has shape {arr.shape}: the last axis must have length "
                             f"{d} (one value per coordinate) or 1")
        per_coord.append(arr)
    try:
        shape = np.broadcast_shapes(*(a.shape[:-1] for a in per_coord), beta.shape)
    except ValueError as exc:
        shapes = ", ".join(f"{n}{a.shape}" for n, a in zip(("step", "noise_var", "m0"),
                                                             per_coord, strict=True))
        raise ValueError(f"configuration shapes do not broadcast: {shapes}, "
                         f"beta{beta.shape}") from exc
    n = math.prod(shape)
    rows = [np.broadcast_to(a, (*shape, d)).reshape(n, d) for a in per_coord]
    lam2 = np.broadcast_to(lam, (n, d))
    beta1 = np.broadcast_to(beta, shape).reshape(n)
    return lam2, rows[0], rows[1], rows[2], beta1, shape


class _Rows:
    """Closed-form ``sum_i (lambda_i/2) E x_{t,i}^2`` for a batch of configurations (rows).

    Per direction ``E x_t^2 = m_0 p_t^2 + Var_t`` with ``p_t = U_t - beta U_{t-1}`` (the
    deterministic factor, ``E x_t = p_t x_0``) and ``Var_t = g0 - [g0 (U_t^2 + beta^2
    U_{t-1}^2) - 2 beta g1 U_t U_{t-1}]`` (nondecreasing in ``t``). :meth:`parts` returns the
    three sums used by the first-crossing certificate: the deterministic part over directions
    where ``p_t^2`` is provably nonincreasing (SGD: ``p_t = (1 - s lambda)^t``; heavy ball
    with real positive roots ``0 < r_2 <= r_1 < 1``: ``p_t = ((1-r_2) r_1^{t+1} - (1-r_1)
    r_2^{t+1}) / (r_1 - r_2) >= 0`` and ``p_{t+1} - p_t = (1-r_1)(1-r_2)(r_2^{t+1} -
    r_1^{t+1})/(r_1 - r_2) <= 0``), the deterministic part over the other directions (``>= 0``)
    and the variance part.
    """

    def __init__(self, lam: np.ndarray, step: np.ndarray, noise: np.ndarray, m0: np.ndarray,
                 beta: np.ndarray) -> None:
        n = lam.shape[0]
        self.n = n
        h = step * lam
        b = beta[:, None]
        one_b = 1.0 + b
        self.stable = np.all((h > 0) & (h < 2.0 * one_b), axis=1)
        w = 0.5 * lam
        m0w = w * m0
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # w * g0 = w s sigma^2 (1+beta) / (lambda (1-beta)(2(1+beta) - s lambda))
            g0w = (0.5 * step) * noise * (one_b / ((1.0 - b) * (2.0 * one_b - h)))
        self.floor = np.where(self.stable, np.sum(g0w, axis=1), np.inf)
        self.initial = np.sum(m0w, axis=1)
        self.monotone = np.zeros(n, dtype=bool)
        self.sgd_rows = np.flatnonzero((beta == 0.0) & self.stable)
        self.hb_rows = np.flatnonzero((beta > 0.0) & self.stable)
        self.u, self.o, self.hbrow = {}, {}, {}
        if self.sgd_rows.size:
            r = self.sgd_rows
            self.sgd_m0w = m0w[r]
            self.sgd_g0w = g0w[r]
            self.sgd_c = self.sgd_m0w - self.sgd_g0w
            hr = h[r]
            with np.errstate(divide="ignore"):  # s lambda = 1: r = 0
                self.sgd_logr = np.log1p(hr * (hr - 2.0))  # log (1 - s lambda)^2
            # F = floor + sum w (m0 - g0) r^t is decreasing when every coefficient is >= 0
            self.monotone[r] = np.all(self.sgd_c >= 0, axis=1)
        if self.hb_rows.size:
            self._init_hb(h[self.hb_rows], m0w[self.hb_rows], g0w[self.hb_rows],
                          beta[self.hb_rows])

    def _init_hb(self, h: np.ndarray, m0w: np.ndarray, g0w: np.ndarray, beta: np.ndarray
                 ) -> None:
        m = beta.size
        sbr = np.sqrt(beta)[:, None]
        disc = ((1.0 - sbr) ** 2 - h) * ((1.0 + sbr) ** 2 - h)  # a^2 - 4 beta, factored
        row = np.broadcast_to(np.arange(m)[:, None], h.shape)
        self.hbrow = {"half_log_beta": 0.5 * np.log(beta)}
        under = disc < 0
        for name, mask in (("u", under), ("o", ~under)):
            rw = row[mask]
            hh, mw, gw, dd = h[mask], m0w[mask], g0w[mask], disc[mask]
            bb = beta[rw]
            sb = np.sqrt(bb)
            a = (1.0 + bb) - hh
            g1w = a * gw / (1.0 + bb)
            if name == "u":
                # complex roots sqrt(beta) e^{+-i theta}:
                # U_t = beta^{t/2} sin((t+1) theta) / sin(theta)
                sqrt_neg = np.sqrt(-dd)
                sin = sqrt_neg / (2.0 * sb)
                self.u = {"row": rw, "m0w": mw, "g0w": gw, "g1w": g1w, "beta": bb,
                          "theta": np.arctan2(sqrt_neg, a), "sin": sin, "inv_sin": 1.0 / sin,
                          "cos": a / (2.0 * sb), "inv_sqrt_beta": 1.0 / sb,
                          # E x_t^2 - g0 = c1 U_t^2 + c2 U_{t-1}^2 + c3 U_t U_{t-1}
                          "c1": mw - gw, "c2": bb * bb * (mw - gw), "c3": -2.0 * bb * (mw - g1w)}
            else:
                # real roots |r1| >= |r2| = beta/|r1|: |U_{t-1}| = |r1|^{t-1} expm1(t L)/expm1(L)
                # with L = log(r2/r1) = log1p(-sqrt(disc)/|r1|) <= 0 and
                # expm1(L) = -sqrt(disc)/|r1|;
                # |U_t| = |r1|^t + |r2| |U_{t-1}|; U_t U_{t-1} = sign(a) |U_t| |U_{t-1}|
                sq = np.sqrt(dd)
                r1 = 0.5 * (np.abs(a) + sq)
                x = sq / r1
                deg = sq == 0.0  # double root: U_{t-1} = t r^{t-1}
                sign = np.sign(a)
                self.o = {"row": rw, "m0w": mw, "g0w": gw, "g1w": g1w, "beta": bb,
                          "sign": sign, "logr1": np.log(r1), "r1": r1, "r2": bb / r1,
                          "L": np.log1p(-x), "inv_E1": -1.0 / np.where(deg, 1.0, x) * ~deg,
                          "deg": deg.astype(float), "c1": mw - gw, "c2": bb * bb * (mw - gw),
                          "c3": -2.0 * sign * bb * (mw - g1w), "mono": sign > 0}

    def _hb_u(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = self.u
        te = t[u["row"]]
        ang = te * u["theta"]
        st, ct = np.sin(ang), np.cos(ang)
        g = np.exp(t * self.hbrow["half_log_beta"])[u["row"]]  # beta^{t/2}, per row
        g *= u["inv_sin"]
        ut = st * u["cos"]
        ut += ct * u["sin"]
        ut *= g
        ut1 = st * g
        ut1 *= u["inv_sqrt_beta"]
        return ut, ut1

    def _hb_o(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        o = self.o
        te = t[o["row"]]
        ratio = np.expm1(te * o["L"])
        ratio *= o["inv_E1"]
        ratio += te * o["deg"]
        pw = np.exp((te - 1.0) * o["logr1"])  # |r1|^{t-1}
        ut1 = pw * ratio
        ut = pw * o["r1"]
        ut += o["r2"] * ut1
        return ut, ut1

    def loss(self, t: np.ndarray) -> np.ndarray:
        """``E f(w_t) - f*`` per row at integer steps ``t`` (shape (n,)); NaN if unstable."""
        t = np.asarray(t, dtype=float)
        out = np.full(self.n, np.nan)
        with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
            if self.sgd_rows.size:
                r = self.sgd_rows
                tt = t[r, None]
                rt = np.exp(np.where(tt == 0, 0.0, tt * self.sgd_logr))
                out[r] = self.floor[r] + np.einsum("ij,ij->i", self.sgd_c, rt)
            if self.hb_rows.size:
                m = self.hb_rows.size
                th = t[self.hb_rows]
                total = self.floor[self.hb_rows].copy()
                for part, fn in ((self.u, self._hb_u), (self.o, self._hb_o)):
                    if part["row"].size:
                        ut, ut1 = fn(th)
                        tr = part["c1"] * ut * ut
                        tr += part["c2"] * ut1 * ut1
                        tr += part["c3"] * ut * ut1
                        total += np.bincount(part["row"], weights=tr, minlength=m)
                out[self.hb_rows] = total
        return out

    def parts(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row at integer steps ``t``: (deterministic part over directions with
        nonincreasing ``p_t^2``, deterministic part over the others, variance part)."""
        t = np.asarray(t, dtype=float)
        mono = np.full(self.n, np.nan)
        rest = np.full(self.n, np.nan)
        var = np.full(self.n, np.nan)
        with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
            if self.sgd_rows.size:
                r = self.sgd_rows
                tt = t[r, None]
                rt = np.exp(np.where(tt == 0, 0.0, tt * self.sgd_logr))
                mono[r] = np.sum(self.sgd_m0w * rt, axis=1)
                rest[r] = 0.0
                var[r] = np.sum(self.sgd_g0w * (1.0 - rt), axis=1)
            if self.hb_rows.size:
                m = self.hb_rows.size
                th = t[self.hb_rows]
                mo, re, va = np.zeros(m), np.zeros(m), np.zeros(m)
                for part, fn in ((self.u, self._hb_u), (self.o, self._hb_o)):
                    if not part["row"].size:
                        continue
                    ut, ut1 = fn(th)
                    sgn = part.get("sign", 1.0)
                    b_ut1 = part["beta"] * ut1
                    pt = ut - sgn * b_ut1
                    det = part["m0w"] * pt * pt
                    vdef = part["g0w"] * (ut * ut + b_ut1 * b_ut1) \
                        - 2.0 * sgn * part["g1w"] * ut * b_ut1
                    if "mono" in part:
                        k = part["mono"]
                        mo += np.bincount(part["row"][k], weights=det[k], minlength=m)
                        re += np.bincount(part["row"][~k], weights=det[~k], minlength=m)
                    else:
                        re += np.bincount(part["row"], weights=det, minlength=m)
                    va += np.bincount(part["row"], weights=part["g0w"] - vdef, minlength=m)
                mono[self.hb_rows], rest[self.hb_rows], var[self.hb_rows] = mo, re, va
        return mono, rest, var

    def subset(self, idx: np.ndarray) -> _Rows:
        """The rows ``idx`` (sorted), sliced from the precomputed per-direction data."""
        idx = np.asarray(idx)
        new = object.__new__(_Rows)
        new.n = idx.size
        for name in ("stable", "floor", "initial", "monotone"):
            setattr(new, name, getattr(self, name)[idx])
        sgd_pos = np.full(self.n, -1)
        sgd_pos[self.sgd_rows] = np.arange(self.sgd_rows.size)
        hb_pos = np.full(self.n, -1)
        hb_pos[self.hb_rows] = np.arange(self.hb_rows.size)
        ps, ph = sgd_pos[idx], hb_pos[idx]
        new.sgd_rows = np.flatnonzero(ps >= 0)
        new.hb_rows = np.flatnonzero(ph >= 0)
        if new.sgd_rows.size:
            keep = ps[ps >= 0]
            for name in ("sgd_m0w", "sgd_g0w", "sgd_c", "sgd_logr"):
                setattr(new, name, getattr(self, name)[keep])
        new.u, new.o, new.hbrow = {}, {}, {}
        if new.hb_rows.size:
            kept = ph[ph >= 0]
            new.hbrow = {k: v[kept] for k, v in self.hbrow.items()}
            remap = np.full(self.hb_rows.size, -1)
            remap[kept] = np.arange(kept.size)
            for part in ("u", "o"):
                old = getattr(self, part)
                keep = remap[old["row"]] >= 0
                sliced = {k: v[keep] for k, v in old.items()}
                sliced["row"] = remap[old["row"][keep]]
                setattr(new, part, sliced)
        return new


def _chunks(n: int, d: int) -> list[slice]:
    rows = max(1, _CHUNK // max(d, 1))
    return [slice(s, min(n, s + rows)) for s in range(0, n, rows)]


# --------------------------------------------------------------------------- public: curves
def expected_loss(
    t: np.ndarray | int,
    eigenvalues: np.ndarray,
    step: np.ndarray | float,
    noise_var: np.ndarray | float,
    m0: np.ndarray | float,
    beta: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Exact ``E f(w_t) - f* = 1/2 sum_i lambda_i E x_{t,i}^2`` of SGD / heavy ball with noise.

    Per coordinate (``x_{t+1} = (1 + beta - s_i lambda_i) x_t - beta x_{t-1} - s_i xi_t``,
    ``x_{-1} = x_0``, ``E xi_t = 0``, ``E xi_t^2 = sigma_i^2`` independent; any distribution):
    ``E x_t^2 = g0 + (m_0 - g0)(U_t^2 + beta^2 U_{t-1}^2) - 2 beta (m_0 - g1) U_t U_{t-1}``
    (module docstring), which for ``beta = 0`` is THEORY.md 4.4 and otherwise 4.5 in closed
    form. A diagonal preconditioner ``R`` is the per-coordinate step ``s_i = alpha R_ii``
    (THEORY.md 3); the NQM has ``sigma_i^2 = h_i / B`` (4.8).

    Parameters
    ----------
    t : int or array_like of int
        Steps ``>= 0``; broadcast against the configuration shape.
    eigenvalues : array_like (d,)
        ``lambda_i > 0``.
    step : float or array_like (..., d)
        Per-coordinate steps ``s_i > 0``; leading axes are configurations.
    noise_var : float or array_like (..., d)
        ``sigma_i^2 >= 0``.
    m0 : float or array_like (..., d)
        ``E x_{0,i}^2`` (``x_0^2`` for a deterministic start).
    beta : float or array_like (...)
        Momentum in ``[0, 1)``.

    Returns
    -------
    numpy.ndarray
        Shape ``broadcast(configurations, t)``. Configurations with an unstable direction
        (``s_i lambda_i`` outside ``(0, 2(1+beta))``, THEORY.md 2.1) give NaN: the closed form
        uses the stationary covariance, and such a run has no finite steps-to-target anyway.

    Source: THEORY.md 4.4, 4.5 (exact); Zhang et al. 2019.
    """
    lam, step, noise, m0r, beta, shape = _config_arrays(eigenvalues, step, noise_var, m0, beta)
    t = np.asarray(t)
    if t.dtype.kind not in "iuf" or not np.all(np.isfinite(t)) or (t.size and t.min() < 0) \
            or not np.all(t == np.round(t)):
        raise ValueError("t must hold integer steps >= 0")
    out_shape = np.broadcast_shapes(shape, t.shape)
    tt = np.broadcast_to(t.astype(float), out_shape)
    # evaluate per (configuration, t) pair: repeat configuration rows over the extra t axes
    n_cfg = math.prod(shape)
    idx = np.broadcast_to(np.arange(n_cfg).reshape(shape), out_shape).ravel()
    flat_t = tt.ravel()
    out = np.empty(flat_t.size)
    d = lam.shape[1]
    for sl in _chunks(flat_t.size, d):
        ii = idx[sl]
        rows = _Rows(lam[ii], step[ii], noise[ii], m0r[ii], beta[ii])
        out[sl] = rows.loss(flat_t[sl])
    return out.reshape(out_shape)


def stationary_loss(
    eigenvalues: np.ndarray,
    step: np.ndarray | float,
    noise_var: np.ndarray | float,
    beta: np.ndarray | float = 0.0,
) -> np.ndarray:
    """``E f(w_inf) - f* = sum_i s_i sigma_i^2 (1+beta) / (2 (1-beta) (2(1+beta) - s_i lambda_i))``.

    THEORY.md 4.4 (``beta = 0``) and 4.5; ``inf`` for configurations with an unstable direction.
    Shape: the configuration shape (leading axes of ``step``/``noise_var``/``beta``).
    """
    lam, step, noise, m0, beta, shape = _config_arrays(eigenvalues, step, noise_var, 0.0, beta)
    out = np.empty(lam.shape[0])
    for sl in _chunks(lam.shape[0], lam.shape[1]):
        out[sl] = _floor_only(lam[sl], step[sl], noise[sl], beta[sl])
    return out.reshape(shape)


def _floor_only(lam, step, noise, beta) -> np.ndarray:
    b = beta[:, None]
    h = step * lam
    stable = np.all((h > 0) & (h < 2.0 * (1.0 + b)), axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        per = step * noise * (1.0 + b) / (2.0 * (1.0 - b) * (2.0 * (1.0 + b) - h))
    return np.where(stable, per.sum(axis=1), np.inf)


# --------------------------------------------------------------------------- steps to target
class TargetSteps(NamedTuple):
    """Result of :func:`steps_to_target` (arrays of the configuration shape).

    ``steps``: first step ``t`` with ``E f(w_t) - f* <= target`` (``inf`` when the floor is
    ``>= target``, a direction is unstable, or it is beyond ``t_max``); ``floor``: the
    stationary loss; ``initial``: the loss at ``t = 0``; ``monotone``: True where the loss is
    proven decreasing in ``t`` (SGD rows whose every direction starts above its stationary
    second moment), so ``steps`` is the first crossing by construction; ``verified``: True
    where ``steps`` is proven to be the first crossing (monotone rows, or certified by the walk
    of ``verify=True``).
    """

    steps: np.ndarray
    floor: np.ndarray
    initial: np.ndarray
    monotone: np.ndarray
    verified: np.ndarray


def steps_to_target(
    target: float,
    eigenvalues: np.ndarray,
    step: np.ndarray | float,
    noise_var: np.ndarray | float,
    m0: np.ndarray | float,
    beta: np.ndarray | float = 0.0,
    *,
    t_max: float = T_MAX,
    verify: bool = False,
    guess: np.ndarray | None = None,
    verify_rounds: int = 4000,
) -> TargetSteps:
    """First step at which the exact expected loss of :func:`expected_loss` is ``<= target``.

    Only configurations whose stationary loss is below ``target`` (and which are stable) are
    candidates -- a constant-step run whose expected loss settles above the target is not
    counted even if a transient dipped below it. Root finding on ``phi(t) = log F(t) -
    log target`` in integer ``t``: secant steps from ``(0, 1)`` (for a decreasing convex
    ``phi`` -- every SGD row with ``m_0 >= m_inf`` per direction, where ``log F`` is a log-sum
    of decaying exponentials plus a constant -- the iterates stay left of the root and converge
    to it), then regula falsi (Illinois) on the bracket down to ``F(t*) <= target < F(t*-1)``.
    Cost: ``O(d)`` per configuration and evaluation, about 10 evaluations.

    Heavy ball's loss can oscillate, so a secant step might jump over an early, brief dip
    below the target. ``verify=True`` certifies the first crossing for every configuration not
    proven monotone: writing ``F = D_mono + D_rest + V`` (deterministic part over directions
    whose ``p_t^2`` is nonincreasing, the other deterministic part ``>= 0``, the variance part,
    nondecreasing), every step ``s`` in ``(t, s_1]`` has ``F(s) >= D_mono(s_1) + V(t)``; a walk
    from ``t = 0`` jumps as far as this bound stays above the target and otherwise evaluates
    ``F(t+1)`` exactly (:func:`_certify_first`). An earlier crossing it finds replaces the
    root finder's answer. ``verified`` reports the rows so proven (monotone rows always are);
    a row that exhausts ``verify_rounds`` keeps the crossing found, unproven.

    Parameters
    ----------
    target : float
        ``eps > 0``.
    eigenvalues, step, noise_var, m0, beta
        As in :func:`expected_loss`.
    t_max : float
        Horizon; a target not reached by then counts as unreachable (``inf``).
    verify : bool
        See above.
    verify_rounds : int
        Work limit of the certificate (rounds of the walk of :func:`_certify_first`); rows not
        certified within it keep the crossing found and ``verified=False``.
    guess : array_like, optional
        Guessed steps (configuration shape), e.g. the answer at a nearby step size: the search
        then starts just below them. Speed only: a crossing is bracketed and refined the same
        way (for non-monotone rows a different crossing may be found unless ``verify``).

    Returns
    -------
    TargetSteps

    Source: THEORY.md 4.4, 4.5; Zhang et al. 2019 (steps to a target loss).
    """
    target = check_positive("target", target)
    t_max = check_positive("t_max", t_max)
    verify_rounds = check_int("verify_rounds", verify_rounds, 1)
    lam, step, noise, m0r, beta, shape = _config_arrays(eigenvalues, step, noise_var, m0, beta)
    n, d = lam.shape
    if guess is not None:
        guess = np.broadcast_to(np.asarray(guess, dtype=float), shape).reshape(n)
    steps = np.full(n, np.inf)
    floor = np.empty(n)
    initial = np.empty(n)
    monotone = np.zeros(n, dtype=bool)
    verified = np.zeros(n, dtype=bool)
    for sl in _chunks(n, d):
        rows = _Rows(lam[sl], step[sl], noise[sl], m0r[sl], beta[sl])
        floor[sl] = rows.floor
        initial[sl] = rows.initial
        monotone[sl] = rows.monotone
        s, v = _solve(rows, target, t_max, verify, None if guess is None else guess[sl],
                      verify_rounds)
        steps[sl] = s
        verified[sl] = v | rows.monotone
    return TargetSteps(*(a.reshape(shape) for a in (steps, floor, initial, monotone,
                                                      verified)))


def _phi(rows: _Rows, t: np.ndarray, log_target: float) -> np.ndarray:
    f = rows.loss(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.maximum(f, 1e-300)) - log_target


def _solve(rows: _Rows, target: float, t_max: float, verify: bool,
           guess: np.ndarray | None = None, verify_rounds: int = 4000
           ) -> tuple[np.ndarray, np.ndarray]:
    n = rows.n
    out = np.full(n, np.inf)
    verified = np.zeros(n, dtype=bool)
    at_start = rows.initial <= target
    out[at_start] = 0.0
    verified[at_start] = True
    cand = np.flatnonzero(rows.stable & (rows.floor < target) & ~at_start)
    if cand.size == 0:
        return out, verified
    sub = rows.subset(cand) if cand.size < n else rows
    lt = math.log(target)
    lo = np.zeros(cand.size)
    p_lo = np.log(sub.initial) - lt
    found = _bracket_and_refine(sub, lo, p_lo, lt, t_max,
                                None if guess is None else guess[cand])
    if verify:
        check = np.flatnonzero(np.isfinite(found) & ~sub.monotone)
        ok = sub.monotone.copy()
        if check.size:
            found[check], ok[check] = _certify_first(sub.subset(check), found[check], target,
                                                     verify_rounds)
        verified[cand] = ok
    out[cand] = found
    return out, verified


class _Evaluator:
    """``phi`` on a subset of rows; the rows object is compacted when few stay active."""

    def __init__(self, rows: _Rows, lt: float) -> None:
        self.base = rows
        self.cur = rows
        self.cur_idx = np.arange(rows.n)
        self.lt = lt

    def __call__(self, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.cur_idx, idx)
        inside = pos < self.cur_idx.size
        contained = bool(np.all(inside) and np.all(self.cur_idx[pos] == idx))
        if not contained or 2 * idx.size <= self.cur_idx.size:
            self.cur = self.base.subset(idx) if idx.size < self.base.n else self.base
            self.cur_idx = idx if idx.size < self.base.n else np.arange(self.base.n)
            pos = np.searchsorted(self.cur_idx, idx)
        tt = np.ones(self.cur_idx.size)
        tt[pos] = t
        return _phi(self.cur, tt, self.lt)[pos]


def _bracket_and_refine(rows: _Rows, t0: np.ndarray, p0: np.ndarray, lt: float,
                        t_max: float, guess: np.ndarray | None = None) -> np.ndarray:
    """Integer first crossing to the right of ``t0`` (where ``phi > 0``), per row."""
    m = t0.size
    ev = _Evaluator(rows, lt)
    result = np.full(m, np.inf)
    t_prev, p_prev = t0.astype(float), p0.astype(float)
    t_cur, p_cur = t_prev + 1.0, np.full(m, np.nan)
    # phase 0 (warm start, speed only): two points just below a guessed crossing
    if guess is not None:
        g = np.asarray(guess, dtype=float)
        use = np.flatnonzero(np.isfinite(g) & (g >= t0 + 3) & (g <= t_max))
        if use.size:
            g1 = np.ceil(g[use])
            g0 = np.maximum(t0[use] + 1.0, np.floor(0.95 * g[use]))
            p_g0 = ev(use, g0)
            p_g1 = ev(use, g1)
            ok = p_g0 > 0  # otherwise: start from t0 as without a guess
            k = use[ok]
            t_prev[k], p_prev[k] = g0[ok], p_g0[ok]
            t_cur[k], p_cur[k] = g1[ok], p_g1[ok]
    fresh = np.flatnonzero(np.isnan(p_cur))
    if fresh.size:
        p_cur[fresh] = ev(fresh, t_cur[fresh])
    # phase 1: secant steps from the left until phi <= 0 (the bracket's right end)
    lo, p_lo = t_prev.copy(), p_prev.copy()
    hi, p_hi = t_cur.copy(), p_cur.copy()
    open_ = p_cur > 0
    lo[open_], p_lo[open_] = t_cur[open_], p_cur[open_]
    hi[open_] = np.inf
    for _ in range(500):
        idx = np.flatnonzero(open_)
        if idx.size == 0:
            break
        tc, pc, tp, pp = t_cur[idx], p_cur[idx], t_prev[idx], p_prev[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (pp - pc) / (tc - tp)
            jump = np.where(slope > 0, pc / slope, np.inf)
        jump = np.minimum(jump, 63.0 * tc + 64.0)  # at most about x64 per step
        t_new = np.minimum(np.maximum(np.ceil(tc + jump), tc + 1.0), t_max)
        beyond = tc >= t_max  # already evaluated at the horizon: unreachable
        p_new = np.full(idx.size, np.inf)
        go = ~beyond
        if go.any():
            p_new[go] = ev(idx[go], t_new[go])
        closed = go & (p_new <= 0)
        t_prev[idx], p_prev[idx] = tc, pc
        t_cur[idx], p_cur[idx] = t_new, p_new
        hi[idx[closed]], p_hi[idx[closed]] = t_new[closed], p_new[closed]
        still = go & ~closed
        lo[idx[still]], p_lo[idx[still]] = t_new[still], p_new[still]
        open_[idx[closed | beyond]] = False
    bracketed = np.isfinite(hi) & (p_hi <= 0)
    # phase 2: Illinois regula falsi on the integer bracket (lo, hi]
    side = np.zeros(m, dtype=np.int8)
    w_lo, w_hi = p_lo.copy(), p_hi.copy()
    for it in range(500):
        act = np.flatnonzero(bracketed & (hi - lo > 1))
        if act.size == 0:
            break
        a_lo, a_hi = lo[act], hi[act]
        if it < 40:
            with np.errstate(divide="ignore", invalid="ignore"):
                r = a_lo + w_lo[act] * (a_hi - a_lo) / (w_lo[act] - w_hi[act])
            r = np.where(np.isfinite(r), r, 0.5 * (a_lo + a_hi))
            t_new = np.clip(np.ceil(r), a_lo + 1, a_hi - 1)
        else:  # safeguard: bisection
            t_new = np.floor(0.5 * (a_lo + a_hi))
        p_new = ev(act, t_new)
        below = p_new <= 0
        ai, bi = act[below], act[~below]
        hi[ai], p_hi[ai], w_hi[ai] = t_new[below], p_new[below], p_new[below]
        lo[bi], p_lo[bi], w_lo[bi] = t_new[~below], p_new[~below], p_new[~below]
        # Illinois: halve the weight of an end that stayed put twice in a row
        w_lo[ai[side[ai] == 1]] *= 0.5
        w_hi[bi[side[bi] == -1]] *= 0.5
        side[ai], side[bi] = 1, -1
    result[bracketed] = hi[bracketed]
    return result


def _certify_first(rows: _Rows, found: np.ndarray, target: float, max_rounds: int = 4000
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Earliest crossing, proven: returns ``(first step with loss <= target, certified)``.

    Walks ``t`` from 0 keeping the invariant "the loss is > target at every step <= t". With
    ``F = D_mono + D_rest + V`` (:meth:`_Rows.parts`: ``D_mono`` nonincreasing, ``D_rest >= 0``,
    ``V`` nondecreasing), every step ``s`` in ``(t, s_1]`` has ``F(s) >= D_mono(s_1) + V(t)``,
    so when ``D_mono(s_1) > target - V(t)`` the walk jumps to ``s_1`` (found by secant steps on
    ``log D_mono``); otherwise it evaluates ``F(t+1)`` exactly and either stops there (the
    first crossing) or moves by one. It stops at ``found`` (a known crossing) at the latest;
    rows still walking after ``max_rounds`` rounds keep ``found`` and ``certified=False``.
    """
    m = rows.n
    out = found.copy()
    certified = np.zeros(m, dtype=bool)
    t = np.zeros(m)
    mono0, _, _ = rows.parts(t)
    d_t, v_t = mono0, np.zeros(m)  # D_mono and V at the walk's position
    active = np.isfinite(found)
    ev_rows = rows
    ev_idx = np.arange(m)

    def parts(idx: np.ndarray, s: np.ndarray):
        nonlocal ev_rows, ev_idx
        pos = np.searchsorted(ev_idx, idx)
        if not (np.all(pos < ev_idx.size) and np.all(ev_idx[pos] == idx)) \
                or 2 * idx.size <= ev_idx.size:
            ev_rows = rows.subset(idx) if idx.size < m else rows
            ev_idx = idx if idx.size < m else np.arange(m)
            pos = np.searchsorted(ev_idx, idx)
        ss = np.ones(ev_idx.size)
        ss[pos] = s
        a, b, c = ev_rows.parts(ss)
        return a[pos], b[pos], c[pos]

    for _ in range(max_rounds):
        done = active & (t + 1 >= out)
        certified[done] = True
        active &= ~done
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        s1 = t[idx] + 1
        mono1, rest1, var1 = parts(idx, s1)
        hit = mono1 + rest1 + var1 <= target
        out[idx[hit]] = s1[hit]
        certified[idx[hit]] = True
        active[idx[hit]] = False
        gap = target - v_t[idx]
        step1 = ~hit & ~(mono1 > gap)  # no jump possible: move by one step
        j1 = idx[step1]
        t[j1], d_t[j1], v_t[j1] = s1[step1], mono1[step1], var1[step1]
        jump = ~hit & (mono1 > gap)
        if not jump.any():
            continue
        jj = idx[jump]
        g = gap[jump]
        acc_t, acc_d, acc_v = s1[jump], mono1[jump], var1[jump]
        prev_t, prev_d = t[jj], d_t[jj]
        for _inner in range(8):  # secant steps on log D_mono toward D_mono = gap
            with np.errstate(divide="ignore", invalid="ignore"):
                slope = (np.log(prev_d) - np.log(acc_d)) / (acc_t - prev_t)
                ahead = np.where(slope > 0, (np.log(acc_d) - np.log(g)) / slope, np.inf)
            prop = np.ceil(acc_t + np.minimum(ahead, 63.0 * acc_t + 64.0))
            prop = np.minimum(np.maximum(prop, acc_t + 1.0), out[jj] - 1.0)
            more = prop > acc_t
            if not more.any():
                break
            pm, _, pv = parts(jj[more], prop[more])
            good = np.zeros(jj.size, dtype=bool)
            good[more] = pm > g[more]
            prev_t = np.where(good, acc_t, prev_t)
            prev_d = np.where(good, acc_d, prev_d)
            gm = np.flatnonzero(more)[pm > g[more]]
            acc_t[gm], acc_d[gm], acc_v[gm] = prop[gm], pm[pm > g[more]], pv[pm > g[more]]
            if not good.any():
                break
        t[jj], d_t[jj], v_t[jj] = acc_t, acc_d, acc_v
    return out, certified


# --------------------------------------------------------------------------- the NQM
def nqm_curvatures(d: int) -> np.ndarray:
    """The NQM spectrum of Zhang et al. 2019: ``h_i = 1/i``, ``i = 1..d`` (``L = 1``)."""
    d = check_int("d", d, 1)
    return 1.0 / np.arange(1, d + 1, dtype=float)


def nqm_coordinates(
    h: np.ndarray, B: np.ndarray | float, alpha: np.ndarray | float, p: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-coordinate ``(step, noise_var)`` of the NQM: ``alpha h_i^{-p}`` and ``h_i / B``.

    ``B`` and ``alpha`` broadcast to the configuration shape; results are ``(..., d)``.
    ``B = inf`` gives exact gradients (the deterministic limit).
    """
    h = check_vector("h", h, low=0.0, low_inclusive=False, allow_scalar=False)
    p = check_range("p", p, 0.0, None)
    B = np.asarray(B, dtype=float)
    alpha = np.asarray(alpha, dtype=float)
    if B.size and (np.isnan(B).any() or B.min() <= 0):
        raise ValueError("B must be > 0 (inf allowed: exact gradients)")
    shape = np.broadcast_shapes(B.shape, alpha.shape)
    scale = h ** (-p) if p else np.ones_like(h)
    step = np.broadcast_to(alpha, shape)[..., None] * scale
    with np.errstate(divide="ignore"):
        noise = h / np.broadcast_to(B, shape)[..., None]
    return step, noise


def nqm_steps_to_target(
    h: np.ndarray,
    B: np.ndarray | float,
    alpha: np.ndarray | float,
    *,
    beta: np.ndarray | float = 0.0,
    p: float = 0.0,
    m0: np.ndarray | float = 1.0,
    target: float = 0.01,
    verify: bool = False,
    t_max: float = T_MAX,
    guess: np.ndarray | None = None,
    verify_rounds: int = 4000,
) -> TargetSteps:
    """:func:`steps_to_target` on the NQM (``B``, ``alpha``, ``beta`` broadcast together).

    Method: SGD (``beta = 0, p = 0``), heavy ball (``beta > 0``), preconditioned SGD with
    ``H^{-p}`` (``p > 0``: step ``alpha h_i^{-p}``, stable iff ``alpha h_i^{1-p} < 2``).
    ``m0 = 1`` is the start ``x_{0,i} = 1`` (initial loss ``1/2 sum h_i``).
    """
    shape = np.broadcast_shapes(np.shape(B), np.shape(alpha), np.shape(beta))
    step, noise = nqm_coordinates(h, np.broadcast_to(B, shape), np.broadcast_to(alpha, shape), p)
    return steps_to_target(target, h, step, noise, m0, np.broadcast_to(beta, shape),
                           verify=verify, t_max=t_max, guess=guess,
                           verify_rounds=verify_rounds)


def nqm_largest_step(
    h: np.ndarray,
    B: np.ndarray | float,
    *,
    beta: np.ndarray | float = 0.0,
    p: float = 0.0,
    target: float = 0.01,
) -> np.ndarray:
    """Largest constant step ``alpha`` worth trying: stable and with stationary loss ``<=
    target``.

    ``min(2(1+beta)/max_i h_i^{1-p}, alpha_floor)``, ``alpha_floor`` the root of
    ``stationary_loss(alpha) = target`` (increasing in ``alpha`` on the stable range, from 0 to
    inf; found by bisection in ``log alpha`` to relative precision 1e-13). Shape: broadcast of
    ``B`` and ``beta``.
    """
    h = check_vector("h", h, low=0.0, low_inclusive=False, allow_scalar=False)
    target = check_positive("target", target)
    shape = np.broadcast_shapes(np.shape(B), np.shape(beta))
    Bb = np.broadcast_to(np.asarray(B, float), shape).ravel()
    bb = np.broadcast_to(np.asarray(beta, float), shape).ravel()
    scale = h ** (-p) if p else np.ones_like(h)
    a_stab = 2.0 * (1.0 + bb) / np.max(h * scale)
    lo = np.zeros_like(a_stab)
    hi = a_stab.copy()
    for _ in range(120):
        mid = np.where(lo > 0, np.sqrt(lo * hi), 0.5 * hi)
        step, noise = nqm_coordinates(h, Bb, mid, p)
        fl = _floor_rows(h, step, noise, bb)
        ok = fl <= target
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
        if np.all((hi - lo) <= 1e-13 * hi):
            break
    return lo.reshape(shape)


def _floor_rows(h, step, noise, beta) -> np.ndarray:
    out = np.empty(step.shape[0])
    lam = np.broadcast_to(h, step.shape)
    for sl in _chunks(step.shape[0], h.size):
        out[sl] = _floor_only(lam[sl], step[sl], noise[sl], beta[sl])
    return out


@dataclass(frozen=True)
class StepSearch:
    """Best constant step (per momentum) for each batch size: :func:`nqm_step_search`.

    Arrays are shaped ``(len(B), len(beta))``: ``alpha`` the best step found, ``steps`` its
    steps to target (``inf`` if none reaches it), ``alpha_top`` the largest useful step
    (:func:`nqm_largest_step`), ``at_edge`` True where the best coarse point was the smallest
    one tried (the optimum may lie below the grid), ``verified`` as in :class:`TargetSteps`.
    """

    B: np.ndarray
    beta: np.ndarray
    p: float
    alpha: np.ndarray
    steps: np.ndarray
    alpha_top: np.ndarray
    at_edge: np.ndarray
    verified: np.ndarray
    resolution: float

    def best(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(steps, alpha, beta)`` per batch size, minimised over the momentum grid."""
        k = np.argmin(np.where(np.isfinite(self.steps), self.steps, np.inf), axis=1)
        rows = np.arange(self.B.size)
        return self.steps[rows, k], self.alpha[rows, k], self.beta[k]


def nqm_step_search(
    h: np.ndarray,
    B: Sequence[float] | np.ndarray,
    *,
    beta: Sequence[float] | np.ndarray = (0.0,),
    p: float = 0.0,
    m0: np.ndarray | float = 1.0,
    target: float = 0.01,
    coarse_points: int = 12,
    coarse_ratio: float = 2.0**0.5,
    resolution: float = 2.0 ** (1.0 / 16.0),
    verify: bool = True,
    verify_rounds: int = 64,
) -> StepSearch:
    """Best constant step on a log grid, per batch size (and momentum), exactly.

    For each ``(B, beta)``: the coarse log grid ``alpha_top * coarse_ratio^{-k}``, ``k = 1 ..
    coarse_points`` (``alpha_top`` from :func:`nqm_largest_step`; larger steps never reach
    the target), scanned downward until two points past its minimum; then two
    parabolic-interpolation steps in ``log alpha`` through the best three points; then a local
    check on the grid ``best * resolution^{+-1}``, moving while a neighbour is better. The
    answer is a local minimum at resolution ``resolution`` (steps-to-target is unimodal in
    ``log alpha`` on the NQM in every case checked; the coarse scan guards against a far
    minimum). The selected configurations are re-solved with ``verify`` (earliest crossing
    certified for heavy ball, see :func:`steps_to_target`, within ``verify_rounds`` rounds;
    ``StepSearch.verified`` says which were). The search itself ranks the step sizes by the
    root finder's crossings.

    Returns
    -------
    StepSearch

    Source: Zhang et al. 2019 (best constant learning rate per batch size on a log grid);
    THEORY.md 4.4-4.5 for the steps.
    """
    h = check_vector("h", h, low=0.0, low_inclusive=False, allow_scalar=False)
    Bv = np.asarray(B, dtype=float)
    if Bv.ndim != 1 or Bv.size == 0 or np.isnan(Bv).any() or Bv.min() <= 0:
        raise ValueError(f"B={B!r} is not allowed: expected a 1-D array of batch sizes > 0 "
                         "(inf allowed: exact gradients)")
    bv = check_vector("beta", beta, low=0.0, allow_scalar=False)
    coarse_points = check_int("coarse_points", coarse_points, 2)
    coarse_ratio = check_range("coarse_ratio", coarse_ratio, 1.0, None, low_inclusive=False)
    resolution = check_range("resolution", resolution, 1.0, coarse_ratio, low_inclusive=False)
    BB, bb = np.meshgrid(Bv, bv, indexing="ij")  # (nB, nbeta)
    top = nqm_largest_step(h, BB, beta=bb, p=p, target=target)

    def solve(alpha: np.ndarray, guess: np.ndarray | None) -> np.ndarray:
        return nqm_steps_to_target(h, BB, alpha, beta=bb, p=p, m0=m0, target=target,
                                   guess=guess).steps

    # coarse scan downward from alpha_top; stop once every row is two points past its minimum
    # (steps-to-target grows again as alpha shrinks)
    K = coarse_points
    coarse = np.full(BB.shape + (K,), np.inf)
    for k in range(K):
        prev = coarse[..., k - 1] if k else None
        coarse[..., k] = solve(top * coarse_ratio ** (-(k + 1)), prev)
        if k >= 2:
            jmin = np.argmin(coarse[..., : k + 1], axis=-1)
            if np.all(np.isfinite(coarse[..., k]) & (jmin <= k - 2)):
                break
    j = np.argmin(coarse, axis=-1)
    at_edge = j == K - 1
    best_f = np.take_along_axis(coarse, j[..., None], -1)[..., 0]
    c = math.log(coarse_ratio)
    u_top = np.log(top)
    best_u = u_top - (j + 1) * c
    # refinement in u = log alpha: two parabolic-interpolation steps through the best three
    # points, then the neighbours best_u +- log(resolution) until neither improves (so the
    # answer is the minimum over a log grid of ratio `resolution` around it)
    pts_u = [best_u - c, best_u, np.minimum(best_u + c, u_top)]
    pts_f = [np.take_along_axis(coarse, np.clip(j + 1, 0, K - 1)[..., None], -1)[..., 0],
             best_f, np.where(j > 0, np.take_along_axis(
                 coarse, np.clip(j - 1, 0, K - 1)[..., None], -1)[..., 0], np.inf)]
    for _ in range(2):
        u0, u1, u2 = pts_u
        f0, f1, f2 = pts_f
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            num = (u1 - u0) ** 2 * (f1 - f2) - (u1 - u2) ** 2 * (f1 - f0)
            den = (u1 - u0) * (f1 - f2) - (u1 - u2) * (f1 - f0)
            uv = u1 - 0.5 * num / den
        ok = np.isfinite(uv) & np.isfinite(f0) & np.isfinite(f2) & (den != 0)
        uv = np.where(ok, np.clip(uv, u0, u2), 0.5 * (u1 + u0))
        uv = np.minimum(uv, u_top - 1e-12)
        fv = solve(np.exp(uv), best_f)
        better = fv < best_f
        # keep the bracket around the best point
        cand_u = np.stack([u0, u1, u2, uv])
        cand_f = np.stack([f0, f1, f2, fv])
        order = np.argsort(cand_u, axis=0)
        su = np.take_along_axis(cand_u, order, 0)
        sf = np.take_along_axis(cand_f, order, 0)
        kb = np.argmin(sf, axis=0)
        kb = np.clip(kb, 1, 2)
        pts_u = [np.take_along_axis(su, (kb + o)[None], 0)[0] for o in (-1, 0, 1)]
        pts_f = [np.take_along_axis(sf, (kb + o)[None], 0)[0] for o in (-1, 0, 1)]
        best_u = np.where(better, uv, best_u)
        best_f = np.where(better, fv, best_f)
    r = math.log(resolution)
    for _ in range(64):  # local check on the fine grid
        up = np.minimum(best_u + r, u_top - 1e-12)
        f_up = solve(np.exp(up), best_f)
        f_dn = solve(np.exp(best_u - r), best_f)
        move_up = (f_up < best_f) & (f_up <= f_dn)
        move_dn = (f_dn < best_f) & ~move_up
        if not (move_up.any() or move_dn.any()):
            break
        best_u = np.where(move_up, up, np.where(move_dn, best_u - r, best_u))
        best_f = np.where(move_up, f_up, np.where(move_dn, f_dn, best_f))
    alpha_best = np.exp(best_u)
    final = nqm_steps_to_target(h, BB, alpha_best, beta=bb, p=p, m0=m0, target=target,
                                verify=verify, verify_rounds=verify_rounds, guess=best_f)
    return StepSearch(B=Bv, beta=bv, p=float(p), alpha=alpha_best, steps=final.steps,
                      alpha_top=top, at_edge=at_edge, verified=final.verified,
                      resolution=float(resolution))


# --------------------------------------------------------------------------- the hyperbola
@dataclass(frozen=True)
class HyperbolaFit:
    """``S(B) = S_min + E_min / B`` (i.e. ``(S/S_min - 1)(E/E_min - 1) = 1``) fitted to data.

    ``departure`` holds ``S_fit(B)/S(B) - 1`` per point; ``max_departure`` its largest
    absolute value (0 if the data lie on a hyperbola).
    """

    S_min: float
    E_min: float
    B_crit: float
    departure: np.ndarray
    max_departure: float


def fit_steps_examples(B: np.ndarray, S: np.ndarray) -> HyperbolaFit:
    """Least-squares fit of the steps--examples hyperbola of McCandlish et al. 2018.

    ``(S/S_min - 1)(E/E_min - 1) = 1`` with ``E = B S`` is ``S = S_min + E_min/B``: linear in
    ``(S_min, E_min)``. Fitted on relative errors, ``min sum_k ((S_min + E_min/B_k)/S_k -
    1)^2`` (each batch size weighs the same on a log plot), using the finite points.
    ``B_crit = E_min / S_min`` (THEORY.md 4.8).

    Raises
    ------
    ValueError
        Fewer than two finite positive points, or a non-positive fitted parameter.
    """
    B = np.asarray(B, float)
    S = np.asarray(S, float)
    ok = np.isfinite(B) & np.isfinite(S) & (B > 0) & (S > 0)
    if ok.sum() < 2:
        raise ValueError("fit_steps_examples needs at least 2 finite positive (B, S) points")
    X = np.column_stack([1.0 / S[ok], 1.0 / (B[ok] * S[ok])])
    coef, *_ = np.linalg.lstsq(X, np.ones(int(ok.sum())), rcond=None)
    s_min, e_min = float(coef[0]), float(coef[1])
    if not (s_min > 0 and e_min > 0):
        raise ValueError(f"hyperbola fit gave S_min={fmt(s_min)}, E_min={fmt(e_min)}: "
                         "expected both > 0 (the data do not show both regimes)")
    dep = np.full(B.shape, np.nan)
    dep[ok] = (s_min + e_min / B[ok]) / S[ok] - 1.0
    return HyperbolaFit(s_min, e_min, e_min / s_min, dep, float(np.nanmax(np.abs(dep))))


# --------------------------------------------------------------------------- noise scales
def diagonal_noise_scales(
    hess_diag: np.ndarray, sigma_diag: np.ndarray, grad: np.ndarray
) -> dict[str, np.ndarray]:
    """``B_noise``, ``B_simple``, ``eps_max`` for diagonal ``H`` and ``Sigma``, many points.

    ``B_noise = tr(H Sigma) / G^T H G``, ``B_simple = tr(Sigma) / |G|^2``, ``eps_max =
    |G|^2 / G^T H G`` (THEORY.md 4.8; McCandlish et al. 2018), with ``H = diag(hess_diag)``,
    ``Sigma = diag(sigma_diag)`` (per-example covariance) and gradients ``grad`` shaped
    ``(..., d)``; O(d) per point (:func:`theory.noise_scale` gives the same numbers for one
    point with dense matrices). For the NQM ``Sigma = H``: ``B_noise = sum h_i^2 / sum h_i^3
    x_i^2``. Returns arrays of the leading shape of ``grad`` (NaN where ``G^T H G = 0``).
    """
    hd = check_vector("hess_diag", hess_diag, low=0.0, allow_scalar=False)
    sd = check_vector("sigma_diag", sigma_diag, low=0.0, allow_scalar=False)
    G = np.asarray(grad, dtype=float)
    if G.shape[-1:] != hd.shape or sd.shape != hd.shape:
        raise ValueError(f"grad {G.shape}, hess_diag {hd.shape}, sigma_diag {sd.shape}: the "
                         "last axes must all have length d")
    g2 = np.sum(G * G, axis=-1)
    ghg = np.sum(hd * G * G, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        b_noise = np.where(ghg > 0, float(np.sum(hd * sd)) / ghg, np.nan)
        b_simple = np.where(g2 > 0, float(np.sum(sd)) / g2, np.nan)
        eps_max = np.where(ghg > 0, g2 / ghg, np.nan)
    return {"B_noise": b_noise, "B_simple": b_simple, "eps_max": eps_max,
            "grad_norm2": g2, "gHg": ghg}
