"""A synthetic, realistic run directory for the plots/ and reports/ tests.

Curves are made with numpy from textbook formulas (no simulate/ or theory/ import): they
only need the *shape* of real results. Three experiments:

* ``sgd_noise_floor`` — two panels (κ = 10, κ = 100), four configs per panel: three step
  sizes of SGD (one diverges: αL > 2) and deterministic GD whose gap underflows to 0;
  measured, bound (absent where α > 1/L) and exact rows of ``f_gap`` and ``dist2``.
* ``momentum_kappa_scaling`` — ``scaling.csv`` with ``steps_to_eps_vs_kappa`` (three
  series, measured + fit rows + slopes) and ``plateau_vs_alpha``; single-panel curves.
* ``heavy_ball_cycle`` — ``iterate`` rows (heavy ball caught in a 3-cycle) with the three
  cycle points as ``exact`` reference rows, and a measured ``f_gap`` without theory.

:func:`add_experiment_without_tables` adds an experiment directory holding only
``meta.json`` (a run that crashed before writing its tables).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

CURVE_COLUMNS = [
    "experiment", "config", "method", "label", "panel", "source", "quantity", "step",
    "value", "stderr", "n", "q05", "q50", "q95", "diverged_at", "underflow",
]


@dataclass
class RunInfo:
    """What the fixture wrote, for the tests to compare against."""

    run_dir: Path
    experiments: list[str]
    verdicts: pd.DataFrame
    counts: dict[str, int]
    diverged: dict[str, int] = field(default_factory=dict)  # config -> diverged_at
    underflow_configs: list[str] = field(default_factory=list)
    n_underflow_rows: int = 0


def log_steps(steps: int, points: int = 50) -> np.ndarray:
    raw = np.round(np.geomspace(1, steps + 1, points) - 1).astype(int)
    return np.union1d(raw, [0, steps])


def _measured_rows(
    base: dict, quantity: str, steps: np.ndarray, mean: np.ndarray, rel_sd: float, n: int,
    rng: np.random.Generator,
) -> list[dict]:
    rows = []
    se = np.abs(mean) * rel_sd / np.sqrt(n)
    noisy = mean + se * rng.standard_normal(mean.shape)
    for t, m, s, true in zip(steps, noisy, se, mean, strict=True):
        rows.append({
            **base, "source": "measured", "quantity": quantity, "step": int(t),
            "value": m, "stderr": s, "n": n,
            "q05": true * (1 - 1.6 * rel_sd), "q50": true, "q95": true * (1 + 1.6 * rel_sd),
        })
    return rows


def _theory_rows(base: dict, source: str, quantity: str, steps, values) -> list[dict]:
    return [
        {**base, "source": source, "quantity": quantity, "step": int(t), "value": v}
        for t, v in zip(steps, values, strict=True)
    ]


def _write_experiment(run: Path, name: str, curves: list[dict], verdicts: list[dict],
                      meta: dict, scaling: list[dict] | None = None) -> pd.DataFrame:
    d = run / name
    d.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(curves)
    cols = CURVE_COLUMNS + [c for c in df.columns if c not in CURVE_COLUMNS]
    df = df.reindex(columns=cols)
    df["underflow"] = [isinstance(v, bool | np.bool_) and bool(v)
                       for v in df["underflow"].tolist()]
    df.to_csv(d / "curves.csv", index=False)
    v = pd.DataFrame(verdicts).reindex(columns=[
        "experiment", "check", "config", "measured", "predicted", "ratio", "tolerance",
        "status", "detail",
    ])
    v["experiment"] = name
    v.to_csv(d / "verdicts.csv", index=False)
    if scaling is not None:
        pd.DataFrame(scaling).to_csv(d / "scaling.csv", index=False)
    (d / "meta.json").write_text(json.dumps({"experiment": name, **meta}, indent=2),
                                 encoding="utf-8")
    return v


def _sgd_noise_floor(run: Path, rng: np.random.Generator, info: RunInfo) -> pd.DataFrame:
    name = "sgd_noise_floor"
    steps = log_steps(3000)
    curves: list[dict] = []
    verdicts: list[dict] = []
    L, sigma2, B, n, delta0 = 1.0, 1.0, 1, 64, 5.0
    for kappa in (10, 100):
        mu = L / kappa
        panel = f"κ = {kappa}"
        for alpha, method in ((0.1, "sgd"), (0.5, "sgd"), (2.2, "sgd"), (1.0, "gd")):
            s2 = sigma2 if method == "sgd" else 0.0
            config = f"{method}-k{kappa}-a{alpha:g}"
            label = f"SGD α={alpha:g}" if method == "sgd" else "GD α=1/L (σ²=0)"
            base = {
                "experiment": name, "config": config, "method": method, "label": label,
                "panel": panel, "problem": "quadratic", "d": 50, "L": L, "mu": mu,
                "kappa": kappa, "sigma2": s2, "B": B, "alpha": alpha, "noise": "gaussian",
                "schedule": "constant", "unused_extra_column": "x",
            }
            rho = (1 - alpha * mu) ** 2
            floor_exact = alpha * s2 * L / (2 * (2 - alpha * L)) if alpha * L < 2 else np.nan
            diverged_at = np.nan
            if alpha * L >= 2:
                grow = (alpha * L - 1) ** 2
                exact = delta0 * grow ** np.minimum(steps.astype(float), 400.0)
                big = np.nonzero(exact > 1e12)[0]
                diverged_at = int(steps[big[0]])
                info.diverged[config] = diverged_at
                keep = steps < diverged_at
                base["diverged_at"] = diverged_at
                curves += _measured_rows(base, "f_gap", steps[keep], exact[keep], 1.5, n, rng)
                curves += _theory_rows(base, "exact", "f_gap", steps, exact)
                verdicts.append({
                    "check": "holds", "config": config, "status": "n/a",
                    "detail": f"not applicable: alpha = {alpha:g} > 1/L = {1 / L:g}",
                })
                continue
            exact = rho ** steps * (delta0 - floor_exact) + floor_exact
            if method == "gd":
                exact = delta0 * (1 - alpha * mu) ** (2 * steps.astype(float) * 60)
            under = exact < 1e-300
            measured = _measured_rows(base, "f_gap", steps, np.where(under, 0.0, exact),
                                      0.3 if method == "sgd" else 0.0, n, rng)
            for row, u in zip(measured, under, strict=True):
                row["underflow"] = bool(u)
            if under.any():
                info.underflow_configs.append(config)
                info.n_underflow_rows += int(under.sum())
            curves += measured
            dist2 = _measured_rows(base, "dist2", steps, np.where(under, 0.0, exact) * 2 / mu,
                                   0.3 if method == "sgd" else 0.0, n, rng)
            for row, u in zip(dist2, under, strict=True):
                row["underflow"] = bool(u)
            curves += dist2
            curves += _theory_rows(base, "exact", "f_gap", steps[~under], exact[~under])
            if alpha <= 1 / L and method == "sgd":
                f_bound = alpha * sigma2 * L / (2 * mu * B)
                bound = (1 - alpha * mu) ** steps * (delta0 - f_bound) + f_bound
                curves += _theory_rows(base, "bound", "f_gap", steps, np.maximum(bound, 1e-300))
                curves += _theory_rows(base, "bound", "dist2", steps,
                                       np.maximum(bound, 1e-300) * 2 / mu)
                ratio = exact[-1] / bound[-1]
                verdicts.append({
                    "check": "holds", "config": config, "measured": exact[-1],
                    "predicted": bound[-1], "ratio": ratio, "tolerance": 1.0,
                    "status": "pass", "detail": f"measured UCL ≤ bound at all {len(steps)} steps",
                })
                verdicts.append({
                    "check": "floor", "config": config, "measured": floor_exact * 1.02,
                    "predicted": floor_exact, "ratio": 1.02,
                    "tolerance": 0.05, "status": "pass",
                    "detail": f"plateau vs exact floor; the floor bound is "
                              f"{f_bound / floor_exact:.0f}× the exact floor",
                })
            else:
                verdicts.append({
                    "check": "floor", "config": config, "status": "n/a",
                    "detail": "not applicable: σ² = 0, there is no noise floor",
                })
    verdicts.append({
        "check": "rate", "config": "gd-k100-a1", "measured": 0.9812, "predicted": 0.9801,
        "ratio": 0.9812 / 0.9801, "tolerance": 1e-3, "status": "fail",
        "detail": "fitted rate 0.9812 vs predicted (1 − αμ)² = 0.9801 <outside> & tolerance",
    })
    meta = {
        "title": "SGD noise floor on quadratics",
        "description": "Constant-step SGD on strongly convex quadratics: linear decrease to a "
                       "noise floor proportional to the step size.",
        "formulas": ["E[f − f*] ≤ (1 − αμ)^T (Δ₀ − F) + F,  F = ασ²L/(2μB)"],
        "conditions": ["0 < α ≤ 1/L", "E‖g − ∇f‖² = σ²/B"],
        "findings": ["the floor bound is 10× the exact floor at α = 0.1, κ = 10",
                     "α = 2.2 > 2/L diverged at the first steps, as predicted"],
        "command": "simulate run sgd_noise_floor --size quick --seed 0",
        "seed": 0, "backend": "numpy", "dtype": "float64",
        "versions": {"numpy": np.__version__}, "wall_time_s": 3.21, "size": "quick",
        "figures": [],
    }
    return _write_experiment(run, name, curves, verdicts, meta)


def _momentum_kappa_scaling(run: Path, rng: np.random.Generator) -> pd.DataFrame:
    name = "momentum_kappa_scaling"
    kappas = np.array([10, 30, 100, 300, 1000], dtype=float)
    points: list[dict] = []
    for series, pred, c in (("GD", 1.0, 2.3), ("heavy ball", 0.5, 1.8), ("Nesterov", 0.5, 2.1)):
        y_true = c * kappas ** pred * 10
        se = 0.03 * y_true
        y = y_true + se * rng.standard_normal(kappas.size)
        slope, icpt = np.polyfit(np.log(kappas), np.log(y), 1)
        slope_se = 0.01 + 0.02 * rng.random()
        common = {"experiment": name, "figure": "steps_to_eps_vs_kappa", "series": series,
                  "x_label": "condition number κ", "y_label": "steps to ε = 1e-6",
                  "slope": slope, "slope_stderr": slope_se, "predicted_slope": pred}
        for k, yy, s in zip(kappas, y, se, strict=True):
            points.append({**common, "source": "measured", "x": k, "y": yy, "stderr": s})
        for k in (kappas[0], kappas[-1]):
            points.append({**common, "source": "fit", "x": k,
                           "y": float(np.exp(icpt) * k ** slope), "stderr": np.nan})
        if series == "GD":
            for k in kappas:
                points.append({**common, "source": "exact", "x": k, "y": c * k * 10 * 0.97,
                               "stderr": np.nan})
    alphas = np.array([0.01, 0.03, 0.1, 0.3])
    for a in alphas:
        points.append({"experiment": name, "figure": "plateau_vs_alpha", "series": "SGD",
                       "source": "measured", "x": a, "y": 0.25 * a * (1 + 0.02 * rng.random()),
                       "stderr": 0.004 * a, "x_label": "step size α",
                       "y_label": "plateau E[f − f*]", "slope": 1.01, "slope_stderr": 0.02,
                       "predicted_slope": 1.0})
        points.append({"experiment": name, "figure": "plateau_vs_alpha", "series": "SGD",
                       "source": "bound", "x": a, "y": 2.5 * a, "stderr": np.nan,
                       "x_label": "step size α", "y_label": "plateau E[f − f*]",
                       "slope": 1.01, "slope_stderr": 0.02, "predicted_slope": 1.0})
    steps = log_steps(5000, 40)
    curves: list[dict] = []
    for method, label, rate in (("gd", "GD", 1 - 1 / 100), ("hb", "heavy ball", 1 - 1 / 10),
                                ("nag", "Nesterov", 1 - 1 / 12)):
        base = {"experiment": name, "config": f"{method}-k100", "method": method,
                "label": label, "panel": "", "kappa": 100, "L": 1.0, "mu": 0.01}
        exact = 3.0 * rate ** steps.astype(float)
        exact = np.maximum(exact, 1e-30)
        curves += _measured_rows(base, "f_gap", steps, exact, 0.2, 32, rng)
        if method == "gd":
            curves += _theory_rows(base, "exact", "f_gap", steps, exact)
        if method == "nag":
            curves += _theory_rows(base, "bound", "f_gap", steps,
                                   np.maximum(6.0 * (1 - 1 / 20) ** steps.astype(float), 1e-30))
    verdicts = []
    for series, slope, pred, status in (("GD", 1.02, 1.0, "pass"), ("heavy ball", 0.51, 0.5,
                                        "pass"), ("Nesterov", 0.63, 0.5, "fail")):
        verdicts.append({"check": "scaling", "config": series, "measured": slope,
                         "predicted": pred, "ratio": slope / pred, "tolerance": 0.1,
                         "status": status,
                         "detail": f"fitted exponent {slope} vs predicted {pred}"})
    meta = {
        "title": "Momentum: √κ speed-up",
        "description": "Steps to reach ε against the condition number for GD, heavy ball and "
                       "Nesterov on quadratics.",
        "formulas": ["T_GD(ε) ≈ κ log(Δ₀/ε)", "T_NAG(ε) ≈ √κ log(Δ₀/ε)"],
        "conditions": ["μ > 0 (strongly convex)"],
        "findings": ["heavy ball needs 31× fewer steps than GD at κ = 1000"],
        "command": "simulate run momentum_kappa_scaling", "seed": 0, "backend": "numpy",
        "dtype": "float64", "versions": {"numpy": np.__version__}, "wall_time_s": 12.5,
        "size": "quick", "figures": [],
    }
    return _write_experiment(run, name, curves, verdicts, meta, scaling=points)


def _heavy_ball_cycle(run: Path, rng: np.random.Generator) -> pd.DataFrame:
    name = "heavy_ball_cycle"
    steps = np.arange(0, 61)
    cycle = np.array([-1.4, 0.35, 1.05])
    curves: list[dict] = []
    base = {"experiment": name, "config": "hb-lessard", "method": "heavy_ball",
            "label": "heavy ball (α, β tuned for quadratics)", "panel": "", "beta": 0.5}
    it = cycle[steps % 3] + 2.0 * 0.8 ** steps * np.cos(steps)
    curves += [{**base, "source": "measured", "quantity": "iterate", "step": int(t),
                "value": v, "n": 1} for t, v in zip(steps, it, strict=True)]
    curves += _theory_rows(base, "exact", "iterate", steps, cycle[steps % 3])
    curves += _measured_rows(base, "f_gap", steps, 0.8 + 0.5 * (steps % 3) + 4 * 0.8 ** steps,
                             0.1, 1, rng)
    base_gd = {**base, "config": "gd-lessard", "method": "gd", "label": "GD α=1/L", "beta": 0.0}
    gd = 2.5 * 0.9 ** steps
    curves += [{**base_gd, "source": "measured", "quantity": "iterate", "step": int(t),
                "value": v, "n": 1} for t, v in zip(steps, gd, strict=True)]
    curves += _measured_rows(base_gd, "f_gap", steps, 3 * 0.81 ** steps, 0.1, 1, rng)
    verdicts = [
        {"check": "cycle", "config": "hb-lessard", "measured": 3, "predicted": 3, "ratio": 1.0,
         "tolerance": 0.0, "status": "pass", "detail": "period-3 orbit found, max deviation "
                                                       "2.1e-9 from the predicted points"},
        {"check": "converges", "config": "hb-lessard", "status": "n/a",
         "detail": "not applicable: the counterexample is not a quadratic"},
    ]
    meta = {
        "title": "Heavy ball fails to converge on a smooth strongly convex function",
        "description": "Polyak's heavy ball with the quadratic-optimal (α, β) on Lessard et "
                       "al.'s counterexample enters a limit cycle.",
        "formulas": ["w_{t+1} = w_t − α∇f(w_t) + β(w_t − w_{t−1})"],
        "conditions": ["f is L-smooth and μ-strongly convex but not quadratic"],
        "findings": ["the iterate cycles through 3 points; f − f* stays above 0.8"],
        "command": "simulate run heavy_ball_cycle", "seed": 0, "backend": "numpy",
        "dtype": "float64", "versions": {"numpy": np.__version__}, "wall_time_s": 0.4,
        "size": "quick", "figures": [],
    }
    return _write_experiment(run, name, curves, verdicts, meta)


def make_run_dir(root: str | Path, seed: int = 0) -> RunInfo:
    """Write the synthetic run under ``root`` (created) and describe what was written."""
    run = Path(root)
    run.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    info = RunInfo(run_dir=run, experiments=[], verdicts=pd.DataFrame(), counts={})
    frames = [
        _sgd_noise_floor(run, rng, info),
        _momentum_kappa_scaling(run, rng),
        _heavy_ball_cycle(run, rng),
    ]
    info.experiments = [f["experiment"].iloc[0] for f in frames]
    info.verdicts = pd.concat(frames, ignore_index=True)
    statuses = info.verdicts["status"].tolist()
    info.counts = {s: statuses.count(s) for s in ("pass", "fail", "n/a")}
    top = {
        "title": "Convergence Lab — synthetic test run",
        "command": "simulate all --size quick --seed 0 --out RUN",
        "seed": 0, "backend": "numpy", "dtype": "float64", "size": "quick",
        "versions": {"numpy": np.__version__, "python": "3.11"},
        "wall_time_s": 16.11, "date": "2025-01-02T03:04:05",
        "experiments": info.experiments,
    }
    (run / "meta.json").write_text(json.dumps(top, indent=2), encoding="utf-8")
    return info


def add_experiment_without_tables(run_dir: str | Path, name: str = "crashed_experiment") -> Path:
    """An experiment directory with a ``meta.json`` but no tables; listed in RUN/meta.json."""
    run = Path(run_dir)
    d = run / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "meta.json").write_text(json.dumps({
        "experiment": name, "title": "An experiment that crashed",
        "description": "Its tables were never written.",
    }), encoding="utf-8")
    top_path = run / "meta.json"
    top = json.loads(top_path.read_text(encoding="utf-8")) if top_path.is_file() else {}
    top["experiments"] = [*top.get("experiments", []), name]
    top_path.write_text(json.dumps(top, indent=2), encoding="utf-8")
    return d
