"""sgd-decreasing-step: SGD with α_t = β/(γ + t) beats the noise floor at the Θ(1/t) rate.

Problem: a diagonal quadratic (log-uniform spectrum in [μ, L]) with additive isotropic Gaussian
gradient noise of variance exactly σ²/B. Method: SGD with the step schedule
α_s = β/(γ + s), s = 1, 2, … (THEORY §4.2's 1-based index; the lab's 0-based step t uses
α = β/(γ + t + 1), i.e. s = t + 1, and the lab's w_t is THEORY's w_{t+1}: ``Schedule`` kind
``inverse_time`` with c = β, t0 = γ). Sweep: βμ (one run per schedule) × B.

Compared:
* bound (THEORY §4.2, Bottou–Curtis–Nocedal 2018 Thm 4.7): E Δ ≤ ν/(γ + s) at THEORY's
  iterate w_s = the lab's w_{s−1}, ν = max(β²Lσ²/(2B(βμ − 1)), (γ + 1)Δ₀), valid for
  β > 1/μ, γ > 0 and α₁ = β/(γ + 1) ≤ 1/L; a configuration with βμ < 1 shows the "n/a";
* exact expectation: the coordinate recursion m_{t+1,i} = (1 − α_t λ_i)² m_{t,i} + α_t² s²
  (THEORY §4.4's identity, which holds step by step for any schedule;
  ``theory.sgd_exact_quadratic_schedule``) — the measured mean must equal it within its
  confidence interval at every recorded step;
* rate: the log–log slope of the tail against γ + t + 1 (THEORY's γ + s), predicted by the
  same fit on the exact curve: → −1 when 2βλ_min > 1 (the bias decays like t^(−2βλ_i), the
  noise part like β²s²/((2βλ_i − 1)t)), → −2βμ when 2βμ < 1; the tolerance is
  ``simulate.verdicts.slope_tolerance`` (the sampling error of the means, Bonferroni).
"""

from __future__ import annotations

import math

import numpy as np

from theory import sgd_diminishing_bound, sgd_exact_quadratic_schedule

from ..methods import get_method
from ..noise import IsotropicGaussianNoise
from ..recording import record_steps
from ..runner import run
from ..schedules import Schedule
from ..verdicts import (
    fit_loglog_slope,
    holds_verdict,
    matches_verdict,
    not_applicable,
    scaling_verdict,
    slope_tolerance,
)
from .base import Context, Experiment, ExperimentResult, Param, ResultBuilder
from .common import (
    PL_QUADRATIC_CONDITION,
    noisy_quadratic_params,
    noisy_quadratic_start,
    series,
    sgd_run_params,
)

NAME = "sgd-decreasing-step"
#: the slope is fitted over recorded steps t ≥ TAIL_FROM · T (more than a decade of γ + t)
TAIL_FROM = 0.05


def build(ctx: Context) -> ExperimentResult:
    p = ctx.params
    d, L, mu, sigma2 = p["d"], p["L"], p["L"] / p["kappa"], p["sigma2"]
    problem, lam, e0, w0, delta0 = noisy_quadratic_start(d, L, mu, p["e0"])
    steps = p["steps"]
    rec = record_steps(steps, p["record_points"])
    batches = [int(B) for B in p["B"]]
    out = ResultBuilder(NAME)
    method = get_method("sgd")
    fits: list[tuple[float, float, float, float, float]] = []  # βμ, B, slope, pred, looseness
    n_runs = len(p["beta_mu"])

    for k, beta_mu in enumerate(p["beta_mu"]):
        beta = beta_mu / mu
        # smallest offset with α₁ = β/(γ + 1) ≤ 1/L (and γ ≥ 1): the largest allowed first step
        gamma = max(beta * L - 1.0, 1.0)
        schedule = Schedule(kind="inverse_time", c=beta, t0=gamma)
        alphas = beta / (gamma + np.arange(steps) + 1.0)  # α_t, t = 0 … T − 1 (lab index)
        ids = [f"beta_mu={beta_mu:g}, B={B}" for B in batches]
        configs = [{"B": B, "sigma2": sigma2, "beta_mu": beta_mu, "gamma": gamma}
                   for B in batches]
        oracle = IsotropicGaussianNoise(sigma2=[sigma2] * len(batches), B=batches)
        res = run(problem, method, configs, steps=steps, w0=w0, oracle=oracle,
                  replicates=p["replicates"], seed=ctx.seed, schedule=schedule, record_at=rec,
                  xp=ctx.xp, dtype=ctx.dtype, config_keys=[ctx.key(i) for i in ids],
                  experiment=NAME,
                  progress=lambda done, total, k=k: ctx.report_progress(
                      (k + done / total) / n_runs))
        cond = "β > 1/μ" if beta_mu > 1 else "β ≤ 1/μ: bound n/a"
        panel = f"βμ = {beta_mu:g} ({cond}), γ = {gamma:g}"
        extra = [dict(problem.describe(), noise="isotropic") for _ in batches]
        measured = out.add_run(res, ids, labels=[f"B = {B}" for B in batches],
                               panels=[panel] * len(batches), extra=extra)

        for j, (B, cid) in enumerate(zip(batches, ids, strict=True)):
            s2 = sigma2 / (d * B)
            exact = {q: sgd_exact_quadratic_schedule(rec, lam, alphas, s2, e0**2, q).values
                     for q in ("f_gap", "dist2")}
            # THEORY's w_s is the lab's w_{s−1}: evaluate the bound at s = t + 1, Δ₁ = Δ₀(lab)
            bound = sgd_diminishing_bound(rec + 1, L=L, mu=mu, sigma2=sigma2, B=B, beta=beta,
                                          gamma=gamma, delta1=delta0)
            params = {"B": B, "sigma2": sigma2, "beta_mu": beta_mu, "gamma": gamma}
            for q in ("f_gap", "dist2"):
                out.add_curve(cid, q, "exact", rec, exact[q], params)
            if bound.applicable:
                out.add_curve(cid, "f_gap", "bound", rec, bound.values, params)
            if np.isfinite(res.diverged_at[j]):
                out.add_verdict(not_applicable(NAME, "holds", cid, "diverged"))
                continue
            for q in ("f_gap", "dist2"):
                t, mean, se = series(measured, cid, q)
                ex = exact[q][np.searchsorted(rec, t)]
                out.add_verdict(matches_verdict(NAME, cid, t, mean, se, ex,
                                                check=f"matches exact ({q})"))
            t, mean, se = series(measured, cid, "f_gap")
            if bound.applicable:
                bnd = bound.values[np.searchsorted(rec, t)]
                out.add_verdict(holds_verdict(NAME, cid, t, mean, se, bnd))
            else:
                out.add_verdict(not_applicable(NAME, "holds", cid, bound.reason))
            # Θ(1/t): log–log slope of the tail against γ + t + 1 (THEORY's γ + s)
            tl = t >= TAIL_FROM * steps
            if tl.sum() < 3:
                out.add_verdict(not_applicable(NAME, "tail slope of E[f − f*] vs γ + t", cid,
                                               "fewer than 3 recorded steps in the tail"))
                continue
            x = gamma + t[tl] + 1.0
            ex_tail = exact["f_gap"][np.searchsorted(rec, t[tl])]
            pred = fit_loglog_slope(x, ex_tail)[0]
            tol = slope_tolerance(x, mean[tl], se[tl])
            v = out.add_verdict(scaling_verdict(
                NAME, cid, x, mean[tl], pred, tolerance=tol,
                check="tail slope of E[f − f*] vs γ + t"))
            slope, slope_se, _ = fit_loglog_slope(x, mean[tl])
            out.add_points("tail_slope", f"βμ = {beta_mu:g}, B = {B}", "measured", x,
                           mean[tl], stderr=se[tl], slope=slope, slope_stderr=slope_se,
                           predicted_slope=pred, x_label="γ + t",
                           y_label="E[f − f*] (tail)")
            out.add_points("tail_slope", f"βμ = {beta_mu:g}, B = {B}", "exact", x, ex_tail,
                           predicted_slope=pred, x_label="γ + t", y_label="E[f − f*] (tail)")
            loose = (float(bound.values[-1] / exact["f_gap"][-1]) if bound.applicable
                     else math.nan)
            fits.append((beta_mu, B, v.measured, pred, loose))

    if fits:
        ok = [f for f in fits if f[0] > 1]
        bad = [f for f in fits if f[0] <= 1]
        if ok:
            out.add_finding(
                "With β > 1/μ the tail of E[f − f*] falls like 1/(γ + t): fitted log–log "
                "slopes " + ", ".join(f"{f[2]:.3f}" for f in ok) + " against exact-curve "
                "slopes " + ", ".join(f"{f[3]:.3f}" for f in ok) + " (βμ, B = "
                + ", ".join(f"{f[0]:g}/{f[1]}" for f in ok) + ").")
            out.add_finding(
                "The bound ν/(γ + t) of Bottou–Curtis–Nocedal (Thm 4.7) is "
                f"{min(f[4] for f in ok):.1f}–{max(f[4] for f in ok):.1f}× the exact "
                f"E[f − f*] at t = {steps} (κ = {L / mu:g}); at βμ = 2 its noise term is "
                "2κσ²/(μB), while the exact constant of the 1/t tail is "
                "½ Σ_i λ_i β²s²/(2βλ_i − 1).")
        if bad:
            out.add_finding(
                "With β ≤ 1/μ the bound's condition fails (verdict n/a); the exact tail is "
                "then slower than 1/t wherever 2βλ_i < 1: fitted slopes "
                + ", ".join(f"{f[2]:.3f} (exact {f[3]:.3f}; βμ = {f[0]:g}, B = {f[1]})"
                            for f in bad)
                + "; the asymptote is −2βμ = "
                + ", ".join(sorted({f"{-2 * f[0]:g}" for f in bad})) + ".")
    return out.result()


EXPERIMENT = Experiment(
    name=NAME,
    title="SGD with decreasing steps: Θ(1/t) below any floor",
    summary="α_t = β/(γ+t): E[f−f*] ≤ ν/(γ+t) for β > 1/μ, equals the exact recursion, "
            "tail slope −1",
    description=(
        "SGD with the step schedule α_t = β/(γ + t) on a diagonal quadratic with additive "
        "isotropic Gaussian gradient noise, E‖g − ∇f‖² = σ²/B exactly, γ chosen so that the "
        "first step is 1/L. The measured mean of f − f* is compared with the bound of "
        "Bottou–Curtis–Nocedal (Thm 4.7, needs β > 1/μ) and with the exact expected curve "
        "(the per-coordinate second-moment recursion); the log–log slope of its tail is "
        "fitted against the exact one (−1 for 2βμ > 1, −2βμ below)."
    ),
    formulas=(
        "α_s = β/(γ + s),  E[f(w_s) − f*] ≤ ν/(γ + s),  "
        "ν = max{β²Lσ²/(2B(βμ − 1)), (γ + 1)Δ₁}",
        "m_{t+1,i} = (1 − α_t λ_i)² m_{t,i} + α_t² s²,  E[f − f*] = ½ Σ_i λ_i m_{t,i},  "
        "s² = σ²/(dB)",
        "E[f − f*] ≈ ½ Σ_i λ_i β²s² / ((2βλ_i − 1)(γ + t)) for 2βλ_i > 1",
    ),
    conditions=(PL_QUADRATIC_CONDITION,
                "β > 1/μ, γ > 0, α₁ = β/(γ + 1) ≤ 1/L for the bound",
                "unbiased noise with E‖ξ‖² = σ²/B; the exact recursion needs Cov ξ = s²I"),
    params=(
        *noisy_quadratic_params(d=(20, 20), kappa=10.0),
        Param("beta_mu", float, "schedule numerators β as multiples of 1/μ", [0.25, 2.0],
              [0.25, 2.0, 4.0], sweep=True, low=0, open_low=True),
        Param("B", int, "batch sizes", [1, 4], [1, 4], sweep=True, low=1),
        *sgd_run_params(steps=(2000, 5000), replicates=(128, 256), record_points=(40, 60)),
    ),
    build=build,
)
