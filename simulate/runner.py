"""The batched runner: C configurations × R replicates × d coordinates, one loop over steps.

State arrays are shaped ``(C, R, d)``; hyperparameters ``(C, 1, 1)`` (or ``(C, 1, d)`` per
coordinate). Only aggregates over replicates (mean, standard error, quantiles) of the tracked
quantities leave the device, once per recorded step, so memory is O(C·R·d + C·K) whatever the
number of steps. A configuration whose iterate becomes non-finite or huge is marked with the
step where that was detected and dropped from the batch; the others go on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from .backend import to_host
from .methods import Method
from .problems.base import Problem
from .recording import QUANTILES, aggregate, record_steps
from .rng import BatchRNG, config_seed_sequence
from .schedules import Schedule
from .validation import check_choice, check_int, check_positive, check_range

__all__ = ["DTYPES", "RunResult", "run"]

DTYPES = ("float64", "float32")
ENGINES = ("auto", "reference", "fast")
STAT_COLUMNS = ("value", "stderr") + tuple(f"q{round(q * 100):02d}" for q in QUANTILES)
BASE_QUANTITIES = ("f_gap", "dist2", "grad_norm2")
#: a configuration is declared diverged when max_replicates ‖w − w*‖² exceeds this multiple
#: of (its initial value + 1), or anything non-finite appears
DIVERGENCE_FACTOR = 1e24


@dataclass
class RunResult:
    """What :func:`run` returns.

    Attributes
    ----------
    curves : pandas.DataFrame
        Tidy measured rows (source = "measured"), see DESIGN.md "The results table".
    diverged_at : numpy.ndarray
        Per configuration, the step at which divergence was detected (NaN if none).
    divergence_reason : list of str
        Per configuration, why it was declared diverged ("" if not).
    wall_time_s : float
    """

    curves: pd.DataFrame
    diverged_at: np.ndarray
    divergence_reason: list[str]
    wall_time_s: float
    params: list[dict[str, Any]] = field(default_factory=list)


def _scalar_items(d: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, (bool, int, float, str, np.integer, np.floating)):
            out[k] = v.item() if isinstance(v, (np.integer, np.floating)) else v
    return out


def _stack_hyper(name: str, values: list[Any], d: int, xp: ModuleType, dtype: Any) -> Any:
    arrays = [np.asarray(to_host(v), dtype=np.float64) for v in values]
    if all(a.ndim == 0 for a in arrays):
        host = np.array([float(a) for a in arrays]).reshape(-1, 1, 1)
    else:
        rows = []
        for a in arrays:
            if a.ndim == 0:
                a = np.full(d, float(a))
            if a.shape != (d,):
                raise ValueError(f"{name} has shape {a.shape}: allowed a scalar or shape ({d},)")
            rows.append(a)
        host = np.stack(rows)[:, None, :]
    if not np.all(np.isfinite(host)):
        raise ValueError(f"{name} contains non-finite values: allowed finite real numbers")
    return xp.asarray(host, dtype=dtype)


def _initial_point(w0: Any, n_cfg: int, n_rep: int, d: int, xp: ModuleType, dtype: Any) -> Any:
    host = np.asarray(to_host(w0), dtype=np.float64)
    if host.shape == (d,):
        host = np.broadcast_to(host, (n_cfg, n_rep, d))
    elif host.shape == (n_rep, d):
        host = np.broadcast_to(host, (n_cfg, n_rep, d))
    elif host.shape != (n_cfg, n_rep, d):
        raise ValueError(
            f"w0 has shape {host.shape}: allowed ({d},), ({n_rep}, {d}) or ({n_cfg}, {n_rep}, {d})"
        )
    if not np.all(np.isfinite(host)):
        raise ValueError("w0 contains non-finite values: allowed finite real numbers")
    return xp.array(host, dtype=dtype)


def run(
    problem: Problem,
    method: Method,
    configs: Sequence[Mapping[str, Any]],
    *,
    steps: int,
    w0: Any,
    oracle: Any = None,
    replicates: int = 1,
    seed: int = 0,
    config_keys: Sequence[str] | None = None,
    schedule: Schedule | None = None,
    record_at: Sequence[int] | None = None,
    record_points: int = 60,
    track_grad_min: bool = False,
    average: bool = False,
    record_iterate: bool = False,
    xp: ModuleType = np,
    dtype: str = "float64",
    check_every: int = 10,
    progress: Callable[[int, int], None] | None = None,
    experiment: str = "",
    engine: str = "auto",
) -> RunResult:
    """Run ``method`` on ``problem`` for every configuration, replicated, and record aggregates.

    Parameters
    ----------
    problem
        The problem; it is moved to ``xp`` here.
    method
        A :class:`~simulate.methods.Method`.
    configs
        One mapping per configuration with ``alpha`` and the method's hyperparameters (scalars,
        or length-d arrays for per-coordinate ones such as ``p``; ``P`` a (d, d) matrix for
        ``precond_matrix``). Other scalar entries (``label``, ``panel``, …) are copied into the
        results table.
    steps
        Number of steps T; the iterates w_0 … w_T are available for recording.
    w0
        Initial point: shape (d,), (R, d) or (C, R, d).
    oracle
        Gradient oracle (see :mod:`simulate.noise`); exact gradients when ``None``.
    replicates
        R, the number of independent runs per configuration.
    seed, config_keys
        The random stream of configuration c derives from ``seed`` and ``config_keys[c]``
        (default: the method name and the configuration's scalar entries), never from its
        position in the batch.
    schedule
        Step-size schedule (constant by default).
    record_at, record_points
        Steps at which to record (default: ``record_points`` log-spaced steps in [0, T]).
    track_grad_min
        Also record ``grad_norm2_min``: min over s ≤ t of ‖∇f(w_s)‖² (exact gradient, every step).
    average
        Also record ``f_gap_avg``/``dist2_avg`` at the Polyak average w̄_t = (1/t) Σ_{s=1..t} w_s.
    record_iterate
        Also record ``iterate``: coordinate 0 of replicate 0 (for trajectory plots).
    xp, dtype
        Array module and floating dtype (``float64`` or ``float32``).
    check_every
        Divergence is checked every this many steps and at every recorded step.
    progress
        Called as ``progress(steps_done, steps)`` at recorded steps.
    experiment
        Name written in the ``experiment`` column (and part of the default stream keys).
    engine
        ``"reference"``: plain array code, one Python iteration per step (the definition the
        fast path is tested against). ``"fast"``: the fused compiled path (error where it does
        not apply). ``"auto"`` (default): the fast path where it applies, else the reference.
    """
    t_start = time.perf_counter()
    steps = check_int("steps", steps, 1)
    replicates = check_int("replicates", replicates, 1)
    seed = check_int("seed", seed, 0)
    check_every = check_int("check_every", check_every, 1)
    dtype = check_choice("dtype", dtype, DTYPES)
    engine = check_choice("engine", engine, ENGINES)
    if len(configs) == 0:
        raise ValueError("configs is empty: allowed a non-empty list of configurations")
    schedule = schedule or Schedule()
    np_dtype = np.dtype(dtype)
    problem = problem.to(xp)
    d = problem.dim
    n_cfg = len(configs)

    if oracle is None:
        from .noise import ExactGradient

        oracle = ExactGradient()

    # ---- hyperparameters, validated and stacked (C, 1, 1) / (C, 1, d)
    for i, cfg in enumerate(configs):
        if "alpha" not in cfg and schedule.kind != "inverse_time":
            raise ValueError(f"configs[{i}] has no alpha: every configuration needs a step size")
        if "alpha" in cfg:
            check_positive(f"configs[{i}].alpha", cfg["alpha"])
        for name, (lo, hi, lo_inc, hi_inc) in method.hyper_ranges().items():
            if name in cfg:
                check_range(f"configs[{i}].{name}", cfg[name], lo, hi,
                            low_inclusive=lo_inc, high_inclusive=hi_inc)
    alpha = _stack_hyper("alpha", [c.get("alpha", 1.0) for c in configs], d, xp, np_dtype)
    hypers = []
    for name in method.hyper_names:
        vals = []
        for i, cfg in enumerate(configs):
            if name in cfg:
                vals.append(cfg[name])
            elif name in method.hyper_defaults:
                vals.append(method.hyper_defaults[name])
            else:
                raise ValueError(f"configs[{i}] has no {name}: method {method.name} needs it")
        hypers.append(_stack_hyper(name, vals, d, xp, np_dtype))
    extra: dict[str, Any] = {}
    for name in method.extra_hypers:
        mats = []
        for i, cfg in enumerate(configs):
            if name not in cfg:
                raise ValueError(f"configs[{i}] has no {name}: method {method.name} needs it")
            mats.append(np.asarray(to_host(cfg[name]), dtype=np.float64))
        extra[name] = xp.asarray(np.stack(mats), dtype=np_dtype)

    params = []
    for cfg in configs:
        row = {"method": method.name}
        row.update(_scalar_items(cfg))
        row.update(schedule.describe())
        params.append(row)
    if config_keys is None:
        config_keys = [
            f"{experiment}|" + json.dumps(p, sort_keys=True, default=str) for p in params
        ]
    if len(config_keys) != n_cfg:
        raise ValueError(f"config_keys has {len(config_keys)} entries: allowed exactly {n_cfg}")
    rng = BatchRNG([config_seed_sequence(seed, k) for k in config_keys], xp)

    # ---- recording plan
    rec = np.asarray(record_at if record_at is not None else record_steps(steps, record_points))
    rec = np.unique(rec.astype(np.int64))
    if rec.size == 0 or rec[0] < 0 or rec[-1] > steps:
        raise ValueError(f"record_at must lie in [0, {steps}]")
    rec_index = {int(t): k for k, t in enumerate(rec)}
    quantities = list(BASE_QUANTITIES)
    if track_grad_min:
        quantities.append("grad_norm2_min")
    if average:
        quantities += ["f_gap_avg", "dist2_avg"]
    n_q = len(quantities)
    n_stats = len(STAT_COLUMNS)
    results = np.full((rec.size, n_q, n_cfg, n_stats), np.nan)
    iterate = np.full((rec.size, n_cfg), np.nan) if record_iterate else None
    diverged_at = np.full(n_cfg, np.nan)
    reasons = [""] * n_cfg
    alive = np.arange(n_cfg)

    # ---- state
    state = method.init(_initial_point(w0, n_cfg, replicates, d, xp, np_dtype))
    ostate = oracle.init_state(problem, state[0], rng)
    w_avg = state[0] * 0.0 if average else None
    grad_min = None
    if track_grad_min:
        g0 = problem.grad(state[0])
        grad_min = (g0 * g0).sum(axis=-1)
    dist0 = problem.dist2(state[0]).max(axis=1)
    limit = DIVERGENCE_FACTOR * (dist0 + 1.0)

    def measure(t: int) -> None:
        w = state[0]
        g = problem.grad(w)
        vals = [problem.f_gap(w), problem.dist2(w), (g * g).sum(axis=-1)]
        if track_grad_min:
            vals.append(grad_min)
        if average:
            wa = w_avg if t > 0 else w
            vals += [problem.f_gap(wa), problem.dist2(wa)]
        stacked = xp.stack([aggregate(v, xp) for v in vals])  # (Q, C_alive, stats)
        host = to_host(stacked)
        k = rec_index[t]
        results[k][:, alive, :] = host
        if iterate is not None:
            iterate[k, alive] = to_host(w[:, 0, 0])

    def check(t: int) -> np.ndarray:
        """Indices (into the alive batch) of configurations that diverged by step t."""
        w = state[0]
        finite = to_host(xp.isfinite(w).all(axis=(1, 2)))
        big = to_host(problem.dist2(w).max(axis=1) > limit)
        bad = np.flatnonzero(~finite | big)
        for j in bad:
            c = alive[j]
            diverged_at[c] = t
            reasons[c] = ("non-finite iterate" if not finite[j]
                          else f"‖w − w*‖² grew beyond {DIVERGENCE_FACTOR:.0e}× its start")
        return bad

    fast = None
    if engine != "reference" and not (track_grad_min or average):
        from .fast import fast_path

        fast = fast_path(problem=problem, method=method, oracle=oracle, schedule=schedule,
                         alpha=alpha, hypers=hypers, xp=xp, seed=seed,
                         config_keys=list(config_keys), replicates=replicates)
    if engine == "fast" and fast is None:
        raise ValueError("engine='fast' is not available for this problem/method/oracle: "
                         "allowed 'auto' or 'reference'")

    def advance(t_from: int, t_to: int) -> None:
        """Advance every alive configuration from step t_from to t_to (reference path)."""
        nonlocal state, ostate, w_avg, grad_min
        for t in range(t_from, t_to):
            alpha_t = schedule.alpha(t, alpha)
            q = method.query(*state, *hypers)
            g, ostate = oracle(problem, q, t, ostate, rng)
            if method.grad_transform is not None:
                g = method.grad_transform(g, extra, xp)
            state = method.update(*state, g, t, alpha_t, *hypers)
            if average:
                w_avg = w_avg + (state[0] - w_avg) / (t + 1.0)
            if track_grad_min:
                gw = problem.grad(state[0])
                grad_min = xp.minimum(grad_min, (gw * gw).sum(axis=-1))

    boundaries = np.union1d(rec[rec > 0], np.arange(check_every, steps + 1, check_every))
    measure(0)
    t_done = 0
    for t_next in boundaries:
        t_next = int(t_next)
        if fast is not None:
            state = fast.advance(state, t_done, t_next)
        else:
            advance(t_done, t_next)
        t_done = t_next
        with np.errstate(all="ignore"):
            bad = check(t_done)
        if bad.size:
            keep = np.setdiff1d(np.arange(alive.size), bad)
            alive = alive[keep]
            if keep.size == 0:
                break
            kx = xp.asarray(keep)
            state = tuple(s[kx] for s in state)
            hypers = [h[kx] for h in hypers]
            alpha = alpha[kx]
            extra = {k: v[kx] for k, v in extra.items()}
            limit = limit[kx]
            if w_avg is not None:
                w_avg = w_avg[kx]
            if grad_min is not None:
                grad_min = grad_min[kx]
            rng = rng.subset(keep)
            ostate = oracle.subset_state(ostate, keep)
            oracle = oracle.subset(keep)
            if fast is not None:
                fast = fast.subset(keep)
        if t_done in rec_index:
            measure(t_done)
            if progress is not None:
                progress(t_done, steps)

    curves = _to_frame(results, rec, quantities, iterate, params, diverged_at, replicates,
                       experiment, np_dtype)
    return RunResult(curves, diverged_at, reasons, time.perf_counter() - t_start, params)


def _to_frame(
    results: np.ndarray,
    rec: np.ndarray,
    quantities: list[str],
    iterate: np.ndarray | None,
    params: list[dict[str, Any]],
    diverged_at: np.ndarray,
    replicates: int,
    experiment: str,
    dtype: np.dtype,
) -> pd.DataFrame:
    n_k, n_q, n_cfg, _ = results.shape
    kk, qq, cc = np.meshgrid(np.arange(n_k), np.arange(n_q), np.arange(n_cfg), indexing="ij")
    flat = results.reshape(-1, results.shape[-1])
    keep = np.isfinite(flat[:, 0])
    frame = pd.DataFrame({
        "config": cc.ravel()[keep],
        "source": "measured",
        "quantity": np.asarray(quantities, dtype=object)[qq.ravel()[keep]],
        "step": rec[kk.ravel()[keep]],
    })
    for j, col in enumerate(STAT_COLUMNS):
        frame[col] = flat[keep, j]
    frame["n"] = replicates
    tiny = np.finfo(dtype).tiny
    frame["underflow"] = frame["value"] < tiny * 1e3
    if iterate is not None:
        ki, ci = np.nonzero(np.isfinite(iterate))
        it = pd.DataFrame({"config": ci, "source": "measured", "quantity": "iterate",
                           "step": rec[ki], "value": iterate[ki, ci], "n": 1,
                           "underflow": False})
        frame = pd.concat([frame, it], ignore_index=True)
    frame["diverged_at"] = diverged_at[frame["config"].to_numpy()]
    param_frame = pd.DataFrame(params)
    param_frame["config"] = np.arange(n_cfg)
    frame = frame.merge(param_frame, on="config", how="left")
    if experiment:
        frame.insert(0, "experiment", experiment)
    return frame.sort_values(["config", "quantity", "step"], kind="stable").reset_index(drop=True)
