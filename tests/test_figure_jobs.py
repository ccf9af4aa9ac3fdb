"""Figures drawn in worker processes (simulate.figure_jobs): commit only when complete,
the same files as drawing in line, failures leave nothing behind."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from fixtures_results import make_run_dir

from plots import plan_figures
from simulate.figure_jobs import WORKERS_ENV, FigureJobs, default_workers


def _staged_copy(src: Path, out: Path) -> Path:
    """A copy of a finished experiment directory under the name stage_experiment gives."""
    out.mkdir(parents=True, exist_ok=True)
    staged = out / f".{src.name}.partial-{os.getpid()}-test"
    shutil.copytree(src, staged)
    for png in staged.glob("*.png"):
        png.unlink()
    return staged


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("figure-jobs")
    make_run_dir(root / "run")
    return root / "run"


def _experiments(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if p.is_dir() and (p / "curves.csv").exists())


@pytest.mark.parametrize("workers", [1, 2])
def test_commit_only_after_figures_and_same_files_either_way(run_dir, tmp_path, workers):
    out = tmp_path / f"w{workers}"
    exps = _experiments(run_dir)
    with FigureJobs(workers=workers) as jobs:
        jobs.start()
        for src in exps:
            staged = _staged_copy(src, out)
            jobs.submit(staged)
            # one directory at any time: staged until its figures are committed, then final
            assert staged.exists() != (out / src.name).exists()
    for src in exps:
        final = out / src.name
        meta = json.loads((final / "meta.json").read_text(encoding="utf-8"))
        pngs = sorted(p.name for p in final.glob("*.png"))
        assert pngs and sorted(meta["figures"]) == pngs
    assert not [p for p in out.iterdir() if ".partial-" in p.name]


def test_workers_draw_the_same_bytes_as_in_line(run_dir, tmp_path):
    src = _experiments(run_dir)[0]
    for workers in (1, 2):
        with FigureJobs(workers=workers) as jobs:
            jobs.submit(_staged_copy(src, tmp_path / f"w{workers}"))
    one, two = tmp_path / "w1" / src.name, tmp_path / "w2" / src.name
    names = sorted(p.name for p in one.glob("*.png"))
    assert names == sorted(p.name for p in two.glob("*.png"))
    for name in names:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_figure_removes_the_staged_directory(run_dir, tmp_path, workers):
    src = _experiments(run_dir)[0]
    staged = _staged_copy(src, tmp_path)
    # a figure that cannot be written: a non-empty directory where its PNG goes (planning
    # reads the tables and works; the worker's atomic rename onto that path fails)
    blocker = staged / f"{plan_figures(staged)[-1].name}.png"
    blocker.mkdir()
    (blocker / "keep").write_text("x", encoding="utf-8")
    with pytest.raises(OSError):
        with FigureJobs(workers=workers) as jobs:
            jobs.submit(staged)
    assert not staged.exists()
    assert not (tmp_path / src.name).exists()


def test_abandon_removes_uncommitted_work(run_dir, tmp_path):
    exps = _experiments(run_dir)
    jobs = FigureJobs(workers=2)
    staged = [_staged_copy(src, tmp_path) for src in exps]
    for s in staged:
        jobs.submit(s)
    jobs.abandon()
    assert not any(s.exists() for s in staged)
    leftovers = [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    assert not leftovers


def test_worker_count_from_environment(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "0")
    assert default_workers() == 0
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert default_workers() == 3
    for bad in ("-1", "two", "1.5"):
        monkeypatch.setenv(WORKERS_ENV, bad)
        with pytest.raises(ValueError, match=WORKERS_ENV):
            default_workers()
    monkeypatch.delenv(WORKERS_ENV)
    assert default_workers() == max(1, min(os.cpu_count() or 1, 4))  # one per CPU, <= 4
