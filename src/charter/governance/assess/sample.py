"""Drawing the corpus sample: a seeded permutation of every record, read back lazily."""

from __future__ import annotations

import random
from pathlib import Path

from charter.core.errors import InputError
from charter.core.seeding import stable_seed
from charter.governance.assess.config import CorpusItem
from charter.governance.assess.corpus import _corpus_rows, record_segments


class CorpusSample:
    """The corpus check's records: ``items`` (with text, judged) and ``empty`` (drawn, nothing to
    judge). Everything is parsed on construction, so a malformed record fails before anything is
    written."""

    def __init__(self, files: list[str], n: int, *, seed: int, column: str | None):
        self.files, self.seed, self.column = files, seed, column
        self.index = self._index_corpus()
        self.items, self.empty = self._corpus_sample(n)

    def _index_corpus(self) -> list[tuple[int, int]]:
        """(file index, line) of every record (the sample is drawn from these; only the files
        holding sampled records are read again, each up to its last sampled record)."""
        index = []
        for fi, f in enumerate(self.files):
            n = len(index)
            index += [(fi, line) for line, _ in _corpus_rows(Path(f))]
            if len(index) == n:
                raise InputError("corpus file holds no records", source=f)
        return index

    def _corpus_sample(self, n: int) -> tuple[list[CorpusItem], list[CorpusItem]]:
        """The first ``n`` records *with text* of a seeded permutation of every record. A record
        with nothing to judge (an empty assistant turn, a blank text) is not a sample of the corpus's
        content: it is set aside in ``empty`` (reported, never counted as qualified or in
        the share's denominator) and the draw goes on along the same permutation, so the sample
        still reaches ``n`` judged records and a larger ``n`` still extends a smaller sample."""
        order = list(range(len(self.index)))
        random.Random(stable_seed(self.seed, "assess", "corpus")).shuffle(order)
        items: list[CorpusItem] = []
        empty: list[CorpusItem] = []
        pos = 0
        while len(items) < n and pos < len(order):
            # Draw at least what is still missing (more when records turn out empty), parse it,
            # and take records in permutation order until n have text.
            take = [self.index[i] for i in order[pos : pos + max(2 * (n - len(items)), 64)]]
            pos += len(take)
            for it in self._parse_records(take):
                if len(items) == n:
                    break
                (items if it.segments else empty).append(it)
        return items, empty

    def _parse_records(self, chosen: list[tuple[int, int]]) -> list[CorpusItem]:
        """The records at (file index, line), in the given order (each file read up to its last one)."""
        wanted: dict[int, set[int]] = {}
        for fi, line in chosen:
            wanted.setdefault(fi, set()).add(line)
        parsed: dict[tuple[int, int], CorpusItem] = {}
        for fi, lines in wanted.items():
            f, last = self.files[fi], max(lines)
            for line, obj in _corpus_rows(Path(f)):
                if line in lines:
                    parsed[(fi, line)] = CorpusItem(f, line, record_segments(obj, self.column, f, line))
                if line >= last:
                    break
        return [parsed[k] for k in chosen]
