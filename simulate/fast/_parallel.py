"""Row-parallel execution of the compiled loops on a small pool of threads.

The loops are compiled with ``nogil=True`` and take a row range ``[row0, row1)``; the rows
(configuration × replicate) are split into contiguous pieces, :data:`PIECES_PER_THREAD` per
thread (``numba.get_num_threads()`` threads), which the threads take in turn until none is
left: on a machine whose cores are shared with other work, a thread slowed down takes fewer
pieces instead of holding up the others. Rows never share state (each has its own random
stream and its own state entries), so the numbers do not depend on the split.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba

__all__ = ["PIECES_PER_THREAD", "run_chunks", "run_rows"]

#: pieces per thread: enough to even out a thread slowed by other load, few enough that the
#: per-call overhead (tens of microseconds) stays small against a piece's work
PIECES_PER_THREAD = 4

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
    """``fn(row0, row1)`` on contiguous pieces covering ``range(rows)``, on the threads.

    ``threads`` defaults to ``numba.get_num_threads()`` (so ``numba.set_num_threads`` and
    ``NUMBA_NUM_THREADS`` control it). The calling thread works too; each thread takes the
    next untaken piece until none is left.
    """
    n = max(1, min(threads or numba.get_num_threads(), rows))
    if n == 1:
        fn(0, rows)
        return
    pieces = min(rows, n * PIECES_PER_THREAD)
    bounds = [rows * i // pieces for i in range(pieces + 1)]
    taken = itertools.count()  # next() is atomic under the GIL

    def work() -> None:
        while (i := next(taken)) < pieces:
            fn(bounds[i], bounds[i + 1])

    pool = _pool(n - 1)
    futures = [pool.submit(work) for _ in range(n - 1)]
    try:
        work()
    finally:
        for f in futures:
            f.result()


def run_rows(kernel: Callable[..., Any], args: tuple[Any, ...], rows: int,
             threads: int | None = None) -> None:
    """``kernel(*args, row0, row1)`` over ``range(rows)``, split across threads."""
    run_chunks(lambda r0, r1: kernel(*args, r0, r1), rows, threads)
