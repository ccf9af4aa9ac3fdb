"""The one place that decides how Convergence Lab figures look.

Colours are the Okabe–Ito palette (Okabe & Ito, "Color Universal Design", 2008), which
stays distinguishable under the common colour-vision deficiencies; yellow is last because
it is faint on white. The *source* of a curve is carried by the line style, never by the
colour: measured = solid (with a shaded 95 % band), bound = dashed, exact expectation =
dotted, so one colour per configuration links its three curves.

Axis labels for the tracked quantities live here too (:data:`QUANTITY_LABELS` for
matplotlib mathtext, :data:`QUANTITY_TEXT` for plain Unicode in reports).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import matplotlib
import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    NullFormatter,
    NullLocator,
)

__all__ = [
    "BAND_ALPHA",
    "LIGHT_OUTLINE",
    "DPI",
    "OKABE_ITO",
    "PALETTE",
    "QUANTITY_LABELS",
    "QUANTITY_TEXT",
    "SOURCE_STYLE",
    "colour_map",
    "ink",
    "needs_outline",
    "new_figure",
    "readable_log_axis",
    "quantity_label",
    "quantity_text",
    "source_legend_handles",
    "styled",
]

#: Okabe–Ito colours by name.
OKABE_ITO: dict[str, str] = {
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "bluish_green": "#009E73",
    "reddish_purple": "#CC79A7",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "black": "#000000",
    "yellow": "#F0E442",
}

#: Order in which configurations receive colours.
PALETTE: tuple[str, ...] = tuple(OKABE_ITO.values())

#: Markers added to measured lines once the palette has cycled (9th config onwards).
CYCLE_MARKERS: tuple[str | None, ...] = (None, "o", "s", "^", "D", "v")

#: Dots per inch for saved PNGs.
DPI = 110

#: Opacity of the shaded confidence band.
BAND_ALPHA = 0.16

#: Neutral grey for reference lines and notes.
GREY = "0.45"

#: Line style per source. ``exact`` gets a white halo so that it stays visible on top of
#: the (usually coinciding) measured mean of the same colour.
SOURCE_STYLE: dict[str, dict[str, Any]] = {
    "measured": {"linestyle": "-", "linewidth": 1.6, "zorder": 3.0},
    "bound": {"linestyle": (0, (6.0, 3.0)), "linewidth": 1.4, "zorder": 2.5},
    "exact": {
        "linestyle": ":",
        "linewidth": 2.0,
        "zorder": 4.0,
        "dash_capstyle": "round",
        "path_effects": [patheffects.withStroke(linewidth=3.2, foreground="white", alpha=0.85)],
    },
    "fit": {"linestyle": "-", "linewidth": 1.2, "zorder": 2.0, "alpha": 0.9},
}

#: Legend text per source.
SOURCE_TEXT: dict[str, str] = {
    "measured": "measured (mean, 95% CI)",
    "bound": "bound (theory)",
    "exact": "exact expectation (theory)",
    "fit": "log–log fit",
    "diverged": "diverged (last finite step)",
}

#: Axis labels (matplotlib mathtext) per quantity; measured curves are replicate means.
QUANTITY_LABELS: dict[str, str] = {
    "f_gap": r"$\mathbb{E}\,[f(w_t) - f^\star]$",
    "dist2": r"$\mathbb{E}\,\|w_t - w^\star\|^2$",
    "grad_norm2": r"$\mathbb{E}\,\|\nabla f(w_t)\|^2$",
    "grad_norm2_min": r"$\mathbb{E}\,\min_{s\leq t}\ \|\nabla f(w_s)\|^2$",
    "f_gap_avg": r"$\mathbb{E}\,[f(\bar{w}_t) - f^\star]$  (averaged iterate)",
    "dist2_avg": r"$\mathbb{E}\,\|\bar{w}_t - w^\star\|^2$  (averaged iterate)",
    "iterate": r"iterate coordinate $w_t^{(0)}$",
    "step": r"step $t$",
}

#: The same labels in plain Unicode (reports, captions).
QUANTITY_TEXT: dict[str, str] = {
    "f_gap": "E[f(w_t) − f*]",
    "dist2": "E‖w_t − w*‖²",
    "grad_norm2": "E‖∇f(w_t)‖²",
    "grad_norm2_min": "E min_{s≤t} ‖∇f(w_s)‖²",
    "f_gap_avg": "E[f(w̄_t) − f*] (averaged iterate)",
    "dist2_avg": "E‖w̄_t − w*‖² (averaged iterate)",
    "iterate": "iterate coordinate w_t[0]",
    "step": "step t",
}

#: rcParams applied while a figure is being built (never globally).
RC: dict[str, Any] = {
    "font.size": 9.0,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "legend.fontsize": 7.8,
    "legend.title_fontsize": 8.0,
    "legend.frameon": True,
    "legend.framealpha": 0.92,
    "legend.edgecolor": "0.85",
    "legend.handlelength": 2.6,
    "axes.grid": True,
    "axes.grid.which": "major",
    "grid.color": "0.9",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "0.35",
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
    "svg.fonttype": "none",
    "axes.formatter.limits": (-3, 4),
    "axes.titley": 1.0,
}

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def style_context() -> Iterator[None]:
    """Apply :data:`RC` for the duration of the block only."""
    with matplotlib.rc_context(RC):
        yield


def styled(func: F) -> F:
    """Decorator: build the figure inside :func:`style_context`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with style_context():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free :class:`~matplotlib.figure.Figure` on an Agg canvas, constrained layout.

    Built with the object-oriented API, so nothing is registered with pyplot (no global
    state, nothing to close beyond dropping the reference) and the user's interactive
    backend, if any, is left alone.
    """
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.get_layout_engine().set(w_pad=0.04, h_pad=0.04, wspace=0.04, hspace=0.06)
    return fig


def colour_map(keys: Iterable[Any]) -> dict[Any, tuple[str, str | None]]:
    """Colour (and, after the palette cycles, a marker) for each key in order of appearance."""
    out: dict[Any, tuple[str, str | None]] = {}
    for key in keys:
        if key in out:
            continue
        i = len(out)
        colour = PALETTE[i % len(PALETTE)]
        marker = CYCLE_MARKERS[(i // len(PALETTE)) % len(CYCLE_MARKERS)]
        out[key] = (colour, marker)
    return out


def quantity_label(quantity: str) -> str:
    """Mathtext axis label for ``quantity`` (the raw name when unknown)."""
    return QUANTITY_LABELS.get(quantity, quantity.replace("_", " "))


def quantity_text(quantity: str) -> str:
    """Plain-Unicode description of ``quantity`` (the raw name when unknown)."""
    return QUANTITY_TEXT.get(quantity, quantity)


def source_legend_handles(
    sources: Iterable[str], *, band: bool = True
) -> tuple[list[Any], list[str]]:
    """Black legend handles and labels explaining the line styles (``measured``, ``bound``...).

    ``sources`` may also contain ``"diverged"`` for the ✕ marker.
    """
    handles: list[Any] = []
    labels: list[str] = []
    present = list(dict.fromkeys(sources))
    for source in ("measured", "bound", "exact", "fit", "diverged"):
        if source not in present:
            continue
        if source == "diverged":
            handles.append(
                Line2D(
                    [], [], linestyle="none", marker="X", markersize=8, color="black",
                    markeredgecolor="white",
                )
            )
            labels.append(SOURCE_TEXT[source])
            continue
        style = {k: v for k, v in SOURCE_STYLE[source].items() if k not in ("zorder",)}
        line = Line2D([], [], color="black", **style)
        if source == "measured" and band:
            patch = Patch(facecolor="black", alpha=BAND_ALPHA * 1.5, edgecolor="none")
            handles.append((patch, line))
        else:
            handles.append(line)
        labels.append(SOURCE_TEXT[source])
    return handles, labels


#: Colours lighter than this relative luminance (Okabe–Ito yellow, 0.80) get a thin dark
#: outline: on white they are otherwise hard to see, whatever the viewer's colour vision.
LIGHT_OUTLINE = 0.6


def needs_outline(colour: Any) -> bool:
    """True for colours too light to read as a thin line on white (WCAG relative luminance)."""
    r, g, b = matplotlib.colors.to_rgb(colour)

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b) > LIGHT_OUTLINE


def ink(colour: Any, style: dict[str, Any], linewidth: float | None = None) -> dict[str, Any]:
    """A copy of ``style`` (Line2D keyword arguments), a dark outline added for light colours.

    The outline goes under the line (and above any halo the style already has), so a
    yellow curve reads as yellow with a grey rim.
    """
    if not needs_outline(colour):
        return dict(style)  # a copy: callers add keys (markers) to it
    lw = linewidth if linewidth is not None else style.get("linewidth", 1.5)
    outline = patheffects.Stroke(linewidth=lw + 1.1, foreground="0.35")
    return dict(style, path_effects=[*style.get("path_effects", []), outline,
                                     patheffects.Normal()])


def _plain_tick(x: float, _pos: int | None = None) -> str:
    """A log-axis tick as a plain number (0.05, 2, 300) or m·10^k outside [1e-3, 1e4)."""
    if not np.isfinite(x) or x <= 0:
        return ""
    if 1e-3 <= x < 1e4:
        return f"{x:g}"
    k = int(np.floor(np.log10(x) + 1e-9))
    m = x / 10.0**k
    mant = f"{m:.2g}"
    return f"$10^{{{k}}}$" if mant == "1" else f"${mant}\\times10^{{{k}}}$"


def readable_log_axis(axis: Any, lo: float, hi: float, values: Any = None) -> None:
    """Ticks a reader can use on a log axis spanning few decades.

    Over more than ~2.2 decades matplotlib's decade ticks are kept. Below that a decade
    tick or two says little: ``values`` (the sweep's x values, when at most 8 and within 3
    decades) become the ticks; otherwise ticks at 1, 2, 5 (or 1, 2, 3, 5 below 0.7 decades)
    × 10^k, all labelled as plain numbers. Minor ticks are then unlabelled.
    """
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo > 0):
        return
    decades = float(np.log10(hi / lo))
    vals = None
    if values is not None:
        v = np.unique(np.asarray(values, dtype=float))
        v = v[np.isfinite(v) & (v > 0)]
        if 2 <= v.size <= 8 and np.log10(v.max() / v.min()) <= 3:
            vals = v
    if vals is not None:
        axis.set_major_locator(FixedLocator(vals))
        axis.set_minor_locator(NullLocator())
    elif decades <= 2.2:
        subs = (1.0, 2.0, 3.0, 5.0) if decades <= 0.7 else (1.0, 2.0, 5.0)
        axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=30))
        axis.set_minor_locator(LogLocator(base=10, subs=np.arange(1, 10) * 1.0, numticks=30))
    else:
        return
    axis.set_major_formatter(FuncFormatter(_plain_tick))
    axis.set_minor_formatter(NullFormatter())
