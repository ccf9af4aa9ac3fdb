"""Exact evaluation of linear recurrences at arbitrary steps (private helpers).

Everything here is "binary powering" (doubling): the 2^j-step map of a linear (or affine)
recurrence is precomputed by squaring, and a step count is the composition of the maps of its
set bits. The maps of one recurrence commute, so the order of composition does not matter.
No closed form with divisions is used, so double roots, zero eigenvalues and unstable
parameters need no special case; for PSD second moments every added term is a congruence
of a PSD matrix (no cancellation of large terms).

2x2 matrices are tuples ``(m11, m12, m21, m22)`` of arrays, symmetric 2x2 matrices tuples
``(s11, s12, s22)``; all arithmetic is elementwise so every coordinate is processed at once.
"""

from __future__ import annotations

import numpy as np

Mat = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Sym = tuple[np.ndarray, np.ndarray, np.ndarray]

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


def congruence(p: Mat, s: Sym) -> Sym:
    """``P S P^T`` for symmetric ``S``."""
    p11, p12, p21, p22 = p
    s11, s12, s22 = s
    u11 = p11 * s11 + p12 * s12
    u12 = p11 * s12 + p12 * s22
    u21 = p21 * s11 + p22 * s12
    u22 = p21 * s12 + p22 * s22
    return (u11 * p11 + u12 * p12, u11 * p21 + u12 * p22, u21 * p21 + u22 * p22)


def companion(a: np.ndarray, b: np.ndarray) -> Mat:
    """``[[a, -b], [1, 0]]``: the map ``(x_t, x_{t-1}) -> (x_{t+1}, x_t)`` of
    ``x_{t+1} = a x_t - b x_{t-1}``."""
    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    return (a, -b, np.ones_like(a), np.zeros_like(a))


def _unique_steps(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = np.asarray(steps, dtype=np.int64).ravel()
    uniq, inverse = np.unique(flat, return_inverse=True)
    return uniq, inverse


def two_term_at(a: np.ndarray, b: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``p_t`` of ``p_{t+1} = a p_t - b p_{t-1}``, ``p_0 = p_{-1} = 1``, elementwise.

    ``a``, ``b`` and ``steps`` broadcast together; cost O(size * log2(max step)).
    """
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


def second_moment_path(
    a: np.ndarray,
    b: np.ndarray,
    m0: np.ndarray,
    noise: np.ndarray,
    steps: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """``E x_t^2`` for ``x_{t+1} = a x_t - b x_{t-1} + eps_t``, ``x_{-1} = x_0``.

    ``E x_0^2 = m0``, ``eps_t`` independent, zero mean, ``E eps_t^2 = noise``. The covariance of
    ``z_t = (x_t, x_{t-1})`` obeys ``S_{t+1} = M S_t M^T + noise e1 e1^T`` from
    ``S_0 = m0 * 1 1^T``; it is propagated exactly from one requested step to the next by the
    binary digits of the gap. Parameters are 1-D arrays over coordinates (broadcast); returns
    ``sum_i weights_i E x_{t,i}^2`` (zero weights contribute 0 even when ``x`` diverges) with
    the shape of ``steps``; overflow (divergence) gives ``inf``.
    Cost O(d * (log T + sum_k popcount(gap_k))),
    which is at most O(d * T_max).
    """
    a, b, m0, noise, weights = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(v, dtype=float)) for v in (a, b, m0, noise, weights))
    )
    keep = (weights != 0) & ((m0 != 0) | (noise != 0))  # all-zero coordinates stay 0
    a, b, m0, noise, weights = a[keep], b[keep], m0[keep], noise[keep], weights[keep]
    uniq, inverse = _unique_steps(steps)
    out = np.zeros(uniq.size)
    if uniq.size == 0 or not keep.any():
        return out[inverse].reshape(np.shape(steps))
    gaps = np.diff(np.concatenate(([0], uniq)))
    nbits = int(gaps.max()).bit_length()
    powers: list[tuple[Mat, Sym]] = []
    p = companion(a, b)
    n: Sym = (noise.copy(), np.zeros_like(noise), np.zeros_like(noise))
    with np.errstate(over="ignore", invalid="ignore"):
        for j in range(nbits):
            powers.append((p, n))
            if j + 1 < nbits:
                pn = congruence(p, n)
                n = (n[0] + pn[0], n[1] + pn[1], n[2] + pn[2])
                p = mat_mul(p, p)
        s: Sym = (m0.copy(), m0.copy(), m0.copy())
        for k, gap in enumerate(gaps):
            j = 0
            gap = int(gap)
            while gap:
                if gap & 1:
                    pj, nj = powers[j]
                    ps = congruence(pj, s)
                    s = (ps[0] + nj[0], ps[1] + nj[1], ps[2] + nj[2])
                gap >>= 1
                j += 1
            x2 = np.where(np.isfinite(s[0]), s[0], np.inf)  # overflow means divergence
            out[k] = (weights * x2).sum()
    return out[inverse].reshape(np.shape(steps))


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
