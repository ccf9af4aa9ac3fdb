"""Experiments: named, documented recipes (problem, methods, sweep, theory curves, verdicts).

An :class:`Experiment` declares its parameters (:class:`Param`, with a value for the ``quick``
size used by the tests and the ``full`` size used by the report) and a ``build`` function that
runs the simulations and returns an :class:`ExperimentResult` made with a
:class:`ResultBuilder`: the tidy curves (measured, bound, exact), optional scaling points,
the verdicts and the findings (sentences whose numbers are computed, never typed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from ..runner import RunResult
from ..validation import check_choice, check_int, check_range
from ..verdicts import Verdict

__all__ = [
    "CURVE_COLUMNS",
    "SCALING_COLUMNS",
    "VERDICT_COLUMNS",
    "Context",
    "Experiment",
    "ExperimentResult",
    "Param",
    "ResultBuilder",
]

CURVE_COLUMNS = ("experiment", "config", "method", "label", "panel", "source", "quantity",
                 "step", "value", "stderr", "n", "q05", "q50", "q95", "diverged_at",
                 "underflow")
VERDICT_COLUMNS = ("experiment", "check", "config", "measured", "predicted", "ratio",
                   "tolerance", "status", "detail")
SCALING_COLUMNS = ("experiment", "figure", "series", "source", "x", "y", "stderr", "x_label",
                   "y_label", "slope", "slope_stderr", "predicted_slope")
SIZES = ("quick", "full")
#: the largest value an integer parameter takes unless it sets its own ``high``
MAX_COUNT = 10**9
#: the magnitudes a float parameter may take (or exactly 0, where its range allows 0): a
#: constant, its square and a product with another one stay inside float64 (≈ 1.8e308), so
#: steps, gaps and variances of a run overflow only when the run itself diverges
MAX_MAGNITUDE = 1e100
MIN_MAGNITUDE = 1e-100


@dataclass(frozen=True)
class Param:
    """A settable experiment parameter.

    ``kind`` is ``int``, ``float`` or ``str``; ``sweep`` allows a list of values (a comma list
    on the command line); ``low``/``high`` bound numbers (inclusive unless ``open_low``);
    ``choices`` restricts strings.
    """

    name: str
    kind: type
    doc: str
    quick: Any
    full: Any
    sweep: bool = False
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    choices: tuple[str, ...] = ()

    def validate(self, value: Any) -> Any:
        """The value converted and checked; a list when ``sweep``."""
        if self.sweep:
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            if not values:
                raise ValueError(f"{self.name} is empty: allowed one value or a comma list")
            return [self._one(v) for v in values]
        if isinstance(value, (list, tuple)):
            raise ValueError(f"{self.name}={value!r} is a list: this parameter takes one value")
        return self._one(value)

    def _one(self, value: Any) -> Any:
        if self.kind is int:
            # counts (d, steps, replicates, B, ...) are capped at MAX_COUNT unless the
            # parameter says otherwise: larger values cannot be allocated or run here
            return check_int(self.name, value,
                             None if self.low is None else math.ceil(self.low),
                             MAX_COUNT if self.high is None else math.floor(self.high))
        if self.kind is float:
            if isinstance(value, bool):
                raise ValueError(f"{self.name}={value!r} is not allowed: expected a number")
            out = check_range(self.name, value, self.low, self.high,
                              low_inclusive=not self.open_low)
            if out != 0 and not MIN_MAGNITUDE <= abs(out) <= MAX_MAGNITUDE:
                raise ValueError(f"{self.name}={value!r} is out of range: allowed magnitudes "
                                 f"from {MIN_MAGNITUDE:g} to {MAX_MAGNITUDE:g} (or 0 where the "
                                 "parameter allows it)")
            return out
        if self.choices:
            return check_choice(self.name, value, self.choices)
        if not isinstance(value, str):
            raise ValueError(f"{self.name}={value!r} is not allowed: expected a string")
        return value


@dataclass
class Context:
    """What an experiment's ``build`` receives."""

    experiment: str
    size: str
    params: dict[str, Any]
    seed: int
    xp: ModuleType
    dtype: str = "float64"
    progress: Callable[[float], None] | None = None

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def key(self, *parts: Any) -> str:
        """A stable random-stream key for one configuration of this experiment."""
        return "|".join([self.experiment, *map(str, parts)])

    def report_progress(self, fraction: float) -> None:
        if self.progress is not None:
            self.progress(min(max(float(fraction), 0.0), 1.0))


@dataclass
class ExperimentResult:
    """The tables an experiment produces."""

    curves: pd.DataFrame
    verdicts: pd.DataFrame
    scaling: pd.DataFrame
    findings: list[str]


class ResultBuilder:
    """Accumulates an experiment's tables with consistent columns and config ids."""

    def __init__(self, experiment: str):
        self.experiment = experiment
        self._curves: list[pd.DataFrame] = []
        self._verdicts: list[Verdict] = []
        self._scaling: list[pd.DataFrame] = []
        self.findings: list[str] = []

    # ---------------------------------------------------------------- curves
    def add_run(self, result: RunResult, config_ids: Sequence[str],
                labels: Sequence[str] | None = None, panels: Sequence[str] | None = None,
                extra: Sequence[Mapping[str, Any]] | None = None) -> pd.DataFrame:
        """Add a runner result, renaming its configs; returns the added measured rows."""
        df = result.curves.copy()
        idx = df["config"].to_numpy()
        df["config"] = np.asarray(config_ids, dtype=object)[idx]
        df["label"] = np.asarray(labels if labels is not None else config_ids, dtype=object)[idx]
        df["panel"] = np.asarray(panels if panels is not None else [""] * len(config_ids),
                                 dtype=object)[idx]
        if extra is not None:
            extra_df = pd.DataFrame(list(extra))
            for col in extra_df.columns:
                df[col] = extra_df[col].to_numpy()[idx]
        df["experiment"] = self.experiment
        self._curves.append(df)
        return df

    def add_curve(self, config: str, quantity: str, source: str, steps: Any, values: Any,
                  params: Mapping[str, Any] | None = None) -> None:
        """Add a theory curve (``source`` = bound or exact); non-finite values are dropped."""
        check_choice("source", source, ("bound", "exact", "measured"))
        steps = np.asarray(steps)
        values = np.broadcast_to(np.asarray(values, dtype=float), steps.shape)
        ok = np.isfinite(values)
        df = pd.DataFrame({"config": config, "source": source, "quantity": quantity,
                           "step": steps[ok], "value": values[ok]})
        for k, v in (params or {}).items():
            df[k] = v
        df["experiment"] = self.experiment
        self._curves.append(df)

    # ---------------------------------------------------------------- verdicts/points
    def add_verdict(self, verdict: Verdict) -> Verdict:
        self._verdicts.append(verdict)
        return verdict

    def add_points(self, figure: str, series: str, source: str, x: Any, y: Any, *,
                   x_label: str, y_label: str, stderr: Any = math.nan, slope: float = math.nan,
                   slope_stderr: float = math.nan, predicted_slope: float = math.nan) -> None:
        x = np.atleast_1d(np.asarray(x, float))
        df = pd.DataFrame({"figure": figure, "series": series, "source": source, "x": x,
                           "y": np.broadcast_to(np.asarray(y, float), x.shape),
                           "stderr": np.broadcast_to(np.asarray(stderr, float), x.shape),
                           "x_label": x_label, "y_label": y_label, "slope": slope,
                           "slope_stderr": slope_stderr, "predicted_slope": predicted_slope})
        df["experiment"] = self.experiment
        self._scaling.append(df)

    def add_finding(self, sentence: str) -> None:
        self.findings.append(sentence)

    # ---------------------------------------------------------------- result
    def result(self) -> ExperimentResult:
        curves = pd.concat(self._curves, ignore_index=True) if self._curves else pd.DataFrame()
        curves = _order(curves, CURVE_COLUMNS)
        if "method" in curves:  # theory rows inherit the method of their config
            methods = curves.dropna(subset=["method"]).groupby("config")["method"].first()
            curves["method"] = curves["method"].fillna(curves["config"].map(methods))
        for col in ("label", "panel"):
            known = curves.dropna(subset=[col]).groupby("config")[col].first()
            curves[col] = curves[col].fillna(curves["config"].map(known))
        verdicts = pd.DataFrame([v.as_row() for v in self._verdicts],
                                columns=list(VERDICT_COLUMNS))
        verdicts["experiment"] = self.experiment
        scaling = (pd.concat(self._scaling, ignore_index=True) if self._scaling
                   else pd.DataFrame(columns=list(SCALING_COLUMNS)))
        scaling = _order(scaling, SCALING_COLUMNS)
        return ExperimentResult(curves, verdicts, scaling, list(self.findings))


def _order(df: pd.DataFrame, first: Sequence[str]) -> pd.DataFrame:
    for col in first:
        if col not in df:
            df[col] = np.nan
    rest = [c for c in df.columns if c not in first]
    return df[list(first) + rest]


@dataclass(frozen=True)
class Experiment:
    """A catalogue entry."""

    name: str
    title: str
    summary: str
    description: str
    formulas: tuple[str, ...]
    conditions: tuple[str, ...]
    params: tuple[Param, ...]
    build: Callable[[Context], ExperimentResult] = field(repr=False)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        allowed = ", ".join(p.name for p in self.params)
        raise ValueError(f"--set {name}: unknown parameter of experiment {self.name}; "
                         f"allowed: {allowed}")

    def resolve_params(self, size: str, overrides: Mapping[str, Any] | None = None
                       ) -> dict[str, Any]:
        """The parameter values for ``size`` with ``overrides`` applied and validated."""
        size = check_choice("size", size, SIZES)
        values = {p.name: p.validate(getattr(p, size)) for p in self.params}
        for name, value in (overrides or {}).items():
            values[name] = self.param(name).validate(value)
        return values
