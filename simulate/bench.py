"""``simulate bench``: the runner against baselines, measured in the same run.

Workloads (issue 5; float64 unless stated):

* **W1 diag** — heavy-ball SGD (α = 0.5/L, β = 0.9) on a diagonal quadratic, d = 1000,
  eigenvalues log-spaced in [1e-3, 1], isotropic Gaussian noise (σ² = 1, B = 1), R = 256,
  T = 2000, mean f − f* recorded every 10 steps. Unit: coordinate-updates (one coordinate of
  one replicate advanced one step), d·R·T per run.
* **W2 dense** — the same on a rotated quadratic (dense H), d = 256, R = 64.
* **W3 finite-sum** — minibatch SGD (α = 0.25/L, B = 32 rows uniform with replacement) on least
  squares, n = 10,000, d = 100, R = 64, T = 2000, mean f − f* recorded every 100 steps (one
  f − f* costs n·d per replicate, 30× a step). Unit: sampled-row coordinates, B·d·R·T.
* **W4 sweep** — the ``sgd-noise-floor`` experiment at full size, end to end (C·R·d·T of its
  one batched run as the unit).

Implementations: ``lab`` (the runner, engine "auto", float64), ``lab-float32``,
``lab-engine`` (the fast path's engine driven directly, without the runner's per-record
bookkeeping — a diagnostic of what the runner adds), and the baselines ``numpy-loop`` (a
Python loop over replicates, NumPy vectors of length d), ``numpy-batched`` (all replicates as
one (R, d) array, updated in place), ``numba-generator`` (W1 only: the issue's reference
design, a hand-fused compiled loop drawing from a NumPy ``Generator`` inside the loop, one
stream per thread), ``jax`` (jit + lax.scan, x64, all cores) and ``torch`` (batched, CPU) when
they import. For W4 the baseline is ``lab-reference``: the same experiment
on the runner's NumPy reference path.

Each row is timed as the median of ``--repeats`` runs (default 5) after one warm-up run, with
min and max; speed-ups are baseline median / row median. ``--quick`` shrinks every workload to
seconds and times only the lab and the NumPy baselines; without it the memory (peak RSS of W1
at T = 2,000 vs 200,000, each in a fresh process) and scaling (T, R, d doubled) measurements
run too.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["WORKLOADS", "main", "run_bench"]

WORKLOADS = ("W1", "W2", "W3", "W4")
BASELINES = ("numpy-loop", "numpy-batched", "numba-generator", "jax", "torch",
             "lab-reference")
RECORD_EVERY = {"W1": 10, "W2": 10, "W3": 100}


# --------------------------------------------------------------------------- sizes
@dataclass(frozen=True)
class QuadSpec:
    """A heavy-ball SGD workload on a quadratic (W1, W2)."""

    d: int
    R: int
    T: int
    rotated: bool
    record_every: int = 10
    beta: float = 0.9
    sigma2: float = 1.0

    @property
    def work(self) -> float:
        return float(self.d) * self.R * self.T


@dataclass(frozen=True)
class SumSpec:
    """A minibatch SGD workload on least squares (W3)."""

    n: int
    d: int
    B: int
    R: int
    T: int
    record_every: int = 100

    @property
    def work(self) -> float:
        return float(self.B) * self.d * self.R * self.T


def _specs(quick: bool) -> dict[str, Any]:
    if quick:
        return {"W1": QuadSpec(d=200, R=32, T=200, rotated=False),
                "W2": QuadSpec(d=64, R=32, T=500, rotated=True),
                "W3": SumSpec(n=2000, d=50, B=16, R=16, T=200, record_every=50)}
    return {"W1": QuadSpec(d=1000, R=256, T=2000, rotated=False),
            "W2": QuadSpec(d=256, R=64, T=2000, rotated=True),
            "W3": SumSpec(n=10_000, d=100, B=32, R=64, T=2000)}


# --------------------------------------------------------------------------- problems
def _quad_problem(spec: QuadSpec) -> Any:
    from .problems import QuadraticProblem

    lam = np.geomspace(1e-3, 1.0, spec.d)
    return QuadraticProblem(spec.d, eigenvalues=lam, rotated=spec.rotated, seed=0)


def _sum_problem(spec: SumSpec) -> Any:
    from .problems import FiniteSumLeastSquares

    return FiniteSumLeastSquares(n=spec.n, dim=spec.d, seed=0)


def _records(spec: Any) -> np.ndarray:
    return np.arange(0, spec.T + 1, spec.record_every)


# --------------------------------------------------------------------------- lab
def lab_quadratic(spec: QuadSpec, dtype: str = "float64") -> Callable[[], np.ndarray]:
    """The runner on W1/W2; returns the recorded mean f − f*."""
    from .methods import get_method
    from .noise import IsotropicGaussianNoise
    from .runner import run

    prob = _quad_problem(spec)
    cfg = [{"alpha": 0.5 / prob.L, "beta": spec.beta}]

    def go() -> np.ndarray:
        res = run(prob, get_method("heavy_ball"), cfg, steps=spec.T, w0=np.ones(spec.d),
                  oracle=IsotropicGaussianNoise(spec.sigma2, 1), replicates=spec.R, seed=0,
                  record_at=_records(spec), dtype=dtype)
        c = res.curves
        return c[c["quantity"] == "f_gap"]["value"].to_numpy()

    return go


def lab_finite_sum(spec: SumSpec, dtype: str = "float64") -> Callable[[], np.ndarray]:
    """The runner on W3."""
    from .methods import get_method
    from .noise import MinibatchSampling
    from .runner import run

    prob = _sum_problem(spec)
    cfg = [{"alpha": 0.25 / prob.L}]

    def go() -> np.ndarray:
        res = run(prob, get_method("sgd"), cfg, steps=spec.T, w0=np.zeros(spec.d),
                  oracle=MinibatchSampling(B=spec.B), replicates=spec.R, seed=0,
                  record_at=_records(spec), dtype=dtype)
        c = res.curves
        return c[c["quantity"] == "f_gap"]["value"].to_numpy()

    return go


def lab_engine(spec: Any, dtype: str = "float64") -> Callable[[], np.ndarray] | None:
    """The fast path's engine alone (no runner): ``advance`` between records — through up to
    ``MEASURES_PER_CALL`` records per call where the engine measures in the stepping pass,
    as the runner does — and the mean f − f* from the engine's measures (from a BLAS product
    for W3): what the compiled path costs without the runner's per-record bookkeeping."""
    from .fast import fast_path
    from .methods import get_method
    from .noise import IsotropicGaussianNoise, MinibatchSampling
    from .runner import MEASURES_PER_CALL
    from .schedules import Schedule

    finite_sum = isinstance(spec, SumSpec)
    prob = _sum_problem(spec) if finite_sum else _quad_problem(spec)
    method = get_method("sgd" if finite_sum else "heavy_ball")
    alpha = np.full((1, 1, 1), (0.25 if finite_sum else 0.5) / prob.L, dtype=dtype)
    hypers = [] if finite_sum else [np.full((1, 1, 1), spec.beta, dtype=dtype)]
    oracle = MinibatchSampling(B=spec.B) if finite_sum else IsotropicGaussianNoise(spec.sigma2)
    w0 = np.zeros((1, spec.R, spec.d)) if finite_sum else np.ones((1, spec.R, spec.d))
    rec = _records(spec)

    def go() -> np.ndarray:
        eng = fast_path(problem=prob, method=method, oracle=oracle, schedule=Schedule(),
                        alpha=alpha, hypers=hypers, xp=np, seed=0, config_keys=["bench"],
                        replicates=spec.R)
        state = method.init(w0.astype(dtype))
        out = np.empty(rec.size)
        if getattr(eng, "measures_at", False):
            # as the runner calls it: through up to MEASURES_PER_CALL records per call
            out[0] = eng.measure(state)["f_gap"].mean()
            k = 1
            while k < rec.size:
                group = rec[k:k + MEASURES_PER_CALL]
                state = eng.advance(state, int(rec[k - 1]), int(group[-1]), measure_at=group)
                for i, t in enumerate(group):
                    out[k + i] = eng.measured_at(int(t))["f_gap"].mean()
                k += group.size
            return out
        for k, t in enumerate(rec):
            if k:
                state = eng.advance(state, int(rec[k - 1]), int(t))
            if finite_sum:
                r = (state[0][0] - prob.w_star) @ prob.A.T.astype(dtype)
                out[k] = 0.5 * np.mean(np.sum(r * r, axis=1)) / spec.n
            else:
                out[k] = eng.measure(state)["f_gap"].mean()
        return out

    return go


@contextlib.contextmanager
def _reference_engine() -> Iterator[None]:
    """Within the block the runner finds no fast path (engine "auto" → the reference)."""
    from . import fast

    saved = fast.fast_path
    fast.fast_path = lambda **kwargs: None
    try:
        yield
    finally:
        fast.fast_path = saved


def lab_sweep(quick: bool, reference: bool = False) -> Callable[[], Any]:
    """W4: the sgd-noise-floor experiment end to end (optionally on the reference path)."""
    from .experiments import run_experiment

    size = "quick" if quick else "full"

    def go() -> Any:
        if reference:
            with _reference_engine():
                return run_experiment("sgd-noise-floor", size, seed=0)
        return run_experiment("sgd-noise-floor", size, seed=0)

    return go


def sweep_work(quick: bool) -> float:
    """C·R·d·T of the sgd-noise-floor run."""
    from .experiments import get_experiment

    p = get_experiment("sgd-noise-floor").resolve_params("quick" if quick else "full")
    n_cfg = len(p["alpha_L"]) * len(p["B"])
    return float(n_cfg) * p["replicates"] * p["d"] * p["steps"]


# --------------------------------------------------------------------------- NumPy baselines
def numpy_loop_quadratic(spec: QuadSpec) -> Callable[[], np.ndarray]:
    """Per-replicate Python loop over NumPy vectors (one generator, draws of length d)."""
    prob = _quad_problem(spec)
    lam, d = prob.eigenvalues, spec.d
    A = prob.hessian_matrix() if spec.rotated else None
    alpha, beta, s = 0.5 / prob.L, spec.beta, math.sqrt(spec.sigma2 / d)
    rec = _records(spec)

    def go() -> np.ndarray:
        rng = np.random.default_rng(0)
        out = np.zeros(rec.size)
        for _ in range(spec.R):
            w, w_prev = np.ones(d), np.ones(d)
            k = 0
            for t in range(spec.T + 1):
                if t == rec[k]:
                    out[k] += 0.5 * (w @ (A @ w) if A is not None else (lam * w) @ w)
                    k += 1
                    if t == spec.T:
                        break
                g = (A @ w if A is not None else lam * w) + s * rng.standard_normal(d)
                w, w_prev = w - alpha * g + beta * (w - w_prev), w
        return out / spec.R

    return go


_NUMBA_GENERATOR_LOOP = None


def numba_generator_quadratic(spec: QuadSpec) -> Callable[[], np.ndarray] | None:
    """The issue's reference design for W1: a hand-fused compiled heavy-ball loop (numba,
    ``nogil``) drawing its normals from a NumPy ``Generator`` inside the loop, rows split in
    halves over ``numba.get_num_threads()`` threads, one generator (stream) per thread.
    Diagonal W1 only (None for the dense W2)."""
    global _NUMBA_GENERATOR_LOOP
    if spec.rotated:
        return None
    from concurrent.futures import ThreadPoolExecutor

    import numba

    if _NUMBA_GENERATOR_LOOP is None:
        @numba.njit(nogil=True)
        def loop(lam, alpha, beta, s, gen, rec, T, rows, out):  # noqa: ANN001, ANN202
            d = lam.shape[0]
            w = np.empty(d)
            wp = np.empty(d)
            for _ in range(rows):
                w[:] = 1.0
                wp[:] = 1.0
                k = 0
                for t in range(T + 1):
                    if t == rec[k]:
                        f = 0.0
                        for j in range(d):
                            f += lam[j] * w[j] * w[j]
                        out[k] += 0.5 * f
                        k += 1
                        if t == T:
                            break
                    for j in range(d):
                        x = w[j]
                        g = lam[j] * x + s * gen.standard_normal()
                        w[j] = x - alpha * g + beta * (x - wp[j])
                        wp[j] = x

        _NUMBA_GENERATOR_LOOP = loop
    loop = _NUMBA_GENERATOR_LOOP
    prob = _quad_problem(spec)
    lam = np.ascontiguousarray(prob.eigenvalues, dtype=np.float64)
    alpha, beta, s = 0.5 / prob.L, spec.beta, math.sqrt(spec.sigma2 / spec.d)
    rec = _records(spec)
    n = max(1, min(numba.get_num_threads(), spec.R))
    shares = [spec.R * (i + 1) // n - spec.R * i // n for i in range(n)]
    loop(lam, alpha, beta, s, np.random.default_rng(0), rec[:2], 1, 1, np.zeros(2))  # compile

    def go() -> np.ndarray:
        gens = np.random.default_rng(0).spawn(n)
        outs = [np.zeros(rec.size) for _ in range(n)]
        with ThreadPoolExecutor(max_workers=n) as pool:
            jobs = [pool.submit(loop, lam, alpha, beta, s, gens[i], rec, spec.T, shares[i],
                                outs[i]) for i in range(n)]
            for job in jobs:
                job.result()
        return np.sum(outs, axis=0) / spec.R

    return go


def numpy_batched_quadratic(spec: QuadSpec) -> Callable[[], np.ndarray]:
    """All replicates as one (R, d) array, every operation in place into preallocated arrays."""
    prob = _quad_problem(spec)
    lam, d, R = prob.eigenvalues, spec.d, spec.R
    A = prob.hessian_matrix() if spec.rotated else None
    alpha, beta, s = 0.5 / prob.L, spec.beta, math.sqrt(spec.sigma2 / d)
    rec = _records(spec)

    def go() -> np.ndarray:
        rng = np.random.default_rng(0)
        w, w_prev = np.ones((R, d)), np.ones((R, d))
        g, z, tmp = np.empty((R, d)), np.empty((R, d)), np.empty((R, d))
        out = np.zeros(rec.size)
        k = 0
        for t in range(spec.T + 1):
            if t == rec[k]:
                if A is not None:
                    np.matmul(w, A, out=tmp)
                else:
                    np.multiply(w, lam, out=tmp)
                tmp *= w
                out[k] = 0.5 * tmp.sum() / R
                k += 1
                if t == spec.T:
                    break
            rng.standard_normal(out=z)
            if A is not None:
                np.matmul(w, A, out=g)
            else:
                np.multiply(w, lam, out=g)
            z *= s
            g += z
            g *= alpha  # α g
            np.subtract(w, w_prev, out=tmp)
            tmp *= beta
            tmp -= g  # β(w − w_prev) − α g
            w_prev[...] = w
            w += tmp
        return out

    return go


def numpy_loop_finite_sum(spec: SumSpec) -> Callable[[], np.ndarray]:
    prob = _sum_problem(spec)
    A, b, ws = prob.A, prob.b, prob.w_star
    alpha, B = 0.25 / prob.L, spec.B
    rec = _records(spec)

    def go() -> np.ndarray:
        rng = np.random.default_rng(0)
        out = np.zeros(rec.size)
        for _ in range(spec.R):
            w = np.zeros(spec.d)
            k = 0
            for t in range(spec.T + 1):
                if t == rec[k]:
                    r = A @ (w - ws)
                    out[k] += 0.5 * (r @ r) / spec.n
                    k += 1
                    if t == spec.T:
                        break
                idx = rng.integers(0, spec.n, size=B)
                rows = A[idx]
                w = w - alpha * (rows.T @ (rows @ w - b[idx])) / B
        return out / spec.R

    return go


def numpy_batched_finite_sum(spec: SumSpec) -> Callable[[], np.ndarray]:
    prob = _sum_problem(spec)
    A, b, ws = prob.A, prob.b, prob.w_star
    alpha, B, R = 0.25 / prob.L, spec.B, spec.R
    rec = _records(spec)

    def go() -> np.ndarray:
        rng = np.random.default_rng(0)
        w = np.zeros((R, spec.d))
        out = np.zeros(rec.size)
        k = 0
        for t in range(spec.T + 1):
            if t == rec[k]:
                r = (w - ws) @ A.T
                out[k] = 0.5 * np.einsum("ij,ij->", r, r) / spec.n / R
                k += 1
                if t == spec.T:
                    break
            idx = rng.integers(0, spec.n, size=(R, B))
            rows = A[idx]  # (R, B, d)
            res = np.einsum("rbd,rd->rb", rows, w) - b[idx]
            w -= (alpha / B) * np.einsum("rb,rbd->rd", res, rows)
        return out

    return go


# --------------------------------------------------------------------------- JAX / torch
def _jax() -> Any:
    try:
        import jax  # noqa: PLC0415
    except Exception:  # not installed, or a broken install
        return None
    jax.config.update("jax_enable_x64", True)
    return jax


def jax_quadratic(spec: QuadSpec) -> Callable[[], np.ndarray] | None:
    """jit + lax.scan: an outer scan over records, an inner scan of ``record_every`` steps."""
    jax = _jax()
    if jax is None:
        return None
    import jax.numpy as jnp  # noqa: PLC0415

    prob = _quad_problem(spec)
    lam = jnp.asarray(prob.eigenvalues)
    A = jnp.asarray(prob.hessian_matrix()) if spec.rotated else None
    alpha, beta, s = 0.5 / prob.L, spec.beta, math.sqrt(spec.sigma2 / spec.d)
    n_rec = spec.T // spec.record_every

    def grad(w: Any) -> Any:
        return w @ A if A is not None else lam * w

    def f_gap(w: Any) -> Any:
        return 0.5 * jnp.mean(jnp.sum(w * grad(w), axis=1))

    def step(carry: Any, _: Any) -> Any:
        w, w_prev, key = carry
        key, sub = jax.random.split(key)
        g = grad(w) + s * jax.random.normal(sub, w.shape, dtype=w.dtype)
        return (w - alpha * g + beta * (w - w_prev), w, key), None

    def block(carry: Any, _: Any) -> Any:
        carry, _ = jax.lax.scan(step, carry, None, length=spec.record_every)
        return carry, f_gap(carry[0])

    @jax.jit
    def whole(key: Any, data: Any) -> Any:
        nonlocal lam, A
        lam, A = data  # traced arguments, not constants
        w0 = jnp.ones((spec.R, spec.d))
        carry, fs = jax.lax.scan(block, (w0, w0, key), None, length=n_rec)
        return jnp.concatenate([f_gap(w0)[None], fs])

    data = (lam, A)

    def go() -> np.ndarray:
        return np.asarray(whole(jax.random.PRNGKey(0), data).block_until_ready())

    return go


def jax_finite_sum(spec: SumSpec) -> Callable[[], np.ndarray] | None:
    jax = _jax()
    if jax is None:
        return None
    import jax.numpy as jnp  # noqa: PLC0415

    prob = _sum_problem(spec)
    A, b, ws = jnp.asarray(prob.A), jnp.asarray(prob.b), jnp.asarray(prob.w_star)
    alpha, B, R = 0.25 / prob.L, spec.B, spec.R
    n_rec = spec.T // spec.record_every

    def f_gap(w: Any) -> Any:
        r = (w - ws) @ A.T
        return 0.5 * jnp.mean(jnp.sum(r * r, axis=1)) / spec.n

    def step(carry: Any, _: Any) -> Any:
        w, key = carry
        key, sub = jax.random.split(key)
        idx = jax.random.randint(sub, (R, B), 0, spec.n)
        rows = A[idx]
        res = jnp.einsum("rbd,rd->rb", rows, w) - b[idx]
        return (w - (alpha / B) * jnp.einsum("rb,rbd->rd", res, rows), key), None

    def block(carry: Any, _: Any) -> Any:
        carry, _ = jax.lax.scan(step, carry, None, length=spec.record_every)
        return carry, f_gap(carry[0])

    @jax.jit
    def whole(key: Any, data: Any) -> Any:
        nonlocal A, b, ws
        A, b, ws = data  # traced arguments, not constants (XLA would fold A·w0 at compile)
        w0 = jnp.zeros((R, spec.d))
        carry, fs = jax.lax.scan(block, (w0, key), None, length=n_rec)
        return jnp.concatenate([f_gap(w0)[None], fs])

    data = (A, b, ws)

    def go() -> np.ndarray:
        return np.asarray(whole(jax.random.PRNGKey(0), data).block_until_ready())

    return go


def torch_quadratic(spec: QuadSpec) -> Callable[[], np.ndarray] | None:
    """PyTorch, batched in place on the CPU (its default thread count)."""
    try:
        import torch  # noqa: PLC0415
    except Exception:
        return None
    prob = _quad_problem(spec)
    lam = torch.as_tensor(prob.eigenvalues)
    A = torch.as_tensor(prob.hessian_matrix()) if spec.rotated else None
    alpha, beta, s = 0.5 / prob.L, spec.beta, math.sqrt(spec.sigma2 / spec.d)
    rec = _records(spec)

    def go() -> np.ndarray:
        gen = torch.Generator().manual_seed(0)
        w = torch.ones(spec.R, spec.d, dtype=torch.float64)
        w_prev = w.clone()
        z = torch.empty_like(w)
        out = np.zeros(rec.size)
        k = 0
        with torch.no_grad():
            for t in range(spec.T + 1):
                g = w @ A if A is not None else w * lam
                if t == rec[k]:
                    out[k] = 0.5 * float((g * w).sum()) / spec.R
                    k += 1
                    if t == spec.T:
                        break
                z.normal_(generator=gen)
                g.add_(z, alpha=s)
                step = (w - w_prev).mul_(beta).sub_(g, alpha=alpha)
                w_prev.copy_(w)
                w.add_(step)
        return out

    return go


# --------------------------------------------------------------------------- timing
@dataclass
class Row:
    workload: str
    implementation: str
    times: list[float]
    work: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return float(np.median(self.times))

    def as_dict(self) -> dict[str, Any]:
        out = {"workload": self.workload, "implementation": self.implementation,
               "median_s": self.median, "min_s": float(np.min(self.times)),
               "max_s": float(np.max(self.times)), "coord_updates_per_s": self.work / self.median}
        out.update(self.extra)
        return out


def time_it(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Wall times of ``repeats`` calls after one warm-up call (compilation, caches)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def _implementations(name: str, spec: Any, quick: bool) -> list[tuple[str, Any]]:
    if name == "W4":
        return [("lab", lambda: lab_sweep(quick)),
                ("lab-reference", lambda: lab_sweep(quick, reference=True))]
    if name == "W3":
        impls = [("lab", lambda: lab_finite_sum(spec)),
                 ("lab-float32", lambda: lab_finite_sum(spec, "float32")),
                 ("lab-engine", lambda: lab_engine(spec)),
                 ("numpy-loop", lambda: numpy_loop_finite_sum(spec)),
                 ("numpy-batched", lambda: numpy_batched_finite_sum(spec))]
        if not quick:
            impls.append(("jax", lambda: jax_finite_sum(spec)))
        return impls
    impls = [("lab", lambda: lab_quadratic(spec)),
             ("lab-float32", lambda: lab_quadratic(spec, "float32")),
             ("lab-engine", lambda: lab_engine(spec)),
             ("lab-engine-float32", lambda: lab_engine(spec, "float32")),
             ("numpy-loop", lambda: numpy_loop_quadratic(spec)),
             ("numpy-batched", lambda: numpy_batched_quadratic(spec))]
    if not quick:
        impls += [("numba-generator", lambda: numba_generator_quadratic(spec)),
                  ("jax", lambda: jax_quadratic(spec)), ("torch", lambda: torch_quadratic(spec))]
    return impls


def run_bench(workloads: tuple[str, ...] = WORKLOADS, *, quick: bool = False, repeats: int = 5,
              log: Callable[[str], None] = print) -> list[Row]:
    """Time every implementation of every workload; rows in the order measured."""
    specs = _specs(quick)
    rows: list[Row] = []
    for name in workloads:
        spec = specs.get(name)
        work = sweep_work(quick) if name == "W4" else spec.work
        for impl, make in _implementations(name, spec, quick):
            fn = make()
            if fn is None:
                log(f"{name} {impl}: not importable, skipped")
                continue
            times = time_it(fn, repeats)
            rows.append(Row(name, impl, times, work))
            log(f"{name} {impl:14s} median {np.median(times):8.3f} s   "
                f"{work / np.median(times) / 1e6:9.1f} M/s")
    _add_speedups(rows)
    return rows


def _add_speedups(rows: list[Row]) -> None:
    by_wl: dict[str, dict[str, Row]] = {}
    for r in rows:
        by_wl.setdefault(r.workload, {})[r.implementation] = r
    for r in rows:
        for base in BASELINES:
            b = by_wl[r.workload].get(base)
            if b is not None:
                r.extra[f"speedup_vs_{base}"] = b.median / r.median


# --------------------------------------------------------------------------- memory, scaling
# a 10-step run first loads (or compiles) the loops, so the peak is the run's own
_MEMORY_SNIPPET = """
import resource, sys, time
import numpy as np
from simulate.bench import QuadSpec, lab_quadratic
lab_quadratic(QuadSpec(d={d}, R={R}, T=10, rotated=False))()
spec = QuadSpec(d={d}, R={R}, T={T}, rotated=False)
t = time.perf_counter()
lab_quadratic(spec)()
wall = time.perf_counter() - t
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, wall)
"""


def peak_rss(d: int, R: int, T: int) -> tuple[float, float]:
    """(peak RSS in MiB, wall s) of one W1-shaped lab run in a fresh Python process."""
    code = _MEMORY_SNIPPET.format(d=d, R=R, T=T)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    kib, wall = out.stdout.split()[-2:]
    return float(kib) / 1024.0, float(wall)


def memory_rows(quick: bool, log: Callable[[str], None] = print) -> list[Row]:
    base = _specs(quick)["W1"]
    rows = []
    peaks = {}
    for T in ((200, 20_000) if quick else (2_000, 200_000)):
        mib, wall = peak_rss(base.d, base.R, T)
        peaks[T] = mib
        spec = QuadSpec(d=base.d, R=base.R, T=T, rotated=False)
        rows.append(Row(f"W1 memory T={T}", "lab", [wall], spec.work,
                        {"peak_rss_mib": mib}))
        log(f"W1 T={T:7d}: peak RSS {mib:8.1f} MiB ({wall:.1f} s)")
    lo, hi = sorted(peaks)
    rows[-1].extra["rss_ratio_vs_short"] = peaks[hi] / peaks[lo]
    return rows


def scaling_rows(quick: bool, repeats: int, log: Callable[[str], None] = print) -> list[Row]:
    base = _specs(quick)["W1"]
    variants = {"base": base,
                "T x2": QuadSpec(d=base.d, R=base.R, T=2 * base.T, rotated=False),
                "R x2": QuadSpec(d=base.d, R=2 * base.R, T=base.T, rotated=False),
                "d x2": QuadSpec(d=2 * base.d, R=base.R, T=base.T, rotated=False)}
    rows = []
    base_median = math.nan
    for label, spec in variants.items():
        times = time_it(lab_quadratic(spec), repeats)
        row = Row(f"W1 scaling {label}", "lab", times, spec.work)
        if label == "base":
            base_median = row.median
        row.extra["time_ratio_vs_base"] = row.median / base_median
        rows.append(row)
        log(f"W1 scaling {label:5s}: {row.median:7.3f} s  ratio {row.median / base_median:5.2f}")
    return rows


# --------------------------------------------------------------------------- report
def machine() -> dict[str, str]:
    """Machine and library versions (for the header and BENCHMARKS.md)."""
    import numba  # noqa: PLC0415

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cpu": cpu, "cores": str(os.cpu_count()), "numpy": np.__version__,
            "numba": numba.__version__, "numba_threads": str(numba.get_num_threads()),
            "load_avg_1m": f"{os.getloadavg()[0]:.2f}"}
    with contextlib.suppress(Exception):
        import jax  # noqa: PLC0415

        info["jax"] = jax.__version__
    return info


def table(rows: list[Row]) -> pd.DataFrame:
    return pd.DataFrame([r.as_dict() for r in rows])


def format_table(df: pd.DataFrame) -> str:
    cols = ["workload", "implementation", "median_s", "min_s", "max_s", "coord_updates_per_s"]
    cols += [c for c in df.columns if c.startswith("speedup_vs_")]
    cols += [c for c in ("peak_rss_mib", "rss_ratio_vs_short", "time_ratio_vs_base")
             if c in df.columns]
    view = df[cols].copy()
    view["coord_updates_per_s"] = (view["coord_updates_per_s"] / 1e6).map("{:.1f} M".format)
    return view.to_string(index=False, float_format=lambda v: f"{v:.3g}", na_rep="")


def main(args: argparse.Namespace) -> int:
    """Entry point of ``simulate bench`` (see the module docstring)."""
    from .cli import UsageError

    chosen = tuple(w.upper() for w in (args.workload or WORKLOADS))
    bad = [w for w in chosen if w not in WORKLOADS]
    if bad:
        raise UsageError(f"--workload {bad[0]!r} is not allowed: allowed {', '.join(WORKLOADS)}")
    repeats = int(getattr(args, "repeats", 5) or 5)
    if repeats < 1:
        raise UsageError(f"--repeats {repeats} is not allowed: allowed an integer >= 1")
    quick = bool(args.quick)
    if quick:
        repeats = min(repeats, 2)
    out = getattr(args, "out", None)
    if out:
        parent = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            raise UsageError(f"--out {out!r} is not writable: allowed a file in an existing, "
                             "writable directory")
    info = machine()
    print("simulate bench " + ("(quick) " if quick else "")
          + " ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    rows = run_bench(chosen, quick=quick, repeats=repeats,
                     log=lambda s: print(s, flush=True))
    if not quick and "W1" in chosen:
        rows += memory_rows(quick, log=lambda s: print(s, flush=True))
        rows += scaling_rows(quick, repeats, log=lambda s: print(s, flush=True))
    df = table(rows)
    print()
    print(format_table(df))
    print(f"\nload average at the end (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} "
          "cores", flush=True)
    if out:
        df.to_csv(out, index=False)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from .cli import main as cli_main

    sys.exit(cli_main(["bench", *sys.argv[1:]]))
