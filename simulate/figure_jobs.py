"""Figures drawn in worker processes while the next experiment runs.

Drawing is matplotlib's Python (layout, text extents, rendering): about 0.8 s a figure and, in
a catalogue run, most of the wall time if done in line. :class:`FigureJobs` takes a *staged*
experiment directory (:func:`simulate.io.stage_experiment`: tables and meta written, not yet
visible), draws each of its figures as a separate job in a process pool, and commits the
directory (:func:`simulate.io.commit_experiment`) once all its figures are on disk — so an
experiment directory still appears whole or not at all, and a run that stops early loses no
finished experiment whose figures were done.

Figures are read from the staged tables alone (:func:`plots.save_figures`), so a worker needs
nothing from the simulator. Workers are started by :meth:`FigureJobs.start` — called before the
first experiment — with ``fork`` when the calling process runs no other thread yet (the workers
then inherit the imported plotting modules and start at once), and with ``forkserver``
(``spawn`` where that is unavailable) otherwise: never ``fork`` from a process whose compiled
loops already run threads. As with any process pool started by ``forkserver``/``spawn``, a
script that calls the CLI in-process must guard its entry point with
``if __name__ == "__main__":``.

``workers <= 1`` draws in line, in the calling process, with the same staging and commit.
The default is one worker per CPU (``os.cpu_count()``), at most :data:`MAX_WORKERS`;
``$SIMULATE_FIGURE_WORKERS`` overrides it (0 or 1: in line).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io import commit_experiment, discard_staged

__all__ = ["MAX_WORKERS", "WORKERS_ENV", "FigureJobs", "default_workers"]

MAX_WORKERS = 4
WORKERS_ENV = "SIMULATE_FIGURE_WORKERS"


def default_workers() -> int:
    """Worker processes for figures: ``$SIMULATE_FIGURE_WORKERS`` or one per CPU (≤ 4)."""
    raw = os.environ.get(WORKERS_ENV)
    if raw is not None and raw.strip() != "":
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{WORKERS_ENV}={raw!r}: allowed integers ≥ 0") from None
        if value < 0:
            raise ValueError(f"{WORKERS_ENV}={raw!r}: allowed integers ≥ 0")
        return value
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


#: in a worker: the tables of the experiment it drew last (its figures come as consecutive
#: jobs, so a worker reads an experiment's tables once, not once per figure)
_LAST_TABLES: dict[str, Any] = {}


def _draw_one(exp_dir: str, plan_name: str, svg: bool) -> list[str]:
    from plots.figures import load_tables, save_figures

    meta = os.stat(os.path.join(exp_dir, "meta.json"))
    key = f"{exp_dir}\0{meta.st_ino}\0{meta.st_mtime_ns}"  # never another directory's tables
    tables = _LAST_TABLES.get(key)
    if tables is None:
        tables = load_tables(exp_dir)
        _LAST_TABLES.clear()
        _LAST_TABLES[key] = tables
    return save_figures(exp_dir, svg=svg, only=plan_name, tables=tables)


def _draw_all(exp_dir: Path, svg: bool) -> list[str]:
    from plots import save_figures

    return save_figures(exp_dir, svg=svg)


def _plans(exp_dir: Path) -> list[str]:
    from plots import plan_figures

    return [p.name for p in plan_figures(exp_dir)]


@dataclass
class _Pending:
    staged: Path
    futures: list[Future] = field(default_factory=list)
    on_commit: Callable[[Path], Any] | None = None


class FigureJobs:
    """Draw staged experiments' figures (in worker processes when ``workers > 1``) and
    commit each experiment once its figures are written.

    Use as a context manager; on a clean exit every submitted experiment is committed, on an
    exception the uncommitted staged directories are removed and the workers stopped.
    """

    def __init__(self, *, svg: bool = False, workers: int | None = None) -> None:
        self.svg = svg
        self.workers = default_workers() if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[_Pending] = []

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> FigureJobs:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.wait()
        else:
            self.abandon()

    def start(self) -> None:
        """Start the worker processes now (before the caller starts threads of its own)."""
        if self.workers > 1:
            self._executor()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            methods = multiprocessing.get_all_start_methods()
            if "fork" in methods and threading.active_count() == 1:
                import plots  # noqa: F401  (inherited by the forked workers)

                method = "fork"
            else:
                method = "forkserver" if "forkserver" in methods else "spawn"
            self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                             mp_context=multiprocessing.get_context(method))
            if method == "fork":
                # with fork, every worker is created at the first submission: do it while
                # this process is still single-threaded
                self._pool.submit(int).result()
        return self._pool

    # ------------------------------------------------------------------ work
    def submit(self, staged: Path, on_commit: Callable[[Path], Any] | None = None) -> None:
        """Draw the figures of the staged directory; commit it when they are all written
        (``on_commit(final_dir)`` is called then, in this process)."""
        staged = Path(staged)
        if self.workers <= 1:
            try:
                written = _draw_all(staged, self.svg)
            except BaseException:
                discard_staged(staged)
                raise
            final = commit_experiment(staged, written)
            if on_commit is not None:
                on_commit(final)
            return
        pending = _Pending(staged, on_commit=on_commit)
        try:
            pool = self._executor()
            pending.futures = [pool.submit(_draw_one, str(staged), name, self.svg)
                               for name in _plans(staged)]
        except BaseException:
            for fut in pending.futures:
                fut.cancel()
            discard_staged(staged)
            raise
        self._pending.append(pending)
        self.commit_finished()

    def commit_finished(self) -> None:
        """Commit, in submission order, the experiments whose figures are all done."""
        while self._pending and all(f.done() for f in self._pending[0].futures):
            self._commit(self._pending.pop(0))

    def _commit(self, pending: _Pending) -> None:
        try:
            written = [name for fut in pending.futures for name in fut.result()]
        except BaseException:
            discard_staged(pending.staged)
            raise
        final = commit_experiment(pending.staged, written)
        if pending.on_commit is not None:
            pending.on_commit(final)

    def wait(self) -> None:
        """Wait for every submitted experiment and commit it; stop the workers."""
        try:
            while self._pending:
                pending = self._pending.pop(0)
                for fut in pending.futures:
                    fut.exception()  # waits
                self._commit(pending)
        except BaseException:
            self.abandon()
            raise
        self._shutdown(cancel=False)

    def abandon(self) -> None:
        """Drop uncommitted work: cancel jobs, stop the workers, remove staged directories."""
        for pending in self._pending:
            for fut in pending.futures:
                fut.cancel()
        self._shutdown(cancel=True)
        for pending in self._pending:
            discard_staged(pending.staged)
        self._pending.clear()

    def _shutdown(self, cancel: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)
            self._pool = None
