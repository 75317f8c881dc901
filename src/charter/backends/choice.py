"""Two-choice judgements: P(A) from the log-probs of the choice tokens, both orders combined, and
the records a judge returns. Shared by every judge that asks "A or B?" (the RLAIF labeller, the
evaluation judges, the exchange classifier) and by the guard's judge, which answers from scores."""

from __future__ import annotations

import math
from dataclasses import dataclass

from charter.constitution import PreferenceExample, Principle

CHOICES = ("A", "B")
COT_CLAMP = (0.4, 0.6)


def choice_probability(logp_a: float, logp_b: float) -> float:
    """P(A) normalised over the two choice tokens (a softmax over their log-probs)."""
    if math.isinf(logp_a) and math.isinf(logp_b):
        return 0.5
    m = max(logp_a, logp_b)
    ea, eb = math.exp(logp_a - m), math.exp(logp_b - m)
    return ea / (ea + eb)


def combine_orders(p_first_as_a: float, p_first_as_b: float, *, cot: bool = False) -> float:
    """Preference for the first response: P(A) when it was option A, averaged with P(B) when it
    was option B; with chain-of-thought, clamped to [0.4, 0.6] (the paper: CoT probabilities are
    overconfident)."""
    p = 0.5 * (p_first_as_a + p_first_as_b)
    return min(max(p, COT_CLAMP[0]), COT_CLAMP[1]) if cot else p


@dataclass
class PairJudgement:
    p_first: float  # preference for the first response, both orders averaged (clamped with CoT)
    p_first_as_a: float
    p_first_as_b: float
    reasoning: tuple[str, str] | None = None


@dataclass
class Comparison:
    prompt: str
    first: str
    second: str
    principle: Principle
    examples: tuple[PreferenceExample, ...] = ()
