"""The ``simulate`` command line.

Subcommands: ``list``, ``run``, ``plot``, ``report``, ``check`` (and ``bench``).
Exit status: 0 on success, 1 when a verdict failed, 2 on a usage error (one line on stderr,
no traceback, nothing half-written).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UsageError(f"{self.prog}: {message}")


# --------------------------------------------------------------------------- parsing helpers
def _parse_scalar(text: str) -> Any:
    text = text.strip()
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``["B=1,4,16", "alpha=0.1"]`` → ``{"B": [1, 4, 16], "alpha": 0.1}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not value.strip():
            raise UsageError(f"--set {item!r}: expected key=value (a comma list makes a sweep)")
        parts = [p for p in value.split(",")]
        if any(not p.strip() for p in parts):
            raise UsageError(f"--set {item!r}: empty entry in the comma list")
        parsed = [_parse_scalar(p) for p in parts]
        out[key] = parsed if len(parsed) > 1 else parsed[0]
    return out


_TOML_TOP = {"seed", "backend", "dtype", "quick", "replicates", "steps", "set"}
#: the type each top-level key must have (the values themselves are checked where used)
_TOML_TYPES = {"seed": (int, "an integer"), "backend": (str, "a string: auto, numpy or cupy"),
               "dtype": (str, "a string: float64 or float32"), "quick": (bool, "true or false"),
               "replicates": (int, "an integer"), "steps": (int, "an integer")}


def load_config(path: str) -> dict[str, Any]:
    """Read a TOML run configuration (see README, "Configuration files")."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"--config {path!r}: no such file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"--config {path!r}: not valid TOML ({exc})") from None
    from .experiments import CATALOGUE

    for key, value in data.items():
        if key in _TOML_TOP:
            if key == "set" and not isinstance(value, dict):
                raise UsageError(f"--config {path!r}: [set] must be a table of key = value")
            expected = _TOML_TYPES.get(key)
            if expected is not None and (not isinstance(value, expected[0])
                                         or isinstance(value, bool) is not (expected[0] is bool)):
                raise UsageError(f"--config {path!r}: {key} = {value!r} is not allowed: "
                                 f"expected {expected[1]}")
            continue
        if key in CATALOGUE:
            if not isinstance(value, dict):
                raise UsageError(f"--config {path!r}: [{key}] must be a table of key = value")
            continue
        allowed = ", ".join(sorted(_TOML_TOP)) + ", or an experiment name"
        raise UsageError(f"--config {path!r}: unknown key {key!r}; allowed: {allowed}")
    return data


# --------------------------------------------------------------------------- progress
class _Progress:
    """A progress bar on stderr (tqdm when a terminal, silent otherwise)."""

    def __init__(self, names: Sequence[str], enabled: bool):
        self.bar = None
        self.names = list(names)
        self.done = 0
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                fmt = "{l_bar}{bar}| {n:.2f}/{total} experiments [{elapsed}<{remaining}]"
                self.bar = tqdm(total=len(self.names), file=sys.stderr, bar_format=fmt)

    def callback(self, index: int):
        def update(fraction: float) -> None:
            if self.bar is not None:
                self.bar.n = index + fraction
                self.bar.set_description(self.names[index])
                self.bar.refresh()

        return update

    def close(self) -> None:
        if self.bar is not None:
            self.bar.n = len(self.names)
            self.bar.refresh()
            self.bar.close()


# --------------------------------------------------------------------------- commands
def _select(names: Sequence[str]) -> list[str]:
    from .experiments import CATALOGUE

    if list(names) == ["all"] or not names:
        return list(CATALOGUE)
    out = []
    for name in names:
        if name not in CATALOGUE:
            raise UsageError(f"unknown experiment {name!r}; allowed: all, "
                             + ", ".join(CATALOGUE))
        if name not in out:
            out.append(name)
    return out


def _overrides_for(names: Sequence[str], args: argparse.Namespace, config: dict[str, Any]
                   ) -> dict[str, dict[str, Any]]:
    """Per-experiment parameter overrides from --replicates/--steps, [set], [name], --set."""
    from .experiments import CATALOGUE

    shared: dict[str, Any] = {}
    for key in ("replicates", "steps"):
        if key in config:
            shared[key] = config[key]
    shared.update(config.get("set", {}))
    for key in ("replicates", "steps"):
        if getattr(args, key, None) is not None:
            shared[key] = getattr(args, key)
    shared.update(parse_set(getattr(args, "set", None) or []))
    per: dict[str, dict[str, Any]] = {}
    used = set()
    for name in names:
        exp = CATALOGUE[name]
        known = {p.name for p in exp.params}
        own = dict(config.get(name, {}))
        for key in own:
            if key not in known:
                raise UsageError(f"--config: unknown parameter {key!r} of experiment {name}; "
                                 f"allowed: {', '.join(sorted(known))}")
        values = {k: v for k, v in shared.items() if k in known}
        used |= set(values)
        values.update(own)
        per[name] = values
    unknown = set(shared) - used - {"replicates", "steps"}
    if unknown:
        key = sorted(unknown)[0]
        allowed = sorted({p.name for n in names for p in CATALOGUE[n].params})
        raise UsageError(f"--set {key}: not a parameter of the selected experiments; "
                         f"allowed: {', '.join(allowed)}")
    for name in names:  # validate now: nothing runs if any value is bad
        try:
            CATALOGUE[name].resolve_params("quick", per[name])
        except ValueError as exc:
            raise UsageError(f"{name}: {exc}") from None
    return per


def _resolve_backend(name: str, source: str = "--backend") -> Any:
    from .backend import get_array_module

    try:
        return get_array_module(name)
    except ValueError as exc:
        raise UsageError(f"{source}: {exc}") from None


def _check_out_dir(path: Path) -> Path:
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--out {str(path)!r}: not writable ({exc.strerror or exc})") from None
    return path


def _executor_options(args: argparse.Namespace) -> dict[str, Any]:
    """--executor/--scheduler/--workers/--chunk-work, checked (UsageError otherwise)."""
    kind = getattr(args, "executor", None) or "local"
    scheduler = getattr(args, "scheduler", None)
    workers = getattr(args, "workers", None)
    chunk_work = getattr(args, "chunk_work", None)
    if kind == "local":
        for flag, value in (("--scheduler", scheduler), ("--workers", workers),
                            ("--chunk-work", chunk_work)):
            if value is not None:
                raise UsageError(f"{flag} applies to --executor dask only")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers {workers}: allowed integers ≥ 1")
    if chunk_work is not None and not (chunk_work > 0 and math.isfinite(chunk_work)):
        raise UsageError(f"--chunk-work {chunk_work}: allowed a finite number > 0")
    if scheduler and workers is not None:
        raise UsageError("--workers sizes a LocalCluster (no --scheduler); the workers of a "
                         "scheduler are started with `dask worker ADDRESS`")
    return {"kind": kind, "scheduler": scheduler, "workers": workers, "chunk_work": chunk_work}


def _start_executor(options: dict[str, Any], out: Path) -> Any:
    """The executor of :func:`_executor_options` (None: in-process); chunks cached in out."""
    if options["kind"] == "local":
        return None
    from .executor import DEFAULT_CHUNK_WORK, ExecutorUnavailable, start_executor

    workers, chunk_work = options["workers"], options["chunk_work"]
    try:
        return start_executor(options["kind"], scheduler=options["scheduler"],
                              workers=2 if workers is None else workers,
                              cache_dir=out / ".chunks",
                              chunk_work=DEFAULT_CHUNK_WORK if chunk_work is None else chunk_work)
    except (ExecutorUnavailable, ValueError) as exc:
        raise UsageError(f"--executor {options['kind']}: {exc}") from None


def run_catalogue(names: Sequence[str], args: argparse.Namespace, out: Path, *, quick: bool,
                  figures: bool = True) -> Any:
    """Run ``names`` into ``out``; return the concatenated verdicts table."""
    import pandas as pd

    from .backend import backend_name
    from .executor import activate
    from .experiments import CATALOGUE, run_experiment
    from .figure_jobs import FigureJobs, default_workers
    from .io import (
        commit_experiment,
        config_hash,
        read_verdicts,
        reusable_experiment,
        stage_experiment,
        versions,
        write_json,
    )

    config = load_config(args.config) if getattr(args, "config", None) else {}
    seed = args.seed if args.seed is not None else int(config.get("seed", 0))
    if not (isinstance(seed, int) and 0 <= seed < 2**63):
        raise UsageError(f"--seed {seed!r}: allowed integers in [0, 2**63)")
    backend_source = ("--backend" if args.backend else "--config backend"
                      if config.get("backend") else "SIMULATE_BACKEND"
                      if os.environ.get("SIMULATE_BACKEND") else "--backend")
    backend = args.backend or config.get("backend") or os.environ.get("SIMULATE_BACKEND") or "auto"
    dtype = args.dtype or config.get("dtype", "float64")
    if dtype not in ("float64", "float32"):
        raise UsageError(f"--dtype {dtype!r}: allowed float64, float32")
    quick = quick or bool(config.get("quick", False))
    size = "quick" if quick else "full"
    per = _overrides_for(names, args, config)
    xp = _resolve_backend(backend, backend_source)
    executor_options = _executor_options(args)
    out = _check_out_dir(out)
    command = shlex.join(["simulate", *sys.argv[1:]]) if sys.argv else "simulate"
    svg = getattr(args, "svg", False)
    # figures are drawn in worker processes while the next experiment runs (for one
    # experiment, starting the workers costs about what it saves: drawn in line); an
    # experiment's directory appears (committed) only once its figures are written.
    # Started first, while this process has no other thread (see simulate.figure_jobs).
    try:
        workers = default_workers()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    jobs = FigureJobs(svg=svg, workers=workers if len(names) > 1 else 1) if figures else None
    try:
        if jobs is not None:
            jobs.start()
        # while active, run() submits its work to the executor (None: in-process)
        finish_executor = activate(_start_executor(executor_options, out))
    except BaseException:
        if jobs is not None:
            jobs.abandon()
        raise
    progress = _Progress(names, enabled=sys.stderr.isatty() and not getattr(args, "quiet", False))
    all_verdicts = []
    reused = []
    t_run = time.perf_counter()
    resume = not getattr(args, "fresh", False)
    completed = False
    try:
        for i, name in enumerate(names):
            exp = CATALOGUE[name]
            params = exp.resolve_params(size, per[name])
            # finished experiments are reused when everything that decides their numbers is
            # unchanged: configuration, seed, backend, dtype and the code itself
            key = config_hash({"experiment": name, "size": size, "seed": seed,
                               "backend": backend_name(xp), "dtype": dtype, "params": params,
                               "figures": bool(figures), "svg": bool(svg)})
            if resume and reusable_experiment(out / name, key):
                all_verdicts.append(read_verdicts(out / name / "verdicts.csv"))
                reused.append(name)
                progress.callback(i)(1.0)
                continue
            t0 = time.perf_counter()
            try:
                result = run_experiment(name, size, seed=seed, xp=xp, dtype=dtype,
                                        overrides=per[name], progress=progress.callback(i))
            except (ValueError, OverflowError) as exc:
                # a combination of legal-looking values the experiment cannot use (μ > L
                # once derived, α = ∞ after dividing by a tiny L, ...): bad input, not a crash
                raise UsageError(f"{name}: {exc}") from None
            except MemoryError as exc:
                raise UsageError(f"{name}: these parameters need more memory than this "
                                 f"machine has ({exc}); lower replicates, d or the sweep "
                                 "size") from None
            meta = {
                "config_hash": key,
                "experiment": name, "title": exp.title, "description": exp.description,
                "summary": exp.summary, "formulas": list(exp.formulas),
                "conditions": list(exp.conditions), "command": command, "seed": seed,
                "backend": backend_name(xp), "dtype": dtype, "size": size,
                "params": params, "versions": versions(),
                "wall_time_s": round(time.perf_counter() - t0, 3),
            }
            staged = stage_experiment(out, name, result, meta)
            if jobs is None:
                commit_experiment(staged)
            else:
                jobs.submit(staged)
            all_verdicts.append(result.verdicts)
        if jobs is not None:
            jobs.wait()
        completed = True
    finally:
        if jobs is not None and not completed:
            jobs.abandon()
        progress.close()
        finish_executor(completed)
    if reused:
        print(f"reused {len(reused)} finished experiment(s) from {out}/ (same configuration "
              f"and code): {', '.join(reused)}; --fresh recomputes them", file=sys.stderr)
    write_json(out / "meta.json", {
        "command": command, "seed": seed, "backend": backend_name(xp), "dtype": dtype,
        "size": size, "experiments": list(names), "versions": versions(),
        "wall_time_s": round(time.perf_counter() - t_run, 3),
    })
    return pd.concat(all_verdicts, ignore_index=True) if all_verdicts else pd.DataFrame()


def print_verdicts(verdicts: Any, *, failures_only: bool = False) -> None:
    """A compact verdict table on stdout."""
    if verdicts is None or len(verdicts) == 0:
        print("no verdicts")
        return
    rows = verdicts if not failures_only else verdicts[verdicts["status"] == "fail"]
    header = (f"{'status':<6} {'experiment':<20} {'check':<24} {'config':<28} "
              f"{'measured':>11} {'predicted':>11}")
    print(header)
    print("-" * len(header))
    for r in rows.itertuples(index=False):
        def num(x: Any) -> str:
            return f"{x:11.4g}" if isinstance(x, float) and math.isfinite(x) else f"{'—':>11}"

        print(f"{r.status:<6} {r.experiment:<20.20} {r.check:<24.24} {str(r.config):<28.28} "
              f"{num(r.measured)} {num(r.predicted)}")
    counts = verdicts["status"].value_counts()
    print(f"\n{counts.get('pass', 0)} passed, {counts.get('fail', 0)} failed, "
          f"{counts.get('n/a', 0)} not applicable")


def cmd_list(args: argparse.Namespace) -> int:
    from .experiments import CATALOGUE

    width = max(len(n) for n in CATALOGUE)
    for name, exp in CATALOGUE.items():
        print(f"{name:<{width}}  {exp.summary}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    names = _select(args.names)
    verdicts = run_catalogue(names, args, Path(args.out), quick=args.quick,
                             figures=not args.no_figures)
    print_verdicts(verdicts)
    print(f"results in {args.out}/")
    return EXIT_FAILED if (verdicts["status"] == "fail").any() else EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    import tempfile

    names = _select(args.names)
    with tempfile.TemporaryDirectory(prefix="simulate-check-") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        verdicts = run_catalogue(names, args, out, quick=args.quick, figures=False)
    failed = verdicts[verdicts["status"] == "fail"]
    if len(failed):
        print(f"{len(failed)} verdict(s) failed:")
        print_verdicts(verdicts, failures_only=True)
        return EXIT_FAILED
    print_verdicts(verdicts)
    return EXIT_OK


def cmd_plot(args: argparse.Namespace) -> int:
    from plots import save_figures

    run_dir = Path(args.dir)
    if not run_dir.is_dir():
        raise UsageError(f"plot: {str(run_dir)!r} is not a directory")
    exp_dirs = ([run_dir] if (run_dir / "curves.csv").exists()
                else sorted(p for p in run_dir.iterdir() if (p / "curves.csv").exists()))
    if not exp_dirs:
        raise UsageError(f"plot: {str(run_dir)!r} holds no curves.csv (a run directory or "
                         "one experiment directory is allowed)")
    for exp_dir in exp_dirs:
        files = save_figures(exp_dir, svg=args.svg)
        print(f"{exp_dir}: {', '.join(files)}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from reports import build_report

    out = _check_out_dir(Path(args.out))
    if args.from_dir:
        run_dir = Path(args.from_dir)
        if not run_dir.is_dir():
            raise UsageError(f"--from {str(run_dir)!r}: not a directory")
        import pandas as pd

        from .io import read_verdicts

        frames = [read_verdicts(p) for p in sorted(run_dir.glob("*/verdicts.csv"))]
        verdicts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    else:
        run_dir = Path(args.run_dir or ("runs/report-quick" if args.quick else "runs/report"))
        verdicts = run_catalogue(_select(["all"]), args, run_dir, quick=args.quick)
    md, html = build_report(run_dir, out)
    print_verdicts(verdicts)
    print(f"report: {md} and {html}")
    failed = len(verdicts) and (verdicts["status"] == "fail").any()
    return EXIT_FAILED if failed else EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args)


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="simulate", description="Convergence Lab: check optimization theory "
                     "against measurement.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--quick", action="store_true", help="quick size (for tests)")
        p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
        p.add_argument("--backend", choices=["auto", "numpy", "cupy"], default=None,
                       help="array backend (default auto: CuPy when a GPU answers; or "
                            "$SIMULATE_BACKEND)")
        p.add_argument("--dtype", choices=["float64", "float32"], default=None,
                       help="floating type (default float64)")
        p.add_argument("--replicates", type=int, default=None, help="replicates R")
        p.add_argument("--steps", type=int, default=None, help="steps T")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                       help="override a parameter; a comma list makes a sweep (repeatable)")
        p.add_argument("--config", metavar="FILE.toml", help="TOML run configuration")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("--fresh", action="store_true", help="recompute experiments even when "
                       "finished results with the same configuration and code exist")
        p.add_argument("--executor", choices=["local", "dask"], default="local",
                       help="where runs execute: in-process (default) or on Dask")
        p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="dask: address of a running scheduler (default: a LocalCluster)")
        p.add_argument("--workers", type=int, default=None,
                       help="dask: LocalCluster worker processes (default 2)")
        p.add_argument("--chunk-work", type=float, default=None, metavar="UPDATES",
                       help="dask: coordinate-updates C·R·d·T per chunk (default 3e8)")

    p = sub.add_parser("list", help="list the experiments")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run experiments and write tables and figures")
    p.add_argument("names", nargs="+", metavar="NAME", help="experiment names, or all")
    common(p)
    p.add_argument("--out", default="runs", help="output directory (default runs/)")
    p.add_argument("--svg", action="store_true", help="also write SVG figures")
    p.add_argument("--no-figures", action="store_true", help="write the tables only "
                   "(`simulate plot DIR` draws the figures later)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("plot", help="redraw figures from saved tables")
    p.add_argument("dir", help="a run directory (or one experiment directory)")
    p.add_argument("--svg", action="store_true", help="also write SVG figures")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("report", help="run (or read) the catalogue and regenerate the report")
    common(p)
    p.add_argument("--from", dest="from_dir", metavar="DIR", help="read this run directory "
                   "instead of running")
    p.add_argument("--run-dir", metavar="DIR", help="where the runs are written (default "
                   "runs/report or runs/report-quick)")
    p.add_argument("--out", default="reports", help="report directory (default reports/)")
    p.add_argument("--svg", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("check", help="run the catalogue; exit 1 if any verdict fails")
    p.add_argument("names", nargs="*", metavar="NAME", help="experiment names (default all)")
    common(p)
    p.add_argument("--out", default=None, help="keep the run here (default: a temporary "
                   "directory)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("bench", help="benchmark the runner against baselines")
    p.add_argument("--quick", action="store_true", help="small workloads")
    p.add_argument("--workload", action="append", metavar="W", default=None,
                   help="W1, W2, W3, W4 (repeatable; default all)")
    p.add_argument("--out", metavar="FILE.csv", default=None, help="write the table as CSV")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per row (default 5)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``simulate`` console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except UsageError as exc:
        print(str(exc) if str(exc).startswith("simulate") else f"simulate: error: {exc}",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("simulate: interrupted; finished experiments are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
