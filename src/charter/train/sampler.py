"""Batches that hold one principle group each (needed by routing and by exact attribution)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler


class GroupedBatchSampler(Sampler[list[int]]):
    """Shuffles within groups, cuts each group into batches, then shuffles the batch order.

    Deterministic in (seed, epoch), so a resumed run sees the same batches in the same order and
    the trainer's skip-ahead lands where the interrupted run stopped.
    """

    def __init__(self, groups: Sequence[str], batch_size: int, seed: int = 0, shuffle: bool = True):
        self.groups = list(groups)
        self.batch_size = max(1, int(batch_size))
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = random.Random(f"{self.seed}:{self.epoch}")
        by_group: dict[str, list[int]] = {}
        for i, g in enumerate(self.groups):
            by_group.setdefault(g, []).append(i)
        out = []
        for g in sorted(by_group):
            idx = by_group[g]
            if self.shuffle:
                rng.shuffle(idx)
            out.extend(idx[i : i + self.batch_size] for i in range(0, len(idx), self.batch_size))
        if self.shuffle:
            rng.shuffle(out)
        return out

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()

    def __len__(self) -> int:
        return len(self.batches())
