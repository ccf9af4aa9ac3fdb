"""momentum-failure: heavy ball with Polyak's pair cycles on a strongly convex function.

Problem: the Lessard–Recht–Packard piecewise quadratic (THEORY §2.2; L = 25, μ = 1, f* = 0 at
0). Method: heavy ball with Polyak's pair for κ = 25, α = 4/(√L + √μ)² = 1/9 and
β = ((√κ − 1)/(√κ + 1))² = 4/9, from x₋₁ = x₀ ∈ [3.07, 3.46] (one configuration per start;
deterministic, one replicate each).

Compared:
* the limit cycle (THEORY §2.2, Lessard–Recht–Packard 2016): the iterates end on the 3-cycle
  {792, −2208, 2592}/1225 in that visiting order — checked to 1e-9 over the second half of
  the run; f − f* never falls below its smallest value on the cycle there (no convergence);
* the contrast on a quadratic with the same L and μ (eigenvalues {1, 25}): the same (α, β)
  converge at the rate √β = 2/3 per step in ‖e_t‖ (THEORY §2.1), the measured curve equals the
  exact one and stays under the tight worst case over quadratics;
* the safe choice (THEORY §2.2, Ghadimi–Feyzmahdavian–Johansson 2015): α ≤ 1/L,
  β = √((1 − αμ)(1 − αL)) converges on the same function with Δ_t ≤ (1 − αμ)^t Δ₀.
"""

from __future__ import annotations

import math

import numpy as np

from theory import (
    hb_counterexample,
    heavy_ball_exact_quadratic,
    heavy_ball_quadratic,
    heavy_ball_safe_bound,
    lrp_value,
)

from ..methods import get_method
from ..problems import LessardProblem, QuadraticProblem
from ..recording import record_steps
from ..runner import run
from ..verdicts import (
    Verdict,
    holds_verdict,
    matches_verdict,
    not_applicable,
    rate_verdict,
)
from .base import Context, Experiment, ExperimentResult, Param, ResultBuilder
from .common import series

NAME = "momentum-failure"
#: the cycle is checked on the second half of the run (from any start in [3.07, 3.46] the
#: iterates are within 1e-12 of the cycle after < 80 steps; the run has ≥ 200)
TAIL_FRACTION = 0.5
#: agreement required between the iterates and the theoretical cycle (float64; THEORY §2.2
#: gives the cycle in closed form, so only rounding separates them)
CYCLE_ATOL = 1e-9

PANEL_POLYAK = "LRP function, Polyak's α = 1/9, β = 4/9"
PANEL_SAFE = "LRP function, safe α ≤ 1/L, β = √((1−αμ)(1−αL))"
PANEL_QUAD = "quadratic λ ∈ {1, 25}, α = 1/9, β = 4/9"


def _cycle_tolerance(dtype: str) -> float:
    """1e-9 in float64; in float32 the iterate carries ~1e-7 relative rounding per step."""
    return max(CYCLE_ATOL, 1e4 * float(np.finfo(np.dtype(dtype)).eps))


def _cycle_verdict(cid: str, t: np.ndarray, x: np.ndarray, cycle: np.ndarray, tol: float
                   ) -> Verdict:
    """Iterates on the tail equal the cycle points, visited in theory's order."""
    dist = np.abs(x[:, None] - cycle[None, :])
    nearest = np.argmin(dist, axis=1)
    dev = float(np.max(dist[np.arange(x.size), nearest]))
    consecutive = np.diff(t) == 1
    order_ok = bool(np.all((np.diff(nearest) % cycle.size == 1)[consecutive]))
    visited = np.unique(nearest).size == cycle.size
    passed = dev <= tol and order_ok and visited
    detail = (f"over t ∈ [{int(t[0])}, {int(t[-1])}] every iterate is within {dev:.2g} of a "
              f"cycle point (tolerance {tol:g}); all {cycle.size} points visited: {visited}; "
              f"visiting order as in theory: {order_ok}")
    return Verdict(NAME, "limit cycle", cid, dev, 0.0, dev / tol, tol,
                   "pass" if passed else "fail", detail)


def _no_convergence_verdict(cid: str, t: np.ndarray, gap: np.ndarray, floor: float, tol: float
                            ) -> Verdict:
    """min over the tail of f − f* ≥ the smallest value of f − f* on the cycle."""
    k = int(np.argmin(gap))
    lowest = float(gap[k])
    passed = lowest >= floor * (1.0 - tol)
    detail = (f"min f − f* over t ∈ [{int(t[0])}, {int(t[-1])}] is {lowest:.10g} (at t="
              f"{int(t[k])}) vs the cycle's smallest value {floor:.10g}: the method does "
              + ("not converge" if passed else "dip below the cycle"))
    return Verdict(NAME, "no convergence", cid, lowest, floor, lowest / floor, tol,
                   "pass" if passed else "fail", detail)


def build(ctx: Context) -> ExperimentResult:
    p = ctx.params
    ce = hb_counterexample()
    L, mu, alpha, beta = ce.L, ce.mu, ce.alpha, ce.beta
    starts = [float(x) for x in p["x0"]]
    steps = p["steps"]
    rec = record_steps(steps, steps + 1, "all")  # every step: the cycle has period 3
    tol = _cycle_tolerance(ctx.dtype)
    lo, hi = ce.x0_interval
    cycle = np.asarray(ce.cycle, dtype=float)
    cycle_gap = lrp_value(cycle)  # f − f* on the cycle (f* = 0)

    # ---- one batched run on the LRP function: Polyak's pair from every start, the safe pairs
    #      from the smallest and largest start
    cfgs, ids, labels, panels, w0 = [], [], [], [], []
    for x0 in starts:
        cfgs.append({"alpha": alpha, "beta": beta, "x0": x0, "pair": "polyak"})
        ids.append(f"LRP polyak x0={x0:g}")
        labels.append(f"x₀ = {x0:g}")
        panels.append(PANEL_POLYAK)
        w0.append(x0)
    safe = []
    safe_starts = sorted({min(starts), max(starts)})  # the extreme starts keep the panel legible
    for a_L in p["safe_alpha_L"]:
        a = a_L / L
        b = math.sqrt((1 - a * mu) * (1 - a * L))
        for x0 in safe_starts:
            cfgs.append({"alpha": a, "beta": b, "x0": x0, "pair": "safe", "alpha_L": a_L})
            ids.append(f"LRP safe alpha_L={a_L:g} x0={x0:g}")
            labels.append(f"αL = {a_L:g}, x₀ = {x0:g}")
            panels.append(PANEL_SAFE)
            w0.append(x0)
            safe.append((ids[-1], a, b, x0))
    problem = LessardProblem(dim=1)
    hb = get_method("heavy_ball")
    res = run(problem, hb, cfgs, steps=steps, w0=np.asarray(w0)[:, None, None], replicates=1,
              seed=ctx.seed, record_at=rec, record_iterate=True, xp=ctx.xp, dtype=ctx.dtype,
              config_keys=[ctx.key(i) for i in ids], experiment=NAME,
              progress=lambda done, total: ctx.report_progress(0.5 * done / total))
    out = ResultBuilder(NAME)
    measured = out.add_run(res, ids, labels=labels, panels=panels,
                           extra=[problem.describe() for _ in ids])

    # ---- Polyak's pair on LRP: the limit cycle, no convergence
    cycle_results = []
    for x0, cid in zip(starts, ids[: len(starts)], strict=True):
        t, x, _ = series(measured, cid, "iterate")
        if x.size:  # the cycle's points as reference levels for the trajectory figure
            out.add_curve(cid, "iterate", "exact", t[-cycle.size:], cycle,
                          {"alpha": alpha, "beta": beta, "x0": x0})
        if not lo <= x0 <= hi:
            reason = (f"x0={x0:g} is outside [{lo:g}, {hi:g}], where THEORY §2.2 states the "
                      "cycle")
            out.add_verdict(not_applicable(NAME, "limit cycle", cid, reason))
            out.add_verdict(not_applicable(NAME, "no convergence", cid, reason))
            continue
        if np.isfinite(res.diverged_at[ids.index(cid)]) or x.size < steps + 1:
            out.add_verdict(not_applicable(NAME, "limit cycle", cid, "diverged"))
            continue
        tail = t >= (1 - TAIL_FRACTION) * steps
        out.add_verdict(_cycle_verdict(cid, t[tail], x[tail], cycle, tol))
        tg, gap, _ = series(measured, cid, "f_gap")
        tail_g = tg >= (1 - TAIL_FRACTION) * steps
        out.add_verdict(_no_convergence_verdict(cid, tg[tail_g], gap[tail_g],
                                                float(cycle_gap.min()), tol))
        last = x[-cycle.size:]
        cycle_results.append((x0, float(np.max(np.min(np.abs(last[:, None] - cycle), axis=1))),
                              float(gap[tail_g].min()), float(gap[0])))

    # ---- safe pairs on LRP: Δ_t ≤ (1 − αμ)^t Δ₀
    safe_ratio = []
    for cid, a, b, x0 in safe:
        t, gap, se = series(measured, cid, "f_gap")
        delta0 = float(lrp_value(x0))
        bound = heavy_ball_safe_bound(rec, L, mu, a, b, delta0)
        params = {"alpha": a, "beta": b, "x0": x0}
        if bound.applicable:
            out.add_curve(cid, "f_gap", "bound", rec, bound.values, params)
        if t.size == 0 or np.isfinite(res.diverged_at[ids.index(cid)]):
            out.add_verdict(not_applicable(NAME, "holds", cid, "diverged"))
            continue
        if not bound.applicable:
            out.add_verdict(not_applicable(NAME, "holds", cid, bound.reason))
            continue
        # from t = 1 on: at t = 0 the bound is Δ₀ itself (ratio 1 by definition)
        k = t >= 1
        v = out.add_verdict(holds_verdict(NAME, cid, t[k], gap[k], se[k],
                                          np.interp(t[k], rec, bound.values)))
        safe_ratio.append((a * L, v.measured, float(gap[-1] / gap[0]), float(bound.rate)))

    # ---- the same Polyak pair on a quadratic with the same L, μ: it converges at rate √β
    quad = QuadraticProblem(dim=2, L=L, mu=mu, spectrum="two-point")
    lam = quad.eigenvalues
    q_ids = [f"quadratic polyak x0={x0:g}" for x0 in starts]
    q_w0 = np.stack([np.full(2, x0) for x0 in starts])[:, None, :]
    q_cfgs = [{"alpha": alpha, "beta": beta, "x0": x0, "pair": "polyak"} for x0 in starts]
    # log-spaced plus evenly spaced steps (the rate is fitted on the second half)
    q_rec = np.union1d(record_steps(steps, 60), record_steps(steps, 41, "linear"))
    q_res = run(quad, hb, q_cfgs, steps=steps, w0=q_w0, replicates=1, seed=ctx.seed,
                record_at=q_rec, xp=ctx.xp, dtype=ctx.dtype,
                config_keys=[ctx.key(i) for i in q_ids], experiment=NAME,
                progress=lambda done, total: ctx.report_progress(0.5 + 0.5 * done / total))
    q_measured = out.add_run(q_res, q_ids, labels=[f"x₀ = {x0:g}" for x0 in starts],
                             panels=[PANEL_QUAD] * len(starts),
                             extra=[quad.describe() for _ in q_ids])
    rates = []
    for x0, cid in zip(starts, q_ids, strict=True):
        e0 = np.full(2, x0) - quad.w_star
        delta0 = float(0.5 * np.sum(lam * e0**2))
        params = {"alpha": alpha, "beta": beta, "x0": x0}
        exact = {q: heavy_ball_exact_quadratic(q_rec, lam, alpha, beta, 0.0, e0**2, quantity=q)
                 for q in ("f_gap", "dist2")}
        worst = heavy_ball_quadratic(q_rec, L, mu, alpha, beta, initial=delta0, quantity="f_gap")
        for q, curve in exact.items():
            out.add_curve(cid, q, "exact", q_rec, curve.values, params)
        out.add_curve(cid, "f_gap", "bound", q_rec, worst.values, params)
        if np.isfinite(q_res.diverged_at[q_ids.index(cid)]):
            out.add_verdict(not_applicable(NAME, "matches exact", cid, "diverged"))
            continue
        for q, curve in exact.items():
            t, m, se = series(q_measured, cid, q)
            out.add_verdict(matches_verdict(NAME, cid, t, m, se, np.interp(t, q_rec, curve.values),
                                            check=f"matches exact ({q})"))
        t, m, se = series(q_measured, cid, "f_gap")
        k = t >= 1  # at t = 0 the worst case is Δ₀ itself
        out.add_verdict(holds_verdict(NAME, cid, t[k], m[k], se[k],
                                      np.interp(t[k], q_rec, worst.values),
                                      check="holds (worst case over quadratics)"))
        # rate of ‖e_t‖², predicted (√β)² = β. Both eigenvalues are double roots of heavy ball's
        # characteristic polynomial (THEORY §2.1), e_{t,i} = e_{0,i} r_i^t (1 + (1 − r_i) t)
        # with r_i = ±√β, so log‖e_t‖² has slope in [log β, log β + 2/t]; the least-squares
        # slope over t ≥ t1 is an average of secant slopes and lies in [log β, log β + 2/t1]:
        # |ratio − 1| ≤ 2 / (t1 |log β|) (rounding adds ~1e-13).
        t, m, _ = series(q_measured, cid, "dist2")
        win = t >= (1 - TAIL_FRACTION) * steps
        t1 = float(t[win][0])
        tol_rate = 2.0 / (t1 * abs(math.log(beta)))
        v = out.add_verdict(rate_verdict(NAME, cid, t[win], m[win], beta, tolerance=tol_rate,
                                         check="rate ‖e‖² vs (√β)²"))
        rates.append((x0, math.sqrt(v.measured), float(m[-1] / m[0])))

    # ---- findings (numbers from the tables)
    if cycle_results:
        dev = max(r[1] for r in cycle_results)
        low = min(r[2] for r in cycle_results)
        xs = ", ".join(f"{r[0]:g}" for r in cycle_results)
        out.add_finding(
            f"Heavy ball with Polyak's pair (α = 1/9, β = 4/9) on the Lessard–Recht–Packard "
            f"function, started at x₀ ∈ {{{xs}}}, ends on the 3-cycle "
            f"{{{', '.join(f'{c:.6f}' for c in cycle)}}} = {{792, −2208, 2592}}/1225: the "
            f"last three iterates are within {dev:.1e} of it after {steps} steps.")
        out.add_finding(
            f"It does not converge: over the second half of the run f − f* never falls below "
            f"{low:.6f}, the cycle's smallest value f(792/1225) = {cycle_gap.min():.6f} "
            f"(the cycle's values are {', '.join(f'{g:.4f}' for g in cycle_gap)}).")
    if rates:
        r_max = max(r[1] for r in rates)
        r_min = min(r[1] for r in rates)
        shrink = max(r[2] for r in rates)
        fitted = f"{r_min:.4f}" if f"{r_min:.4f}" == f"{r_max:.4f}" else f"{r_min:.4f}–{r_max:.4f}"
        out.add_finding(
            f"The same α, β on the quadratic with eigenvalues {{1, 25}} converge: fitted rate "
            f"of ‖e_t‖ {fitted} per step over the second half vs √β = "
            f"{math.sqrt(beta):.4f} (the (1 + ct) prefactor of the double roots makes the "
            f"fitted rate slightly slower); ‖e_T‖²/‖e_0‖² ≤ {shrink:.2e} at T = {steps}.")
    if safe_ratio:
        worst_ratio = max(s[1] for s in safe_ratio)
        by_alpha: dict[float, tuple[float, float]] = {}
        for a_L, _, shrink, rate in safe_ratio:  # largest Δ_T/Δ₀ over the starts per α
            by_alpha[a_L] = (max(shrink, by_alpha.get(a_L, (0.0, rate))[0]), rate)
        parts = ", ".join(f"αL = {a_L:g}: Δ_T/Δ₀ ≤ {v[0]:.2e} (bound {v[1]:.3f}^T = "
                          f"{v[1] ** steps:.2e})" for a_L, v in sorted(by_alpha.items()))
        out.add_finding(
            f"The safe pairs β = √((1−αμ)(1−αL)) converge on the same function and stay under "
            f"(1 − αμ)^t Δ₀ (largest measured/bound ratio {worst_ratio:.3f}): {parts}.")
    return out.result()


EXPERIMENT = Experiment(
    name=NAME,
    title="Heavy ball can fail on strongly convex functions",
    summary="heavy ball with Polyak's pair cycles on the Lessard–Recht–Packard function; "
            "converges on quadratics; the safe pair converges",
    description=(
        "Heavy ball with Polyak's parameters for κ = 25 (α = 1/9, β = 4/9) is run on the "
        "Lessard–Recht–Packard piecewise quadratic (1-strongly convex, 25-smooth) from starts "
        "in [3.07, 3.46]: the iterates converge to a 3-cycle instead of the minimiser. The "
        "same parameters on a quadratic with the same L and μ converge at rate √β, and the "
        "safe pair β = √((1−αμ)(1−αL)), α ≤ 1/L, converges on the same function with the "
        "guarantee Δ_t ≤ (1 − αμ)^t Δ₀. The quadratic analysis of heavy ball does not extend "
        "to strongly convex functions."
    ),
    formulas=(
        "w_{t+1} = w_t − α ∇f(w_t) + β (w_t − w_{t−1}),  w_{−1} = w_0",
        "f(x) = 12.5x² (x < 1),  ½x² + 24x − 12 (1 ≤ x < 2),  12.5x² − 24x + 36 (x ≥ 2)",
        "limit cycle {792, −2208, 2592}/1225 from x₀ ∈ [3.07, 3.46] (α = 1/9, β = 4/9)",
        "quadratics: ‖e_t‖ ≤ C (t+1) (√β)^t ‖e_0‖,  √β = (√κ − 1)/(√κ + 1)",
        "safe pair: Δ_t ≤ (1 − αμ)^t Δ₀  for α ≤ 1/L, β = √((1 − αμ)(1 − αL))",
    ),
    conditions=("f 1-strongly convex and 25-smooth (the LRP function; no guarantee for "
                "Polyak's pair beyond quadratics)",
                "x₋₁ = x₀ ∈ [3.07, 3.46] for the cycle",
                "α ∈ (0, 1/L], β = √((1−αμ)(1−αL)) for the safe bound"),
    params=(
        Param("x0", float, "starts x₋₁ = x₀ (the cycle is stated for [3.07, 3.46])",
              [3.07, 3.46], [3.07, 3.2, 3.33, 3.46], sweep=True),
        Param("safe_alpha_L", float, "safe step sizes as multiples of 1/L (≤ 1)", [0.25, 0.75],
              [0.25, 0.5, 0.75], sweep=True, low=0, high=1, open_low=True),
        Param("steps", int, "steps T (every step is recorded)", 200, 200, low=10),
    ),
    build=build,
)
