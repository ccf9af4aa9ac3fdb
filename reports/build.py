"""Assemble REPORT.md and report.html from a run directory.

Reads only the saved tables and ``meta.json`` files of a run (format: :mod:`plots.tables`)
and the figures drawn from them by :mod:`plots`; it never simulates nor evaluates theory,
and every number in the text is copied from a table or a ``meta.json``.

Layout of the output directory::

    OUT/REPORT.md                       GitHub-renderable; figures by relative path
    OUT/report.html                     one self-contained file (inline CSS, data: URIs)
    OUT/figures/<experiment>-<name>.png the figures (rebuilt on every build)

A figure already saved in the experiment directory (``<name>.png``, at least as new as
the tables it is drawn from) is copied; otherwise it is drawn from the tables.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from plots.figures import FigurePlan, draw_figure, plan_figures, safe_stem, save_figure_atomic
from plots.tables import (
    experiment_dirs,
    read_curves,
    read_json,
    read_scaling,
    read_verdicts,
)

from .document import (
    Bullets,
    Document,
    Heading,
    Image,
    KeyValues,
    Note,
    Paragraph,
    Span,
    Table,
    render_html,
    render_markdown,
    spans,
)

__all__ = [
    "build_document",
    "build_report",
    "fmt_number",
    "missing_experiments",
    "summary_counts",
]

MD_NAME = "REPORT.md"
HTML_NAME = "report.html"
FIGURES_DIR = "figures"
REQUIRED_TABLES = ("curves.csv", "verdicts.csv")
STATUSES = ("pass", "fail", "n/a")
_DATE_KEYS = ("date", "created", "created_at", "started", "started_at", "timestamp",
              "finished_at")


# --------------------------------------------------------------------------- formatting

def fmt_number(x: Any) -> str:
    """A table number as text: 4 significant digits, compact exponent, '—' for missing."""
    if x is None:
        return "—"
    if isinstance(x, str):
        return x or "—"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "—"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v.is_integer() and abs(v) < 1e7:
        return f"{int(v)}"
    text = f"{v:.4g}"
    if "e" in text:
        mant, exp = text.split("e")
        text = f"{mant}e{int(exp)}"
    return text


def fmt_seconds(s: Any) -> str:
    """Wall time in seconds → "3.2 s", "2 min 05 s", "1 h 02 min"."""
    try:
        v = float(s)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(v):
        return "—"
    if v < 60:
        return f"{v:.3g} s" if v < 10 else f"{v:.0f} s"
    if v < 3600:
        m, sec = divmod(round(v), 60)
        return f"{m} min {sec:02d} s"
    h, rem = divmod(round(v), 3600)
    return f"{h} h {rem // 60:02d} min"


def _fmt_date(meta: dict[str, Any], fallback_file: Path | None) -> str:
    for key in _DATE_KEYS:
        value = meta.get(key)
        if value in (None, ""):
            continue
        if isinstance(value, int | float):
            stamp = dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
            return stamp.strftime("%Y-%m-%d %H:%M UTC")
        return str(value).replace("T", " ")
    if fallback_file is not None and fallback_file.exists():
        stamp = dt.datetime.fromtimestamp(fallback_file.stat().st_mtime, tz=dt.UTC)
        return stamp.strftime("%Y-%m-%d %H:%M UTC") + f" (time of {fallback_file.name})"
    return "—"


def _slug(name: str) -> str:
    return "exp-" + safe_stem(name).lower().replace(".", "-")


# --------------------------------------------------------------------------- loading

@dataclass
class _Experiment:
    name: str
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    verdicts: pd.DataFrame | None = None
    problems: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    exists: bool = True

    @property
    def title(self) -> str:
        return str(self.meta.get("title") or self.name)

    @property
    def has_no_tables(self) -> bool:
        return not self.exists or len(self.missing) == len(REQUIRED_TABLES)


def _load_experiment(path: Path) -> _Experiment:
    exp = _Experiment(name=path.name, path=path)
    if not path.is_dir():
        exp.exists = False
        exp.missing = list(REQUIRED_TABLES)
        return exp
    try:
        exp.meta = read_json(path / "meta.json")
    except (OSError, ValueError) as err:
        exp.problems.append(f"meta.json could not be read ({err})")
    exp.missing = [t for t in REQUIRED_TABLES if not (path / t).is_file()]
    if (path / "verdicts.csv").is_file():
        try:
            exp.verdicts = read_verdicts(path)
        except (OSError, ValueError, pd.errors.ParserError) as err:
            exp.problems.append(f"verdicts.csv could not be read ({err})")
    return exp


def _experiments(run_dir: Path) -> list[_Experiment]:
    return [_load_experiment(p) for p in experiment_dirs(run_dir)]


def summary_counts(run_dir: str | Path) -> dict[str, int]:
    """Counts of verdict statuses over the whole run: ``{"pass": …, "fail": …, "n/a": …}``.

    Statuses other than these three (should a table hold one) get their own key.
    Experiments without a readable ``verdicts.csv`` contribute nothing; see
    :func:`missing_experiments`.
    """
    counts = dict.fromkeys(STATUSES, 0)
    for exp in _experiments(Path(run_dir)):
        if exp.verdicts is None:
            continue
        for status in exp.verdicts["status"]:
            counts[status] = counts.get(status, 0) + 1
    return counts


def missing_experiments(run_dir: str | Path) -> list[str]:
    """Experiments of the run missing ``curves.csv`` or ``verdicts.csv`` (or their folder)."""
    return [e.name for e in _experiments(Path(run_dir)) if e.missing or not e.exists]


# --------------------------------------------------------------------------- figures

@dataclass
class _Figure:
    file: Path
    rel: str
    caption: str
    alt: str


def _newest_mtime(paths: list[Path]) -> float:
    return max((p.stat().st_mtime for p in paths if p.is_file()), default=0.0)


def _experiment_figures(
    exp: _Experiment, fig_dir: Path, redraw: bool
) -> tuple[list[_Figure], list[str]]:
    """Copy or draw the experiment's figures into ``fig_dir``; problems as sentences."""
    figures: list[_Figure] = []
    problems: list[str] = []
    if not exp.exists:
        return figures, problems
    try:
        plans: list[FigurePlan] = plan_figures(exp.path)
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as err:
        return figures, [f"figures could not be planned from the tables ({err})"]
    tables_mtime = _newest_mtime([exp.path / "curves.csv", exp.path / "scaling.csv"])
    loaded: tuple[pd.DataFrame | None, pd.DataFrame | None] | None = None
    prefix = safe_stem(exp.name)
    planned_files = set()
    for plan in plans:
        name = f"{prefix}-{plan.name}.png"
        target = fig_dir / name
        saved = exp.path / f"{plan.name}.png"
        planned_files.add(saved.name)
        try:
            if not redraw and saved.is_file() and saved.stat().st_mtime >= tables_mtime:
                shutil.copyfile(saved, target)
            else:
                if loaded is None:
                    curves = (read_curves(exp.path) if (exp.path / "curves.csv").is_file()
                              else None)
                    loaded = (curves, read_scaling(exp.path))
                fig = draw_figure(plan, loaded[0], loaded[1], exp.meta.get("title") or None)
                try:
                    save_figure_atomic(fig, target)
                finally:
                    fig.clear()
        except Exception as err:  # one bad figure must not sink the whole report
            problems.append(f"figure {plan.name} could not be drawn ({type(err).__name__}: "
                            f"{err})")
            continue
        figures.append(_Figure(target, f"{FIGURES_DIR}/{name}", plan.caption,
                               f"{exp.name}: {plan.name}"))
    # figures the experiment saved itself that the tables do not call for
    for listed in exp.meta.get("figures") or []:
        src = exp.path / str(listed)
        if src.suffix.lower() != ".png" or src.name in planned_files or not src.is_file():
            continue
        name = f"{prefix}-{safe_stem(src.stem)}.png"
        shutil.copyfile(src, fig_dir / name)
        figures.append(_Figure(fig_dir / name, f"{FIGURES_DIR}/{name}",
                               f"{src.stem} (figure saved by the experiment).",
                               f"{exp.name}: {src.stem}"))
    return figures, problems


# --------------------------------------------------------------------------- document

_VERDICT_HEADER = ["Check", "Config", "Status", "Measured", "Predicted", "Ratio", "Tolerance",
                   "Detail"]
_VERDICT_ALIGN = ["l", "l", "l", "r", "r", "r", "r", "l"]


def _cell(text: str) -> list[Span]:
    return [Span(text if text else "—")]


def _num_cells(row: pd.Series) -> list[list[Span]]:
    return [_cell(fmt_number(row[c])) for c in ("measured", "predicted", "ratio", "tolerance")]


def _run_info(run_dir: Path, top: dict[str, Any], exps: list[_Experiment]) -> KeyValues:
    metas = [e.meta for e in exps if e.meta]

    def common(key: str) -> Any:
        if top.get(key) not in (None, ""):
            return top[key]
        values = {str(m.get(key)) for m in metas if m.get(key) not in (None, "")}
        return values.pop() if len(values) == 1 else ("mixed" if values else None)

    pairs: list[tuple[str, list[Span]]] = []
    fallback = run_dir / "meta.json"
    if not fallback.is_file():
        fallback = next((e.path / "meta.json" for e in exps if (e.path / "meta.json").is_file()),
                        None)
    pairs.append(("Date", spans(_fmt_date(top, fallback))))
    if top.get("command"):
        pairs.append(("Command", [Span(str(top["command"]), "code")]))
    for key, label in (("seed", "Seed"), ("backend", "Backend"), ("dtype", "Dtype"),
                       ("size", "Size")):
        value = common(key)
        if value is not None:
            pairs.append((label, spans(fmt_number(value) if key == "seed" else str(value))))
    if top.get("wall_time_s") is not None:
        pairs.append(("Wall time", spans(fmt_seconds(top["wall_time_s"]))))
    else:
        times = [float(m["wall_time_s"]) for m in metas
                 if isinstance(m.get("wall_time_s"), int | float)]
        if times:
            pairs.append(("Wall time", spans(f"{fmt_seconds(sum(times))} (sum over experiments)")))
    versions = top.get("versions") or next((m.get("versions") for m in metas
                                            if m.get("versions")), None)
    if isinstance(versions, dict) and versions:
        pairs.append(("Versions", [Span(" · ".join(f"{k} {v}" for k, v in versions.items()),
                                        "code")]))
    pairs.append(("Experiments", spans(str(len(exps)))))
    pairs.append(("Run directory", [Span(run_dir.name or str(run_dir), "code")]))
    return KeyValues(pairs)


def _counts_line(counts: dict[str, int], n_missing: int) -> Paragraph:
    total = sum(counts.values())
    parts: list[Span] = [Span(f"{total} verdicts: ", "strong")]
    for i, status in enumerate([*STATUSES, *(k for k in counts if k not in STATUSES)]):
        if i:
            parts.append(Span(" · "))
        parts += [Span(f"{counts.get(status, 0)} "), Span(status, "status")]
    if n_missing:
        parts += [Span(" · "), Span(f"{n_missing} experiment(s) without tables "),
                  Span("missing", "status")]
    return Paragraph(parts)


def _summary_table(exps: list[_Experiment]) -> Table:
    rows: list[list[list[Span]]] = []
    for e in exps:
        link = [Span(e.name, "link", "#" + _slug(e.name))]
        if e.verdicts is None or e.has_no_tables:
            what = "(no verdicts.csv)" if e.exists and not e.has_no_tables else "(no tables)"
            rows.append([link, _cell(what), _cell(""), [Span("missing", "status")],
                         _cell(""), _cell(""), _cell(""), _cell("")])
            continue
        for _, v in e.verdicts.iterrows():
            rows.append([link, _cell(v["check"]), _cell(v["config"]),
                         [Span(v["status"], "status")], *_num_cells(v)])
    return Table(["Experiment", "Check", "Config", "Status", "Measured", "Predicted", "Ratio",
                  "Tolerance"], rows, ["l", "l", "l", "l", "r", "r", "r", "r"],
                 css_class="summary")


def _experiment_section(doc: Document, e: _Experiment, figures: list[_Figure],
                        fig_problems: list[str]) -> None:
    doc.add(Heading(2, e.title, _slug(e.name)))
    info: list[Span] = [Span(e.name, "code")]
    m = e.meta
    for key, fmt in (("seed", lambda v: f"seed {fmt_number(v)}"), ("backend", str),
                     ("dtype", str), ("size", str), ("wall_time_s", fmt_seconds)):
        if m.get(key) not in (None, ""):
            info.append(Span(" · " + fmt(m[key])))
    doc.add(Paragraph(info))

    if not e.exists:
        doc.add(Note(spans("the experiment directory ", Span(f"{e.name}/", "code"),
                           " does not exist in this run: it was listed in the run's "
                           "meta.json but never written (the run may have stopped early).")))
        return
    if e.has_no_tables:
        doc.add(Note(spans("no results tables in ", Span(f"{e.name}/", "code"), " (missing ",
                           Span(", ".join(e.missing), "code"),
                           "): the experiment may have failed or been interrupted; "
                           "nothing to show.")))
    elif e.missing:
        doc.add(Note(spans("missing ", Span(", ".join(e.missing), "code"), " in ",
                           Span(f"{e.name}/", "code"), "; the rest is shown.")))
    for problem in [*e.problems, *fig_problems]:
        doc.add(Note(spans(problem)))

    if m.get("description"):
        doc.add(Paragraph([Span("What it tests: ", "strong"), Span(str(m["description"]))]))
    formulas = [str(f) for f in m.get("formulas") or []]
    conditions = [str(c) for c in m.get("conditions") or []]
    if formulas or conditions:
        doc.add(Heading(3, "Theory"))
        if formulas:
            doc.add(Bullets([[Span(f, "code")] for f in formulas]))
        if conditions:
            doc.add(Paragraph([Span("Conditions:", "strong")]))
            doc.add(Bullets([spans(c) for c in conditions]))
    if figures:
        doc.add(Heading(3, "Figures"))
        for f in figures:
            doc.add(Image(f.file, f.rel, f.alt, f.caption))
    if e.verdicts is not None:
        doc.add(Heading(3, "Verdicts"))
        if e.verdicts.empty:
            doc.add(Paragraph(spans("verdicts.csv holds no rows.")))
        else:
            rows = [[_cell(v["check"]), _cell(v["config"]), [Span(v["status"], "status")],
                     *_num_cells(v), _cell(v["detail"])] for _, v in e.verdicts.iterrows()]
            doc.add(Table(list(_VERDICT_HEADER), rows, list(_VERDICT_ALIGN),
                          css_class="verdicts"))
    findings = [str(f) for f in m.get("findings") or []]
    if findings:
        doc.add(Heading(3, "Findings"))
        doc.add(Bullets([spans(f) for f in findings]))
    if m.get("command"):
        doc.add(Paragraph([Span("Reproduce: ", "strong"), Span(str(m["command"]), "code")]))


def build_document(
    run_dir: str | Path, fig_dir: str | Path, *, redraw: bool = False, title: str | None = None
) -> Document:
    """The report's intermediate structure; figures are copied or drawn into ``fig_dir``."""
    run = Path(run_dir)
    fig_path = Path(fig_dir)
    fig_path.mkdir(parents=True, exist_ok=True)
    try:
        top = read_json(run / "meta.json")
    except (OSError, ValueError):
        top = {}
    exps = _experiments(run)
    doc = Document(title or str(top.get("title") or "Convergence Lab report"))
    doc.add(_run_info(run, top, exps))

    counts = dict.fromkeys(STATUSES, 0)
    for e in exps:
        if e.verdicts is not None:
            for s in e.verdicts["status"]:
                counts[s] = counts.get(s, 0) + 1
    n_missing = sum(1 for e in exps if e.verdicts is None or e.has_no_tables)
    doc.add(Heading(2, "Summary of verdicts", "summary"))
    doc.add(_counts_line(counts, n_missing))
    if exps:
        doc.add(_summary_table(exps))
    else:
        doc.add(Note(spans("no experiment directories found in ", Span(str(run), "code"), ".")))
    for e in exps:
        figures, problems = _experiment_figures(e, fig_path, redraw)
        _experiment_section(doc, e, figures, problems)
    return doc


# --------------------------------------------------------------------------- writing

def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _swap_dir(new: Path, target: Path) -> None:
    """Put directory ``new`` in place of ``target`` (removing the old one and its files)."""
    old: Path | None = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def build_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    redraw: bool = False,
    title: str | None = None,
) -> tuple[Path, Path]:
    """Write ``out_dir/REPORT.md`` and ``out_dir/report.html`` for a run directory.

    Parameters
    ----------
    run_dir
        The run directory (see :mod:`plots.tables` for its format).
    out_dir
        Where to write (created); default ``run_dir/report``. ``out_dir/figures`` is
        rebuilt from scratch, so figures of a previous build that no longer apply vanish.
    redraw
        Draw every figure from the tables even when the experiment saved one.
    title
        Report title; default the run's ``meta.json`` title or "Convergence Lab report".

    Returns
    -------
    (path of REPORT.md, path of report.html). Every file is written atomically (temporary
    file in the same directory, then ``os.replace``). An experiment without tables is
    reported as such; it does not stop the build.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"run_dir={str(run)!r}: not a directory")
    out = Path(out_dir) if out_dir is not None else run / "report"
    out.mkdir(parents=True, exist_ok=True)
    tmp_figs = Path(tempfile.mkdtemp(prefix=f".{FIGURES_DIR}.tmp-", dir=out))
    try:
        doc = build_document(run, tmp_figs, redraw=redraw, title=title)
        markdown = render_markdown(doc)
        page = render_html(doc)  # embeds the PNGs while they are still in tmp_figs
        os.chmod(tmp_figs, 0o755)
        _swap_dir(tmp_figs, out / FIGURES_DIR)
    except BaseException:
        shutil.rmtree(tmp_figs, ignore_errors=True)
        raise
    md_path, html_path = out / MD_NAME, out / HTML_NAME
    _write_text_atomic(md_path, markdown)
    _write_text_atomic(html_path, page)
    return md_path, html_path
