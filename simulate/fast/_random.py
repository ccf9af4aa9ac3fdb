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
Marsaglia (1964) tail. (A scalar 32-bit variant, two normals per word, measured slower on
this machine: ~300 vs ~450 M normals/s per core — the cost is the table look-ups and the
branch, not the generator; float32 gains only once the look-ups are vectorised, below.)

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

float32 runs draw their rows with :func:`lane_normals32`: each lane word is split into two
32-bit draws — layer (10 bits), sign (1 bit), a 21-bit uniform u, exact in float32 — so a
block of 16 coordinates costs one step of the lanes, and the first tries run as 8 × 32-bit
vectors with one 64-bit table word (k_i, w_i) per layer. The layers, the acceptance rate and
the exact completion of rejected tries (in float64, from the scalar stream, then rounded) are
those of the float64 lanes. The 21-bit uniform puts a candidate on a grid of x_i / 2^21 within
its layer (≤ 2e-6 apart; NumPy's float32 ziggurat uses 23 bits and 256 layers): coarser than
float32's spacing near |z| ≈ 1 by 16×, a discreteness far below anything a simulation's
statistics resolve. Measured on this machine: about 1.4× the float64 lanes' rate per core.
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
    "LANE_BLOCK32",
    "NORMAL_TABLES",
    "ROW_WORDS",
    "lane_buffers",
    "lane_normals",
    "lane_normals32",
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
#: float32 normals per block of :func:`lane_normals32` (two per lane word)
LANE_BLOCK32 = 2 * LANES
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
_LANE_X = _ziggurat_x(LANE_LAYERS, LANE_R, LANE_V)
_LK = np.floor(_LANE_X[1:] / _LANE_X[:-1] * 2.0**52).astype(np.int64)  # accept iff u < k_i
_LW = (_LANE_X[:-1] / 2.0**52).astype(np.float64)                       # value u·w_i
_LF = np.exp(-0.5 * _LANE_X * _LANE_X)                                  # f(x_i): wedge test
#: the float32 first tries' tables: a 32-bit draw has layer (10 bits), sign (1), u (21 bits)
_LK32 = np.floor(_LANE_X[1:] / _LANE_X[:-1] * 2.0**21).astype(np.int32)
_LW32 = (_LANE_X[:-1] / 2.0**21).astype(np.float32)
#: both in one 64-bit word per layer (k_i low, the bits of w_i high): one look-up per draw
_LKW32 = (_LK32.astype(np.uint32).astype(np.uint64)
          | (_LW32.view(np.uint32).astype(np.uint64) << np.uint64(32))).view(np.int64)
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
_V8I32, _V8F32 = ir.VectorType(_I32, 8), ir.VectorType(ir.FloatType(), 8)
_V8I64 = ir.VectorType(_I64, 8)
_TWO52_BITS = 0x4330000000000000  # the bits of 2.0**52


def _splat(value, vtype=_V4I):  # noqa: ANN001, ANN202
    return ir.Constant(vtype, [value] * vtype.count)


def _vector_ptr(builder, data, offset, vtype):  # noqa: ANN001, ANN202
    """A ``vtype`` pointer to element ``offset`` of the array data pointer ``data``."""
    return builder.bitcast(builder.gep(data, [offset]), vtype.as_pointer())


def _load_lane_state(builder, lanes_data, n_vec):  # noqa: ANN001, ANN202
    """Allocas holding the lanes' xoshiro256** words, [vector][word], loaded from the row."""
    state = [[cgutils.alloca_once(builder, _V4I) for _ in range(4)] for _ in range(n_vec)]
    for v in range(n_vec):
        for w in range(4):
            at = ir.Constant(_I64, w * LANES + 4 * v)
            ptr = _vector_ptr(builder, lanes_data, at, _V4I)
            builder.store(builder.load(ptr, align=8), state[v][w])
    return state


def _store_lane_state(builder, lanes_data, state):  # noqa: ANN001, ANN202
    for v, words in enumerate(state):
        for w in range(4):
            at = ir.Constant(_I64, w * LANES + 4 * v)
            ptr = _vector_ptr(builder, lanes_data, at, _V4I)
            builder.store(builder.load(words[w]), ptr, align=8)


def _advance_lanes(builder, words):  # noqa: ANN001, ANN202
    """One xoshiro256** step of four lanes (allocas ``words``): the four output words.

    ×5 and ×9 as shift-and-add, the rotations as shift-or (as :func:`next_u64`)."""
    s0, s1, s2, s3 = [builder.load(a) for a in words]
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
    for a, value in zip(words, (s0, s1, s2, s3), strict=True):
        builder.store(value, a)
    return r


def _look_up(builder, table_data, idx, vtype):  # noqa: ANN001, ANN202
    """``table[idx[e]]`` for every element of ``idx``, as a ``vtype`` vector: scalar loads
    (faster than the AVX2 gathers on this CPU)."""
    out = ir.Constant(vtype, ir.Undefined)
    for e in range(vtype.count):
        at = ir.Constant(_I32, e)
        ie = builder.extract_element(idx, at)
        out = builder.insert_element(out, builder.load(builder.gep(table_data, [ie])), at)
    return out


def _or_reduce(builder, vec):  # noqa: ANN001, ANN202
    e = [builder.extract_element(vec, ir.Constant(_I32, i)) for i in range(vec.type.count)]
    while len(e) > 1:
        e = [builder.or_(e[i], e[i + 1]) for i in range(0, len(e), 2)]
    return e[0]


def _rejected_bits(builder, code, shift):  # noqa: ANN001, ANN202
    """Bit e + ``shift`` of an i64 set where element e of ``code`` is non-zero (a rejection)."""
    width = code.type.count
    zero = ir.Constant(code.type, [0] * width)
    bits = builder.bitcast(builder.icmp_signed("!=", code, zero), ir.IntType(width))
    out = builder.zext(bits, _I64)
    return builder.shl(out, ir.Constant(_I64, shift)) if shift else out


@intrinsic
def _lowest_bit(typingctx, x):  # noqa: ANN001, ANN201, ARG001
    """The index of the lowest set bit of the int64 ``x`` ≠ 0 (``llvm.cttz``)."""
    sig = types.int64(types.int64)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_I64, [_I64, ir.IntType(1)]), "llvm.cttz.i64")
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])

    return sig, codegen


@intrinsic
def _lane_first_tries(typingctx, lanes, out, codes, flags, w_table, k_table):  # noqa: ANN001, ANN201, ARG001
    """Branch-free first tries for ``out.size`` (a multiple of 8) coordinates, 8 at a time.

    Per block of 8: advance each lane's xoshiro256** once (two 4 × 64-bit vectors), split
    each word r into layer i = r & 1023, sign = bit 10 and u = r >> 12, form u exactly as a
    double (OR into the bits of 2^52, minus 2^52), store the candidate ±u·w_i, a code (0 if
    u < k_i, else i + 1) and the OR of the block's codes. The lanes' state stays in registers
    for the whole call.
    """
    sig = types.void(lanes, out, codes, flags, w_table, k_table)
    n_vec = LANES // 4

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        la, oa, ca, fa, wa, ka = [context.make_array(t)(context, builder, a)
                                  for t, a in zip(signature.args, args, strict=True)]

        state = _load_lane_state(builder, la.data, n_vec)
        n_blocks = builder.udiv(oa.nitems, ir.Constant(_I64, LANES))
        with cgutils.for_range(builder, n_blocks) as loop:
            base = builder.mul(loop.index, ir.Constant(_I64, LANES))
            any_code = None
            for v in range(n_vec):
                r = _advance_lanes(builder, state[v])
                idx = builder.and_(r, _splat(LANE_LAYERS - 1))
                u = builder.lshr(r, _splat(12))
                u_double = builder.fsub(
                    builder.bitcast(builder.or_(u, _splat(_TWO52_BITS)), _V4D),
                    _splat(2.0**52, _V4D))
                wv = _look_up(builder, wa.data, idx, _V4D)
                kv = _look_up(builder, ka.data, idx, _V4I)
                magnitude = builder.bitcast(builder.fmul(u_double, wv), _V4I)
                sign = builder.and_(builder.shl(r, _splat(53)), _splat(-(1 << 63)))
                candidate = builder.bitcast(builder.xor(magnitude, sign), _V4D)
                at = builder.add(base, ir.Constant(_I64, 4 * v))
                builder.store(candidate, _vector_ptr(builder, oa.data, at, _V4D), align=8)
                code = builder.select(builder.icmp_signed("<", u, kv), _splat(0),
                                      builder.add(idx, _splat(1)))
                builder.store(code, _vector_ptr(builder, ca.data, at, _V4I), align=8)
                any_code = code if any_code is None else builder.or_(any_code, code)
            builder.store(_or_reduce(builder, any_code), builder.gep(fa.data, [loop.index]))
        _store_lane_state(builder, la.data, state)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _lane_first_tries32(typingctx, lanes, out, codes, flags, table):  # noqa: ANN001, ANN201, ARG001
    """Branch-free float32 first tries for ``out.size`` (a multiple of 16) coordinates, 16 at
    a time: each lane word gives two 32-bit draws (its low half, then its high half).

    Per block of 16: advance each lane's xoshiro256** once, view the two 4 × 64-bit outputs
    as two 8 × 32-bit vectors, split each 32-bit draw r into layer i = r & 1023, sign =
    bit 10 and u = r >> 11 (21 bits, exact as a float32), look up layer i's (k_i, w_i) in
    ``table`` (one 64-bit word each), store the candidate ±u·w_i (float32), a code (0 if
    u < k_i, else i + 1; int32) and the block's rejections as a bitmask (bit e: coordinate
    e of the block).
    """
    sig = types.void(lanes, out, codes, flags, table)
    n_vec = LANES // 4

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        la, oa, ca, fa, ta = [context.make_array(t)(context, builder, a)
                              for t, a in zip(signature.args, args, strict=True)]

        state = _load_lane_state(builder, la.data, n_vec)
        per_block = 2 * LANES
        n_blocks = builder.udiv(oa.nitems, ir.Constant(_I64, per_block))
        with cgutils.for_range(builder, n_blocks) as loop:
            base = builder.mul(loop.index, ir.Constant(_I64, per_block))
            rejected = None
            for v in range(n_vec):
                r = builder.bitcast(_advance_lanes(builder, state[v]), _V8I32)
                idx = builder.and_(r, _splat(LANE_LAYERS - 1, _V8I32))
                u = builder.lshr(r, _splat(11, _V8I32))
                # one 64-bit entry per layer: k_i in the low half, the bits of w_i in the high
                entry = _look_up(builder, ta.data, idx, _V8I64)
                kv = builder.trunc(entry, _V8I32)
                wv = builder.bitcast(builder.trunc(builder.lshr(entry, _splat(32, _V8I64)),
                                                   _V8I32), _V8F32)
                magnitude = builder.bitcast(builder.fmul(builder.sitofp(u, _V8F32), wv), _V8I32)
                sign = builder.and_(builder.shl(r, _splat(21, _V8I32)),
                                    _splat(-(1 << 31), _V8I32))
                candidate = builder.bitcast(builder.xor(magnitude, sign), _V8F32)
                at = builder.add(base, ir.Constant(_I64, 8 * v))
                builder.store(candidate, _vector_ptr(builder, oa.data, at, _V8F32), align=4)
                code = builder.select(builder.icmp_signed("<", u, kv), _splat(0, _V8I32),
                                      builder.add(idx, _splat(1, _V8I32)))
                builder.store(code, _vector_ptr(builder, ca.data, at, _V8I32), align=4)
                bits = _rejected_bits(builder, code, 8 * v)
                rejected = bits if rejected is None else builder.or_(rejected, bits)
            builder.store(rejected, builder.gep(fa.data, [loop.index]))
        _store_lane_state(builder, la.data, state)
        return context.get_dummy_value()

    return sig, codegen


def lane_buffers(d: int, dtype: str = "float64") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(out, codes, flags) for :func:`lane_normals` (float64) or :func:`lane_normals32`
    (float32) of ``d`` normals: ``d`` rounded up to a whole number of blocks (:data:`LANES`
    normals for float64, 2·LANES for float32; the extra normals are drawn, not used)."""
    if dtype == "float64":
        n = -(-d // LANES) * LANES
        return np.zeros(n), np.zeros(n, np.int64), np.zeros(n // LANES, np.int64)
    if dtype == "float32":
        n = -(-d // LANE_BLOCK32) * LANE_BLOCK32
        return (np.zeros(n, np.float32), np.zeros(n, np.int32),
                np.zeros(n // LANE_BLOCK32, np.int64))
    raise ValueError(f"dtype={dtype!r}: expected 'float64' or 'float32'")


@numba.njit(nogil=True)
def lane_normals(state, out, codes, flags):  # noqa: ANN001, ANN201
    """Fill ``out`` (float64, length a multiple of :data:`LANES`) with standard normals from
    one row's state (``ROW_WORDS`` words, advanced in place); ``codes`` and ``flags`` are
    scratch (see :func:`lane_buffers`). Coordinate j comes from lane j mod 8."""
    _lane_first_tries(state[4:], out, codes, flags, _LW, _LK)
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    for b in range(flags.size):
        if flags[b] != 0:
            for j in range(b * LANES, b * LANES + LANES):
                if codes[j] != 0:
                    out[j], s0, s1, s2, s3 = _lane_normal_slow(codes[j] - 1, out[j],
                                                               s0, s1, s2, s3)
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3


@numba.njit(nogil=True)
def lane_normals32(state, out, codes, flags):  # noqa: ANN001, ANN201
    """Fill ``out`` (float32, length a multiple of :data:`LANE_BLOCK32` = 16) with standard
    normals from one row's state, two per lane word (21-bit uniforms; see the module's
    docstring); ``codes`` and ``flags`` are scratch (see :func:`lane_buffers`). Coordinate
    16b + 2l + h comes from half h (0: low, 1: high) of lane l's word for block b; rejected
    first tries are completed as by :func:`lane_normals` and rounded to float32."""
    _lane_first_tries32(state[4:], out, codes, flags, _LKW32)
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    for b in range(flags.size):
        m = flags[b]
        while m != 0:  # the block's rejected coordinates, lowest first
            j = b * LANE_BLOCK32 + _lowest_bit(m)
            m &= m - 1
            x, s0, s1, s2, s3 = _lane_normal_slow(np.int64(codes[j] - 1), np.float64(out[j]),
                                                  s0, s1, s2, s3)
            out[j] = np.float32(x)
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3


@numba.njit
def _fill_lane_normals(state: np.ndarray, out: np.ndarray, per_call: int) -> None:
    buf = np.zeros(per_call)
    codes = np.zeros(per_call, np.int64)
    flags = np.zeros(per_call // LANES, np.int64)
    for k in range(out.size // per_call):
        lane_normals(state, buf, codes, flags)
        out[k * per_call:(k + 1) * per_call] = buf


@numba.njit
def _fill_lane_normals32(state: np.ndarray, out: np.ndarray, per_call: int) -> None:
    buf = np.zeros(per_call, np.float32)
    codes = np.zeros(per_call, np.int32)
    flags = np.zeros(per_call // LANE_BLOCK32, np.int64)
    for k in range(out.size // per_call):
        lane_normals32(state, buf, codes, flags)
        out[k * per_call:(k + 1) * per_call] = buf


def standard_lane_normals(state: np.ndarray, n: int, per_call: int | None = None,
                          dtype: str = "float64") -> np.ndarray:
    """``n`` normals (a multiple of ``per_call``, itself a multiple of the block: :data:`LANES`
    for float64, :data:`LANE_BLOCK32` for float32; by default 1000 and 1008, about one W1
    row-step) drawn by :func:`lane_normals` or :func:`lane_normals32` ``per_call`` at a time
    from one row state — for tests."""
    block = LANES if dtype == "float64" else LANE_BLOCK32
    per_call = per_call or -(-1000 // block) * block
    if per_call % block or n % per_call:
        raise ValueError(f"n={n}, per_call={per_call}: per_call must be a multiple of {block} "
                         "and n a multiple of per_call")
    if dtype == "float64":
        out = np.empty(n)
        _fill_lane_normals(state, out, per_call)
    else:
        out = np.empty(n, np.float32)
        _fill_lane_normals32(state, out, per_call)
    return out
