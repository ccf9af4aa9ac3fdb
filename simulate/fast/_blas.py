"""Single-threaded BLAS for the duration of a block (no dependency: ctypes on the loaded lib).

The dense fast path splits the rows over its own threads, each calling BLAS on its chunk; a
multi-threaded BLAS underneath would oversubscribe the cores (OpenBLAS threads spin while they
wait, which on a busy 2-core machine made one 64×256×256 product 10× slower). NumPy ≥ 2 wheels
bundle OpenBLAS as ``libscipy_openblas64_``; it is found among the loaded libraries
(``/proc/self/maps``) and its thread count set to 1 inside :func:`single_threaded_blas`.
Where that is not possible, :func:`single_threaded_blas` yields ``False`` and callers run one
chunk only (BLAS keeps its own threads).
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["single_threaded_blas"]

_NAMES = (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
          ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
          ("openblas_get_num_threads", "openblas_set_num_threads"))
_LOCK = threading.Lock()
_STATE: dict[str, Any] = {}


def _numpy_openblas() -> tuple[Any, Any] | None:
    if "fns" in _STATE:
        return _STATE["fns"]
    fns = None
    try:
        import numpy as np  # noqa: F401, PLC0415  (loads NumPy's BLAS)

        with open("/proc/self/maps") as fh:
            fields = [ln.split() for ln in fh]
        paths = sorted({f[-1] for f in fields if len(f) >= 6 and "openblas" in f[-1].lower()
                        and "numpy" in f[-1] and ".so" in f[-1]})
        for path in paths:
            lib = ctypes.CDLL(path)
            for get_name, set_name in _NAMES:
                if hasattr(lib, get_name) and hasattr(lib, set_name):
                    get, set_ = getattr(lib, get_name), getattr(lib, set_name)
                    get.restype = ctypes.c_int
                    set_.argtypes = [ctypes.c_int]
                    fns = (get, set_)
                    break
            if fns:
                break
    except (OSError, ValueError, AttributeError):
        fns = None
    _STATE["fns"] = fns
    return fns


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[bool]:
    """Within the block NumPy's OpenBLAS uses one thread; yields whether that could be set."""
    fns = _numpy_openblas()
    if fns is None:
        yield False
        return
    get, set_ = fns
    with _LOCK:
        depth = _STATE.get("depth", 0)
        if depth == 0:
            _STATE["saved"] = int(get())
            set_(1)
        _STATE["depth"] = depth + 1
    try:
        yield True
    finally:
        with _LOCK:
            _STATE["depth"] -= 1
            if _STATE["depth"] == 0:
                set_(_STATE["saved"])
