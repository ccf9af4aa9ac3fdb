"""Tests of plots/: figure contents, robustness to the table format, atomic saving."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from fixtures_results import RunInfo, make_run_dir
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from plots import (
    error_curves,
    figures_for_experiment,
    plan_figures,
    read_curves,
    read_scaling,
    save_figures,
    scaling,
    trajectory,
)
from plots.curves import choose_xscale
from plots.scaling import slope_text
from plots.style import PALETTE, colour_map
from plots.tables import experiment_dirs, normalize_curves, normalize_status

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunInfo:
    return make_run_dir(tmp_path_factory.mktemp("run") / "RUN")


@pytest.fixture(scope="module")
def sgd_curves(run: RunInfo) -> pd.DataFrame:
    return read_curves(run.run_dir / "sgd_noise_floor")


def _lines(ax, role: str) -> list:
    return [ln for ln in ax.lines if (ln.get_gid() or "").startswith(role + ":")]


def _bands(ax) -> list:
    return [c for c in ax.collections
            if isinstance(c, PolyCollection) and (c.get_gid() or "").startswith("band:")]


def _legend_texts(fig: Figure) -> list[str]:
    texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    for ax in fig.axes:
        if ax.get_legend() is not None:
            texts += [t.get_text() for t in ax.get_legend().get_texts()]
    return texts


# --------------------------------------------------------------------------- error curves

def test_error_curves_panels_and_lines(sgd_curves: pd.DataFrame) -> None:
    fig = error_curves(sgd_curves, "f_gap")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # one per panel
    assert [ax.get_title() for ax in fig.axes] == ["κ = 10", "κ = 100"]
    for ax in fig.axes:
        assert ax.get_yscale() == "log"
        # four configs per panel, each with a measured line and a band
        assert len(_lines(ax, "measured")) == 4
        assert len(_bands(ax)) == 4
        # bound only where α ≤ 1/L for SGD (two configs); exact for all but none missing
        assert len(_lines(ax, "bound")) == 2
        assert len(_lines(ax, "exact")) == 4
        assert len(_lines(ax, "diverged")) == 1
    styles = {ln.get_gid().split(":")[0]: ln.get_linestyle() for ln in fig.axes[0].lines
              if ln.get_gid()}
    assert styles["measured"] == "-"
    assert styles["bound"] == "--"
    assert styles["exact"] == ":"


def test_error_curves_same_colour_per_config(sgd_curves: pd.DataFrame) -> None:
    fig = error_curves(sgd_curves, "f_gap")
    ax = fig.axes[0]
    by_config: dict[str, set] = {}
    for ln in ax.lines:
        gid = ln.get_gid() or ""
        if ":" in gid and not gid.startswith("reference"):
            by_config.setdefault(gid.split(":", 1)[1], set()).add(
                matplotlib.colors.to_hex(ln.get_color()))
    assert all(len(c) == 1 for c in by_config.values())
    assert len({next(iter(c)) for c in by_config.values()}) == len(by_config)


def test_error_curves_legend_explains_theory_and_divergence(run: RunInfo,
                                                            sgd_curves: pd.DataFrame) -> None:
    fig = error_curves(sgd_curves, "f_gap")
    texts = "\n".join(_legend_texts(fig))
    assert "measured (mean, 95% CI)" in texts
    assert "bound (theory)" in texts
    assert "exact expectation (theory)" in texts
    t_div = run.diverged["sgd-k10-a2.2"]
    assert f"diverged at t={t_div}" in texts
    assert "underflow" in texts


def test_divergence_marker_at_last_measured_point(run: RunInfo,
                                                  sgd_curves: pd.DataFrame) -> None:
    fig = error_curves(sgd_curves, "f_gap")
    ax = fig.axes[0]
    (marker,) = _lines(ax, "diverged")
    (measured,) = [ln for ln in _lines(ax, "measured") if ln.get_gid().endswith("a2.2")]
    assert marker.get_marker() == "X"
    assert marker.get_xdata()[0] == measured.get_xdata()[-1]
    assert measured.get_xdata()[-1] < run.diverged["sgd-k10-a2.2"]


def test_underflow_rows_not_plotted(run: RunInfo, sgd_curves: pd.DataFrame) -> None:
    fig = error_curves(sgd_curves, "f_gap")
    under = sgd_curves[sgd_curves["underflow"]]
    assert len(under) > 0
    for ax in fig.axes:
        for ln in ax.lines:
            y = np.asarray(ln.get_ydata(), dtype=float)
            assert np.all(y > 0), ln.get_gid()  # nothing drawn at zero on the log axis
        for cfg in run.underflow_configs:
            lines = [ln for ln in _lines(ax, "measured") if ln.get_gid() == f"measured:{cfg}"]
            for ln in lines:
                steps_drawn = set(np.asarray(ln.get_xdata(), dtype=float).tolist())
                steps_under = set(under.loc[(under["config"] == cfg)
                                            & (under["quantity"] == "f_gap"), "step"])
                assert steps_under and not (steps_drawn & steps_under)
    ax0 = fig.axes[0]
    lo, hi = ax0.get_ylim()
    assert lo > 0 and math.isfinite(hi)


def test_band_clipped_positive_and_below_lines(sgd_curves: pd.DataFrame) -> None:
    fig = error_curves(sgd_curves, "f_gap")
    for ax in fig.axes:
        lo, _ = ax.get_ylim()
        for band in _bands(ax):
            verts = np.concatenate([p.vertices for p in band.get_paths()])
            assert np.all(verts[:, 1] > 0)
            assert np.all(verts[:, 1] >= lo * 0.999)
            assert band.get_zorder() < min(ln.get_zorder() for ln in _lines(ax, "measured"))
            assert band.get_alpha() < 0.5


def test_error_curves_axis_labels(sgd_curves: pd.DataFrame) -> None:
    fig = error_curves(sgd_curves, "dist2")
    assert "w^\\star" in fig.axes[0].get_ylabel()
    assert "step" in fig.axes[0].get_xlabel()
    fig = error_curves(sgd_curves, "f_gap", xscale="linear", yscale="log")
    assert fig.axes[0].get_xscale() == "linear"
    with pytest.raises(ValueError, match="quantity='nope'"):
        error_curves(sgd_curves, "nope")


def test_xscale_choice() -> None:
    assert choose_xscale(np.unique(np.round(np.geomspace(1, 3001, 50)) - 1)) == "log"
    assert choose_xscale(np.arange(0, 61)) == "linear"
    assert choose_xscale(np.linspace(0, 5000, 50)) == "linear"


def test_error_curves_per_panel_legends_when_configs_differ(sgd_curves: pd.DataFrame) -> None:
    df = sgd_curves.copy()
    df.loc[df["panel"] == "κ = 100", "label"] += " (κ=100)"
    fig = error_curves(df, "f_gap")
    assert all(ax.get_legend() is not None for ax in fig.axes)
    assert len(fig.legends) == 1  # the line-style legend only


def test_error_curves_tolerates_minimal_and_extra_columns() -> None:
    steps = np.arange(0, 50)
    df = pd.DataFrame({
        "config": "a", "source": "measured", "quantity": "f_gap", "step": steps,
        "value": 0.9 ** steps, "some_new_parameter": "x",
    })
    fig = error_curves(df)
    assert len(fig.axes) == 1
    assert len(_lines(fig.axes[0], "measured")) == 1
    assert _bands(fig.axes[0]) == []  # no stderr column → no band


def test_zero_values_not_drawn_without_underflow_flag() -> None:
    steps = np.arange(0, 20)
    values = np.where(steps > 10, 0.0, 0.5 ** steps)
    df = pd.DataFrame({"config": "a", "source": "measured", "quantity": "f_gap", "step": steps,
                       "value": values, "stderr": 0.0})
    fig = error_curves(df)
    ln = _lines(fig.axes[0], "measured")[0]
    assert np.all(np.asarray(ln.get_ydata()) > 0)
    assert any("non-positive" in t for t in _legend_texts(fig))


def test_no_pyplot_state_leak(sgd_curves: pd.DataFrame) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    error_curves(sgd_curves, "f_gap")
    assert plt.get_fignums() == before


# --------------------------------------------------------------------------- scaling

def test_scaling_figure(run: RunInfo) -> None:
    points = read_scaling(run.run_dir / "momentum_kappa_scaling")
    fig = scaling(points, "steps_to_eps_vs_kappa")
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert len(ax.containers) == 3  # error bars per measured series
    assert len(_lines(ax, "fit")) == 3
    assert len(_lines(ax, "exact")) == 1
    texts = "\n".join(_legend_texts(fig))
    for series in ("GD", "heavy ball", "Nesterov"):
        rows = points[(points["series"] == series) & (points["figure"] ==
                                                      "steps_to_eps_vs_kappa")]
        slope = rows["slope"].iloc[0]
        se = rows["slope_stderr"].iloc[0]
        assert f"slope {slope:.2f} ± {se:.2f}" in texts
    assert "(predicted 0.5)" in texts and "(predicted 1)" in texts
    assert ax.get_xlabel() == "condition number κ"


def test_scaling_fit_line_from_slope_when_no_fit_rows(run: RunInfo) -> None:
    points = read_scaling(run.run_dir / "momentum_kappa_scaling")
    fig = scaling(points, "plateau_vs_alpha")
    ax = fig.axes[0]
    (fit,) = _lines(ax, "fit")
    x, y = np.asarray(fit.get_xdata()), np.asarray(fit.get_ydata())
    assert np.log(y[1] / y[0]) / np.log(x[1] / x[0]) == pytest.approx(1.01)
    assert len(_lines(ax, "bound")) == 1
    with pytest.raises(ValueError, match="figure=None"):
        scaling(points)


def test_slope_text() -> None:
    assert slope_text(0.987, 0.031, 1.0) == "slope 0.99 ± 0.03 (predicted 1)"
    assert slope_text(float("nan"), float("nan"), 0.5) == "predicted slope 0.5"
    assert slope_text(float("nan"), float("nan"), float("nan")) == ""


# --------------------------------------------------------------------------- trajectory

def test_trajectory_with_reference_levels(run: RunInfo) -> None:
    curves = read_curves(run.run_dir / "heavy_ball_cycle")
    fig = trajectory(curves)
    (ax,) = fig.axes
    assert ax.get_yscale() == "linear"
    assert len(_lines(ax, "measured")) == 2
    refs = _lines(ax, "reference")
    levels = sorted(ln.get_ydata()[0] for ln in refs)
    assert levels == pytest.approx([-1.4, 0.35, 1.05])
    assert any("reference" in t for t in _legend_texts(fig))
    fig2 = trajectory(curves, references={"w*": 0.0})
    assert len(_lines(fig2.axes[0], "reference")) == 4


# --------------------------------------------------------------------------- choice + saving

def test_figures_for_experiment(run: RunInfo) -> None:
    figs = figures_for_experiment(run.run_dir / "sgd_noise_floor")
    assert list(figs) == ["f_gap", "dist2"]
    assert all(isinstance(f, Figure) for f in figs.values())
    figs = figures_for_experiment(run.run_dir / "momentum_kappa_scaling")
    assert list(figs) == ["f_gap", "scaling_steps_to_eps_vs_kappa", "scaling_plateau_vs_alpha"]
    figs = figures_for_experiment(run.run_dir / "heavy_ball_cycle")
    assert list(figs) == ["f_gap", "trajectory"]  # no error-curve figure for 'iterate'


def test_plan_captions_name_the_sources(run: RunInfo) -> None:
    plans = {p.name: p for p in plan_figures(run.run_dir / "sgd_noise_floor")}
    assert "bound" in plans["f_gap"].caption and "exact" in plans["f_gap"].caption
    assert "exact" not in plans["dist2"].caption


def test_save_figures_png_atomic(run: RunInfo, tmp_path: Path) -> None:
    exp = run.run_dir / "momentum_kappa_scaling"
    names = save_figures(exp, out_dir=tmp_path)
    assert names == ["f_gap.png", "scaling_steps_to_eps_vs_kappa.png",
                     "scaling_plateau_vs_alpha.png"]
    for n in names:
        data = (tmp_path / n).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no temp files left


def test_save_figures_svg_and_in_place(tmp_path: Path) -> None:
    info = make_run_dir(tmp_path / "RUN")
    exp = info.run_dir / "heavy_ball_cycle"
    before = {p.name for p in exp.iterdir()}
    names = save_figures(exp, svg=True)
    assert names == ["f_gap.png", "f_gap.svg", "trajectory.png", "trajectory.svg"]
    after = {p.name for p in exp.iterdir()}
    assert after - before == set(names)
    assert (exp / "trajectory.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")


def test_save_leaves_no_temp_file_on_error(run: RunInfo, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self, *a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_figures(run.run_dir / "heavy_ball_cycle", out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- tables + style

def test_normalize_curves_types() -> None:
    df = pd.DataFrame({"config": [1, 2], "source": ["Measured", "bound"],
                       "quantity": ["f_gap", "f_gap"], "step": ["0", "1"], "value": [1, 2],
                       "underflow": ["True", ""], "panel": [np.nan, "p"]})
    out = normalize_curves(df)
    assert out["config"].tolist() == ["1", "2"]
    assert out["label"].tolist() == ["1", "2"]
    assert out["source"].tolist() == ["measured", "bound"]
    assert out["underflow"].tolist() == [True, False]
    assert out["panel"].tolist() == ["", "p"]
    assert math.isnan(out["diverged_at"].iloc[0])
    with pytest.raises(ValueError, match="missing required column"):
        normalize_curves(df.drop(columns=["value"]))


def test_normalize_status() -> None:
    assert normalize_status("PASS") == "pass"
    assert normalize_status("N/A") == "n/a"
    assert normalize_status(float("nan")) == "n/a"
    assert normalize_status("failed") == "fail"


def test_experiment_dirs_order(run: RunInfo, tmp_path: Path) -> None:
    assert [p.name for p in experiment_dirs(run.run_dir)] == run.experiments
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "verdicts.csv").write_text("check,status\n", encoding="utf-8")
    (tmp_path / "a").mkdir()  # no tables: not an experiment
    (tmp_path / "meta.json").write_text(json.dumps({"experiments": ["z"]}), encoding="utf-8")
    assert [p.name for p in experiment_dirs(tmp_path)] == ["z", "b"]


def test_palette_is_okabe_ito_and_cycles() -> None:
    assert PALETTE[0] == "#0072B2" and len(PALETTE) == 8
    cmap = colour_map(range(10))
    assert cmap[0][0] == cmap[8][0] and cmap[8][1] is not None


@pytest.mark.parametrize("package", ["plots", "reports"])
def test_presentation_never_imports_simulation_or_theory(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in ("simulate", "theory"), f"{path}: imports {name}"
                if package == "plots":
                    assert top != "reports", f"{path}: plots must not import reports"
