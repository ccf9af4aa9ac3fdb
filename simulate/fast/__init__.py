"""The fused fast path: compiled multi-step loops on the CPU (numba) — see :func:`fast_path`.

The runner (:func:`simulate.runner.run`) asks :func:`fast_path` for an engine; ``None`` means
"not supported here" and the NumPy reference runs. An engine advances the method's state
arrays (C, R, d) from step t0 to t1 in one compiled call. The separable engine also measures
every row (f − f*, ‖w − w*‖², ‖∇f‖², finiteness) in the stepping pass at the record and
divergence-check steps it is given, so the runner can run through up to
``simulate.runner.MEASURES_PER_CALL`` of them in one call; the other engines are stopped at
each such step and measured from the state.

Supported (CPU, NumPy arrays, float64 or float32):

============================  ===================================  =========================
problem                       oracles                              how
============================  ===================================  =========================
QuadraticProblem, diagonal    exact, isotropic, curvature-aligned  one loop, normals inside
PLSinProblem, unrotated       exact, isotropic                     one loop, normals inside
QuadraticProblem, rotated     exact, isotropic                     BLAS A·(q − w*) per step,
                                                                   then one fused pass
FiniteSumLeastSquares         MinibatchSampling                    one loop: B row indices,
                              (with replacement)                   residuals, update
============================  ===================================  =========================

Every method of :mod:`simulate.methods`, every schedule (α_t is evaluated on the host per step
and passed in as an array). Elementwise methods run on every row above; ``precond_matrix``
(a dense ``grad_transform``, g ↦ P g with P (C, d, d) or shared (d, d)) runs on the
quadratics only:

============================  ===================================  =========================
problem                       oracles                              how (per step)
============================  ===================================  =========================
QuadraticProblem, diagonal    exact, isotropic, curvature-aligned  ∇f + noise in one pass;
                                                                   BLAS g·Pᵀ; fused update
QuadraticProblem, rotated     exact, isotropic                     BLAS A·(q − w*); noise;
DenseQuadraticProblem         exact, isotropic                     BLAS g·Pᵀ; fused update
============================  ===================================  =========================

Random streams: each (configuration, replicate) row has its own xoshiro256** generators (a
scalar stream and eight vector lanes that draw rows of normals eight at a time, or sixteen —
two per lane word — in float32 runs) seeded from
``SeedSequence(seed, spawn_key=(hash(config_key), replicate))`` (see
:mod:`simulate.fast._random`), so the numbers do not depend on thread count, on the split into
calls, or on the other configurations of the batch. They are not the reference path's numbers
(which come from one PCG64 per configuration): with noise the two paths agree in law, not
draw for draw; without noise they agree to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["AUTO_MIN_WORK", "fast_path"]


#: with ``engine="auto"``, runs of fewer coordinate-updates (C·R·d·T) than this stay on the
#: reference path: they take milliseconds there, while the compiled path costs about 1.3 s
#: once per process (numba's start-up) and a few seconds per loop the first time it is
#: compiled on a machine (then cached on disk) — small test runs would only pay for it.
AUTO_MIN_WORK = 1_000_000


def fast_path(*, problem: Any, method: Any, oracle: Any, schedule: Any, alpha: Any,
              hypers: Any, xp: Any, seed: int, config_keys: list[str],
              replicates: int, steps: int | None = None, engine: str = "fast",
              extra: dict[str, Any] | None = None, **_: Any) -> Any:
    """A fast engine for this run, or ``None`` where none applies (the reference path runs).

    Parameters
    ----------
    problem, method, oracle, schedule
        As given to :func:`simulate.runner.run` (the problem already moved to ``xp``).
    alpha
        Base step sizes, array (C, 1, 1).
    hypers
        The method's hyperparameters in ``method.hyper_names`` order, arrays (C, 1, 1) or
        (C, 1, d).
    xp
        Array module; only NumPy has a fast path (CuPy: ``None``).
    seed, config_keys, replicates
        Seed the per-(configuration, replicate) streams.
    steps, engine
        The run's T and engine choice, when the runner passes them: with ``engine="auto"`` a
        run of fewer than :data:`AUTO_MIN_WORK` coordinate-updates gets ``None``.
    extra
        The ``grad_transform``'s hyperparameters as the runner stacks them (``{"P": (C, d,
        d)}`` for ``precond_matrix``); without them such a method gets ``None``.

    Returns
    -------
    engine or None
        An object with ``advance(state, t0, t1) -> state`` (steps t0 … t1 − 1, in place),
        ``subset(keep) -> engine`` (keep: indices of the configurations still alive) and, for
        the quadratic and PL-sin engines, ``measure(state)``: per-(configuration, replicate)
        ``f_gap``, ``dist2``, ``grad_norm2`` and per-configuration ``finite``, computed in one
        compiled pass (for a runner that records through the engine).
    """
    if xp is not np or engine == "reference":
        return None
    if engine == "auto" and steps is not None:
        work = float(alpha.shape[0]) * replicates * problem.dim * steps
        if work < AUTO_MIN_WORK:
            return None
    try:
        from .engines import select_engine  # noqa: PLC0415  (numba loads on first use only)
    except ImportError:  # numba missing or broken: the reference path runs
        return None
    return select_engine(problem=problem, method=method, oracle=oracle, schedule=schedule,
                         alpha=alpha, hypers=hypers, seed=seed, config_keys=config_keys,
                         replicates=replicates, extra=extra)
