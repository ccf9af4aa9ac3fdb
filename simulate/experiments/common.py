"""Small helpers shared by the experiment recipes: table manipulation and common parameters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..problems import QuadraticProblem
from .base import Param

__all__ = [
    "PL_QUADRATIC_CONDITION",
    "noisy_quadratic_params",
    "noisy_quadratic_start",
    "series",
    "sgd_run_params",
    "steps_to_eps",
    "tail",
]


def series(curves: pd.DataFrame, config: str, quantity: str, source: str = "measured",
           *, keep_underflow: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, value, stderr) of one curve, sorted by step.

    Rows flagged ``underflow`` (below what the dtype resolves, see the runner) are dropped
    unless ``keep_underflow``: they are not measurements of the quantity, so no verdict may
    compare them with theory.
    """
    sel = curves[(curves["config"] == config) & (curves["quantity"] == quantity)
                 & (curves["source"] == source)].sort_values("step")
    if not keep_underflow and "underflow" in sel:
        sel = sel[~sel["underflow"].fillna(False).astype(bool)]
    stderr = sel["stderr"].to_numpy(float) if "stderr" in sel else np.zeros(len(sel))
    return sel["step"].to_numpy(), sel["value"].to_numpy(float), stderr


def tail(steps: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """Boolean mask of the recorded steps in the last ``fraction`` of the run."""
    steps = np.asarray(steps)
    return steps >= (1 - fraction) * steps.max()


def steps_to_eps(steps: np.ndarray, values: np.ndarray, eps: float) -> float:
    """First step at which the curve reaches ``eps``, interpolating log(value) linearly.

    Between two recorded steps the error of a linearly converging method is log-linear, so
    the interpolation is exact up to the curve's curvature in the log domain. NaN if never.
    """
    steps = np.asarray(steps, float)
    values = np.asarray(values, float)
    hit = np.flatnonzero(values <= eps)
    if hit.size == 0:
        return math.nan
    k = hit[0]
    if k == 0:
        return float(steps[0])
    t0, t1 = steps[k - 1], steps[k]
    v0, v1 = values[k - 1], values[k]
    if not (v0 > 0 and v1 > 0):
        return float(t1)
    frac = (math.log(v0) - math.log(eps)) / (math.log(v0) - math.log(v1))
    return float(t0 + frac * (t1 - t0))


#: the condition of the SGD bounds on a noisy diagonal quadratic (sgd-noise-floor,
#: sgd-decreasing-step)
PL_QUADRATIC_CONDITION = "f L-smooth and μ-PL (here a quadratic with eigenvalues in [μ, L])"


def noisy_quadratic_params(d: tuple[int, int], kappa: float) -> tuple[Param, ...]:
    """The ``d``, ``L``, ``kappa`` and ``sigma2`` parameters of an SGD experiment on a noisy
    diagonal quadratic.

    Parameters
    ----------
    d : (int, int)
        Quick and full values of the dimension.
    kappa : float
        Condition number ``κ = L/μ`` (the same at both sizes).

    Returns
    -------
    tuple of Param
        ``d``, ``L`` (1.0), ``kappa`` and ``sigma2`` (1.0), in that order.
    """
    return (
        Param("d", int, "dimension", d[0], d[1], low=1),
        Param("L", float, "smoothness L", 1.0, 1.0, low=0, open_low=True),
        Param("kappa", float, "condition number κ = L/μ", kappa, kappa, low=1),
        Param("sigma2", float, "gradient-noise variance σ² (per sample)", 1.0, 1.0, low=0,
              open_low=True),
    )


def sgd_run_params(steps: tuple[int, int], replicates: tuple[int, int],
                   record_points: tuple[int, int],
                   record_doc: str = "recorded steps (log-spaced)") -> tuple[Param, ...]:
    """The ``e0``, ``steps``, ``replicates`` and ``record_points`` parameters of an SGD
    experiment started at ``w0 = w* + e0·1``.

    Parameters
    ----------
    steps, replicates, record_points : (int, int)
        Quick and full values of the number of steps T, of replicates R and of recorded
        steps.
    record_doc : str, optional
        Description of ``record_points`` (how the recorded steps are spaced).

    Returns
    -------
    tuple of Param
        ``e0`` (1.0), ``steps``, ``replicates`` and ``record_points``, in that order.
    """
    return (
        Param("e0", float, "initial error per coordinate (w0 = w* + e0·1)", 1.0, 1.0),
        Param("steps", int, "steps T", steps[0], steps[1], low=1),
        Param("replicates", int, "replicates R", replicates[0], replicates[1], low=2),
        Param("record_points", int, record_doc, record_points[0], record_points[1], low=2),
    )


def noisy_quadratic_start(d: int, L: float, mu: float, e0: float
                          ) -> tuple[QuadraticProblem, np.ndarray, np.ndarray, np.ndarray, float]:
    """The diagonal quadratic and the deterministic start ``w0 = w* + e0·1`` of an SGD
    experiment on a noisy quadratic.

    Parameters
    ----------
    d : int
        Dimension.
    L, mu : float
        Largest and smallest eigenvalue (log-uniform spectrum in between).
    e0 : float
        Initial error per coordinate.

    Returns
    -------
    tuple
        ``(problem, lam, e0, w0, delta0)``: the :class:`~simulate.problems.QuadraticProblem`,
        its eigenvalues, the initial error vector (so ``m_{0,i} = e0_i²``), the start and
        ``Δ₀ = f(w0) − f* = ½ Σ λ_i e0_i²``.
    """
    problem = QuadraticProblem(dim=d, L=L, mu=mu, spectrum="log-uniform")
    lam = problem.eigenvalues
    e0_vec = np.full(d, e0)
    w0 = problem.w_star + e0_vec
    with np.errstate(over="ignore"):
        delta0 = check_initial_gap(e0, float(0.5 * np.sum(lam * e0_vec**2)))
    return problem, lam, e0_vec, w0, delta0


def check_initial_gap(e0: float, gap: float) -> float:
    """``gap`` = f(w0) − f* for the start w0 = w* + e0·1, or a one-line ``ValueError`` naming
    ``e0`` when it overflows float64 (every curve of such a run would be inf from step 0)."""
    if not math.isfinite(gap):
        raise ValueError(f"e0={e0!r} is out of range: the initial gap f(w0) − f* overflows "
                         "float64; allowed an e0 whose gap is finite")
    return gap
