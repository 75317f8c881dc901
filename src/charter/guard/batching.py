"""Opportunistic micro-batching of concurrent classifier calls.

The gateway checks each request in its own worker thread. Run one by one, N concurrent checks cost
N forward passes; a batch of N short texts costs little more than one. ``MicroBatcher`` wraps a
batched scoring function: the first caller runs at once (no added latency when idle); callers that
arrive while a batch is running queue up and the next of them runs all queued work as one batch.
Single texts and text pairs are scored in separate calls (their tokenisation differs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np


class _Job:
    __slots__ = ("texts", "pairs", "result", "error", "done")

    def __init__(self, texts, pairs):
        self.texts, self.pairs = list(texts), (list(pairs) if pairs is not None else None)
        self.result, self.error, self.done = None, None, False


class MicroBatcher:
    def __init__(self, fn: Callable[..., np.ndarray], max_batch: int = 64):
        self.fn = fn
        self.max_batch = max_batch
        self._cv = threading.Condition()
        self._queue: list[_Job] = []
        self._running = False
        self.batches = 0  # how many fn calls ran (for tests and metrics)
        self.jobs = 0

    def __call__(self, texts: Sequence[str], pairs: Sequence[str | None] | None = None) -> np.ndarray:
        job = _Job(texts, pairs)
        with self._cv:
            self._queue.append(job)
            while not job.done:
                if not self._running:
                    self._running = True
                    batch, self._queue = self._take()
                    break
                self._cv.wait()
            else:
                if job.error is not None:
                    raise job.error
                return job.result
        try:
            self._run(batch)
        finally:
            with self._cv:
                self._running = False
                self._cv.notify_all()
        if job.error is not None:
            raise job.error
        return job.result

    def _take(self) -> tuple[list[_Job], list[_Job]]:
        """Queued jobs up to max_batch texts (always at least the first)."""
        taken, n = [], 0
        for i, j in enumerate(self._queue):
            if taken and n + len(j.texts) > self.max_batch:
                return taken, self._queue[i:]
            taken.append(j)
            n += len(j.texts)
        return taken, []

    def _run(self, batch: list[_Job]) -> None:
        for paired in (False, True):
            group = [j for j in batch if (j.pairs is not None) == paired]
            if not group:
                continue
            texts = [t for j in group for t in j.texts]
            pairs = [p for j in group for p in j.pairs] if paired else None
            try:
                out = self.fn(texts, pairs) if paired else self.fn(texts)
                self.batches += 1
                self.jobs += len(group)
                k = 0
                for j in group:
                    j.result = out[k : k + len(j.texts)]
                    k += len(j.texts)
            except Exception as e:  # noqa: BLE001 - handed to every caller in the batch
                for j in group:
                    j.error = e
        for j in batch:
            j.done = True
