"""Pydantic models of a constitution: tiers, principles, content categories, few-shot examples."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

# The 2026 reason-based constitution's priority order, highest first.
DEFAULT_TIERS: tuple[tuple[str, str], ...] = (
    ("broadly_safe", "Not undermining appropriate human oversight of AI during this period."),
    ("broadly_ethical", "Good values, honesty, and avoiding actions that are harmful."),
    ("guidelines", "Following the deployer's and developer's more specific guidelines."),
    ("genuinely_helpful", "Benefiting the people it works with and, through them, the world."),
)

# Named depth hints as fractions of the layer stack (0 = first layer after the embeddings,
# 1 = the last block). Training routes a principle's gradients to the blocks in this range.
DEPTH_PRESETS: dict[str, tuple[float, float]] = {
    "shallow": (0.0, 1 / 3),
    "middle": (1 / 3, 2 / 3),
    "deep": (2 / 3, 1.0),
}

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
PrincipleKind = Literal["hard_constraint", "default_behaviour", "style"]


def _check_id(v: str) -> str:
    if not ID_PATTERN.match(v):
        raise ValueError(f"id {v!r} must be lower-case letters, digits, '_', '-' or '.'")
    return v


Slug = Annotated[str, AfterValidator(_check_id)]


class _Strict(BaseModel):
    # Unknown keys are typos in a hand-edited file: reject them rather than ignore them.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Tier(_Strict):
    id: Slug
    description: str = ""


class CritiqueExample(_Strict):
    """A worked critique -> revision dialogue, shown to the model as few-shot turns."""

    prompt: str
    response: str
    critique_request: str | None = None
    critique: str
    revision_request: str | None = None
    revision: str


class PreferenceExample(_Strict):
    """A worked multiple-choice comparison for AI-feedback labelling."""

    conversation: str
    option_a: str
    option_b: str
    answer: Literal["A", "B"]
    reasoning: str | None = None


DepthHint = Union[Literal["deep", "middle", "shallow"], tuple[float, float]]


class Principle(_Strict):
    id: Slug
    tier: str
    kind: PrincipleKind = "default_behaviour"
    statement: str = Field(min_length=1)
    rationale: str = ""
    critique: str = Field(min_length=1, description="Critique request shown after a response.")
    revision: str = Field(min_length=1, description="Revision request shown after the critique.")
    preference: str = Field(
        default="",
        description="Multiple-choice question for AI feedback, e.g. 'Which response is less harmful?'",
    )
    depth: DepthHint = "middle"
    examples: tuple[CritiqueExample, ...] = ()
    preference_examples: tuple[PreferenceExample, ...] = ()

    @field_validator("kind", mode="before")
    @classmethod
    def _normalise_kind(cls, v: object) -> object:
        # People write "hard constraint", "hard-constraint" or "default behavior"; accept them all.
        if isinstance(v, str):
            v = v.strip().lower().replace("-", "_").replace(" ", "_")
            v = {"default_behavior": "default_behaviour"}.get(v, v)
        return v

    @field_validator("depth", mode="before")
    @classmethod
    def _depth(cls, v: object) -> object:
        if isinstance(v, list):
            v = tuple(v)
        if isinstance(v, tuple):
            if len(v) != 2 or not all(isinstance(x, (int, float)) for x in v):
                raise ValueError("depth fractions must be two numbers [start, end]")
            a, b = float(v[0]), float(v[1])
            if not (0.0 <= a < b <= 1.0):
                raise ValueError(f"depth fractions need 0 <= start < end <= 1, got [{a}, {b}]")
            return (a, b)
        return v

    @property
    def depth_fractions(self) -> tuple[float, float]:
        return DEPTH_PRESETS[self.depth] if isinstance(self.depth, str) else self.depth

    def layer_range(self, n_layers: int) -> range:
        """The transformer blocks this principle is routed to, for a model with n_layers blocks."""
        a, b = self.depth_fractions
        start = min(int(a * n_layers), n_layers - 1)
        stop = max(start + 1, round(b * n_layers))
        return range(start, stop)

    @property
    def is_hard_constraint(self) -> bool:
        return self.kind == "hard_constraint"


class ContentCategory(_Strict):
    id: Slug
    description: str = Field(min_length=1)
    examples: tuple[str, ...] = ()


class ContentCategories(_Strict):
    prohibited: tuple[ContentCategory, ...] = ()
    allowed: tuple[ContentCategory, ...] = ()


class Constitution(_Strict):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    description: str = ""
    attribution: str = ""
    tiers: tuple[Tier, ...] = tuple(Tier(id=i, description=d) for i, d in DEFAULT_TIERS)
    principles: tuple[Principle, ...] = Field(min_length=1)
    examples: tuple[CritiqueExample, ...] = Field(
        default=(), description="Few-shot critique dialogues usable with any principle."
    )
    categories: ContentCategories = ContentCategories()
    refusal: str = Field(
        default="I can't help with that, but I'm happy to help with something else.",
        min_length=1,
        description="The refusal / safe-completion message used when a request is blocked.",
    )

    @field_validator("tiers", mode="before")
    @classmethod
    def _tiers_from_strings(cls, v: object) -> object:
        # `tiers = ["a", "b"]` is the short form of [[tiers]] tables.
        if isinstance(v, (list, tuple)):
            return tuple({"id": t} if isinstance(t, str) else t for t in v)
        return v

    @model_validator(mode="after")
    def _references(self) -> Constitution:
        tier_ids = [t.id for t in self.tiers]
        if not tier_ids:
            raise ValueError("at least one tier is required")
        if len(set(tier_ids)) != len(tier_ids):
            raise ValueError(f"duplicate tier ids in {tier_ids}")
        seen: set[str] = set()
        for i, p in enumerate(self.principles):
            if p.id in seen:
                raise _LocatedError(("principles", i, "id"), f"duplicate principle id {p.id!r}")
            seen.add(p.id)
            if p.tier not in tier_ids:
                raise _LocatedError(
                    ("principles", i, "tier"),
                    f"unknown tier {p.tier!r} (tiers: {', '.join(tier_ids)})",
                )
        cats = [c.id for c in (*self.categories.prohibited, *self.categories.allowed)]
        dup = {c for c in cats if cats.count(c) > 1}
        if dup:
            raise ValueError(f"duplicate content category ids: {', '.join(sorted(dup))}")
        return self

    # -- queries -------------------------------------------------------------------------------
    def tier_rank(self, tier_id: str) -> int:
        """0 for the highest-priority tier."""
        return [t.id for t in self.tiers].index(tier_id)

    def principle(self, principle_id: str) -> Principle:
        for p in self.principles:
            if p.id == principle_id:
                return p
        raise KeyError(principle_id)

    @property
    def hard_constraints(self) -> tuple[Principle, ...]:
        return tuple(p for p in self.principles if p.is_hard_constraint)

    @property
    def helpfulness_principle(self) -> Principle:
        """The first principle of the lowest-priority tier (genuinely helpful in the default order):
        what a refused benign request is short of."""
        return max(self.principles, key=lambda p: self.tier_rank(p.tier))

    def principled_refusal(self, principle: Principle | None = None, alternative: str | None = None) -> str:
        """A refusal composed from the constitution alone: its refusal message, the principle's
        statement as the reason, and a safe alternative when the caller has one to offer."""
        parts = [self.refusal.strip()]
        if principle is not None:
            parts.append(f"It conflicts with a principle I follow: {principle.statement}")
        if alternative:
            parts.append(alternative)
        return " ".join(parts)

    def examples_for(self, principle: Principle) -> tuple[CritiqueExample, ...]:
        """Few-shot dialogues for a principle: its own first, then the constitution-wide ones."""
        return principle.examples + self.examples


class _LocatedError(ValueError):
    """A model-level validation error that knows which field it is about."""

    def __init__(self, loc: tuple, message: str):
        self.loc = loc
        super().__init__(message)
