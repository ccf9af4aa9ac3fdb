"""Finite sums f(w) = (1/n) Σ_i f_i(w) with real component sampling.

:class:`FiniteSumProblem` is the interface the sampling oracles use (``n``,
``component_grad_mean``, ``sigma2_at``, ``sigma2_star``, ``L_max``); the two families here are
linear models, f_i(w) = ℓ_i(a_iᵀw) + (reg/2)‖w‖², whose component gradients are
ℓ_i'(a_iᵀw)·a_i + reg·w, so a minibatch gradient is one gather of B rows and two batched
matrix products — no Python loop over configurations, replicates or samples.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from ..validation import check_int, check_range
from . import base as _base
from ._common import CastingProblem, host_rng

__all__ = ["FiniteSumLeastSquares", "FiniteSumLogistic", "FiniteSumProblem", "gram_longdouble"]


class FiniteSumProblem(CastingProblem):
    """f(w) = (1/n) Σ_{i<n} f_i(w), with access to the components.

    Attributes
    ----------
    n : int
        Number of components.
    L_max : float
        max_i of the smoothness constant of f_i (the κ of SVRG is L_max / μ; THEORY.md §4.7).
    sigma2_star : float
        σ²(w*) = (1/n) Σ_i ‖∇f_i(w*)‖², the per-sample gradient variance at the minimiser
        (computed in float64 on the host at construction).
    """

    n: int
    L_max: float
    sigma2_star: float

    @abstractmethod
    def component_grad_mean(self, w: Any, idx: Any) -> Any:
        """(1/B) Σ_b ∇f_{idx[..., b]}(w) for w shaped (..., d) and integer idx shaped (..., B)
        with the same leading shape (the runner's (C, R, d) and (C, R, B)); returns (..., d)."""

    def component_grad_mean_diff(self, w: Any, v: Any, idx: Any) -> Any:
        """(1/B) Σ_b [∇f_{i_b}(w) − ∇f_{i_b}(v)] with the same indices at both points (SVRG)."""
        return self.component_grad_mean(w, idx) - self.component_grad_mean(v, idx)

    @abstractmethod
    def sigma2_at(self, w: Any) -> Any:
        """σ²(w) = (1/n) Σ_i ‖∇f_i(w) − ∇f(w)‖² on a batch w shaped (..., d); returns (...)."""

    def dist2(self, w: Any) -> Any:
        """‖w − w*‖² (the minimiser is unique: f is strongly convex)."""
        e = w - self._arr("_w_star_dev", w.dtype)
        return (e * e).sum(axis=-1)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update({"n": self.n, "L_max": float(self.L_max),
                    "sigma2_star": float(self.sigma2_star)})
        return out


class _LinearModelSum(FiniteSumProblem):
    """f_i(w) = ℓ_i(a_iᵀw) + (reg/2)‖w‖²; subclasses give ℓ_i' through ``_dloss``.

    Data: ``A`` (n, d) host array of rows a_i; device copies ``_A`` and the row norms.
    """

    reg: float = 0.0
    _device_arrays = ("_A", "_targets", "_row_norm2", "_w_star_dev")

    @abstractmethod
    def _dloss(self, z: Any, targets: Any) -> Any:
        """ℓ_i'(z) elementwise for margins z and the components' targets (same shape)."""

    def _margins(self, w: Any) -> Any:
        """All margins a_iᵀw, shape (..., n)."""
        return w @ self._arr("_A", w.dtype).T

    def _full_coeffs(self, w: Any) -> Any:
        return self._dloss(self._margins(w), self._arr("_targets", w.dtype))

    def grad(self, w: Any) -> Any:
        """∇f(w) = (1/n) Aᵀ ℓ'(Aw) + reg·w, shape (..., d)."""
        coeffs, A = self._full_coeffs(w), self._arr("_A", w.dtype)
        if self.xp is np and w.dtype == np.longdouble:
            # NumPy's matmul without BLAS (longdouble: the runner's wide re-evaluation) reads
            # its right operand down the columns; Aᵀ·coeffsᵀ reads both along rows — the
            # same products summed in the same order, the same bits, about 2x faster
            prod = np.swapaxes(A.T @ np.swapaxes(coeffs, -1, -2), -1, -2)
        else:
            prod = coeffs @ A
        g = prod * w.dtype.type(1.0 / self.n)
        if self.reg:
            g = g + w.dtype.type(self.reg) * w
        return g

    def _gather(self, w: Any, idx: Any) -> tuple[Any, Any]:
        """Rows a_i (..., B, d) and targets (..., B) of the sampled components."""
        xp = self.xp
        rows = xp.take(self._arr("_A", w.dtype), idx, axis=0)
        targets = xp.take(self._arr("_targets", w.dtype), idx)
        return rows, targets

    @staticmethod
    def _row_dot(rows: Any, w: Any) -> Any:
        """a_iᵀw for rows (..., B, d) and w (..., d) → (..., B) (batched matmul)."""
        return (rows @ w[..., :, None])[..., 0]

    @staticmethod
    def _combine(coef: Any, rows: Any) -> Any:
        """(1/B) Σ_b coef_b a_b for coef (..., B), rows (..., B, d) → (..., d)."""
        B = coef.shape[-1]
        return (coef[..., None, :] @ rows)[..., 0, :] * rows.dtype.type(1.0 / B)

    def component_grad_mean(self, w: Any, idx: Any) -> Any:
        """(1/B) Σ_b [ℓ'_{i_b}(a_{i_b}ᵀw) a_{i_b}] + reg·w: one gather, two batched matmuls."""
        rows, targets = self._gather(w, idx)
        g = self._combine(self._dloss(self._row_dot(rows, w), targets), rows)
        if self.reg:
            g = g + w.dtype.type(self.reg) * w
        return g

    def component_grad_mean_diff(self, w: Any, v: Any, idx: Any) -> Any:
        """(1/B) Σ_b [∇f_{i_b}(w) − ∇f_{i_b}(v)], gathering the rows once; exactly 0 at w = v."""
        rows, targets = self._gather(w, idx)
        coef = self._dloss(self._row_dot(rows, w), targets) - self._dloss(
            self._row_dot(rows, v), targets)
        g = self._combine(coef, rows)
        if self.reg:
            g = g + w.dtype.type(self.reg) * (w - v)
        return g

    def sigma2_at(self, w: Any) -> Any:
        """σ²(w) = (1/n) Σ_i ℓ_i'(a_iᵀw)² ‖a_i‖² − ‖(1/n) Σ_i ℓ_i'(a_iᵀw) a_i‖².

        The regulariser is common to all f_i and cancels. The formula is the exact variance;
        its rounding error is ≈ ε·E‖∇f_i − reg·w‖² / σ², negligible near w* (where ∇f = 0 and
        the second term vanishes); it is clipped at 0.
        """
        xp = self.xp
        c = self._full_coeffs(w)
        inv_n = w.dtype.type(1.0 / self.n)
        mean = (c @ self._arr("_A", w.dtype)) * inv_n
        second = (c * c) @ self._arr("_row_norm2", w.dtype) * inv_n
        return xp.maximum(second - (mean * mean).sum(axis=-1), 0.0)

    def _finish(self, A: np.ndarray, targets: np.ndarray) -> None:
        """Store the data (host and device copies) and the row norms."""
        self.A = A
        self.n, self.dim = A.shape
        self._A = A
        self._targets = targets
        self.row_norm2 = (A * A).sum(axis=1)
        self._row_norm2 = self.row_norm2


#: bits per slice and slices of :func:`gram_longdouble` (4 × 18 = 72 bits of each column)
GRAM_SLICE_BITS = 18
GRAM_SLICES = 4


def gram_longdouble(A: np.ndarray) -> np.ndarray:
    """AᵀA in ``longdouble`` from float64 BLAS products that make no rounding error.

    Each column j of A (n, d) is split into S = ``GRAM_SLICES`` slices, A = Σ_s A_s + E:
    the entries of A_s are integer multiples of u_{s,j} = 2^(e_j − (s+1)k) of magnitude
    ≤ 2^k·u_{s,j}, with k = ``GRAM_SLICE_BITS`` and max_i |a_ij| < 2^(e_j), so
    |E_ij| ≤ 2^(e_j − S·k − 1), S·k = 72.
    Every partial sum of (A_sᵀA_t)_{jl} over m ≤ 2^(53 − 2k) rows is an integer multiple of
    u_{s,j}·u_{t,l}, at most 2^53 of them: exact in float64 whatever the order of the sum (the
    error-free products of Ozaki, Ogita, Oishi & Rump 2012, Numer. Algorithms 59). The
    exact products of each block of rows are summed in ``longdouble``, so the result's error
    is ≈ 2⁻⁶⁴ relative to (|A|ᵀ|A|)_{jl} plus the slices' remainder E, ≈ 2⁻⁷² relative to
    max|a_·j|·max|a_·l| per row. NumPy's ``longdouble`` matmul of the same would round n
    times per entry and runs without BLAS (≈ 1.5 s at n = 10⁴, d = 100, against ≈ 0.1 s).
    Needs entries in the normal range (no slice may underflow).
    """
    A = np.asarray(A, dtype=np.float64)
    n, d = A.shape
    k = GRAM_SLICE_BITS
    exponent = np.frexp(np.abs(A).max(axis=0, initial=0.0))[1]  # max_i |a_ij| < 2^e_j
    rows = 1 << (53 - 2 * k)
    gram = np.zeros((d, d), dtype=np.longdouble)
    for start in range(0, n, rows):
        rest = A[start:start + rows]
        parts = []
        for s in range(GRAM_SLICES):
            shift = (s + 1) * k - exponent
            part = np.ldexp(np.round(np.ldexp(rest, shift)), -shift)  # multiples of u_{s,j}
            parts.append(part)
            rest = rest - part  # exact: |rest − part| ≤ u_{s,j}/2
        for s in range(GRAM_SLICES):
            for t in range(s, GRAM_SLICES):
                exact = parts[s].T @ parts[t]
                gram += exact if s == t else exact + exact.T
    return gram


class FiniteSumLeastSquares(_LinearModelSum):
    """f(w) = (1/n) Σ_i ½(a_iᵀw − b_i)², n ≥ d, with exact constants.

    Parameters
    ----------
    n, dim
        Number of rows and dimension, n ≥ d ≥ 1 (so AᵀA is nonsingular almost surely).
    seed
        Seed of the host generator.
    cond
        Target conditioning ≥ 1: the rows are a_i ~ N(0, diag(s²)) with column scales
        s = geomspace(1, cond^{−1/2}, d), so the population Hessian has condition number
        ``cond``; the sample's κ = L/μ is near it, not equal (it is reported exactly).
    noise_std
        b = A w_true + noise_std·ε, ε ~ N(0, I), w_true ~ N(0, I); noise_std ≥ 0.

    Notes
    -----
    ∇²f = H = AᵀA/n, so L = λ_max(H) and μ = λ_min(H) (numpy.linalg.eigvalsh: exact up to
    rounding); w* = lstsq(A, b) and f* = f(w*). Component f_i is ‖a_i‖²-smooth:
    L_max = max_i ‖a_i‖². ``f_gap`` uses the exact identity f(w) − f* = (1/2n)‖A(w − w*)‖²
    (no cancellation). σ²(w*) = (1/n) Σ_i r_i²‖a_i‖² with r = Aw* − b the residuals
    (∇f(w*) = 0): zero only if the data are interpolated (noise_std = 0).
    """

    name = "finite_sum_ls"
    #: f − f* = (1/2n)‖A(w − w*)‖² and ‖w − w*‖² have no cancellation (their float64 error
    #: is relative, at most about eps·√d·cond(A)); ∇f = Aᵀ(Aw − b)/n cancels near w* (its
    #: wide re-evaluation uses the identical form H(w − w*) + ∇f(w*): see ``grad``)
    direct_quantities = ("f_gap", "dist2")

    def __init__(self, n: int, dim: int, seed: int = 0, cond: float = 10.0,
                 noise_std: float = 0.5) -> None:
        d = check_int("dim", dim, 1)
        n = check_int("n", n, d)
        self.seed = check_int("seed", seed, 0)
        self.cond = check_range("cond", cond, 1.0, None)
        self.noise_std = check_range("noise_std", noise_std, 0.0, None)
        rng = host_rng(self.seed)
        scales = np.geomspace(1.0, self.cond ** -0.5, d)
        A = rng.standard_normal((n, d)) * scales
        self.w_true = rng.standard_normal(d)
        b = A @ self.w_true + self.noise_std * rng.standard_normal(n)
        self.b = b
        self._finish(A, b)
        H = A.T @ A / n
        eig = np.linalg.eigvalsh(H)
        if not eig[0] > 0:
            raise ValueError(f"n={n!r} rows give a singular AᵀA for dim={d}: allowed n "
                             "with full column rank (increase n)")
        self.L = float(eig[-1])
        self.mu = float(eig[0])
        self.L_max = float(self.row_norm2.max())
        self.convex = True
        self.strongly_convex = True
        self.w_star = np.linalg.lstsq(A, b, rcond=None)[0]
        r = A @ self.w_star - b
        self.f_star = float(0.5 * np.mean(r * r))
        self._w_star_dev = self.w_star.copy()
        self.sigma2_star = float(self.sigma2_at(self.w_star[None, :])[0])

    def _dloss(self, z: Any, targets: Any) -> Any:
        return z - targets  # ℓ_i(z) = ½(z − b_i)²

    def value(self, w: Any) -> Any:
        """f(w) = (1/2n)‖Aw − b‖², shape (...)."""
        r = self._margins(w) - self._arr("_targets", w.dtype)
        return (r * r).sum(axis=-1) * w.dtype.type(0.5 / self.n)

    def f_gap(self, w: Any) -> Any:
        """f(w) − f* = (1/2n)‖A(w − w*)‖² (the normal equations make the cross term vanish)."""
        r = self._margins(w - self._arr("_w_star_dev", w.dtype))
        return (r * r).sum(axis=-1) * w.dtype.type(0.5 / self.n)

    def grad(self, w: Any) -> Any:
        """∇f(w) = Aᵀ(Aw − b)/n, shape (..., d).

        In ``longdouble`` on the host (the runner's wide re-evaluation of float64 runs) it is
        evaluated in the identical form H(w − w*) + ∇f(w*), H = AᵀA/n, which holds exactly
        for any w* (f is quadratic): d² operations per point instead of 2nd, and no
        cancellation near w*. H comes from :func:`gram_longdouble` (error ≈ 2⁻⁶⁴ relative to
        |A|ᵀ|A|/n) and ∇f(w*) from the plain form, both divided by n in longdouble (the run's
        float64 1/n is rounded: part of its error); they are computed once per problem.
        """
        # (None where longdouble is float64 itself: float64 runs keep the plain gradient)
        if self.xp is np and w.dtype == _base.WIDER_LONGDOUBLE:
            gram, grad_at_star = self._wide_gradient_form()
            return (w - self._arr("_w_star_dev", w.dtype)) @ gram + grad_at_star
        return super().grad(w)

    def _wide_gradient_form(self) -> tuple[np.ndarray, np.ndarray]:
        """(AᵀA/n, ∇f(w*)) in longdouble, cached with the problem's casts."""
        cache = self.__dict__.setdefault("_cast_cache", {})
        form = cache.get("wide_gradient_form")
        if form is None:
            wide = np.longdouble
            A, n = np.asarray(self.A, dtype=wide), wide(self.n)  # 1/n not rounded to float64
            residual = A @ np.asarray(self.w_star, dtype=wide) - np.asarray(self.b, dtype=wide)
            grad_at_star = (A.T @ residual) / n
            form = cache["wide_gradient_form"] = (gram_longdouble(self.A) / n, grad_at_star)
        return form

    def hessian_matrix(self) -> np.ndarray:
        """H = AᵀA/n on the host."""
        return self.A.T @ self.A / self.n

    def hessian_diag(self) -> np.ndarray:
        """diag(AᵀA/n) on the host (Jacobi preconditioning)."""
        return (self.A * self.A).sum(axis=0) / self.n

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update({"cond": self.cond, "noise_std": self.noise_std})
        return out


class FiniteSumLogistic(_LinearModelSum):
    """f(w) = (1/n) Σ_i log(1 + exp(−y_i a_iᵀw)) + (reg/2)‖w‖², y_i ∈ {−1, +1}.

    Parameters
    ----------
    n, dim
        Number of samples and dimension (n, d ≥ 1).
    seed
        Seed of the host generator: rows a_i ~ N(0, I), w_true ~ N(0, (4/d) I), labels drawn
        from the logistic model P(y_i = 1) = 1/(1 + exp(−a_iᵀw_true)) (not separable).
    reg
        reg > 0.

    Notes
    -----
    ∇²f(w) = (1/n) Aᵀ D(w) A + reg·I with D = diag(p_i(1 − p_i)) ∈ (0, ¼]:

    * L = λ_max(AᵀA)/(4n) + reg, attained at w = 0 where D = ¼I (exact).
    * μ = reg: the global strong-convexity constant, i.e. inf over R^d of λ_min(∇²f); it is
      exact as an infimum (D → 0 along any ray on which every margin grows) but not attained.
    * L_max = max_i ‖a_i‖²/4 + reg.

    w* and f* come from a damped Newton solve in float64 run to the rounding floor
    (‖∇f(w*)‖ ≤ 1e-12·max(1, ‖∇f(0)‖) is checked). Losses use logaddexp(0, −y z), and
    ℓ'(z) = −y·σ(−yz) = −y·exp(−logaddexp(0, yz)): no overflow for any margin. ``f_gap`` is
    f(w) − f*, resolved to ≈ 1e-16·f* (f* ≈ 0.5 here, so ≈ 1e-16 absolute).
    """

    name = "finite_sum_logistic"

    def __init__(self, n: int, dim: int, seed: int = 0, reg: float = 1e-2) -> None:
        d = check_int("dim", dim, 1)
        n = check_int("n", n, 1)
        self.seed = check_int("seed", seed, 0)
        self.reg = check_range("reg", reg, 0.0, None, low_inclusive=False)
        rng = host_rng(self.seed)
        A = rng.standard_normal((n, d))
        self.w_true = rng.standard_normal(d) * (2.0 / np.sqrt(d))
        p_true = np.exp(-np.logaddexp(0.0, -(A @ self.w_true)))
        y = np.where(rng.random(n) < p_true, 1.0, -1.0)
        self.y = y
        self._finish(A, y)
        self.L = float(np.linalg.eigvalsh(A.T @ A)[-1] / (4 * n) + self.reg)
        self.mu = self.reg
        self.L_max = float(self.row_norm2.max() / 4 + self.reg)
        self.convex = True
        self.strongly_convex = True
        self.w_star = self._newton()
        self._w_star_dev = self.w_star.copy()
        self.f_star = float(self.value(self.w_star))
        self.sigma2_star = float(self.sigma2_at(self.w_star[None, :])[0])

    def _dloss(self, z: Any, targets: Any) -> Any:
        # ℓ(z) = log(1 + exp(−y z)); ℓ'(z) = −y σ(−y z) = −y exp(−log(1 + exp(y z)))
        xp = self.xp
        return -targets * xp.exp(-xp.logaddexp(0.0, targets * z))

    def value(self, w: Any) -> Any:
        """f(w) = mean_i logaddexp(0, −y_i a_iᵀw) + (reg/2)‖w‖², shape (...)."""
        xp = self.xp
        z = self._margins(w) * self._arr("_targets", w.dtype)
        loss = xp.logaddexp(0.0, -z).mean(axis=-1)
        return loss + w.dtype.type(0.5 * self.reg) * (w * w).sum(axis=-1)

    def _newton(self) -> np.ndarray:
        """Damped Newton (Armijo backtracking) on the host in float64, to the rounding floor."""
        A, n, reg = self.A, self.n, self.reg
        w = np.zeros(self.dim)
        g0 = float(np.linalg.norm(self.grad(w)))
        best_w, best_g = w, g0
        for _ in range(100):
            g = self.grad(w)
            gn = float(np.linalg.norm(g))
            if gn < best_g:
                best_w, best_g = w, gn
            if gn == 0.0:
                break
            z = A @ w
            curv = np.exp(-np.logaddexp(0.0, z) - np.logaddexp(0.0, -z))  # p(1 − p)
            H = (A.T * curv) @ A / n + reg * np.eye(self.dim)
            step = np.linalg.solve(H, g)
            # Armijo backtracking; the slack 1e-14·|f0| lets the last, quadratically convergent
            # steps through when their decrease is below the rounding of f
            f0, t = float(self.value(w)), 1.0
            slack = 1e-14 * abs(f0)
            while (t > 1e-12
                   and float(self.value(w - t * step)) > f0 - 1e-4 * t * (g @ step) + slack):
                t *= 0.5
            w_new = w - t * step
            if np.linalg.norm(w_new - w) <= 1e-16 * (1.0 + np.linalg.norm(w)):
                break
            w = w_new
        g_last = float(np.linalg.norm(self.grad(w)))
        if g_last < best_g:
            best_w, best_g = w, g_last
        if best_g > 1e-12 * max(1.0, g0):
            raise RuntimeError(f"logistic Newton solve stopped at ‖∇f‖ = {best_g:.3e} "
                               f"(> 1e-12·max(1, ‖∇f(0)‖) = {1e-12 * max(1.0, g0):.3e})")
        return best_w

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["reg"] = self.reg
        return out
