"""Training batches drawn in a background thread while the GPU trains on the current one.

The denoisers' crop loaders are numpy loops in the training loop's own thread: on an H200 they took 19 ms of
a ~93 ms step at batch 128 and 121 ms of a ~220 ms step at batch 512 (scripts/coef_train_speed.py). A thread
can overlap them with the GPU work (the loop waits on the GPU every step, and numpy and torch release the GIL
while they copy). Its gain is not timed side by side: the coefficient teacher's 15-minute run with it trained
12.0 steps a second on an H200, the 7-minute run without it 9.6 (docs/distillation.md). Each batch travels
with the data RNG's state right after it was drawn, so a saved training state resumes at the first batch not
yet trained on: batches drawn ahead are drawn again, the same ones.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np


class Prefetch:
    """``next()`` -> the next ``draw(rng)``; ``state`` -> the RNG state after the last batch handed out."""

    def __init__(self, draw: Callable[[np.random.Generator], Any], rng: np.random.Generator, depth: int = 2):
        self.state = json.dumps(rng.bit_generator.state)
        self._queue: queue.Queue[tuple[Any, str, BaseException | None]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        # the thread owns ``rng`` from here on: nothing else may draw from it
        self._thread = threading.Thread(target=self._run, args=(draw, rng), daemon=True)
        self._thread.start()

    def _put(self, item: tuple[Any, str, BaseException | None]) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self, draw: Callable[[np.random.Generator], Any], rng: np.random.Generator) -> None:
        try:
            while not self._stop.is_set():
                batch = draw(rng)
                self._put((batch, json.dumps(rng.bit_generator.state), None))
        except BaseException as exc:  # raised again in the training loop, where it can be reported
            self._put((None, "", exc))

    def next(self) -> Any:
        batch, state, exc = self._queue.get()
        if exc is not None:
            raise exc
        self.state = state
        return batch

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
