"""Figures drawn from the saved results tables of a run directory.

Presentation only: nothing here runs a simulation or evaluates theory, and nothing imports
``simulate`` or ``theory``; every number drawn comes from ``curves.csv`` / ``scaling.csv``
(see :mod:`plots.tables` for the run-directory format). Each figure function takes
DataFrames and returns a :class:`matplotlib.figure.Figure` built without pyplot (Agg
canvas), so no global figure state leaks.

* :func:`error_curves` — measured (mean, 95 % band) vs bound (dashed) vs exact (dotted)
* :func:`scaling` — log–log scaling points, fitted vs predicted slope
* :func:`trajectory` — iterate against step with exact reference levels
* :func:`figures_for_experiment`, :func:`save_figures` — all figures of one experiment
"""

from .curves import error_curves, trajectory
from .figures import (
    FigurePlan,
    draw_figure,
    figures_for_experiment,
    plan_figures,
    save_figure_atomic,
    save_figures,
)
from .scaling import scaling
from .tables import read_curves, read_meta, read_scaling, read_verdicts

__all__ = [
    "FigurePlan",
    "draw_figure",
    "error_curves",
    "figures_for_experiment",
    "plan_figures",
    "read_curves",
    "read_meta",
    "read_scaling",
    "read_verdicts",
    "save_figure_atomic",
    "save_figures",
    "scaling",
    "trajectory",
]
