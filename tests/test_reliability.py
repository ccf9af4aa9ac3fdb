"""Reliability: resume after a kill, determinism alone vs in a sweep, junk input never crashes.

The subprocess tests run the real ``simulate`` command (see tests/test_cli.py) on small
overrides so the whole file takes well under a minute on 2 cores.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import ROOT, _command

from simulate.cli import main
from simulate.experiments import CATALOGUE

#: small, fast experiments for the sweep tests (the first three of the catalogue that exist)
SWEEP = [n for n in ("gd-optimal-step", "sgd-noise-floor", "gd-linear-rate", "noise-models")
         if n in CATALOGUE][:3]


def _env() -> dict[str, str]:
    env = dict(os.environ, SIMULATE_BACKEND="numpy", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*_command(), *args], capture_output=True, text=True, env=_env(),
                          timeout=600)


def _tables(run_dir: Path, names: list[str]) -> dict[str, bytes]:
    return {f"{n}/{t}": (run_dir / n / t).read_bytes()
            for n in names for t in ("curves.csv", "verdicts.csv")}


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".partial-" in p.name or ".old-" in p.name
            or p.name.endswith(".tmp")]


def test_killed_sweep_resumes_and_equals_an_uninterrupted_run(tmp_path):
    assert len(SWEEP) >= 1
    args = ["run", *SWEEP, "--quick", "--seed", "7", "--quiet", "--no-figures"]
    clean = _run(*args, "--out", str(tmp_path / "clean"))
    assert clean.returncode in (0, 1), clean.stderr

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen([*_command(), *args, "--out", str(killed_dir)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = killed_dir / SWEEP[0] / "meta.json"
    deadline = time.monotonic() + 300
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # killed outright, mid-sweep (or just after it ended)
    proc.wait()
    assert first.exists(), "the first experiment never finished"

    again = _run(*args, "--out", str(killed_dir))
    assert again.returncode in (0, 1), again.stderr
    assert "reused" in again.stderr and SWEEP[0] in again.stderr
    assert _tables(killed_dir, SWEEP) == _tables(tmp_path / "clean", SWEEP)
    assert not _leftovers(killed_dir), _leftovers(killed_dir)


def test_changed_configuration_is_recomputed_not_reused(tmp_path):
    name = SWEEP[0]
    base = ["run", name, "--quick", "--quiet", "--no-figures", "--out", str(tmp_path)]
    assert _run(*base, "--seed", "1").returncode in (0, 1)
    second = _run(*base, "--seed", "2")
    assert "reused" not in second.stderr
    third = _run(*base, "--seed", "2")
    assert "reused" in third.stderr
    fresh = _run(*base, "--seed", "2", "--fresh")
    assert "reused" not in fresh.stderr


def test_one_experiment_alone_or_in_a_sweep_gives_the_same_tables(tmp_path):
    alone = _run("run", SWEEP[-1], "--quick", "--seed", "11", "--quiet", "--no-figures",
                 "--out", str(tmp_path / "alone"))
    swept = _run("run", *SWEEP, "--quick", "--seed", "11", "--quiet", "--no-figures",
                 "--out", str(tmp_path / "swept"))
    assert alone.returncode in (0, 1) and swept.returncode in (0, 1)
    assert (_tables(tmp_path / "alone", [SWEEP[-1]])
            == _tables(tmp_path / "swept", [SWEEP[-1]]))


# --------------------------------------------------------------------------- junk input
def _main_in_process(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


_JUNK_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e400", "1,2,", ",", "true", "1e-320",
                     "2**3", "[1]", "0x10", " ", "1;2", "B=1", "=", "３"]),
    # numbers: small ones (valid or not) and ones beyond the parameters' caps; valid counts
    # in between (say steps = 10**7) would be legal, merely slow, runs — not junk
    st.integers(-10**20, 10).map(str),
    st.integers(10**9 + 1, 10**20).map(str),
    st.floats(-10.0, 10.0).map(repr),
    st.floats(min_value=1e9 + 1, allow_infinity=True).map(repr),
    st.floats(max_value=-1.0, allow_infinity=True).map(repr),
)
_KEYS = st.sampled_from(["B", "alpha_L", "kappa", "sigma2", "d", "steps", "replicates", "e0",
                         "record_points", "L", "nonexistent", ""])
_TINY = ["--set", "steps=20", "--set", "replicates=2"]


def _assert_clean_outcome(code: int, err: str, out_dir: Path) -> None:
    assert code in (0, 1, 2), code
    assert "Traceback" not in err
    if code == 2:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert len(lines) == 1, err
    assert not _leftovers(out_dir) if out_dir.exists() else True


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=_KEYS, value=_JUNK_TEXT)
def test_junk_set_values_exit_cleanly(tmp_path, key, value):
    out_dir = tmp_path / "junk-set"
    code, err = _main_in_process(["run", "sgd-noise-floor", "--quick", "--quiet", "--no-figures",
                                  *_TINY, "--set", f"{key}={value}", "--out", str(out_dir)])
    _assert_clean_outcome(code, err, out_dir)


_TOML_VALUES = st.one_of(
    st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.booleans(), st.lists(st.integers(-5, 5), max_size=3),
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(section=st.sampled_from(["", "[set]\n", "[sgd-noise-floor]\n", "[nope]\n"]),
       key=st.sampled_from(["seed", "backend", "dtype", "quick", "B", "alpha_L", "steps",
                            "replicates", "kappa", "weird key", "d"]),
       value=_TOML_VALUES, raw=st.one_of(st.none(), st.text(max_size=30)))
def test_junk_toml_exits_cleanly(tmp_path, section, key, value, raw):
    import json

    def toml_value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(v), repr(v))
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(map(str, v)) + "]"
        return str(v)

    text = raw if raw is not None else f"{section}{json.dumps(key)} = {toml_value(value)}\n"
    cfg = tmp_path / "junk.toml"
    cfg.write_text(f"steps = 20\nreplicates = 2\n{text}" if raw is None else text,
                   encoding="utf-8")
    out_dir = tmp_path / "junk-toml"
    code, err = _main_in_process(["run", "sgd-noise-floor", "--quick", "--quiet", "--no-figures",
                                  *_TINY, "--config", str(cfg), "--out", str(out_dir)])
    _assert_clean_outcome(code, err, out_dir)


@pytest.mark.parametrize("experiment", ["sgd-noise-floor", "sampling"])
def test_a_start_whose_gap_overflows_is_one_line_exit_2(tmp_path, experiment):
    # e0 = 1e200 is a finite number, but f(w0) − f* ≈ d·e0² is not: every curve would be inf
    code, err = _main_in_process(["run", experiment, "--quick", "--quiet", "--no-figures",
                                  *_TINY, "--set", "e0=1e200", "--out", str(tmp_path / "o")])
    assert code == 2 and "e0=1e+200" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists() or not _leftovers(tmp_path / "o")


def test_a_huge_but_finite_start_runs_without_warnings_or_failed_verdicts(tmp_path):
    # e0 = 1e100 (the largest magnitude allowed): the gap (≈ 1e200) is finite, its squares
    # (the variances) are not. Those steps' standard errors are inf and say nothing: no
    # verdict may fail for it, and no RuntimeWarning reaches the user
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        code, err = _main_in_process(["run", "sgd-noise-floor", "--quick", "--quiet",
                                      "--no-figures", "--set", "e0=1e100",
                                      "--out", str(tmp_path / "o")])
    assert code == 0, err


@pytest.mark.parametrize("setting", ["L=1e100", "L=1e-100", "alpha_L=1e100", "e0=1e99",
                                     "e0=-1e99", "sigma2=1e100", "kappa=1e100"])
def test_extreme_constants_inside_the_caps_run_without_runtime_warnings(tmp_path, setting):
    # at the edges of the float caps (MAX_MAGNITUDE, MIN_MAGNITUDE) runs may overflow
    # (diverge) or underflow; the runner, the theory functions and the verdicts handle inf
    # and nan themselves, so no RuntimeWarning may reach the user (values nearer float64's
    # limits did print them, before the caps)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        code, err = _main_in_process(["run", "sgd-noise-floor", "--quick", "--quiet",
                                      "--no-figures", *_TINY, "--set", setting,
                                      "--out", str(tmp_path / "o")])
    _assert_clean_outcome(code, err, tmp_path / "o")


@pytest.mark.parametrize("setting", ["L=1e101", "alpha_L=1e-101", "e0=-2e100", "sigma2=1e300"])
def test_float_parameters_beyond_the_magnitude_caps_are_one_line_exit_2(tmp_path, setting):
    code, err = _main_in_process(["run", "sgd-noise-floor", "--quick", "--quiet", *_TINY,
                                  "--set", setting, "--out", str(tmp_path / "o")])
    name = setting.split("=")[0]
    assert code == 2 and f"{name}=" in err and "1e+100" in err, err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["tpu", "NUMPY ", "cupy-please"])
def test_bad_backend_environment_variable_is_one_line_exit_2(tmp_path, monkeypatch, value):
    monkeypatch.setenv("SIMULATE_BACKEND", value)
    code, err = _main_in_process(["run", "sgd-noise-floor", "--quick", "--quiet", *_TINY,
                                  "--out", str(tmp_path)])
    assert code == 2 and "SIMULATE_BACKEND" in err and len(err.strip().splitlines()) == 1, err


def test_cupy_requested_without_a_gpu_is_a_clear_error(tmp_path):
    from simulate.backend import cupy_available

    if cupy_available():
        pytest.skip("a CUDA device answers here; the error path cannot be exercised")
    code, err = _main_in_process(["run", "sgd-noise-floor", "--quick", "--quiet", *_TINY,
                                  "--backend", "cupy", "--out", str(tmp_path)])
    assert code == 2 and "cupy" in err.lower() and len(err.strip().splitlines()) == 1, err


def test_unwritable_out_is_one_line_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, err = _main_in_process(["run", "sgd-noise-floor", "--quick", "--quiet", *_TINY,
                                  "--out", str(blocker / "sub")])
    assert code == 2 and "--out" in err and len(err.strip().splitlines()) == 1, err


def test_python_api_rejects_bad_parameters_with_one_line():
    from simulate.experiments import run_experiment

    for overrides, needle in (({"B": 0}, "B"), ({"kappa": float("nan")}, "kappa"),
                              ({"nonexistent": 1}, "nonexistent")):
        with pytest.raises(ValueError, match=needle) as info:
            run_experiment("sgd-noise-floor", "quick", overrides=overrides)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="seed"):
        run_experiment("sgd-noise-floor", "quick", seed=-3)
