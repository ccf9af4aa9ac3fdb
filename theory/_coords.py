"""Per-coordinate helpers shared by the exact-curve modules (private)."""

from __future__ import annotations

import numpy as np

from ._recurrence import chunked_rows


def broadcast_coords(**arrays: np.ndarray) -> list[np.ndarray]:
    """Broadcast per-coordinate inputs (scalars or 1-D) to one length, with a clear error."""
    try:
        out = np.broadcast_arrays(*(np.atleast_1d(v) for v in arrays.values()))
    except ValueError as exc:
        shapes = ", ".join(f"{k}{np.shape(v)}" for k, v in arrays.items())
        raise ValueError(f"per-coordinate inputs do not broadcast: {shapes}") from exc
    return [np.array(v, dtype=float) for v in out]


def sum_powers(log_r: np.ndarray, w: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``sum_i w_i r_i^{t_k}`` with ``r_i = exp(log_r_i)`` for every step (chunked over steps).

    Taking ``log r`` from the caller (computed with ``log1p``) keeps ``r^t`` accurate for
    ``r`` near 1 and large ``t``; ``log_r = -inf`` means ``r = 0`` (``0^0 = 1``).
    """
    flat = t.ravel().astype(float)
    out = np.zeros(flat.shape)
    keep = w != 0
    log_r, w = log_r[keep], w[keep]
    if not keep.any():
        return out.reshape(t.shape)
    rows = chunked_rows(flat.size, log_r.size)
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, flat.size, rows):
            tt = flat[start : start + rows, None]
            x = np.where(tt == 0, 0.0, tt * log_r)
            out[start : start + rows] = (np.exp(x) * w).sum(axis=-1)
    return out.reshape(t.shape)
