"""Backend selection: NumPy fallback, explicit choice, environment variable, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from simulate.backend import backend_name, cupy_available, get_array_module, to_host

HAS_GPU = cupy_available()


def test_numpy_is_always_available():
    assert get_array_module("numpy") is np


def test_auto_falls_back_to_numpy_without_cupy(monkeypatch):
    import simulate.backend as backend

    monkeypatch.setattr(backend, "_try_cupy", lambda: (None, "cupy does not import"))
    assert get_array_module("auto") is np
    with pytest.raises(ValueError, match="cupy"):
        get_array_module("cupy")


def test_environment_variable_is_read(monkeypatch):
    monkeypatch.setenv("SIMULATE_BACKEND", "numpy")
    assert get_array_module(None) is np
    monkeypatch.setenv("SIMULATE_BACKEND", "tpu")
    with pytest.raises(ValueError, match="SIMULATE_BACKEND"):
        get_array_module(None)


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="numpy"):
        get_array_module("torch")


def test_to_host_and_name():
    x = np.arange(3.0)
    assert to_host(x) is x or np.array_equal(to_host(x), x)
    assert backend_name(np) == "numpy"


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="no CUDA device answers (CuPy missing or no GPU)")
def test_cupy_backend_runs_the_same_numbers_as_numpy():
    from simulate.methods import get_method
    from simulate.problems import QuadraticProblem
    from simulate.runner import run

    cp = get_array_module("cupy")
    prob = QuadraticProblem(dim=50, L=1.0, mu=0.01)
    w0 = np.linspace(-1, 1, 50)
    args = dict(steps=200, w0=w0, replicates=2)
    a = run(prob, get_method("nesterov"), [{"alpha": 1.0, "beta": 0.8}], xp=np, **args)
    b = run(prob, get_method("nesterov"), [{"alpha": 1.0, "beta": 0.8}], xp=cp, **args)
    np.testing.assert_allclose(b.curves["value"], a.curves["value"], rtol=1e-10)
