"""Engines of the fast path: per-configuration data, the rows' streams, and the kernels.

An engine holds what stays fixed between calls (hyperparameters as (C, 1) or (C, d) arrays, the
base step sizes, the noise coefficients, the problem's per-coordinate data) and the rows'
generator states; ``advance`` runs a compiled loop over steps t0 … t1 − 1 and ``subset`` keeps
the configurations still alive (their generator states carried over, not reseeded).

Methods with a dense ``grad_transform`` (``precond_matrix``: g ↦ P g) run on
:class:`PrecondMatrixEngine`: per step the quadratic's gradient plus the oracle's noise, then
the method's own transform by BLAS, then the method's own update in the elementwise loop.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..methods import Method, get_method
from ..noise import (
    CurvatureAlignedNoise,
    ExactGradient,
    GradientOracle,
    IsotropicGaussianNoise,
    MinibatchSampling,
)
from ..problems.finite_sum import FiniteSumLeastSquares
from ..problems.pl_sin import PLSinProblem
from ..problems.quadratic import DenseQuadraticProblem, QuadraticProblem
from ..schedules import Schedule
from ._blas import single_threaded_blas
from ._kernels import (
    elementwise_kernel,
    finite_sum_ls_kernel,
    measure_kernel,
    quadratic_noise_kernel,
    separable_kernel,
)
from ._parallel import run_chunks, run_rows
from ._random import row_states

__all__ = [
    "DenseQuadraticEngine",
    "DiagonalPrecondMatrixEngine",
    "FiniteSumEngine",
    "PrecondMatrixEngine",
    "RotatedPrecondMatrixEngine",
    "SeparableEngine",
    "select_engine",
]

_EXACT = (ExactGradient, GradientOracle)
#: replicates per BLAS product in the dense engine (see DenseQuadraticEngine._blocks)
DENSE_BLOCK = 16
#: the dense engines run their steps on several threads only from this dimension on. Each
#: step costs every thread some Python (a BLAS call per block, a kernel call), and below it
#: the threads mostly wait for each other's turn with the GIL: heavy-ball SGD, 64 or 256
#: rows, measured 2 threads / 1 thread: d = 8: 0.86 / 0.26 s, 32: 1.10 / 0.42, 64: 1.29 /
#: 0.74, 128: 1.10 / 0.81, 192: 1.04 / 1.26, 256 (W2): 0.46 / 0.62. The rows' numbers do
#: not depend on the thread count.
DENSE_THREADS_MIN_DIM = 192


def _dense_threads(single_blas: bool, d: int) -> int | None:
    """``run_chunks``' thread count for a dense engine: all (None) where BLAS can be held to
    one thread and d ≥ :data:`DENSE_THREADS_MIN_DIM`, else 1."""
    return None if single_blas and d >= DENSE_THREADS_MIN_DIM else 1


def _noise_variance(oracle: Any, n_cfg: int) -> np.ndarray | None:
    """σ²/B per configuration (zeros for exact gradients); None for other oracles."""
    if type(oracle) in _EXACT:
        return np.zeros(n_cfg)
    if type(oracle) in (IsotropicGaussianNoise, CurvatureAlignedNoise):
        v = np.asarray(oracle._variance_over_B(), dtype=np.float64)
        if v.ndim == 1 and v.size != n_cfg:
            return None  # the reference raises its own error on the mismatch
        return np.broadcast_to(v, (n_cfg,)).copy()
    return None


def _coefficient(var: np.ndarray, denom: float, dtype: np.dtype) -> np.ndarray:
    """sqrt(σ²/(B·denom)) per configuration, as the reference oracle computes it."""
    return np.asarray([math.sqrt(v / denom) for v in var], dtype=np.float64).astype(dtype)


class _Engine:
    """Shared bookkeeping: hyperparameters, base step sizes, schedule, rows' streams."""

    def __init__(self, method: Method, schedule: Schedule, alpha: Any, hypers: Any,
                 rng: np.ndarray, replicates: int) -> None:
        self.method = method
        self.schedule = schedule
        self.dtype = np.dtype(alpha.dtype)
        self.alpha = np.ascontiguousarray(np.asarray(alpha).reshape(-1))
        self.hypers = [np.ascontiguousarray(np.asarray(h).reshape(h.shape[0], h.shape[-1]))
                       for h in hypers]
        self.per_coord = tuple(h.shape[1] > 1 for h in self.hypers)
        self.rng = rng
        self.replicates = replicates

    @property
    def n_configs(self) -> int:
        return self.alpha.size

    def alphas(self, t0: int, t1: int) -> np.ndarray:
        """α_t for t = t0 … t1 − 1, shape (t1 − t0, C), evaluated by the Schedule itself."""
        if self.schedule.kind == "constant":
            return np.ascontiguousarray(np.broadcast_to(self.alpha, (t1 - t0, self.n_configs)))
        out = np.empty((t1 - t0, self.n_configs), dtype=self.dtype)
        for k, t in enumerate(range(t0, t1)):
            out[k] = self.schedule.alpha(t, self.alpha)
        return out

    def _rows(self, keep: np.ndarray) -> np.ndarray:
        R = self.replicates
        return (keep[:, None] * R + np.arange(R)[None, :]).ravel()

    def subset(self, keep: Any) -> _Engine:
        """The engine restricted to configurations ``keep`` (streams carried over)."""
        keep = np.asarray(keep, dtype=np.int64)
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.alpha = np.ascontiguousarray(self.alpha[keep])
        other.hypers = [np.ascontiguousarray(h[keep]) for h in self.hypers]
        other.rng = np.ascontiguousarray(self.rng[self._rows(keep)])
        other._measured = None
        for name in self._per_config:
            setattr(other, name, np.ascontiguousarray(getattr(self, name)[keep]))
        return other

    _per_config: tuple[str, ...] = ()

    def _flat(self, state: tuple[Any, ...]) -> tuple[list[np.ndarray], tuple[Any, ...]]:
        """(rows × d views the kernel updates in place, the state they belong to).

        State arrays that are not C-contiguous (the runner's initial point may not be) are
        copied once; the returned state then holds the copies.
        """
        state = tuple(np.ascontiguousarray(s, dtype=self.dtype) for s in state)
        return [s.reshape(-1, s.shape[-1]) for s in state], state


class _MeasuresAt:
    """For engines whose ``advance`` measures every row at several steps of one call
    (``measure_at``): the steps' checks, the results' store, :meth:`measured_at`."""

    #: ``advance(..., measure_at=steps)`` measures every row at several steps of one call
    measures_at = True
    _measured_at: dict[int, dict[str, np.ndarray]] = {}  # noqa: RUF012  (replaced per call)

    @staticmethod
    def _measure_steps(t0: int, t1: int, measure_at: Any, also: tuple[int, ...] = ()) -> list[int]:
        """The sorted steps to measure at; each must lie in (t0, t1]."""
        steps = sorted({int(t) for t in (() if measure_at is None else measure_at)}
                       | {int(t) for t in also})
        if steps and not (t0 < steps[0] and steps[-1] <= t1):
            raise ValueError(f"measure_at={steps}: allowed steps in ({t0}, {t1}]")
        return steps

    def _store_measured(self, steps: list[int], rows: list[dict[str, np.ndarray]],
                        snap: np.ndarray, C: int, d: int) -> None:
        """Keep each step's measured rows, with its ``w_sample`` (C, snap_r, d) if any."""
        snap_r = snap.shape[1] // C if C else 0
        self._measured_at = dict(zip(steps, rows, strict=True))
        if snap_r:
            for i, t in enumerate(steps):
                self._measured_at[t]["w_sample"] = snap[i].reshape(C, snap_r, d)

    def measured_at(self, t: int) -> dict[str, np.ndarray] | None:
        """The rows measured at step ``t`` by the last :meth:`advance` (``measure_at``), as
        :meth:`measure` returns them; None if that call did not measure at ``t``."""
        return self._measured_at.get(int(t))


class SeparableEngine(_MeasuresAt, _Engine):
    """Problems with ∂f/∂w_i a function of w_i alone; noise drawn inside the loop."""

    _per_config = ("coef",)

    def __init__(self, grad_kind: str, lam: np.ndarray, w_star: np.ndarray, nsc: np.ndarray,
                 coef: np.ndarray, scale: float, mask: np.ndarray, **kw: Any) -> None:
        super().__init__(**kw)
        dt = self.dtype
        self.grad_kind = grad_kind
        self.lam = np.ascontiguousarray(lam, dtype=dt)
        self.w_star = np.ascontiguousarray(w_star, dtype=dt)
        self.nsc = np.ascontiguousarray(nsc, dtype=dt)
        self.coef = np.ascontiguousarray(coef, dtype=dt)
        self.scale = dt.type(scale)
        self.mask = np.ascontiguousarray(mask, dtype=dt)
        self.kernel = separable_kernel(self.method, grad_kind, self.per_coord, dt.name)
        self.measure_kernel = measure_kernel(grad_kind)

    #: ``advance(..., measure=True)`` measures each row in the same pass (see :meth:`advance`)
    fused_measure = True
    _measured: tuple[Any, dict[str, np.ndarray]] | None = None

    def advance(self, state: tuple[Any, ...], t0: int, t1: int, *, measure: bool = False,
                measure_at: Any = None, sample: int = 0) -> tuple[Any, ...]:
        """Steps t0 … t1 − 1 on every row, in place; returns the state.

        With ``measure``, each row is measured right after its last step, while still in
        cache; the next :meth:`measure` of the returned state returns those values (the same
        bits as a separate pass) instead of reading the state again. ``measure_at`` (steps in
        (t0, t1]) measures every row after each of those steps as well, in the same pass;
        :meth:`measured_at` returns them — so one call can run through several record and
        divergence-check steps, the rows' numbers unchanged. With ``sample`` > 0 they include
        ``w_sample`` (C, min(sample, R), d): the first replicates' iterates at that step.
        """
        self._measured = None
        self._measured_at = {}
        if t1 <= t0:
            return state
        steps = self._measure_steps(t0, t1, measure_at, (t1,) if measure else ())
        flat, state = self._flat(state)
        rows = flat[0].shape[0]
        mout = np.empty((len(steps), 3, rows))
        mfin = np.empty((len(steps), rows), dtype=np.bool_)
        after = np.asarray([t - t0 for t in steps], dtype=np.int64)
        C, R, d = state[0].shape
        snap_r = min(int(sample), R) if steps else 0
        snap = np.empty((len(steps), C * snap_r, d), dtype=self.dtype)
        run_rows(self.kernel, (*flat, *self.hypers, self.alphas(t0, t1), self.lam, self.w_star,
                               self.nsc, self.coef, self.scale, self.rng, t0, self.replicates,
                               self.mask, mout, mfin, after, snap, snap_r), rows)
        self._store_measured(steps, [self._measures(state[0], mout[i], mfin[i])
                                     for i in range(len(steps))], snap, C, d)
        if measure:
            self._measured = (state[0], self._measured_at[int(t1)])
        return state

    def measure(self, state: tuple[Any, ...]) -> dict[str, np.ndarray]:
        """Per (configuration, replicate): f − f*, dist2, ‖∇f(w)‖² (dtype of the state) and,
        per configuration, whether every coordinate of every replicate is finite."""
        if self._measured is not None and self._measured[0] is state[0]:
            return self._measured[1]
        w = np.ascontiguousarray(state[0])
        C, R, d = w.shape
        flat = w.reshape(-1, d)
        out = np.empty((3, C * R))
        finite = np.empty(C * R, dtype=np.bool_)
        run_rows(self.measure_kernel, (flat, self.lam, self.w_star, self.mask, self.scale, out,
                                       finite), C * R)
        return self._measures(w, out, finite)

    @staticmethod
    def _measures(w: np.ndarray, out: np.ndarray, finite: np.ndarray) -> dict[str, np.ndarray]:
        C, R, _ = w.shape
        vals = out.astype(w.dtype).reshape(3, C, R)
        return {"f_gap": vals[0], "dist2": vals[1], "grad_norm2": vals[2],
                "finite": finite.reshape(C, R).all(axis=1)}


class DenseQuadraticEngine(_MeasuresAt, _Engine):
    """Rotated quadratic: per step G = (q − w*)·A by BLAS, then one fused pass (noise, update,
    next query point)."""

    _per_config = ("coef",)

    def __init__(self, hessian: np.ndarray, w_star: np.ndarray, coef: np.ndarray,
                 rotation: np.ndarray, lam: np.ndarray, mask: np.ndarray, **kw: Any) -> None:
        super().__init__(**kw)
        dt = self.dtype
        self.A = np.ascontiguousarray(hessian, dtype=dt)  # symmetric: (q − w*) @ A = A(q − w*)
        self.Q = np.ascontiguousarray(rotation, dtype=dt)
        self.lam = np.ascontiguousarray(lam, dtype=dt)
        self.mask = np.ascontiguousarray(mask, dtype=dt)
        self.w_star = np.ascontiguousarray(w_star, dtype=dt)
        self.coef = np.ascontiguousarray(coef, dtype=dt)
        self.kernel = elementwise_kernel(self.method, self.per_coord, dt.name)

    def _blocks(self, n_cfg: int) -> list[tuple[int, int]]:
        """Row blocks of at most DENSE_BLOCK replicates of one configuration.

        BLAS may round a row's product differently depending on the shape of the matrix it
        sits in; blocks defined by (configuration, replicate) alone give every row the same
        product whatever the number of threads or the other configurations of the batch.
        """
        R, out = self.replicates, []
        for c in range(n_cfg):
            out += [(c * R + b, c * R + min(b + DENSE_BLOCK, R)) for b in range(0, R, DENSE_BLOCK)]
        return out

    def advance(self, state: tuple[Any, ...], t0: int, t1: int, *, measure_at: Any = None,
                sample: int = 0) -> tuple[Any, ...]:
        """Steps t0 … t1 − 1 on every row, in place; returns the state.

        Rows are independent, so each thread takes a contiguous run of row blocks through all
        the steps: per step one BLAS product per block (BLAS single-threaded meanwhile) and one
        fused pass over its rows — no synchronisation between steps. ``measure_at`` (steps in
        (t0, t1]): after each, the thread measures its blocks as :meth:`measure` does (the
        same products, so the same bits), for :meth:`measured_at`; with ``sample`` > 0 it also
        keeps the first replicates' iterates (``w_sample``), as the separable engine does.
        """
        self._measured_at = {}
        if t1 <= t0:
            return state
        steps = self._measure_steps(t0, t1, measure_at)
        flat, state = self._flat(state)
        C, R, d = state[0].shape
        slot = {t - t0: i for i, t in enumerate(steps)}  # local step k + 1 → measure index
        mout = np.empty((len(steps), 3, C * R), dtype=self.dtype)
        mfin = np.empty((len(steps), C * R), dtype=np.bool_)
        snap_r = min(int(sample), R) if steps else 0
        snap = np.empty((len(steps), C * snap_r, d), dtype=self.dtype)
        hyp3 = [h[:, None, :] for h in self.hypers]
        e = self.method.query(*state, *hyp3) - self.w_star
        e = np.ascontiguousarray(e.reshape(flat[0].shape))
        g = np.empty_like(e)
        alphas = self.alphas(t0, t1)
        A, kernel, fixed = self.A, self.kernel, (self.w_star, self.coef)
        blocks = self._blocks(self.n_configs)
        w_rows = flat[0]

        def chunk(b0: int, b1: int) -> None:
            mine = blocks[b0:b1]
            r0, r1 = mine[0][0], mine[-1][1]
            for k, t in enumerate(range(t0, t1)):
                # a configuration that diverged earlier in this call runs on (non-finite)
                # until the runner drops it at the step where it diverged: no warnings
                with np.errstate(all="ignore"):
                    for q0, q1 in mine:
                        np.matmul(e[q0:q1], A, out=g[q0:q1])
                kernel(*flat, *self.hypers, g, e, *fixed, alphas[k], self.rng, t,
                       self.replicates, r0, r1)
                i = slot.get(k + 1)
                if i is not None:
                    self._measure_blocks(w_rows, mine, mout[i], mfin[i])
                    for q0, q1 in mine:
                        c = q0 // R
                        for row in range(q0, min(q1, c * R + snap_r)):
                            snap[i, c * snap_r + row - c * R] = w_rows[row]

        with single_threaded_blas() as single:
            run_chunks(chunk, len(blocks), _dense_threads(single, d))
        measured = []
        for i in range(len(steps)):
            vals = mout[i].reshape(3, C, R)
            measured.append({"f_gap": vals[0], "dist2": vals[1], "grad_norm2": vals[2],
                             "finite": mfin[i].reshape(C, R).all(axis=1)})
        self._store_measured(steps, measured, snap, C, d)
        return state

    def _measure_blocks(self, flat: np.ndarray, blocks: list[tuple[int, int]],
                        out: np.ndarray, finite: np.ndarray) -> None:
        """f − f*, dist2, ‖∇f‖² (into ``out[:, rows]``) and finiteness of the rows' blocks."""
        for q0, q1 in blocks:
            with np.errstate(all="ignore"):  # per thread: non-finite rows give NaN
                x = (flat[q0:q1] - self.w_star) @ self.Q
                lx = self.lam * x
                out[0, q0:q1] = 0.5 * (lx * x).sum(axis=-1)
                out[1, q0:q1] = (self.mask * x * x).sum(axis=-1)
                out[2, q0:q1] = (lx * lx).sum(axis=-1)
            finite[q0:q1] = np.isfinite(flat[q0:q1]).all(axis=1)

    def measure(self, state: tuple[Any, ...]) -> dict[str, np.ndarray]:
        """As :meth:`SeparableEngine.measure`, in the eigenbasis x = Qᵀ(w − w*): f − f* =
        ½Σλx², dist2 = Σ m·x², ‖∇f‖² = ‖Q(λ⊙x)‖² = Σ(λx)² (Q orthogonal); one BLAS product
        per row block, the blocks spread over the threads as in :meth:`advance`."""
        w = np.ascontiguousarray(state[0])
        C, R, d = w.shape
        flat = w.reshape(-1, d)
        out = np.empty((3, C * R), dtype=w.dtype)
        finite = np.empty(C * R, dtype=np.bool_)
        blocks = self._blocks(C)

        def chunk(b0: int, b1: int) -> None:
            self._measure_blocks(flat, blocks[b0:b1], out, finite)

        with single_threaded_blas() as single:
            run_chunks(chunk, len(blocks), _dense_threads(single, d))
        vals = out.reshape(3, C, R)
        return {"f_gap": vals[0], "dist2": vals[1], "grad_norm2": vals[2],
                "finite": finite.reshape(C, R).all(axis=1)}


class PrecondMatrixEngine(_Engine):
    """A method with a dense ``grad_transform`` (``precond_matrix``) on a quadratic.

    Per step and block of at most :data:`DENSE_BLOCK` replicates of one configuration, in
    the reference's order (:func:`simulate.runner.run`):

    1. g = ∇f(q): the BLAS product (q − w*)·A (``DenseQuadraticProblem.grad``'s own form;
       equal to rounding to the rotated ``QuadraticProblem``'s Q(λ ⊙ Qᵀ(q − w*))), or
       λ ⊙ (q − w*) for a diagonal A;
    2. g ← g + coef·(nsc ⊙ z), the oracle's noise, z from the row's stream
       (:func:`~simulate.fast._kernels.quadratic_noise_kernel`);
    3. g ← ``method.grad_transform(g, {"P": P_c}, np)`` — the method's own function, i.e.
       g Pᵀ (row form of P g) by BLAS with the block's configuration's P (adjacent blocks of
       one size and one P stacked into one call, see :meth:`_stacks`);
    4. state ← ``method.update(state, g, t, α_t)`` and the next q − w*, in the elementwise
       loop (:func:`~simulate.fast._kernels.elementwise_kernel`, its noise switched off).

    ``P`` is (C, d, d) (one matrix per configuration) or (d, d) (shared); a (C, d, d) stack of
    equal matrices is kept as one. Working memory is three (C·R, d) buffers, whatever T.
    This class records through the runner's reference code (no ``measure``); the subclasses
    for :class:`~simulate.problems.QuadraticProblem` measure in one pass as the other engines.
    """

    def __init__(self, P: np.ndarray, w_star: np.ndarray, coef: np.ndarray, nsc: np.ndarray,
                 hessian: np.ndarray | None = None, lam: np.ndarray | None = None,
                 **kw: Any) -> None:
        super().__init__(**kw)
        dt = self.dtype
        P = np.asarray(P, dtype=dt)
        if P.ndim == 3 and (P.shape[0] == 1 or bool((P == P[:1]).all())):
            P = P[0]  # shared: one matrix, nothing to subset
        self.P = np.ascontiguousarray(P)
        self._per_config = ("coef", "P") if self.P.ndim == 3 else ("coef",)
        self.diagonal = hessian is None
        d = np.asarray(w_star).shape[-1]
        self.A = None if self.diagonal else np.ascontiguousarray(hessian, dtype=dt)
        self.lam = np.ascontiguousarray(np.zeros(d) if lam is None else lam, dtype=dt)
        self.w_star = np.ascontiguousarray(w_star, dtype=dt)
        self.coef = np.ascontiguousarray(coef, dtype=dt)
        self.nsc = np.ascontiguousarray(nsc, dtype=dt)
        self.grad_kernel = quadratic_noise_kernel(self.diagonal, dt.name)
        self.kernel = elementwise_kernel(self.method, self.per_coord, dt.name)

    _blocks = DenseQuadraticEngine._blocks

    def _transform_args(self) -> list[dict[str, np.ndarray]]:
        """The ``grad_transform`` hyperparameters per configuration ({"P": P_c}); one shared
        dict for a shared P (so blocks of different configurations may share a product)."""
        if self.P.ndim == 2:
            return [{"P": self.P}] * self.n_configs
        return [{"P": self.P[c]} for c in range(self.n_configs)]

    @staticmethod
    def _stacks(blocks: list[tuple[int, int, Any]]) -> list[tuple[int, int, int, Any]]:
        """Runs of adjacent blocks of one size and one key, as (row0, row1, size, key).

        A run is one batched product over a (blocks, size, d) view: NumPy's ``matmul`` makes
        one BLAS call per block of the stack, so every row gets the product of its own block
        (the same bits as block by block) with one Python call per run instead of per block.
        """
        out: list[list[Any]] = []
        for q0, q1, key in blocks:
            last = out[-1] if out else None
            if last and last[1] == q0 and last[2] == q1 - q0 and last[3] is key:
                last[1] = q1
            else:
                out.append([q0, q1, q1 - q0, key])
        return [tuple(x) for x in out]

    def advance(self, state: tuple[Any, ...], t0: int, t1: int) -> tuple[Any, ...]:
        """Steps t0 … t1 − 1 on every row, in place; returns the state.

        As :meth:`DenseQuadraticEngine.advance`: each thread takes a contiguous run of row
        blocks through all the steps, BLAS single-threaded meanwhile.
        """
        if t1 <= t0:
            return state
        flat, state = self._flat(state)
        hyp3 = [h[:, None, :] for h in self.hypers]
        e = self.method.query(*state, *hyp3) - self.w_star
        e = np.ascontiguousarray(e.reshape(flat[0].shape))
        d = e.shape[1]
        g = np.empty_like(e)
        h = np.empty_like(e)
        alphas = self.alphas(t0, t1)
        R, transform, args = self.replicates, self.method.grad_transform, self._transform_args()
        blocks = [(q0, q1, args[q0 // R]) for q0, q1 in self._blocks(self.n_configs)]
        fixed = (self.lam, self.nsc, self.coef, self.rng, R)
        zero = np.zeros(self.n_configs, dtype=self.dtype)  # the elementwise loop's noise: off

        def views(x: np.ndarray, r0: int, r1: int, size: int) -> np.ndarray:
            return x[r0:r1].reshape(-1, size, d)

        def chunk(b0: int, b1: int) -> None:
            mine = blocks[b0:b1]
            r0, r1 = mine[0][0], mine[-1][1]
            grads = ([] if self.diagonal else
                     [(views(e, *s[:3]), views(g, *s[:3]))
                      for s in self._stacks([(q0, q1, None) for q0, q1, _ in mine])])
            trans = [(views(g, *s[:3]), views(h, *s[:3]), s[3]) for s in self._stacks(mine)]
            for k, t in enumerate(range(t0, t1)):
                for ev, gv in grads:
                    np.matmul(ev, self.A, out=gv)
                self.grad_kernel(g, e, *fixed, r0, r1)
                for gv, hv, extra in trans:
                    hv[...] = transform(gv, extra, np)
                self.kernel(*flat, *self.hypers, h, e, self.w_star, zero, alphas[k], self.rng,
                            t, R, r0, r1)

        with single_threaded_blas() as single:
            run_chunks(chunk, len(blocks), _dense_threads(single, d))
        return state


class RotatedPrecondMatrixEngine(PrecondMatrixEngine):
    """:class:`PrecondMatrixEngine` on a rotated QuadraticProblem; measures as
    :meth:`DenseQuadraticEngine.measure` (eigenbasis, the problem's own formulas)."""

    def __init__(self, rotation: np.ndarray, mask: np.ndarray, **kw: Any) -> None:
        super().__init__(**kw)
        self.Q = np.ascontiguousarray(rotation, dtype=self.dtype)
        self.mask = np.ascontiguousarray(mask, dtype=self.dtype)

    measure = DenseQuadraticEngine.measure
    _measure_blocks = DenseQuadraticEngine._measure_blocks


class DiagonalPrecondMatrixEngine(PrecondMatrixEngine):
    """:class:`PrecondMatrixEngine` on a diagonal QuadraticProblem; measures as
    :meth:`SeparableEngine.measure` (one compiled pass)."""

    _measured: tuple[Any, dict[str, np.ndarray]] | None = None

    def __init__(self, mask: np.ndarray, **kw: Any) -> None:
        super().__init__(**kw)
        self.mask = np.ascontiguousarray(mask, dtype=self.dtype)
        self.scale = self.dtype.type(0.0)
        self.measure_kernel = measure_kernel("quadratic")

    measure = SeparableEngine.measure
    _measures = staticmethod(SeparableEngine._measures)


class FiniteSumEngine(_Engine):
    """Least squares, minibatch of B rows uniform with replacement, per replicate and step."""

    def __init__(self, A: np.ndarray, b: np.ndarray, batch: int, **kw: Any) -> None:
        super().__init__(**kw)
        dt = self.dtype
        self.A = np.ascontiguousarray(A, dtype=dt)
        self.b = np.ascontiguousarray(b, dtype=dt)
        self.batch = int(batch)
        self.kernel = finite_sum_ls_kernel(self.method, self.per_coord, dt.name)

    def advance(self, state: tuple[Any, ...], t0: int, t1: int) -> tuple[Any, ...]:
        """Steps t0 … t1 − 1 on every row, in place; returns ``state``."""
        if t1 <= t0:
            return state
        flat, state = self._flat(state)
        run_rows(self.kernel, (*flat, *self.hypers, self.alphas(t0, t1), self.A, self.b,
                               self.batch, self.rng, t0, self.replicates), flat[0].shape[0])
        return state


def select_engine(*, problem: Any, method: Method, oracle: Any, schedule: Schedule,
                  alpha: Any, hypers: Any, seed: int, config_keys: list[str],
                  replicates: int, extra: dict[str, Any] | None = None) -> _Engine | None:
    """The engine for this combination, or None when it is not supported.

    ``extra`` holds the ``grad_transform``'s hyperparameters as the runner stacks them
    (``P``: (C, d, d)); only ``precond_matrix``'s transform is supported.
    """
    if not isinstance(alpha, np.ndarray):
        return None
    if np.dtype(alpha.dtype) not in (np.dtype(np.float64), np.dtype(np.float32)):
        return None
    n_cfg = alpha.shape[0]
    d = problem.dim
    kw = {"method": method, "schedule": schedule, "alpha": alpha, "hypers": hypers,
          "replicates": replicates}
    dt = np.dtype(alpha.dtype)

    def rng() -> np.ndarray:
        return row_states(seed, config_keys, replicates)

    def mask() -> np.ndarray:
        # dist2 counts range(A) only (QuadraticProblem.dist2 with zero eigenvalues)
        lam = np.asarray(problem.eigenvalues, dtype=np.float64)
        return (lam > 0).astype(np.float64) if problem.n_zero else np.ones(d)

    if method.grad_transform is not None:
        return _precond_matrix_engine(problem, oracle, extra, n_cfg, dt, rng, mask, kw)

    ptype = type(problem)
    if ptype is FiniteSumLeastSquares:
        if not (type(oracle) is MinibatchSampling and oracle.scheme == "with_replacement"):
            return None
        if problem.reg or problem.n >= 2**32 or not 1 <= oracle.B <= problem.n:
            return None
        return FiniteSumEngine(A=problem.A, b=problem.b, batch=oracle.B, rng=rng(), **kw)

    var = _noise_variance(oracle, n_cfg)
    if var is None:
        return None
    curvature = type(oracle) is CurvatureAlignedNoise
    if ptype is QuadraticProblem:
        if curvature and problem.rotated:
            return None
        if problem.rotated:
            lam = np.asarray(problem.eigenvalues, dtype=np.float64)
            return DenseQuadraticEngine(hessian=problem.hessian_matrix(), w_star=problem.w_star,
                                        coef=_coefficient(var, float(d), dt),
                                        rotation=problem.rotation, lam=lam, mask=mask(),
                                        rng=rng(), **kw)
        lam = np.asarray(problem.eigenvalues, dtype=np.float64)
        if curvature:
            nsc, coef = np.sqrt(lam), _coefficient(var, float(problem.hessian_trace), dt)
        else:
            nsc, coef = np.ones(d), _coefficient(var, float(d), dt)
        return SeparableEngine(grad_kind="quadratic", lam=lam, w_star=problem.w_star, nsc=nsc,
                               coef=coef, scale=0.0, mask=mask(), rng=rng(), **kw)
    if ptype is PLSinProblem and not problem.rotated and not curvature:
        return SeparableEngine(grad_kind="pl_sin", lam=np.zeros(d), w_star=problem.w_star,
                               nsc=np.ones(d), coef=_coefficient(var, float(d), dt),
                               scale=problem.scale, mask=np.ones(d), rng=rng(), **kw)
    return None


def _precond_matrix_engine(problem: Any, oracle: Any, extra: dict[str, Any] | None,
                           n_cfg: int, dt: np.dtype, rng: Any, mask: Any,
                           kw: dict[str, Any]) -> _Engine | None:
    """A :class:`PrecondMatrixEngine` for ``precond_matrix`` on a quadratic, or None.

    Supported: QuadraticProblem (diagonal: exact, isotropic, curvature-aligned; rotated:
    exact, isotropic) and DenseQuadraticProblem (exact, isotropic) — the combinations of the
    other engines, plus the dense quadratic of the preconditioning experiment.
    """
    method = kw["method"]
    if (method.grad_transform is not get_method("precond_matrix").grad_transform
            or method.extra_hypers != ("P",) or extra is None):
        return None
    d = problem.dim
    P = extra.get("P")
    if not isinstance(P, np.ndarray) or P.shape not in ((n_cfg, d, d), (d, d)):
        return None
    var = _noise_variance(oracle, n_cfg)
    if var is None:
        return None
    curvature = type(oracle) is CurvatureAlignedNoise
    ptype = type(problem)
    common = {"P": P, "w_star": problem.w_star, "rng": rng(), **kw}
    if ptype is QuadraticProblem:
        lam = np.asarray(problem.eigenvalues, dtype=np.float64)
        if problem.rotated:
            if curvature:
                return None
            return RotatedPrecondMatrixEngine(hessian=problem.hessian_matrix(), lam=lam,
                                              rotation=problem.rotation, mask=mask(),
                                              coef=_coefficient(var, float(d), dt),
                                              nsc=np.ones(d), **common)
        if curvature:
            nsc, coef = np.sqrt(lam), _coefficient(var, float(problem.hessian_trace), dt)
        else:
            nsc, coef = np.ones(d), _coefficient(var, float(d), dt)
        return DiagonalPrecondMatrixEngine(lam=lam, mask=mask(), coef=coef, nsc=nsc, **common)
    if ptype is DenseQuadraticProblem and not curvature:
        return PrecondMatrixEngine(hessian=problem.hessian_matrix(), coef=_coefficient(
            var, float(d), dt), nsc=np.ones(d), **common)
    return None
