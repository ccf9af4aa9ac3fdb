"""Divergence and numerical trouble: runs finish, diverged configurations are marked (step,
reason) and drawn as such, values the dtype cannot resolve are flagged ``underflow``.

Cases (issue 6): α above 2/L, β near 1, κ = 1e8, float32 underflow of f − f* (true underflow
with w* = 0, and cancellation in a gap computed as f(w) − f*), and one run of the installed
command in a subprocess with a ``--set`` value that makes configurations diverge.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plots import error_curves, figures_for_experiment
from simulate.methods import get_method
from simulate.problems import FiniteSumLogistic, QuadraticProblem
from simulate.recording import record_steps
from simulate.runner import DIVERGENCE_FACTOR, run
from simulate.verdicts import holds_verdict
from theory import (
    gd_exact_quadratic,
    gd_strongly_convex_rate,
    heavy_ball_exact_quadratic,
    heavy_ball_spectral_radius,
)

ROOT = Path(__file__).resolve().parents[1]
EPS32 = float(np.finfo(np.float32).eps)
TINY32 = float(np.finfo(np.float32).tiny)


# --------------------------------------------------------------------------- helpers
def _boundaries(rec: np.ndarray, steps: int, check_every: int) -> np.ndarray:
    """Steps at which the runner tests for divergence: recorded steps and every check_every."""
    return np.union1d(rec[rec > 0], np.arange(check_every, steps + 1, check_every))


def _gd_dist2(lam: np.ndarray, alpha: float, e0: np.ndarray, t: np.ndarray) -> np.ndarray:
    """‖w_t − w*‖² of GD on a diagonal quadratic: Σ_i (1 − αλ_i)^{2t} e0_i² (float64)."""
    with np.errstate(over="ignore"):
        return np.sum((1.0 - alpha * lam)[None, :] ** (2.0 * np.asarray(t, float)[:, None])
                      * e0**2, axis=1)


def _first_crossing(values: np.ndarray, steps: np.ndarray, limit: float) -> int:
    """First of ``steps`` whose value exceeds ``limit``, asserting the decision is robust.

    The simulated iterate differs from the closed form by rounding, t·O(eps) relatively; a
    crossing decided by less than 1e-6 (relative) could go either way, so it must not occur.
    """
    above = values > limit
    assert above.any(), "the closed form never crosses the limit within the run"
    k = int(np.argmax(above))
    assert abs(math.log(values[k] / limit)) > 1e-6
    if k > 0:
        assert abs(math.log(values[k - 1] / limit)) > 1e-6
    return int(steps[k])


def _measured(res, quantity: str) -> pd.DataFrame:
    c = res.curves
    return c[(c["source"] == "measured") & (c["quantity"] == quantity)]


def _series(res, config: int, quantity: str) -> tuple[np.ndarray, np.ndarray]:
    m = _measured(res, quantity)
    m = m[m["config"] == config].sort_values("step")
    return m["step"].to_numpy(), m["value"].to_numpy(float)


def _check_diverged_rows(res, c: int, steps: int) -> None:
    """A diverged configuration: step and reason set; its rows stop before that step."""
    t_div = res.diverged_at[c]
    assert np.isfinite(t_div) and 0 < t_div <= steps
    assert res.divergence_reason[c]
    rows = res.curves[res.curves["config"] == c]
    assert (rows["diverged_at"] == t_div).all()
    assert rows["step"].max() < t_div
    assert np.isfinite(rows["value"]).all()


# --------------------------------------------------------------------------- α > 2/L
def test_step_above_two_over_L_is_marked_at_the_predicted_step():
    problem = QuadraticProblem(dim=5, L=1.0, mu=0.1)
    lam = problem.eigenvalues
    e0 = np.ones(5)
    alphas = [0.5, 1.0, 1.99, 2.2, 3.0]  # α ≥ 2/L = 2 diverge along the top eigenvector
    steps, check_every = 500, 10
    rec = record_steps(steps, 40)
    res = run(problem, get_method("gd"), [{"alpha": a} for a in alphas], steps=steps,
              w0=problem.w_star + e0, record_at=rec, check_every=check_every)
    limit = DIVERGENCE_FACTOR * (float(np.sum(e0**2)) + 1.0)
    bounds = _boundaries(rec, steps, check_every)
    for c, alpha in enumerate(alphas):
        if alpha * problem.L < 2:
            assert np.isnan(res.diverged_at[c]) and res.divergence_reason[c] == ""
            t, f = _series(res, c, "f_gap")
            np.testing.assert_array_equal(t, rec)  # finished: every recorded step is there
            exact = gd_exact_quadratic(t, lam, alpha, e0, quantity="f_gap").values
            # float64 GD on a diagonal quadratic: relative rounding t·O(eps) ≤ 1e-12 here
            np.testing.assert_allclose(f, exact, rtol=1e-10)
        else:
            _check_diverged_rows(res, c, steps)
            predicted = _first_crossing(_gd_dist2(lam, alpha, e0, bounds), bounds, limit)
            assert res.diverged_at[c] == predicted
            assert "grew beyond" in res.divergence_reason[c]
            t, _ = _series(res, c, "f_gap")
            np.testing.assert_array_equal(t, rec[rec < predicted])
    assert not res.curves["underflow"].any()


def test_overflowing_iterates_are_marked_in_float64_and_float32():
    problem = QuadraticProblem(dim=5, L=1.0, mu=0.1)
    lam = problem.eigenvalues
    # one step of α = 1e160 puts ‖w − w*‖² near 1e320: beyond float64 while w is finite
    res = run(problem, get_method("gd"), [{"alpha": 1e160}, {"alpha": 1.0}], steps=3,
              w0=np.ones(5), record_at=[0, 1, 2, 3], check_every=1)
    assert res.diverged_at[0] == 1 and "overflowed float64" in res.divergence_reason[0]
    assert np.isnan(res.diverged_at[1])
    # float32 with a large start: DIVERGENCE_FACTOR·(‖e0‖² + 1) ≈ 5e40 is beyond float32's
    # range; the squared distance overflowing float32 (w still finite) is what marks it
    steps, check_every = 200, 10
    e0 = np.full(5, 1e8)
    rec = record_steps(steps, 30)
    res32 = run(problem, get_method("gd"), [{"alpha": 3.0}, {"alpha": 1.0}], steps=steps,
                w0=e0, record_at=rec, dtype="float32", check_every=check_every)
    _check_diverged_rows(res32, 0, steps)
    assert "overflowed float32" in res32.divergence_reason[0]
    bounds = _boundaries(rec, steps, check_every)
    # the float32 iterate follows the closed form to relative t·O(eps32) < 1e-4 here
    d2 = _gd_dist2(lam, 3.0, e0, bounds)
    first = _first_crossing(d2, bounds, float(np.finfo(np.float32).max))
    assert res32.diverged_at[0] == first
    assert np.isnan(res32.diverged_at[1])


# --------------------------------------------------------------------------- β near 1
def test_heavy_ball_with_beta_near_one_finishes_and_its_unstable_twin_is_marked():
    problem = QuadraticProblem(dim=5, L=1.0, mu=0.01)
    lam = problem.eigenvalues
    e0 = np.ones(5)
    beta = 0.9999
    stable = {"alpha": 1.0, "beta": beta}
    unstable = {"alpha": 2.02 * (1 + beta), "beta": beta}  # heavy ball needs α < 2(1+β)/L
    assert np.max(heavy_ball_spectral_radius(lam, **stable)) < 1
    assert np.max(heavy_ball_spectral_radius(lam, **unstable)) > 1
    steps = 3000
    res = run(problem, get_method("heavy_ball"), [stable, unstable], steps=steps,
              w0=problem.w_star + e0)
    assert np.isnan(res.diverged_at[0])
    _check_diverged_rows(res, 1, steps)
    t, f = _series(res, 0, "f_gap")
    assert t[-1] == steps and np.all(np.isfinite(f))
    exact = heavy_ball_exact_quadratic(t, lam, 1.0, beta, 0.0, e0**2, quantity="f_gap").values
    # |x_t| oscillates with an envelope ≈ β^{t/2}·O(1); rounding in the 2×2 recurrence is
    # O(t·eps) of that envelope (≈ 1e-12 at t = 3000), far below 1e-9·Δ₀
    delta0 = 0.5 * float(np.sum(lam * e0**2))
    np.testing.assert_allclose(f, exact, rtol=0, atol=1e-9 * delta0)
    assert f[-1] > 0.01 * delta0  # β near 1: after 3000 steps still far from converged


# --------------------------------------------------------------------------- κ = 1e8
def test_huge_condition_number_runs_match_the_closed_forms():
    L, mu = 1.0, 1e-8
    problem = QuadraticProblem(dim=8, L=L, mu=mu)
    lam = problem.eigenvalues
    e0 = np.ones(8)
    w0 = problem.w_star + e0
    steps, check_every = 3000, 10
    rec = record_steps(steps, 50)
    gd_alphas = [1.0 / L, 2.0 / (L + mu), 2.5 / L]
    res = run(problem, get_method("gd"), [{"alpha": a} for a in gd_alphas], steps=steps,
              w0=w0, record_at=rec, check_every=check_every)
    for c, alpha in enumerate(gd_alphas[:2]):
        assert np.isnan(res.diverged_at[c])
        t, d2 = _series(res, c, "dist2")
        np.testing.assert_array_equal(t, rec)
        exact = gd_exact_quadratic(t, lam, alpha, e0, quantity="dist2").values
        np.testing.assert_allclose(d2, exact, rtol=1e-10)
        # the bound (1 − αμ)^{2t}‖e₀‖² at κ = 1e8: applicable, rate in (0, 1), and it holds
        bound = gd_strongly_convex_rate(t, L, mu, alpha, float(np.sum(e0**2)), "dist2")
        assert bound.applicable and 0 < bound.rate < 1
        v = holds_verdict("numerics", str(c), t, d2, np.zeros_like(d2), bound.values)
        assert v.status == "pass", v.detail
    bad = gd_strongly_convex_rate(rec, L, mu, gd_alphas[2], 8.0, "dist2")
    assert not bad.applicable and bad.reason
    _check_diverged_rows(res, 2, steps)
    bounds = _boundaries(rec, steps, check_every)
    limit = DIVERGENCE_FACTOR * (float(np.sum(e0**2)) + 1.0)
    assert res.diverged_at[2] == _first_crossing(_gd_dist2(lam, gd_alphas[2], e0, bounds),
                                                 bounds, limit)
    # heavy ball tuned for κ = 1e8: β = ((√κ − 1)/(√κ + 1))² ≈ 0.9996, a double root at
    # both ends of the spectrum; stable, not marked, equal to its exact curve
    sk = math.sqrt(L / mu)
    hb = {"alpha": 4.0 / (math.sqrt(L) + math.sqrt(mu)) ** 2, "beta": ((sk - 1) / (sk + 1)) ** 2}
    res_hb = run(problem, get_method("heavy_ball"), [hb], steps=steps, w0=w0, record_at=rec)
    assert np.isnan(res_hb.diverged_at[0])
    t, f = _series(res_hb, 0, "f_gap")
    exact = heavy_ball_exact_quadratic(t, lam, hb["alpha"], hb["beta"], 0.0, e0**2).values
    # the Jordan-block transient t·r^t amplifies rounding by at most ~t: 3000·1e-16 ≪ 1e-8
    np.testing.assert_allclose(f, exact, rtol=0, atol=1e-8 * float(np.max(exact)))


# --------------------------------------------------------------------------- float32
def test_float32_true_underflow_is_flagged_exactly_where_the_value_leaves_the_range():
    problem = QuadraticProblem(dim=5, L=1.0, mu=0.5)  # w* = 0: a direct form, no cancellation
    lam = problem.eigenvalues
    alpha, steps = 1.0, 120
    rec = np.arange(steps + 1)
    runs = {dt: run(problem, get_method("gd"), [{"alpha": alpha}], steps=steps, w0=np.ones(5),
                    record_at=rec, dtype=dt) for dt in ("float32", "float64")}
    m32 = _measured(runs["float32"], "f_gap").set_index("step")
    m64 = _measured(runs["float64"], "f_gap").set_index("step")
    v32, flag32 = m32["value"].to_numpy(float), m32["underflow"].to_numpy(bool)
    assert (v32 == 0).any() and (v32 > 1e3 * TINY32).any()  # the run crosses the range
    # direct form: float32 keeps relative precision ~eps down to tiny, so the flag is
    # exactly the TINY_FACTOR floor (zeros and subnormal-contaminated values)
    np.testing.assert_array_equal(flag32, ~(v32 >= 1e3 * TINY32))
    for q in ("dist2", "grad_norm2"):
        m = _measured(runs["float32"], q)
        np.testing.assert_array_equal(m["underflow"].to_numpy(bool),
                                      ~(m["value"].to_numpy(float) >= 1e3 * TINY32))
    assert not runs["float64"].curves["underflow"].any()  # ≥ 1e-80 here: fine in float64
    # unflagged float32 values are right: per step each mode is multiplied by fl(1 − αλ_i)
    # with relative error ≤ (2 + αλ_i/|1 − αλ_i|)·eps32 (the λ_i rounding, the product, the
    # difference), so x_t² has relative error ≤ 2t·(2 + max αλ/|1 − αλ|)·eps32
    t = m32.index.to_numpy()[~flag32]
    grow = np.max([a / abs(1 - a) for a in alpha * lam if abs(1 - a) > 1e-12])
    rtol = 2 * t.max() * (2 + grow) * EPS32 + 10 * EPS32
    np.testing.assert_allclose(v32[~flag32], m64.loc[t, "value"].to_numpy(float), rtol=rtol)


def test_float32_cancellation_in_f_minus_fstar_is_flagged_not_drawn():
    # logistic regression: f − f* is computed as f(w) − f*, so in float32 it is resolved only
    # down to ≈ eps32·|f*| ≈ 5e-8, far above float32's underflow range
    problem = FiniteSumLogistic(n=40, dim=5, seed=1)
    w0 = problem.w_star + 1.0
    steps = 1000
    rec = record_steps(steps, 40)
    runs = {dt: run(problem, get_method("gd"), [{"alpha": 1.0 / problem.L}], steps=steps,
                    w0=w0, record_at=rec, dtype=dt) for dt in ("float32", "float64")}
    m32 = _measured(runs["float32"], "f_gap").set_index("step")
    m64 = _measured(runs["float64"], "f_gap").set_index("step")
    flag32 = m32["underflow"].to_numpy(bool)
    v64 = m64.loc[m32.index, "value"].to_numpy(float)
    noise32 = EPS32 * abs(problem.f_star)
    # flagged by resolution, not by range: the true gap there is > 1e-20 ≫ float32's tiny
    assert np.any(flag32 & (v64 > 1e-20))
    # flagged float32 values are those whose truth is at or below the float32 noise scale
    assert np.all(v64[flag32] < 100 * noise32)
    # unflagged ones are right: the flag leaves evaluation errors ≤ 1/10 of the value; the
    # float32 trajectory itself stays within relative ~t·eps32·κ ≈ 1e-2 of float64's while
    # ‖w − w*‖ ≫ ulp(w*) (true of every step where the gap is ≫ eps32·|f*|)
    v32 = m32["value"].to_numpy(float)
    np.testing.assert_allclose(v32[~flag32], v64[~flag32], rtol=0.2)
    # float64: the same rule flags only what is at float64's own noise scale (here the
    # gap rounds to exactly 0 once GD has converged)
    f64 = m64["value"].to_numpy(float)
    flag64 = m64["underflow"].to_numpy(bool)
    assert flag64.any()
    assert np.all(f64[flag64] < 100 * np.finfo(np.float64).eps * abs(problem.f_star))
    # the figure: flagged rows are not drawn (no zero or negative point on the log axis),
    # and the legend says so
    curves = runs["float32"].curves.assign(experiment="numerics", label="GD float32")
    fig = error_curves(curves, "f_gap")
    (ax,) = fig.axes
    (line,) = [ln for ln in ax.lines if (ln.get_gid() or "").startswith("measured:")]
    drawn = set(np.asarray(line.get_xdata(), float).tolist())
    assert drawn and not drawn & set(m32.index[flag32].astype(float).tolist())
    assert np.all(np.asarray(line.get_ydata(), float) > 0)
    texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert any("underflow from" in t for t in texts)


# --------------------------------------------------------------------------- the CLI
def _simulate(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "simulate"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "simulate"]
    env = dict(os.environ, SIMULATE_BACKEND="numpy", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def diverging_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("numerics")
    out = _simulate("run", "sgd-noise-floor", "--quick", "--seed", "5", "--out", str(out_dir),
                    "--set", "alpha_L=0.1,2.5", "--set", "B=4", "--set", "steps=300",
                    "--set", "replicates=16")
    assert out.returncode in (0, 1), out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    return out_dir / "sgd-noise-floor"


def test_cli_diverged_configurations_are_marked_na_and_drawn(diverging_run: Path):
    curves = pd.read_csv(diverging_run / "curves.csv")
    measured = curves[curves["source"] == "measured"]
    wild = measured[np.isclose(measured["alpha_L"], 2.5)]
    calm = measured[np.isclose(measured["alpha_L"], 0.1)]
    assert set(wild["config"]) and set(calm["config"])
    assert np.isfinite(wild["diverged_at"]).all()
    assert (wild["step"] < wild["diverged_at"]).all() and wild["step"].max() < 300
    assert calm["diverged_at"].isna().all() and calm["step"].max() == 300

    verdicts = pd.read_csv(diverging_run / "verdicts.csv", keep_default_na=False)
    for config in set(wild["config"]):
        rows = verdicts[verdicts["config"] == config]
        assert len(rows) >= 1, config
        assert (rows["status"] == "n/a").all(), rows[["check", "status"]]
        assert rows["detail"].str.contains("not applicable: diverged").all()
    assert (verdicts.loc[verdicts["config"].isin(set(calm["config"])), "status"]
            != "fail").all()

    assert (diverging_run / "f_gap.png").is_file()
    fig = figures_for_experiment(diverging_run)["f_gap"]
    markers = [ln.get_gid() for ax in fig.axes for ln in ax.lines
               if (ln.get_gid() or "").startswith("diverged:")]
    assert {g.split(":", 1)[1] for g in markers} == set(wild["config"])
    texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    texts += [t.get_text() for ax in fig.axes if ax.get_legend()
              for t in ax.get_legend().get_texts()]
    assert any("diverged at t=" in t for t in texts)
    assert any(t.startswith("diverged") for t in texts)  # the line-style legend entry


# --------------------------------------------------------------------------- no warnings
@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("engine", ["reference", "auto"])
def test_a_run_overflowing_between_checks_is_marked_without_runtime_warnings(engine):
    # α = 1e100/L multiplies the error by ~1e100 a step: inf by step 4, nan after; with the
    # only record and divergence check at step 10, the steps in between and that record
    # handle inf and nan themselves (then the check drops it) — no RuntimeWarning, on
    # either path
    from simulate.noise import IsotropicGaussianNoise

    problem = QuadraticProblem(dim=4, L=1.0, mu=0.1)
    res = run(problem, get_method("heavy_ball"), [{"alpha": 1e100, "beta": 0.5},
                                                  {"alpha": 0.5, "beta": 0.5}],
              steps=10, w0=np.ones(4), oracle=IsotropicGaussianNoise(1.0, 1), replicates=3,
              record_at=[0, 10], check_every=10, engine=engine)
    assert res.diverged_at[0] <= 10 and np.isnan(res.diverged_at[1])


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_exact_sgd_curve_far_beyond_stability_is_inf_without_warnings():
    from theory import sgd_exact_quadratic

    curve = sgd_exact_quadratic(np.arange(5), np.array([1.0, 0.1]), 1e200, 1.0, 1.0)
    assert curve.floor == math.inf and np.isinf(curve.values[-1])
