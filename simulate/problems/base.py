"""The problem abstraction: a function whose constants are known exactly.

Every problem exposes ``dim``, ``L``, ``mu``, ``f_star`` and ``w_star`` (host NumPy array), and
evaluates ``value``, ``grad`` and ``dist2`` on a batch of points shaped ``(..., d)`` with the
array module it is bound to (``problem.xp``). ``problem.to(xp)`` returns a copy bound to another
array module (e.g. CuPy); the arrays move to the device once, there.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["WIDER_LONGDOUBLE", "Problem"]

#: ``longdouble`` where it is wider than float64 (x87 80-bit, IEEE quad), else None (where it
#: is float64 itself): the type float64 runs are re-evaluated in, and the one in which
#: problems may switch to a more accurate form of a quantity
WIDER_LONGDOUBLE = (np.dtype(np.longdouble)
                    if np.finfo(np.longdouble).eps < np.finfo(np.float64).eps else None)


class Problem(ABC):
    """Base class. Subclasses set the constants in ``__init__`` and implement the three maps.

    Attributes
    ----------
    name : str
        Family name, e.g. ``"quadratic"``.
    dim : int
        Dimension d.
    L : float
        Smoothness constant (exact).
    mu : float
        Strong-convexity constant if ``strongly_convex`` else the PL constant (exact or best
        known, as documented by the subclass).
    f_star : float
        Minimum value.
    w_star : numpy.ndarray
        A minimiser (host array, shape ``(d,)``); for problems with a set of minimisers the one
        documented by the subclass.
    convex, strongly_convex : bool
        Class membership (PL always holds with constant ``mu``).
    xp : module
        Array module the problem's arrays live in.
    """

    name: str = "problem"
    dim: int
    L: float
    mu: float
    f_star: float
    w_star: np.ndarray
    convex: bool = True
    strongly_convex: bool = True
    xp: ModuleType = np

    # arrays (attribute names) that move with ``to(xp)``
    _device_arrays: tuple[str, ...] = ()

    @property
    def kappa(self) -> float:
        """Condition number L / mu."""
        return self.L / self.mu

    def to(self, xp: ModuleType) -> Problem:
        """A shallow copy whose arrays live in ``xp``."""
        if xp is self.xp:
            return self
        other = copy.copy(self)
        for attr in self._device_arrays:
            value = getattr(self, attr)
            if value is not None:
                if hasattr(value, "get"):
                    value = value.get()
                setattr(other, attr, xp.asarray(value))
        other.xp = xp
        return other

    @abstractmethod
    def value(self, w: Any) -> Any:
        """f(w) for w shaped (..., d); returns shape (...)."""

    @abstractmethod
    def grad(self, w: Any) -> Any:
        """∇f(w) for w shaped (..., d); returns shape (..., d)."""

    #: True when f − f*, ‖w − w*‖² and ∇f are evaluated from w − w* with no cancellation
    #: (so their rounding error in float64 is relative and the runner skips measuring it)
    direct_forms: bool = False
    #: where only some are: the names among "f_gap", "dist2", "grad_norm2" so evaluated
    direct_quantities: tuple[str, ...] = ()

    def f_gap(self, w: Any) -> Any:
        """f(w) − f* on a batch; subclasses override it where a direct form avoids cancellation."""
        return self.value(w) - self.f_star

    def dist2(self, w: Any) -> Any:
        """Squared distance to the set of minimisers; default ‖w − w*‖² (unique minimiser)."""
        xp = self.xp
        diff = w - xp.asarray(self.w_star, dtype=w.dtype)
        return (diff * diff).sum(axis=-1)

    def describe(self) -> dict[str, Any]:
        """Parameters of the problem for the results table (flat, scalar values)."""
        return {
            "problem": self.name,
            "d": self.dim,
            "L": float(self.L),
            "mu": float(self.mu),
            "kappa": float(self.kappa),
        }
