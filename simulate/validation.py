"""One-line validation errors: every message names the parameter, its value and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real

__all__ = [
    "check_choice",
    "check_finite",
    "check_int",
    "check_positive",
    "check_probability",
    "check_range",
]


def _fmt(value: object) -> str:
    return repr(value)


def check_finite(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` if it is not a finite real number."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name}={_fmt(value)} is not allowed: expected a finite real number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}={_fmt(value)} is not allowed: expected a finite real number")
    return value


def check_range(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``value`` as a float inside the interval, else raise a one-line ``ValueError``."""
    v = check_finite(name, value)
    ok = True
    if low is not None:
        ok &= v >= low if low_inclusive else v > low
    if high is not None:
        ok &= v <= high if high_inclusive else v < high
    if not ok:
        lo = "(-inf" if low is None else ("[" if low_inclusive else "(") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + ("]" if high_inclusive else ")")
        raise ValueError(f"{name}={_fmt(value)} is out of range: allowed {lo}, {hi}")
    return v


def check_positive(name: str, value: object) -> float:
    """Return ``value`` if it is a finite real number > 0."""
    return check_range(name, value, 0.0, None, low_inclusive=False)


def check_probability(name: str, value: object) -> float:
    """Return ``value`` if it lies in [0, 1)."""
    return check_range(name, value, 0.0, 1.0, high_inclusive=False)


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int inside [low, high], else raise one-line ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name}={_fmt(value)} is not allowed: expected an integer")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        raise ValueError(f"{name}={value} is out of range: allowed integers in [{lo}, {hi}]")
    return value


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name}={_fmt(value)} is not allowed: choose one of {', '.join(choices)}")
    return value  # type: ignore[return-value]
