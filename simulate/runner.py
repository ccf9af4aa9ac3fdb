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
from .executor import current_executor
from .methods import Method
from .problems.base import WIDER_LONGDOUBLE, Problem
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
    call = dict(locals())  # the arguments, for an executor (simulate.executor)
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
    executor = current_executor()
    if executor is not None:  # chunks of configurations, each an ordinary run(...) elsewhere
        return executor.run_chunked(dict(call, config_keys=list(config_keys)))
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
    with np.errstate(over="ignore"):  # beyond the dtype's range: inf, and overflow marks it
        limit = DIVERGENCE_FACTOR * (dist0 + 1.0)

    resolution = _Resolution(problem, quantities, rec.size, n_cfg, np_dtype)

    row_cache: dict[str, Any] = {}

    # the engine call that ran through several boundaries, and the positions of the alive
    # configurations in its batch (configurations dropped since are skipped)
    call: dict[str, Any] = {"engine": None, "pos": None}
    # that call's records, aggregated (and re-evaluated) at once: step -> (aggregates
    # (Q, C_call, stats), errors (Q, C_call) or None), rows in the call's batch
    call_records: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    def fast_rows(t: int) -> dict[str, Any] | None:
        """Per-row f_gap, dist2, grad_norm2 (C, R) and finite (C,) from the fast engine's
        ``measure`` (one compiled pass), once per step; None: use the reference code."""
        if fast is None or not hasattr(fast, "measure"):
            return None
        if row_cache.get("t") != t:
            row_cache.clear()
            at = call["engine"].measured_at(t) if call["engine"] is not None else None
            if at is not None:
                row_cache.update({key: v[call["pos"]] for key, v in at.items()})
            else:
                row_cache.update(fast.measure(state))
            row_cache["t"] = t
        return row_cache

    def measure(t: int) -> None:
        if t not in rec_index:  # t = 0 is measured only when recorded (record_at may omit it)
            return
        k = rec_index[t]
        if t in call_records:  # aggregated (and re-evaluated) with the call's other records
            agg, err = call_records[t]
            results[k][:, alive, :] = agg[:, call["pos"], :]
            if err is not None:
                resolution.error[k][:, alive] = err[:, call["pos"]]
            else:
                rows = fast_rows(t)
                resolution.record(k, alive, rows["w_sample"],
                                  None, [rows["f_gap"], rows["dist2"], rows["grad_norm2"]])
            return
        w = state[0]
        rows = fast_rows(t)
        if rows is not None and "w_sample" in rows:  # the call ran past t: its snapshot
            w = rows["w_sample"]
        if rows is not None:  # the engine's fused per-row pass (same quantities, same dtype)
            vals = [rows["f_gap"], rows["dist2"], rows["grad_norm2"]]
        else:  # values beyond the dtype's range are inf, and the divergence check marks them
            with np.errstate(over="ignore", invalid="ignore"):
                g = problem.grad(w)
                vals = [problem.f_gap(w), problem.dist2(w), (g * g).sum(axis=-1)]
        if track_grad_min:
            vals.append(grad_min)
        wa = None
        if average:
            wa = w_avg if t > 0 else w
            vals += [problem.f_gap(wa), problem.dist2(wa)]
        stacked = aggregate(xp.stack(vals), xp)  # (Q, C_alive, stats)
        host = to_host(stacked)
        results[k][:, alive, :] = host
        resolution.record(k, alive, w, wa, vals)
        if iterate is not None:
            iterate[k, alive] = to_host(w[:, 0, 0])

    def check(t: int) -> np.ndarray:
        """Indices (into the alive batch) of configurations that diverged by step t.

        Diverged: some replicate's iterate is non-finite, or its ‖w − w*‖² overflows the
        dtype, or exceeds DIVERGENCE_FACTOR·(its initial value + 1). The test is made on the
        host in float64, so a float32 limit that would itself overflow cannot hide it.
        """
        w = state[0]
        rows = fast_rows(t)
        if rows is not None:
            finite = np.asarray(rows["finite"])
            d2 = np.asarray(rows["dist2"].max(axis=1), dtype=np.float64)
        else:
            finite = to_host(xp.isfinite(w).all(axis=(1, 2)))
            d2 = np.asarray(to_host(problem.dist2(w).max(axis=1)), dtype=np.float64)
        lim = np.asarray(to_host(limit), dtype=np.float64)
        over = finite & ~np.isfinite(d2)
        big = np.isfinite(d2) & (d2 > lim)
        bad = np.flatnonzero(~finite | over | big)
        for j in bad:
            c = alive[j]
            diverged_at[c] = t
            if not finite[j]:
                reasons[c] = "non-finite iterate"
            elif over[j]:
                reasons[c] = f"‖w − w*‖² overflowed {np_dtype.name}"
            else:
                reasons[c] = (f"‖w − w*‖² = {d2[j]:.3g} grew beyond "
                              f"{DIVERGENCE_FACTOR:.0e}×(its start + 1)")
        return bad

    fast = None
    if engine != "reference" and not (track_grad_min or average):
        from .fast import fast_path

        fast = fast_path(problem=problem, method=method, oracle=oracle, schedule=schedule,
                         alpha=alpha, hypers=hypers, xp=xp, seed=seed,
                         config_keys=list(config_keys), replicates=replicates,
                         steps=steps, engine=engine, extra=extra)
    if engine == "fast" and fast is None:
        raise ValueError("engine='fast' is not available for this problem/method/oracle: "
                         "allowed 'auto' or 'reference'")

    def advance(t_from: int, t_to: int) -> None:
        """Advance every alive configuration from step t_from to t_to (reference path)."""
        # a configuration diverging between two checks runs on (inf, nan) until the next
        # check drops it: as on the fast path, no warnings
        with np.errstate(over="ignore", invalid="ignore"):
            _steps(t_from, t_to)

    def _steps(t_from: int, t_to: int) -> None:
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

    fused_measure = {"measure": True} if getattr(fast, "fused_measure", False) else {}
    boundaries = np.union1d(rec[rec > 0], np.arange(check_every, steps + 1, check_every))
    measure(0)
    # engines that measure at several steps in one call run through up to MEASURES_PER_CALL
    # boundaries at once (fewer calls: fewer thread start/stop points), with a copy of the
    # replicates the wide re-evaluation samples; when a record needs more of the state (all
    # replicates re-evaluated, the iterate) the calls stop at every boundary as before
    multi = (getattr(fast, "measures_at", False) and iterate is None
             and (resolution.host is None or resolution.sample is not None))
    # replicates whose iterates a call keeps for the wide re-evaluation (resolution.sample
    # is None when all are re-evaluated: then multi is off)
    sample = int(resolution.sample) if multi and resolution.host is not None else 0
    t_done = 0
    i = 0
    while i < boundaries.size:
        if fast is not None and multi:
            group = [int(t) for t in boundaries[i:i + MEASURES_PER_CALL]]
            state = fast.advance(state, t_done, group[-1], measure_at=group, sample=sample)
            call["engine"], call["pos"] = fast, np.arange(alive.size)
            row_cache.clear()
            call_records.clear()
            call_records.update(_call_records(fast, [t for t in group if t in rec_index],
                                              resolution, xp))
        elif fast is not None:
            # every boundary is measured next (divergence check, record): engines that can
            # measure each row in the stepping pass do so
            group = [int(boundaries[i])]
            state = fast.advance(state, t_done, group[-1], **fused_measure)
        else:
            group = [int(boundaries[i])]
            advance(t_done, group[-1])
        i += len(group)
        stop = False
        for t_done in group:
            with np.errstate(all="ignore"):
                bad = check(t_done)
            if bad.size:
                keep = np.setdiff1d(np.arange(alive.size), bad)
                alive = alive[keep]
                if call["pos"] is not None:
                    call["pos"] = call["pos"][keep]
                if keep.size == 0:
                    stop = True
                    break
                kx = xp.asarray(keep)
                row_cache.clear()
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
        if stop:
            break

    curves = _to_frame(results, rec, quantities, iterate, params, diverged_at, replicates,
                       experiment, np_dtype, resolution.error)
    return RunResult(curves, diverged_at, reasons, time.perf_counter() - t_start, params)


def _call_records(engine: Any, steps: list[int], resolution: _Resolution, xp: ModuleType
                  ) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
    """The aggregates and evaluation errors of the records ``steps`` one engine call measured,
    computed together: one :func:`~simulate.recording.aggregate` and one wide re-evaluation
    for the call instead of one per record (the per-call overhead was most of their cost).
    Every configuration row is reduced on its own, so the numbers are those of one record
    at a time."""
    if not steps:
        return {}
    at = [engine.measured_at(t) for t in steps]
    with np.errstate(all="ignore"):  # rows of configurations about to be dropped
        agg = to_host(aggregate(xp.stack([xp.stack([a["f_gap"], a["dist2"], a["grad_norm2"]])
                                          for a in at]), xp))  # (n, Q, C, stats)
    err = resolution.errors_many([a.get("w_sample") for a in at],
                                 [[a["f_gap"], a["dist2"], a["grad_norm2"]] for a in at])
    return {t: (agg[i], None if err is None else err[i]) for i, t in enumerate(steps)}


#: a recorded mean is flagged ``underflow`` when it is below this multiple of its evaluation
#: error in the run's dtype (then it has less than one significant digit; see _to_frame)
RESOLUTION_FACTOR = 10.0
#: ... or below this multiple of the dtype's smallest normal number (gradual underflow:
#: squares of subnormals lose relative precision, then flush to 0)
TINY_FACTOR = 1e3
#: quantities whose error is estimated from another one: the running minimum of ‖∇f‖² is not
#: a function of the current iterate; its error is taken as that of ‖∇f(w_t)‖² (same region)
_ERROR_OF = {"grad_norm2_min": "grad_norm2"}

#: boundaries (record or divergence-check steps) one engine call may run through when the
#: engine measures at several steps per call (``measures_at``)
MEASURES_PER_CALL = 32


def _reference_dtype(dtype: np.dtype) -> np.dtype | None:
    """A strictly wider float type to re-evaluate ``dtype`` quantities in (None if none)."""
    if np.dtype(dtype) == np.float32:
        return np.dtype(np.float64)
    return WIDER_LONGDOUBLE


class _Resolution:
    """The evaluation error of every tracked quantity, measured on a few replicates.

    At each recorded step, the quantities of the first ``SAMPLE`` replicates' iterates (and
    averaged iterates) are evaluated again, on the host, in a wider type (float64 for
    float32 runs; ``longdouble`` for float64 runs where it is wider, i.e. x87 80-bit on
    x86-64, else nothing). Same iterate, same formula (or, for least squares' ∇f in
    longdouble, the identical H(w − w*) + ∇f(w*), which is exact algebra and more accurate:
    ``FiniteSumLeastSquares.grad``): the difference is the rounding error
    of the run's dtype at that point — including cancellation, e.g. ≈ eps·|f*| in a gap
    computed as f(w) − f* (FiniteSumLogistic) or in a gradient Aᵀ(Aw − b) near w* — while
    direct forms such as ½ Σ λ_i (w − w*)_i² keep a small relative error. For float32 runs
    the float64 evaluation also uses the problem's float64 data, so a float32 gap below the
    effect of rounding the problem's data (w*, A, b) to float32 counts as error too. The
    mean over the sampled replicates of |error| bounds the error of the recorded mean (its
    errors can only partly cancel). A problem that cannot be evaluated on a replicate
    subset (per-replicate data) is evaluated on all replicates; one that cannot be evaluated
    in the wider type at all records no error, and only the ``TINY_FACTOR`` floor applies.
    """

    SAMPLE = 16
    #: elements (C·m·d) of one batched re-evaluation in :meth:`errors_many`
    EVAL_CHUNK = 1 << 16

    def __init__(self, problem: Problem, quantities: Sequence[str], n_rec: int, n_cfg: int,
                 dtype: np.dtype) -> None:
        self.quantities = list(quantities)
        self.error = np.zeros((n_rec, len(self.quantities), n_cfg))
        # float64 quantities evaluated in direct form carry a relative rounding error only:
        # nothing to measure (and the wide re-evaluation dominated the runtime of such runs)
        self.direct: set[str] = set()
        if np.dtype(dtype) == np.float64:
            self.direct = (set(BASE_QUANTITIES) if getattr(problem, "direct_forms", False)
                           else set(getattr(problem, "direct_quantities", ())))
        direct = self.direct >= set(BASE_QUANTITIES)
        self.ref = None if direct else _reference_dtype(dtype)
        self.host = problem.to(np) if self.ref is not None else None
        self.sample: int | None = self.SAMPLE

    def _evaluate(self, w: Any) -> dict[str, np.ndarray]:
        """f_gap, dist2, grad_norm2 (C, m) at the host array ``w`` (C, m, d) in ``self.ref``,
        except those in direct form (``self.direct``), which are not measured."""
        w = np.asarray(to_host(w)).astype(self.ref)
        out = {}
        if "f_gap" not in self.direct:
            out["f_gap"] = np.asarray(self.host.f_gap(w))
        if "dist2" not in self.direct:
            out["dist2"] = np.asarray(self.host.dist2(w))
        if "grad_norm2" not in self.direct:
            g = self.host.grad(w)
            out["grad_norm2"] = np.asarray((g * g).sum(axis=-1))
        return out

    def _is_direct(self, q: str) -> bool:
        """Whether quantity ``q``'s error is not measured (its source is in direct form)."""
        src = _ERROR_OF.get(q, q)
        return src.removesuffix("_avg") in self.direct

    def _errors(self, w: Any, w_avg: Any, vals: Sequence[Any], m: int | None) -> np.ndarray:
        cut = slice(None) if m is None else slice(0, m)
        ref = self._evaluate(w[:, cut, :])
        if w_avg is not None:
            ref_avg = self._evaluate(w_avg[:, cut, :])
            ref.update({f"{q}_avg": ref_avg[q] for q in ("f_gap", "dist2") if q in ref_avg})
        own = {q: np.asarray(to_host(v[:, cut])) for q, v in
               zip(self.quantities, vals, strict=True)}
        out = []
        for q in self.quantities:
            if self._is_direct(q):
                out.append(np.zeros(np.shape(own[q])[0]))
                continue
            src = _ERROR_OF.get(q, q)
            out.append(self._abs_error(own[src], ref[src]).mean(axis=1))
        return np.stack(out)  # (Q, C)

    def _abs_error(self, own: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """|value in the dtype − value in the wider type|, float64; 0 where not finite."""
        with np.errstate(all="ignore"):
            err = np.abs(own.astype(self.ref) - ref).astype(np.float64)
        return np.where(np.isfinite(err), err, 0.0)

    def errors_many(self, ws: Sequence[Any], vals: Sequence[Sequence[Any]]) -> np.ndarray | None:
        """:meth:`record`'s errors for several records of the same configurations at once,
        (n, Q, C): the sampled iterates ``ws`` (each (C, m, d)) re-evaluated in one pass.
        None where this cannot be done (no sample, per-replicate data, an average tracked):
        the caller then records them one at a time."""
        if self.host is None:  # nothing is measured: the errors stay 0
            return np.zeros((len(ws), len(self.quantities), np.shape(vals[0][0])[0]))
        if (self.sample is None or any(w is None for w in ws)
                or len(self.quantities) != len(BASE_QUANTITIES)):
            return None
        C, m, d = np.shape(ws[0])
        m = min(self.sample, m)
        # records per evaluation: temporaries of at most EVAL_CHUNK elements stay in cache
        # (one evaluation of all 32 records of a W1 call, 4 MB each, ran 2x slower)
        per = max(1, self.EVAL_CHUNK // max(1, C * m * d))
        ref: dict[str, list[np.ndarray]] = {}
        try:
            with np.errstate(all="ignore"):
                for i in range(0, len(ws), per):
                    part = self._evaluate(np.concatenate([to_host(w)[:, :m]
                                                          for w in ws[i:i + per]], axis=1))
                    for q, v in part.items():
                        ref.setdefault(q, []).append(v)
        except (ValueError, TypeError):
            return None
        ref = {q: np.concatenate(v, axis=1) for q, v in ref.items()}
        out = []
        for qi, q in enumerate(self.quantities):
            if self._is_direct(q):
                out.append(np.zeros((C, len(ws))))
                continue
            own = np.concatenate([np.asarray(to_host(v[qi][:, :m])) for v in vals], axis=1)
            err = self._abs_error(own, ref[q]).reshape(C, len(ws), m)
            out.append(err.mean(axis=2))  # (C, n)
        return np.stack(out).transpose(2, 0, 1)  # (n, Q, C)

    def record(self, k: int, alive: np.ndarray, w: Any, w_avg: Any, vals: Sequence[Any]
               ) -> None:
        """Store the mean |value in dtype − value in the wider type| at record ``k``."""
        while self.host is not None:
            try:
                with np.errstate(all="ignore"):
                    self.error[k][:, alive] = self._errors(w, w_avg, vals, self.sample)
                return
            except (ValueError, TypeError):  # per-replicate data: all replicates, else none
                if self.sample is None:
                    self.host = None
                self.sample = None


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
    error: np.ndarray | None = None,
) -> pd.DataFrame:
    """The tidy measured table from the recorded aggregates.

    Rows whose mean is non-finite (configurations after they diverged) are absent; every
    row carries ``diverged_at`` (NaN when the configuration did not diverge).

    ``underflow`` marks recorded values that the run's dtype does not resolve, which
    figures must not draw as data::

        underflow  ⇔  not (value ≥ max(TINY_FACTOR·tiny, RESOLUTION_FACTOR·err))

    * ``tiny`` is the smallest normal number of the dtype (float32 1.2e-38, float64
      2.2e-308): with w* = 0 a gap decays through the subnormals to exactly 0, and below
      1e3·tiny a sum of squares has lost relative precision (true underflow).
    * ``err`` (``error[k, q, c]``, from :class:`_Resolution`) is the measured evaluation
      error of the quantity at that step: |value in the dtype − value in a wider type| at
      replicate 0's iterate. A value below 10·err has no significant digit left — it is
      rounding noise, e.g. a float32 logistic gap f(w) − f* below ≈ 10·eps·|f*| ≈ 1e-6·|f*|
      (eps = 1.2e-7), or a float32 distance below the float32 rounding of w*.

    A threshold relative to the start (eps·f(w₀)) is deliberately *not* used: for the
    direct forms (½ Σ λ_i (w − w*)_i² with w* = 0, PL-sin, Lessard) a float32 gap stays
    accurate to relative precision ~eps far below eps·f(w₀), down to ``tiny``. Stagnation
    (α·∇f below half an ulp of w, so the iterate stops moving) is not flagged either: the
    value of the stuck iterate is resolved, and its plateau is a true property of the run
    in that dtype. Exact zeros and negative gaps are always flagged.
    """
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
    err = np.zeros(results.shape[:3]) if error is None else np.asarray(error, dtype=float)
    threshold = np.maximum(TINY_FACTOR * float(np.finfo(dtype).tiny),
                           RESOLUTION_FACTOR * err.reshape(-1)[keep])
    frame["underflow"] = ~(frame["value"].to_numpy() >= threshold)
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
