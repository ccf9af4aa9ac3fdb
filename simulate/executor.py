"""Executors: where :func:`simulate.runner.run` does its work (in-process, or on Dask).

The default is in-process (no executor set). Inside :func:`use_executor` with a
:class:`DaskExecutor`, every ``run(...)`` call is cut into chunks of consecutive configurations;
each chunk is an ordinary ``run(...)`` call (same arguments, the chunk's configurations, stream
keys, per-configuration oracle parameters and ``w0`` rows) executed by a Dask worker, and the
chunks' results are put back together into the :class:`~simulate.runner.RunResult` a local run
returns.

Same numbers everywhere. Configuration c's random stream derives from the run seed and its key
``config_keys[c]`` (:func:`simulate.rng.config_seed_sequence`; on the fast path from the key and
the replicate index), never from its position in the batch, and every recorded aggregate is
computed per configuration. So a chunk computes exactly what the whole batch computes for its
configurations, and the assembled tables are byte-identical to a local run whatever the
chunking or the number of workers. Replicates are not split: on the reference path one
generator per configuration draws all R replicates' noise in one call, so a split would change
the numbers (and the quantiles over replicates could not be merged exactly).

What travels: out, the pickled arguments of each chunk (the problem, method and oracle, the
chunk's configurations); back, the chunk's aggregated tables (a ``RunResult`` of DataFrames).
The state arrays (C, R, d) never leave a worker.

Chunk size: about ``chunk_work`` coordinate-updates C·R·d·T per chunk (default
:data:`DEFAULT_CHUNK_WORK`, seconds of work on one core), never less than one configuration.

Reliability: a lost worker's chunks are recomputed elsewhere by the Dask scheduler. With a
``cache_dir``, each finished chunk is written there atomically as
``<sha256 of the chunk's pickled arguments + code version + versions>.pkl`` (rewriting it is
idempotent), and a restarted run loads the chunks already there instead of recomputing them.
"""

from __future__ import annotations

import contextvars
import hashlib
import importlib
import logging
import math
import os
import pickle
import platform
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_CHUNK_WORK",
    "DaskExecutor",
    "ExecutorUnavailable",
    "activate",
    "current_executor",
    "plan_chunks",
    "start_executor",
    "use_executor",
]

#: default coordinate-updates (C·R·d·T) per chunk: 3·10⁸ is ≈ 7 s on one core of the 2-core
#: development machine for noisy SGD on the reference path (≈ 40 M updates/s measured; the fast
#: path is faster), against ≈ 15 ms of CPU that Dask costs per chunk (measured, README)
DEFAULT_CHUNK_WORK = 3e8

_CURRENT: contextvars.ContextVar[DaskExecutor | None] = contextvars.ContextVar(
    "simulate_executor", default=None)


class ExecutorUnavailable(RuntimeError):
    """The executor cannot start (Dask not installed, scheduler unreachable); one-line message."""


def current_executor() -> DaskExecutor | None:
    """The executor :func:`simulate.runner.run` submits to, or ``None`` (run in-process)."""
    return _CURRENT.get()


@contextmanager
def use_executor(executor: DaskExecutor | None) -> Iterator[DaskExecutor | None]:
    """Make ``executor`` current for the ``with`` block (``None``: in-process)."""
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)


def activate(executor: DaskExecutor | None) -> Callable[[bool], None]:
    """Make ``executor`` current until the returned ``finish(success)`` is called, which also
    closes it (for callers that cannot wrap their code in :func:`use_executor`)."""
    token = _CURRENT.set(executor)

    def finish(success: bool) -> None:
        _CURRENT.reset(token)
        if executor is not None:
            executor.close(success=success)

    return finish


def plan_chunks(n_configs: int, work_per_config: float, chunk_work: float,
                min_chunk_work: float = 0.0) -> list[tuple[int, int]]:
    """Split ``range(n_configs)`` into contiguous ``(start, stop)`` chunks of balanced size.

    Each chunk holds at least ``k = ceil(max(chunk_work, min_chunk_work) / work_per_config)``
    configurations (at least 1), so at least that much work, and fewer than ``2k``; the sizes
    differ by at most one.
    """
    if n_configs < 1:
        raise ValueError(f"n_configs={n_configs}: allowed ≥ 1")
    if not (chunk_work > 0 and math.isfinite(chunk_work)):
        raise ValueError(f"chunk_work={chunk_work}: allowed a finite number > 0")
    target = max(float(chunk_work), float(min_chunk_work))
    per = max(1, math.ceil(target / max(float(work_per_config), 1.0)))
    n = max(1, n_configs // per)
    base, extra = divmod(n_configs, n)
    out, start = [], 0
    for i in range(n):
        stop = start + base + (1 if i < extra else 0)
        out.append((start, stop))
        start = stop
    return out


# --------------------------------------------------------------------------- worker side
_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Undo, in this worker process, the cost of Dask's ``MALLOC_TRIM_THRESHOLD_`` setting.

    Setting that variable (Dask's nanny does, to 65536) switches off glibc's dynamic mmap
    threshold, so every temporary array above 128 KiB is mmap'ed and unmapped again: measured
    2.6–3.6× slower runs (C = 1, R = 256, d = 100). Restoring large thresholds (mmap 32 MiB,
    trim 64 MiB — what glibc's dynamic rule converges to) keeps such arrays on the heap.
    Linux/glibc only; elsewhere, or without that variable, nothing is changed.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return
    _MALLOC_TUNED = True
    if platform.system() != "Linux":
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
        mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD
        mallopt(-1, 64 * 2**20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def _run_chunk(shared: bytes, blob: bytes) -> Any:
    """Worker: one chunk = an ordinary in-process ``run(...)`` with the chunk's arguments
    (``shared``: those of the whole run call, ``blob``: the chunk's own; both pickled)."""
    import cloudpickle

    from .runner import run

    _tune_malloc()
    call = dict(cloudpickle.loads(shared), **cloudpickle.loads(blob))
    call["xp"] = importlib.import_module(call["xp"])
    token = _CURRENT.set(None)  # never re-submit from inside a chunk
    try:
        return run(**call)
    finally:
        _CURRENT.reset(token)


# --------------------------------------------------------------------------- client side
def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` via a temporary file in the same directory and a rename (idempotent)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _slice_w0(w0: Any, start: int, stop: int) -> Any:
    """The chunk's rows of a per-configuration start (C, R, d); shared shapes pass unchanged."""
    return w0[start:stop] if np.ndim(w0) == 3 else w0


class DaskExecutor:
    """Run the runner's chunks on a ``dask.distributed`` client.

    Parameters
    ----------
    client
        A connected ``distributed.Client``.
    cluster
        A ``LocalCluster`` this executor started (closed with it), or ``None``.
    cache_dir
        Where finished chunks are kept (``None``: no cache).
    chunk_work
        Target coordinate-updates C·R·d·T per chunk.
    """

    def __init__(self, client: Any, *, cluster: Any = None, cache_dir: Path | str | None = None,
                 chunk_work: float = DEFAULT_CHUNK_WORK) -> None:
        if not (chunk_work > 0 and math.isfinite(chunk_work)):
            raise ValueError(f"chunk_work={chunk_work}: allowed a finite number > 0")
        self.client = client
        self.cluster = cluster
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.chunk_work = float(chunk_work)
        #: counts since start: chunks computed on workers and chunks loaded from the cache
        self.stats = {"computed": 0, "cached": 0, "runs": 0}
        self._salt: str | None = None

    # ---- lifetime ------------------------------------------------------------------------
    @property
    def n_workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def close(self, success: bool = False) -> None:
        """Close the client (and the cluster it started); on success drop the chunk cache
        (finished experiments are kept whole by the run directory itself)."""
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
        if success and self.cache_dir is not None:
            shutil.rmtree(self.cache_dir, ignore_errors=True)

    # ---- cache ---------------------------------------------------------------------------
    def _key_salt(self) -> str:
        """Code version and library versions: chunk files of other code are never reused."""
        if self._salt is None:
            from .io import code_version, versions

            self._salt = code_version() + repr(sorted(versions().items())) + platform.machine()
        return self._salt

    def _chunk_key(self, shared_blob: bytes, chunk_blob: bytes) -> str:
        h = hashlib.sha256(self._key_salt().encode())
        h.update(hashlib.sha256(shared_blob).digest())
        h.update(hashlib.sha256(chunk_blob).digest())
        return h.hexdigest()

    def _load(self, key: str, n_configs: int) -> Any:
        """The cached result of a chunk of ``n_configs`` configurations, or None."""
        if self.cache_dir is None:
            return None
        try:
            with open(self.cache_dir / f"{key}.pkl", "rb") as fh:
                result = pickle.load(fh)
        except Exception:  # missing, or not a complete pickle: compute the chunk again
            return None
        return result if len(getattr(result, "params", ())) == n_configs else None

    def _store(self, key: str, result: Any) -> None:
        if self.cache_dir is None:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write_bytes(self.cache_dir / f"{key}.pkl",
                            pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))

    # ---- the runner's hook ---------------------------------------------------------------
    def prepare(self, call: dict[str, Any]) -> tuple[bytes, list[tuple[int, int]],
                                                      list[bytes], list[str]]:
        """(shared payload, chunk bounds, chunk payloads, cache keys) of one ``run`` call.

        ``call`` holds run()'s arguments with ``config_keys`` filled in.
        """
        import cloudpickle

        from .backend import backend_name

        configs = list(call["configs"])
        n_cfg = len(configs)
        keys = list(call["config_keys"])
        problem = call["problem"].to(np)  # host arrays travel; the worker moves them to xp
        shared = {k: v for k, v in call.items()
                  if k not in ("configs", "config_keys", "w0", "oracle", "progress")}
        shared["problem"] = problem
        shared["xp"] = backend_name(call["xp"])
        work = float(call["replicates"]) * problem.dim * call["steps"]
        min_work = 0.0
        if call.get("engine", "auto") == "auto":
            # the fast path's "auto" choice may depend on the batch's total work: chunks are
            # kept above that threshold whenever the whole run is, so they choose the same path
            try:
                from .fast import AUTO_MIN_WORK as threshold
            except ImportError:
                threshold = 0.0
            if n_cfg * work >= threshold:
                min_work = threshold
        bounds = plan_chunks(n_cfg, work, self.chunk_work, min_work)
        oracle = call["oracle"]
        shared_blob = cloudpickle.dumps(shared, protocol=5)
        blobs = []
        for start, stop in bounds:
            part = {"configs": configs[start:stop], "config_keys": keys[start:stop],
                    "w0": _slice_w0(call["w0"], start, stop),
                    "oracle": None if oracle is None else oracle.subset(np.arange(start, stop))}
            blobs.append(cloudpickle.dumps(part, protocol=5))
        cache_keys = [self._chunk_key(shared_blob, b) for b in blobs]
        return shared_blob, bounds, blobs, cache_keys

    def run_chunked(self, call: dict[str, Any]) -> Any:
        """Run one ``run(...)`` call as chunks on the cluster; the same RunResult as locally."""
        from distributed import as_completed

        t_start = time.perf_counter()
        shared_blob, bounds, blobs, cache_keys = self.prepare(call)
        progress, steps = call.get("progress"), int(call["steps"])
        results: list[Any] = [self._load(k, stop - start)
                              for k, (start, stop) in zip(cache_keys, bounds, strict=True)]
        total = bounds[-1][1]
        done = sum(stop - start for (start, stop), r in zip(bounds, results, strict=True)
                   if r is not None)
        self.stats["cached"] += sum(r is not None for r in results)
        self.stats["runs"] += 1
        if progress is not None and done:
            progress(int(steps * done / total), steps)
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            # Every chunk carries the shared arguments itself: no dependency between tasks, so
            # nothing to lose with a worker but the chunk. The key prefix (Dask's unit for
            # learnt task durations and for the dashboard) names the chunks' size class,
            # log2 of their work, so durations of small chunks are not assumed for large ones.
            size = round(math.log2(max(float(call["replicates"]) * call["problem"].dim
                                       * call["steps"] * total / len(bounds), 1.0)))
            futures = {self.client.submit(_run_chunk, shared_blob, blobs[i],
                                          key=f"simulate_chunk_w{size}-{uuid.uuid4().hex}"): i
                       for i in todo}
            try:
                for fut in as_completed(list(futures), loop=self.client.loop):
                    i = futures[fut]
                    results[i] = fut.result()
                    fut.release()
                    self._store(cache_keys[i], results[i])
                    self.stats["computed"] += 1
                    done += bounds[i][1] - bounds[i][0]
                    if progress is not None:
                        progress(int(steps * done / total), steps)
            except BaseException:
                self.client.cancel(list(futures))
                raise
        return _assemble(results, bounds, time.perf_counter() - t_start)


def _assemble(results: list[Any], bounds: list[tuple[int, int]], wall: float) -> Any:
    """Concatenate chunk results in configuration order, renumbering the ``config`` column."""
    import pandas as pd

    from .runner import RunResult

    frames = []
    for res, (start, _) in zip(results, bounds, strict=True):
        frame = res.curves.copy()
        frame["config"] = frame["config"] + start
        frames.append(frame)
    curves = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return RunResult(
        curves=curves.reset_index(drop=True),
        diverged_at=np.concatenate([r.diverged_at for r in results]),
        divergence_reason=[s for r in results for s in r.divergence_reason],
        wall_time_s=wall,
        params=[p for r in results for p in r.params],
    )


def start_executor(kind: str = "local", *, scheduler: str | None = None, workers: int = 2,
                   cache_dir: Path | str | None = None,
                   chunk_work: float = DEFAULT_CHUNK_WORK) -> DaskExecutor | None:
    """Start the executor ``kind`` (``"local"`` → ``None``, ``"dask"`` → :class:`DaskExecutor`).

    With ``scheduler`` the client connects to that ``dask.distributed`` scheduler (timeout:
    Dask's ``distributed.comm.timeouts.connect``); without, a ``LocalCluster`` of ``workers``
    single-threaded worker processes is started.

    Raises
    ------
    ExecutorUnavailable
        Dask is not installed, or the scheduler does not answer.
    ValueError
        Bad arguments.
    """
    if kind == "local":
        return None
    if kind != "dask":
        raise ValueError(f"executor={kind!r}: allowed 'local', 'dask'")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r}: allowed integers ≥ 1")
    if not (chunk_work > 0 and math.isfinite(chunk_work)):
        raise ValueError(f"chunk_work={chunk_work}: allowed a finite number > 0")
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ExecutorUnavailable(
            f"the Dask executor needs dask[distributed], which does not import ({exc}); "
            "install it with: pip install 'convergence-lab[dask]'") from None
    if scheduler:
        timeout = dask.config.get("distributed.comm.timeouts.connect")
        try:
            client = Client(scheduler, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            why = " ".join(str(exc).split()) or type(exc).__name__
            raise ExecutorUnavailable(f"cannot reach the Dask scheduler at {scheduler!r} "
                                      f"({why[:200]})") from None
        return DaskExecutor(client, cache_dir=cache_dir, chunk_work=chunk_work)
    threads = max(1, (os.cpu_count() or 1) // workers)
    # no MALLOC_TRIM_THRESHOLD_ in the workers: it makes NumPy temporaries slow (_tune_malloc)
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR,
                               env={"NUMBA_NUM_THREADS": str(threads)})
    try:
        client = Client(cluster, set_as_default=False)
    except BaseException:
        cluster.close()
        raise
    return DaskExecutor(client, cluster=cluster, cache_dir=cache_dir, chunk_work=chunk_work)
