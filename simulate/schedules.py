"""Step-size schedules: α_t as a function of the 0-based step index t.

* ``constant``: α_t = α.
* ``inverse_time``: α_t = c / (t0 + t + 1). With THEORY.md §4.2's 1-based index s = t + 1 this is
  α_s = β/(γ + s) with β = c, γ = t0 (Bottou–Curtis–Nocedal 2018, Thm 4.7).
* ``step_decay``: α_t = α · factor^⌊t / every⌋.

Parameters are per configuration, arrays shaped (C, 1, 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .validation import check_choice, check_int, check_positive, check_range

__all__ = ["SCHEDULES", "Schedule"]

SCHEDULES = ("constant", "inverse_time", "step_decay")


@dataclass(frozen=True)
class Schedule:
    """A step-size schedule; see the module docstring for the formulas."""

    kind: str = "constant"
    c: float = math.nan  # inverse_time numerator
    t0: float = 0.0  # inverse_time offset
    factor: float = 0.5  # step_decay factor
    every: int = 1000  # step_decay period

    def __post_init__(self) -> None:
        check_choice("schedule", self.kind, SCHEDULES)
        if self.kind == "inverse_time":
            check_positive("schedule.c", self.c)
            check_range("schedule.t0", self.t0, 0.0, None)
        if self.kind == "step_decay":
            check_range("schedule.factor", self.factor, 0.0, 1.0, low_inclusive=False)
            check_int("schedule.every", self.every, 1)

    def alpha(self, t: int, alpha: Any) -> Any:
        """α_t for the base step ``alpha`` (unused by ``inverse_time``)."""
        if self.kind == "constant":
            return alpha
        if self.kind == "inverse_time":
            return alpha * 0.0 + self.c / (self.t0 + t + 1.0)
        return alpha * self.factor ** (t // self.every)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"schedule": self.kind}
        if self.kind == "inverse_time":
            d.update(schedule_c=self.c, schedule_t0=self.t0)
        elif self.kind == "step_decay":
            d.update(schedule_factor=self.factor, schedule_every=self.every)
        return d
