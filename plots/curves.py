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
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, Locator, LogLocator, NullFormatter, NullLocator

from .style import (
    BAND_ALPHA,
    GREY,
    SOURCE_STYLE,
    colour_map,
    ink,
    needs_outline,
    new_figure,
    quantity_label,
    readable_log_axis,
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
            ax.set_xscale("symlog", linthresh=1.0, linscale=0.6)
        else:
            ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(_step_formatter))
        ax.xaxis.set_minor_formatter(NullFormatter())
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


def _values(cfgs: list[_Config]) -> np.ndarray:
    vals = [np.array([])]
    for c in cfgs:
        vals.append(c.measured["value"].to_numpy(dtype=float))
        vals.extend(th["value"].to_numpy(dtype=float) for th in c.theory.values())
    allv = np.concatenate(vals)
    return allv[np.isfinite(allv)]


#: How far (in decades, on a log axis) a diverging curve may rise above the others.
DIVERGED_HEADROOM_DECADES = 2.0


def _y_extent(cfgs: list[_Config], log_y: bool) -> tuple[float, float]:
    """Range of the values that set the y-limits of a panel.

    Diverged configurations may raise the top by at most
    :data:`DIVERGED_HEADROOM_DECADES` above the others (on a log axis): an exploding curve
    leaves through the top edge instead of squashing the converging ones; its ✕ is then
    drawn on the edge.
    """
    calm = _values([c for c in cfgs if not np.isfinite(c.diverged_at)])
    wild = _values([c for c in cfgs if np.isfinite(c.diverged_at)])
    if calm.size == 0:
        calm, wild = wild, np.array([])
    if calm.size == 0:
        return math.nan, math.nan
    lo, hi = float(calm.min()), float(calm.max())
    if wild.size:
        lo = min(lo, float(wild.min()))
        cap = hi * 10.0**DIVERGED_HEADROOM_DECADES if log_y and hi > 0 else math.inf
        if not log_y:
            cap = hi + 0.5 * (hi - lo) if hi > lo else math.inf
        hi = max(hi, min(float(wild.max()), cap))
    return lo, hi


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


#: Width (characters) at which legend entries wrap.
LEGEND_WRAP = 34


#: Panel names longer than this are not repeated in legend entries (a note in the panel
#: says what happened there instead).
SHORT_PANEL = 16


def _legend_label(cfgs: list[_Config], panels: list[str] | None = None, log_y: bool = True,
                  notes: dict[str, list[str]] | None = None) -> str:
    """Legend text for one label: the label, then what happened to it on indented lines.

    ``cfgs`` are the configurations sharing the label (one per panel when the legend is
    shared); ``panels`` names their panels. An event (divergence, underflow) that happened
    in every one of them at the same step is stated once; otherwise, when the panel names
    are short, each step is listed with its panel; else the legend gives the range of steps
    and in how many panels, and ``notes[panel]`` receives one line for each panel concerned
    (drawn there by the caller), so a legend never implies an event where there was none.
    """
    where = panels if panels and len(cfgs) > 1 else [""] * len(cfgs)
    short = all(len(p) <= SHORT_PANEL for p in where)

    def at(values: list[tuple[float, str]], what: str, tail: str = "") -> str:
        steps = [t for t, _ in values]
        if len(set(steps)) == 1 and len(values) == len(cfgs):
            return f"{what} t={_fmt_step(steps[0])}{tail}"
        if short or notes is None:
            return (f"{what} " + ", ".join(f"t={_fmt_step(t)}" + (f" ({p})" if p else "")
                                           for t, p in values) + tail)
        for t, p in values:
            notes.setdefault(p, []).append(f"{cfgs[0].label}: {what} t={_fmt_step(t)}{tail}")
        lo, hi = min(steps), max(steps)
        span = f"t={_fmt_step(lo)}" if lo == hi else f"t={_fmt_step(lo)}–{_fmt_step(hi)}"
        return f"{what} {span}{tail} in {len(values)} of {len(cfgs)} panels (noted there)"

    events: list[str] = []
    div = [(c.diverged_at, p) for c, p in zip(cfgs, where, strict=True)
           if np.isfinite(c.diverged_at)]
    if div:
        events.append(at(div, "diverged at"))
    under = [(c.first_underflow, p) for c, p in zip(cfgs, where, strict=True) if c.n_underflow]
    if under:
        events.append(at(under, "underflow from", " (not drawn)"))
    nonpos = sum(c.n_nonpositive for c in cfgs)
    if nonpos:
        events.append(f"{nonpos} {'non-positive' if log_y else 'non-finite'} point(s) not drawn")
    lines = textwrap.wrap(cfgs[0].label, LEGEND_WRAP) or [cfgs[0].label]
    for event in events:
        lines += textwrap.wrap(event, LEGEND_WRAP, initial_indent="  ", subsequent_indent="    ")
    return "\n".join(lines)


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
    y_top: float,
) -> tuple[set[str], list[str]]:
    """Draw one panel; returns the sources (and 'diverged') it used and its notes."""
    used: set[str] = set()
    notes: list[str] = []
    for c in cfgs:
        gid = c.key[1]
        x = c.measured["step"].to_numpy(dtype=float)
        y = c.measured["value"].to_numpy(dtype=float)
        if x.size:
            used.add("measured")
            kwargs = ink(c.colour, SOURCE_STYLE["measured"])
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
                color=c.colour, gid=f"{source}:{gid}", **ink(c.colour, SOURCE_STYLE[source]),
            )
        if np.isfinite(c.diverged_at):
            used.add("diverged")
            if x.size:
                ax.plot(
                    [x[-1]], [min(y[-1], y_top)], linestyle="none", marker="X", markersize=9,
                    color=c.colour, markeredgecolor="white", markeredgewidth=0.8,
                    zorder=5, gid=f"diverged:{gid}", clip_on=False,
                )
            else:
                notes.append(f"{c.label}: diverged at t={_fmt_step(c.diverged_at)}, no data")
    return used, notes


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
    lo, hi = ax.get_ylim()
    decades = math.log10(hi / lo) if hi > lo > 0 else 1.0
    if decades <= 1.5:
        # a decade tick or two says little: ticks at 1, 2, 5 (1, 2, 3, 5) × 10^k, labelled
        readable_log_axis(ax.yaxis, lo, hi)
        return
    stride = next((s for s in (1, 2, 3, 4, 5, 10, 20, 25, 50, 100) if decades / s <= 7), 100)
    ax.yaxis.set_major_locator(FixedLogLocator(stride))
    if decades <= 3:
        ax.yaxis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10) * 0.1,
                                              numticks=12))
    else:
        # over more than three decades, minor ticks (2…9 × 10^k, or the unlabelled decades)
        # crowd the axis and add little to the labelled decades and their grid lines; they
        # were also most of the drawing time (each tick is a set of matplotlib artists laid
        # out on every draw)
        ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_formatter(NullFormatter())


class FixedLogLocator(Locator):
    """Decades 10^k with k a multiple of ``stride`` (minor: the other decades)."""

    def __init__(self, stride: int, minor_of: int | None = None) -> None:
        self.stride = stride
        self.minor_of = minor_of

    def __call__(self) -> list[float]:
        lo, hi = self.axis.get_view_interval()
        return self.tick_values(lo, hi)

    def tick_values(self, vmin: float, vmax: float) -> list[float]:
        vmin, vmax = sorted((vmin, vmax))
        if vmax <= 0:
            return []
        vmin = max(vmin, vmax * 1e-300, 1e-323)
        k0, k1 = math.floor(math.log10(vmin)), math.ceil(math.log10(vmax))
        ks = [k for k in range(k0, k1 + 1) if k % self.stride == 0]
        if self.minor_of:
            ks = [k for k in ks if k % self.minor_of != 0]
        return [10.0 ** k for k in ks]


def _step_formatter(x: float, _pos: int) -> str:
    """Step ticks as plain integers (with thousands separators) up to 10⁵, then 10^k."""
    if x < 0 or not np.isfinite(x):
        return ""
    if x < 1e5:
        return f"{x:,.0f}" if float(x).is_integer() else f"{x:g}"
    k = math.log10(x)
    return f"$10^{{{k:.0f}}}$" if abs(k - round(k)) < 1e-9 else f"{x:.0e}"


def _place_legends(
    fig: Figure, axes: list[Axes], panels: list[str], panels_cfgs: list[list[_Config]],
    used: set[str], *, band: str | None, shared: bool, log_y: bool,
) -> dict[str, list[str]]:
    """Draw the legends; returns notes per panel name for events the legend summarises."""
    handles, labels = source_legend_handles(
        [s for s in ("measured", "bound", "exact", "diverged") if s in used],
        band=band is not None,
    )
    notes: dict[str, list[str]] = {}
    if shared:
        # one config legend for the figure: the panels show the same labels (or some)
        by_label: dict[str, list[tuple[_Config, str]]] = {}
        for panel, cfgs in zip(panels, panels_cfgs, strict=True):
            for c in cfgs:
                by_label.setdefault(c.label, []).append((c, panel))
        h, lab = [], []
        for pairs in by_label.values():
            cs = [c for c, _ in pairs]
            diverged = any(np.isfinite(c.diverged_at) for c in cs)
            h.append(_config_handle(cs[0], diverged))
            lab.append(_legend_label(cs, [p for _, p in pairs], log_y, notes=notes))
        fig.legend(h, lab, loc="outside right upper", title="configuration")
        fig.legend(handles, labels, loc="outside right lower", title="line style")
    else:
        for ax, cfgs in zip(axes, panels_cfgs, strict=True):
            h = [_config_handle(c, np.isfinite(c.diverged_at)) for c in cfgs]
            ax.legend(
                h, [_legend_label([c], log_y=log_y) for c in cfgs], loc="upper left",
                bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
            )
        fig.legend(handles, labels, loc="outside lower center", ncols=len(handles))
    return notes


def _config_handle(c: _Config, diverged: bool) -> Line2D:
    style = ink(c.colour, {"linewidth": 2.0})
    edge = "white" if diverged else ("0.35" if needs_outline(c.colour) else c.colour)
    return Line2D(
        [], [], color=c.colour, marker="X" if diverged else c.marker,
        markersize=7 if diverged else 4, markeredgecolor=edge, **style,
    )


def _nested(label_sets: list[tuple[str, ...]]) -> bool:
    """True when every panel's labels are among those of the panel with the most labels."""
    largest = set(max(label_sets, key=len)) if label_sets else set()
    return all(set(s) <= largest for s in label_sets)


def _share_x(step_ranges: list[tuple[float, float]]) -> bool:
    """Share the step axis when every panel runs at least half as long as the longest."""
    ends = [hi for _, hi in step_ranges if np.isfinite(hi) and hi > 0]
    return len(ends) <= 1 or min(ends) >= 0.5 * max(ends)


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
    max_decades: float | None = 16,
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
    max_decades
        On a log axis, show at most this many decades below the largest value (default 16,
        about float64 precision), so that a curve diving to 1e-280 does not flatten the
        others; ``None`` shows everything.

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
    colours = colour_map(df["label"])  # same colour per label in every figure
    panels_cfgs = [_config_table(q, keys_by_panel[p], colours, log_y=log_y) for p in panels]

    label_sets = [tuple(c.label for c in cfgs) for cfgs in panels_cfgs]
    shared_legend = len(panels) == 1 or _nested(label_sets)
    extents = [_y_extent(cfgs, log_y) for cfgs in panels_cfgs]
    share_y = _share_y(extents, log_y) if sharey == "auto" else bool(sharey)

    if xscale == "auto":
        xscale = choose_xscale(q["step"].to_numpy(dtype=float))
    step_ranges = []
    for p in panels:
        st = q.loc[q["panel"] == p, "step"].to_numpy(dtype=float)
        step_ranges.append((float(np.nanmin(st)), float(np.nanmax(st))))
    share_x = _share_x(step_ranges)
    fig, axes = _grid(
        len(panels), ncols, sharex=share_x, sharey=share_y, legend_right=True,
        extra_height=0.0 if shared_legend else 0.3,
    )

    used: set[str] = set()
    panel_notes: list[list[str]] = []
    min_step = float(np.nanmin(q["step"].to_numpy(dtype=float)))
    for ax, panel, cfgs, (lo, hi) in zip(axes, panels, panels_cfgs, extents, strict=True):
        if share_y:
            finite = [e for e in extents if np.isfinite(e[0])]
            lo = min((e[0] for e in finite), default=lo)
            hi = max((e[1] for e in finite), default=hi)
        if log_y and max_decades is not None and np.isfinite(hi) and hi > 0:
            # a curve that falls to 1e-280 must not squash the others to a line: lines
            # below the window leave it at the bottom edge
            lo = max(lo, hi * 10.0 ** (-float(max_decades)))
        # a band whose lower edge is ≤ 0 (the CI reaches zero) runs to the bottom edge
        y_floor = lo / _pad(lo, hi) if np.isfinite(lo) and lo > 0 else 1e-300
        if log_y:
            ax.set_yscale("log")
        drawn, notes = _draw_panel(ax, cfgs, band=band, log_y=log_y, y_floor=y_floor,
                                   y_top=hi if np.isfinite(hi) else math.inf)
        used |= drawn
        panel_notes.append(notes)
        _apply_xscale(ax, xscale, min_step)
        if np.isfinite(lo) and np.isfinite(hi):
            if log_y and lo > 0:
                ax.set_ylim(lo / _pad(lo, hi), hi * _pad(lo, hi))
            elif not log_y:
                pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.1
                ax.set_ylim(lo - pad, hi + pad)
        if log_y:
            _finish_log_axis(ax)
        if panel:
            ax.set_title(_panel_title(panel))
        ax.margins(x=0.02)

    for ax in axes:
        bottom = ax.get_subplotspec().is_last_row() or not _has_axis_below(ax, axes)
        if bottom or not share_x:
            ax.set_xlabel(quantity_label("step"))
            # subplots(sharex=True) hides the tick labels of every row but the last; a
            # panel with no panel below it (a short last row) needs its own back
            ax.xaxis.set_tick_params(which="both", labelbottom=True)
        if ax.get_subplotspec().is_first_col() or not share_y:
            ax.set_ylabel(quantity_label(quantity))
    summarised = _place_legends(fig, axes, panels, panels_cfgs, used, band=band,
                                shared=shared_legend, log_y=log_y)
    for ax, panel, notes in zip(axes, panels, panel_notes, strict=True):
        _note(ax, notes + summarised.get(panel, []))
    if title:
        _suptitle(fig, title, len(axes), ncols)
    return fig


#: Characters of a panel title per line (a panel is _PANEL_W inches wide at 9.5 pt).
PANEL_TITLE_WRAP = 52


def _panel_title(panel: str) -> str:
    """The panel's title wrapped to its width, so a long one is not clipped at the edges."""
    return "\n".join(textwrap.wrap(panel, PANEL_TITLE_WRAP)) or panel


def _suptitle(fig: Figure, title: str, n_panels: int, ncols: int | None) -> None:
    """Left-aligned figure title wrapped to the width of the panels (clear of legends)."""
    cols = ncols or (1 if n_panels == 1 else 2 if n_panels in (2, 4) else 3)
    width_in = _PANEL_W * max(1, min(cols, n_panels))
    text = "\n".join(textwrap.wrap(title, max(20, int(width_in / 0.085))))
    fig.suptitle(text, fontsize=10.5, x=0.01, ha="left")


def _pad(lo: float, hi: float) -> float:
    """Multiplicative margin for a log axis: 4 % of the decades spanned (×2 when flat)."""
    return (hi / lo) ** 0.04 if hi > lo > 0 else 2.0


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
    colours = colour_map(df["label"])  # same colour per label in every figure
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
                    label=_legend_label([c], log_y=False),
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
            ax.set_title(_panel_title(panel))
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
        _suptitle(fig, title, len(axes), ncols)
    return fig
