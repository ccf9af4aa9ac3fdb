"""Hessian probes and gradient-noise estimators built on a problem's gradient only.

For problems whose constants are not given in closed form, the quantities the theory needs
can be measured with gradient evaluations:

* :func:`hvp` -- Hessian-vector products: exact by linearity for quadratics
  (``grad(w* + v) - grad(w*) = A v``), central finite differences of ``grad`` otherwise
  (error ``O(eps^2)`` times the third derivative);
* :func:`power_iteration` and :func:`lanczos` -- the largest eigenvalue ``L`` (Lanczos with
  full reorthogonalisation gives the extreme Ritz values and a residual bound);
* :func:`hutchinson_trace` -- ``tr(H)`` by Hutchinson's estimator ``E[z^T H z] = tr H``
  (Rademacher ``z``), with its standard error;
* :func:`slq` -- the spectral density by stochastic Lanczos quadrature (Ubaru, Chen, Saad
  2017): per start vector, the k-point Gauss quadrature of the spectral measure
  ``sum_i (q_i^T z)^2 delta_{lambda_i}``; ``d * mean`` of ``sum_j w_j f(theta_j)`` estimates
  ``tr f(H)`` (:meth:`SLQ.trace`), a Gaussian-smoothed mixture gives the density
  (:meth:`SLQ.density`);
* :func:`two_batch_estimates` -- the unbiased two-batch estimators of ``|G|^2`` and
  ``tr(Sigma)`` of McCandlish et al. 2018 (appendix A), and with a Hessian-vector product
  the same construction for ``G^T H G`` and ``tr(H Sigma)``; ratios give ``B_simple`` and
  ``B_noise`` (THEORY.md 4.8).

Everything is batched: a Hessian-vector product maps ``V`` shaped ``(k, d)`` to ``(k, d)``
with one call of ``problem.grad`` on a ``(k, d)`` batch. Random vectors come from
``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .validation import check_choice, check_int

__all__ = [
    "SLQ",
    "TwoBatch",
    "hutchinson_trace",
    "hvp",
    "lanczos",
    "make_hvp",
    "power_iteration",
    "slq",
    "two_batch_estimates",
]

HVP = Callable[[np.ndarray], np.ndarray]


def _is_quadratic(problem: Any) -> bool:
    """Problems whose gradient is affine (constant Hessian): quadratics, least squares."""
    return hasattr(problem, "hessian_sqrt_apply") or getattr(problem, "name", "") in (
        "quadratic", "overparam_ls", "finite_sum_ls")


def hvp(problem: Any, w: np.ndarray, v: np.ndarray, *, method: str = "auto",
        eps: float | None = None) -> np.ndarray:
    """Hessian-vector products ``H(w) v`` for ``v`` shaped ``(d,)`` or ``(k, d)``.

    ``method="linear"`` (default for problems with an affine gradient): ``grad(w* + v) -
    grad(w*)``, exact up to rounding for a quadratic (the Hessian does not depend on ``w``,
    and at ``w*`` the gradient is 0, so no large terms cancel). ``"central"`` (default
    otherwise): ``(grad(w + h v) - grad(w - h v)) / (2h)`` with ``h = eps / |v|`` and ``eps``
    defaulting to ``(machine eps)^{1/3} max(1, |w|)`` per vector -- truncation ``O(h^2
    |f'''|)`` and rounding ``O(machine eps |grad| / h)`` balanced.
    """
    method = check_choice("method", method, ("auto", "linear", "central"))
    v = np.asarray(v, dtype=float)
    single = v.ndim == 1
    V = v[None, :] if single else v
    if V.ndim != 2 or V.shape[1] != problem.dim:
        raise ValueError(f"v has shape {v.shape}: allowed ({problem.dim},) or (k, {problem.dim})")
    w = np.asarray(w, dtype=float)
    if method == "auto":
        method = "linear" if _is_quadratic(problem) else "central"
    if method == "linear":
        base = np.asarray(problem.w_star, dtype=float)
        out = problem.grad(base + V) - problem.grad(base[None, :])
    else:
        norms = np.linalg.norm(V, axis=1, keepdims=True)
        safe = np.where(norms > 0, norms, 1.0)
        step = eps if eps is not None else np.finfo(float).eps ** (1 / 3) * max(
            1.0, float(np.linalg.norm(w)))
        hh = step / safe
        out = (problem.grad(w + hh * V) - problem.grad(w - hh * V)) / (2.0 * hh)
        out = np.where(norms > 0, out, 0.0)
    return out[0] if single else out


def make_hvp(problem: Any, w: np.ndarray | None = None, **kwargs: Any) -> HVP:
    """``V -> H(w) V`` as a closure (``w`` defaults to ``w*``), for the probes below."""
    point = np.asarray(problem.w_star if w is None else w, dtype=float)
    return lambda V: hvp(problem, point, V, **kwargs)


def power_iteration(hvp_fn: HVP, d: int, *, iters: int = 500, tol: float = 1e-12,
                    seed: int = 0) -> tuple[float, np.ndarray, int]:
    """Largest-magnitude eigenvalue by power iteration: ``(lambda, vector, iterations)``.

    Stops when the Rayleigh quotient changes by less than ``tol`` relative. Convergence is
    geometric with ratio ``|lambda_2/lambda_1|`` (slow for clustered tops: prefer
    :func:`lanczos`). The Rayleigh quotient of a unit vector is never above ``lambda_max``
    for a PSD ``H``, so the estimate approaches ``L`` from below.
    """
    d = check_int("d", d, 1)
    iters = check_int("iters", iters, 1)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)
    lam = 0.0
    for k in range(1, iters + 1):
        hv = hvp_fn(v[None, :])[0]
        new = float(v @ hv)
        norm = float(np.linalg.norm(hv))
        if norm == 0.0:
            return 0.0, v, k
        v = hv / norm
        if k > 1 and abs(new - lam) <= tol * abs(new):
            return new, v, k
        lam = new
    return lam, v, iters


@dataclass(frozen=True)
class Lanczos:
    """``alpha`` (k,), ``beta`` (k-1,) of the tridiagonal ``T``; ``ritz`` its eigenvalues
    (ascending), ``weights`` the squared first components of its eigenvectors (Gauss
    quadrature weights of the start vector's spectral measure), ``residual`` the bounds
    ``|beta_k e_k^T y_j|`` on the distance of each Ritz value to the spectrum."""

    alpha: np.ndarray
    beta: np.ndarray
    ritz: np.ndarray
    weights: np.ndarray
    residual: np.ndarray


def lanczos(hvp_fn: HVP, d: int, k: int, *, seed: int = 0, v0: np.ndarray | None = None
            ) -> Lanczos:
    """``k`` steps of Lanczos with full reorthogonalisation from a random unit vector.

    Stops early (invariant subspace) when a ``beta`` falls below ``1e-12 * max|alpha|``;
    then the Ritz values are exact eigenvalues of ``H`` and their weights exact. For
    ``L``: ``ritz[-1]`` converges to ``lambda_max`` from below, within ``residual[-1]``.
    """
    d = check_int("d", d, 1)
    k = min(check_int("k", k, 1), d)
    if v0 is None:
        v0 = np.random.default_rng(seed).standard_normal(d)
    q = np.asarray(v0, dtype=float) / np.linalg.norm(v0)
    Q = np.zeros((k, d))
    alpha, beta = [], []
    b_next = 0.0
    for j in range(k):
        Q[j] = q
        z = hvp_fn(q[None, :])[0]
        a = float(q @ z)
        alpha.append(a)
        z = z - a * q - (beta[-1] * Q[j - 1] if j else 0.0)
        z -= Q[: j + 1].T @ (Q[: j + 1] @ z)  # full reorthogonalisation (twice is enough)
        z -= Q[: j + 1].T @ (Q[: j + 1] @ z)
        b_next = float(np.linalg.norm(z))
        if j + 1 == k or b_next <= 1e-12 * max(abs(x) for x in alpha):
            break
        beta.append(b_next)
        q = z / b_next
    al, be = np.array(alpha), np.array(beta)
    T = np.diag(al) + np.diag(be, 1) + np.diag(be, -1)
    ritz, vecs = np.linalg.eigh(T)
    weights = vecs[0] ** 2
    stopped = len(alpha) < k or b_next <= 1e-12 * float(np.max(np.abs(al)))
    residual = np.abs(b_next * vecs[-1]) if not stopped else np.zeros_like(ritz)
    return Lanczos(al, be, ritz, weights, residual)


def _rademacher(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 2, size=shape).astype(float) * 2.0 - 1.0


def hutchinson_trace(hvp_fn: HVP, d: int, n_samples: int, *, seed: int = 0,
                     batch: int = 64) -> tuple[float, float]:
    """``tr(H)`` by Hutchinson's estimator: ``(mean of z^T H z, its standard error)``.

    ``z`` Rademacher (``E z z^T = I`` so ``E z^T H z = tr H``); the variance of one sample is
    ``2 (||H||_F^2 - sum_i H_ii^2)``, zero for a diagonal ``H`` (then the estimate is exact).
    """
    d = check_int("d", d, 1)
    n_samples = check_int("n_samples", n_samples, 2)
    rng = np.random.default_rng(seed)
    vals = []
    for s in range(0, n_samples, batch):
        Z = _rademacher(rng, (min(batch, n_samples - s), d))
        vals.append(np.einsum("ij,ij->i", Z, hvp_fn(Z)))
    x = np.concatenate(vals)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))


@dataclass(frozen=True)
class SLQ:
    """Stochastic Lanczos quadrature: nodes and weights per start vector, shape (m, k)."""

    nodes: np.ndarray
    weights: np.ndarray
    d: int

    def trace(self, f: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
        """``tr f(H)`` estimate ``d * mean_j sum_i w_ji f(theta_ji)`` and its standard error.

        Unbiased up to the quadrature error (zero for polynomials of degree ``< 2k``, and
        for any ``f`` once Lanczos found an invariant subspace)."""
        per = self.d * np.sum(self.weights * f(self.nodes), axis=1)
        se = per.std(ddof=1) / math.sqrt(per.size) if per.size > 1 else math.nan
        return float(per.mean()), float(se)

    def density(self, grid: np.ndarray, width: float) -> np.ndarray:
        """Spectral density on ``grid``: Gaussians of std ``width`` at the nodes, weighted
        (integrates to 1 up to the grid's range)."""
        grid = np.asarray(grid, dtype=float)
        z = (grid[:, None, None] - self.nodes[None]) / width
        g = np.exp(-0.5 * z * z) / (width * math.sqrt(2 * math.pi))
        return np.sum(g * self.weights[None], axis=(1, 2)) / self.nodes.shape[0]

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """Estimated fraction of eigenvalues ``<= x`` (a step function of the nodes)."""
        x = np.asarray(x, dtype=float)
        inside = self.nodes[None] <= x.reshape(-1, 1, 1)
        return (np.sum(inside * self.weights[None], axis=(1, 2))
                / self.nodes.shape[0]).reshape(x.shape)


def slq(hvp_fn: HVP, d: int, n_vectors: int, k: int, *, seed: int = 0) -> SLQ:
    """Stochastic Lanczos quadrature with ``n_vectors`` Rademacher starts and ``k`` steps.

    Start vector ``z/|z|`` (``|z|^2 = d``): the spectral measure ``sum_i (q_i^T z)^2/d
    delta_{lambda_i}`` has mean ``(1/d) sum_i delta_{lambda_i}`` (the eigenvalue
    distribution); Lanczos' Gauss rule (Ritz values, squared first eigenvector components)
    integrates polynomials of degree ``< 2k`` against it exactly (Golub--Meurant). The
    ``n_vectors`` recursions run in lockstep (one batched Hessian-vector product per step,
    full reorthogonalisation per vector); a recursion that finds an invariant subspace stops
    there and its rule is padded with zero weights.
    """
    d = check_int("d", d, 1)
    m = check_int("n_vectors", n_vectors, 1)
    k = min(check_int("k", k, 1), d)
    rng = np.random.default_rng(seed)
    Z = _rademacher(rng, (m, d))
    q = Z / np.sqrt(d)
    Q = np.zeros((m, k, d))
    alpha = np.zeros((m, k))
    beta = np.zeros((m, k))
    length = np.full(m, k)
    live = np.ones(m, dtype=bool)
    for j in range(k):
        Q[:, j] = q
        z = hvp_fn(q)
        a = np.einsum("ij,ij->i", q, z)
        alpha[:, j] = np.where(live, a, 0.0)
        z = z - a[:, None] * q
        if j:
            z -= beta[:, j - 1, None] * Q[:, j - 1]
        Qj = Q[:, : j + 1]
        for _ in range(2):  # full reorthogonalisation, twice
            coef = np.matmul(Qj, z[:, :, None])  # (m, j+1, 1)
            z -= np.matmul(np.swapaxes(Qj, 1, 2), coef)[:, :, 0]
        b = np.linalg.norm(z, axis=1)
        scale = np.max(np.abs(alpha[:, : j + 1]), axis=1)
        stop = live & (b <= 1e-12 * scale)
        length[stop] = j + 1
        live &= ~stop
        beta[:, j] = np.where(live, b, 0.0)
        q = np.where(live[:, None], z / np.where(b > 0, b, 1.0)[:, None], 0.0)
        if not live.any():
            break
    nodes = np.zeros((m, k))
    weights = np.zeros((m, k))
    for i in range(m):
        n_i = int(length[i])
        T = np.diag(alpha[i, :n_i]) + np.diag(beta[i, : n_i - 1], 1) + np.diag(
            beta[i, : n_i - 1], -1)
        ritz, vecs = np.linalg.eigh(T)
        nodes[i, :n_i], nodes[i, n_i:] = ritz, ritz[-1]
        weights[i, :n_i] = vecs[0] ** 2
    return SLQ(nodes, weights, d)


@dataclass(frozen=True)
class TwoBatch:
    """Two-batch estimates (means over independent pairs, with standard errors).

    ``grad_norm2`` ``|G|^2``, ``tr_sigma`` ``tr(Sigma)`` (per-example covariance),
    ``gHg`` ``G^T H G`` and ``tr_H_sigma`` ``tr(H Sigma)`` (NaN without a Hessian product);
    ``B_simple = tr_sigma / grad_norm2`` and ``B_noise = tr_H_sigma / gHg`` are ratios of the
    means, with delta-method standard errors (the pieces are correlated; the covariance term
    is included).
    """

    n: int
    grad_norm2: tuple[float, float]
    tr_sigma: tuple[float, float]
    gHg: tuple[float, float]
    tr_H_sigma: tuple[float, float]
    B_simple: tuple[float, float]
    B_noise: tuple[float, float]
    samples: dict[str, np.ndarray]


def _ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    n = num.size
    mn, md = float(num.mean()), float(den.mean())
    if md == 0 or n < 2:
        return math.nan, math.nan
    c = np.cov(num, den, ddof=1) / n
    r = mn / md
    var = (c[0, 0] - 2 * r * c[0, 1] + r * r * c[1, 1]) / (md * md)
    return r, float(math.sqrt(max(var, 0.0)))


def two_batch_estimates(g_small: np.ndarray, g_big: np.ndarray, B_small: float, B_big: float,
                        hvp_fn: HVP | None = None) -> TwoBatch:
    """Unbiased estimates of ``|G|^2``, ``tr Sigma`` (and ``G^T H G``, ``tr(H Sigma)``).

    ``g_small``, ``g_big``: minibatch gradients with batch sizes ``B_small < B_big``, shaped
    ``(n, d)`` (pair ``j`` drawn independently of the others; within a pair the two batches
    may share examples or not). Since ``E |g_B|_M^2 = G^T M G + tr(M Sigma)/B`` for any fixed
    ``M`` (``I`` or ``H``; McCandlish et al. 2018, appendix A):

    ``|G|_M^2 = (B_big |g_big|_M^2 - B_small |g_small|_M^2) / (B_big - B_small)``,
    ``tr(M Sigma) = (|g_small|_M^2 - |g_big|_M^2) / (1/B_small - 1/B_big)``,

    each unbiased per pair; the means over the ``n`` pairs and their standard errors are
    returned (:class:`TwoBatch`), with ``B_simple`` and ``B_noise`` as ratios of means.
    """
    gs = np.atleast_2d(np.asarray(g_small, dtype=float))
    gb = np.atleast_2d(np.asarray(g_big, dtype=float))
    if gs.shape != gb.shape:
        raise ValueError(f"g_small {gs.shape} and g_big {gb.shape}: allowed equal shapes (n, d)")
    if not (0 < B_small < B_big):
        raise ValueError(f"B_small={B_small}, B_big={B_big}: allowed 0 < B_small < B_big")
    n = gs.shape[0]

    def pieces(ns: np.ndarray, nb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        g2 = (B_big * nb - B_small * ns) / (B_big - B_small)
        tr = (ns - nb) / (1.0 / B_small - 1.0 / B_big)
        return g2, tr

    def stats_(x: np.ndarray) -> tuple[float, float]:
        return float(x.mean()), float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan

    g2, trs = pieces(np.einsum("ij,ij->i", gs, gs), np.einsum("ij,ij->i", gb, gb))
    samples = {"grad_norm2": g2, "tr_sigma": trs}
    nan2 = (math.nan, math.nan)
    ghg = trh = nan2
    b_noise = nan2
    if hvp_fn is not None:
        hs = np.einsum("ij,ij->i", gs, hvp_fn(gs))
        hb = np.einsum("ij,ij->i", gb, hvp_fn(gb))
        gh, th = pieces(hs, hb)
        samples.update({"gHg": gh, "tr_H_sigma": th})
        ghg, trh = stats_(gh), stats_(th)
        b_noise = _ratio(th, gh)
    return TwoBatch(n, stats_(g2), stats_(trs), ghg, trh, _ratio(trs, g2), b_noise, samples)
