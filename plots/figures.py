"""Which figures an experiment gets, drawing them, and saving them atomically.

The choice is made from what the saved tables contain (see :mod:`plots.tables` for the
run-directory format), never from the experiment's code:

* one error-curve figure per *measured* quantity other than ``iterate``
  (file stem = the quantity, e.g. ``f_gap``);
* one scaling figure per ``figure`` value of ``scaling.csv`` (stem ``scaling_<figure>``);
* one trajectory figure when ``iterate`` rows exist (stem ``trajectory``).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from .curves import error_curves, trajectory
from .scaling import scaling
from .style import DPI, quantity_text
from .tables import ordered_unique, read_curves, read_meta, read_scaling

__all__ = [
    "FigurePlan",
    "draw_figure",
    "figures_for_experiment",
    "plan_figures",
    "save_figure_atomic",
    "save_figures",
]

#: Quantities in the order their figures appear; others follow alphabetically.
QUANTITY_ORDER = ("f_gap", "dist2", "grad_norm2", "grad_norm2_min", "f_gap_avg", "dist2_avg")

_SOURCE_CAPTION = {
    "measured": "measured replicate mean with its 95% confidence band (solid)",
    "bound": "theory bound (dashed)",
    "exact": "exact expectation (dotted)",
}


@dataclass(frozen=True)
class FigurePlan:
    """One figure an experiment's tables call for.

    ``name`` is the file stem, ``kind`` ∈ {error_curves, scaling, trajectory}, ``target``
    the quantity or the scaling figure's name, ``caption`` a sentence describing it.
    """

    name: str
    kind: str
    target: str
    caption: str


def safe_stem(name: str) -> str:
    """A file-name-safe version of ``name`` (letters, digits, ``_ . -``)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")
    return stem or "figure"


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _plan(curves: pd.DataFrame | None, points: pd.DataFrame | None) -> list[FigurePlan]:
    plans: list[FigurePlan] = []
    if curves is not None and not curves.empty:
        measured_q = ordered_unique(curves.loc[curves["source"] == "measured", "quantity"])
        order = [q for q in QUANTITY_ORDER if q in measured_q]
        order += sorted(q for q in measured_q if q not in QUANTITY_ORDER and q != "iterate")
        for q in order:
            sources = ordered_unique(curves.loc[curves["quantity"] == q, "source"])
            shown = [_SOURCE_CAPTION[s] for s in ("measured", "bound", "exact") if s in sources]
            caption = f"{quantity_text(q)} against step t: {_join(shown)}."
            plans.append(FigurePlan(safe_stem(q), "error_curves", q, caption))
        if "iterate" in set(curves["quantity"]):
            has_ref = bool(((curves["quantity"] == "iterate")
                            & (curves["source"] == "exact")).any())
            caption = "Iterate coordinate w_t[0] (replicate 0) against step t"
            caption += "; grey lines: exact reference levels." if has_ref else "."
            plans.append(FigurePlan("trajectory", "trajectory", "iterate", caption))
    if points is not None and not points.empty:
        for fig_name in ordered_unique(points["figure"]):
            rows = points[points["figure"] == fig_name]
            xl = next((v for v in rows["x_label"] if v), "x")
            yl = next((v for v in rows["y_label"] if v), "y")
            caption = (f"{yl} against {xl} (log–log): measured points with 95% error bars, "
                       "fitted slope ± standard error vs the predicted slope.")
            plans.append(FigurePlan(f"scaling_{safe_stem(fig_name)}", "scaling", fig_name,
                                    caption))
    return plans


def _load(exp_dir: Path) -> tuple[pd.DataFrame | None, pd.DataFrame | None, dict]:
    curves = read_curves(exp_dir) if (exp_dir / "curves.csv").is_file() else None
    return curves, read_scaling(exp_dir), read_meta(exp_dir)


def load_tables(exp_dir: str | Path) -> tuple[pd.DataFrame | None, pd.DataFrame | None, dict]:
    """(curves, scaling points, meta) of an experiment directory, as the figures read them."""
    return _load(Path(exp_dir))


def plan_figures(exp_dir: str | Path) -> list[FigurePlan]:
    """The figures the experiment's tables call for, in display order (nothing drawn)."""
    curves, points, _ = _load(Path(exp_dir))
    return _plan(curves, points)


def draw_figure(
    plan: FigurePlan, curves: pd.DataFrame | None, points: pd.DataFrame | None,
    title: str | None = None,
) -> Figure:
    """Draw one planned figure from the loaded tables."""
    if plan.kind == "error_curves":
        return error_curves(curves, plan.target, title=title)
    if plan.kind == "trajectory":
        return trajectory(curves, quantity=plan.target, title=title)
    if plan.kind == "scaling":
        return scaling(points, plan.target)
    raise ValueError(f"plan.kind={plan.kind!r}: expected error_curves, trajectory or scaling")


def figures_for_experiment(exp_dir: str | Path) -> dict[str, Figure]:
    """All figures of one experiment directory, keyed by file stem (see module doc)."""
    exp = Path(exp_dir)
    curves, points, meta = _load(exp)
    title = meta.get("title") or None
    return {p.name: draw_figure(p, curves, points, title) for p in _plan(curves, points)}


def save_figure_atomic(fig: Figure, path: str | Path, *, fmt: str = "png", dpi: int = DPI) -> None:
    """Write ``fig`` to ``path``: a temporary file in the same directory, then ``os.replace``.

    A reader never sees a half-written file; on error the temporary file is removed.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            # no creation date in SVG metadata: the same tables give the same bytes
            meta = {"Date": None} if fmt == "svg" else None
            fig.savefig(fh, format=fmt, dpi=dpi, metadata=meta)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_plan(plan: FigurePlan, curves: pd.DataFrame | None, points: pd.DataFrame | None,
                title: str | None, target: Path, *, svg: bool, prefix: str, dpi: int) -> list[str]:
    fig = draw_figure(plan, curves, points, title)
    written: list[str] = []
    try:
        for fmt in ("png", "svg") if svg else ("png",):
            name = f"{prefix}{plan.name}.{fmt}"
            save_figure_atomic(fig, target / name, fmt=fmt, dpi=dpi)
            written.append(name)
    finally:
        fig.clear()
    return written


def save_figures(
    exp_dir: str | Path,
    svg: bool = False,
    *,
    out_dir: str | Path | None = None,
    prefix: str = "",
    dpi: int = DPI,
    only: str | None = None,
    tables: tuple[pd.DataFrame | None, pd.DataFrame | None, dict] | None = None,
) -> list[str]:
    """Draw an experiment's figures and write them as PNG (and SVG when ``svg``).

    Files go to ``out_dir`` (default: the experiment directory) as
    ``<prefix><stem>.png``; each is written atomically (:func:`save_figure_atomic`).
    ``only`` (a plan name, see :func:`plan_figures`) draws that one figure — what a worker
    process does when figures are drawn in parallel; ``tables`` are the directory's tables as
    :func:`load_tables` returns them, when the caller has them already. Returns the file
    names written, in display order (PNG before its SVG).
    """
    exp = Path(exp_dir)
    target = Path(out_dir) if out_dir is not None else exp
    target.mkdir(parents=True, exist_ok=True)
    curves, points, meta = tables if tables is not None else _load(exp)
    title = meta.get("title") or None
    plans = _plan(curves, points)
    if only is not None:
        plans = [p for p in plans if p.name == only]
        if not plans:
            raise ValueError(f"only={only!r}: no such figure in {exp}")
    written: list[str] = []
    for plan in plans:
        written += _write_plan(plan, curves, points, title, target, svg=svg, prefix=prefix,
                               dpi=dpi)
    return written
