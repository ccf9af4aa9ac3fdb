"""sampling: minibatch schemes on a finite sum, variance reduction (SVRG), Polyak averaging.

Three parts, each about removing or shrinking the constant-step noise floor (THEORY §4).

1. Sampling schemes. Problem: least squares f = (1/n) Σ_i ½(a_iᵀw − b_i)² (n ≥ d, noisy
   targets, so σ²(w*) = (1/n) Σ_i ‖∇f_i(w*)‖² > 0, computed by the problem). SGD with constant
   α and minibatches of B rows drawn with replacement, without replacement, or by random
   reshuffling (one run per scheme, the step sizes batched). The additive model of §4 does
   not describe sampled least squares exactly — σ²(w) grows away from w* and the noise is
   multiplicative (Ĥ e with Ĥ the minibatch Hessian) — but the second moments still close:
   with e = w − w*, residuals r_i = a_iᵀw* − b_i, A_i = a_i a_iᵀ, the step is
   e ← (I − αĤ)e − αĝ* with ĝ* = (1/B) Σ_{batch} r_i a_i, and for batches drawn afresh each
   step (with or without replacement; independent of e)

       v_{t+1} = (I − αH) v_t,  v = E e,
       M_{t+1} = M − α(HM + MH) + α²[c₁ K(M) + c₂ HMH + c₁ (2J(v) + S)],  M = E eeᵀ,

   K(M) = (1/n) Σ_i (a_iᵀMa_i) A_i, J(v) = (1/n) Σ_i r_i (a_iᵀv) A_i, S = (1/n) Σ_i r_i² A_i
   (tr S = σ²(w*)), c₁ = 1/B with replacement and (n − B)/(B(n − 1)) without (from the
   probabilities that a batch holds a given index or pair), c₂ = 1 − c₁; Σ_i r_i a_i = 0
   (normal equations) removes every other cross term. E[f − f*] = ½ tr(HM),
   E‖w − w*‖² = tr M: exact curves and exact floors (the fixed point of the recursion),
   checked against the measurements (``theory.sgd_sampled_least_squares_exact``, where the
   derivation is written out). To first order in α the floor is α c₁ σ²(w*)/4 (the
   additive model's ασ²/(4B) of §4.4 with σ² = σ²(w*)), so sampling without replacement
   lowers it by (n − B)/(n − 1), up to O(α) corrections that the exact ratio includes.
   The additive-model floor F = αLσ²/(2μB) with σ² = σ²(w*)
   (× (n − B)/(n − 1) without replacement, ``theory.without_replacement_sigma2``) is reported
   next to the plateau; for sampled least squares it is the additive-model *heuristic* (the
   model's E‖ξ‖² ≤ σ²/B fails away from w*), so no whole-curve "holds" check is made with
   it. Random reshuffling has no such exact recursion (the batches of an epoch are
   dependent); it is compared by measurement: recorded at epoch ends, its plateau is below
   the without-replacement floor.
2. SVRG (Johnson–Zhang 2013, THEORY §4.7) against SGD with the same step, both B = 1 with
   replacement on the same problem: SGD stalls at its exact floor, SVRG reaches
   ε = (floor)/``eps_fraction``; the x-axis that matters is component gradients (SGD: B per
   step; SVRG: n per snapshot + 2B per step). JZ's per-epoch guarantee ρ
   (``theory.svrg_rate``) needs η < 1/(4L_max), ρ < 1 and the JZ restart (the epoch starts
   from a random inner iterate), which the lab's SVRG does not do: its verdict is "n/a".
3. Polyak averaging (THEORY §4.6) on the additive-noise model the exact curve is for: a
   diagonal quadratic with isotropic noise, constant α, w̄_T = (1/T) Σ_{t=1}^T w_t (the
   runner's ``average=True``): E f(w̄_T) − f* equals ``theory.averaged_sgd_exact`` and falls
   like tr(A⁻¹ Cov ξ)/(2T), below the last iterate's floor.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from theory import (
    Curve,
    averaged_sgd_asymptotic,
    averaged_sgd_exact,
    noise_floor_bound,
    sgd_exact_quadratic,
    sgd_sampled_least_squares_exact,
    svrg_rate,
    without_replacement_sigma2,
)

from ..methods import get_method
from ..noise import IsotropicGaussianNoise, MinibatchSampling, SVRGOracle
from ..problems import FiniteSumLeastSquares, QuadraticProblem
from ..recording import record_steps
from ..runner import RunResult, run
from ..verdicts import (
    floor_verdict,
    holds_verdict,
    matches_verdict,
    not_applicable,
    ratio_verdict,
)
from .base import Context, Experiment, ExperimentResult, Param, ResultBuilder
from .common import check_initial_gap, series, steps_to_eps

NAME = "sampling"
#: plateau steps: where the exact curve is within this relative distance of its fixed point
TRANSIENT_RTOL = 2e-3
SCHEMES = ("with_replacement", "without_replacement", "reshuffle")
SCHEME_LABEL = {"with_replacement": "with replacement", "without_replacement":
                "without replacement", "reshuffle": "random reshuffling"}


def _exact_ls(problem: FiniteSumLeastSquares, rec: np.ndarray, alpha: float, B: int,
              scheme: str, e0: np.ndarray) -> dict[str, Curve]:
    """Exact f_gap and dist2 curves of minibatch SGD (theory.sgd_sampled_least_squares_exact)."""
    return {q: sgd_sampled_least_squares_exact(rec, problem.A, problem.b, alpha, B, scheme, e0, q)
            for q in ("f_gap", "dist2")}


def _steps_on_grid(steps: int, points: int, every: int) -> np.ndarray:
    """Log-spaced recording steps rounded to multiples of ``every`` (0 and the last included)."""
    raw = record_steps(steps, points)
    grid = np.unique(np.round(raw / every).astype(np.int64) * every)
    last = (steps // every) * every
    return np.union1d(grid[grid <= last], [0, last]).astype(np.int64)


def _run(ctx: Context, problem: Any, configs: list[dict[str, Any]], ids: list[str], oracle: Any,
         steps: int, w0: np.ndarray, rec: np.ndarray, part: tuple[int, int],
         **kw: Any) -> RunResult:
    k, n_parts = part
    return run(problem, get_method("sgd"), configs, steps=steps, w0=w0, oracle=oracle,
               replicates=ctx["replicates"], seed=ctx.seed, record_at=rec, xp=ctx.xp,
               dtype=ctx.dtype, config_keys=[ctx.key(i) for i in ids], experiment=NAME,
               progress=lambda done, total: ctx.report_progress((k + done / total) / n_parts),
               **kw)


def build(ctx: Context) -> ExperimentResult:
    p = ctx.params
    out = ResultBuilder(NAME)
    n_parts = 6
    problem = FiniteSumLeastSquares(n=p["n"], dim=p["d"], seed=p["problem_seed"],
                                    cond=p["cond"], noise_std=p["noise_std"])
    n, d, L, mu = problem.n, problem.dim, problem.L, problem.mu
    e0 = np.full(d, p["e0"])
    w0 = problem.w_star + e0
    with np.errstate(over="ignore"):
        check_initial_gap(p["e0"], float(problem.f_gap(w0[None, :])[0]))
    sigma2_star = problem.sigma2_star
    B = p["B"]
    base = dict(problem.describe())

    # ------------------------------------------------------------------ 1. sampling schemes
    epoch = n // B  # reshuffling epoch; every scheme is recorded at its multiples
    rec = _steps_on_grid(p["steps"], p["record_points"], epoch)
    alphas = [a / L for a in p["alpha_L"]]
    plateaus: dict[tuple[str, float], tuple[float, float, float]] = {}
    exact_wo: dict[float, Curve] = {}
    for k, scheme in enumerate(SCHEMES):
        oracle = MinibatchSampling(B=B, scheme=scheme)
        ids = [f"{scheme}, alpha={a:.4g}" for a in alphas]
        configs = [{"alpha": a, "alpha_L": a * L} for a in alphas]
        res = _run(ctx, problem, configs, ids, oracle, p["steps"], w0, rec, (k, n_parts))
        desc = oracle.describe(problem=problem)
        panel = f"{SCHEME_LABEL[scheme]}, B = {B} of n = {n}"
        measured = out.add_run(res, ids, labels=[f"α = {a:.3g}" for a in alphas],
                               panels=[panel] * len(alphas),
                               extra=[dict(base, **desc) for _ in alphas])
        sigma2_eff = (sigma2_star if scheme == "with_replacement"
                      else without_replacement_sigma2(sigma2_star, B, n))
        for j, (alpha, cid) in enumerate(zip(alphas, ids, strict=True)):
            params = {"alpha": alpha, "B": B, "sigma2": sigma2_star, "sampling": scheme}
            if np.isfinite(res.diverged_at[j]):
                out.add_verdict(not_applicable(NAME, "matches exact", cid, "diverged"))
                continue
            t, mean, se = series(measured, cid, "f_gap")
            if scheme == "reshuffle":
                ref = exact_wo.get(alpha)
                if ref is None or not np.isfinite(ref.floor):
                    continue
                ex_wo = ref.values[np.searchsorted(rec, t)]
                settled = np.abs(ex_wo - ref.floor) <= TRANSIENT_RTOL * ref.floor
                if settled.sum() < 3:
                    out.add_verdict(not_applicable(
                        NAME, "reshuffle plateau below the without-replacement floor", cid,
                        "the run is too short for the without-replacement curve to settle"))
                    continue
                # the plateau (mean over the settled epoch ends; its standard error is at most
                # the largest per-step one) against the exact without-replacement floor
                plateau, plateau_se = float(np.mean(mean[settled])), float(np.max(se[settled]))
                out.add_verdict(holds_verdict(
                    NAME, cid, t[settled][-1:], np.array([plateau]), np.array([plateau_se]),
                    np.array([ref.floor]),
                    check="reshuffle plateau below the without-replacement floor"))
                plateaus[(scheme, alpha)] = (plateau, plateau_se, math.nan)
                continue
            ex = _exact_ls(problem, rec, alpha, B, scheme, e0)
            if scheme == "without_replacement":
                exact_wo[alpha] = ex["f_gap"]
            for q in ("f_gap", "dist2"):
                out.add_curve(cid, q, "exact", rec, ex[q].values, params)
                tq, mq, sq = series(measured, cid, q)
                out.add_verdict(matches_verdict(NAME, cid, tq, mq, sq,
                                                ex[q].values[np.searchsorted(rec, tq)],
                                                check=f"matches exact ({q})"))
            stationary = ex["f_gap"].floor
            if not np.isfinite(stationary):
                out.add_verdict(not_applicable(NAME, "floor", cid, "the second-moment "
                                               f"recursion is unstable (radius "
                                               f"{ex['f_gap'].extras['radius']:.4g} ≥ 1)"))
                continue
            exv = ex["f_gap"].values[np.searchsorted(rec, t)]
            settled = np.abs(exv - stationary) <= TRANSIENT_RTOL * stationary
            if settled.sum() < 3:
                out.add_verdict(not_applicable(NAME, "floor", cid, "the run is too short for "
                                               "the exact curve to settle within "
                                               f"{TRANSIENT_RTOL:.0e} of its fixed point"))
                continue
            heuristic = noise_floor_bound(alpha, sigma2_eff, L, mu, B)
            v = out.add_verdict(floor_verdict(
                NAME, cid, mean[settled], se[settled], stationary,
                heuristic.value if heuristic.applicable else math.nan, rtol=TRANSIENT_RTOL,
                check="floor (F at σ²(w*) for reference)"))
            plateaus[(scheme, alpha)] = (v.measured, float(np.max(se[settled])), stationary)

    factor = (n - B) / (n - 1)
    ratios = []
    for alpha in alphas:
        wr, wo = plateaus.get(("with_replacement", alpha)), plateaus.get(
            ("without_replacement", alpha))
        if wr is None or wo is None:
            continue
        pred = wo[2] / wr[2]
        v = out.add_verdict(ratio_verdict(NAME, f"alpha={alpha:.4g}",
                                          "floor ratio without/with replacement",
                                          wo[:2], wr[:2], pred))
        rr = plateaus.get(("reshuffle", alpha))
        ratios.append((alpha * L, v.measured, pred, wr[2], rr[0] if rr else math.nan, wo[2]))
    if ratios:
        out.add_finding(
            f"Least squares, n = {n}, d = {d}, B = {B}: σ²(w*) = {sigma2_star:.4g} (computed "
            f"from the residuals). Without replacement the floor drops by "
            + ", ".join(f"{m:.3f} (exact {e:.3f})" for _, m, e, *_ in ratios)
            + " at αL = " + ", ".join(f"{a:g}" for a, *_ in ratios)
            + f", against the additive-model factor (n − B)/(n − 1) = {factor:.3f}.")
        rr = [(a, r / wo) for a, _, _, _, r, wo in ratios if np.isfinite(r)]
        if rr:
            out.add_finding(
                f"Random reshuffling (epochs of {epoch} steps), at epoch ends: plateau "
                + ", ".join(f"{x:.3g}×" for _, x in rr)
                + " the without-replacement floor at αL = "
                + ", ".join(f"{a:g}" for a, _ in rr) + ".")

    # ------------------------------------------------------------------ 2. SVRG vs SGD
    steps_v = p["svrg_steps"]
    rec_v = record_steps(steps_v, p["record_points"])
    etas = [h / problem.L_max for h in p["eta_Lmax"]]
    m = p["epoch_length"]
    sgd_ids = [f"SGD, B=1, eta={e:.4g}" for e in etas]
    svrg_ids = [f"SVRG, m={m}, eta={e:.4g}" for e in etas]
    cfgs = [{"alpha": e, "eta_Lmax": e * problem.L_max} for e in etas]
    sgd_or = MinibatchSampling(B=1, scheme="with_replacement")
    svrg_or = SVRGOracle(epoch_length=m, B=1, snapshot="last")
    res_sgd = _run(ctx, problem, cfgs, sgd_ids, sgd_or, steps_v, w0, rec_v, (3, n_parts))
    res_svrg = _run(ctx, problem, cfgs, svrg_ids, svrg_or, steps_v, w0, rec_v, (4, n_parts))
    panel = f"SVRG vs SGD, B = 1, n = {n}"
    meas_sgd = out.add_run(res_sgd, sgd_ids, labels=[f"SGD, η = {e:.3g}" for e in etas],
                           panels=[panel] * len(etas),
                           extra=[dict(base, **sgd_or.describe(problem=problem))] * len(etas))
    meas_svrg = out.add_run(res_svrg, svrg_ids, labels=[f"SVRG, η = {e:.3g}" for e in etas],
                            panels=[panel] * len(etas),
                            extra=[dict(base, **svrg_or.describe(problem=problem))] * len(etas))
    svrg_facts = []
    for j, eta in enumerate(etas):
        params = {"alpha": eta, "B": 1, "sigma2": sigma2_star}
        if np.isfinite(res_sgd.diverged_at[j]) or np.isfinite(res_svrg.diverged_at[j]):
            out.add_verdict(not_applicable(NAME, "SVRG below ε", svrg_ids[j], "diverged"))
            continue
        ex = sgd_sampled_least_squares_exact(rec_v, problem.A, problem.b, eta, 1,
                                             "with_replacement", e0)
        out.add_curve(sgd_ids[j], "f_gap", "exact", rec_v, ex.values, params)
        t, mean, se = series(meas_sgd, sgd_ids[j], "f_gap")
        out.add_verdict(matches_verdict(NAME, sgd_ids[j], t, mean, se,
                                        ex.values[np.searchsorted(rec_v, t)],
                                        check="matches exact (f_gap)"))
        floor = ex.floor
        if not np.isfinite(floor):
            out.add_verdict(not_applicable(NAME, "SVRG below ε", svrg_ids[j],
                                           "SGD's second moments diverge at this step"))
            continue
        eps = floor / p["eps_fraction"]
        ts, ms, ss = series(meas_svrg, svrg_ids[j], "f_gap")
        out.add_verdict(holds_verdict(NAME, svrg_ids[j], ts[-1:], ms[-1:], ss[-1:],
                                      np.array([eps]),
                                      check=f"SVRG below ε = SGD floor/{p['eps_fraction']:g}"))
        rho = svrg_rate(problem.L_max, mu, eta, m)
        restart = ("the theorem restarts each epoch from a random inner iterate (option II); "
                   "the lab's SVRG continues from the last iterate")
        out.add_verdict(not_applicable(
            NAME, "SVRG epoch rate (Johnson–Zhang)", svrg_ids[j],
            restart if rho.applicable else f"{rho.reason}; and {restart}",
            predicted=rho.value))
        # cost in component gradients: SGD B per step; SVRG n per snapshot (taken at steps
        # 0, m, 2m, … before that step's gradient) + 2B per step
        cost_sgd = t * 1.0
        cost_svrg = n * np.ceil(ts / m) + 2.0 * ts
        keep_s, keep_v = t > 0, ts > 0
        common = dict(x_label="component gradients", y_label="E[f − f*]")
        out.add_points("cost", f"SGD, η = {eta:.3g}", "measured", cost_sgd[keep_s],
                       mean[keep_s], stderr=se[keep_s], **common)
        out.add_points("cost", f"SGD, η = {eta:.3g}", "exact", cost_sgd[keep_s],
                       ex.values[np.searchsorted(rec_v, t)][keep_s], **common)
        out.add_points("cost", f"SVRG, η = {eta:.3g}", "measured", cost_svrg[keep_v],
                       ms[keep_v], stderr=ss[keep_v], **common)
        hit = steps_to_eps(ts, ms, eps)
        hit_cost = n * math.ceil(hit / m) + 2.0 * hit if np.isfinite(hit) else math.nan
        svrg_facts.append((eta * problem.L_max, floor, eps, hit_cost, ms[-1], rho))
    if svrg_facts:
        parts = []
        for h, floor, eps, cost, last, _ in svrg_facts:
            reach = (f"reaches ε = {eps:.2g} after ≈ {cost:.0f} component gradients"
                     if np.isfinite(cost) else f"does not reach ε = {eps:.2g}")
            parts.append(f"at ηL_max = {h:g} SGD stalls at its exact floor {floor:.3g}; SVRG "
                         f"{reach} (E[f − f*] = {last:.2g} at t = {steps_v})")
        rho_txt = "; ".join(f"ηL_max = {h:g}: {r.value:.3g}" if r.applicable else
                            f"ηL_max = {h:g}: n/a ({r.reason})"
                            for h, *_, r in svrg_facts)
        out.add_finding("SVRG (m = " + f"{m}, B = 1) against SGD with the same step: "
                        + "; ".join(parts) + f". Johnson–Zhang ρ per epoch — {rho_txt}.")

    # ------------------------------------------------------------------ 3. Polyak averaging
    qd = p["avg_d"]
    quad = QuadraticProblem(dim=qd, L=1.0, mu=1.0 / p["avg_kappa"], spectrum="log-uniform")
    lam = quad.eigenvalues
    qe0 = np.full(qd, p["e0"])
    with np.errstate(over="ignore"):
        check_initial_gap(p["e0"], float(0.5 * np.sum(lam * qe0 * qe0)))
    steps_a = p["avg_steps"]
    rec_a = record_steps(steps_a, p["record_points"])
    a_alphas = [a / quad.L for a in p["avg_alpha_L"]]
    s2 = p["sigma2"] / qd  # B = 1
    ids = [f"averaged, alpha={a:.4g}" for a in a_alphas]
    oracle = IsotropicGaussianNoise(sigma2=p["sigma2"], B=1)
    res = _run(ctx, quad, [{"alpha": a, "alpha_L": a * quad.L} for a in a_alphas], ids,
               oracle, steps_a, quad.w_star + qe0, rec_a, (5, n_parts), average=True)
    measured = out.add_run(res, ids, labels=[f"α = {a:.3g}" for a in a_alphas],
                           panels=[f"Polyak averaging, quadratic d = {qd}, κ = "
                                   f"{p['avg_kappa']:g}"] * len(a_alphas),
                           extra=[dict(quad.describe(), **oracle.describe())] * len(a_alphas))
    asym = averaged_sgd_asymptotic(np.array([steps_a]), lam, s2).values[0]
    avg_facts = []
    for j, (alpha, cid) in enumerate(zip(a_alphas, ids, strict=True)):
        params = {"alpha": alpha, "B": 1, "sigma2": p["sigma2"]}
        last = sgd_exact_quadratic(rec_a, lam, alpha, s2, qe0**2)
        avg = averaged_sgd_exact(np.maximum(rec_a, 1), lam, alpha, s2, qe0**2)
        out.add_curve(cid, "f_gap", "exact", rec_a, last.values, params)
        out.add_curve(cid, "f_gap_avg", "exact", rec_a[rec_a >= 1], avg.values[rec_a >= 1],
                      params)
        if np.isfinite(res.diverged_at[j]):
            out.add_verdict(not_applicable(NAME, "matches exact", cid, "diverged"))
            continue
        t, mean, se = series(measured, cid, "f_gap")
        out.add_verdict(matches_verdict(NAME, cid, t, mean, se,
                                        last.values[np.searchsorted(rec_a, t)],
                                        check="matches exact (f_gap, last iterate)"))
        ta, ma, sa = series(measured, cid, "f_gap_avg")
        ok = ta >= 1
        out.add_verdict(matches_verdict(NAME, cid, ta[ok], ma[ok], sa[ok],
                                        avg.values[np.searchsorted(rec_a, ta[ok])],
                                        check="matches exact (f_gap_avg, Polyak average)"))
        out.add_verdict(holds_verdict(NAME, cid, ta[-1:], ma[-1:], sa[-1:],
                                      np.array([last.floor]),
                                      check="average below the last iterate's floor at T"))
        avg_facts.append((alpha * quad.L, ma[-1], avg.values[-1], last.floor))
    if avg_facts:
        out.add_finding(
            f"Polyak averaging at T = {steps_a}: E f(w̄_T) − f* = "
            + ", ".join(f"{m_:.3g} (exact {e:.3g}; last-iterate floor {f:.3g}, "
                        f"{f / m_:.1f}× higher) at αL = {a:g}" for a, m_, e, f in avg_facts)
            + f"; the κ-free asymptote tr(A⁻¹Cov ξ)/(2T) = {asym:.3g}.")
    return out.result()


EXPERIMENT = Experiment(
    name=NAME,
    title="Sampling, variance reduction and averaging",
    summary="minibatch schemes on least squares (exact floors, ×(n−B)/(n−1), reshuffling), "
            "SVRG past SGD's floor, Polyak averaging",
    description=(
        "Constant-step SGD on a least-squares finite sum with minibatches drawn with "
        "replacement, without replacement and by random reshuffling: the measured curves and "
        "plateaus against the exact second-moment recursion of sampled least squares (σ²(w*) "
        "computed from the residuals; the floor without replacement lower by about "
        "(n − B)/(n − 1)), reshuffling against the without-replacement floor. SVRG against SGD "
        "with the same step, in component gradients: SGD stalls at its floor, SVRG goes "
        "below it. Polyak averaging on a quadratic with additive noise against its exact curve."
    ),
    formulas=(
        "M_{t+1} = M − α(HM + MH) + α²[c₁K(M) + c₂HMH + c₁(2J(v) + S)],  E[f − f*] = ½ tr(HM)",
        "with replacement: c₁ = 1/B, c₂ = (B − 1)/B;  without: c₁ = (n − B)/(B(n − 1)), "
        "c₂ = n(B − 1)/(B(n − 1))",
        "SVRG cost per epoch: n + 2mB component gradients;  JZ: ρ = 1/(μη(1 − 2Lη)m) + "
        "2Lη/(1 − 2Lη)",
        "E f(w̄_T) − f* = ½ Σ_i λ_i[(E ē_i)² + Var ē_i] → tr(A⁻¹ Cov ξ)/(2T)",
    ),
    conditions=("least squares with n ≥ d, full column rank (μ > 0), noisy targets",
                "a fresh batch every step for the exact recursion (not reshuffling)",
                "SVRG theorem: η < 1/(4L_max), ρ < 1, epoch restarted at a random inner iterate",
                "averaging: additive noise on a quadratic, 0 < αλ_i < 2"),
    params=(
        Param("n", int, "number of components n", 50, 50, low=2),
        Param("d", int, "dimension d", 5, 5, low=1),
        Param("cond", float, "population condition number of the rows", 4.0, 4.0, low=1),
        Param("noise_std", float, "target noise (σ²(w*) > 0)", 0.5, 0.5, low=0,
              open_low=True),
        Param("problem_seed", int, "seed of the data", 0, 0, low=0),
        Param("e0", float, "initial error per coordinate (w0 = w* + e0·1)", 1.0, 1.0),
        Param("B", int, "batch size of the sampling-scheme runs", 25, 25, low=1),
        Param("alpha_L", float, "sampling-scheme step sizes as multiples of 1/L", [0.25, 1.0],
              [0.25, 0.5, 1.0], sweep=True, low=0, open_low=True),
        Param("steps", int, "steps of the sampling-scheme runs", 300, 400, low=1),
        Param("eta_Lmax", float, "SVRG/SGD steps as multiples of 1/L_max", [0.2], [0.1, 0.2],
              sweep=True, low=0, open_low=True),
        Param("epoch_length", int, "SVRG epoch length m", 50, 50, low=1),
        Param("svrg_steps", int, "steps of the SVRG/SGD runs", 1500, 2000, low=1),
        Param("eps_fraction", float, "ε = SGD's exact floor / this", 100.0, 100.0, low=1),
        Param("avg_d", int, "dimension of the averaging quadratic", 10, 10, low=1),
        Param("avg_kappa", float, "κ of the averaging quadratic", 10.0, 10.0, low=1),
        Param("avg_alpha_L", float, "averaging step sizes as multiples of 1/L", [0.5],
              [0.2, 0.5], sweep=True, low=0, open_low=True),
        Param("avg_steps", int, "steps of the averaging run", 1000, 2000, low=1),
        Param("sigma2", float, "noise variance σ² of the averaging run", 1.0, 1.0, low=0,
              open_low=True),
        Param("replicates", int, "replicates R", 256, 512, low=2),
        Param("record_points", int, "recorded steps (log-spaced)", 30, 40, low=2),
    ),
    build=build,
)
