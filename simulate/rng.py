"""Random streams per configuration, independent of batching.

Each configuration of a batch gets its own generator, derived from the run seed and a stable
key that describes the configuration (not its position in the batch). Running a configuration
alone or inside a sweep therefore draws the same numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["BatchRNG", "config_seed_sequence", "stable_key_int"]


def stable_key_int(key: str) -> int:
    """A 64-bit integer from a string, stable across processes and platforms (SHA-256)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")


def config_seed_sequence(seed: int, key: str) -> np.random.SeedSequence:
    """The SeedSequence of one configuration: entropy = run seed, spawn key = hash of ``key``."""
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(stable_key_int(key),))


class BatchRNG:
    """One generator per configuration; draws stacked along a leading config axis.

    Parameters
    ----------
    seed_sequences
        One ``SeedSequence`` per configuration.
    xp
        Array module (numpy or cupy). On CuPy each configuration gets a
        ``cupy.random.Generator`` seeded from its sequence.
    """

    def __init__(self, seed_sequences: Sequence[np.random.SeedSequence], xp: ModuleType = np):
        self.xp = xp
        self.seed_sequences = list(seed_sequences)
        if xp is np:
            self.generators: list[Any] = [np.random.Generator(np.random.PCG64(s))
                                          for s in self.seed_sequences]
        else:
            self.generators = [
                xp.random.Generator(xp.random.XORWOW(int(s.generate_state(1, np.uint64)[0])))
                for s in self.seed_sequences
            ]

    @property
    def n_configs(self) -> int:
        return len(self.generators)

    def subset(self, keep: Sequence[int]) -> BatchRNG:
        """The generators of the kept configurations (state carried over, not reseeded)."""
        other = object.__new__(BatchRNG)
        other.xp = self.xp
        other.seed_sequences = [self.seed_sequences[i] for i in keep]
        other.generators = [self.generators[i] for i in keep]
        return other

    def standard_normal(self, tail: tuple[int, ...], dtype: Any = np.float64) -> Any:
        """Standard normals shaped ``(C, *tail)``."""
        out = self.xp.empty((self.n_configs, *tail), dtype=dtype)
        for c, gen in enumerate(self.generators):
            if self.xp is np:
                gen.standard_normal(out=out[c], dtype=dtype)
            else:
                out[c] = gen.standard_normal(tail, dtype=dtype)
        return out

    def random(self, tail: tuple[int, ...], dtype: Any = np.float64) -> Any:
        """Uniforms on [0, 1) shaped ``(C, *tail)``."""
        out = self.xp.empty((self.n_configs, *tail), dtype=dtype)
        for c, gen in enumerate(self.generators):
            if self.xp is np:
                gen.random(out=out[c], dtype=dtype)
            else:
                out[c] = gen.random(tail, dtype=dtype)
        return out

    def integers(self, high: int, tail: tuple[int, ...]) -> Any:
        """Integers uniform on ``{0, …, high−1}`` shaped ``(C, *tail)`` (int64)."""
        if self.xp is np:
            return np.stack([g.integers(0, high, size=tail, dtype=np.int64)
                             for g in self.generators])
        # cupy Generator has no integers(); floor of uniforms is exact for high < 2**53
        u = self.random(tail)
        return self.xp.minimum((u * high).astype(self.xp.int64), high - 1)

    def permutations(self, n: int, rows: int) -> Any:
        """``rows`` independent permutations of ``range(n)`` per configuration: ``(C, rows, n)``."""
        keys = self.random((rows, n))
        return keys.argsort(axis=-1)
