"""Every catalogue experiment at quick size: every verdict passes, or is n/a with a reason.

Seeds: each experiment runs with two seeds (0 and a second one drawn from its name), so a
verdict that only passes for a lucky seed shows up; ``simulate check --quick`` over seeds
0–19 is the wider sweep (see the closing notes / README).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from simulate.experiments import CATALOGUE, EXPERIMENT_MODULES, run_experiment
from simulate.experiments.base import CURVE_COLUMNS, VERDICT_COLUMNS


def test_catalogue_is_complete():
    assert list(CATALOGUE) == list(EXPERIMENT_MODULES), (
        "experiments missing from the catalogue: "
        + ", ".join(sorted(set(EXPERIMENT_MODULES) - set(CATALOGUE)))
    )


@pytest.mark.parametrize("name", list(CATALOGUE))
@pytest.mark.parametrize("which_seed", [0, 1])
def test_quick_verdicts_pass(name, which_seed):
    seed = 0 if which_seed == 0 else 1 + zlib.crc32(name.encode()) % 1000
    result = run_experiment(name, "quick", seed=seed)
    v = result.verdicts
    assert list(v.columns) == list(VERDICT_COLUMNS)
    assert len(v) > 0, f"{name} computed no verdict"
    assert set(v["status"]) <= {"pass", "fail", "n/a"}
    failed = v[v["status"] == "fail"]
    assert failed.empty, f"{name} (seed {seed}) failed:\n" + failed.to_string()
    na = v[v["status"] == "n/a"]
    assert na["detail"].str.startswith("not applicable:").all()
    # at least one verdict per experiment is a real comparison, not n/a
    assert (v["status"] == "pass").any(), f"{name}: no verdict passed, all n/a"
    c = result.curves
    assert list(c.columns[: len(CURVE_COLUMNS)]) == list(CURVE_COLUMNS)
    assert set(c["source"]) <= {"measured", "bound", "exact"}
    assert "measured" in set(c["source"])
    assert np.isfinite(c.loc[c["source"] != "measured", "value"]).all()
    assert result.findings, f"{name} states no finding"


def test_same_seed_same_tables():
    name = next(iter(CATALOGUE))
    a = run_experiment(name, "quick", seed=5)
    b = run_experiment(name, "quick", seed=5)
    assert a.curves.equals(b.curves)
    assert a.verdicts.equals(b.verdicts)


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_float32_runs_never_fail_a_verdict(name):
    """float32 runs finish; comparisons that need float64 rounding say n/a, none fails."""
    v = run_experiment(name, "quick", seed=0, dtype="float32").verdicts
    failed = v[v["status"] == "fail"]
    assert failed.empty, f"{name} float32 failed:\n" + failed.to_string()
    na = v[v["status"] == "n/a"]
    assert na["detail"].str.startswith("not applicable:").all()
