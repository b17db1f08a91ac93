"""Small blueprints over 8x8 digits for the search tests."""
from __future__ import annotations

import subprocess
import time
from typing import Any, Callable

import pytest

# 3x3 valid convolutions and 2x2 pools on 8x8: most (M, N, POOL) combinations shrink the
# map to nothing. Sizes: conv n -> n - 2, pool n -> n // 2 (floor; strict off).
DIGITS_SPACE = """\
name: digits_search
input: [8, 8, 1]
classes: 10
strict: false
pattern: "[(CONV-RELU)*N-POOL?]*M-(FC-RELU)*K-SOFTMAX"
vars: {M: 1, N: 1, K: 1, POOL: true}
layers:
  CONV: {filters: 4, kernel: 3}
  POOL: {size: 2}
  FC: {units: 16}
training: {epochs: 1, batch_size: 128, validation_split: 0.2}
search:
  space:
    M: [1, 4]
    N: [1, 3]
    POOL: [true, false]
    FC.units: [8, 16, 32]
    learning_rate: {low: 0.003, high: 0.03, log: true}
"""


@pytest.fixture
def digits_space(write_blueprint):
    def make(extra: str = "", text: str = DIGITS_SPACE) -> str:
        return write_blueprint(text + extra)
    return make


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 300,
             alive: tuple[subprocess.Popen, ...] = ()) -> Any:
    """Poll ``condition`` until it returns something true, and return that. Fail, naming
    ``what``, when ``timeout`` seconds pass first or one of the ``alive`` processes ends
    (it would never make the condition true)."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        for proc in alive:
            assert proc.poll() is None, f"waiting for {what}: {proc.args} exited " \
                f"with {proc.returncode} first"
        assert time.monotonic() < deadline, f"waiting for {what}: not within {timeout:g} s"
        time.sleep(0.05)  # the poll interval, not a guess at how long anything takes
    return found
