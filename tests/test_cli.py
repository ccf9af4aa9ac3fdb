"""The installed ``simulate`` command, end to end in subprocesses on temporary directories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from simulate.experiments import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
EXP = "sgd-noise-floor"
FAST = ["--set", "steps=300", "--set", "replicates=16", "--set", "alpha_L=0.1,0.2",
        "--set", "B=1,4"]


def _command() -> list[str]:
    exe = Path(sys.executable).parent / "simulate"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "simulate"]


def simulate(*args: str, cwd: Path | None = None,
             env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, SIMULATE_BACKEND="numpy", MPLBACKEND="Agg", **(env_extra or {}))
    # without an installed console script (running from a source tree), make the package
    # importable from any working directory
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([*_command(), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def _no_partial_files(root: Path) -> None:
    leftovers = [p for p in root.rglob("*") if ".partial-" in p.name or p.name.endswith(".tmp")]
    assert not leftovers, leftovers


def test_list_names_every_experiment():
    out = simulate("list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == list(CATALOGUE)
    assert all(len(ln.split(maxsplit=1)) == 2 for ln in lines)


def test_help_everywhere():
    for sub in ([], ["run"], ["plot"], ["report"], ["check"], ["list"], ["bench"]):
        out = simulate(*sub, "--help")
        assert out.returncode == 0 and "usage" in out.stdout.lower(), sub


def test_run_writes_tables_meta_and_figures_then_plot_redraws(tmp_path):
    out = simulate("run", EXP, "--quick", "--seed", "3", "--out", str(tmp_path), *FAST)
    assert out.returncode == 0, out.stderr
    assert "passed" in out.stdout
    exp_dir = tmp_path / EXP
    for name in ("curves.csv", "verdicts.csv", "meta.json"):
        assert (exp_dir / name).is_file(), name
    meta = json.loads((exp_dir / "meta.json").read_text())
    assert meta["seed"] == 3 and meta["backend"] == "numpy" and meta["dtype"] == "float64"
    assert "simulate run" in meta["command"] and meta["wall_time_s"] > 0
    assert meta["figures"] and all((exp_dir / f).is_file() for f in meta["figures"])
    curves = pd.read_csv(exp_dir / "curves.csv")
    assert {"measured", "bound", "exact"} <= set(curves["source"])
    assert set(curves["B"].dropna()) == {1, 4}
    for f in meta["figures"]:
        (exp_dir / f).unlink()
    again = simulate("plot", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert all((exp_dir / f).is_file() for f in meta["figures"])
    _no_partial_files(tmp_path)


def test_same_seed_gives_byte_identical_tables(tmp_path):
    for sub in ("a", "b"):
        out = simulate("run", EXP, "--quick", "--seed", "11", "--out", str(tmp_path / sub),
                       *FAST)
        assert out.returncode == 0, out.stderr
    for table in ("curves.csv", "verdicts.csv"):
        assert (tmp_path / "a" / EXP / table).read_bytes() == \
            (tmp_path / "b" / EXP / table).read_bytes()


def test_report_quick_writes_markdown_and_self_contained_html(tmp_path):
    out = simulate("report", "--quick", "--out", str(tmp_path / "rep"), "--run-dir",
                   str(tmp_path / "run"))
    assert out.returncode == 0, out.stdout + out.stderr
    md = (tmp_path / "rep" / "REPORT.md").read_text()
    html = (tmp_path / "rep" / "report.html").read_text()
    for name in CATALOGUE:
        assert name in md and name in html
    assert "data:image/png;base64" in html
    again = simulate("report", "--from", str(tmp_path / "run"), "--out", str(tmp_path / "rep2"))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "rep2" / "REPORT.md").is_file()
    _no_partial_files(tmp_path)


def test_check_passes_and_exits_zero():
    out = simulate("check", EXP, "--quick", *FAST)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "no-such-experiment", "--quick"], "no-such-experiment"),
        (["run", EXP, "--quick", "--set", "colour=red"], "colour"),
        (["run", EXP, "--quick", "--set", "B=abc"], "B"),
        (["run", EXP, "--quick", "--set", "B=0"], "B"),
        (["run", EXP, "--quick", "--set", "kappa=nan"], "kappa"),
        (["run", EXP, "--quick", "--set", "novalue"], "key=value"),
        (["run", EXP, "--quick", "--set", "B=1,,4"], "empty"),
        (["run", EXP, "--quick", "--dtype", "float16"], "dtype"),
        (["run", EXP, "--quick", "--backend", "tpu"], "backend"),
        (["run", EXP, "--quick", "--seed", "-1"], "seed"),
        (["run", EXP, "--quick", "--config", "missing.toml"], "missing.toml"),
        (["report", "--from", "no/such/dir"], "no/such/dir"),
        (["plot", "no/such/dir"], "no/such/dir"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, args, needle):
    out = simulate(*args, "--out", str(tmp_path / "out")) if args[0] == "run" else \
        simulate(*args, cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    err = out.stderr.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert needle in err
    assert not (tmp_path / "out" / EXP).exists()


def test_bad_toml_keys_and_unwritable_out(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('seed = 1\n[sgd-noise-floor]\nwobble = 3\n')
    out = simulate("run", EXP, "--quick", "--config", str(bad), "--out", str(tmp_path / "o"))
    assert out.returncode == 2 and "wobble" in out.stderr and "Traceback" not in out.stderr
    bad.write_text('colour = "red"\n')
    out = simulate("run", EXP, "--quick", "--config", str(bad), "--out", str(tmp_path / "o"))
    assert out.returncode == 2 and "colour" in out.stderr
    bad.write_text('seed = [1\n')
    out = simulate("run", EXP, "--quick", "--config", str(bad), "--out", str(tmp_path / "o"))
    assert out.returncode == 2 and "TOML" in out.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = simulate("run", EXP, "--quick", "--out", str(blocker / "sub"))
    assert out.returncode == 2 and "--out" in out.stderr and "Traceback" not in out.stderr


def test_bad_figure_worker_count_is_one_line_exit_2(tmp_path):
    out = simulate("run", EXP, "--quick", "--out", str(tmp_path / "o"),
                   env_extra={"SIMULATE_FIGURE_WORKERS": "-2"})
    err = out.stderr.strip()
    assert out.returncode == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "SIMULATE_FIGURE_WORKERS" in err and "-2" in err
    assert not (tmp_path / "o" / EXP).exists()


def test_toml_config_sets_parameters(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('seed = 4\n[sgd-noise-floor]\nsteps = 200\nreplicates = 8\n'
                   'alpha_L = [0.1]\nB = [2, 8]\n')
    out = simulate("run", EXP, "--quick", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert out.returncode == 0, out.stderr
    meta = json.loads((tmp_path / "o" / EXP / "meta.json").read_text())
    assert meta["seed"] == 4 and meta["params"]["B"] == [2, 8] and meta["params"]["steps"] == 200


def test_failed_verdict_exits_1(tmp_path, monkeypatch, capsys):
    """In-process: an experiment whose verdict fails makes `run` and `check` exit 1."""
    import dataclasses

    from simulate import cli
    from simulate.experiments import base

    real = CATALOGUE[EXP]

    def failing_build(ctx):
        res = real.build(ctx)
        res.verdicts.loc[0, "status"] = "fail"
        return res

    monkeypatch.setitem(CATALOGUE, EXP, dataclasses.replace(real, build=failing_build))
    assert isinstance(CATALOGUE[EXP], base.Experiment)
    code = cli.main(["check", EXP, "--quick", "--quiet", *FAST])
    assert code == 1
    assert "failed" in capsys.readouterr().out
