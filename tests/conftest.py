"""Shared fixtures."""

from __future__ import annotations

import numpy as np
import pytensor
import pytest
from pytensor.compile.mode import Mode

# The tests evaluate many small PyTensor graphs once or twice each (prior draws standing in for a
# posterior, the log-densities of the structural checks). PyTensor's default linker compiles every
# one of them to numba, which on a machine with an empty compile cache costs minutes; the Python
# linker runs them at once, after the same graph rewrites. Real fits are unaffected (nutpie
# compiles its own graph to numba), and the tests of the numba kernels ask for mode="NUMBA".
pytensor.config.mode = Mode(linker="py", optimizer="fast_run")


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator, the same in every test."""
    return np.random.default_rng(20261128)
