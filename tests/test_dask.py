"""The Dask executor (simulate/executor.py): same numbers as in-process, lost workers, resume.

Needs the optional extra ``dask[distributed]`` (``pip install '.[dask]'``); the tests that start
a cluster are skipped, with that reason, where it does not import. Workers are real processes
(``LocalCluster(processes=True)``), so everything that travels is pickled as on a real cluster.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulate.cli import main
from simulate.executor import DaskExecutor, plan_chunks, start_executor, use_executor
from simulate.methods import get_method
from simulate.noise import IsotropicGaussianNoise
from simulate.problems import QuadraticProblem
from simulate.runner import run

try:
    import distributed  # noqa: F401

    HAVE_DASK = True
except ImportError:
    HAVE_DASK = False

needs_dask = pytest.mark.skipif(
    not HAVE_DASK, reason="dask[distributed] is not installed (pip install '.[dask]')")
ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers
def _sweep(steps: int = 400, replicates: int = 32, d: int = 12, n_alpha: int = 4,
           engine: str = "reference", record_iterate: bool = True) -> dict:
    """Arguments of a noisy SGD sweep with everything that must survive chunking: per-config
    oracle parameters, a per-config start (C, R, d), configurations with different keys, and
    configurations that diverge (α = 2.5/L > 2/L)."""
    problem = QuadraticProblem(dim=d, L=1.0, mu=0.1, spectrum="log-uniform")
    alphas = [0.05, 0.2, 1.0, 2.5, 0.1, 0.4][:n_alpha]
    grid = [(a, B) for a in alphas for B in (1, 4, 16)]
    configs = [{"alpha": a, "B": B, **({"tag": "odd"} if i % 4 == 3 else {})}
               for i, (a, B) in enumerate(grid)]
    rng = np.random.default_rng(7)
    w0 = problem.w_star + rng.standard_normal((len(grid), replicates, d))
    oracle = IsotropicGaussianNoise(sigma2=[0.5 + i for i in range(len(grid))],
                                    B=[B for _, B in grid])
    return dict(problem=problem, method=get_method("sgd"), configs=configs, steps=steps,
                w0=w0, oracle=oracle, replicates=replicates, seed=11, experiment="dask-test",
                engine=engine, record_iterate=record_iterate, record_points=25)


def _same(a, b) -> None:
    """Byte-identical tables (as written to CSV) and identical divergence records."""
    pd.testing.assert_frame_equal(a.curves, b.curves, check_exact=True)
    assert a.curves.to_csv(index=False) == b.curves.to_csv(index=False)
    np.testing.assert_array_equal(a.diverged_at, b.diverged_at)
    assert a.divergence_reason == b.divergence_reason
    assert a.params == b.params


def _cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "simulate", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------- no cluster needed
def test_plan_chunks_balanced_contiguous_and_large_enough():
    for n, w, target, floor in [(9, 3.0, 1.0, 0.0), (7, 6.0, 10.0, 0.0), (7, 6.0, 1.0, 10.0),
                                (100, 1.0, 7.0, 0.0), (1, 5.0, 1.0, 0.0), (5, 1.0, 1e9, 0.0)]:
        bounds = plan_chunks(n, w, target, floor)
        sizes = [b - a for a, b in bounds]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1))
        assert max(sizes) - min(sizes) <= 1
        need = max(1, int(np.ceil(max(target, floor) / w)))
        # every chunk carries at least the target work (when there is that much at all)
        assert min(sizes) >= min(need, n)
    assert plan_chunks(9, 3.0, 1.0) == [(i, i + 1) for i in range(9)]
    with pytest.raises(ValueError):
        plan_chunks(0, 1.0, 1.0)
    with pytest.raises(ValueError):
        plan_chunks(3, 1.0, 0.0)


def test_chunk_cache_keys_do_not_depend_on_the_process():
    """A restarted run must find the chunks an earlier process wrote: the keys (hashes of the
    pickled arguments) are the same under different string-hash seeds. (The code-version part
    of the key is fixed here: other sessions may edit the source between the two processes.)"""
    code = ("import sys; sys.path.insert(0, 'tests'); from test_dask import _sweep; "
            "from simulate.executor import DaskExecutor; from simulate.runner import run; "
            "import simulate.executor as ex\n"
            "class Stop(Exception): pass\n"
            "class Probe(DaskExecutor):\n"
            "    def _key_salt(self): return 'fixed'\n"
            "    def run_chunked(self, call):\n"
            "        print(','.join(self.prepare(call)[3])); raise Stop\n"
            "with ex.use_executor(Probe(None, chunk_work=1.0)):\n"
            "    try: run(**_sweep())\n"
            "    except Stop: pass\n")
    outs = []
    for hash_seed in ("1", "2"):
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                              text=True, env=dict(os.environ, PYTHONHASHSEED=hash_seed),
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout.strip())
    keys = outs[0].split(",")
    assert len(keys) == 12 and len(set(keys)) == 12
    assert outs[0] == outs[1]


def test_missing_dask_is_one_line_exit_2(monkeypatch, capsys, tmp_path):
    for mod in ("dask", "distributed"):
        monkeypatch.setitem(sys.modules, mod, None)  # `import dask` raises ImportError
    rc = main(["run", "sgd-noise-floor", "--quick", "--quiet", "--no-figures",
               "--executor", "dask", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "dask" in err and "pip install" in err
    assert not (tmp_path / "sgd-noise-floor").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--executor", "dask", "--workers", "0"], "--workers 0"),
    (["--scheduler", "tcp://127.0.0.1:8786"], "--executor dask"),
    (["--workers", "2"], "--executor dask"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"],
     "LocalCluster"),
    (["--executor", "dask", "--chunk-work", "0"], "--chunk-work"),
])
def test_bad_executor_options_are_one_line_exit_2(argv, needle, capsys, tmp_path):
    rc = main(["run", "sgd-noise-floor", "--quick", "--quiet", "--no-figures",
               "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err


@needs_dask
def test_unreachable_scheduler_is_one_line_exit_2(tmp_path):
    t0 = time.perf_counter()
    proc = _cli("run", "sgd-noise-floor", "--quick", "--quiet", "--no-figures", "--executor",
                "dask", "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path),
                env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:1'" in lines[0]
    assert time.perf_counter() - t0 < 60
    assert not (tmp_path / "sgd-noise-floor").exists()


# --------------------------------------------------------------------------- with a cluster
@pytest.fixture(scope="module")
def cluster():
    """The client of a LocalCluster of 2 single-threaded worker processes."""
    if not HAVE_DASK:
        pytest.skip("dask[distributed] is not installed (pip install '.[dask]')")
    environ = dict(os.environ)  # Dask's nanny writes its worker settings into os.environ
    owner = start_executor("dask", workers=2)
    yield owner.client
    owner.close()
    os.environ.clear()
    os.environ.update(environ)


def test_chunked_run_is_identical_to_local(cluster):
    """One configuration per chunk, and uneven chunks: the same tables, bit for bit."""
    local = run(**_sweep())
    assert np.isfinite(local.diverged_at).sum() >= 3  # the α = 2.5/L row diverges
    assert local.curves.columns[-1] == "tag"  # a key only some configurations have
    seen = []
    for chunk_work in (1.0, 2.5 * 32 * 12 * 400):  # 1 config per chunk; 3 per chunk
        ex = DaskExecutor(cluster, chunk_work=chunk_work)
        with use_executor(ex):
            remote = run(**_sweep(), progress=lambda done, total: seen.append((done, total)))
        _same(local, remote)
        assert ex.stats["computed"] == (12 if chunk_work == 1.0 else 4)
    assert seen[-1] == (400, 400) and seen == sorted(seen[:12]) + sorted(seen[12:])


def test_fast_engine_chunks_identical(cluster):
    """engine="auto" (the compiled path where it applies): also identical under chunking."""
    local = run(**_sweep(engine="auto", record_iterate=False))
    with use_executor(DaskExecutor(cluster, chunk_work=1.0)):
        remote = run(**_sweep(engine="auto", record_iterate=False))
    _same(local, remote)


def test_chunks_are_cached_and_reused_after_a_restart(cluster, tmp_path):
    cache = tmp_path / ".chunks"
    local = run(**_sweep())
    first = DaskExecutor(cluster, chunk_work=1.0, cache_dir=cache)
    with use_executor(first):
        _same(local, run(**_sweep()))
    files = sorted(cache.glob("*.pkl"))
    assert first.stats == {"computed": 12, "cached": 0, "runs": 1} and len(files) == 12
    # "interrupted": some chunks missing, one half-written file left behind (a torn write
    # cannot happen with the atomic rename, but a foreign partial file must not be trusted)
    for f in files[:5]:
        f.unlink()
    files[5].write_bytes(b"\x80\x05truncated")
    second = DaskExecutor(cluster, chunk_work=1.0, cache_dir=cache)
    with use_executor(second):
        _same(local, run(**_sweep()))
    assert second.stats == {"computed": 6, "cached": 6, "runs": 1}
    assert len(list(cache.glob("*.pkl"))) == 12 and not list(cache.glob(".*.tmp"))
    # other arguments (here the seed) never hit the cache
    third = DaskExecutor(cluster, chunk_work=1.0, cache_dir=cache)
    with use_executor(third):
        run(**dict(_sweep(), seed=12))
    assert third.stats["cached"] == 0


def test_a_killed_worker_does_not_change_the_result(cluster):
    """SIGKILL a worker while it computes a chunk: Dask reruns the chunk elsewhere (the nanny
    restarts the process) and the sweep completes with identical tables."""
    args = dict(steps=2000, replicates=64, d=40, n_alpha=4, record_iterate=False)
    local = run(**_sweep(**args))
    ex = DaskExecutor(cluster, chunk_work=1.0)
    box: dict = {}

    def sweep() -> None:
        with use_executor(ex):
            try:
                box["result"] = run(**_sweep(**args))
            except BaseException as exc:  # reported below
                box["error"] = exc

    thread = threading.Thread(target=sweep)
    thread.start()
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        busy = {w: t for w, t in cluster.processing().items()
                if any(str(k).startswith("simulate_chunk") for k in t)}
        if busy:
            victim = next(iter(busy))
        else:
            time.sleep(0.02)
    assert victim is not None, "no chunk was seen running"
    pids = cluster.run(os.getpid, workers=[victim])
    os.kill(pids[victim], signal.SIGKILL)
    killed_at = ex.stats["computed"]
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert "error" not in box, box.get("error")
    assert killed_at < 12  # the kill happened mid-sweep
    _same(local, box["result"])
    assert ex.stats["computed"] == 12
    # the scheduler took back at least one chunk the dead worker was computing, and reran it
    log = cluster.run_on_scheduler(lambda dask_scheduler: [
        (str(t[0]), t[1], t[2]) for t in getattr(dask_scheduler, "transition_log", ())])
    if log:
        lost = {k for k, a, b in log if k.startswith("simulate_chunk") and a == "processing"
                and b != "memory"}
        assert lost, "no chunk was lost with the worker"
        assert all(any(k == k2 and b == "memory" for k2, _, b in log) for k in lost)
    cluster.wait_for_workers(2, timeout=60)


@needs_dask
def test_cli_dask_1_and_2_workers_byte_identical_to_local(tmp_path):
    """`simulate run` with --executor dask (2 workers, then 1) writes the same curves.csv,
    verdicts.csv and scaling.csv as --executor local."""
    common = ["run", "sgd-noise-floor", "--quick", "--quiet", "--no-figures", "--seed", "3",
              "--steps", "800", "--set", "B=1,4,16", "--set", "alpha_L=0.05,0.1,0.4"]
    runs = {"local": [], "dask2": ["--executor", "dask", "--workers", "2", "--chunk-work", "1"],
            "dask1": ["--executor", "dask", "--workers", "1", "--chunk-work", "1"]}
    for name, extra in runs.items():
        proc = _cli(*common, *extra, "--out", str(tmp_path / name))
        assert proc.returncode in (0, 1), proc.stderr
    for table in ("curves.csv", "verdicts.csv", "scaling.csv"):
        ref = (tmp_path / "local" / "sgd-noise-floor" / table).read_bytes()
        assert len(ref) > 100
        for name in ("dask2", "dask1"):
            assert (tmp_path / name / "sgd-noise-floor" / table).read_bytes() == ref, (name,
                                                                                      table)
    assert not (tmp_path / "dask2" / ".chunks").exists()  # the cache goes after success
