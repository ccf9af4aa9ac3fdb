"""Shared conventions of :mod:`theory`: result containers, theorem conditions, input checks.

Two kinds of failure are kept apart (see the package docstring):

* **invalid input** -- nonsense such as ``L <= 0``, ``mu > L``, a non-finite number or a
  negative step -- raises ``ValueError`` with a one-line message naming the parameter, its
  value and the allowed range (:func:`check_range` and friends);
* **legal input outside a theorem's conditions** -- ``alpha > 1/L`` for a bound that needs
  ``alpha <= 1/L``, unstable momentum, ... -- gives a :class:`Curve` (or :class:`Scalar`) with
  ``applicable=False``, all values NaN, and a one-line ``reason`` that a verdict can print.
  :class:`Conditions` collects the conditions; :func:`make_curve` / :func:`make_scalar` turn
  them into the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from numbers import Integral
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "REL_TOL",
    "Conditions",
    "Curve",
    "Scalar",
    "check_choice",
    "check_int",
    "check_L_mu",
    "check_nonnegative",
    "check_positive",
    "check_range",
    "check_real",
    "check_steps",
    "check_vector",
    "fmt",
    "leq",
    "make_curve",
    "make_scalar",
]

#: Relative tolerance for *non-strict* boundary conditions (``alpha <= 1/L``, ``h = alpha L <= 1``),
#: so that ``alpha = 1/L`` computed in floating point counts as on the boundary. Strict
#: conditions (``alpha < 2/L``) are checked exactly.
REL_TOL = 1e-12

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def fmt(x: float) -> str:
    """Short, stable number formatting for messages (``%.6g``)."""
    return f"{float(x):.6g}"


def leq(x: float, bound: float) -> bool:
    """``x <= bound`` up to the relative tolerance :data:`REL_TOL`."""
    return x <= bound + REL_TOL * max(abs(bound), abs(x))


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class Curve:
    """A theory curve over step indices, with the theorem's verdict on its own validity.

    Attributes
    ----------
    values : numpy.ndarray
        Float array of the same shape as the step array it was evaluated on (read-only).
        All NaN when ``applicable`` is False.
    applicable : bool
        True when the statement's conditions hold for the given parameters.
    reason : str
        Empty when applicable; otherwise one line naming the violated condition(s), e.g.
        ``"alpha=0.3 > 1/L=0.25: bound requires alpha <= 1/L"``.
    tight : bool
        True when the curve is attained in the stated class (exact curves are tight).
    source : str
        Citation of the statement (THEORY.md section and the paper/theorem).
    quantity : str
        What is bounded/computed, as a results-table key: ``"f_gap"``, ``"dist2"`` or
        ``"grad_norm2"``.
    kind : str
        ``"bound"`` (upper bound), ``"exact"`` (exact expectation), ``"worst_case"`` (exact worst
        case over a class), ``"lower_bound"`` or ``"asymptotic"``.
    measure : str
        The precise measured quantity the values refer to, e.g.
        ``"min_{0<=s<T} ||grad f(w_s)||^2"`` or ``"E f(w_t) - f*"``.
    rate : float
        Per-step contraction factor of ``values`` (asymptotic), NaN when none applies.
    floor : float
        Limit of ``values`` as t -> infinity (0 for deterministic linear rates, the noise floor
        or stationary value for stochastic ones, ``inf`` when it diverges), NaN when unknown or
        not applicable.
    extras : Mapping
        Read-only extra information documented by the producing function.
    """

    values: np.ndarray
    applicable: bool
    reason: str
    tight: bool
    source: str
    quantity: str
    kind: str = "bound"
    measure: str = ""
    rate: float = math.nan
    floor: float = math.nan
    extras: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        values = np.array(self.values, dtype=float)
        values.flags.writeable = False
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "rate", float(self.rate))
        object.__setattr__(self, "floor", float(self.floor))
        object.__setattr__(self, "extras", MappingProxyType(dict(self.extras)))


@dataclass(frozen=True, eq=False)
class Scalar:
    """A scalar statement (a rate, a floor) with its validity; ``float(x)`` gives ``x.value``.

    Attributes
    ----------
    value : float
        NaN when ``applicable`` is False.
    applicable, reason, tight, source
        As in :class:`Curve`.
    """

    value: float
    applicable: bool
    reason: str
    tight: bool
    source: str

    def __float__(self) -> float:
        return float(self.value)


class Conditions:
    """Collects a theorem's conditions; every failing one contributes to the reason.

    Examples
    --------
    >>> c = Conditions()
    >>> _ = c.require(0.3 <= 0.25, "alpha=0.3 > 1/L=0.25: bound requires alpha <= 1/L")
    >>> c.ok, c.reason
    (False, 'alpha=0.3 > 1/L=0.25: bound requires alpha <= 1/L')
    """

    def __init__(self) -> None:
        self._failures: list[str] = []

    def require(self, ok: bool, reason: str) -> bool:
        """Record the condition; ``reason`` is used only when ``ok`` is False."""
        ok = bool(ok)
        if not ok:
            self._failures.append(reason)
        return ok

    @property
    def ok(self) -> bool:
        """True when every recorded condition held."""
        return not self._failures

    @property
    def reason(self) -> str:
        """Violated conditions joined by ``"; "`` (empty when all hold)."""
        return "; ".join(self._failures)


def make_curve(
    shape: tuple[int, ...],
    conditions: Conditions,
    compute: Callable[[], np.ndarray],
    *,
    tight: bool,
    source: str,
    quantity: str,
    kind: str = "bound",
    measure: str = "",
    rate: float | Callable[[], float] = math.nan,
    floor: float | Callable[[], float] = math.nan,
    extras: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
) -> Curve:
    """Build a :class:`Curve`: evaluate ``compute`` only when the conditions hold.

    ``rate``, ``floor`` and ``extras`` may be callables, evaluated only when applicable.
    Outside the conditions the values are NaN of ``shape`` and rate/floor are NaN.
    """
    if not conditions.ok:
        return Curve(
            values=np.full(shape, np.nan),
            applicable=False,
            reason=conditions.reason,
            tight=tight,
            source=source,
            quantity=quantity,
            kind=kind,
            measure=measure,
        )
    values = np.broadcast_to(np.asarray(compute(), dtype=float), shape)
    return Curve(
        values=values,
        applicable=True,
        reason="",
        tight=tight,
        source=source,
        quantity=quantity,
        kind=kind,
        measure=measure,
        rate=rate() if callable(rate) else rate,
        floor=floor() if callable(floor) else floor,
        extras=(extras() if callable(extras) else extras) or {},
    )


def make_scalar(
    conditions: Conditions, compute: Callable[[], float], *, tight: bool, source: str
) -> Scalar:
    """Build a :class:`Scalar`: ``compute()`` when the conditions hold, else NaN + reason."""
    if not conditions.ok:
        return Scalar(math.nan, False, conditions.reason, tight, source)
    return Scalar(float(compute()), True, "", tight, source)


# --------------------------------------------------------------------------- input checks


def check_real(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` unless it is a finite real number."""
    arr = None
    if not isinstance(value, bool | np.bool_):
        try:
            arr = np.asarray(value)
        except Exception:  # pragma: no cover - exotic objects
            arr = None
    if arr is None or arr.ndim != 0 or arr.dtype.kind not in "iuf":
        raise ValueError(f"{name}={value!r} is not allowed: expected a finite real number")
    v = float(arr)
    if not math.isfinite(v):
        raise ValueError(f"{name}={value!r} is not allowed: expected a finite real number")
    return v


def _interval(low, high, low_inclusive, high_inclusive, low_label, high_label) -> str:
    lo = "(-inf" if low is None else ("[" if low_inclusive else "(") + (low_label or fmt(low))
    hi = "inf)" if high is None else (high_label or fmt(high)) + ("]" if high_inclusive else ")")
    return f"{lo}, {hi}"


def check_range(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    low_label: str | None = None,
    high_label: str | None = None,
) -> float:
    """Return ``value`` as a float inside the interval, else raise a one-line ``ValueError``.

    ``low_label``/``high_label`` replace the printed bound (e.g. ``"L=4"``).
    """
    v = check_real(name, value)
    ok = True
    if low is not None:
        ok &= v >= low if low_inclusive else v > low
    if high is not None:
        ok &= v <= high if high_inclusive else v < high
    if not ok:
        interval = _interval(low, high, low_inclusive, high_inclusive, low_label, high_label)
        raise ValueError(f"{name}={fmt(v)} is out of range: allowed {interval}")
    return v


def check_positive(name: str, value: object) -> float:
    """A finite real number > 0."""
    return check_range(name, value, 0.0, None, low_inclusive=False)


def check_nonnegative(name: str, value: object) -> float:
    """A finite real number >= 0."""
    return check_range(name, value, 0.0, None)


def check_L_mu(L: object, mu: object) -> tuple[float, float]:
    """Smoothness and PL/strong-convexity constants: ``L > 0`` and ``0 < mu <= L``."""
    L = check_positive("L", L)
    mu = check_range("mu", mu, 0.0, L, low_inclusive=False, high_label=f"L={fmt(L)}")
    return L, mu


def check_int(name: str, value: object, low: int | None = None) -> int:
    """An integer (or integer-valued float) ``>= low``."""
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name}={value!r} is not allowed: expected an integer")
    if not isinstance(value, Integral):
        v = check_real(name, value)
        if not v.is_integer():
            raise ValueError(f"{name}={value!r} is not allowed: expected an integer")
        value = int(v)
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name}={value} is out of range: allowed integers in [{low}, inf)")
    return value


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """One of the listed strings."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}={value!r} is not allowed: expected one of {allowed}")
    return str(value)


def check_steps(t: object, name: str = "t", *, integer: bool = False, low: int = 0) -> np.ndarray:
    """A step-index array (any shape, scalar allowed) of finite values ``>= low``.

    Returns a float array, or an int64 array when ``integer`` (values must be integer-valued).
    """
    if isinstance(t, bool | np.bool_):
        raise ValueError(f"{name}={t!r} is not allowed: expected step indices")
    try:
        arr = np.asarray(t)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise ValueError(f"{name}={t!r} is not allowed: expected step indices") from exc
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} has dtype {arr.dtype}: expected real step indices")
    arr = arr.astype(float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values: allowed finite steps >= {low}")
    if arr.size and arr.min() < low:
        raise ValueError(f"{name}={fmt(arr.min())} is out of range: allowed steps >= {low}")
    if integer:
        if not np.all(arr == np.round(arr)):
            bad = arr[arr != np.round(arr)].flat[0]
            raise ValueError(f"{name}={fmt(bad)} is not allowed: expected integer steps")
        return arr.astype(np.int64)
    return arr


def check_vector(
    name: str,
    x: object,
    *,
    low: float | None = None,
    low_inclusive: bool = True,
    allow_scalar: bool = True,
) -> np.ndarray:
    """A finite float array (1-D, or a scalar when allowed), entries ``>= low`` (or ``> low``)."""
    try:
        arr = np.asarray(x, dtype=float)
    except Exception as exc:
        raise ValueError(
            f"{name} is not allowed: expected an array of finite real numbers"
        ) from exc
    if arr.ndim > 1 or (arr.ndim == 0 and not allow_scalar):
        raise ValueError(f"{name} has shape {arr.shape}: expected a 1-D array")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values: expected finite real numbers")
    if low is not None and arr.size:
        m = float(arr.min())
        bad = m < low if low_inclusive else m <= low
        if bad:
            interval = _interval(low, None, low_inclusive, True, None, None)
            raise ValueError(f"{name} has an entry {fmt(m)} out of range: allowed {interval}")
    return arr
