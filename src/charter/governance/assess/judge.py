"""The guard as the assessment's judge: stage-1 scores over windows of long texts, the block
threshold and the escalation band, and the judged rows of corpus records."""

from __future__ import annotations

from collections.abc import Callable

from charter.governance.assess.config import CorpusItem


class GuardJudge:
    def __init__(self, guard):
        self.guard = guard

    def windows(self, text: str, size: int = 240, overlap: int = 40) -> list[str]:
        """Spans of at most ``size`` embedder tokens, so a long text is judged whole (the embedder
        truncates at 256 tokens)."""
        tok = getattr(getattr(self.guard, "embedder", None), "tokenizer", None)
        if tok is None:
            step = 4 * (size - overlap)
            return [text[i : i + 4 * size] for i in range(0, max(1, len(text) - 4 * overlap), step)] or [text]
        offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
        if len(offsets) <= size:
            return [text]
        out = []
        for start in range(0, len(offsets) - overlap, size - overlap):
            span = offsets[start : start + size]
            out.append(text[span[0][0] : span[-1][1]])
        return out

    def scores(self, side: str, texts: list[str], chunk: int = 256) -> list[float]:
        """Stage-1 score of each text: the maximum over its windows."""
        owners, flat = [], []
        for i, t in enumerate(texts):
            for w in self.windows(t):
                owners.append(i)
                flat.append(w)
        scores = [float("-inf")] * len(texts)
        for start in range(0, len(flat), chunk):
            for j, s in enumerate(self.guard.stage1_scores(side, flat[start : start + chunk])):
                i = owners[start + j]
                scores[i] = max(scores[i], float(s))
        return scores

    def threshold(self, side: str) -> float:
        return float(self.guard.spec["sides"][side]["block_threshold"])

    def borderline(self, side: str, score: float) -> bool:
        """In the escalation band: allowed by stage 1, but a stage-2 classifier would look again."""
        s = self.guard.spec["sides"][side]
        return s["escalation_threshold"] < score <= s["block_threshold"]

    def judge_corpus(self, items: list[CorpusItem], report: Callable[[int], None]) -> list[dict]:
        rows = []
        batch = 64
        for start in range(0, len(items), batch):
            part = items[start : start + batch]
            segs = [(i, s) for i, it in enumerate(part) for s in it.segments]  # (item, (side, text, context))
            scores = [0.0] * len(segs)
            for side in ("input", "output"):
                ks = [k for k, (_, s) in enumerate(segs) if s[0] == side]
                for k, sc in zip(ks, self.scores(side, [segs[k][1][1] for k in ks]) if ks else []):
                    scores[k] = sc
            for i, it in enumerate(part):
                judged = [
                    {
                        "side": s[0],
                        "score": scores[k],
                        "threshold": self.threshold(s[0]),
                        "block": scores[k] > self.threshold(s[0]),
                        "borderline": self.borderline(s[0], scores[k]),
                        "context": s[2],
                        "text": s[1],
                    }
                    for k, (j, s) in enumerate(segs)
                    if j == i
                ]
                rows.append(
                    {
                        "id": it.id,
                        "source": it.source,
                        "line": it.line,
                        "score": max((j["score"] for j in judged), default=None),
                        "qualified": not any(j["block"] for j in judged),
                        "empty": False,
                        "borderline": not any(j["block"] for j in judged) and any(j["borderline"] for j in judged),
                        "segments": judged,
                    }
                )
            report(start + len(part))
        return rows
