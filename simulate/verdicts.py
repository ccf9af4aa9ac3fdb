"""Verdicts: a comparison of measurement with theory that yields a number and a status.

Every verdict is a row ``experiment, check, config, measured, predicted, ratio, tolerance,
status, detail`` with status ∈ {pass, fail, n/a}. A verdict whose theoretical conditions do not
hold (or whose configuration diverged) is "n/a" with the reason in ``detail`` — never "pass".

Statistical margins
-------------------
Measured curves are means over R independent replicates; their standard error is the sample
standard deviation over √R. A one-sided check at K recorded steps uses the Bonferroni-corrected
normal quantile ``z = Φ⁻¹(1 − δ/K)`` with a family-wise false-alarm probability δ = 1e-6 per
verdict, so a catalogue of a few hundred verdicts checked for 20 seeds fails by chance with
probability < 1e-2 · (the normal approximation's error). For means of R ≥ 64 replicates of the
chi-square-like quantities tracked here the central limit approximation is adequate at this
level; experiments document R. A relative allowance ``rtol`` absorbs floating-point rounding
in deterministic (R = 1, stderr = 0) comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

__all__ = [
    "FAMILY_DELTA",
    "Verdict",
    "bonferroni_z",
    "floor_verdict",
    "holds_verdict",
    "matches_verdict",
    "measured_dtype",
    "rounding_rtol",
    "not_applicable",
    "pooled_stderr",
    "rate_verdict",
    "ratio_verdict",
    "scaling_verdict",
    "slope_tolerance",
    "fit_loglog_slope",
    "fit_log_rate",
]

FAMILY_DELTA = 1e-6
STATUSES = ("pass", "fail", "n/a")


@dataclass(frozen=True)
class Verdict:
    """One row of verdicts.csv."""

    experiment: str
    check: str
    config: str
    measured: float
    predicted: float
    ratio: float
    tolerance: float
    status: str
    detail: str

    def as_row(self) -> dict:
        return asdict(self)


#: the floating type the compared measurements were computed in (set by run_experiment)
_MEASURED_DTYPE: ContextVar[str] = ContextVar("measured_dtype", default="float64")


@contextmanager
def measured_dtype(dtype: str) -> Iterator[None]:
    """Declare the dtype of the measurements the verdicts inside the block compare.

    The rounding allowance of :func:`holds_verdict` and :func:`matches_verdict` is then at
    least 1000 ulps of that dtype (``rounding_rtol``), and comparisons without any sampling
    noise (every standard error 0: deterministic runs), which check agreement to rounding
    level, are "n/a" below float64 — a float32 run cannot show agreement to 1e-9.
    """
    token = _MEASURED_DTYPE.set(str(dtype))
    try:
        yield
    finally:
        _MEASURED_DTYPE.reset(token)


def rounding_rtol(rtol: float) -> float:
    """``rtol`` raised to at least 1000 ulps of the measured dtype (no change in float64)."""
    return max(float(rtol), 1e3 * float(np.finfo(_MEASURED_DTYPE.get()).eps))


def _deterministic_below_float64(experiment: str, check: str, config: str,
                                 stderr: np.ndarray) -> Verdict | None:
    dtype = _MEASURED_DTYPE.get()
    if dtype != "float64" and not np.any(np.nan_to_num(stderr, nan=0.0) > 0):
        return not_applicable(experiment, check, config, "a deterministic comparison to "
                              f"rounding level needs float64; this run is {dtype}")
    return None


def bonferroni_z(n_tests: int, delta: float = FAMILY_DELTA) -> float:
    """One-sided normal quantile with a Bonferroni allowance for ``n_tests`` comparisons."""
    return float(stats.norm.isf(delta / max(int(n_tests), 1)))


def not_applicable(experiment: str, check: str, config: str, reason: str,
                   predicted: float = math.nan) -> Verdict:
    """An "n/a" verdict; ``reason`` says which condition fails (or that the run diverged)."""
    return Verdict(experiment, check, config, math.nan, predicted, math.nan, math.nan, "n/a",
                   f"not applicable: {reason}")


def holds_verdict(
    experiment: str,
    config: str,
    steps: np.ndarray,
    mean: np.ndarray,
    stderr: np.ndarray,
    bound: np.ndarray,
    *,
    check: str = "holds",
    rtol: float = 1e-9,
    delta: float = FAMILY_DELTA,
) -> Verdict:
    """Upper confidence limit of the measured mean ≤ bound at every step where both exist.

    The UCL is ``mean + z·stderr`` with ``z`` from :func:`bonferroni_z` over the compared
    steps, allowing ``rtol``·bound for rounding. ``measured`` reports the largest
    measured/bound ratio (by the mean), ``ratio`` the same, ``predicted`` 1.
    """
    steps, mean, stderr, bound = map(np.asarray, (steps, mean, stderr, bound))
    # an infinite standard error (its squares overflowed float64) says nothing about the step
    ok = np.isfinite(mean) & np.isfinite(bound) & (bound > 0) & ~np.isinf(stderr)
    if not ok.any():
        return not_applicable(experiment, check, config, "no step where bound and measurement "
                              "(with a finite standard error) are both available")
    na = _deterministic_below_float64(experiment, check, config, stderr[ok])
    if na is not None:
        return na
    rtol = rounding_rtol(rtol)
    z = bonferroni_z(int(ok.sum()), delta)
    se = np.nan_to_num(stderr[ok], nan=0.0)
    ucl = mean[ok] + z * se
    worst = np.argmax(mean[ok] / bound[ok])
    ratio = float(mean[ok][worst] / bound[ok][worst])
    excess = ucl - bound[ok] * (1 + rtol)
    passed = bool(np.all(excess <= 0))
    if passed:
        detail = (f"UCL (z={z:.2f}) below the bound at all {int(ok.sum())} steps; largest "
                  f"measured/bound = {ratio:.3g} at t={int(steps[ok][worst])}")
    else:
        bad = int(np.argmax(excess))
        detail = (f"UCL above the bound at t={int(steps[ok][bad])}: "
                  f"{ucl[bad]:.4g} > {bound[ok][bad]:.4g}")
    return Verdict(experiment, check, config, ratio, 1.0, ratio, rtol,
                   "pass" if passed else "fail", detail)


def matches_verdict(
    experiment: str,
    config: str,
    steps: np.ndarray,
    mean: np.ndarray,
    stderr: np.ndarray,
    exact: np.ndarray,
    *,
    check: str = "matches exact",
    rtol: float = 1e-9,
    delta: float = FAMILY_DELTA,
    gaussian_form_replicates: int | None = None,
) -> Verdict:
    """Measured mean equals the exact expectation within its confidence interval at every step.

    Two-sided: ``|mean − exact| ≤ z·stderr + rtol·|exact|`` with ``z = Φ⁻¹(1 − δ/(2K))`` over
    the K compared steps. ``measured`` reports the largest |mean/exact − 1|; ``ratio`` the
    largest deviation in units of the allowed margin (≤ 1 passes).

    ``gaussian_form_replicates`` = R declares each measured value a mean of R replicates of
    a nonnegative quadratic form of a Gaussian vector (f − f*, ‖w − w*‖² or ‖∇f‖² of a method
    that is linear in its iterates — GD, SGD, heavy ball, Nesterov, fixed or diagonal
    preconditioning — on a quadratic with Gaussian gradient noise). Such a mean is a
    (non-central) generalized χ² variable whose right tail is far heavier than the normal
    approximation's at this confidence, and whose sample standard error is least reliable
    where it matters (measured: the batch-size experiment's R = 64 means fell more than 5.9
    sample standard errors below the exact curve for about 1 % of seeds and configurations,
    where δ promises < 1e-6). The margins are then the exponential tail bounds of Laurent &
    Massart (2000, Lemma 1) for weighted χ² sums, in Birgé's (2001, Lemma 8.1) non-central
    form: with x = ln(2K/δ), Var the true variance of the mean and c_max its largest weight,
    P(mean − exact ≥ √(2x·Var) + 2x·c_max) ≤ e^(−x) and P(exact − mean ≥ √(2x·Var)) ≤ e^(−x);
    c_max ≤ √(Var·R/2)/R (a weight's square is at most half the variance of one replicate),
    so with se for √Var: upper margin √(2x)·se + √2·x·se/√R, lower √(2x)·se (plus the rtol
    term). The bound needs the true standard error; se is :func:`pooled_stderr`'s estimate
    of it, not the step's own sample standard error, which is too small exactly when a
    skewed mean is low.
    """
    steps, mean, stderr, exact = map(np.asarray, (steps, mean, stderr, exact))
    ok = np.isfinite(mean) & np.isfinite(exact) & ~np.isinf(stderr)  # as in holds_verdict
    if not ok.any():
        return not_applicable(experiment, check, config, "no step with both a measurement "
                              "(with a finite standard error) and an exact value")
    na = _deterministic_below_float64(experiment, check, config, stderr[ok])
    if na is not None:
        return na
    rtol = rounding_rtol(rtol)
    z = bonferroni_z(2 * int(ok.sum()), delta)
    se = np.nan_to_num(stderr[ok], nan=0.0)
    if gaussian_form_replicates is None:
        margin = z * se + rtol * np.abs(exact[ok])
        how = f"z={z:.2f}"
    else:
        r = int(gaussian_form_replicates)
        x = math.log(2 * int(ok.sum()) / delta)
        lower, upper = math.sqrt(2 * x), math.sqrt(2 * x) + math.sqrt(2.0) * x / math.sqrt(r)
        se = pooled_stderr(se, mean[ok], exact[ok])
        margin = (np.where(mean[ok] > exact[ok], upper, lower) * se
                  + rtol * np.abs(exact[ok]))
        how = (f"generalized-χ² margins {upper:.2f}/{lower:.2f} pooled se above/below, "
               f"R={r}")
    dev = np.abs(mean[ok] - exact[ok])
    with np.errstate(divide="ignore", invalid="ignore"):
        in_margins = np.where(margin > 0, dev / margin, np.where(dev > 0, np.inf, 0.0))
        rel = np.where(exact[ok] != 0, dev / np.abs(exact[ok]), np.where(dev > 0, np.inf, 0.0))
    worst = int(np.argmax(in_margins))
    passed = bool(np.all(dev <= margin))
    detail = (f"largest deviation {in_margins[worst]:.3g} margins ({how}, rtol={rtol:g}) at "
              f"t={int(steps[ok][worst])}; largest relative deviation {np.max(rel):.3g} over "
              f"{int(ok.sum())} steps")
    return Verdict(experiment, check, config, float(np.max(rel)), 0.0,
                   float(in_margins[worst]), rtol, "pass" if passed else "fail", detail)


#: compared steps whose relative standard errors :func:`pooled_stderr` pools (centred)
POOL_WINDOW = 9


def pooled_stderr(stderr: np.ndarray, mean: np.ndarray, exact: np.ndarray,
                  window: int = POOL_WINDOW) -> np.ndarray:
    """The standard error of a mean of skewed replicates, robust to the sample's own luck.

    A mean of R replicates of a right-skewed quantity that happens to lack its large values
    is low *and* has a small sample standard deviation: the two errors compound, and the
    t-statistic of such a mean has a heavy left tail (measured: records of the batch-size
    experiment's R = 64 means fell 8 sample standard errors below the exact expectation).
    Under the hypothesis that the mean equals ``exact``, the relative standard error
    se/mean changes slowly from one recorded step to the next, so the median of the
    ``window`` nearest compared steps' relative errors, times ``exact``, estimates the
    standard error at each step far more stably. Returns the larger of that and the step's
    own ``stderr`` (never smaller than the sample's). Arrays are the compared steps, in order.
    """
    stderr, mean, exact = (np.asarray(a, dtype=float) for a in (stderr, mean, exact))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(np.abs(mean) > 0, stderr / np.abs(mean), 0.0)
    half = min(window // 2, max(rel.size - 1, 0))
    padded = np.pad(rel, half, mode="edge")
    local = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1)
    return np.maximum(stderr, np.abs(exact) * local)


def fit_log_rate(steps: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Least-squares fit of log(value) = a + t·log(rate); returns (rate, stderr of log rate)."""
    steps, values = np.asarray(steps, float), np.asarray(values, float)
    ok = np.isfinite(values) & (values > 0)
    if ok.sum() < 3:
        return math.nan, math.nan
    res = stats.linregress(steps[ok], np.log(values[ok]))
    return float(np.exp(res.slope)), float(res.stderr)


def rate_verdict(
    experiment: str,
    config: str,
    steps: np.ndarray,
    values: np.ndarray,
    predicted_rate: float,
    *,
    tolerance: float,
    check: str = "rate",
) -> Verdict:
    """Fitted per-step rate (over the given window) against the predicted one.

    Compared on the log scale: ``ratio = log(fitted)/log(predicted)`` (1 = equal decay
    speed); passes when ``|ratio − 1| ≤ tolerance``. The caller chooses the asymptotic window
    and documents the tolerance.
    """
    if not (0 < predicted_rate < 1):
        return not_applicable(experiment, check, config,
                              f"predicted rate {predicted_rate:.6g} is not in (0, 1)")
    fitted, se = fit_log_rate(steps, values)
    if not np.isfinite(fitted):
        return not_applicable(experiment, check, config, "fewer than 3 positive points to fit")
    ratio = math.log(fitted) / math.log(predicted_rate)
    passed = abs(ratio - 1) <= tolerance
    detail = (f"fitted rate {fitted:.6f}/step vs predicted {predicted_rate:.6f} over "
              f"t ∈ [{int(np.min(steps))}, {int(np.max(steps))}]; log-rate ratio {ratio:.4f}")
    return Verdict(experiment, check, config, fitted, predicted_rate, ratio, tolerance,
                   "pass" if passed else "fail", detail)


def floor_verdict(
    experiment: str,
    config: str,
    tail_means: np.ndarray,
    tail_stderrs: np.ndarray,
    exact: float,
    bound: float,
    *,
    check: str = "floor",
    rtol: float = 0.0,
    delta: float = FAMILY_DELTA,
) -> Verdict:
    """Measured plateau (mean over tail steps) equals the exact stationary value; ≤ the bound.

    The plateau's standard error is bounded by the largest per-step standard error in the tail
    (the variance of an average of correlated estimates never exceeds the largest variance), so
    the two-sided check ``|plateau − exact| ≤ z·se + rtol·exact`` with ``z = Φ⁻¹(1 − δ/2)`` is
    conservative. ``rtol`` allows for a documented residual transient. ``ratio`` reports the
    bound's looseness factor bound/exact.
    """
    tail_means = np.asarray(tail_means, float)
    if tail_means.size == 0 or not np.all(np.isfinite(tail_means)) or not np.isfinite(exact):
        return not_applicable(experiment, check, config, "no settled tail step with a finite "
                              "measurement, or no finite exact value", predicted=exact)
    if np.any(np.isinf(np.asarray(tail_stderrs, float))):
        return not_applicable(experiment, check, config, "a tail step's standard error "
                              "overflows float64", predicted=exact)
    plateau = float(np.mean(tail_means))
    se = float(np.max(np.nan_to_num(np.asarray(tail_stderrs, float), nan=0.0)))
    z = bonferroni_z(2, delta)
    looseness = bound / exact if exact > 0 else math.nan
    within = abs(plateau - exact) <= z * se + rtol * exact
    below = (not np.isfinite(bound)) or plateau <= bound
    passed = within and below
    detail = (f"plateau {plateau:.4g} ± {se:.2g} (z={z:.2f}) vs exact {exact:.4g} "
              f"(rel. diff {(plateau - exact) / exact:+.2%}); bound {bound:.4g} = "
              f"{looseness:.3g}× exact")
    return Verdict(experiment, check, config, plateau, exact, looseness, rtol,
                   "pass" if passed else "fail", detail)


def fit_loglog_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares slope of log y on log x: (slope, stderr, intercept)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        return math.nan, math.nan, math.nan
    if ok.sum() == 2:
        lx, ly = np.log(x[ok]), np.log(y[ok])
        slope = (ly[1] - ly[0]) / (lx[1] - lx[0])
        return float(slope), 0.0, float(ly[0] - slope * lx[0])
    res = stats.linregress(np.log(x[ok]), np.log(y[ok]))
    return float(res.slope), float(res.stderr), float(res.intercept)


def scaling_verdict(
    experiment: str,
    config: str,
    x: np.ndarray,
    y: np.ndarray,
    predicted_slope: float,
    *,
    tolerance: float,
    check: str = "scaling",
) -> Verdict:
    """Fitted log–log exponent against the predicted one: pass if within ``tolerance``."""
    slope, se, _ = fit_loglog_slope(x, y)
    if not np.isfinite(slope):
        return not_applicable(experiment, check, config, "fewer than 2 positive points to fit")
    passed = abs(slope - predicted_slope) <= tolerance
    n_points = int(np.sum(np.asarray(y, float) > 0))
    detail = (f"fitted exponent {slope:.3f} ± {se:.3f} vs predicted {predicted_slope:.3f} "
              f"(tolerance {tolerance:g}) over {n_points} points")
    ratio = slope / predicted_slope if predicted_slope else math.nan
    return Verdict(experiment, check, config, slope, predicted_slope, ratio, tolerance,
                   "pass" if passed else "fail", detail)


def slope_tolerance(x: np.ndarray, mean: np.ndarray, stderr: np.ndarray,
                    delta: float = FAMILY_DELTA) -> float:
    """Largest error of a fitted log–log slope that the sampling error of the means can cause.

    Use with :func:`scaling_verdict` when the predicted slope is the *same* least-squares fit
    applied to the exact expectations ``E_k`` at the same ``x_k`` (so there is no model
    error and the whole difference is sampling error).

    Margin logic. The least-squares slope is linear in ``log y``:
    ``slope(y) = Σ_k c_k log y_k`` with ``c_k = (u_k − ū)/Σ_j (u_j − ū)²``, ``u = log x``.
    With probability ≥ 1 − δ every mean lies within ``z·se_k`` of its expectation
    (``z = Φ⁻¹(1 − δ/(2K))``: Bonferroni over the K points, two-sided), and then, with
    ``ρ_k = z·se_k/mean_k < 1``, ``log E_k ∈ [log mean_k + log(1 − ρ_k),
    log mean_k + log(1 + ρ_k)]``, so ``|log mean_k − log E_k| ≤ −log(1 − ρ_k)`` and

    ``|slope(mean) − slope(E)| ≤ Σ_k |c_k| · (−log(1 − ρ_k))``

    whatever the correlation between the points (they may share replicates). This is the
    returned tolerance: conservative, and the whole allowance.

    Parameters
    ----------
    x : array (K,)
        Abscissae, > 0.
    mean, stderr : array (K,)
        Measured means (> 0) and their standard errors.
    delta
        Family-wise false-alarm probability (default the verdicts' δ).

    Returns
    -------
    float
        The tolerance on the slope.

    Notes
    -----
    ``ρ_k`` is capped at 0.999 (a per-point allowance of at most ``−log(0.001) ≈ 6.9``) so
    the result stays finite; where a point has ``z·se_k ≥ mean_k`` its expectation is not
    bounded away from 0, the interval is unbounded and the returned value is then *not* a
    (1 − δ) bound. Callers should use enough replicates that ``z·se_k < mean_k`` everywhere.
    """
    u = np.log(np.asarray(x, float))
    c = (u - u.mean()) / np.sum((u - u.mean()) ** 2)
    z = bonferroni_z(2 * u.size, delta)
    rel = np.minimum(z * np.asarray(stderr, float) / np.asarray(mean, float), 0.999)
    return float(np.sum(np.abs(c) * -np.log1p(-rel)))


def ratio_verdict(experiment: str, config: str, check: str, num: tuple[float, float],
                  den: tuple[float, float], predicted: float,
                  delta: float = FAMILY_DELTA) -> Verdict:
    """Measured ratio of two independent plateaus (or means) against its exact value.

    Parameters
    ----------
    experiment, config, check
        Verdict labels.
    num, den
        ``(value, bound on its standard error)`` of the numerator and of the denominator,
        estimated from independent runs; values > 0.
    predicted
        The exact ratio of the expectations, > 0.
    delta
        Family-wise false-alarm probability (default the verdicts' δ).

    Returns
    -------
    Verdict
        ``measured`` = n/d, ``predicted``, ``ratio`` = measured/predicted, ``tolerance`` = the
        interval's half-width relative to the prediction.

    Notes
    -----
    Margin logic: with probability ≥ 1 − δ both estimates lie within ``z·se`` of their
    expectations (Bonferroni over the two, two-sided: ``z = Φ⁻¹(1 − δ/4)``), and then the
    ratio of the expectations lies in
    ``[(n − z·se_n)/(d + z·se_d), (n + z·se_n)/(d − z·se_d)]`` (upper end ``+∞`` when
    ``d ≤ z·se_d``, i.e. the denominator is not bounded away from 0). The check passes when
    the predicted ratio lies in that interval, so a true prediction fails with probability
    ≤ δ (up to the normal approximation of each estimate). "n/a" when an input is not finite,
    a value or the prediction is not positive, or a standard error is negative.
    """
    (n, sn), (d, sd) = num, den
    vals = (n, sn, d, sd, predicted)
    if not all(np.isfinite(v) for v in vals) or n <= 0 or d <= 0 or predicted <= 0 \
            or sn < 0 or sd < 0:
        return not_applicable(experiment, check, config,
                              "ratio needs finite positive values, standard errors ≥ 0 and a "
                              f"positive prediction (got num={num}, den={den}, "
                              f"predicted={predicted})", predicted=predicted)
    z = bonferroni_z(4, delta)
    ratio = n / d
    lo = (n - z * sn) / (d + z * sd)
    hi = (n + z * sn) / (d - z * sd) if d > z * sd else np.inf
    passed = lo <= predicted <= hi
    detail = (f"measured ratio {ratio:.4g} (interval [{lo:.4g}, {hi:.4g}], z={z:.2f}) vs "
              f"exact {predicted:.4g}")
    return Verdict(experiment, check, config, ratio, predicted, ratio / predicted,
                   (hi - lo) / 2 / predicted, "pass" if passed else "fail", detail)
