"""Shared helpers of the problem families (host construction, per-dtype device casts)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ..validation import check_finite
from .base import Problem

__all__ = ["CastingProblem", "haar_orthogonal", "host_rng", "orthonormal_columns",
           "validated_point"]


def host_rng(seed: int) -> np.random.Generator:
    """The host generator of a constructor: ``default_rng(SeedSequence(seed))``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed)))


def haar_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed d×d orthogonal matrix.

    QR of a standard Gaussian matrix with the signs of R's diagonal moved into Q, which makes
    the factorisation unique and the law of Q invariant (Mezzadri 2007, "How to generate
    random matrices from the classical compact groups", §5).
    """
    g = rng.standard_normal((d, d))
    q, r = np.linalg.qr(g)
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    return q * signs


def orthonormal_columns(d: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A d×k matrix with orthonormal columns, uniform on the Stiefel manifold (QR as above)."""
    g = rng.standard_normal((d, k))
    q, r = np.linalg.qr(g)
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    return q * signs


def validated_point(name: str, value: Any, d: int) -> np.ndarray:
    """A finite host float64 vector of shape (d,) (``value`` None → zeros)."""
    if value is None:
        return np.zeros(d)
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (d,):
        raise ValueError(f"{name} has shape {arr.shape}: allowed ({d},)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values: allowed finite real numbers")
    return arr.copy()


def check_finite_array(name: str, value: Any) -> np.ndarray:
    """A finite float64 host array, else a one-line ValueError naming ``name``."""
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        bad = arr[~np.isfinite(arr)].ravel()[0]
        raise ValueError(f"{name} contains {bad!r}: allowed finite real numbers")
    return arr


class CastingProblem(Problem):
    """A :class:`Problem` that keeps float64 device arrays and hands out per-dtype casts.

    The arrays named in ``_device_arrays`` are stored in float64; ``self._arr(name, dtype)``
    returns the array in the requested dtype, cast once and cached (so float32 runs do not
    copy a d×d matrix every step). ``to(xp)`` gives the copy a fresh cache.
    """

    def to(self, xp: ModuleType) -> Problem:
        other = super().to(xp)
        if other is not self:
            other._cast_cache = {}
        return other

    def _arr(self, name: str, dtype: Any) -> Any:
        cache = self.__dict__.setdefault("_cast_cache", {})
        key = (name, np.dtype(dtype).str)
        out = cache.get(key)
        if out is None:
            value = getattr(self, name)
            out = value if value.dtype == dtype else value.astype(dtype)
            cache[key] = out
        return out

    @staticmethod
    def _check_f_star(f_star: Any) -> float:
        return check_finite("f_star", f_star)
