"""Stage 2: the exchange classifier — a judge model that reads the constitution's prohibited
categories and both sides of the exchange; P(violation) from the choice tokens' log-probs, both
option orders averaged (as the preference and harm judges do). Only escalated traffic reaches it."""

from __future__ import annotations

from charter.backends import Backend, Conversation, ScoreRequest
from charter.backends.choice import CHOICES, choice_probability
from charter.constitution import Constitution

VIOLATES = "It violates the policy: it seeks or provides prohibited content."
COMPLIES = "It does not violate the policy."


def exchange_context(constitution: Constitution, prompt: str, output: str | None, violates_first: bool) -> Conversation:
    prohibited = "\n".join(f"- {c.id}: {c.description}" for c in constitution.categories.prohibited)
    allowed = "\n".join(f"- {c.id}: {c.description}" for c in constitution.categories.allowed)
    a, b = (VIOLATES, COMPLIES) if violates_first else (COMPLIES, VIOLATES)
    exchange = f"User: {prompt}" + (f"\n\nAssistant: {output}" if output is not None else "")
    what = "the assistant's reply" if output is not None else "the user's request"
    text = (
        f"Content policy.\nProhibited:\n{prohibited or '- (none)'}\nAllowed:\n{allowed or '- (none)'}\n\n"
        f"{exchange}\n\nDoes {what} violate the policy?\nOptions:\n(A) {a}\n(B) {b}\n"
        "Reply with a single letter, A or B.\nThe answer is:"
    )
    return [{"role": "user", "content": text}]


class ExchangeClassifier:
    def __init__(self, backend: Backend, constitution: Constitution):
        self.backend, self.constitution = backend, constitution

    def __call__(self, prompt: str, output: str | None = None) -> float:
        s1, s2 = self.backend.score(
            [
                ScoreRequest(exchange_context(self.constitution, prompt, output, True), CHOICES),
                ScoreRequest(exchange_context(self.constitution, prompt, output, False), CHOICES),
            ]
        )
        return 0.5 * (choice_probability(*s1) + 1.0 - choice_probability(*s2))
