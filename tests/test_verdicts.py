"""simulate.verdicts: every verdict passes when it should, fails when it should (a verdict
that cannot fail is a bug), and says "n/a" -- never "pass" -- when it cannot be decided.

Inputs are synthetic and deterministic (the statistical margins are exercised with numbers
placed a known number of standard errors from the truth), except for the coverage checks of
slope_tolerance and ratio_verdict, which draw Gaussian estimates with a fixed seed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from simulate.verdicts import (
    FAMILY_DELTA,
    Verdict,
    bonferroni_z,
    fit_log_rate,
    fit_loglog_slope,
    floor_verdict,
    holds_verdict,
    matches_verdict,
    not_applicable,
    pooled_stderr,
    rate_verdict,
    ratio_verdict,
    scaling_verdict,
    slope_tolerance,
)

STEPS = np.arange(0, 100, 10)
K = STEPS.size


def _is_na(v: Verdict) -> bool:
    return v.status == "n/a" and v.detail.startswith("not applicable:") and math.isnan(v.measured)


# --------------------------------------------------------------------------- margins


def test_bonferroni_z() -> None:
    assert bonferroni_z(1) == pytest.approx(stats.norm.isf(FAMILY_DELTA), rel=1e-12)
    assert bonferroni_z(40) == pytest.approx(stats.norm.isf(FAMILY_DELTA / 40), rel=1e-12)
    assert bonferroni_z(0) == bonferroni_z(1)  # no comparisons: treated as one
    assert bonferroni_z(10) < bonferroni_z(100) < bonferroni_z(1000)
    assert bonferroni_z(1, delta=0.05) == pytest.approx(1.6448536, abs=1e-6)


def test_not_applicable_is_never_a_pass() -> None:
    v = not_applicable("e", "holds", "c", "alpha > 1/L", predicted=0.5)
    assert _is_na(v) and "alpha > 1/L" in v.detail and v.predicted == 0.5
    assert set(v.as_row()) == {"experiment", "check", "config", "measured", "predicted",
                               "ratio", "tolerance", "status", "detail"}


# --------------------------------------------------------------------------- holds


def test_holds_pass_fail_and_na() -> None:
    bound = np.linspace(2.0, 1.0, K)
    se = np.full(K, 0.01)
    z = bonferroni_z(K)
    # upper confidence limit just below the bound everywhere: pass
    ok = holds_verdict("e", "c", STEPS, bound - (z + 0.1) * se, se, bound)
    assert ok.status == "pass" and ok.ratio < 1
    # mean below the bound at every step, but the UCL above it at one step: fail (the bound
    # is not shown to hold)
    mean = bound - (z + 0.1) * se
    mean[4] = bound[4] - (z - 0.1) * se[4]
    bad = holds_verdict("e", "c", STEPS, mean, se, bound)
    assert bad.status == "fail" and f"t={STEPS[4]}" in bad.detail
    # mean above the bound: fail
    assert holds_verdict("e", "c", STEPS, bound * 1.1, se, bound).status == "fail"
    # deterministic curves: only rtol (1e-9) of slack
    assert holds_verdict("e", "c", STEPS, bound * (1 + 1e-10), 0 * se, bound).status == "pass"
    assert holds_verdict("e", "c", STEPS, bound * (1 + 1e-8), 0 * se, bound).status == "fail"
    # NaN standard errors count as 0, not as "anything goes"
    assert holds_verdict("e", "c", STEPS, bound * 1.01, se * np.nan, bound).status == "fail"
    # no step where both exist: n/a
    assert _is_na(holds_verdict("e", "c", STEPS, bound, se, np.full(K, np.nan)))
    assert _is_na(holds_verdict("e", "c", STEPS, np.full(K, np.nan), se, bound))
    assert _is_na(holds_verdict("e", "c", STEPS, bound, se, np.zeros(K)))  # bound must be > 0
    # an infinite standard error (its squares overflowed) says nothing: the step is skipped,
    # neither a fail (UCL = inf) nor a pass; with every step so, n/a
    inf_se = se.copy()
    inf_se[4] = np.inf
    skipped = holds_verdict("e", "c", STEPS, bound - (z + 0.1) * se, inf_se, bound)
    assert skipped.status == "pass" and f"t={STEPS[4]}" not in skipped.detail
    assert holds_verdict("e", "c", STEPS, bound * 1.1, inf_se, bound).status == "fail"
    assert _is_na(holds_verdict("e", "c", STEPS, bound, np.full(K, np.inf), bound))
    assert _is_na(matches_verdict("e", "c", STEPS, bound, np.full(K, np.inf), bound))


# --------------------------------------------------------------------------- matches


def test_matches_generalized_chi2_margins_pass_fail_at_their_edges() -> None:
    # upper margin √(2x)·se + √2·x·se/√R, lower √(2x)·se, x = ln(2K/δ), se pooled
    exact = np.geomspace(1.0, 0.01, K)
    se = 0.01 * exact
    R = 64
    x = math.log(2 * K / FAMILY_DELTA)
    for sign, width in ((+1, math.sqrt(2 * x) + math.sqrt(2) * x / math.sqrt(R)),
                        (-1, math.sqrt(2 * x))):
        mean = exact * (1 + sign * 0.001)
        pooled = pooled_stderr(se, mean, exact)
        mean[7] = exact[7] + sign * (width - 0.05) * pooled[7]
        v = matches_verdict("e", "c", STEPS, mean, se, exact, gaussian_form_replicates=R)
        assert v.status == "pass" and v.ratio <= 1 and "generalized" in v.detail
        mean[7] = exact[7] + sign * (width + 0.05) * pooled[7]
        np.testing.assert_allclose(pooled_stderr(se, mean, exact)[7], pooled[7], rtol=1e-12)
        v = matches_verdict("e", "c", STEPS, mean, se, exact, gaussian_form_replicates=R)
        assert v.status == "fail" and v.ratio > 1 and f"t={STEPS[7]}" in v.detail


def test_pooled_stderr_replaces_a_deflated_step_by_its_neighbours() -> None:
    exact = np.full(20, 2.0)
    mean = np.full(20, 2.0)
    se = np.full(20, 0.2)  # relative error 0.1
    mean[9], se[9] = 1.2, 0.03  # a low mean with a deflated error (relative 0.025)
    pooled = pooled_stderr(se, mean, exact)
    assert pooled[9] == pytest.approx(0.1 * 2.0)  # the neighbours' relative error × exact
    assert np.all(pooled >= se)  # never below the sample's own
    np.testing.assert_allclose(np.delete(pooled, 9), 0.2)
    # one or two steps: no neighbours to pool, the sample's own error stands
    assert pooled_stderr(se[:1], mean[:1], exact[:1])[0] == pytest.approx(0.2)


def test_generalized_chi2_margins_cover_a_skewed_mean_where_the_normal_one_does_not() -> None:
    # The most skewed case the margins allow: one weight, a mean of R = 64 χ²₁ replicates
    # (the mean is χ²₆₄/64), at one step (K = 1) and δ = 0.01. Exact tail probabilities from
    # scipy, with the true standard error √(2/R): the bound keeps its promise, the normal
    # approximation's z = Φ⁻¹(1 − δ/2) does not on the right.
    R, delta = 64, 0.01
    se = math.sqrt(2.0 / R)
    x = math.log(2 / delta)
    upper = math.sqrt(2 * x) + math.sqrt(2) * x / math.sqrt(R)
    chi2 = stats.chi2(R)
    assert chi2.sf(R * (1 + upper * se)) + chi2.cdf(R * (1 - math.sqrt(2 * x) * se)) <= delta
    assert chi2.sf(R * (1 + bonferroni_z(2, delta) * se)) > delta / 2


def test_matches_with_pooled_errors_keeps_its_false_alarm_rate_on_skewed_means() -> None:
    # The verdict as the experiments use it, with sample standard errors: 400 simulated
    # curves of K = 150 independent records, each a mean of R = 64 χ²₁ replicates (the most
    # skewed generalized χ²), family δ = 0.1 so that the rate is measurable. A verdict that
    # keeps its promise fails at most ~δ of them: the count is ≤ Binomial(400, 0.1), whose
    # 1e-6 upper quantile bounds it for any seed. The normal margins on the sample errors
    # fail most curves (measured ~80 %; the assertion needs only > 25 %).
    R, K, trials, delta = 64, 150, 400, 0.1
    steps = np.arange(1, K + 1)
    exact = np.ones(K)
    rng = np.random.default_rng(20261123)
    pooled_fails = normal_fails = 0
    for _ in range(trials):
        reps = rng.chisquare(1, size=(K, R))
        mean, se = reps.mean(axis=1), reps.std(axis=1, ddof=1) / math.sqrt(R)
        pooled_fails += matches_verdict("e", "c", steps, mean, se, exact, delta=delta,
                                        gaussian_form_replicates=R).status == "fail"
        normal_fails += matches_verdict("e", "c", steps, mean, se, exact,
                                        delta=delta).status == "fail"
    assert pooled_fails <= stats.binom(trials, delta).isf(1e-6)
    assert normal_fails > 0.25 * trials


def test_matches_pass_fail_and_na() -> None:
    exact = np.geomspace(1.0, 0.01, K)
    se = 0.01 * exact
    z = bonferroni_z(2 * K)  # two-sided
    for sign in (+1, -1):
        ok = matches_verdict("e", "c", STEPS, exact + sign * (z - 0.05) * se, se, exact)
        assert ok.status == "pass" and ok.ratio <= 1
        mean = exact + sign * (z - 0.05) * se
        mean[7] = exact[7] + sign * (z + 0.05) * se[7]
        bad = matches_verdict("e", "c", STEPS, mean, se, exact)
        assert bad.status == "fail" and bad.ratio > 1 and f"t={STEPS[7]}" in bad.detail
    # deterministic: exact up to rtol
    assert matches_verdict("e", "c", STEPS, exact * (1 + 1e-10), 0 * se, exact).status == "pass"
    assert matches_verdict("e", "c", STEPS, exact * (1 + 1e-8), 0 * se, exact).status == "fail"
    # exact value 0 with zero margin: equality passes, any deviation fails
    zero = np.zeros(K)
    assert matches_verdict("e", "c", STEPS, zero, zero, zero).status == "pass"
    assert matches_verdict("e", "c", STEPS, zero + 1e-300, zero, zero).status == "fail"
    assert _is_na(matches_verdict("e", "c", STEPS, exact, se, np.full(K, np.nan)))


# --------------------------------------------------------------------------- rate


def test_fit_log_rate_recovers_a_geometric_sequence() -> None:
    rate, se = fit_log_rate(STEPS, 3.0 * 0.97 ** STEPS)
    assert rate == pytest.approx(0.97, rel=1e-12) and se == pytest.approx(0.0, abs=1e-8)
    assert math.isnan(fit_log_rate([0, 1], [1.0, 0.5])[0])  # fewer than 3 points


def test_rate_pass_fail_and_na() -> None:
    values = 0.9 ** STEPS
    ok = rate_verdict("e", "c", STEPS, values, 0.9, tolerance=0.01)
    assert ok.status == "pass" and ok.ratio == pytest.approx(1.0, rel=1e-12)
    # fitted log-rate off by 5%: fails a 1% tolerance, passes a 10% one
    slower = np.exp(0.95 * np.log(0.9) * STEPS)
    assert rate_verdict("e", "c", STEPS, slower, 0.9, tolerance=0.01).status == "fail"
    assert rate_verdict("e", "c", STEPS, slower, 0.9, tolerance=0.1).status == "pass"
    assert rate_verdict("e", "c", STEPS, 0.8 ** STEPS, 0.9, tolerance=0.5).status == "fail"
    for predicted in (1.0, 0.0, 1.2, math.nan):
        assert _is_na(rate_verdict("e", "c", STEPS, values, predicted, tolerance=0.1))
    assert _is_na(rate_verdict("e", "c", STEPS, np.zeros(K), 0.9, tolerance=0.1))


# --------------------------------------------------------------------------- floor


def test_floor_pass_and_fail() -> None:
    exact, bound = 0.2, 0.5
    se = np.full(8, 0.001)
    z = bonferroni_z(2)
    ok = floor_verdict("e", "c", np.full(8, exact + (z - 0.1) * 0.001), se, exact, bound)
    assert ok.status == "pass" and ok.ratio == pytest.approx(bound / exact)
    # the plateau uses the largest per-step standard error of the tail (conservative)
    tail = np.full(8, exact + (z + 0.1) * 0.001)
    assert floor_verdict("e", "c", tail, se, exact, bound).status == "fail"
    se_big = se.copy()
    se_big[3] = 0.002
    assert floor_verdict("e", "c", tail, se_big, exact, bound).status == "pass"
    # rtol: a documented residual transient
    off = np.full(8, exact * 1.01)
    assert floor_verdict("e", "c", off, 0 * se, exact, bound).status == "fail"
    assert floor_verdict("e", "c", off, 0 * se, exact, bound, rtol=0.011).status == "pass"
    # matching the exact floor but above the bound: fail (the bound is violated)
    assert floor_verdict("e", "c", np.full(8, exact), 0 * se, exact, 0.9 * exact).status == "fail"
    # no bound (NaN): only the exact value is checked
    assert floor_verdict("e", "c", np.full(8, exact), se, exact, math.nan).status == "pass"


def test_floor_without_a_measurement_is_not_applicable_never_pass() -> None:
    """An empty or NaN plateau, or a non-finite exact value, cannot be compared: n/a."""
    for means, exact in ((np.full(5, np.nan), 0.2), (np.array([]), 0.2),
                         (np.full(5, 0.2), math.nan)):
        v = floor_verdict("e", "c", means, np.full(means.size, 0.1), exact, 0.5)
        assert v.status == "n/a" and v.detail.startswith("not applicable:")
    # an infinite tail standard error would make |plateau − exact| ≤ z·se vacuous: n/a
    se = np.full(5, 0.1)
    se[2] = np.inf
    assert _is_na(floor_verdict("e", "c", np.full(5, 9.0), se, 0.2, 0.5))


# --------------------------------------------------------------------------- scaling


def test_fit_loglog_slope() -> None:
    x = np.array([1.0, 2.0, 4.0, 8.0])
    slope, se, intercept = fit_loglog_slope(x, 3.0 * x**-1.5)
    assert slope == pytest.approx(-1.5, rel=1e-12) and se == pytest.approx(0.0, abs=1e-12)
    assert intercept == pytest.approx(math.log(3.0), rel=1e-12)
    assert fit_loglog_slope([1.0, 4.0], [2.0, 1.0])[:2] == (pytest.approx(-0.5), 0.0)
    assert math.isnan(fit_loglog_slope([1.0, 2.0], [1.0, -1.0])[0])  # non-positive dropped


def test_scaling_pass_fail_and_na() -> None:
    x = np.geomspace(1, 100, 6)
    y = x**-1.0
    ok = scaling_verdict("e", "c", x, y, -1.0, tolerance=0.01)
    assert ok.status == "pass" and ok.measured == pytest.approx(-1.0, rel=1e-12)
    assert scaling_verdict("e", "c", x, x**-1.05, -1.0, tolerance=0.01).status == "fail"
    assert scaling_verdict("e", "c", x, x**-1.05, -1.0, tolerance=0.06).status == "pass"
    assert _is_na(scaling_verdict("e", "c", x[:1], y[:1], -1.0, tolerance=0.1))
    assert _is_na(scaling_verdict("e", "c", x, np.zeros(6), -1.0, tolerance=0.1))


# --------------------------------------------------------------------------- slope_tolerance


def test_slope_tolerance_formula() -> None:
    """Three points x = 1, e, e^2 (u = 0, 1, 2): c = (-1/2, 0, 1/2); with z se/mean = rho:
    tolerance = (1/2)(-log(1 - rho_0)) + (1/2)(-log(1 - rho_2))."""
    x = np.exp([0.0, 1.0, 2.0])
    mean = np.array([1.0, 0.5, 0.25])
    se = np.array([0.01, 0.02, 0.005])
    z = bonferroni_z(6)
    rho = z * se / mean
    expected = 0.5 * -math.log1p(-rho[0]) + 0.5 * -math.log1p(-rho[2])
    assert slope_tolerance(x, mean, se) == pytest.approx(expected, rel=1e-14)
    assert slope_tolerance(x, mean, 0 * se) == 0.0
    # a looser family delta gives a smaller z and a smaller tolerance
    assert slope_tolerance(x, mean, se, delta=1e-2) < slope_tolerance(x, mean, se)


def test_slope_tolerance_covers_the_sampling_error_and_is_not_vacuous() -> None:
    """Means E_k (1 + eps_k), eps_k ~ N(0, s^2) with s = 2% (standard errors 2% of the
    means), 8 log-spaced points, fixed seed, 500 draws: the fitted slope stays within the
    tolerance every time (the bound fails with probability <= 1e-6 per draw; it is
    conservative, so the largest |error|/tolerance is well below 1), while a slope error of
    1.5 tolerances is reported as a fail by scaling_verdict."""
    rng = np.random.default_rng(12345)
    x = np.geomspace(10, 1000, 8)
    truth = 0.3 * x**-1.0
    pred = fit_loglog_slope(x, truth)[0]
    worst = 0.0
    for _ in range(500):
        mean = truth * (1 + 0.02 * rng.standard_normal(8))
        tol = slope_tolerance(x, mean, 0.02 * mean)
        worst = max(worst, abs(fit_loglog_slope(x, mean)[0] - pred) / tol)
        assert scaling_verdict("e", "c", x, mean, pred, tolerance=tol).status == "pass"
    assert worst < 1.0
    tol = slope_tolerance(x, truth, 0.02 * truth)
    shifted = truth * x ** (1.5 * tol)
    assert scaling_verdict("e", "c", x, shifted, pred, tolerance=tol).status == "fail"


# --------------------------------------------------------------------------- ratio


def test_ratio_pass_fail_and_na() -> None:
    z = bonferroni_z(4)
    num, den = (0.8, 0.01), (1.0, 0.01)
    ok = ratio_verdict("e", "c", "ratio", num, den, 0.8)
    assert ok.status == "pass" and ok.measured == pytest.approx(0.8)
    assert ok.ratio == pytest.approx(1.0)
    lo = (0.8 - z * 0.01) / (1.0 + z * 0.01)
    hi = (0.8 + z * 0.01) / (1.0 - z * 0.01)
    assert ok.tolerance == pytest.approx((hi - lo) / 2 / 0.8, rel=1e-12)
    # just inside / just outside the interval
    assert ratio_verdict("e", "c", "ratio", num, den, lo * 1.001).status == "pass"
    assert ratio_verdict("e", "c", "ratio", num, den, lo * 0.999).status == "fail"
    assert ratio_verdict("e", "c", "ratio", num, den, hi * 0.999).status == "pass"
    assert ratio_verdict("e", "c", "ratio", num, den, hi * 1.001).status == "fail"
    # a denominator not bounded away from 0: the interval is unbounded above
    wide = ratio_verdict("e", "c", "ratio", (0.8, 0.01), (0.01, 0.01), 1e6)
    assert wide.status == "pass" and "inf" in wide.detail
    assert ratio_verdict("e", "c", "ratio", (0.8, 0.01), (0.01, 0.01), 1.0).status == "fail"
    # undecidable inputs: n/a, never pass
    for bad in [((math.nan, 0.01), den, 0.8), (num, (1.0, math.nan), 0.8),
                (num, (0.0, 0.01), 0.8), (num, den, 0.0), (num, den, math.inf),
                ((0.8, -0.01), den, 0.8)]:
        assert _is_na(ratio_verdict("e", "c", "ratio", *bad))


def test_ratio_coverage() -> None:
    """Independent Gaussian estimates with known relative standard errors (2% and 3%), fixed
    seed, 1000 draws: the true ratio is always inside the interval (a miss has probability
    <= 1e-6 per draw), and a prediction 50% high is always rejected: the interval's upper end
    is about (1 + 0.02 z)/(1 - 0.03 z) ~ 1.30 times the measured ratio (z = 5.03), and the
    measured ratio is within ~4 sigma (~15%) of the truth in every draw."""
    rng = np.random.default_rng(7)
    n_true, d_true, sn, sd = 0.6, 1.5, 0.012, 0.045
    truth = n_true / d_true
    rejected = 0
    for _ in range(1000):
        n = n_true + sn * rng.standard_normal()
        d = d_true + sd * rng.standard_normal()
        assert ratio_verdict("e", "c", "r", (n, sn), (d, sd), truth).status == "pass"
        rejected += ratio_verdict("e", "c", "r", (n, sn), (d, sd), 1.5 * truth).status == "fail"
    assert rejected == 1000
