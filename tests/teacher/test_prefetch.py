"""Batches drawn ahead in a thread: the same batches in the same order, and a saved RNG state that resumes at
the first batch not yet handed out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgefuse.teacher.prefetch import Prefetch


def draw(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 1000, size=4)


def test_prefetched_batches_and_their_state_match_drawing_in_the_loop() -> None:
    direct, states = np.random.default_rng(7), []
    want = []
    for _ in range(5):
        want.append(draw(direct))
        states.append(json.dumps(direct.bit_generator.state))
    with Prefetch(draw, np.random.default_rng(7), depth=3) as batches:
        for i in range(5):
            np.testing.assert_array_equal(batches.next(), want[i])
            assert batches.state == states[i]  # not the state of the batches drawn ahead
        resumed = np.random.default_rng()
        resumed.bit_generator.state = json.loads(batches.state)
    np.testing.assert_array_equal(draw(resumed), draw(direct))  # a resume draws the next batch again


def test_a_failing_draw_is_raised_in_the_loop_and_close_stops_the_thread() -> None:
    calls = []

    def failing(rng: np.random.Generator) -> np.ndarray:
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("bad crop")
        return draw(rng)

    batches = Prefetch(failing, np.random.default_rng(0))
    batches.next()
    batches.next()
    with pytest.raises(ValueError, match="bad crop"):
        batches.next()
    batches.close()
    assert not batches._thread.is_alive()
    endless = Prefetch(draw, np.random.default_rng(0), depth=1)  # blocked on a full queue
    endless.close()
    assert not endless._thread.is_alive()
