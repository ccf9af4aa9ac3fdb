"""Per-row random streams for the compiled loops: xoshiro256** and a 256-layer ziggurat.

Every (configuration, replicate) row owns four 64-bit words of xoshiro256** state (Blackman–
Vigna 2018) kept in a ``(rows, 4)`` uint64 array between calls, seeded from
``SeedSequence(entropy=seed, spawn_key=(hash(key), replicate))`` — the child the replicate
would get from :func:`simulate.rng.config_seed_sequence` ``(seed, key)`` — so a row's numbers
depend on the run seed, the configuration's key and the replicate index only: not on the
batch it runs in, the thread that runs it, or how the steps are split into calls.

Normals come from the ziggurat of Marsaglia & Tsang (2000) in Doornik's (2005) form with 256
layers (R = 3.6541528853610088, V = 4.92867323399e-3, the constants NumPy uses): one 64-bit
word gives the layer (8 bits), the sign (1 bit) and a 52-bit uniform; about 99 % of draws are
accepted with one multiply and one compare, the rest go through the exact wedge test or the
Marsaglia (1964) tail. float32 runs use the same float64 normals, rounded: a 32-bit variant
(two normals per word) measured slower on this machine (~300 vs ~450 M normals/s per core) —
the cost is the table look-ups and the branch, not the generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np

from ..rng import config_seed_sequence

__all__ = [
    "NORMAL_TABLES",
    "next_u64",
    "normal64",
    "row_states",
    "standard_normals",
    "uniform64",
]

ZIG_LAYERS = 256
ZIG_R = 3.6541528853610088
ZIG_V = 4.92867323399e-3


def _ziggurat_x() -> np.ndarray:
    """Layer edges x[0..256]: x[0] = V/f(R) (the base block), x[1] = R, …, x[256] = 0.

    f(x) = exp(−x²/2); every layer has area V: x_i (f(x_{i+1}) − f(x_i)) = V (Doornik 2005).
    """
    x = np.zeros(ZIG_LAYERS + 1)
    f = math.exp(-0.5 * ZIG_R * ZIG_R)
    x[0] = ZIG_V / f
    x[1] = ZIG_R
    for i in range(2, ZIG_LAYERS):
        x[i] = math.sqrt(-2.0 * math.log(ZIG_V / x[i - 1] + f))
        f = math.exp(-0.5 * x[i] * x[i])
    x[ZIG_LAYERS] = 0.0
    return x


def _tables(bits: int, dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, w, f) for a signed ``bits``-bit uniform u: accept if |u| < k[i], value u·w[i].

    k[i] = ⌊(x_{i+1}/x_i)·2^bits⌋ (inside layer i's box), w[i] = x_i / 2^bits,
    f[i] = exp(−x_i²/2) (length 257, for the wedge test).
    """
    x = _ziggurat_x()
    scale = float(2**bits)
    k = np.floor(x[1:] / x[:-1] * scale).astype(np.int64)
    w = (x[:-1] / scale).astype(dtype)
    f = np.exp(-0.5 * x * x).astype(np.float64)
    return k, w, f


#: (k, w, f, x) for signed 53-bit uniforms
NORMAL_TABLES = (*_tables(52, np.float64), _ziggurat_x())

_K64, _W64, _F, _X = NORMAL_TABLES
_X64 = (_X[:-1] / 2.0**52).astype(np.float64)
_INV_R = 1.0 / ZIG_R
_TWO_M53 = 2.0**-53


@numba.njit
def _rotl(x: np.uint64, k: np.uint64) -> np.uint64:
    return (x << k) | (x >> (np.uint64(64) - k))


@numba.njit
def next_u64(s0, s1, s2, s3):  # noqa: ANN001, ANN201
    """xoshiro256**: (output, new state words)."""
    result = _rotl(s1 * np.uint64(5), np.uint64(7)) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, np.uint64(45))
    return result, s0, s1, s2, s3


@numba.njit
def uniform64(s0, s1, s2, s3):  # noqa: ANN001, ANN201
    """A uniform on [0, 1) with 53 random bits, and the new state."""
    r, s0, s1, s2, s3 = next_u64(s0, s1, s2, s3)
    return np.float64(np.int64(r >> np.uint64(11))) * _TWO_M53, s0, s1, s2, s3


@numba.njit
def _normal_slow(idx, x, s0, s1, s2, s3):  # noqa: ANN001, ANN201
    """The rejected ~1.5 % of layer draws: tail (layer 0) or wedge test, else a new draw.

    ``x`` is the rejected candidate (its sign is the draw's sign).
    """
    while True:
        negative = x < 0.0
        if idx == 0:
            # Marsaglia (1964) tail beyond R: x = −log(U1)/R, accept if −2 log U2 > x²
            while True:
                u1, s0, s1, s2, s3 = uniform64(s0, s1, s2, s3)
                u2, s0, s1, s2, s3 = uniform64(s0, s1, s2, s3)
                xx = -math.log1p(-u1) * _INV_R
                yy = -math.log1p(-u2)
                if yy + yy > xx * xx:
                    v = ZIG_R + xx
                    return (-v if negative else v), s0, s1, s2, s3
        # wedge: y uniform on [f(x_i), f(x_{i+1})], accept if y < f(x)
        u, s0, s1, s2, s3 = uniform64(s0, s1, s2, s3)
        if _F[idx] + u * (_F[idx + 1] - _F[idx]) < math.exp(-0.5 * x * x):
            return x, s0, s1, s2, s3
        # a full new draw
        r, s0, s1, s2, s3 = next_u64(s0, s1, s2, s3)
        idx = np.int64(r & np.uint64(0xFF))
        u53 = np.int64(r) >> np.int64(11)
        x = np.float64(u53) * _X64[idx]
        if abs(u53) < _K64[idx]:
            return x, s0, s1, s2, s3


@numba.njit
def normal64(s0, s1, s2, s3):  # noqa: ANN001, ANN201
    """A standard normal (float64) and the new state.

    One word r: layer i = the low 8 bits, u = the top 53 bits as a signed integer
    (|u| < 2^52: uniform on (−1, 1) in units of 2^−52); accept u·x_i if |u| < k[i].
    """
    r, s0, s1, s2, s3 = next_u64(s0, s1, s2, s3)
    idx = np.int64(r & np.uint64(0xFF))
    u53 = np.int64(r) >> np.int64(11)
    x = np.float64(u53) * _W64[idx]
    if abs(u53) < _K64[idx]:
        return x, s0, s1, s2, s3
    return _normal_slow(idx, x, s0, s1, s2, s3)


def row_states(seed: int, keys: Sequence[str], replicates: int) -> np.ndarray:
    """xoshiro256** states ``(len(keys)·replicates, 4)`` uint64, row = config·R + replicate.

    Row (c, r) is seeded by ``SeedSequence(entropy=seed, spawn_key=(hash(keys[c]), r))``, the
    r-th child of :func:`simulate.rng.config_seed_sequence` ``(seed, keys[c])``.
    """
    out = np.empty((len(keys) * replicates, 4), dtype=np.uint64)
    row = 0
    for key in keys:
        parent = config_seed_sequence(seed, key)
        for r in range(replicates):
            child = np.random.SeedSequence(entropy=parent.entropy,
                                           spawn_key=(*parent.spawn_key, r))
            words = child.generate_state(4, np.uint64)
            if not words.any():  # the all-zero state is xoshiro's only fixed point
                words[0] = np.uint64(1)
            out[row] = words
            row += 1
    return out


@numba.njit
def _fill_normals64(state: np.ndarray, out: np.ndarray) -> None:
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    for i in range(out.size):
        out[i], s0, s1, s2, s3 = normal64(s0, s1, s2, s3)
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3


def standard_normals(state: np.ndarray, n: int, dtype: str = "float64") -> np.ndarray:
    """``n`` normals from one row state (advanced in place) — for tests of the generator."""
    out = np.empty(n, dtype=np.float64)
    _fill_normals64(state, out)
    return out.astype(dtype, copy=False)
