"""pl-nonconvex: linear convergence of GD without convexity (PL functions).

Two PL problems that are not strongly convex (THEORY §5):

* f(w) = Σ_j (x_j² + 3 sin² x_j), x = Qᵀ(w − w*) (``PLSinProblem``, rotated): nonconvex,
  L = 8, best PL constant μ ≈ 0.17553 (not KNS's 1/32). GD with α = h/L for several h < 2,
  from many random starts, one deterministic trajectory (configuration) each;
* over-parameterised least squares ½‖Aw − b‖², A ∈ R^{n×d}, n < d
  (``OverparamLeastSquares``): convex, PL with μ = smallest nonzero σ(A)², minimisers an
  affine set; GD from several random starts (replicates).

Compared:
* bound (THEORY §1.2, KNS 2016 Thm 1): Δ_{t+1} ≤ c Δ_t, c = 1 − αμ(2 − αL), 0 < α < 2/L, hence
  Δ_t ≤ c^t Δ₀ — checked per trajectory at every step, and per step (the one-step factor
  Δ_{t+1}/Δ_t against c); at α = 1/L also the sharper factor (4L² − 2μL − 2μ²)/(2L + μ)²
  (Abbaszadehpeivasti–de Klerk–Zamani 2023, Thm 3);
* rates. PL sin: ∇²f(w*) = 8·I = L·I, so near w* GD is linear with e_{t+1} = (1 − αL)e_t +
  O(‖e‖³) (φ'(x) = 8x − 4x³ + O(x⁵)): the asymptotic rate of Δ is (1 − αL)², fitted where
  Δ_t ≤ 1e-6 (there the cubic term changes the per-step log-rate by < 1e-6 relative); at
  αL = 1 it is superlinear (no linear rate). Least squares: exact curve
  Δ_t = ½ Σ_i s_i²(1 − αs_i²)^{2t} x_{0,i}², x₀ = Vᵀ(w₀ − w*), asymptotic rate
  max(|1 − αμ|, |1 − αL|)²;
* limit point (THEORY §5): GD on least squares converges to the projection P(w₀) =
  w₀ − A⁺(Aw₀ − b) of its start on the solution set. ``dist2`` here is measured to that point,
  ‖w_t − P(w₀)‖², and must equal the exact Σ_i (1 − αs_i²)^{2t} x_{0,i}² (→ 0).
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

import numpy as np

from theory import gd_exact_quadratic, gd_pl_bound

from ..methods import get_method
from ..problems import OverparamLeastSquares, PLSinProblem
from ..problems.base import Problem
from ..recording import record_steps
from ..runner import run
from ..verdicts import (
    holds_verdict,
    matches_verdict,
    not_applicable,
    rate_verdict,
)
from .base import Context, Experiment, ExperimentResult, Param, ResultBuilder
from .common import series
from .gd_linear_rate import RATE_TOL, VALUE_FLOOR, WINDOW_RTOL, asymptotic_window
from .gd_nonconvex import quantity_matrix, random_starts, subset_run, worst_verdict

NAME = "pl-nonconvex"

#: PL sin: the linearised rate is fitted where Δ_t ≤ LOCAL_DELTA. There x_j² ≤ Δ/(4c)·(1 + o(1))
#: and the cubic term changes each coordinate's contraction factor by (h/2)x²/|1 − h|
#: (relative), i.e. ≲ 1e-6 for h ≤ 1.5 — far below LOCAL_RATE_TOL.
LOCAL_DELTA = 1e-6
#: tolerance on log(fitted)/log((1 − αL)²) for PL sin: the window's linearisation error is
#: ≲ 1e-6 relative and rounding of log Δ is ~1e-16 per point; 1e-3 is a wide margin for both
LOCAL_RATE_TOL = 1e-3
#: rounding allowance for "measured = exact" on least squares (T ≤ a few hundred steps of
#: relative rounding 2⁻⁵² each, plus the projection's own rounding ~1e-16·‖w‖²)
EXACT_RTOL = 1e-9
#: least squares: measured values are compared (and rates fitted) only where the exact value is
#: above this fraction of its initial value. The iterates are O(‖w*‖) ≠ 0, so w_t − P(w₀) (and
#: Vᵀ(w_t − w*)) carry an absolute rounding error δ_t ≲ √t·2⁻⁵²·‖w‖ (the null-space part is
#: never contracted), which perturbs a squared norm ‖e‖² by ≈ 2‖e‖δ_t — relative 2δ_t/‖e‖. With
#: ‖e₀‖² ≈ 30, ‖w‖ ≲ 10 and t ≤ 300 that is < 1e-10 while ‖e_t‖² ≥ 1e-8·‖e₀‖², below EXACT_RTOL.
LS_REL_FLOOR = 1e-8


class _DistanceToProjection(Problem):
    """Over-parameterised least squares whose ``dist2`` is ‖w − P(w₀)‖² per replicate.

    ``targets`` (R, d): the projections P(w₀) of the R starts on the solution set (THEORY §5);
    broadcast against iterates shaped (C, R, d). Everything else is the wrapped problem's.
    """

    _device_arrays = ("_targets",)

    def __init__(self, base: OverparamLeastSquares, targets: np.ndarray) -> None:
        self.base = base
        self.name = base.name
        self.dim, self.L, self.mu, self.f_star = base.dim, base.L, base.mu, base.f_star
        self.w_star = base.w_star
        self.convex, self.strongly_convex = base.convex, base.strongly_convex
        self.xp = base.xp
        self._targets = np.asarray(targets, dtype=np.float64)

    def to(self, xp: ModuleType) -> Problem:
        other = super().to(xp)
        if other is not self:
            other.base = self.base.to(xp)
        return other

    def value(self, w: Any) -> Any:
        return self.base.value(w)

    def grad(self, w: Any) -> Any:
        return self.base.grad(w)

    def f_gap(self, w: Any) -> Any:
        return self.base.f_gap(w)

    def dist2(self, w: Any) -> Any:
        """‖w − P(w₀)‖² (the limit point of GD from this replicate's start)."""
        diff = w - self._targets.astype(w.dtype)
        return (diff * diff).sum(axis=-1)

    def describe(self) -> dict[str, Any]:
        return self.base.describe()


def _pl_sin(ctx: Context, out: ResultBuilder, steps: int) -> dict[str, Any]:
    """The nonconvex part; returns numbers for the findings."""
    p = ctx.params
    problem = PLSinProblem(dim=p["pl_d"], scale=1.0, rotated=True, seed=ctx.seed)
    L, mu = problem.L, problem.mu
    n_st = p["starts"]
    starts = problem.w_star + random_starts(ctx, "starts", n_st, problem.dim,
                                            p["start_radius"])
    hs = list(p["alpha_L"])
    grid = [(h, k) for h in hs for k in range(n_st)]
    ids = [f"pl_sin, alpha_L={h:.4g}, start={k + 1}" for h, k in grid]
    configs = [{"alpha": h / L, "alpha_L": h, "start": k + 1} for h, k in grid]
    w0 = np.stack([starts[k] for _, k in grid])[:, None, :]
    rec = record_steps(steps, steps + 1, "all")  # the bound is per step: check every step
    res = run(problem, get_method("gd"), configs, steps=steps, w0=w0, seed=ctx.seed,
              record_at=rec, xp=ctx.xp, dtype=ctx.dtype, config_keys=[ctx.key(i) for i in ids],
              experiment=NAME, progress=lambda done, total: ctx.report_progress(
                  0.5 * done / total))
    t, fgap = quantity_matrix(res, "f_gap")
    shown = min(p["show_starts"], n_st)
    info: dict[str, Any] = {"n": n_st, "mu": mu, "L": L, "holds": {}, "step": {},
                            "sharp": None, "rates": {}}
    for h in hs:
        alpha = h / L
        rows = [c for c, (hh, _) in enumerate(grid) if hh == h]
        gid = f"pl_sin, alpha_L={h:.4g}"
        whole, one_step, sharp, bounds = [], [], [], []
        for c in rows:
            f = fgap[c]
            b = gd_pl_bound(t, L, mu, alpha, f[0], form="general")
            bounds.append(b.values)
            if not b.applicable:
                whole.append(not_applicable(NAME, "holds", ids[c], b.reason))
                continue
            after = t > 0  # at t = 0 the bound is Δ₀ itself
            zero = np.zeros(int(after.sum()))
            whole.append(holds_verdict(NAME, ids[c], t[after], f[after], zero, b.values[after],
                                       check="holds (c^t Δ₀, c = 1 − αμ(2 − αL))"))
            # one step: Δ_{t+1} ≤ c Δ_t wherever Δ_t > 0 (zero once GD has underflowed)
            pos = f[:-1] > 0
            one_step.append(holds_verdict(NAME, ids[c], t[1:][pos], f[1:][pos],
                                          np.zeros(int(pos.sum())), b.rate * f[:-1][pos],
                                          check="holds per step (Δ_{t+1} ≤ c Δ_t)"))
            if abs(h - 1.0) <= 1e-12:
                s = gd_pl_bound(t, L, mu, alpha, f[0], form="sharp")
                if s.applicable:
                    sharp.append(holds_verdict(
                        NAME, ids[c], t[after], f[after], zero, s.values[after],
                        check="holds (sharp c = (4L² − 2μL − 2μ²)/(2L + μ)², αL = 1)"))
        v = out.add_verdict(worst_verdict(whole, gid))
        info["holds"][h] = (v.ratio, b.rate)
        if one_step:
            v1 = out.add_verdict(worst_verdict(one_step, gid))
            info["step"][h] = (v1.ratio * b.rate, b.rate)  # largest Δ_{t+1}/Δ_t, and c
        if sharp:
            vs = out.add_verdict(worst_verdict(sharp, gid))
            c_sharp = gd_pl_bound(1, L, mu, alpha, 1.0, form="sharp").rate
            info["sharp"] = (vs.ratio, c_sharp)
        # asymptotic rate near w*: (1 − αL)² (Hessian L·I there)
        q_local = (1.0 - h) ** 2
        if not 0 < q_local < 1:
            why = ("GD is superlinear near w* (Newton's step, Hessian L·I)" if q_local == 0
                   else "GD does not contract near w*")
            out.add_verdict(not_applicable(
                NAME, "local rate", gid, f"at αL = {h:g} the linearised contraction is "
                f"|1 − αL| = {abs(1 - h):.3g}: {why}, no linear rate to fit",
                predicted=q_local))
        else:
            rate_vs = []
            for c in rows:
                f = fgap[c]
                window = (f <= LOCAL_DELTA) & (f > VALUE_FLOOR)
                if window.sum() < 3:
                    rate_vs.append(not_applicable(
                        NAME, "local rate", ids[c], f"fewer than 3 steps with {VALUE_FLOOR:g} "
                        f"< Δ_t ≤ {LOCAL_DELTA:g}", predicted=q_local))
                    continue
                rv = rate_verdict(NAME, ids[c], t[window], f[window], q_local,
                                  tolerance=LOCAL_RATE_TOL,
                                  check="local rate vs (1 − αL)² (Hessian L·I at w*)")
                rate_vs.append(rv)
            # reported: the start whose fitted rate is farthest from the prediction
            real = [v for v in rate_vs if v.status != "n/a"]
            worst = (max(real, key=lambda u: abs(u.ratio - 1)) if real else rate_vs[0])
            n_fail = sum(v.status == "fail" for v in real)
            vr = out.add_verdict(dataclasses.replace(
                worst, config=gid, detail=(f"{len(real) - n_fail} of {len(real)} starts pass; "
                                           f"farthest is {worst.config}: {worst.detail}")))
            if vr.status != "n/a":
                info["rates"][h] = (vr.measured, q_local, b.rate)
        sub = subset_run(res, rows[:shown], ["f_gap"])
        sub_ids = ids[rows[0]:rows[0] + shown]
        out.add_run(sub, sub_ids, labels=[f"start {k + 1}" for k in range(shown)],
                    panels=[f"x² + 3 sin² x (d = {problem.dim}), αL = {h:g}"] * shown,
                    extra=[dict(problem.describe(), alpha=alpha, alpha_L=h, start=k + 1)
                           for k in range(shown)])
        for cid, values in zip(sub_ids, bounds[:shown], strict=True):
            out.add_curve(cid, "f_gap", "bound", t, values,
                          {"alpha": alpha, "alpha_L": h, "L": L, "mu": mu})
    return info


def _least_squares(ctx: Context, out: ResultBuilder, steps: int) -> dict[str, Any]:
    """The over-parameterised least-squares part; returns numbers for the findings."""
    p = ctx.params
    n, d = p["ls_n"], p["ls_d"]
    base = OverparamLeastSquares(n=n, dim=d, L=1.0, mu=1.0 / p["ls_kappa"], seed=ctx.seed)
    L, mu = base.L, base.mu
    R = p["ls_starts"]
    w0 = random_starts(ctx, "ls_starts", R, d, p["start_radius"])  # (R, d)
    targets = base.projection_of(w0)
    problem = _DistanceToProjection(base, targets)
    hs = list(p["ls_alpha_L"])
    ids = [f"least squares, alpha_L={h:.4g}" for h in hs]
    rec = np.union1d(record_steps(steps, p["record_points"], "linear"),
                     record_steps(steps, max(p["record_points"] // 4, 2), "log"))
    res = run(problem, get_method("gd"), [{"alpha": h / L, "alpha_L": h} for h in hs],
              steps=steps, w0=w0, replicates=R, seed=ctx.seed, record_at=rec, xp=ctx.xp,
              dtype=ctx.dtype, config_keys=[ctx.key(i) for i in ids], experiment=NAME,
              progress=lambda done, total: ctx.report_progress(0.5 + 0.5 * done / total))
    panel = (f"over-parameterised least squares (n = {n}, d = {d}, κ = {L / mu:g}); "
             "dist2 = ‖w_t − P(w₀)‖²")
    measured = out.add_run(subset_run(res, range(len(hs)), ["f_gap", "dist2"]), ids,
                           labels=[f"αL = {h:g}" for h in hs], panels=[panel] * len(hs),
                           extra=[dict(base.describe(), alpha=h / L, alpha_L=h,
                                       dist2_to="projection of w0") for h in hs])
    s2 = base.singular_values ** 2
    x0 = (w0 - base.w_star) @ base.V  # (R, n): eigen-coordinates of the starts
    x0_rms = np.sqrt(np.mean(x0**2, axis=0))  # the mean over starts of Σ w_i x0_i² uses these
    delta0 = float(np.mean(0.5 * np.sum(s2 * x0**2, axis=1)))
    info: dict[str, Any] = {"rates": {}, "dist": {}, "n": n, "d": d, "R": R}
    for h, cid in zip(hs, ids, strict=True):
        alpha = h / L
        params = {"alpha": alpha, "alpha_L": h, "L": L, "mu": mu}
        bound = gd_pl_bound(rec, L, mu, alpha, delta0, form="general")
        exact = {q: gd_exact_quadratic(rec, s2, alpha, x0_rms, quantity=q)
                 for q in ("f_gap", "dist2")}
        out.add_curve(cid, "f_gap", "bound", rec, bound.values, params)
        for q, ex in exact.items():
            out.add_curve(cid, q, "exact", rec, ex.values, params)
        if np.isfinite(res.diverged_at[hs.index(h)]):
            out.add_verdict(not_applicable(NAME, "holds", cid, "diverged"))
            continue
        for q in ("f_gap", "dist2"):
            t, mean, _ = series(measured, cid, q)
            ex = np.interp(t, rec, exact[q].values)
            ok = ex > max(VALUE_FLOOR, LS_REL_FLOOR * float(exact[q].values[0]))
            # deterministic given the starts: the mean over these R starts is compared exactly
            zero = np.zeros(int(ok.sum()))
            check = ("matches exact (f_gap)" if q == "f_gap" else
                     "‖w_t − P(w₀)‖² matches exact (limit = projection of w₀)")
            v = out.add_verdict(matches_verdict(NAME, cid, t[ok], mean[ok], zero, ex[ok],
                                                rtol=EXACT_RTOL, check=check))
            if q == "dist2":
                info["dist"][h] = (v.measured, float(mean[0]), float(mean[ok][-1]),
                                   int(t[ok][-1]))
                continue
            if bound.applicable:
                bd = np.interp(t, rec, bound.values)
                after = ok & (t > 0)
                out.add_verdict(holds_verdict(NAME, cid, t[after], mean[after],
                                              np.zeros(int(after.sum())), bd[after],
                                              check="holds (c^t Δ₀, c = 1 − αμ(2 − αL))"))
            else:
                out.add_verdict(not_applicable(NAME, "holds", cid, bound.reason))
            q_exact = exact["f_gap"].rate
            window = asymptotic_window(t[ok], ex[ok], q_exact)
            if window.sum() < 3:
                out.add_verdict(not_applicable(
                    NAME, "rate", cid, "the run is too short for the exact curve to reach its "
                    f"asymptotic rate within {WINDOW_RTOL:g} above the rounding floor",
                    predicted=q_exact))
                continue
            vr = out.add_verdict(rate_verdict(NAME, cid, t[ok][window], mean[ok][window], q_exact,
                                              tolerance=RATE_TOL,
                                              check="rate vs exact max(|1 − αμ|, |1 − αL|)²"))
            info["rates"][h] = (vr.measured, q_exact, bound.rate)
    return info


def build(ctx: Context) -> ExperimentResult:
    steps = ctx.params["steps"]
    out = ResultBuilder(NAME)
    pl = _pl_sin(ctx, out, steps)
    ls = _least_squares(ctx, out, steps)

    if pl["holds"]:
        worst_h = max(pl["holds"], key=lambda h: pl["holds"][h][0])
        out.add_finding(
            f"x² + 3 sin² x (nonconvex, L = {pl['L']:g}, μ = {pl['mu']:.5f}): Δ_t ≤ c^t Δ₀ holds "
            f"for all {pl['n']} starts at every αL = "
            + ", ".join(f"{h:g}" for h in pl["holds"])
            + f" (largest Δ_t/bound {pl['holds'][worst_h][0]:.3f}, at αL = {worst_h:g}).")
    if pl["step"]:
        out.add_finding(
            "Largest one-step factor Δ_{t+1}/Δ_t over all starts and steps vs the PL factor "
            "c = 1 − αμ(2 − αL): " + "; ".join(f"αL = {h:g}: {m:.4f} vs {c:.4f}"
                                                for h, (m, c) in pl["step"].items())
            + (f"; at αL = 1 the sharper factor {pl['sharp'][1]:.4f} (AdKZ 2023) also holds "
               f"(largest Δ_t/bound {pl['sharp'][0]:.3f})" if pl["sharp"] else "")
            + ". The worst case of the PL class is not attained by this function.")
    if pl["rates"]:
        out.add_finding(
            "Near w* the Hessian is L·I, so the fitted rates are the linearised (1 − αL)², far "
            "below the bound's c: " + "; ".join(
                f"αL = {h:g}: fitted {f:.4f}, (1 − αL)² = {q:.4f}, c = {c:.4f}"
                for h, (f, q, c) in pl["rates"].items()) + ".")
    if ls["rates"]:
        out.add_finding(
            f"Over-parameterised least squares ({ls['n']} equations, {ls['d']} unknowns, "
            "Hessian singular): linear convergence at the exact rate, fitted vs exact vs PL "
            "bound: " + "; ".join(f"αL = {h:g}: {f:.5f} vs {q:.5f} vs {c:.5f}"
                                  for h, (f, q, c) in ls["rates"].items()) + ".")
    if ls["dist"]:
        out.add_finding(
            "GD converges to the projection of its start on the solution set: ‖w_t − P(w₀)‖² "
            "(mean over " + f"{ls['R']} starts) follows the exact curve to a relative "
            f"{max(v[0] for v in ls['dist'].values()):.1e} and falls from "
            + ", ".join(f"{v[1]:.3g} to {v[2]:.3g} by t = {v[3]} (αL = {h:g})"
                        for h, v in ls["dist"].items())
            + f" (compared down to {LS_REL_FLOOR:g} of the start: below, float64 rounding).")
    return out.result()


EXPERIMENT = Experiment(
    name=NAME,
    title="Linear convergence without convexity: PL functions",
    summary="GD on PL, not strongly convex functions: Δ_t ≤ (1 − αμ(2 − αL))^t Δ₀, limit = "
            "projection",
    description=(
        "Gradient descent on two PL functions that are not strongly convex: the nonconvex "
        "Σ (x² + 3 sin² x) (L = 8, best μ ≈ 0.1755) from many random starts and several "
        "step sizes, and over-parameterised least squares (μ = smallest nonzero σ(A)²). Every "
        "trajectory is checked against the PL bound, step by step; the fitted rates are "
        "compared with the local (nonconvex) or exact (least squares) rate, and the least-"
        "squares iterates with the projection of their start on the solution set."
    ),
    formulas=(
        "f(w_{t+1}) − f* ≤ (1 − αμ(2 − αL)) (f(w_t) − f*),  0 < α < 2/L",
        "α = 1/L: factor ≤ (4L² − 2μL − 2μ²)/(2L + μ)² (AdKZ 2023)",
        "least squares: w_t → P(w₀) = w₀ − A⁺(Aw₀ − b),  ‖w_t − P(w₀)‖² = "
        "Σ_i (1 − αs_i²)^{2t} (Vᵀ(w₀ − w*))_i²",
    ),
    conditions=("f L-smooth and μ-PL (not necessarily convex)", "0 < α < 2/L"),
    params=(
        Param("pl_d", int, "dimension of the nonconvex function", 5, 10, low=1),
        Param("alpha_L", float, "step sizes αL on the nonconvex function",
              [0.25, 1.0, 1.5], [0.25, 0.5, 1.0, 1.5], sweep=True, low=0, open_low=True),
        Param("starts", int, "random starts on the nonconvex function (one trajectory each)",
              16, 64, low=1),
        Param("start_radius", float, "starts uniform in w* + [−r, r]^d (least squares: in "
              "[−r, r]^d)", 3.0, 3.0, low=0, open_low=True),
        Param("show_starts", int, "nonconvex starts drawn (all are checked)", 3, 3, low=1),
        Param("ls_n", int, "least squares: equations n (few: well-separated σ(A)², so the "
              "asymptotic rate shows before the rounding floor)", 5, 5, low=2),
        Param("ls_d", int, "least squares: unknowns d > n", 20, 40, low=3),
        Param("ls_kappa", float, "least squares: κ = σ_max²/σ_min²", 10.0, 10.0, low=1,
              open_low=True),
        Param("ls_alpha_L", float, "least-squares step sizes αL", [0.5, 1.0, 1.5],
              [0.5, 1.0, 1.5], sweep=True, low=0, open_low=True),
        Param("ls_starts", int, "least squares: random starts (replicates)", 8, 32, low=1),
        Param("steps", int, "steps T", 200, 300, low=1),
        Param("record_points", int, "least squares: recorded steps (linear spacing)", 100,
              150, low=2),
    ),
    build=build,
)
