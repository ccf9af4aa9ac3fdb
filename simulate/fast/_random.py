"""Per-row random streams for the compiled loops: xoshiro256** and ziggurat normals.

Every (configuration, replicate) row owns ``ROW_WORDS`` = 36 64-bit words of xoshiro256**
state (Blackman–Vigna 2018: a scalar stream in words 0 … 3 and eight lane streams, see below),
kept in a ``(rows, ROW_WORDS)`` uint64 array between calls, seeded from
``SeedSequence(entropy=seed, spawn_key=(hash(key), replicate))`` — the child the replicate
would get from :func:`simulate.rng.config_seed_sequence` ``(seed, key)`` — so a row's numbers
depend on the run seed, the configuration's key and the replicate index only: not on the
batch it runs in, the thread that runs it, or how the steps are split into calls.

Scalar normals come from the ziggurat of Marsaglia & Tsang (2000) in Doornik's (2005) form with 256
layers (R = 3.6541528853610088, V = 4.92867323399e-3, the constants NumPy uses): one 64-bit
word gives the layer (8 bits), the sign (1 bit) and a 52-bit uniform; about 99 % of draws are
accepted with one multiply and one compare, the rest go through the exact wedge test or the
Marsaglia (1964) tail. float32 runs use the same float64 normals, rounded: a 32-bit variant
(two normals per word) measured slower on this machine (~300 vs ~450 M normals/s per core) —
the cost is the table look-ups and the branch, not the generator.

The loops that need a whole row of d normals per step (separable and elementwise) draw them
eight at a time instead (:func:`lane_normals`): eight further xoshiro256** streams per row
("lanes", words 4 … 35 of the row's state) advanced together in explicit 4 × 64-bit vector
code, feeding a 1024-layer ziggurat (R = 4.038849846109505, V = R f(R) + √(π/2) erfc(R/√2)).
The first try of every coordinate — one word: layer (10 bits), sign (1 bit), a 52-bit uniform
u; accept u·x_i if u < k_i, about 99.6 % of draws — is computed branch-free for eight
coordinates at once; the rejected ones are then completed one by one by the exact wedge/tail
procedure with uniforms from the row's scalar stream (words 0 … 3). Everything after a
rejection uses fresh, independent words, so each coordinate is exactly a ziggurat normal and
coordinates are independent. Measured on this machine: about 1.3× the scalar generator's
rate per core on W1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..rng import config_seed_sequence

__all__ = [
    "LANES",
    "NORMAL_TABLES",
    "ROW_WORDS",
    "lane_normals",
    "lane_buffers",
    "next_u64",
    "normal64",
    "row_states",
    "standard_normals",
    "uniform64",
]

ZIG_LAYERS = 256
ZIG_R = 3.6541528853610088
ZIG_V = 4.92867323399e-3


#: the lanes' 1024-layer ziggurat: R solved so that the top layer closes (the residual
#: V/x_1023 + f(x_1023) − 1 is −3.5e-14; tested), V the area of the base block
LANE_LAYERS = 1024
LANE_R = 4.038849846109505
LANE_V = LANE_R * math.exp(-0.5 * LANE_R * LANE_R) + math.sqrt(math.pi / 2.0) * math.erfc(
    LANE_R / math.sqrt(2.0))
#: streams advanced together per row by :func:`lane_normals` (two 4 × 64-bit vectors)
LANES = 8
#: uint64 words of generator state per row: the scalar stream (0 … 3), then the lanes
ROW_WORDS = 4 + 4 * LANES


def _ziggurat_x(layers: int = ZIG_LAYERS, r: float = ZIG_R, v: float = ZIG_V) -> np.ndarray:
    """Layer edges x[0..n]: x[0] = V/f(R) (the base block), x[1] = R, …, x[n] = 0.

    f(x) = exp(−x²/2); every layer has area V: x_i (f(x_{i+1}) − f(x_i)) = V (Doornik 2005).
    """
    x = np.zeros(layers + 1)
    f = math.exp(-0.5 * r * r)
    x[0] = v / f
    x[1] = r
    for i in range(2, layers):
        x[i] = math.sqrt(-2.0 * math.log(v / x[i - 1] + f))
        f = math.exp(-0.5 * x[i] * x[i])
    x[layers] = 0.0
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
def _normal_tail(negative, r, inv_r, s0, s1, s2, s3):  # noqa: ANN001, ANN201
    """Marsaglia's (1964) tail beyond ``r``: x = −log(U1)/r, accept if −2 log U2 > x²; the
    value ±(r + x) and the new state."""
    while True:
        u1, s0, s1, s2, s3 = uniform64(s0, s1, s2, s3)
        u2, s0, s1, s2, s3 = uniform64(s0, s1, s2, s3)
        xx = -math.log1p(-u1) * inv_r
        yy = -math.log1p(-u2)
        if yy + yy > xx * xx:
            v = r + xx
            return (-v if negative else v), s0, s1, s2, s3


@numba.njit
def _wedge_accepts(f, idx, x, s0, s1, s2, s3):  # noqa: ANN001, ANN201
    """The wedge test of layer ``idx``: y uniform on [f(x_i), f(x_{i+1})], accept x if
    y < exp(−x²/2); (accepted, new state)."""
    u, s0, s1, s2, s3 = uniform64(s0, s1, s2, s3)
    return f[idx] + u * (f[idx + 1] - f[idx]) < math.exp(-0.5 * x * x), s0, s1, s2, s3


@numba.njit
def _normal_slow(idx, x, s0, s1, s2, s3):  # noqa: ANN001, ANN201
    """The rejected ~1.5 % of layer draws: tail (layer 0) or wedge test, else a new draw.

    ``x`` is the rejected candidate (its sign is the draw's sign).
    """
    while True:
        if idx == 0:
            return _normal_tail(x < 0.0, ZIG_R, _INV_R, s0, s1, s2, s3)
        accept, s0, s1, s2, s3 = _wedge_accepts(_F, idx, x, s0, s1, s2, s3)
        if accept:
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
    """Generator states ``(len(keys)·replicates, ROW_WORDS)`` uint64, row = config·R + replicate.

    Row (c, r) is seeded by ``SeedSequence(entropy=seed, spawn_key=(hash(keys[c]), r))``, the
    r-th child of :func:`simulate.rng.config_seed_sequence` ``(seed, keys[c])``: words 0 … 3
    are the row's scalar xoshiro256** stream, words 4 … 35 the :data:`LANES` lane streams,
    word w of lane l at 4 + w·LANES + l. (A SeedSequence's first words do not depend on how
    many are asked for, so the scalar stream is the one a 4-word state would have.)
    """
    out = np.empty((len(keys) * replicates, ROW_WORDS), dtype=np.uint64)
    row = 0
    for key in keys:
        parent = config_seed_sequence(seed, key)
        for r in range(replicates):
            child = np.random.SeedSequence(entropy=parent.entropy,
                                           spawn_key=(*parent.spawn_key, r))
            words = child.generate_state(ROW_WORDS, np.uint64)
            # the all-zero state is xoshiro's only fixed point: not for any stream
            if not words[:4].any():
                words[0] = np.uint64(1)
            lanes = words[4:].reshape(4, LANES)  # a view: [word, lane]
            for lane in range(LANES):
                if not lanes[:, lane].any():
                    lanes[0, lane] = np.uint64(1)
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


# --------------------------------------------------------------------------- eight lanes at once
_LK, _LW, _LF = (lambda x: (
    np.floor(x[1:] / x[:-1] * 2.0**52).astype(np.int64),  # accept iff u < k_i (u: 52 bits)
    (x[:-1] / 2.0**52).astype(np.float64),                # value u·w_i
    np.exp(-0.5 * x * x),                                 # f(x_i), for the wedge test
))(_ziggurat_x(LANE_LAYERS, LANE_R, LANE_V))
_LANE_INV_R = 1.0 / LANE_R
_LANE_MASK = np.uint64(LANE_LAYERS - 1)
_LANE_SIGN_BIT = np.uint64(10)  # bits 0–9: layer; bit 10: sign; bits 12–63: u


@numba.njit
def _lane_normal_slow(idx, x, s0, s1, s2, s3):  # noqa: ANN001, ANN201
    """Complete a rejected first try (layer ``idx``, signed candidate ``x``) exactly, with
    uniforms from the scalar stream: Marsaglia's tail beyond R for layer 0, else the wedge
    test, else a whole new ziggurat draw (repeated until one is accepted)."""
    while True:
        if idx == 0:
            return _normal_tail(x < 0.0, LANE_R, _LANE_INV_R, s0, s1, s2, s3)
        accept, s0, s1, s2, s3 = _wedge_accepts(_LF, idx, x, s0, s1, s2, s3)
        if accept:
            return x, s0, s1, s2, s3
        r, s0, s1, s2, s3 = next_u64(s0, s1, s2, s3)
        idx = np.int64(r & _LANE_MASK)
        u52 = r >> np.uint64(12)
        x = np.float64(u52) * _LW[idx]
        if (r >> _LANE_SIGN_BIT) & np.uint64(1):
            x = -x
        if np.int64(u52) < _LK[idx]:
            return x, s0, s1, s2, s3


_I64, _I32, _F64 = ir.IntType(64), ir.IntType(32), ir.DoubleType()
_V4I, _V4D = ir.VectorType(_I64, 4), ir.VectorType(_F64, 4)
_TWO52_BITS = 0x4330000000000000  # the bits of 2.0**52


def _splat(value, vtype=_V4I):  # noqa: ANN001, ANN202
    return ir.Constant(vtype, [value] * 4)


@intrinsic
def _lane_first_tries(typingctx, lanes, out, codes, flags, w_table, k_table):  # noqa: ANN001, ANN201, ARG001
    """Branch-free first tries for ``out.size`` (a multiple of 8) coordinates, 8 at a time.

    Per block of 8: advance each lane's xoshiro256** once (two 4 × 64-bit vectors; ×5 and ×9
    as shift-and-add, rotations as shift-or), split each word r into layer i = r & 1023,
    sign = bit 10 and u = r >> 12, form u exactly as a double (OR into the bits of 2^52, minus
    2^52), store the candidate ±u·w_i, a code (0 if u < k_i, else i + 1) and the OR of the
    block's codes. The table look-ups are four scalar loads per vector (faster than
    ``vpgatherqq`` on this CPU). The lanes' state stays in registers for the whole call.
    """
    sig = types.void(lanes, out, codes, flags, w_table, k_table)
    n_vec = LANES // 4

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        la, oa, ca, fa, wa, ka = [context.make_array(t)(context, builder, a)
                                  for t, a in zip(signature.args, args, strict=True)]

        def vptr(arr, offset, vtype):  # noqa: ANN001, ANN202
            return builder.bitcast(builder.gep(arr.data, [offset]), vtype.as_pointer())

        state = [[cgutils.alloca_once(builder, _V4I) for _ in range(4)] for _ in range(n_vec)]
        for v in range(n_vec):
            for w in range(4):
                at = ir.Constant(_I64, w * LANES + 4 * v)
                builder.store(builder.load(vptr(la, at, _V4I), align=8), state[v][w])
        n_blocks = builder.udiv(oa.nitems, ir.Constant(_I64, LANES))
        with cgutils.for_range(builder, n_blocks) as loop:
            base = builder.mul(loop.index, ir.Constant(_I64, LANES))
            any_code = None
            for v in range(n_vec):
                s0, s1, s2, s3 = [builder.load(a) for a in state[v]]
                x5 = builder.add(builder.shl(s1, _splat(2)), s1)
                rot = builder.or_(builder.shl(x5, _splat(7)), builder.lshr(x5, _splat(57)))
                r = builder.add(builder.shl(rot, _splat(3)), rot)
                t = builder.shl(s1, _splat(17))
                s2 = builder.xor(s2, s0)
                s3 = builder.xor(s3, s1)
                s1 = builder.xor(s1, s2)
                s0 = builder.xor(s0, s3)
                s2 = builder.xor(s2, t)
                s3 = builder.or_(builder.shl(s3, _splat(45)), builder.lshr(s3, _splat(19)))
                for a, value in zip(state[v], (s0, s1, s2, s3), strict=True):
                    builder.store(value, a)
                idx = builder.and_(r, _splat(LANE_LAYERS - 1))
                u = builder.lshr(r, _splat(12))
                u_double = builder.fsub(
                    builder.bitcast(builder.or_(u, _splat(_TWO52_BITS)), _V4D),
                    _splat(2.0**52, _V4D))
                wv = ir.Constant(_V4D, ir.Undefined)
                kv = ir.Constant(_V4I, ir.Undefined)
                for e in range(4):
                    at = ir.Constant(_I32, e)
                    ie = builder.extract_element(idx, at)
                    wv = builder.insert_element(wv, builder.load(builder.gep(wa.data, [ie])), at)
                    kv = builder.insert_element(kv, builder.load(builder.gep(ka.data, [ie])), at)
                magnitude = builder.bitcast(builder.fmul(u_double, wv), _V4I)
                sign = builder.and_(builder.shl(r, _splat(53)), _splat(-(1 << 63)))
                candidate = builder.bitcast(builder.xor(magnitude, sign), _V4D)
                at = builder.add(base, ir.Constant(_I64, 4 * v))
                builder.store(candidate, vptr(oa, at, _V4D), align=8)
                code = builder.select(builder.icmp_signed("<", u, kv), _splat(0),
                                      builder.add(idx, _splat(1)))
                builder.store(code, vptr(ca, at, _V4I), align=8)
                any_code = code if any_code is None else builder.or_(any_code, code)
            e = [builder.extract_element(any_code, ir.Constant(_I32, i)) for i in range(4)]
            builder.store(builder.or_(builder.or_(e[0], e[1]), builder.or_(e[2], e[3])),
                          builder.gep(fa.data, [loop.index]))
        for v in range(n_vec):
            for w in range(4):
                at = ir.Constant(_I64, w * LANES + 4 * v)
                builder.store(builder.load(state[v][w]), vptr(la, at, _V4I), align=8)
        return context.get_dummy_value()

    return sig, codegen


def lane_buffers(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(out float64, codes int64, flags int64) for :func:`lane_normals` of ``d`` normals:
    ``d`` rounded up to a multiple of :data:`LANES` (the extra normals are drawn, not used)."""
    n = -(-d // LANES) * LANES
    return np.zeros(n), np.zeros(n, np.int64), np.zeros(n // LANES, np.int64)


@numba.njit(nogil=True)
def lane_normals(state, out, codes, flags):  # noqa: ANN001, ANN201
    """Fill ``out`` (length a multiple of :data:`LANES`) with standard normals from one row's
    state (``ROW_WORDS`` words, advanced in place); ``codes`` and ``flags`` are scratch
    (see :func:`lane_buffers`). Coordinate j comes from lane j mod 8."""
    _lane_first_tries(state[4:], out, codes, flags, _LW, _LK)
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    for b in range(flags.size):
        if flags[b] != 0:
            for j in range(b * LANES, b * LANES + LANES):
                if codes[j] != 0:
                    out[j], s0, s1, s2, s3 = _lane_normal_slow(codes[j] - 1, out[j],
                                                               s0, s1, s2, s3)
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3


@numba.njit
def _fill_lane_normals(state: np.ndarray, out: np.ndarray, per_call: int) -> None:
    buf = np.zeros(per_call)
    codes = np.zeros(per_call, np.int64)
    flags = np.zeros(per_call // LANES, np.int64)
    for k in range(out.size // per_call):
        lane_normals(state, buf, codes, flags)
        out[k * per_call:(k + 1) * per_call] = buf


def standard_lane_normals(state: np.ndarray, n: int, per_call: int = 1000) -> np.ndarray:
    """``n`` normals (a multiple of ``per_call``, itself of :data:`LANES`) drawn by
    :func:`lane_normals` ``per_call`` at a time from one row state — for tests."""
    if per_call % LANES or n % per_call:
        raise ValueError(f"n={n}, per_call={per_call}: per_call must be a multiple of {LANES} "
                         "and n a multiple of per_call")
    out = np.empty(n)
    _fill_lane_normals(state, out, per_call)
    return out
