"""Writing and reading run directories, atomically.

Layout (see README, "Output formats")::

    RUN/meta.json                 the whole run: command, seed, backend, dtype, versions, ...
    RUN/<experiment>/curves.csv   tidy curves (measured, bound, exact)
    RUN/<experiment>/verdicts.csv verdicts
    RUN/<experiment>/scaling.csv  scaling points (when the experiment has any)
    RUN/<experiment>/meta.json    the experiment's description, parameters, findings, timing
    RUN/<experiment>/*.png|svg    figures

An experiment directory is assembled under a temporary name and renamed into place, so a run
interrupted at any moment leaves either the previous complete directory or the new one.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from .experiments.base import ExperimentResult

__all__ = ["atomic_write_text", "read_experiment", "versions", "write_experiment",
           "write_json"]


def versions() -> dict[str, str]:
    """Versions of Python, the lab and its numerical dependencies."""
    import matplotlib
    import numpy
    import scipy

    from . import __version__

    out = {"python": platform.python_version(), "convergence-lab": __version__,
           "numpy": numpy.__version__, "scipy": scipy.__version__,
           "pandas": pd.__version__, "matplotlib": matplotlib.__version__}
    try:
        import numba  # noqa: PLC0415

        out["numba"] = numba.__version__
    except ImportError:
        pass
    return out


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(Path(path), json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _csv(df: pd.DataFrame) -> str:
    # full round-trip precision; fixed line endings for byte-identical reruns
    return df.to_csv(index=False, lineterminator="\n")


def write_experiment(
    out_dir: Path,
    name: str,
    result: ExperimentResult,
    meta: dict[str, Any],
    figures: Callable[[Path], list[str]] | None = None,
) -> Path:
    """Write one experiment's tables, meta and figures as ``out_dir/name``, atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=out_dir))
    try:
        (tmp / "curves.csv").write_text(_csv(result.curves), encoding="utf-8")
        (tmp / "verdicts.csv").write_text(_csv(result.verdicts), encoding="utf-8")
        if len(result.scaling):
            (tmp / "scaling.csv").write_text(_csv(result.scaling), encoding="utf-8")
        meta = dict(meta, findings=list(result.findings), figures=[])
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str)
                                       + "\n", encoding="utf-8")
        if figures is not None:
            meta["figures"] = figures(tmp)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True,
                                                      default=str) + "\n", encoding="utf-8")
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=out_dir))
            os.replace(final, old / name)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_experiment(exp_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """(curves, verdicts, scaling, meta) of a saved experiment directory."""
    exp_dir = Path(exp_dir)
    curves = pd.read_csv(exp_dir / "curves.csv")
    verdicts = pd.read_csv(exp_dir / "verdicts.csv")
    scaling_path = exp_dir / "scaling.csv"
    scaling = pd.read_csv(scaling_path) if scaling_path.exists() else pd.DataFrame()
    meta = json.loads((exp_dir / "meta.json").read_text(encoding="utf-8"))
    return curves, verdicts, scaling, meta
