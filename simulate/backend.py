"""The one place that chooses the array module.

CuPy is used when it imports *and* a CUDA device answers; otherwise NumPy. The choice can be
forced with the ``backend`` argument or the ``SIMULATE_BACKEND`` environment variable
(``auto``, ``numpy`` or ``cupy``). CuPy is never imported at module top level.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import numpy as np

from .validation import check_choice

__all__ = ["BACKENDS", "cupy_available", "get_array_module", "backend_name", "to_host"]

BACKENDS = ("auto", "numpy", "cupy")
ENV_VAR = "SIMULATE_BACKEND"


def _try_cupy() -> tuple[ModuleType | None, str]:
    try:
        import cupy  # noqa: PLC0415  (deliberately lazy)
    except Exception as exc:  # ImportError, or a CUDA library failing to load
        return None, f"cupy does not import ({type(exc).__name__}: {exc})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, "cupy imports but reports no CUDA device"
        cupy.zeros(1).sum().item()  # a device that answers
    except Exception as exc:
        return None, f"cupy imports but no CUDA device answers ({type(exc).__name__}: {exc})"
    return cupy, ""


def cupy_available() -> bool:
    """True when CuPy imports and a CUDA device answers."""
    return _try_cupy()[0] is not None


def get_array_module(backend: str | None = None) -> ModuleType:
    """Return the array module (``numpy`` or ``cupy``) to use.

    Parameters
    ----------
    backend
        ``"auto"`` (default), ``"numpy"`` or ``"cupy"``. ``None`` reads ``SIMULATE_BACKEND``
        and falls back to ``"auto"``.

    Raises
    ------
    ValueError
        For an unknown name, or ``"cupy"`` where CuPy or a CUDA device is missing.
    """
    source = "backend"
    if backend is None:
        backend = os.environ.get(ENV_VAR, "auto") or "auto"
        source = ENV_VAR
    backend = check_choice(source, backend, BACKENDS)
    if backend == "numpy":
        return np
    cupy, why = _try_cupy()
    if cupy is not None:
        return cupy
    if backend == "cupy":
        raise ValueError(f"{source}='cupy' is not available here: {why}; use 'numpy' or 'auto'")
    return np


def backend_name(xp: ModuleType) -> str:
    """``"numpy"`` or ``"cupy"`` for an array module."""
    return "cupy" if xp.__name__.startswith("cupy") else "numpy"


def to_host(x: Any) -> np.ndarray:
    """Copy an array (NumPy or CuPy) to a host NumPy array."""
    if hasattr(x, "get"):
        return x.get()
    return np.asarray(x)
