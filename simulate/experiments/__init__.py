"""The experiment catalogue: ``CATALOGUE[name]`` → :class:`~.base.Experiment`."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import numpy as np

from ..validation import check_choice, check_int
from ..verdicts import measured_dtype
from .base import Context, Experiment, ExperimentResult

__all__ = ["CATALOGUE", "EXPERIMENT_MODULES", "get_experiment", "run_experiment"]

#: module name (in this package) of each catalogue entry, in report order
EXPERIMENT_MODULES: dict[str, str] = {
    "gd-nonconvex": "gd_nonconvex",
    "gd-linear-rate": "gd_linear_rate",
    "gd-optimal-step": "gd_optimal_step",
    "sgd-noise-floor": "sgd_noise_floor",
    "sgd-decreasing-step": "sgd_decreasing_step",
    "momentum-speedup": "momentum_speedup",
    "momentum-failure": "momentum_failure",
    "preconditioning": "preconditioning",
    "pl-nonconvex": "pl_nonconvex",
    "sampling": "sampling",
    "noise-models": "noise_models",
    "batch-size": "batch_size",
}


def _load() -> dict[str, Experiment]:
    out = {}
    for name, module in EXPERIMENT_MODULES.items():
        try:
            mod = importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as exc:  # an entry not written yet
            if exc.name == f"{__name__}.{module}":
                continue
            raise
        out[name] = mod.EXPERIMENT
    return out


CATALOGUE: dict[str, Experiment] = _load()


def get_experiment(name: str) -> Experiment:
    """The catalogue entry called ``name`` (one-line ValueError listing the names otherwise)."""
    return CATALOGUE[check_choice("experiment", name, list(CATALOGUE))]


def run_experiment(
    name: str,
    size: str = "quick",
    *,
    seed: int = 0,
    xp: ModuleType = np,
    dtype: str = "float64",
    overrides: Mapping[str, Any] | None = None,
    progress: Callable[[float], None] | None = None,
) -> ExperimentResult:
    """Run one catalogue experiment at ``size`` (``quick`` or ``full``) with overrides."""
    exp = get_experiment(name)
    params = exp.resolve_params(size, overrides)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    ctx = Context(name, size, params, seed, xp, dtype, progress)
    with measured_dtype(dtype):
        return exp.build(ctx)
