"""Assembles REPORT.md and report.html from a run directory.

Presentation only: reads the saved tables and ``meta.json`` files (format documented in
:mod:`plots.tables`), draws or copies figures through :mod:`plots`, and never imports
``simulate`` or ``theory``. The Markdown and the HTML are rendered from one intermediate
structure (:mod:`reports.document`).

* :func:`build_report` — write ``REPORT.md``, ``report.html`` and ``figures/``
* :func:`summary_counts` — pass / fail / n/a counts over a run
* :func:`missing_experiments` — experiments whose tables are missing
"""

from .build import build_document, build_report, fmt_number, missing_experiments, summary_counts

__all__ = [
    "build_document",
    "build_report",
    "fmt_number",
    "missing_experiments",
    "summary_counts",
]
