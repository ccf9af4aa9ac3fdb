"""Exact evaluation of linear recurrences at arbitrary steps (private helpers).

Everything here is "binary powering" (doubling): the 2^j-step map of a linear (or affine)
recurrence is precomputed by squaring, and a step count is the composition of the maps of its
set bits. The maps of one recurrence commute, so the order of composition does not matter.
No closed form with divisions is used, so double roots, zero eigenvalues and unstable
parameters need no special case.

The two-term (momentum) recurrences are powered in double-double arithmetic (about 32
digits, error-free transformations below): at a double root of ``r^2 - a r + b`` the rounding
of the matrix powers acts as a perturbation of the matrix, and a double root moves by the
square root of a perturbation, so float64 powering loses up to ~1e-5 relative at
``t ~ 10^3`` (Polyak's and Nesterov's parameters at ``kappa = 1e4``); in double-double the
same mechanism costs ~1e-25 and the results are float64-accurate.

Float64 2x2 matrices are tuples ``(m11, m12, m21, m22)`` of arrays; double-double 2x2
matrices are ``(hi, lo)`` pairs of arrays shaped ``(2, 2, ...)``. All arithmetic is
elementwise so every coordinate (and requested step) is processed at once.
"""

from __future__ import annotations

import numpy as np

Mat = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
DD = tuple[np.ndarray, np.ndarray]

# Bound on the number of float64 entries processed at once in chunked evaluations.
CHUNK_ENTRIES = 1 << 22


def mat_mul(a: Mat, b: Mat) -> Mat:
    a11, a12, a21, a22 = a
    b11, b12, b21, b22 = b
    return (
        a11 * b11 + a12 * b21,
        a11 * b12 + a12 * b22,
        a21 * b11 + a22 * b21,
        a21 * b12 + a22 * b22,
    )


def companion(a: np.ndarray, b: np.ndarray) -> Mat:
    """``[[a, -b], [1, 0]]``: the map ``(x_t, x_{t-1}) -> (x_{t+1}, x_t)`` of
    ``x_{t+1} = a x_t - b x_{t-1}``."""
    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    return (a, -b, np.ones_like(a), np.zeros_like(a))


def _unique_steps(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = np.asarray(steps, dtype=np.int64).ravel()
    uniq, inverse = np.unique(flat, return_inverse=True)
    return uniq, inverse


# --------------------------------------------------------------------------- double-double
# A double-double number is an unevaluated sum ``hi + lo`` of two float64 with
# ``|lo| <= ulp(hi) / 2`` (about 32 significant digits). The error-free transformations are
# Knuth's TwoSum and Dekker's TwoProduct (Veltkamp splitting); the sum is the accurate
# ("IEEE") double-double addition, so it stays accurate under cancellation. All functions
# are elementwise on arrays. Overflow (|x| > ~1e300, divergence) produces inf or NaN.
_SPLITTER = 134217729.0  # 2**27 + 1


def two_sum(a: np.ndarray, b: np.ndarray) -> DD:
    """``(s, e)`` with ``s = fl(a + b)`` and ``s + e = a + b`` exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _fast_two_sum(a: np.ndarray, b: np.ndarray) -> DD:
    """:func:`two_sum` for ``|a| >= |b|`` (Dekker)."""
    s = a + b
    return s, b - (s - a)


def _split(a: np.ndarray) -> DD:
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def two_prod(a: np.ndarray, b: np.ndarray) -> DD:
    """``(p, e)`` with ``p = fl(a b)`` and ``p + e = a b`` exactly (Dekker; no FMA needed)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def as_dd(v: np.ndarray | float | DD) -> DD:
    """A float array (exact) or an already double-double ``(hi, lo)`` pair, as float arrays."""
    if isinstance(v, tuple):
        hi, lo = np.broadcast_arrays(np.asarray(v[0], float), np.asarray(v[1], float))
        return hi, lo
    hi = np.asarray(v, dtype=float)
    return hi, np.zeros_like(hi)


def dd_neg(x: DD) -> DD:
    return -x[0], -x[1]


def dd_add(x: DD, y: DD) -> DD:
    """``x + y`` with relative error ``O(2^-104)`` even under cancellation."""
    s, e = two_sum(x[0], y[0])
    t, f = two_sum(x[1], y[1])
    s, e = _fast_two_sum(s, e + t)
    return _fast_two_sum(s, e + f)


def dd_mul(x: DD, y: DD) -> DD:
    """``x y`` with relative error ``O(2^-104)``."""
    p, e = two_prod(x[0], y[0])
    return _fast_two_sum(p, e + (x[0] * y[1] + x[1] * y[0]))


# 2x2 double-double matrices are stacked: ``(hi, lo)`` with shape ``(2, 2, *shape)`` (vectors
# ``(2, *shape)``), so one double-double operation handles all entries at once.


def _dd_matmul(p: DD, q: DD) -> DD:
    """``P Q`` for stacked 2x2 matrices (shapes ``(2, 2, ...)``, broadcast)."""
    hi, lo = dd_mul((p[0][:, :, None], p[1][:, :, None]), (q[0][None], q[1][None]))
    return dd_add((hi[:, 0], lo[:, 0]), (hi[:, 1], lo[:, 1]))  # sum over the inner index


def _dd_matvec(p: DD, z: DD) -> DD:
    """``P z`` for a stacked 2x2 matrix ``(2, 2, ...)`` and vector ``(2, ...)``."""
    hi, lo = dd_mul(p, (z[0][None], z[1][None]))
    return dd_add((hi[:, 0], lo[:, 0]), (hi[:, 1], lo[:, 1]))


def _dd_congruence(p: DD, s: DD) -> DD:
    """``P S P^T`` for stacked 2x2 matrices (``S`` symmetric, stored in full)."""
    return _dd_matmul(_dd_matmul(p, s), (np.swapaxes(p[0], 0, 1), np.swapaxes(p[1], 0, 1)))


def _dd_where(mask: np.ndarray, new: DD, old: DD) -> DD:
    return np.where(mask, new[0], old[0]), np.where(mask, new[1], old[1])


def _dd_companion(a: DD, b: DD) -> DD:
    """``[[a, -b], [1, 0]]`` stacked, shape ``(2, 2, *a.shape)``."""
    one, zero = np.ones_like(a[0]), np.zeros_like(a[0])
    hi = np.stack([np.stack([a[0], -b[0]]), np.stack([one, zero])])
    lo = np.stack([np.stack([a[1], -b[1]]), np.stack([zero, zero])])
    return hi, lo


def _dd_powers(a: DD, b: DD, nbits: int, noise: np.ndarray | None = None) -> list:
    """``[M^(2^j)]`` (with ``noise``: ``[(M^(2^j), N_j)]``, ``N_j = sum_{k < 2^j} M^k C M^kT``,
    ``C = noise e1 e1^T``) for ``j < nbits``, ``M`` the companion matrix of ``(a, b)``; stacked
    double-double, shapes ``(2, 2, *a.shape)``."""
    p = _dd_companion(a, b)
    n: DD | None = None
    if noise is not None:
        n_hi = np.zeros((2, 2, *noise.shape))
        n_hi[0, 0] = noise
        n = (n_hi, np.zeros_like(n_hi))
    out: list = []
    for j in range(nbits):
        out.append(p if n is None else (p, n))
        if j + 1 < nbits:
            if n is not None:
                n = dd_add(n, _dd_congruence(p, n))
            p = _dd_matmul(p, p)
    return out


def two_term_at(
    a: np.ndarray | DD, b: np.ndarray | DD, steps: np.ndarray
) -> np.ndarray:
    """``p_t`` of ``p_{t+1} = a p_t - b p_{t-1}``, ``p_0 = p_{-1} = 1``, elementwise.

    ``a``, ``b`` (float arrays, or double-double ``(hi, lo)`` pairs for coefficients that
    are not floats, e.g. ``1 + beta - alpha lambda``) and ``steps`` broadcast together.
    Binary powering of the companion matrix in double-double arithmetic: near a double root
    (Polyak's and Nesterov's parameters put one at ``mu``) the rounding of the matrix powers
    acts like a perturbation of the matrix, which splits the root by ~sqrt(perturbation), so
    float64 powering loses up to ~1e-5 relative at ``t ~ 10^3``; with 2^-104 rounding the
    result is float64-accurate (tests/test_theory_momentum_accuracy.py).
    Cost O(size * log2(max step)); overflow gives inf/NaN.
    """
    a, b = as_dd(a), as_dd(b)
    steps = np.asarray(steps, dtype=np.int64)
    cshape = np.broadcast_shapes(a[0].shape, b[0].shape)
    shape = np.broadcast_shapes(cshape, steps.shape)
    cshape = (1,) * (len(shape) - len(cshape)) + cshape  # same ndim as the result
    a = (np.broadcast_to(a[0], cshape), np.broadcast_to(a[1], cshape))
    b = (np.broadcast_to(b[0], cshape), np.broadcast_to(b[1], cshape))
    steps = np.broadcast_to(steps, shape)
    nbits = int(steps.max()).bit_length() if steps.size else 0
    z = (np.ones((2, *shape)), np.zeros((2, *shape)))
    with np.errstate(over="ignore", invalid="ignore"):
        for j, p in enumerate(_dd_powers(a, b, nbits)):
            bit = ((steps >> j) & 1).astype(bool)
            if bit.any():
                z = _dd_where(bit, _dd_matvec(p, z), z)
    return np.asarray(z[0][0] + z[1][0])


def two_term_at_float(a: np.ndarray, b: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """:func:`two_term_at` in float64 arithmetic: ~20x cheaper, but relative error up to
    ~1e-5 near double roots at ``t ~ 10^3``; for locating maxima, not for values."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    steps = np.asarray(steps, dtype=np.int64)
    shape = np.broadcast_shapes(a.shape, b.shape, steps.shape)
    p = companion(np.broadcast_to(a, shape), np.broadcast_to(b, shape))
    steps = np.broadcast_to(steps, shape)
    z1 = np.ones(shape)
    z2 = np.ones(shape)
    nbits = int(steps.max()).bit_length() if steps.size else 0
    with np.errstate(over="ignore", invalid="ignore"):
        for j in range(nbits):
            bit = ((steps >> j) & 1).astype(bool)
            if bit.any():
                n1 = p[0] * z1 + p[1] * z2
                n2 = p[2] * z1 + p[3] * z2
                z1 = np.where(bit, n1, z1)
                z2 = np.where(bit, n2, z2)
            if j + 1 < nbits:
                p = mat_mul(p, p)
    return z1


#: coordinates x steps processed at once by :func:`second_moment_path` (each double-double
#: operation makes a few temporaries of this many float64)
_DD_CHUNK = 1 << 16


def second_moment_path(
    a: np.ndarray | DD,
    b: np.ndarray | DD,
    m0: np.ndarray,
    noise: np.ndarray,
    steps: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """``E x_t^2`` for ``x_{t+1} = a x_t - b x_{t-1} + eps_t``, ``x_{-1} = x_0``.

    ``E x_0^2 = m0``, ``eps_t`` independent, zero mean, ``E eps_t^2 = noise``. The covariance of
    ``z_t = (x_t, x_{t-1})`` obeys ``S_{t+1} = M S_t M^T + noise e1 e1^T`` from
    ``S_0 = m0 * 1 1^T``, so ``S_t = M^t S_0 M^tT + N_t`` with ``N_t = sum_{k<t} M^k C M^kT``.
    Parameters are 1-D arrays over coordinates (broadcast; ``a``, ``b`` may be double-double
    ``(hi, lo)`` pairs); returns ``sum_i weights_i E x_{t,i}^2`` (zero weights contribute 0
    even when ``x`` diverges) with the shape of ``steps``; overflow (divergence) gives ``inf``.

    Evaluation: binary powering in double-double arithmetic (see :func:`two_term_at` for why
    float64 is not enough near double roots), vectorised over coordinates x requested steps:
    ``(M^(2^j), N_(2^j))`` are precomputed, and each step composes those of its set bits.
    Coordinates without noise carry only the vector ``M^t (1, 1)`` (``E x_t^2 = m0 p_t^2``).
    No closed form with divisions, so double roots, zero eigenvalues and unstable
    parameters need no special case. Cost O(d * n_steps * log2(T_max)), independent of the
    gaps between steps; memory bounded by chunking over steps.
    """
    a, b = as_dd(a), as_dd(b)
    a_hi, a_lo, b_hi, b_lo, m0, noise, weights = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(v, dtype=float))
          for v in (a[0], a[1], b[0], b[1], m0, noise, weights))
    )
    keep = (weights != 0) & ((m0 != 0) | (noise != 0))  # all-zero coordinates stay 0
    uniq, inverse = _unique_steps(steps)
    out = np.zeros(uniq.size)
    if uniq.size == 0 or not keep.any():
        return out[inverse].reshape(np.shape(steps))
    nbits = int(uniq.max()).bit_length()
    with np.errstate(over="ignore", invalid="ignore"):
        for noisy in (False, True):
            sel = keep & ((noise != 0) == noisy)
            if not sel.any():
                continue
            ac, bc = (a_hi[sel], a_lo[sel]), (b_hi[sel], b_lo[sel])
            powers = _dd_powers(ac, bc, nbits, noise[sel] if noisy else None)
            k = int(sel.sum())
            wm = (weights * m0)[sel][:, None]
            w = weights[sel][:, None]
            m = m0[sel][:, None]
            cols = max(1, _DD_CHUNK // k)
            for start in range(0, uniq.size, cols):
                tt = uniq[start : start + cols]
                if noisy:
                    contrib = w * _noisy_second_moment(powers, m, tt)
                else:
                    x = _quiet_path(powers, tt, k)
                    contrib = wm * (x * x)
                contrib = np.where(np.isfinite(contrib), contrib, np.inf)  # overflow: diverged
                out[start : start + cols] += contrib.sum(axis=0)
    return out[inverse].reshape(np.shape(steps))


def _quiet_path(powers: list, tt: np.ndarray, k: int) -> np.ndarray:
    """First entry of ``M^t (1, 1)`` per coordinate (rows, ``k``) and step (columns, ``tt``)."""
    shape = (2, k, tt.size)
    z = (np.ones(shape), np.zeros(shape))
    for j, p in enumerate(powers):
        bit = ((tt >> j) & 1).astype(bool)
        if bit.any():
            new = _dd_matvec((p[0][..., None], p[1][..., None]), z)
            z = new if bit.all() else _dd_where(bit, new, z)
    return z[0][0] + z[1][0]


def _noisy_second_moment(powers: list, m: np.ndarray, tt: np.ndarray) -> np.ndarray:
    """``(S_t)_11`` per coordinate (rows) and step (columns, ``tt``), ``S_0 = m 1 1^T``."""
    shape = (2, 2, m.shape[0], tt.size)
    s = (np.broadcast_to(m, shape[2:]) * np.ones(shape), np.zeros(shape))
    for j, (p, n) in enumerate(powers):
        bit = ((tt >> j) & 1).astype(bool)
        if bit.any():
            new = dd_add(_dd_congruence((p[0][..., None], p[1][..., None]), s),
                         (n[0][..., None], n[1][..., None]))
            s = new if bit.all() else _dd_where(bit, new, s)
    return s[0][0, 0] + s[1][0, 0]


def log_abs_one_minus(h: np.ndarray) -> np.ndarray:
    """``log|1 - h|`` without cancellation for small ``h`` or ``h`` near 2 (``-inf`` at 1)."""
    h = np.asarray(h, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(h <= 1.0, np.log1p(-np.minimum(h, 1.0)), np.log1p(np.maximum(h, 1.0) - 2.0))


def power_and_geometric_sum(
    log_r: np.ndarray, one_minus_r: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(r^t, sum_{k<t} r^k)`` for ``r = exp(log_r) >= 0``, accurate for ``r`` near 1.

    ``log_r`` (``-inf`` for ``r = 0``) and ``one_minus_r`` must be supplied accurately by the
    caller (see :func:`log_abs_one_minus`); inputs broadcast. ``r = 1`` gives ``(1, t)``;
    ``r = 0`` gives ``(1, 0)`` at ``t = 0`` and ``(0, 1)`` after.
    """
    log_r, omr, t = np.broadcast_arrays(
        np.asarray(log_r, float), np.asarray(one_minus_r, float), np.asarray(t, float)
    )
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.where(t == 0, 0.0, t * log_r)  # avoids 0 * -inf
        rt = np.exp(x)
        safe = np.where(omr == 0, 1.0, omr)
        geo = np.where(omr == 0, t, -np.expm1(x) / safe)
    return rt, geo


def averaged_second_moment(
    q: np.ndarray,
    m0: np.ndarray,
    noise: np.ndarray,
    weights: np.ndarray,
    steps: np.ndarray,
) -> np.ndarray:
    """``sum_i weights_i E[bar e_{T,i}^2]`` for averaged SGD ``bar e_T = (1/T) sum_{t=1}^T e_t``.

    Per coordinate ``e_{t+1} = q e_t - alpha xi_t``: ``E[bar e^2] = m0 (q G_T / T)^2 +
    noise S2_T / T^2`` with ``G_j = sum_{m<j} q^m``, ``S2_T = sum_{j=1}^T G_j^2`` and
    ``noise = alpha^2 s^2``. ``G_T``, ``S2_T`` come from exact block doubling (no ``1/(1-q)``,
    so ``q`` near 1 and ``lambda = 0`` need no special case). Blocks of length n carry
    ``(q^n, G_n, S1_n = sum_{j<=n} G_j, S2_n)`` and combine as ``G_{a+n} = G_a + q^a G_n``,
    ``S1_{a+n} = S1_a + n G_a + q^a S1_n``,
    ``S2_{a+n} = S2_a + n G_a^2 + 2 G_a q^a S1_n + q^{2a} S2_n``. Steps must be ``>= 1``.
    Cost O(d * (log T + sum_k popcount(gap_k))).
    """
    q, m0, noise, weights = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(v, dtype=float)) for v in (q, m0, noise, weights))
    )
    keep = (weights != 0) & ((m0 != 0) | (noise != 0))  # all-zero coordinates stay 0
    q, m0, noise, weights = q[keep], m0[keep], noise[keep], weights[keep]
    uniq, inverse = _unique_steps(steps)
    out = np.zeros(uniq.size)
    if uniq.size and keep.any():
        gaps = np.diff(np.concatenate(([0], uniq)))
        nbits = int(gaps.max()).bit_length()
        ones = np.ones_like(q)
        blocks = []
        blk = (q.copy(), ones, ones.copy(), ones.copy(), 1)
        with np.errstate(over="ignore", invalid="ignore"):
            for j in range(nbits):
                blocks.append(blk)
                if j + 1 < nbits:
                    blk = _combine(blk, blk)
            cur = (ones.copy(), np.zeros_like(q), np.zeros_like(q), np.zeros_like(q), 0)
            for k, gap in enumerate(gaps):
                j = 0
                gap = int(gap)
                while gap:
                    if gap & 1:
                        cur = _combine(cur, blocks[j])
                    gap >>= 1
                    j += 1
                T = float(cur[4])
                g, s2 = cur[1], cur[3]
                x2 = m0 * (q * g / T) ** 2 + noise * s2 / (T * T)
                x2 = np.where(np.isfinite(x2), x2, np.inf)
                out[k] = (weights * x2).sum()
    return out[inverse].reshape(np.shape(steps))


def _combine(first, second):
    qa, ga, s1a, s2a, na = first
    qn, gn, s1n, s2n, n = second
    return (
        qa * qn,
        ga + qa * gn,
        s1a + n * ga + qa * s1n,
        s2a + n * ga * ga + 2.0 * ga * qa * s1n + qa * qa * s2n,
        na + n,
    )


def chunked_rows(n_rows: int, width: int) -> int:
    """Number of rows per chunk so that a chunk holds about :data:`CHUNK_ENTRIES` entries."""
    return max(1, CHUNK_ENTRIES // max(1, width))
