"""Optimization methods as pure functions over a small state of arrays (optax style).

A method's math lives here once. Each method is a :class:`Method` holding three pure functions

* ``init(w0) -> state`` — a tuple of arrays, the first one the iterate ``w``;
* ``query(*state, *hypers) -> point`` — where the gradient is taken (``w``; Nesterov's
  look-ahead point ``y``);
* ``update(*state, g, t, alpha, *hypers) -> state`` — one step, written *elementwise* with
  plain arithmetic (``+ - * / **``) so that the same function applies to NumPy arrays, CuPy
  arrays, and scalars inside a compiled loop (the fast path inlines it).

``alpha`` is the step size at step ``t`` (schedules are applied outside, see
:mod:`simulate.schedules`). Hyperparameters are arrays shaped ``(C, 1, 1)`` (one value per
configuration) or ``(C, 1, d)`` (per coordinate, e.g. a diagonal preconditioner). Coupled
operations that are not elementwise (a dense preconditioner) are a ``grad_transform`` applied to
the gradient before the elementwise update.

References: heavy ball (Polyak 1964), Nesterov (2004, §2.2), AdaGrad (Duchi–Hazan–Singer 2011),
RMSProp (Tieleman–Hinton 2012), Adam (Kingma–Ba 2015); THEORY.md §1–§3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .validation import check_choice

__all__ = ["METHODS", "Method", "get_method"]


@dataclass(frozen=True)
class Method:
    """A first-order method as pure functions over a tuple of state arrays.

    Attributes
    ----------
    name : str
        Registry name.
    state_names : tuple of str
        Names of the state arrays; the first is the iterate ``w``.
    hyper_names : tuple of str
        Hyperparameters besides the step size, in the order ``query``/``update`` take them.
    hyper_defaults : dict
        Defaults for hyperparameters a configuration may omit.
    init, query, update : callables
        See the module docstring.
    grad_transform : callable or None
        ``grad_transform(g, hypers: dict, xp) -> g`` for coupled (matrix) operations.
    """

    name: str
    state_names: tuple[str, ...]
    hyper_names: tuple[str, ...]
    init: Callable[..., tuple[Any, ...]]
    query: Callable[..., Any]
    update: Callable[..., tuple[Any, ...]]
    hyper_defaults: dict[str, float] = field(default_factory=dict)
    grad_transform: Callable[..., Any] | None = None
    extra_hypers: tuple[str, ...] = ()  # used by grad_transform only, not elementwise

    def hyper_ranges(self) -> dict[str, tuple[float, float, bool, bool]]:
        """Allowed ranges (low, high, low_inclusive, high_inclusive) of scalar hyperparameters."""
        return {k: _HYPER_RANGES[k] for k in self.hyper_names if k in _HYPER_RANGES}


_HYPER_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "beta": (0.0, 1.0, True, False),
    "rho": (0.0, 1.0, True, False),
    "beta1": (0.0, 1.0, True, False),
    "beta2": (0.0, 1.0, True, False),
    "eps": (0.0, float("inf"), False, False),
}


# --------------------------------------------------------------------------- plain (S)GD
def _w_init(w0):
    return (w0.copy(),)


def _w_query(w, *hypers):
    return w


def _sgd_update(w, g, t, alpha):
    return (w - alpha * g,)


# --------------------------------------------------------------------------- heavy ball
def _pair_init(w0):
    return (w0.copy(), w0.copy())  # w_{-1} = w_0 (THEORY §2.1)


def _heavy_ball_update(w, w_prev, g, t, alpha, beta):
    return (w - alpha * g + beta * (w - w_prev), w)


# --------------------------------------------------------------------------- Nesterov
def _nesterov_query(x, x_prev, beta):
    return x + beta * (x - x_prev)


def _nesterov_update(x, x_prev, g, t, alpha, beta):
    # y_t = x_t + β(x_t − x_{t−1}),  x_{t+1} = y_t − α ∇f(y_t)   (THEORY §2.3)
    return (x + beta * (x - x_prev) - alpha * g, x)


# --------------------------------------------------------------------------- preconditioning
def _precond_diag_update(w, g, t, alpha, p):
    # w_{t+1} = w_t − α R ∇f(w_t) with R = diag(p)   (THEORY §3)
    return (w - alpha * p * g,)


def _precond_matrix_transform(g, hypers, xp):
    # g ↦ R g for a dense R (C, d, d) or (d, d); batches (C, R, d) @ R^T
    mat = hypers["P"]
    return g @ xp.swapaxes(mat, -1, -2)


# --------------------------------------------------------------------------- adaptive
def _zeros_like_init(n_extra: int):
    def init(w0):
        return (w0.copy(),) + tuple(w0 * 0.0 for _ in range(n_extra))

    return init


def _adagrad_update(w, v, g, t, alpha, eps):
    v_new = v + g * g
    return (w - alpha * g / (v_new**0.5 + eps), v_new)


def _rmsprop_update(w, v, g, t, alpha, rho, eps):
    v_new = rho * v + (1.0 - rho) * g * g
    return (w - alpha * g / (v_new**0.5 + eps), v_new)


def _adam_update(w, m, v, g, t, alpha, beta1, beta2, eps):
    m_new = beta1 * m + (1.0 - beta1) * g
    v_new = beta2 * v + (1.0 - beta2) * g * g
    m_hat = m_new / (1.0 - beta1 ** (t + 1))
    v_hat = v_new / (1.0 - beta2 ** (t + 1))
    return (w - alpha * m_hat / (v_hat**0.5 + eps), m_new, v_new)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("sgd", ("w",), (), _w_init, _w_query, _sgd_update),
        Method("heavy_ball", ("w", "w_prev"), ("beta",), _pair_init, _w_query,
               _heavy_ball_update),
        Method("nesterov", ("x", "x_prev"), ("beta",), _pair_init, _nesterov_query,
               _nesterov_update),
        Method("precond_diag", ("w",), ("p",), _w_init, _w_query, _precond_diag_update),
        Method("precond_matrix", ("w",), (), _w_init, _w_query, _sgd_update,
               grad_transform=_precond_matrix_transform, extra_hypers=("P",)),
        Method("adagrad", ("w", "v"), ("eps",), _zeros_like_init(1), _w_query,
               _adagrad_update, hyper_defaults={"eps": 1e-8}),
        Method("rmsprop", ("w", "v"), ("rho", "eps"), _zeros_like_init(1), _w_query,
               _rmsprop_update, hyper_defaults={"rho": 0.9, "eps": 1e-8}),
        Method("adam", ("w", "m", "v"), ("beta1", "beta2", "eps"), _zeros_like_init(2),
               _w_query, _adam_update,
               hyper_defaults={"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
    )
}
# GD is SGD with exact gradients; the oracle decides.
METHODS["gd"] = METHODS["sgd"]


def get_method(name: str) -> Method:
    """The registered method called ``name`` (ValueError naming the allowed ones otherwise)."""
    return METHODS[check_choice("method", name, sorted(METHODS))]
