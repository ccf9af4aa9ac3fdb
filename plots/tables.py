"""Reading and normalising the saved results tables of a run directory.

This module is the presentation side of the contract between ``simulate/`` and
``plots/`` + ``reports/``. Nothing here simulates or computes theory; it only reads.

Run-directory format
--------------------
A run directory ``RUN/`` holds one sub-directory per experiment, ``RUN/<experiment>/``,
and optionally a top-level ``RUN/meta.json`` describing the whole run (command, seed,
backend, versions, wall time, ``"experiments"``: list of experiment names).

``curves.csv`` — tidy long format, one row per (experiment, config, step, source, quantity):

========================  ==========================================================
column                    meaning
========================  ==========================================================
``experiment``            experiment name
``config``                configuration id (read as a string)
``method``                optimizer name
``label``                 legend text for the config (falls back to ``config``)
``panel``                 subplot the config belongs to (string; empty → one panel)
``source``                ``measured`` | ``bound`` | ``exact``
``quantity``              ``f_gap`` | ``dist2`` | ``grad_norm2`` | ``grad_norm2_min`` |
                          ``f_gap_avg`` | ``iterate`` (coordinate 0 of replicate 0) | …
``step``                  step t (integer ≥ 0)
``value``                 measured replicate mean, or the theory value
``stderr``, ``n``         standard error of the mean and replicate count (measured only)
``q05``, ``q50``, ``q95`` replicate quantiles (measured only)
``diverged_at``           step at which the config diverged (NaN if it did not; measured
                          rows after it are absent)
``underflow``             true where the run's dtype does not resolve the value: below
                          1e3·tiny of the dtype, or below 10× its measured rounding error
                          (see ``simulate.runner._to_frame``); such rows are never drawn
…                         configuration parameters (``problem, d, L, mu, kappa, sigma2, B,
                          alpha, beta, noise, schedule``, …); any extra column is tolerated
========================  ==========================================================

Bound rows of a configuration whose theorem conditions do not hold are simply absent.
Required columns: ``config, source, quantity, step, value``; every other column is
optional and filled with its neutral value (NaN, empty string, ``False``).

``scaling.csv`` (optional) — points of scaling figures: ``experiment, figure, series,
source, x, y, stderr, x_label, y_label, slope, slope_stderr, predicted_slope``; ``figure``
names the figure (``steps_to_eps_vs_kappa``, ``plateau_vs_alpha``, …), ``series`` is the
legend entry, ``source`` ∈ {measured, exact, bound, fit}; the slope columns (fitted log–log
slope, its standard error, the predicted slope) repeat on each row of a series, NaN where
not applicable. Required: ``figure, series, source, x, y``.

``verdicts.csv`` — ``experiment, check, config, measured, predicted, ratio, tolerance,
status, detail``; status ∈ {pass, fail, n/a}; ``detail`` is a sentence (for n/a, the
reason). Required: ``check, status``.

``meta.json`` — ``experiment, title, description, formulas[], conditions[], findings[],
command, seed, backend, dtype, versions{}, wall_time_s, size ("quick" | "full"),
figures[]``. Every key is optional for reading.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CURVE_COLUMNS",
    "SCALING_COLUMNS",
    "VERDICT_COLUMNS",
    "experiment_dirs",
    "normalize_curves",
    "normalize_scaling",
    "normalize_status",
    "normalize_verdicts",
    "ordered_unique",
    "read_curves",
    "read_json",
    "read_meta",
    "read_scaling",
    "read_verdicts",
]

CURVE_COLUMNS: tuple[str, ...] = (
    "experiment", "config", "method", "label", "panel", "source", "quantity", "step",
    "value", "stderr", "n", "q05", "q50", "q95", "diverged_at", "underflow",
)
SCALING_COLUMNS: tuple[str, ...] = (
    "experiment", "figure", "series", "source", "x", "y", "stderr", "x_label", "y_label",
    "slope", "slope_stderr", "predicted_slope",
)
VERDICT_COLUMNS: tuple[str, ...] = (
    "experiment", "check", "config", "measured", "predicted", "ratio", "tolerance",
    "status", "detail",
)

_CURVE_REQUIRED = ("config", "source", "quantity", "step", "value")
_CURVE_NUMERIC = ("step", "value", "stderr", "n", "q05", "q50", "q95", "diverged_at")
_CURVE_TEXT = ("experiment", "config", "method", "label", "panel", "source", "quantity")
_SCALING_REQUIRED = ("figure", "series", "source", "x", "y")
_SCALING_NUMERIC = ("x", "y", "stderr", "slope", "slope_stderr", "predicted_slope")
_SCALING_TEXT = ("experiment", "figure", "series", "source", "x_label", "y_label")
_VERDICT_REQUIRED = ("check", "status")
_VERDICT_NUMERIC = ("measured", "predicted", "ratio", "tolerance")
_VERDICT_TEXT = ("experiment", "check", "config", "status", "detail")

_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_STATUS_ALIASES = {
    "pass": "pass", "passed": "pass", "ok": "pass", "holds": "pass",
    "fail": "fail", "failed": "fail", "violated": "fail",
    "n/a": "n/a", "na": "n/a", "n.a.": "n/a", "not applicable": "n/a", "skip": "n/a",
    "skipped": "n/a", "nan": "n/a", "": "n/a",
}


def ordered_unique(values: Iterable[Any]) -> list[Any]:
    """Distinct values in order of first appearance."""
    return list(dict.fromkeys(values))


def _text_column(series: pd.Series) -> pd.Series:
    """Strings with NaN → ''; numbers that are whole written without '.0'."""

    def one(v: Any) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v).strip()

    return pd.Series([one(v) for v in series.tolist()], index=series.index, dtype=object)


def _bool_column(series: pd.Series) -> pd.Series:
    def one(v: Any) -> bool:
        if v is None or v is pd.NA:
            return False
        if isinstance(v, bool | np.bool_):
            return bool(v)
        if isinstance(v, int | float | np.integer | np.floating):
            return bool(np.isfinite(v) and v != 0)
        return str(v).strip().lower() in _TRUE_WORDS

    return pd.Series([one(v) for v in series.tolist()], index=series.index, dtype=bool)


def _require(df: pd.DataFrame, columns: Iterable[str], table: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{table}: missing required column(s) {missing}; present: {list(df.columns)}"
        )


def _normalize(
    df: pd.DataFrame, required: Iterable[str], numeric: Iterable[str], text: Iterable[str],
    table: str,
) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{table}: expected a pandas DataFrame, got {type(df).__name__}")
    _require(df, required, table)
    out = df.copy()
    for col in numeric:
        if col in out.columns:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
        else:
            out[col] = np.nan
    for col in text:
        out[col] = _text_column(out[col]) if col in out.columns else ""
    return out


def normalize_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """A copy of a ``curves`` table with every contract column present and typed.

    Text columns become ``str`` (NaN → ``""``), numeric columns ``float``, ``underflow``
    ``bool``; an empty ``label`` falls back to ``config``; ``source`` and ``quantity`` are
    lower-cased. Extra columns are kept untouched.
    """
    out = _normalize(curves, _CURVE_REQUIRED, _CURVE_NUMERIC, _CURVE_TEXT, "curves")
    out["underflow"] = (
        _bool_column(out["underflow"]) if "underflow" in curves.columns
        else pd.Series(False, index=out.index, dtype=bool)
    )
    out["source"] = out["source"].str.lower()
    out["quantity"] = out["quantity"].str.strip()
    empty_label = out["label"] == ""
    out.loc[empty_label, "label"] = out.loc[empty_label, "config"]
    return out


def normalize_scaling(points: pd.DataFrame) -> pd.DataFrame:
    """A copy of a ``scaling`` table with every contract column present and typed."""
    out = _normalize(points, _SCALING_REQUIRED, _SCALING_NUMERIC, _SCALING_TEXT, "scaling")
    out["source"] = out["source"].str.lower()
    return out


def normalize_status(status: Any) -> str:
    """``pass`` | ``fail`` | ``n/a`` for the usual spellings; other words pass through."""
    text = "" if status is None or (isinstance(status, float) and np.isnan(status)) else status
    key = str(text).strip().lower()
    return _STATUS_ALIASES.get(key, key)


def normalize_verdicts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """A copy of a ``verdicts`` table with every contract column present and typed."""
    out = _normalize(verdicts, _VERDICT_REQUIRED, _VERDICT_NUMERIC, _VERDICT_TEXT, "verdicts")
    out["status"] = [normalize_status(s) for s in out["status"].tolist()]
    return out


def _read_csv(path: Path) -> pd.DataFrame:
    # keep_default_na with the default NA strings; low_memory=False for mixed columns
    return pd.read_csv(path, low_memory=False)


def _table_path(exp_dir: str | Path, name: str) -> Path:
    p = Path(exp_dir)
    return p if p.suffix == ".csv" else p / name


def read_curves(exp_dir: str | Path) -> pd.DataFrame:
    """Read and normalise ``curves.csv`` (``exp_dir`` may be the file itself)."""
    path = _table_path(exp_dir, "curves.csv")
    return normalize_curves(_read_csv(path))


def read_scaling(exp_dir: str | Path) -> pd.DataFrame | None:
    """Read and normalise ``scaling.csv``; ``None`` when the experiment has none."""
    path = _table_path(exp_dir, "scaling.csv")
    if not path.is_file():
        return None
    return normalize_scaling(_read_csv(path))


def read_verdicts(exp_dir: str | Path) -> pd.DataFrame:
    """Read and normalise ``verdicts.csv``."""
    path = _table_path(exp_dir, "verdicts.csv")
    return normalize_verdicts(_read_csv(path))


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when the file is absent."""
    p = Path(path)
    if not p.is_file():
        return {}
    with p.open(encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a JSON object, got {type(data).__name__}")
    return data


def read_meta(exp_dir: str | Path) -> dict[str, Any]:
    """``meta.json`` of an experiment (or run) directory; ``{}`` when absent."""
    return read_json(Path(exp_dir) / "meta.json")


_TABLE_FILES = ("curves.csv", "verdicts.csv", "scaling.csv", "meta.json")


def experiment_dirs(run_dir: str | Path) -> list[Path]:
    """Experiment sub-directories of a run, in the order of the run's ``meta.json``.

    Experiments named in ``RUN/meta.json["experiments"]`` come first, in that order, even
    when their directory is missing (the caller reports that); then any other
    sub-directory holding at least one of the table files, sorted by name.
    """
    run = Path(run_dir)
    meta = read_meta(run)
    listed = meta.get("experiments") or []
    names: list[str] = []
    for item in listed:
        name = item.get("experiment") or item.get("name") if isinstance(item, dict) else item
        if name:
            names.append(str(name))
    found = sorted(
        p.name for p in run.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and any((p / f).is_file() for f in _TABLE_FILES)
    ) if run.is_dir() else []
    return [run / n for n in ordered_unique([*names, *found])]
