"""Compiled loops of the fast path, generated around the methods' own update functions.

The method's math is not re-typed here: the loops call ``method.query`` and ``method.update``
from :mod:`simulate.methods` — the very functions the NumPy reference applies to whole arrays —
compiled by ``numba.njit`` and applied to scalars. What is generated is only the plumbing that
depends on the method's arity: loading the state's coordinates, passing the hyperparameters,
storing the results.

Loops (``nogil``, ``fastmath=False``, over a range of (configuration × replicate) rows
``row0 … row1 − 1``; :mod:`simulate.fast._parallel` splits the rows over threads):

* ``separable``: problems whose gradient coordinate i depends on coordinate i only (diagonal
  quadratic, unrotated PL-sin); per row and step the step's normals are drawn from the row's
  stream into a buffer, then one pass updates every coordinate.
* ``elementwise``: one step of a coupled problem after BLAS has formed the gradient: noise,
  update and the next step's query point, in one pass.
* ``quadratic_noise``: the stochastic gradient of a quadratic before a dense transform of it
  (``precond_matrix``): ∇f(q) (diagonal A: λ ⊙ (q − w*); else BLAS has formed it) plus the
  oracle's noise from the row's stream.
* ``finite_sum_ls``: minibatch steps on least squares: B uniform row indices from the row's
  stream, residuals, the averaged component gradient, update.
* ``measure_*``: per-row f − f*, ‖w − w*‖², ‖∇f(w)‖² and finiteness in one pass.

Compilation: each loop's source is written once to a file named by the SHA-256 of everything it
depends on (the generated text, the sources of the method functions it calls, this module and
:mod:`simulate.fast._random`, the numba version) in the kernel cache directory
(``$SIMULATE_KERNEL_CACHE``, default ``~/.cache/convergence-lab/kernels``), imported, and
compiled with ``cache=True``: a later process loads the machine code instead of compiling
again (a few seconds per loop). Any change to a dependency changes the file name, so a stale
cache is never used. When the directory is not writable, the loops are compiled in memory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import math
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np

from ..methods import Method
from ._random import next_u64

__all__ = [
    "GRAD_KINDS",
    "elementwise_kernel",
    "finite_sum_ls_kernel",
    "jitted",
    "measure_kernel",
    "quadratic_noise_kernel",
    "separable_kernel",
]

CACHE_ENV = "SIMULATE_KERNEL_CACHE"


# --------------------------------------------------------------------------- gradient coordinates
@numba.njit
def quadratic_grad_coord(q, lam, w_star, scale):  # noqa: ANN001, ANN201
    """∂f/∂w_i of the diagonal quadratic: λ_i (q_i − w*_i) (QuadraticProblem.grad with Q = I)."""
    return lam * (q - w_star)


@numba.njit
def pl_sin_grad_coord(q, lam, w_star, scale):  # noqa: ANN001, ANN201
    """∂f/∂w_i of the unrotated PL-sin sum: c (2x + 3 sin 2x), x = q_i − w*_i (PLSinProblem)."""
    x = q - w_star
    return scale * (2.0 * x + 3.0 * math.sin(2.0 * x))


@numba.njit
def quadratic_measure_coord(w, lam, w_star, mask, scale):  # noqa: ANN001, ANN201
    """(f − f*, ‖·‖², ‖∇f‖²) contributions of coordinate i: ½λx², m·x², (λx)², x = w − w*."""
    x = w - w_star
    g = lam * x
    return 0.5 * (lam * x * x), mask * x * x, g * g


@numba.njit
def pl_sin_measure_coord(w, lam, w_star, mask, scale):  # noqa: ANN001, ANN201
    """(f, x², ∂f²) of coordinate i of the PL-sin sum: c(x² + 3 sin² x), x², (c(2x + 3 sin 2x))²."""
    x = w - w_star
    s = math.sin(x)
    g = scale * (2.0 * x + 3.0 * math.sin(2.0 * x))
    return scale * (x * x + 3.0 * s * s), x * x, g * g


@numba.njit
def dot4(a, b):  # noqa: ANN001, ANN201
    """Σ_j a_j b_j with four interleaved partial sums (j mod 4), added as (s0 + s1) + (s2 + s3).

    Four independent chains let the loop run at the multiply-add throughput instead of its
    latency (a strictly sequential float sum cannot be reordered without fastmath).
    """
    n = a.shape[0]
    s0 = s1 = s2 = s3 = a.dtype.type(0.0)
    m = n - n % 4
    for j in range(0, m, 4):
        s0 += a[j] * b[j]
        s1 += a[j + 1] * b[j + 1]
        s2 += a[j + 2] * b[j + 2]
        s3 += a[j + 3] * b[j + 3]
    for j in range(m, n):
        s0 += a[j] * b[j]
    return (s0 + s1) + (s2 + s3)


@numba.njit
def bounded_index(n, s0, s1, s2, s3):  # noqa: ANN001, ANN201
    """A uniform integer in {0, …, n − 1}, n < 2^32: Lemire's (2019) exact rejection method."""
    while True:
        r, s0, s1, s2, s3 = next_u64(s0, s1, s2, s3)
        m = (r >> np.uint64(32)) * np.uint64(n)
        low = m & np.uint64(0xFFFFFFFF)
        if low >= np.uint64(n) or low >= (np.uint64(0x100000000) - np.uint64(n)) % np.uint64(n):
            return np.int64(m >> np.uint64(32)), s0, s1, s2, s3


GRAD_KINDS: dict[str, str] = {"quadratic": "quadratic_grad_coord", "pl_sin": "pl_sin_grad_coord"}
MEASURE_KINDS: dict[str, str] = {"quadratic": "quadratic_measure_coord",
                                 "pl_sin": "pl_sin_measure_coord"}

_CACHE: dict[tuple[Any, ...], Callable[..., Any]] = {}
_JITTED: dict[Callable[..., Any], Callable[..., Any]] = {}
_LOCK = threading.RLock()


def jitted(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``numba.njit(fn)``, one dispatcher per Python function (LLVM inlines it into the loop)."""
    with _LOCK:
        out = _JITTED.get(fn)
        if out is None:
            out = numba.njit(fn)
            _JITTED[fn] = out
        return out


# --------------------------------------------------------------------------- compilation
def _cache_dir() -> Path | None:
    root = os.environ.get(CACHE_ENV)
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "convergence-lab", "kernels")
    if root in ("", "0", "off", "none"):
        return None
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError:
        return None
    return path


def _importable(fn: Callable[..., Any]) -> bool:
    mod = sys.modules.get(getattr(fn, "__module__", "") or "")
    return mod is not None and getattr(mod, fn.__qualname__, None) is fn


def _source_of(fn: Callable[..., Any]) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return repr(fn)


_OWN_SOURCES = "".join(Path(m.__file__).read_text() for m in (
    sys.modules[__name__], sys.modules["simulate.fast._random"]))


def _build(name: str, body: str, funcs: dict[str, Callable[..., Any]]) -> Callable[..., Any]:
    """Compile the loop ``body`` (source of ``def kernel``), calling ``funcs`` by name.

    ``funcs`` maps a local name to a plain Python function (a method's query/update; compiled
    here with :func:`jitted`) — on disk the generated module imports it by module and name.
    """
    header = (
        "# generated by simulate.fast._kernels; the file name is the hash of its inputs\n"
        "import math\n\nimport numba\nimport numpy as np\n\n"
        "from simulate.fast._kernels import (bounded_index, dot4, jitted, pl_sin_grad_coord,\n"
        "    pl_sin_measure_coord, quadratic_grad_coord, quadratic_measure_coord)\n"
        "from simulate.fast._random import (LANE_BLOCK32, LANES, lane_normals, lane_normals32,\n"
        "    next_u64, normal64)\n"
    )
    imports = "".join(f"from {fn.__module__} import {fn.__qualname__} as _{local}_py\n"
                      for local, fn in funcs.items())
    binds = "".join(f"{local} = jitted(_{local}_py)\n" for local, fn in funcs.items())
    cache_dir = _cache_dir() if all(_importable(f) for f in funcs.values()) else None
    if cache_dir is None:
        glb: dict[str, Any] = {}
        exec(compile(header, f"<simulate.fast:{name}>", "exec"), glb)  # noqa: S102
        glb.update({local: jitted(fn) for local, fn in funcs.items()})
        exec(compile(body, f"<simulate.fast:{name}>", "exec"), glb)  # noqa: S102
        return numba.njit(nogil=True, fastmath=False)(glb["kernel"])
    text = (header + imports + "\n" + binds + "\n\n"
            + "@numba.njit(nogil=True, fastmath=False, cache=True)\n" + body)
    digest = hashlib.sha256("\0".join(
        [text, numba.__version__, np.__version__, _OWN_SOURCES]
        + [_source_of(f) for f in funcs.values()]).encode()).hexdigest()[:24]
    path = cache_dir / f"k_{name}_{digest}.py"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    mod_name = f"simulate_fast_kernels_{path.stem}"
    mod = sys.modules.get(mod_name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(mod_name, path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[mod_name] = mod
    return mod.kernel


def _cached(key: tuple[Any, ...], make: Callable[[], Callable[..., Any]]) -> Callable[..., Any]:
    with _LOCK:
        fn = _CACHE.get(key)
        if fn is None:
            fn = make()
            _CACHE[key] = fn
        return fn


# --------------------------------------------------------------------------- source pieces
def _names(method: Method) -> tuple[list[str], list[str]]:
    return ([f"S{i}" for i in range(len(method.state_names))],
            [f"H{i}" for i in range(len(method.hyper_names))])


def _hyper_exprs(method: Method, per_coord: tuple[bool, ...]) -> list[str]:
    _, H = _names(method)
    return [f"{h}[c, j]" if pc else f"h{i}"
            for i, (h, pc) in enumerate(zip(H, per_coord, strict=True))]


def _hoist_hypers(method: Method, per_coord: tuple[bool, ...], indent: str) -> str:
    _, H = _names(method)
    return "".join(f"{indent}h{i} = {h}[c, 0]\n"
                   for i, (h, pc) in enumerate(zip(H, per_coord, strict=True)) if not pc)


def _normal_buffers(dtype: str, indent: str) -> str:
    """Source allocating the row-of-normals buffer ``zb`` (of the run's dtype, d rounded up to
    a whole number of lane blocks) and the scratch ``zc``, ``zf`` of
    :func:`~simulate.fast._random.lane_normals` (float64) or
    :func:`~simulate.fast._random.lane_normals32` (float32)."""
    block, codes = ("LANES", "np.int64") if dtype == "float64" else ("LANE_BLOCK32", "np.int32")
    return (f"{indent}nl = -(-d // {block}) * {block}\n"
            f"{indent}zb = np.zeros(nl, np.{dtype})\n"
            f"{indent}zc = np.zeros(nl, {codes})\n"
            f"{indent}zf = np.zeros(nl // {block}, np.int64)\n")


def _fill_normals(dtype: str, indent: str) -> str:
    """Source drawing the row's normals into zb: float64 by
    :func:`~simulate.fast._random.lane_normals` (coordinate j from lane j mod 8), float32 by
    :func:`~simulate.fast._random.lane_normals32` (two per lane word)."""
    fill = "lane_normals" if dtype == "float64" else "lane_normals32"
    return f"{indent}{fill}(rng[row], zb, zc, zf)\n"


def _load_rng(indent: str) -> str:
    return "".join(f"{indent}s{i} = rng[row, {i}]\n" for i in range(4))


def _store_rng(indent: str) -> str:
    return "".join(f"{indent}rng[row, {i}] = s{i}\n" for i in range(4))


def _update_lines(method: Method, per_coord: tuple[bool, ...], gexpr: str) -> list[str]:
    S, _ = _names(method)
    xs = [f"x{i}" for i in range(len(S))]
    hs = _hyper_exprs(method, per_coord)
    lines = [f"{x} = {s}[row, j]" for x, s in zip(xs, S, strict=True)]
    lines.append(f"g = {gexpr}")
    lines.append(f"r = update({', '.join(xs)}, g, t, a{''.join(', ' + h for h in hs)})")
    lines += [f"{s}[row, j] = r[{i}]" for i, s in enumerate(S)]
    return lines


def _indent(lines: list[str], indent: str) -> str:
    return "".join(f"{indent}{ln}\n" for ln in lines)


def _query_expr(method: Method, per_coord: tuple[bool, ...], xs: list[str]) -> str:
    return f"query({', '.join(xs + _hyper_exprs(method, per_coord))})"


# --------------------------------------------------------------------------- loops
def separable_kernel(method: Method, grad_kind: str, per_coord: tuple[bool, ...],
                     dtype: str) -> Callable[..., Any]:
    """The compiled multi-step loop for a separable problem.

    Signature: ``kernel(S0.., H0.., alphas, lam, w_star, nsc, coef, scale, rng, t0, R, mask,
    mout, mfin, measure_after, snap, snap_r, row0, row1)`` — state arrays (rows, d) updated in
    place;
    hyperparameters (C, 1) or (C, d); ``alphas`` (steps, C) the step sizes α_t, t = t0 …;
    ``lam``, ``w_star``, ``nsc`` (d,) the problem's data and the noise shape (1 for isotropic
    noise, √λ for curvature-aligned); ``coef`` (C,) the noise coefficient; ``rng``
    (rows, ROW_WORDS) the rows' generator states (advanced in place); R replicates per
    configuration.

    Per step, row and coordinate: q = query(state), g = grad(q) + coef·(nsc·z), state =
    update(state, g, t, α_t) — the reference's ``problem.grad(q) + coef * z`` on scalars.

    ``measure_after`` (int64, increasing, in 1 … steps): after its step k + 1 = measure_after[i]
    each row is measured while it is still in cache, exactly as :func:`measure_kernel` does
    (same arithmetic, same order): ``mout[i]`` (3, rows) float64 gets f − f*, ‖w − w*‖² (on
    range(A), weights ``mask``) and ‖∇f‖², ``mfin[i]`` (rows,) finiteness. One call can thus
    cover several record and divergence-check steps. With ``snap_r`` > 0, the first ``snap_r``
    replicates of each configuration c also copy their first state array (the iterate) into
    ``snap[i, c·snap_r + r]`` at those steps — the sample the runner re-evaluates in a wider
    type.
    """
    def make() -> Callable[..., Any]:
        S, H = _names(method)
        xs = [f"x{i}" for i in range(len(S))]
        grad = f"{GRAD_KINDS[grad_kind]}(q, lam[j], w_star[j], scale)"
        pre = ["q = " + _query_expr(method, per_coord, xs)]

        def step(gexpr: str, indent: str) -> str:
            lines = _update_lines(method, per_coord, gexpr)
            return _indent(lines[:len(S)] + pre + lines[len(S):], indent)

        body = (
            f"def kernel({', '.join(S + H)}, alphas, lam, w_star, nsc, coef, scale, rng, t0, R,"
            " mask, mout, mfin, measure_after, snap, snap_r, row0, row1):\n"
            "    d = S0.shape[1]\n"
            "    nsteps = alphas.shape[0]\n"
            + _normal_buffers(dtype, "    ")
            + "    for row in range(row0, row1):\n"
            "        c = row // R\n"
            "        co = coef[c]\n"
            + _hoist_hypers(method, per_coord, "        ")
            + "        m_i = 0\n"
            "        for k in range(nsteps):\n"
            "            t = t0 + k\n"
            "            a = alphas[k, c]\n"
            "            if co != 0.0:\n"
            + _fill_normals(dtype, "                ")
            + "            for j in range(d):\n"
            + step(f"{grad} + co * (nsc[j] * zb[j])", "                ")
            + "            if m_i < measure_after.shape[0] and measure_after[m_i] == k + 1:\n"
            + _measure_row(grad_kind, "S0", "                ", at="m_i, ")
            + "                if row - c * R < snap_r:\n"
            "                    for j in range(d):\n"
            "                        snap[m_i, c * snap_r + row - c * R, j] = S0[row, j]\n"
            "                m_i += 1\n"
        )
        return _build("separable", body, {"query": method.query, "update": method.update})

    return _cached(("separable", method.query, method.update, grad_kind, per_coord, dtype), make)


def elementwise_kernel(method: Method, per_coord: tuple[bool, ...],
                       dtype: str) -> Callable[..., Any]:
    """One step after BLAS formed G = (q − w*)·A, and the next step's E = query − w*.

    Signature: ``kernel(S0.., H0.., G, E, w_star, coef, alpha_c, rng, t, R, row0, row1)``:
    g = G + coef·z, state ← update(state, g, t, α_t), then E ← query(new state) − w*.
    ``alpha_c`` (C,) is α_t per configuration.
    """
    def make() -> Callable[..., Any]:
        S, H = _names(method)
        rs = [f"r[{i}]" for i in range(len(S))]
        body = (
            f"def kernel({', '.join(S + H)}, G, E, w_star, coef, alpha_c, rng, t, R, row0,"
            " row1):\n"
            "    d = S0.shape[1]\n"
            + _normal_buffers(dtype, "    ")
            + "    for row in range(row0, row1):\n"
            "        c = row // R\n"
            "        co = coef[c]\n"
            "        a = alpha_c[c]\n"
            + _hoist_hypers(method, per_coord, "        ")
            + "        if co != 0.0:\n"
            + _fill_normals(dtype, "            ")
            + "        for j in range(d):\n"
            + _indent(_update_lines(method, per_coord, "G[row, j] + co * zb[j]")
                      + [f"E[row, j] = {_query_expr(method, per_coord, rs)} - w_star[j]"],
                      "            ")
        )
        return _build("elementwise", body, {"query": method.query, "update": method.update})

    return _cached(("elementwise", method.query, method.update, per_coord, dtype), make)


def quadratic_noise_kernel(diagonal: bool, dtype: str) -> Callable[..., Any]:
    """The oracle's stochastic gradient of a quadratic, g = ∇f(q) + coef·(nsc ⊙ z), in place.

    For methods whose gradient goes through a dense ``grad_transform`` (``precond_matrix``):
    the noise must be in g *before* the transform, so it cannot be added by the elementwise
    loop that applies the update afterwards.

    Signature: ``kernel(G, E, lam, nsc, coef, rng, R, row0, row1)``; ``E`` (rows, d) holds
    q − w*. With ``diagonal``, first G ← λ ⊙ E (``QuadraticProblem.grad`` with Q = I);
    otherwise ``G`` already holds the BLAS product E·A. Then, for rows whose configuration
    has ``coef[c] ≠ 0``, d normals are drawn from the row's stream exactly as the other loops
    draw them (:func:`~simulate.fast._random.lane_normals`, coordinate j from lane j mod 8)
    and G ← G + coef·(nsc ⊙ z): the reference's
    ``problem.grad(q) + coef * z`` (isotropic, nsc = 1) or ``+ coef * (√λ ⊙ z)``
    (curvature-aligned on a diagonal A).
    """
    def make() -> Callable[..., Any]:
        grad = ["        for j in range(d):\n",
                "            G[row, j] = lam[j] * E[row, j]\n"] if diagonal else []
        body = (
            "def kernel(G, E, lam, nsc, coef, rng, R, row0, row1):\n"
            "    d = G.shape[1]\n"
            + _normal_buffers(dtype, "    ")
            + "    for row in range(row0, row1):\n"
            "        c = row // R\n"
            "        co = coef[c]\n"
            + "".join(grad)
            + "        if co != 0.0:\n"
            + _fill_normals(dtype, "            ")
            + "            for j in range(d):\n"
            "                G[row, j] = G[row, j] + co * (nsc[j] * zb[j])\n"
        )
        return _build("quadratic_noise", body, {})

    return _cached(("quadratic_noise", diagonal, dtype), make)


def finite_sum_ls_kernel(method: Method, per_coord: tuple[bool, ...],
                         dtype: str) -> Callable[..., Any]:
    """Minibatch steps (B indices uniform with replacement) on least squares.

    Signature: ``kernel(S0.., H0.., alphas, A, b, B, rng, t0, R, row0, row1)``. Per step and
    row: q = query(state); B indices i_b from the row's stream; c_b = a_{i_b}ᵀq − b_{i_b};
    g = (Σ_b c_b a_{i_b})·(1/B) as in ``FiniteSumLeastSquares.component_grad_mean``; update.
    """
    def make() -> Callable[..., Any]:
        S, H = _names(method)
        xs = [f"x{i}" for i in range(len(S))]
        load = [f"{x} = {s}[row, j]" for x, s in zip(xs, S, strict=True)]
        body = (
            f"def kernel({', '.join(S + H)}, alphas, A, b, B, rng, t0, R, row0, row1):\n"
            "    d = S0.shape[1]\n"
            "    n = A.shape[0]\n"
            "    nsteps = alphas.shape[0]\n"
            "    inv_b = A.dtype.type(1.0) / A.dtype.type(B)\n"
            f"    qb = np.empty(d, np.{dtype})\n"
            f"    gb = np.empty(d, np.{dtype})\n"
            "    idx = np.empty(B, np.int64)\n"
            "    for row in range(row0, row1):\n"
            "        c = row // R\n"
            + _load_rng("        ") + _hoist_hypers(method, per_coord, "        ")
            + "        for k in range(nsteps):\n"
            "            t = t0 + k\n"
            "            a = alphas[k, c]\n"
            "            for j in range(d):\n"
            + _indent(load + [f"qb[j] = {_query_expr(method, per_coord, xs)}"], " " * 16)
            + "            for i in range(B):\n"
            "                idx[i], s0, s1, s2, s3 = bounded_index(n, s0, s1, s2, s3)\n"
            "            gb[:] = 0.0\n"
            "            for i in range(B):\n"
            "                ai = A[idx[i]]\n"
            "                cb = dot4(ai, qb) - b[idx[i]]\n"
            "                for j in range(d):\n"
            "                    gb[j] += cb * ai[j]\n"
            "            for j in range(d):\n"
            + _indent(_update_lines(method, per_coord, "gb[j] * inv_b"), " " * 16)
            + _store_rng("        ")
        )
        return _build("finite_sum_ls", body, {"query": method.query, "update": method.update})

    return _cached(("finite_sum_ls", method.query, method.update, per_coord, dtype), make)


def _measure_row(kind: str, array: str, indent: str, at: str = "") -> str:
    """Source measuring row ``row`` of ``array`` into ``mout[at 0…2, row]``/``mfin[at row]``
    (float64 sums in coordinate order; ``at`` an index prefix such as ``"m_i, "``) — shared by
    :func:`measure_kernel` and the fused measure of :func:`separable_kernel`, so both give
    the same bits."""
    # names of their own: in the fused kernel they must not share a variable (and hence a
    # numba type) with the step loop's. Finiteness is OR-ed, not `and`-ed: the short-circuit
    # branch cost about 30 % of a float64 measure (1.67 against 1.16 ns per coordinate)
    return "".join(f"{indent}{ln}\n" for ln in [
        "m_f = 0.0", "m_e = 0.0", "m_g = 0.0", "m_bad = False",
        "for m_j in range(d):",
        f"    m_w = {array}[row, m_j]",
        "    m_bad |= not math.isfinite(m_w)",
        f"    m_a, m_b, m_c = {MEASURE_KINDS[kind]}(m_w, lam[m_j], w_star[m_j], mask[m_j],"
        " scale)",
        "    m_f += m_a", "    m_e += m_b", "    m_g += m_c",
        f"mout[{at}0, row] = m_f", f"mout[{at}1, row] = m_e", f"mout[{at}2, row] = m_g",
        f"mfin[{at}row] = not m_bad",
    ])


def measure_kernel(kind: str) -> Callable[..., Any]:
    """Per-row f − f*, ‖w − w*‖² (on range(A)), ‖∇f(w)‖² and finiteness of a separable problem.

    Signature: ``kernel(W, lam, w_star, mask, scale, mout, mfin, row0, row1)``; ``mout`` (3,
    rows) float64, ``mfin`` (rows,) bool. Sums run in float64 in coordinate order.
    """
    def make() -> Callable[..., Any]:
        body = (
            "def kernel(W, lam, w_star, mask, scale, mout, mfin, row0, row1):\n"
            "    d = W.shape[1]\n"
            "    for row in range(row0, row1):\n"
            + _measure_row(kind, "W", "        ")
        )
        return _build("measure", body, {})

    return _cached(("measure", kind), make)
