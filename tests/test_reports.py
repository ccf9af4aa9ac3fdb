"""Tests of reports/: both files written, self-contained HTML, every verdict summarised."""

from __future__ import annotations

import os
import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from fixtures_results import RunInfo, add_experiment_without_tables, make_run_dir

from plots import save_figures
from reports import build_report, fmt_number, missing_experiments, summary_counts
from reports.document import Document, Paragraph, Span, md_escape, render_html, render_markdown


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunInfo:
    info = make_run_dir(tmp_path_factory.mktemp("run") / "RUN")
    add_experiment_without_tables(info.run_dir)
    return info


@pytest.fixture(scope="module")
def built(run: RunInfo, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_report(run.run_dir, tmp_path_factory.mktemp("out") / "report")


def _summary_rows(md: str) -> list[list[str]]:
    section = md.split("## Summary of verdicts", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ")][2:]  # skip header+rule
    return [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows]


def _unescape(cell: str) -> str:
    return re.sub(r"\\(.)", r"\1", cell).replace("&amp;", "&")


def test_build_report_writes_both_files(built: tuple[Path, Path]) -> None:
    md, page = built
    assert md.name == "REPORT.md" and page.name == "report.html"
    assert md.is_file() and page.is_file()
    assert md.parent == page.parent
    leftovers = [p.name for p in md.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temp files or directories left behind


def test_markdown_figures_exist_by_relative_path(built: tuple[Path, Path], run: RunInfo) -> None:
    md, _ = built
    text = md.read_text(encoding="utf-8")
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert refs, "no figures referenced"
    for ref in refs:
        assert ref.startswith("figures/") and not ref.startswith("/")
        assert (md.parent / ref).is_file()
    on_disk = sorted(p.name for p in (md.parent / "figures").iterdir())
    assert sorted(Path(r).name for r in refs) == on_disk
    for exp in run.experiments:
        assert f"figures/{exp}-f_gap.png" in refs
    assert "figures/heavy_ball_cycle-trajectory.png" in refs
    assert "figures/momentum_kappa_scaling-scaling_steps_to_eps_vs_kappa.png" in refs


def test_html_is_self_contained(built: tuple[Path, Path]) -> None:
    _, page = built
    html = page.read_text(encoding="utf-8")
    srcs = re.findall(r'\bsrc="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    hrefs = re.findall(r'\bhref="([^"]*)"', html)
    assert all(h.startswith("#") for h in hrefs)
    assert not re.search(r"https?://", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert len(srcs) == len(re.findall(r"!\[", built[0].read_text(encoding="utf-8")))


def test_html_is_well_formed(built: tuple[Path, Path]) -> None:
    class Checker(HTMLParser):
        void = {"meta", "img", "br"}

        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []
            self.errors: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag not in self.void:
                self.stack.append(tag)

        def handle_endtag(self, tag):
            if not self.stack or self.stack[-1] != tag:
                self.errors.append(tag)
            else:
                self.stack.pop()

    checker = Checker()
    checker.feed(built[1].read_text(encoding="utf-8"))
    assert checker.errors == [] and checker.stack == []


def test_every_verdict_in_summary_table(built: tuple[Path, Path], run: RunInfo) -> None:
    rows = _summary_rows(built[0].read_text(encoding="utf-8"))
    summary = [(re.sub(r"^\[(.*)\]\(.*\)$", r"\1", _unescape(r[0])), _unescape(r[1]),
                _unescape(r[2]), r[3]) for r in rows]
    symbol = {"pass": "✅ pass", "fail": "❌ fail", "n/a": "➖ n/a"}
    expected = [(v.experiment, v.check, str(v.config), symbol[v.status])
                for v in run.verdicts.itertuples()]
    assert [s for s in summary if s[0] != "crashed_experiment"] == expected
    # the key numbers come from the table, formatted
    first = run.verdicts.iloc[0]
    assert rows[0][4] == fmt_number(first["measured"])
    assert rows[0][6] == fmt_number(first["ratio"])


def test_summary_before_sections_and_counts(built: tuple[Path, Path], run: RunInfo) -> None:
    md = built[0].read_text(encoding="utf-8")
    assert md.index("## Summary of verdicts") < md.index("## SGD noise floor on quadratics")
    c = run.counts
    total = sum(c.values())
    assert (f"**{total} verdicts:** {c['pass']} ✅ pass · {c['fail']} ❌ fail · "
            f"{c['n/a']} ➖ n/a") in md
    html = built[1].read_text(encoding="utf-8")
    assert html.count('class="status fail"') >= c["fail"] * 2  # summary + section tables


def test_summary_counts(run: RunInfo) -> None:
    assert summary_counts(run.run_dir) == run.counts
    assert run.counts == {"pass": 11, "fail": 2, "n/a": 5}


def test_missing_tables_reported_not_crashed(built: tuple[Path, Path], run: RunInfo) -> None:
    assert missing_experiments(run.run_dir) == ["crashed_experiment"]
    md = built[0].read_text(encoding="utf-8")
    section = md.split("## An experiment that crashed", 1)[1]
    assert "no results tables" in section and "curves.csv" in section
    assert "⚠️ missing" in md.split("## SGD noise floor", 1)[0]
    assert "no results tables" in built[1].read_text(encoding="utf-8")


def test_missing_directory_listed_in_meta(tmp_path: Path) -> None:
    info = make_run_dir(tmp_path / "RUN")
    shutil.rmtree(info.run_dir / "heavy_ball_cycle")
    md, _ = build_report(info.run_dir, tmp_path / "out")
    text = md.read_text(encoding="utf-8")
    assert "does not exist in this run" in text
    assert "heavy\\_ball\\_cycle" in text


def test_sections_carry_meta_text(built: tuple[Path, Path], run: RunInfo) -> None:
    md = built[0].read_text(encoding="utf-8")
    html = built[1].read_text(encoding="utf-8")
    for exp in run.experiments:
        meta = pd.read_json(run.run_dir / exp / "meta.json", typ="series")
        assert f"## {md_escape(meta['title'])}" in md
        for finding in meta["findings"]:
            assert md_escape(finding) in md
        for formula in meta["formulas"]:
            assert f"`{formula}`" in md
            assert f"<code>{formula}</code>" in html.replace("&#x27;", "'")
    assert "seed 0 · numpy · float64 · quick · 3.21 s" in md
    assert "2025-01-02 03:04:05" in md  # date from the run's meta.json


def test_html_escapes_table_text(built: tuple[Path, Path]) -> None:
    html = built[1].read_text(encoding="utf-8")
    assert "&lt;outside&gt; &amp; tolerance" in html
    assert "<outside>" not in html
    md = built[0].read_text(encoding="utf-8")
    assert "\\<outside\\> &amp; tolerance" in md


def test_rebuild_removes_stale_figures(tmp_path: Path) -> None:
    info = make_run_dir(tmp_path / "RUN")
    out = tmp_path / "out"
    build_report(info.run_dir, out)
    stale = out / "figures" / "old_experiment-f_gap.png"
    stale.write_bytes(b"stale")
    build_report(info.run_dir, out)
    assert not stale.exists()
    assert (out / "figures" / "sgd_noise_floor-f_gap.png").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_saved_figures_are_copied_and_stale_ones_redrawn(tmp_path: Path) -> None:
    info = make_run_dir(tmp_path / "RUN")
    exp = info.run_dir / "heavy_ball_cycle"
    save_figures(exp)
    marker = b"\x89PNG\r\n\x1a\n-copied-"
    (exp / "trajectory.png").write_bytes(marker)  # newer than the tables → copied as is
    out = tmp_path / "out"
    build_report(info.run_dir, out)
    assert (out / "figures" / "heavy_ball_cycle-trajectory.png").read_bytes() == marker
    # tables newer than the saved figure → redrawn
    past = time.time() - 100
    os.utime(exp / "trajectory.png", (past, past))
    build_report(info.run_dir, out)
    assert (out / "figures" / "heavy_ball_cycle-trajectory.png").read_bytes() != marker
    (exp / "trajectory.png").write_bytes(marker)
    build_report(info.run_dir, out, redraw=True)
    assert (out / "figures" / "heavy_ball_cycle-trajectory.png").read_bytes() != marker


def test_unreadable_table_is_reported(tmp_path: Path) -> None:
    info = make_run_dir(tmp_path / "RUN")
    (info.run_dir / "heavy_ball_cycle" / "verdicts.csv").write_text("nothing,useful\n1,2\n",
                                                                    encoding="utf-8")
    md, _ = build_report(info.run_dir, tmp_path / "out")
    assert "verdicts.csv could not be read" in md.read_text(encoding="utf-8")
    assert summary_counts(info.run_dir)["pass"] == info.counts["pass"] - 1


def test_report_default_out_dir_and_errors(tmp_path: Path) -> None:
    info = make_run_dir(tmp_path / "RUN")
    md, page = build_report(info.run_dir)
    assert md.parent == info.run_dir / "report"
    # the report folder is not mistaken for an experiment on the next build
    md2, _ = build_report(info.run_dir)
    assert "## report" not in md2.read_text(encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="run_dir="):
        build_report(tmp_path / "nope", tmp_path / "out")


def test_renderers_share_one_structure() -> None:
    doc = Document("T <1> & *x*")
    doc.add(Paragraph([Span("a|b_c "), Span("x`y", "code"), Span(" bold ", "strong"),
                       Span("fail", "status")]))
    md = render_markdown(doc)
    html = render_html(doc)
    assert md.startswith("# T \\<1\\> &amp; \\*x\\*")
    assert "a\\|b\\_c ``x`y`` **bold** ❌ fail" in md
    assert "<title>T &lt;1&gt; &amp; *x*</title>" in html
    assert "<code>x`y</code>" in html and '<span class="status fail">' in html


def test_fmt_number() -> None:
    assert fmt_number(float("nan")) == "—"
    assert fmt_number(3.0) == "3"
    assert fmt_number(0.98123) == "0.9812"
    assert fmt_number(1.2345e-7) == "1.234e-7" or fmt_number(1.2345e-7) == "1.235e-7"
    assert fmt_number(None) == "—"
