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

__all__ = ["atomic_write_text", "code_version", "config_hash", "read_experiment",
           "read_verdicts", "reusable_experiment", "versions", "write_experiment", "write_json",
           "stage_experiment", "commit_experiment", "discard_staged"]

#: the packages whose source decides the numbers an experiment produces
_CODE_PACKAGES = ("theory", "simulate", "plots")


def code_version() -> str:
    """SHA-256 over the source of the lab's computing packages (theory/, simulate/, plots/).

    Any edit of the code changes it, so results written by other code are never reused.
    """
    import hashlib

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in _CODE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 of an experiment's full configuration (JSON, sorted keys) plus the code version."""
    import hashlib

    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256((text + code_version()).encode()).hexdigest()


def reusable_experiment(exp_dir: Path, key: str) -> bool:
    """True when ``exp_dir`` is a complete experiment directory written under ``key``."""
    exp_dir = Path(exp_dir)
    try:
        meta = json.loads((exp_dir / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (meta.get("config_hash") == key and (exp_dir / "curves.csv").is_file()
            and (exp_dir / "verdicts.csv").is_file())


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but not ours
        return True
    return True


def remove_stale_partials(out_dir: Path) -> list[Path]:
    """Remove temporary experiment directories left by a process that was killed.

    Temporary names carry the writer's pid (``.NAME.partial-PID-xxxx``); those whose process
    is gone are deleted, those of a live process (a concurrent run) are left alone.
    """
    removed = []
    for tmp in Path(out_dir).glob(".*.*-*-*"):
        parts = tmp.name.rsplit(".", 1)[-1].split("-")
        if len(parts) < 3 or parts[0] not in ("partial", "old") or not parts[1].isdigit():
            continue
        if not _pid_alive(int(parts[1])):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def stage_experiment(out_dir: Path, name: str, result: ExperimentResult,
                     meta: dict[str, Any]) -> Path:
    """Write one experiment's tables and meta into a fresh partial directory of ``out_dir``.

    The directory (``.NAME.partial-PID-…``) is invisible to readers and to the resume check
    until :func:`commit_experiment` renames it to ``out_dir/NAME``; if the writing process dies
    first, :func:`remove_stale_partials` removes it later.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.partial-{os.getpid()}-", dir=out_dir))
    try:
        (tmp / "curves.csv").write_text(_csv(result.curves), encoding="utf-8")
        (tmp / "verdicts.csv").write_text(_csv(result.verdicts), encoding="utf-8")
        if len(result.scaling):
            (tmp / "scaling.csv").write_text(_csv(result.scaling), encoding="utf-8")
        meta = dict(meta, findings=list(result.findings), figures=[])
        _write_meta(tmp, meta)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _write_meta(exp_dir: Path, meta: dict[str, Any]) -> None:
    (exp_dir / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str)
                                       + "\n", encoding="utf-8")


def commit_experiment(staged: Path, figures: list[str] | None = None) -> Path:
    """Record ``figures`` (file names, in display order) in the staged meta, then replace
    ``out_dir/NAME`` by the staged directory in one rename (the old one, if any, is removed).

    On error the staged directory is removed and the previous ``out_dir/NAME`` is kept.
    """
    staged = Path(staged)
    out_dir = staged.parent
    name = staged.name[1:].split(".partial-", 1)[0]
    final = out_dir / name
    try:
        if figures:
            meta = json.loads((staged / "meta.json").read_text(encoding="utf-8"))
            meta["figures"] = list(figures)
            _write_meta(staged, meta)
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old-{os.getpid()}-", dir=out_dir))
            os.replace(final, old / name)
        os.replace(staged, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return final


def discard_staged(staged: Path) -> None:
    """Remove a staged directory that will not be committed."""
    shutil.rmtree(staged, ignore_errors=True)


def write_experiment(
    out_dir: Path,
    name: str,
    result: ExperimentResult,
    meta: dict[str, Any],
    figures: Callable[[Path], list[str]] | None = None,
) -> Path:
    """Write one experiment's tables, meta and figures as ``out_dir/name``, atomically
    (:func:`stage_experiment`, ``figures(staged_dir)``, :func:`commit_experiment`)."""
    staged = stage_experiment(out_dir, name, result, meta)
    try:
        written = figures(staged) if figures is not None else None
    except BaseException:
        discard_staged(staged)
        raise
    return commit_experiment(staged, written)


def read_verdicts(path: Path) -> pd.DataFrame:
    """Read a ``verdicts.csv``, keeping the status ``n/a`` as text.

    pandas reads the string ``n/a`` as a missing value by default; only empty fields are
    missing here (``keep_default_na=False, na_values=[""]``).
    """
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def read_experiment(exp_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """(curves, verdicts, scaling, meta) of a saved experiment directory."""
    exp_dir = Path(exp_dir)
    curves = pd.read_csv(exp_dir / "curves.csv")
    verdicts = read_verdicts(exp_dir / "verdicts.csv")
    scaling_path = exp_dir / "scaling.csv"
    scaling = pd.read_csv(scaling_path) if scaling_path.exists() else pd.DataFrame()
    meta = json.loads((exp_dir / "meta.json").read_text(encoding="utf-8"))
    return curves, verdicts, scaling, meta
