"""Error-curve and trajectory figures drawn from a ``curves`` table.

Input is the tidy ``curves.csv`` table described in :mod:`plots.tables` (one row per
experiment, config, step, source, quantity). Nothing here simulates or evaluates theory:
bound and exact curves are the ``bound`` / ``exact`` rows of the table.

Every artist that carries data gets a ``gid`` of the form ``"<role>:<config>"`` with role
∈ {measured, band, bound, exact, diverged, reference}, so that tests and callers can find
them (``[l for l in ax.lines if l.get_gid().startswith("bound:")]``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogLocator, NullFormatter

from .style import (
    BAND_ALPHA,
    GREY,
    SOURCE_STYLE,
    colour_map,
    new_figure,
    quantity_label,
    source_legend_handles,
    styled,
)
from .tables import normalize_curves, ordered_unique

__all__ = ["error_curves", "trajectory", "choose_xscale"]

#: z-score of the two-sided 95 % normal interval drawn as the band.
Z95 = 1.96

_PANEL_W = 4.1
_PANEL_H = 3.0
_LEGEND_W = 2.4


@dataclass
class _Config:
    """Everything needed to draw one configuration in one panel."""

    key: tuple[str, str]
    label: str
    colour: str
    marker: str | None
    measured: pd.DataFrame
    theory: dict[str, pd.DataFrame]
    diverged_at: float
    n_underflow: int = 0
    first_underflow: float = math.nan
    n_nonpositive: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _fmt_step(t: float) -> str:
    return f"{int(t):,}" if np.isfinite(t) and float(t).is_integer() else f"{t:g}"


def choose_xscale(steps: Sequence[float] | np.ndarray) -> str:
    """``"log"`` when recording is log-spaced over ≥ 2 decades, else ``"linear"``.

    Log-spaced recording puts most points early; a linear axis would crush them.
    """
    s = np.unique(np.asarray(steps, dtype=float))
    s = s[np.isfinite(s)]
    if s.size < 4 or s.max() < 100:
        return "linear"
    return "log" if np.median(s) < 0.15 * s.max() else "linear"


def _apply_xscale(ax: Axes, xscale: str, min_step: float) -> None:
    if xscale == "log":
        if min_step <= 0:
            # t = 0 is recorded: a linear stretch on [0, 1], log beyond.
            ax.set_xscale("symlog", linthresh=1.0, linscale=0.35)
        else:
            ax.set_xscale("log")
    elif xscale in ("linear", "symlog"):
        ax.set_xscale(xscale)
    else:
        raise ValueError(f"xscale={xscale!r}: expected 'auto', 'log', 'linear' or 'symlog'")


def _grid(
    n_panels: int, ncols: int | None, *, sharex: bool, sharey: bool, legend_right: bool,
    extra_height: float = 0.0,
) -> tuple[Figure, list[Axes]]:
    n = max(n_panels, 1)
    if ncols is None:
        ncols = 1 if n == 1 else 2 if n in (2, 4) else 3
    ncols = max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    width = _PANEL_W * ncols + (_LEGEND_W if legend_right else 0.0)
    height = _PANEL_H * nrows + 0.55 + extra_height
    fig = new_figure(width, height)
    axes = fig.subplots(nrows, ncols, sharex=sharex, sharey=sharey, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.remove()
    return fig, list(axes[:n])


def _positive_finite(values: np.ndarray) -> np.ndarray:
    return np.isfinite(values) & (values > 0)


def _config_table(
    df: pd.DataFrame, keys: list[tuple[str, str]], colours: Mapping[str, tuple[str, str | None]],
    *, log_y: bool,
) -> list[_Config]:
    out: list[_Config] = []
    for key in keys:
        rows = df[(df["experiment"] == key[0]) & (df["config"] == key[1])]
        label = rows["label"].iloc[0]
        colour, marker = colours[label]
        measured = rows[rows["source"] == "measured"].sort_values("step")
        under = measured["underflow"].to_numpy(dtype=bool)
        cfg = _Config(
            key=key, label=label, colour=colour, marker=marker, measured=measured,
            theory={}, diverged_at=_diverged_at(rows),
            n_underflow=int(under.sum()),
            first_underflow=float(measured["step"][under].min()) if under.any() else math.nan,
        )
        measured = measured[~under]
        values = measured["value"].to_numpy(dtype=float)
        keep = _positive_finite(values) if log_y else np.isfinite(values)
        cfg.n_nonpositive = int((~keep).sum())
        cfg.measured = measured[keep]
        for source in ("bound", "exact"):
            th = rows[(rows["source"] == source) & ~rows["underflow"]].sort_values("step")
            v = th["value"].to_numpy(dtype=float)
            th = th[_positive_finite(v) if log_y else np.isfinite(v)]
            if not th.empty:
                cfg.theory[source] = th
        out.append(cfg)
    return out


def _diverged_at(rows: pd.DataFrame) -> float:
    d = rows["diverged_at"].to_numpy(dtype=float)
    d = d[np.isfinite(d)]
    return float(d.min()) if d.size else math.nan


def _y_extent(cfgs: list[_Config]) -> tuple[float, float]:
    """Range of the values that set the y-limits of a panel.

    Theory rows of a diverged configuration beyond its divergence step are left out, so
    an exploding exact curve cannot squash the others; they are still drawn (clipped).
    """
    vals: list[np.ndarray] = []
    for c in cfgs:
        vals.append(c.measured["value"].to_numpy(dtype=float))
        for th in c.theory.values():
            if np.isfinite(c.diverged_at):
                th = th[th["step"] <= c.diverged_at]
            vals.append(th["value"].to_numpy(dtype=float))
    allv = np.concatenate(vals) if vals else np.array([])
    allv = allv[np.isfinite(allv)]
    if allv.size == 0:
        return math.nan, math.nan
    return float(allv.min()), float(allv.max())


def _share_y(extents: list[tuple[float, float]], log_y: bool) -> bool:
    """Share the y-axis when every panel's range is a large part of the union's."""
    ext = [(lo, hi) for lo, hi in extents if np.isfinite(lo) and np.isfinite(hi)]
    if len(ext) <= 1:
        return True
    if log_y:
        ext = [(math.log10(lo), math.log10(hi)) for lo, hi in ext if lo > 0]
        if not ext:
            return True
    lo = min(e[0] for e in ext)
    hi = max(e[1] for e in ext)
    union = hi - lo
    if union <= 0:
        return True
    return min(e[1] - e[0] for e in ext) >= 0.4 * union


def _legend_label(cfg: _Config, include_divergence: bool = True) -> str:
    if include_divergence and np.isfinite(cfg.diverged_at):
        return f"{cfg.label} — diverged at t={_fmt_step(cfg.diverged_at)}"
    return cfg.label


def _note(ax: Axes, lines: list[str]) -> None:
    if not lines:
        return
    ax.text(
        0.02, 0.02, "\n".join(lines), transform=ax.transAxes, fontsize=6.8, color="0.3",
        ha="left", va="bottom", zorder=6, gid="note",
        bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": "0.85",
              "alpha": 0.85},
    )


def _draw_panel(
    ax: Axes, cfgs: list[_Config], *, band: str | None, log_y: bool, y_floor: float,
) -> set[str]:
    """Draw one panel; returns the sources (and 'diverged') it used."""
    used: set[str] = set()
    notes: list[str] = []
    for c in cfgs:
        gid = c.key[1]
        x = c.measured["step"].to_numpy(dtype=float)
        y = c.measured["value"].to_numpy(dtype=float)
        if x.size:
            used.add("measured")
            kwargs = dict(SOURCE_STYLE["measured"])
            if c.marker:
                kwargs.update(marker=c.marker, markersize=3.5, markevery=max(1, x.size // 8))
            ax.plot(x, y, color=c.colour, gid=f"measured:{gid}", **kwargs)
            if band is not None:
                lo, hi = _band(c.measured, band)
                ok = np.isfinite(lo) & np.isfinite(hi)
                if ok.any():
                    if log_y:
                        lo = np.maximum(lo, y_floor)
                        hi = np.maximum(hi, y_floor)
                    ax.fill_between(
                        x, lo, hi, where=ok, color=c.colour, alpha=BAND_ALPHA,
                        linewidth=0, zorder=1.5, gid=f"band:{gid}", interpolate=False,
                    )
        for source, th in c.theory.items():
            used.add(source)
            ax.plot(
                th["step"].to_numpy(dtype=float), th["value"].to_numpy(dtype=float),
                color=c.colour, gid=f"{source}:{gid}", **SOURCE_STYLE[source],
            )
        if np.isfinite(c.diverged_at):
            used.add("diverged")
            if x.size:
                ax.plot(
                    [x[-1]], [y[-1]], linestyle="none", marker="X", markersize=9,
                    color=c.colour, markeredgecolor="white", markeredgewidth=0.8,
                    zorder=5, gid=f"diverged:{gid}", clip_on=False,
                )
            else:
                notes.append(f"{c.label}: diverged at t={_fmt_step(c.diverged_at)}, no data")
        if c.n_underflow:
            notes.append(
                f"{c.label}: {c.n_underflow} underflowed point(s) from "
                f"t={_fmt_step(c.first_underflow)} not drawn"
            )
        if c.n_nonpositive:
            what = "non-positive" if log_y else "non-finite"
            notes.append(f"{c.label}: {c.n_nonpositive} {what} point(s) not drawn")
    _note(ax, notes)
    return used


def _band(measured: pd.DataFrame, band: str) -> tuple[np.ndarray, np.ndarray]:
    if band == "ci":
        mean = measured["value"].to_numpy(dtype=float)
        se = measured["stderr"].to_numpy(dtype=float)
        return mean - Z95 * se, mean + Z95 * se
    if band == "quantiles":
        return measured["q05"].to_numpy(dtype=float), measured["q95"].to_numpy(dtype=float)
    raise ValueError(f"band={band!r}: expected 'ci', 'quantiles' or None")


def _select(df: pd.DataFrame, experiment: str | None) -> pd.DataFrame:
    if experiment is not None:
        df = df[df["experiment"] == experiment]
        if df.empty:
            raise ValueError(f"experiment={experiment!r}: no rows in the curves table")
    return df


def _finish_log_axis(ax: Axes) -> None:
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=8))
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10) * 0.1, numticks=12))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _place_legends(
    fig: Figure, axes: list[Axes], panels_cfgs: list[list[_Config]], used: set[str],
    *, band: str | None, shared: bool,
) -> None:
    handles, labels = source_legend_handles(
        [s for s in ("measured", "bound", "exact", "diverged") if s in used],
        band=band is not None,
    )
    if shared:
        # one config legend for the figure: every panel shows the same labels
        by_label: dict[str, list[_Config]] = {}
        for cfgs in panels_cfgs:
            for c in cfgs:
                by_label.setdefault(c.label, []).append(c)
        h, lab = [], []
        for label, cs in by_label.items():
            div = sorted({c.diverged_at for c in cs if np.isfinite(c.diverged_at)})
            text = label
            if div:
                text += " — diverged at t=" + ", ".join(_fmt_step(t) for t in div)
            h.append(_config_handle(cs[0], bool(div)))
            lab.append(text)
        fig.legend(h, lab, loc="outside right upper", title="configuration")
        fig.legend(handles, labels, loc="outside right lower", title="line style")
    else:
        for ax, cfgs in zip(axes, panels_cfgs, strict=True):
            h = [_config_handle(c, np.isfinite(c.diverged_at)) for c in cfgs]
            ax.legend(
                h, [_legend_label(c) for c in cfgs], loc="upper left",
                bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
            )
        fig.legend(handles, labels, loc="outside lower center", ncols=len(handles))


def _config_handle(c: _Config, diverged: bool) -> Line2D:
    return Line2D(
        [], [], color=c.colour, linewidth=2.0, marker="X" if diverged else c.marker,
        markersize=7 if diverged else 4, markeredgecolor="white" if diverged else c.colour,
    )


@styled
def error_curves(
    curves: pd.DataFrame,
    quantity: str = "f_gap",
    *,
    experiment: str | None = None,
    xscale: str = "auto",
    yscale: str = "log",
    band: str | None = "ci",
    sharey: bool | str = "auto",
    ncols: int | None = None,
    title: str | None = None,
) -> Figure:
    """Error curves of ``quantity`` against the step: measured vs bound vs exact.

    One panel per ``panel`` value (small multiples in a grid, shared x; y shared when the
    panels' ranges are comparable, or as ``sharey`` says), one colour per configuration:

    * measured replicate mean — solid, with a shaded band ``mean ± 1.96·stderr`` (the 95 %
      confidence interval of the mean; ``band="quantiles"`` draws q05–q95 instead,
      ``band=None`` none), clipped to positive values on a log axis;
    * bound — dashed; exact expectation — dotted (white halo: visible on the measured line);
    * divergence — a ✕ at the last finite measured point, "diverged at t=…" in the legend;
    * rows flagged ``underflow`` (and non-positive values on a log axis) are skipped and
      counted in a note in the panel, never drawn as zeros.

    Parameters
    ----------
    curves
        A ``curves`` table (see :mod:`plots.tables`); extra columns are ignored.
    quantity
        Which ``quantity`` rows to draw (``f_gap``, ``dist2``, ``grad_norm2``, …).
    experiment
        Restrict to one experiment when the table holds several.
    xscale
        ``"auto"`` (log when recording is log-spaced, see :func:`choose_xscale`), ``"log"``
        (symlog near t = 0 so the initial point stays), ``"linear"``, or ``"symlog"``.
    yscale
        ``"log"`` (default) or ``"linear"``.
    band, sharey, ncols, title
        Band kind, y-sharing (``True``/``False``/``"auto"``), grid columns, figure title.

    Returns
    -------
    matplotlib.figure.Figure — not registered with pyplot.
    """
    df = _select(normalize_curves(curves), experiment)
    q = df[df["quantity"] == quantity]
    if q.empty:
        have = ordered_unique(df["quantity"])
        raise ValueError(f"quantity={quantity!r}: no rows in the curves table; have {have}")
    if yscale not in ("log", "linear"):
        raise ValueError(f"yscale={yscale!r}: expected 'log' or 'linear'")
    log_y = yscale == "log"

    panels = ordered_unique(q["panel"])
    keys_by_panel = {
        p: ordered_unique(zip(q.loc[q["panel"] == p, "experiment"],
                              q.loc[q["panel"] == p, "config"], strict=True))
        for p in panels
    }
    colours = colour_map(q["label"])
    panels_cfgs = [_config_table(q, keys_by_panel[p], colours, log_y=log_y) for p in panels]

    label_sets = [tuple(c.label for c in cfgs) for cfgs in panels_cfgs]
    shared_legend = len(panels) == 1 or all(s == label_sets[0] for s in label_sets)
    extents = [_y_extent(cfgs) for cfgs in panels_cfgs]
    share_y = _share_y(extents, log_y) if sharey == "auto" else bool(sharey)

    if xscale == "auto":
        xscale = choose_xscale(q["step"].to_numpy(dtype=float))
    fig, axes = _grid(
        len(panels), ncols, sharex=True, sharey=share_y, legend_right=True,
        extra_height=0.0 if shared_legend else 0.3,
    )

    used: set[str] = set()
    min_step = float(np.nanmin(q["step"].to_numpy(dtype=float)))
    for ax, panel, cfgs, (lo, hi) in zip(axes, panels, panels_cfgs, extents, strict=True):
        if share_y:
            finite = [e for e in extents if np.isfinite(e[0])]
            lo = min((e[0] for e in finite), default=lo)
            hi = max((e[1] for e in finite), default=hi)
        # the band's lower edge may not reach below the data by more than ~half a decade
        y_floor = lo / 3.0 if np.isfinite(lo) and lo > 0 else 1e-300
        if log_y:
            ax.set_yscale("log")
        used |= _draw_panel(ax, cfgs, band=band, log_y=log_y, y_floor=y_floor)
        _apply_xscale(ax, xscale, min_step)
        if np.isfinite(lo) and np.isfinite(hi):
            if log_y and lo > 0:
                pad = (hi / lo) ** 0.04 if hi > lo else 2.0
                ax.set_ylim(lo / pad, hi * pad)
            elif not log_y:
                pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.1
                ax.set_ylim(lo - pad, hi + pad)
        if log_y:
            _finish_log_axis(ax)
        if panel:
            ax.set_title(panel)
        ax.margins(x=0.02)

    for ax in axes:
        if ax.get_subplotspec().is_last_row() or not _has_axis_below(ax, axes):
            ax.set_xlabel(quantity_label("step"))
        if ax.get_subplotspec().is_first_col() or not share_y:
            ax.set_ylabel(quantity_label(quantity))
    _place_legends(fig, axes, panels_cfgs, used, band=band, shared=shared_legend)
    if title:
        fig.suptitle(title, fontsize=10.5)
    return fig


def _has_axis_below(ax: Axes, axes: list[Axes]) -> bool:
    spec = ax.get_subplotspec()
    below = spec.rowspan.stop
    col = spec.colspan.start
    return any(
        a.get_subplotspec().rowspan.start == below and a.get_subplotspec().colspan.start == col
        for a in axes
    )


def _levels(values: np.ndarray, max_levels: int = 8) -> np.ndarray | None:
    """Distinct reference levels, or ``None`` when the values look like a curve."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return np.array([])
    scale = max(float(np.max(np.abs(v))), 1e-300)
    rounded = np.unique(np.round(v / scale, 9)) * scale
    return rounded if rounded.size <= max_levels else None


@styled
def trajectory(
    curves: pd.DataFrame,
    *,
    quantity: str = "iterate",
    experiment: str | None = None,
    references: Sequence[float] | Mapping[str, float] | None = None,
    reference_label: str = "exact reference levels",
    xscale: str = "linear",
    ncols: int | None = None,
    title: str | None = None,
) -> Figure:
    """The iterate (coordinate 0 of replicate 0) against the step, linear axes.

    Measured ``iterate`` rows are drawn as lines (with point markers when there are few
    points), one colour per configuration, one panel per ``panel`` value. ``exact`` rows
    of the same quantity are reference levels (e.g. the three points of a heavy-ball
    limit cycle): when a configuration's exact rows take at most eight distinct values
    they become horizontal grey lines, otherwise (an exact trajectory) a dotted curve.
    ``references`` adds further horizontal lines (a sequence of values, or label → value).
    A diverged configuration gets a ✕ at its last point.
    """
    df = _select(normalize_curves(curves), experiment)
    q = df[df["quantity"] == quantity]
    if q[q["source"] == "measured"].empty and q.empty:
        raise ValueError(f"quantity={quantity!r}: no rows in the curves table")
    panels = ordered_unique(q["panel"])
    colours = colour_map(q["label"])
    fig, axes = _grid(len(panels), ncols, sharex=True, sharey=False, legend_right=True)
    used: set[str] = set()
    any_reference = False
    for ax, panel in zip(axes, panels, strict=True):
        pq = q[q["panel"] == panel]
        keys = ordered_unique(zip(pq["experiment"], pq["config"], strict=True))
        cfgs = _config_table(pq, keys, colours, log_y=False)
        level_values: list[float] = []
        for c in cfgs:
            gid = c.key[1]
            x = c.measured["step"].to_numpy(dtype=float)
            y = c.measured["value"].to_numpy(dtype=float)
            if x.size:
                used.add("measured")
                ax.plot(
                    x, y, color=c.colour, linewidth=1.2, zorder=3, gid=f"measured:{gid}",
                    marker="o" if x.size <= 80 else None, markersize=2.8,
                    label=_legend_label(c),
                )
            if np.isfinite(c.diverged_at) and x.size:
                used.add("diverged")
                ax.plot([x[-1]], [y[-1]], linestyle="none", marker="X", markersize=9,
                        color=c.colour, markeredgecolor="white", zorder=5,
                        gid=f"diverged:{gid}")
            for source, th in c.theory.items():
                values = th["value"].to_numpy(dtype=float)
                levels = _levels(values) if source == "exact" else None
                if levels is not None:
                    level_values.extend(levels.tolist())
                else:
                    used.add(source)
                    ax.plot(th["step"].to_numpy(dtype=float), values, color=c.colour,
                            gid=f"{source}:{gid}", **SOURCE_STYLE[source])
            _note(ax, [f"{c.label}: {c.n_nonpositive} non-finite point(s) not drawn"
                       for c in cfgs if c.n_nonpositive])
        extra: list[tuple[str | None, float]] = []
        if isinstance(references, Mapping):
            extra = [(str(k), float(v)) for k, v in references.items()]
        elif references is not None:
            extra = [(None, float(v)) for v in references]
        all_levels = ordered_unique([*level_values, *(v for _, v in extra)])
        names = {v: k for k, v in extra if k}
        for i, v in enumerate(sorted(all_levels)):
            any_reference = True
            ax.axhline(v, color=GREY, linestyle=(0, (4, 2)), linewidth=1.0, zorder=2,
                       gid=f"reference:{i}")
            text = names.get(v, f"{v:.4g}")
            ax.annotate(
                text, xy=(1.0, v), xycoords=("axes fraction", "data"), xytext=(3, 0),
                textcoords="offset points", va="center", ha="left", fontsize=7,
                color="0.3", annotation_clip=False,
            )
        _apply_xscale(ax, xscale, float(np.nanmin(pq["step"].to_numpy(dtype=float))))
        if panel:
            ax.set_title(panel)
        ax.set_xlabel(quantity_label("step"))
        ax.set_ylabel(quantity_label(quantity))
        ax.axhline(0.0, color="0.75", linewidth=0.6, zorder=1)
        if cfgs:
            ax.legend(loc="upper left", bbox_to_anchor=(1.09, 1.0), borderaxespad=0.0,
                      title="configuration")
    handles, labels = source_legend_handles(
        [s for s in ("bound", "exact", "diverged") if s in used], band=False
    )
    if any_reference:
        handles.append(Line2D([], [], color=GREY, linestyle=(0, (4, 2)), linewidth=1.0))
        labels.append(reference_label)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(handles))
    if title:
        fig.suptitle(title, fontsize=10.5)
    return fig
