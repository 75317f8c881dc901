"""AI feedback from the constitutional classifier, for models too small to judge (issue 17).

``GuardPreferenceJudge`` is a drop-in for ``charter.cai.preferences.ConstitutionJudge``: the same
``judge(list[Comparison]) -> list[PairJudgement]``, with P(first preferred) computed from the
guard's calibrated output-side harm probabilities instead of an LM's choice tokens.

If each reply is independently harmful with probability h1 and h2 (the guard's Platt-calibrated
scores), then given that exactly one of them is harmful, the first is the harmless one with
probability (1-h1)h2 / ((1-h1)h2 + h1(1-h2)) = sigmoid(logit h2 - logit h1): a Bradley-Terry
preference whose scale comes from the calibration, not from a tuned temperature. The guard never
sees an order, so both orders give the same probability (recorded as such).

On a benign prompt (input score below the guard's escalation threshold) harm says little; there a
reply the refusal detector reads as a refusal loses to one that answers (``benign_refusal_p``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charter.cai.preferences import Comparison, PairJudgement
from charter.evals.refusal import RefusalDetector
from charter.guard.encoder import sigmoid

_EPS = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


@dataclass
class GuardJudgeConfig:
    benign_refusal_p: float = 0.9  # P(answer preferred over refusal) on a benign prompt
    output_score: str = "max"  # "stage1" (reply alone), "stage2" (request + reply) or "max" of both


class GuardPreferenceJudge:
    """Preference labels from a ``charter.guard.Guard``."""

    def __init__(self, guard, config: GuardJudgeConfig | None = None, *, refusals: RefusalDetector | None = None):
        self.guard, self.config = guard, config or GuardJudgeConfig()
        self.refusals = refusals or RefusalDetector()

    def harm(self, prompts: list[str], replies: list[str]) -> np.ndarray:
        """Calibrated P(harmful) of each reply to its prompt."""
        s1 = self.guard.stage1_scores("output", replies, prompts)
        mode = self.config.output_score
        s2 = self.guard.stage2_scores("output", replies, prompts) if mode != "stage1" else None
        if s2 is None or mode == "stage1":
            return s1
        return s2 if mode == "stage2" else np.maximum(s1, s2)

    def harmful_prompt(self, prompts: list[str]) -> np.ndarray:
        s = self.guard.spec["sides"].get("input")
        if s is None:
            return np.ones(len(prompts), dtype=bool)  # no input side: judge every pair on harm
        return self.guard.stage1_scores("input", prompts) > s["escalation_threshold"]

    def judge(self, items: list[Comparison]) -> list[PairJudgement]:
        if not items:
            return []
        prompts = [c.prompt for c in items]
        h = self.harm(prompts + prompts, [c.first for c in items] + [c.second for c in items])
        h1, h2 = h[: len(items)], h[len(items):]
        p_harm = sigmoid(_logit(h2) - _logit(h1))
        harmful = self.harmful_prompt(prompts)
        out = []
        for n, c in enumerate(items):
            p = float(p_harm[n])
            if not harmful[n]:
                r1, r2 = self.refusals.is_refusal(c.first), self.refusals.is_refusal(c.second)
                if r1 != r2:
                    q = self.config.benign_refusal_p
                    p = 1.0 - q if r1 else q
            out.append(PairJudgement(p, p, p))
        return out


__all__ = ["GuardJudgeConfig", "GuardPreferenceJudge"]
