"""Recording schedules and replicate aggregates (mean, standard error, quantiles)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .validation import check_choice, check_int

__all__ = ["QUANTILES", "aggregate", "record_steps"]

QUANTILES = (0.05, 0.5, 0.95)


def record_steps(steps: int, points: int = 60, spacing: str = "log") -> np.ndarray:
    """Sorted unique steps in [0, steps] at which to record, always including 0 and ``steps``.

    ``log`` spaces them geometrically in t + 1 (dense early, sparse late), ``linear`` evenly,
    ``all`` records every step (small runs and trajectories only).
    """
    steps = check_int("steps", steps, 1)
    points = check_int("record_points", points, 2)
    spacing = check_choice("record_spacing", spacing, ("log", "linear", "all"))
    if spacing == "all" or points >= steps + 1:
        return np.arange(steps + 1)
    if spacing == "log":
        raw = np.geomspace(1, steps + 1, points) - 1
    else:
        raw = np.linspace(0, steps, points)
    out = np.unique(np.round(raw).astype(np.int64))
    return np.union1d(out, [0, steps])


def aggregate(values: Any, xp: Any) -> Any:
    """Mean, standard error and quantiles over the replicate axis (the last one).

    Parameters
    ----------
    values
        Array shaped (..., R): (C, R) for one quantity, (Q, C, R) for several at once (one
        call instead of Q: the per-call overhead is most of the cost at W1 sizes).

    Returns
    -------
    Array shaped (..., 2 + len(QUANTILES)): mean, stderr (sample std with ddof=1 over √R; 0
    when R = 1), then the quantiles. Each row is reduced on its own, so stacking quantities
    does not change a bit of the result.
    """
    n_rep = values.shape[-1]
    mean = values.mean(axis=-1)
    if n_rep > 1:
        # values beyond ≈ 1e154 square to inf: the stderr is then inf, and the verdicts
        # treat such steps as uninformative (no warning for it)
        with np.errstate(over="ignore", invalid="ignore"):
            stderr = values.std(axis=-1, ddof=1) / np.sqrt(n_rep)
    else:
        stderr = xp.zeros_like(mean)
    with np.errstate(invalid="ignore"):  # inf values: their quantiles interpolate to nan
        quants = xp.quantile(values, xp.asarray(QUANTILES, dtype=values.dtype), axis=-1)
    return xp.concatenate([mean[..., None], stderr[..., None], xp.moveaxis(quants, 0, -1)],
                          axis=-1)
