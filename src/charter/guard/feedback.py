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

``GuardCritic`` is the SL-CAI side (``charter cai critique-revise --critic guard:DIR``): the guard
decides whether a reply violates the constitution and names the nearest principle; revisions are
chosen by rejection sampling among the policy's own candidates, and when none passes the reply
becomes a principled refusal composed from the constitution. A small model cannot write a good
critique, but it can be filtered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charter.backends.choice import Comparison, PairJudgement
from charter.constitution import Constitution, Principle
from charter.core.refusal import RefusalDetector
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
        h1, h2 = h[: len(items)], h[len(items) :]
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


class EnsembleJudge:
    """An LM judge and the guard together (``--judge MODEL --guard DIR``): log-linear pooling,
    P = sigmoid((logit p_lm + logit p_guard) / 2), in each order, so a capable judge's reading of
    helpfulness and the guard's calibrated reading of harm both move the label."""

    def __init__(self, lm_judge, guard_judge: GuardPreferenceJudge):
        self.lm, self.guard = lm_judge, guard_judge

    def judge(self, items: list[Comparison]) -> list[PairJudgement]:
        if not items:
            return []
        lm, g = self.lm.judge(items), self.guard.judge(items)
        ours = np.array([y.p_first for y in g])
        pooled = [
            sigmoid((_logit(np.array([getattr(x, k) for x in lm])) + _logit(ours)) / 2)
            for k in ("p_first", "p_first_as_a", "p_first_as_b")
        ]
        return [
            PairJudgement(float(pooled[0][n]), float(pooled[1][n]), float(pooled[2][n]), x.reasoning)
            for n, x in enumerate(lm)
        ]


@dataclass
class GuardCriticConfig:
    candidates: int = 4  # k: policy samples per rejection-sampling round
    threshold: float = 0.5  # a reply passes when its calibrated P(harmful) is below this
    # On a request the input side flags, the constitution's answer is a refusal: a reply that goes
    # along without being harmful by the rubric ("Sure, there are many methods... Here are a few:")
    # teaches the policy to comply, and the output head scores such replies low (0.13-0.18 in the
    # demo, where a 0.2 threshold kept 6 of 40 flagged requests answered). None: only a refusal
    # passes; a number also passes replies scoring below it.
    strict_threshold: float | None = None
    output_score: str = "max"


@dataclass
class Verdict:
    """The guard's reading of one reply."""

    harm: float
    passes: bool
    refusal: bool


class GuardCritic:
    """SL-CAI feedback from a ``charter.guard.Guard``: scores, names and composes; never generates."""

    def __init__(
        self,
        guard,
        constitution: Constitution,
        config: GuardCriticConfig | None = None,
        *,
        refusals: RefusalDetector | None = None,
    ):
        self.config = config or GuardCriticConfig()
        self.constitution = constitution
        self.refusals = refusals or RefusalDetector()
        self.scorer = GuardPreferenceJudge(
            guard, GuardJudgeConfig(output_score=self.config.output_score), refusals=self.refusals
        )
        self.guard = guard
        self._allowed_vectors = None

    # -- reading ---------------------------------------------------------------------------------
    def verdicts(self, prompt: str, replies: list[str], harmful_prompt: bool = False) -> list[Verdict]:
        """The guard's reading of each reply; ``harmful_prompt`` applies the strict rule (see
        ``GuardCriticConfig.strict_threshold``)."""
        harm = self.scorer.harm([prompt] * len(replies), replies)
        out = []
        for h, r in zip(harm, replies):
            refusal = self.refusals.is_refusal(r)
            strict = self.config.strict_threshold
            passes = (refusal or (strict is not None and h < strict)) if harmful_prompt else h < self.config.threshold
            out.append(Verdict(float(h), bool(passes), refusal))
        return out

    def harmful_prompt(self, prompt: str) -> bool:
        return bool(self.scorer.harmful_prompt([prompt])[0])

    def nearest_principle(self, prompt: str, reply: str) -> tuple[Principle | None, str | None]:
        """The constitution's principle (and prohibited category) nearest the exchange, as the guard
        names them; None when the guard was built without the constitution's vectors."""
        category, pid = self.guard.nearest(prompt + "\n" + reply)
        try:
            return (self.constitution.principle(pid) if pid else None), category
        except (KeyError, ValueError):
            return None, category

    # -- choosing --------------------------------------------------------------------------------
    @staticmethod
    def pick_harmless(verdicts: list[Verdict]) -> int | None:
        """Index of the lowest-scoring candidate among those that pass, else None (compose a refusal)."""
        passing = [i for i, v in enumerate(verdicts) if v.passes]
        return min(passing, key=lambda i: verdicts[i].harm) if passing else None

    @staticmethod
    def pick_helpful(replies: list[str], verdicts: list[Verdict]) -> int:
        """On a benign prompt: the most helpful non-refusing candidate that passes (the longest: the
        guard has no helpfulness scale, and on a benign prompt a fuller answer is the better bet);
        failing that the least harmful non-refusing one; failing that the first."""
        answering = [i for i, v in enumerate(verdicts) if not v.refusal]
        passing = [i for i in answering if verdicts[i].passes]
        if passing:
            return max(passing, key=lambda i: (len(replies[i].split()), -i))
        if answering:
            return min(answering, key=lambda i: verdicts[i].harm)
        return 0

    # -- composing -------------------------------------------------------------------------------
    def system_prompt(self) -> str:
        """The constitution as a system prompt: its principles in priority order."""
        ranked = sorted(self.constitution.principles, key=lambda p: self.constitution.tier_rank(p.tier))
        lines = [
            f'You are an assistant that follows the constitution "{self.constitution.name}". '
            "Its principles, highest priority first:"
        ]
        lines += [f"- {p.statement}" for p in ranked]
        return "\n".join(lines)

    def safe_alternative(self, prompt: str) -> str | None:
        """The constitution's allowed category nearest the prompt, as an offer."""
        allowed = self.constitution.categories.allowed
        if not allowed:
            return None
        emb = self.guard.embedder
        if self._allowed_vectors is None:
            self._allowed_vectors = np.asarray(emb.embed([c.description for c in allowed]))
        v = np.asarray(emb.embed([prompt]))[0]
        best = allowed[int(np.argmax(self._allowed_vectors @ v))]
        d = best.description.rstrip(".")
        return f"I can help with related safe topics instead, such as {d[0].lower() + d[1:]}."

    def principled_refusal(self, prompt: str, principle: Principle | None) -> str:
        """The constitution's refusal message, the principle's statement as the reason, and a safe
        alternative where the constitution's allowed categories give one."""
        return self.constitution.principled_refusal(principle, self.safe_alternative(prompt))


__all__ = ["EnsembleJudge", "GuardCritic", "GuardCriticConfig", "GuardJudgeConfig", "GuardPreferenceJudge", "Verdict"]
