"""Small helpers shared by the experiment recipes (pure table manipulation)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["series", "steps_to_eps", "tail"]


def series(curves: pd.DataFrame, config: str, quantity: str, source: str = "measured",
           *, keep_underflow: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, value, stderr) of one curve, sorted by step.

    Rows flagged ``underflow`` (below what the dtype resolves, see the runner) are dropped
    unless ``keep_underflow``: they are not measurements of the quantity, so no verdict may
    compare them with theory.
    """
    sel = curves[(curves["config"] == config) & (curves["quantity"] == quantity)
                 & (curves["source"] == source)].sort_values("step")
    if not keep_underflow and "underflow" in sel:
        sel = sel[~sel["underflow"].fillna(False).astype(bool)]
    stderr = sel["stderr"].to_numpy(float) if "stderr" in sel else np.zeros(len(sel))
    return sel["step"].to_numpy(), sel["value"].to_numpy(float), stderr


def tail(steps: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """Boolean mask of the recorded steps in the last ``fraction`` of the run."""
    steps = np.asarray(steps)
    return steps >= (1 - fraction) * steps.max()


def steps_to_eps(steps: np.ndarray, values: np.ndarray, eps: float) -> float:
    """First step at which the curve reaches ``eps``, interpolating log(value) linearly.

    Between two recorded steps the error of a linearly converging method is log-linear, so
    the interpolation is exact up to the curve's curvature in the log domain. NaN if never.
    """
    steps = np.asarray(steps, float)
    values = np.asarray(values, float)
    hit = np.flatnonzero(values <= eps)
    if hit.size == 0:
        return math.nan
    k = hit[0]
    if k == 0:
        return float(steps[0])
    t0, t1 = steps[k - 1], steps[k]
    v0, v1 = values[k - 1], values[k]
    if not (v0 > 0 and v1 > 0):
        return float(t1)
    frac = (math.log(v0) - math.log(eps)) / (math.log(v0) - math.log(v1))
    return float(t0 + frac * (t1 - t0))
