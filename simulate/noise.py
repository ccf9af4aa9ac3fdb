"""Gradient oracles: exact, additive Gaussian noise, and real minibatch sampling.

Every oracle turns the query point w (shaped (C, R, d): configurations × replicates ×
coordinates) into a gradient estimate g of the same shape, with E[g | w] = ∇f(w) and a known
second moment (THEORY.md §4):

=============================  ==========================================================
oracle                         E‖g − ∇f(w)‖²
=============================  ==========================================================
:class:`ExactGradient`         0
:class:`IsotropicGaussianNoise`  σ²/B (covariance σ²/(Bd)·I)
:class:`CurvatureAlignedNoise`   σ²/B (covariance (σ²/B)·A/tr A, noisy quadratic model)
:class:`MinibatchSampling`     σ²(w)/B with replacement; σ²(w)/B·(n−B)/(n−1) without
                               replacement (and marginally per step for reshuffling)
:class:`SVRGOracle`            → 0 as w and the snapshot w̃ → w* (Johnson–Zhang 2013)
=============================  ==========================================================

Interface (the runner relies on exactly this)::

    state = oracle.init_state(problem, w0, rng)       # w0 (C, R, d); state may be None
    g, state = oracle(problem, w, t, state, rng)      # t: 0-based step index
    oracle.subset(keep); oracle.subset_state(state, keep)   # drop diverged configurations
    oracle.describe(c=None, problem=None)            # flat scalars for the results table

Conventions. Arrays live in ``problem.xp`` (the runner has already moved the problem there)
and take the dtype of ``w``. ``rng`` is a :class:`simulate.rng.BatchRNG` with one generator
per configuration; each oracle makes one draw call per step (shaped (C, R, …)), never one per
replicate. Per-configuration parameters (σ², B of the Gaussian models) are host arrays of
length C, turned into (C, 1, 1) arrays of ``problem.xp`` in the dtype of ``w`` at the first
call and cached. ``describe(c)`` gives configuration c's values; ``describe()`` without ``c``
works when every parameter is shared by all configurations (else ValueError asking for c).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .problems.finite_sum import FiniteSumProblem
from .validation import check_choice, check_int, check_range

__all__ = [
    "SAMPLING_SCHEMES",
    "SNAPSHOT_RULES",
    "CurvatureAlignedNoise",
    "ExactGradient",
    "GradientOracle",
    "IsotropicGaussianNoise",
    "MinibatchSampling",
    "SVRGOracle",
]

SAMPLING_SCHEMES = ("with_replacement", "without_replacement", "reshuffle")
SNAPSHOT_RULES = ("last", "random")


def _take_configs(arr: Any, keep: Sequence[int]) -> Any:
    """``arr[keep]`` along the configuration axis, for NumPy or CuPy arrays (keep on host)."""
    if arr is None:
        return None
    keep = np.asarray(keep, dtype=np.int64)
    if isinstance(arr, np.ndarray):
        return arr[keep]
    xp = importlib.import_module(type(arr).__module__.split(".")[0])
    return arr[xp.asarray(keep)]


def _check_rng(rng: Any, w: Any) -> None:
    if rng.n_configs != w.shape[0]:
        raise ValueError(f"rng has {rng.n_configs} configurations but w has shape {w.shape}: "
                         "allowed one generator per configuration (axis 0)")


class GradientOracle:
    """Base class: exact gradients, no state, nothing per configuration."""

    name: str = "oracle"

    def init_state(self, problem: Any, w0: Any, rng: Any) -> Any:
        """Initial oracle state for the starting points w0 (C, R, d); None if stateless."""
        return None

    def __call__(self, problem: Any, w: Any, t: int, state: Any, rng: Any) -> tuple[Any, Any]:
        """(g, state): a gradient estimate at w (C, R, d) at step t and the new state."""
        return problem.grad(w), state

    def subset(self, keep: Sequence[int]) -> GradientOracle:
        """The oracle restricted to the kept configurations (indices into the current batch)."""
        return self

    def subset_state(self, state: Any, keep: Sequence[int]) -> Any:
        """The state restricted to the kept configurations (arrays sliced along axis 0)."""
        if state is None:
            return None
        if isinstance(state, dict):
            return {k: (_take_configs(v, keep) if hasattr(v, "shape") else v)
                    for k, v in state.items()}
        return _take_configs(state, keep)

    def describe(self, c: int | None = None, problem: Any = None) -> dict[str, Any]:
        """Flat scalar parameters for the results table (configuration ``c`` if per-config)."""
        return {"noise": self.name}


class ExactGradient(GradientOracle):
    """g = ∇f(w): no noise, no draws."""

    name = "exact"

    def describe(self, c: int | None = None, problem: Any = None) -> dict[str, Any]:
        return {"noise": self.name, "sigma2": 0.0}


class _GaussianNoise(GradientOracle):
    """Shared parameter handling of the additive Gaussian models: σ² and B, scalar or per-config.

    ``sigma2`` and ``B`` are each a scalar or a 1-D sequence of length C (one value per
    configuration; two sequences must have the same length).
    """

    def __init__(self, sigma2: Any, B: Any = 1) -> None:
        self.sigma2, n_s = self._parse("sigma2", sigma2, integer=False)
        self.B, n_b = self._parse("B", B, integer=True)
        if n_s is not None and n_b is not None and n_s != n_b:
            raise ValueError(f"B has {n_b} entries but sigma2 has {n_s}: allowed equal lengths "
                             "(one per configuration) or a scalar")
        self.n_configs: int | None = n_s if n_s is not None else n_b
        self._cache: dict[tuple[Any, ...], Any] = {}

    @staticmethod
    def _parse(name: str, value: Any, integer: bool) -> tuple[Any, int | None]:
        arr = np.asarray(value)
        if arr.ndim == 0:
            value = arr.item() if isinstance(value, np.ndarray | np.generic) else value
            v = check_int(name, value, 1) if integer else check_range(name, value, 0.0, None)
            return v, None
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"{name} has shape {arr.shape}: allowed a scalar or a 1-D sequence "
                             "(one value per configuration)")
        items = [v.item() if hasattr(v, "item") else v for v in arr]  # object arrays too
        vals = [check_int(f"{name}[{i}]", v, 1) if integer
                else check_range(f"{name}[{i}]", v, 0.0, None)
                for i, v in enumerate(items)]
        return np.asarray(vals, dtype=np.int64 if integer else np.float64), len(vals)

    def _variance_over_B(self) -> Any:
        """σ²/B: a float, or a host array (C,) when per configuration."""
        if self.n_configs is None:
            return self.sigma2 / self.B
        return np.broadcast_to(np.asarray(self.sigma2, float) / np.asarray(self.B, float),
                               (self.n_configs,)).copy()

    def _coefficient(self, problem: Any, w: Any, denom: float) -> Any:
        """sqrt(σ²/(B·denom)) as a float or a (C, 1, 1) array of problem.xp in w's dtype."""
        v = self._variance_over_B()
        if self.n_configs is None:
            return w.dtype.type(math.sqrt(v / denom))
        if w.shape[0] != self.n_configs:
            raise ValueError(f"w has {w.shape[0]} configurations but {self.name} has "
                             f"{self.n_configs} per-configuration values: allowed equal")
        xp = problem.xp
        key = (xp.__name__, np.dtype(w.dtype).str, float(denom), w.ndim)
        out = self._cache.get(key)
        if out is None:
            host = np.sqrt(v / denom).reshape((-1,) + (1,) * (w.ndim - 1))
            out = xp.asarray(host, dtype=w.dtype)
            self._cache[key] = out
        return out

    def _with(self, sigma2: Any, B: Any) -> _GaussianNoise:
        return type(self)(sigma2, B)

    def subset(self, keep: Sequence[int]) -> GradientOracle:
        if self.n_configs is None:
            return self
        keep = np.asarray(keep, dtype=np.int64)
        s = self.sigma2[keep] if isinstance(self.sigma2, np.ndarray) else self.sigma2
        b = self.B[keep] if isinstance(self.B, np.ndarray) else self.B
        return self._with(s, b)

    def _value(self, name: str, c: int | None) -> Any:
        v = getattr(self, name)
        if not isinstance(v, np.ndarray):
            return v
        if c is None:
            if np.all(v == v[0]):
                return v[0].item()
            raise ValueError(f"describe(c=None): {name} differs across the {v.size} "
                             "configurations: allowed c in [0, "
                             f"{v.size - 1}]")
        c = check_int("c", c, 0, v.size - 1)
        return v[c].item()

    def describe(self, c: int | None = None, problem: Any = None) -> dict[str, Any]:
        return {"noise": self.name, "sigma2": float(self._value("sigma2", c)),
                "B": int(self._value("B", c))}


class IsotropicGaussianNoise(_GaussianNoise):
    """g = ∇f(w) + sqrt(σ²/(B d))·z, z ~ N(0, I_d) independent across steps and replicates.

    Then E[g | w] = ∇f(w) and E‖g − ∇f(w)‖² = σ²/B exactly: the additive model of THEORY.md §4
    with Cov ξ = s²I, s² = σ²/(dB) (the model of the exact SGD dynamics, §4.4).

    Parameters
    ----------
    sigma2
        σ² ≥ 0, a scalar or one value per configuration.
    B
        Batch size ≥ 1 (the variance is divided by it), a scalar or one per configuration.
    """

    name = "isotropic"

    def noise_scale(self, d: int) -> Any:
        """s = sqrt(σ²/(B d)), the per-coordinate noise standard deviation (float or (C,))."""
        d = check_int("d", d, 1)
        return np.sqrt(self._variance_over_B() / d)

    def __call__(self, problem: Any, w: Any, t: int, state: Any, rng: Any) -> tuple[Any, Any]:
        _check_rng(rng, w)
        coef = self._coefficient(problem, w, float(w.shape[-1]))
        z = rng.standard_normal(tuple(w.shape[1:]), dtype=w.dtype)
        return problem.grad(w) + coef * z, state


class CurvatureAlignedNoise(_GaussianNoise):
    """g = ∇f(w) + sqrt(σ²/(B tr A))·A^{1/2} z, z ~ N(0, I_d): covariance (σ²/B)·A/tr A.

    The noisy quadratic model (Zhang et al. 2019; McCandlish et al. 2018, THEORY.md §4.8): the
    noise covariance is proportional to the Hessian A, normalised so that
    E‖g − ∇f‖² = (σ²/B)·tr(A)/tr(A) = σ²/B, as for the isotropic model.

    Only for quadratic problems, i.e. problems with ``hessian_sqrt_apply`` and
    ``hessian_trace`` (:class:`~simulate.problems.QuadraticProblem`,
    :class:`~simulate.problems.OverparamLeastSquares`); others raise ValueError.
    """

    name = "curvature"

    @staticmethod
    def _check_problem(problem: Any) -> float:
        if not (hasattr(problem, "hessian_sqrt_apply") and hasattr(problem, "hessian_trace")):
            raise ValueError(f"problem={getattr(problem, 'name', type(problem).__name__)!r} is "
                             "not allowed for curvature-aligned noise: allowed quadratic "
                             "problems (quadratic, overparam_ls)")
        return float(problem.hessian_trace)

    def init_state(self, problem: Any, w0: Any, rng: Any) -> Any:
        self._check_problem(problem)
        return None

    def __call__(self, problem: Any, w: Any, t: int, state: Any, rng: Any) -> tuple[Any, Any]:
        trace = self._check_problem(problem)
        _check_rng(rng, w)
        coef = self._coefficient(problem, w, trace)
        z = rng.standard_normal(tuple(w.shape[1:]), dtype=w.dtype)
        return problem.grad(w) + coef * problem.hessian_sqrt_apply(z), state


def _check_finite_sum(problem: Any, who: str) -> FiniteSumProblem:
    if not isinstance(problem, FiniteSumProblem):
        raise ValueError(f"problem={getattr(problem, 'name', type(problem).__name__)!r} is not "
                         f"allowed for {who}: allowed finite-sum problems (finite_sum_ls, "
                         "finite_sum_logistic)")
    return problem


class MinibatchSampling(GradientOracle):
    """Minibatch gradients of a finite sum, g = (1/B) Σ_{i ∈ batch} ∇f_i(w).

    Parameters
    ----------
    B
        Batch size, 1 ≤ B ≤ n (checked against the problem's n when the run starts).
    scheme
        ``"with_replacement"``: B i.i.d. uniform indices per replicate and step.
        E‖g − ∇f(w)‖² = σ²(w)/B.

        ``"without_replacement"``: B distinct indices per replicate and step, a uniformly
        random B-subset: the indices of the B smallest of n i.i.d. uniform keys
        (``argpartition``); by exchangeability every B-subset is equally likely (float64 keys
        tie with probability ≤ n²·2⁻⁵⁴, and a tie only orders, never repeats, an index).
        E‖g − ∇f(w)‖² = σ²(w)/B · (n − B)/(n − 1) (finite-population correction).

        ``"reshuffle"`` (random reshuffling): at the start of each epoch every replicate draws
        a fresh permutation of the n components and takes consecutive slices of B; an epoch is
        n // B steps and the last n mod B components of each permutation are dropped. Each
        component is used at most once per epoch (exactly once when B divides n). Marginally
        each step's batch is a uniform B-subset, so the per-step variance at a fixed w is the
        without-replacement one; successive batches within an epoch are dependent.

    Notes
    -----
    σ²(w) = (1/n) Σ_i ‖∇f_i(w) − ∇f(w)‖² is computed by the problem, not assumed: the runner
    reports ``sigma2_star(problem)`` (σ² at w*) and ``variance_factor(n)``; the gradient
    variance at w* is σ²(w*)·variance_factor(n)/B (THEORY.md §4). B is one value for all
    configurations (the index arrays are shaped (C, R, B)).
    """

    name = "minibatch"

    def __init__(self, B: int = 1, scheme: str = "with_replacement") -> None:
        self.B = check_int("B", B, 1)
        self.scheme = check_choice("scheme", scheme, SAMPLING_SCHEMES)
        self._bound: dict[str, Any] = {}

    # ---- reporting -------------------------------------------------------------------------
    def variance_factor(self, n: int) -> float:
        """E‖g − ∇f‖² / (σ²(w)/B): 1 with replacement, (n − B)/(n − 1) otherwise (0 if n = 1)."""
        n = check_int("n", n, 1)
        if self.scheme == "with_replacement":
            return 1.0
        check_int("B", self.B, 1, n)
        return 0.0 if n == 1 else (n - self.B) / (n - 1)

    def sigma2_star(self, problem: Any) -> float:
        """σ²(w*) of the problem: the per-sample gradient variance at the minimiser."""
        return float(_check_finite_sum(problem, "minibatch sampling").sigma2_star)

    def gradient_variance_star(self, problem: Any) -> float:
        """E‖g − ∇f(w*)‖² at w*: σ²(w*)·variance_factor(n)/B."""
        return self.sigma2_star(problem) * self.variance_factor(problem.n) / self.B

    def steps_per_epoch(self, n: int) -> int:
        """n // B (the reshuffle epoch; also the number of steps per pass for the others)."""
        return check_int("n", n, self.B) // self.B

    def describe(self, c: int | None = None, problem: Any = None) -> dict[str, Any]:
        """noise, sampling, B and — once bound to a problem (argument, or the last run's
        ``init_state``) — n, sigma2 (= σ²(w*), per sample), variance_factor and
        gradient_variance_star = sigma2·variance_factor/B."""
        out: dict[str, Any] = {"noise": self.name, "sampling": self.scheme, "B": self.B}
        info = self._info(problem) if problem is not None else self._bound
        out.update(info)
        return out

    def _info(self, problem: Any) -> dict[str, Any]:
        p = _check_finite_sum(problem, "minibatch sampling")
        return {"n": int(p.n), "sigma2": float(p.sigma2_star),
                "variance_factor": self.variance_factor(p.n),
                "gradient_variance_star": self.gradient_variance_star(p)}

    # ---- sampling --------------------------------------------------------------------------
    def _check(self, problem: Any) -> FiniteSumProblem:
        p = _check_finite_sum(problem, "minibatch sampling")
        check_int("B", self.B, 1, p.n)
        return p

    def init_state(self, problem: Any, w0: Any, rng: Any) -> Any:
        p = self._check(problem)
        self._bound = self._info(p)
        return {"perm": None} if self.scheme == "reshuffle" else None

    def sample(self, problem: Any, w: Any, t: int, state: Any, rng: Any) -> tuple[Any, Any]:
        """(idx, state): the component indices (C, R, B) used at step t."""
        p = self._check(problem)
        _check_rng(rng, w)
        xp = problem.xp
        mid = tuple(w.shape[1:-1])  # (R,)
        n, B = p.n, self.B
        if self.scheme == "with_replacement":
            return rng.integers(n, (*mid, B)), state
        if self.scheme == "without_replacement":
            keys = rng.random((*mid, n))
            if B == n:
                return xp.broadcast_to(xp.arange(n), keys.shape), state
            return xp.argpartition(keys, B - 1, axis=-1)[..., :B], state
        # reshuffle
        k = t % (n // B)
        perm = state["perm"] if state is not None else None
        if k == 0 or perm is None:
            rows = int(np.prod(mid)) if mid else 1
            perm = rng.permutations(n, rows).reshape((w.shape[0], *mid, n))
        return perm[..., k * B:(k + 1) * B], {"perm": perm}

    def __call__(self, problem: Any, w: Any, t: int, state: Any, rng: Any) -> tuple[Any, Any]:
        idx, state = self.sample(problem, w, t, state, rng)
        return problem.component_grad_mean(w, idx), state

    def subset(self, keep: Sequence[int]) -> GradientOracle:
        return self


class SVRGOracle(GradientOracle):
    """Stochastic variance-reduced gradients (Johnson–Zhang 2013) for a finite sum.

    At steps t ≡ 0 (mod m) the oracle takes a snapshot w̃ (per configuration and replicate) and
    its full gradient ∇f(w̃); at every step it samples B indices uniformly with replacement and
    returns g = (1/B) Σ_{i ∈ batch} [∇f_i(w) − ∇f_i(w̃)] + ∇f(w̃), the same indices at both
    points. E[g | w] = ∇f(w), and g − ∇f(w) → 0 as w, w̃ → w* (exactly 0 at w = w̃).

    Parameters
    ----------
    epoch_length
        m ≥ 1, steps between snapshots.
    B
        Indices per step, ≥ 1 (with replacement; B ≤ n is checked).
    snapshot
        ``"last"``: w̃ is the query point at the epoch's first step (the last iterate).
        ``"random"``: w̃ is a uniformly random one of the previous epoch's m query points (JZ
        option II), kept by reservoir sampling per replicate (step k of an epoch replaces the
        reservoir with probability 1/(k + 1), one uniform draw per step); the first snapshot is
        the starting point. The oracle sets only the snapshot: the method's iterate continues
        from where it is (JZ restart the inner loop at w̃ — a method-side choice).

    Notes
    -----
    Cost in component gradients: n per snapshot (the full gradient) + 2B per step, so
    ``component_grads_per_epoch = n + 2·m·B`` (THEORY.md §4.7).
    """

    name = "svrg"

    def __init__(self, epoch_length: int, B: int = 1, snapshot: str = "last") -> None:
        self.epoch_length = check_int("epoch_length", epoch_length, 1)
        self.B = check_int("B", B, 1)
        self.snapshot = check_choice("snapshot", snapshot, SNAPSHOT_RULES)
        self._n: int | None = None

    def component_grads_per_epoch(self, n: int) -> int:
        """n + 2·m·B component-gradient evaluations per epoch."""
        return check_int("n", n, 1) + 2 * self.epoch_length * self.B

    def describe(self, c: int | None = None, problem: Any = None) -> dict[str, Any]:
        out: dict[str, Any] = {"noise": self.name, "sampling": "with_replacement", "B": self.B,
                               "epoch_length": self.epoch_length, "snapshot": self.snapshot}
        n = problem.n if problem is not None else self._n
        if n is not None:
            out["n"] = int(n)
            out["component_grads_per_epoch"] = self.component_grads_per_epoch(n)
        return out

    def init_state(self, problem: Any, w0: Any, rng: Any) -> Any:
        p = _check_finite_sum(problem, "SVRG")
        check_int("B", self.B, 1, p.n)
        self._n = int(p.n)
        return {"snap": None, "snap_grad": None, "reservoir": None}

    def __call__(self, problem: Any, w: Any, t: int, state: Any, rng: Any) -> tuple[Any, Any]:
        p = _check_finite_sum(problem, "SVRG")
        _check_rng(rng, w)
        xp = problem.xp
        if state is None:
            state = {"snap": None, "snap_grad": None, "reservoir": None}
        snap, snap_grad, res = state["snap"], state["snap_grad"], state["reservoir"]
        k = t % self.epoch_length
        mid = tuple(w.shape[1:-1])
        if k == 0 or snap is None:
            if self.snapshot == "random" and res is not None and t > 0:
                snap = res
            else:
                snap = w.copy()
            snap_grad = p.grad(snap)
        if self.snapshot == "random":
            if k == 0 or res is None:
                res = w.copy()
            else:
                u = rng.random(mid)  # (C, R): one uniform per replicate
                take = (u * (k + 1) < 1.0)[..., None]
                res = xp.where(take, w, res)
        idx = rng.integers(p.n, (*mid, self.B))
        g = p.component_grad_mean_diff(w, snap, idx) + snap_grad
        return g, {"snap": snap, "snap_grad": snap_grad, "reservoir": res}
