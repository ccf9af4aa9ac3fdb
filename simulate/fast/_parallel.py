"""Row-parallel execution of the compiled loops on a small pool of threads.

The loops are compiled with ``nogil=True`` and take a row range ``[row0, row1)``; the rows
(configuration × replicate) are split into as many contiguous chunks as
``numba.get_num_threads()`` allows and run concurrently. Rows never share state (each has its
own random stream and its own state entries), so the numbers do not depend on the split.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba

__all__ = ["run_chunks", "run_rows"]

_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def _pool(n: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE < n:
            if _POOL is not None:
                _POOL.shutdown(wait=True)
            _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="simulate-fast")
            _POOL_SIZE = n
        return _POOL


def run_chunks(fn: Callable[[int, int], Any], rows: int, threads: int | None = None) -> None:
    """``fn(row0, row1)`` on contiguous chunks covering ``range(rows)``, one per thread.

    ``threads`` defaults to ``numba.get_num_threads()`` (so ``numba.set_num_threads`` and
    ``NUMBA_NUM_THREADS`` control it). The calling thread takes the first chunk.
    """
    n = max(1, min(threads or numba.get_num_threads(), rows))
    if n == 1:
        fn(0, rows)
        return
    bounds = [rows * i // n for i in range(n + 1)]
    pool = _pool(n)
    futures = [pool.submit(fn, bounds[i], bounds[i + 1]) for i in range(1, n)]
    fn(bounds[0], bounds[1])
    for f in futures:
        f.result()


def run_rows(kernel: Callable[..., Any], args: tuple[Any, ...], rows: int,
             threads: int | None = None) -> None:
    """``kernel(*args, row0, row1)`` over ``range(rows)``, split across threads."""
    run_chunks(lambda r0, r1: kernel(*args, r0, r1), rows, threads)
