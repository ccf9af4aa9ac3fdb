"""Scaling figures (log–log) drawn from a ``scaling`` table.

Input is ``scaling.csv`` as described in :mod:`plots.tables`: per figure, per series,
points with ``source`` ∈ {measured, exact, bound, fit} and the fitted / predicted slopes
repeated on every row of a series. Slopes are read from the table, never re-fitted; when
a series has a fitted slope but no ``fit`` rows, the fit line is drawn with that slope
through the geometric mean of its measured points (a drawing aid only).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .style import (
    PALETTE,
    SOURCE_STYLE,
    colour_map,
    ink,
    needs_outline,
    new_figure,
    readable_log_axis,
    source_legend_handles,
    styled,
)
from .tables import normalize_scaling, ordered_unique

__all__ = ["scaling", "slope_text"]

#: Marker of a series' measured points, per cycle through the palette.
SERIES_MARKERS = ("o", "s", "^", "D", "v")


def _num(x: float, digits: int = 2) -> str:
    if not np.isfinite(x):
        return "—"
    if x == 0 or 1e-2 <= abs(x) < 1e4:
        return f"{x:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{x:.0f}"
    return f"{x:.{digits}g}"


def slope_text(slope: float, slope_stderr: float, predicted: float) -> str:
    """``"slope 0.98 ± 0.03 (predicted 1)"``; parts whose numbers are NaN are left out."""
    parts: list[str] = []
    if np.isfinite(slope):
        s = f"slope {slope:.2f}"
        if np.isfinite(slope_stderr):
            s += f" ± {slope_stderr:.2f}"
        parts.append(s)
    if np.isfinite(predicted):
        pred = _num(predicted)
        parts.append(f"(predicted {pred})" if parts else f"predicted slope {pred}")
    return " ".join(parts)


def _first_finite(values: pd.Series) -> float:
    v = values.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(v[0]) if v.size else math.nan


def _first_text(values: pd.Series) -> str:
    for v in values:
        if v:
            return str(v)
    return ""


def _humanize(name: str) -> str:
    return name.replace("_", " ")


@styled
def scaling(
    points: pd.DataFrame,
    figure: str | None = None,
    *,
    experiment: str | None = None,
    title: str | None = None,
) -> Figure:
    """A log–log scaling figure: measured points with error bars, fit, theory lines.

    Per ``series`` one colour: measured points as markers with ``±1.96·stderr`` error
    bars (the lower bar clipped to stay positive), the ``fit`` line solid with the fitted
    slope ± its standard error and the predicted slope in the legend, ``exact`` rows
    dotted and ``bound`` rows dashed. Axis labels come from ``x_label`` / ``y_label``.

    Parameters
    ----------
    points
        A ``scaling`` table (see :mod:`plots.tables`).
    figure
        Which ``figure`` to draw; may be omitted when the table holds only one.
    experiment
        Restrict to one experiment when the table holds several.
    title
        Axes title; by default "<y_label> vs <x_label>".
    """
    df = normalize_scaling(points)
    if experiment is not None:
        df = df[df["experiment"] == experiment]
    figures = ordered_unique(df["figure"])
    if figure is None:
        if len(figures) != 1:
            raise ValueError(f"figure=None: the table holds {len(figures)} figures {figures}; "
                             "name one")
        figure = figures[0]
    df = df[df["figure"] == figure]
    if df.empty:
        raise ValueError(f"figure={figure!r}: no rows in the scaling table; have {figures}")

    series_names = ordered_unique(df["series"])
    colours = colour_map(series_names)
    x_label = _first_text(df["x_label"]) or "x"
    y_label = _first_text(df["y_label"]) or "y"

    fig = new_figure(7.6, 4.2)
    ax = fig.subplots()
    ax.set_xscale("log")
    ax.set_yscale("log")
    used: set[str] = set()
    handles: list[Line2D] = []
    labels: list[str] = []
    dropped = 0
    any_slope = False
    shown_x: list[np.ndarray] = []
    shown_y: list[np.ndarray] = []
    for i, name in enumerate(series_names):
        colour, _ = colours[name]
        # once the palette has cycled, the marker shape tells the series apart
        marker = SERIES_MARKERS[(i // len(PALETTE)) % len(SERIES_MARKERS)]
        s = df[df["series"] == name]
        xs_all = s["x"].to_numpy(dtype=float)
        ys_all = s["y"].to_numpy(dtype=float)
        ok = np.isfinite(xs_all) & np.isfinite(ys_all) & (xs_all > 0) & (ys_all > 0)
        dropped += int((~ok).sum())
        s = s[ok].sort_values("x")
        shown_x.append(s["x"].to_numpy(dtype=float))
        shown_y.append(s["y"].to_numpy(dtype=float))
        measured = s[s["source"] == "measured"]
        if not measured.empty:
            used.add("measured")
            x = measured["x"].to_numpy(dtype=float)
            y = measured["y"].to_numpy(dtype=float)
            se = measured["stderr"].to_numpy(dtype=float)
            half = np.where(np.isfinite(se), 1.96 * se, 0.0)
            lower = np.minimum(half, y * (1 - 1e-3))  # keep the lower end positive
            edge = "0.35" if needs_outline(colour) else "white"
            container = ax.errorbar(
                x, y, yerr=np.vstack([lower, half]), fmt=marker, color=colour, markersize=5,
                markeredgecolor=edge, markeredgewidth=0.7, ecolor=colour, elinewidth=1.1,
                capsize=2.5, zorder=4, linestyle="none",
            )
            container.set_label(f"measured:{name}")
            container.lines[0].set_gid(f"measured:{name}")
            for bars in container.lines[2]:
                bars.set_gid(f"errorbar:{name}")
        for source in ("exact", "bound"):
            th = s[s["source"] == source]
            if th.empty:
                continue
            used.add(source)
            ax.plot(th["x"].to_numpy(dtype=float), th["y"].to_numpy(dtype=float),
                    color=colour, gid=f"{source}:{name}", **ink(colour, SOURCE_STYLE[source]))
        slope = _first_finite(s["slope"]) if not s.empty else math.nan
        slope_se = _first_finite(s["slope_stderr"]) if not s.empty else math.nan
        predicted = _first_finite(s["predicted_slope"]) if not s.empty else math.nan
        fit = s[s["source"] == "fit"]
        if not fit.empty:
            used.add("fit")
            ax.plot(fit["x"].to_numpy(dtype=float), fit["y"].to_numpy(dtype=float),
                    color=colour, gid=f"fit:{name}", **ink(colour, SOURCE_STYLE["fit"]))
        elif np.isfinite(slope) and len(measured) >= 2:
            used.add("fit")
            x = measured["x"].to_numpy(dtype=float)
            y = measured["y"].to_numpy(dtype=float)
            lx, ly = np.log(x), np.log(y)
            xx = np.array([x.min(), x.max()])
            yy = np.exp(ly.mean() + slope * (np.log(xx) - lx.mean()))
            ax.plot(xx, yy, color=colour, gid=f"fit:{name}", **ink(colour, SOURCE_STYLE["fit"]))
        handles.append(Line2D([], [], color=colour, marker=marker,
                              markeredgecolor="0.35" if needs_outline(colour) else "white",
                              **ink(colour, {"linewidth": 1.2})))
        text = slope_text(slope, slope_se, predicted)
        any_slope = any_slope or bool(text)
        labels.append(f"{name}\n  {text}" if text else name)

    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title if title is not None else f"{y_label} vs {x_label}")
    if dropped:
        ax.text(0.98, 0.02, f"{dropped} non-positive point(s) not drawn",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=6.8, color="0.3")
    # a sweep over a few values spanning few decades: ticks at the values themselves (B = 1,
    # 2, 4, …), else at 1, 2, 5 × 10^k; wide ranges keep the decade ticks
    xs_all = np.concatenate(shown_x) if shown_x else np.array([])
    ys_all = np.concatenate(shown_y) if shown_y else np.array([])
    if xs_all.size:
        readable_log_axis(ax.xaxis, float(xs_all.min()), float(xs_all.max()), values=xs_all)
    if ys_all.size:
        y_lo, y_hi = ax.get_ylim()
        readable_log_axis(ax.yaxis, y_lo, y_hi)
    fig.legend(handles, labels, loc="outside right upper",
               title="series: fitted log–log slope" if any_slope else "series")
    sh, sl = source_legend_handles(
        [src for src in ("measured", "fit", "exact", "bound") if src in used], band=False
    )
    if sh:
        if "measured" in used:  # points with error bars, not a line
            sh[0] = Line2D([], [], color="black", marker="o", linestyle="none", markersize=5,
                           markeredgecolor="white")
            sl[0] = "measured (mean ± 95% CI)"
        sl = [lab.replace("exact expectation", "exact") for lab in sl]
        fig.legend(sh, sl, loc="outside right lower", title="line style")
    return fig
