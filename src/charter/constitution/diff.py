"""Structural diff of two constitutions: principles added/removed/changed, tier moves, hard constraints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from charter.constitution.digest import constitution_digest
from charter.constitution.model import Constitution, Principle


@dataclass
class TierMove:
    principle: str
    old_tier: str
    new_tier: str
    direction: str  # "up" (higher priority), "down" or "renamed" (tier absent from the other side)


@dataclass
class PrincipleChange:
    principle: str
    fields: list[str]


@dataclass
class ConstitutionDiff:
    old_digest: str
    new_digest: str
    metadata_changed: list[str] = field(default_factory=list)
    tiers_changed: bool = False
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[PrincipleChange] = field(default_factory=list)
    tier_moves: list[TierMove] = field(default_factory=list)
    hard_constraints_added: list[str] = field(default_factory=list)
    hard_constraints_removed: list[str] = field(default_factory=list)
    hard_constraints_changed: list[str] = field(default_factory=list)
    categories_added: list[str] = field(default_factory=list)
    categories_removed: list[str] = field(default_factory=list)
    categories_changed: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.old_digest == self.new_digest

    def to_dict(self) -> dict:
        return asdict(self) | {"identical": self.identical}


def _fields_changed(a: Principle, b: Principle) -> list[str]:
    da, db = a.model_dump(mode="json"), b.model_dump(mode="json")
    return sorted(k for k in da if da[k] != db[k])


def _categories(c: Constitution) -> dict[str, dict]:
    return {
        f"{side}:{cat.id}": cat.model_dump(mode="json")
        for side in ("prohibited", "allowed")
        for cat in getattr(c.categories, side)
    }


def diff_constitutions(old: Constitution, new: Constitution) -> ConstitutionDiff:
    d = ConstitutionDiff(constitution_digest(old), constitution_digest(new))
    for key in ("name", "version", "description", "attribution", "refusal"):
        if getattr(old, key) != getattr(new, key):
            d.metadata_changed.append(key)
    if old.examples != new.examples:
        d.metadata_changed.append("examples")
    d.tiers_changed = [t.id for t in old.tiers] != [t.id for t in new.tiers]

    olds = {p.id: p for p in old.principles}
    news = {p.id: p for p in new.principles}
    d.added = [i for i in news if i not in olds]
    d.removed = [i for i in olds if i not in news]
    for pid in (i for i in olds if i in news):
        a, b = olds[pid], news[pid]
        fields = _fields_changed(a, b)
        if fields:
            d.changed.append(PrincipleChange(pid, fields))
        if a.tier != b.tier:
            ids = [t.id for t in new.tiers]
            if a.tier in ids and b.tier in ids:
                direction = "up" if ids.index(b.tier) < ids.index(a.tier) else "down"
            else:
                direction = "renamed"
            d.tier_moves.append(TierMove(pid, a.tier, b.tier, direction))
        if a.is_hard_constraint and b.is_hard_constraint and fields:
            d.hard_constraints_changed.append(pid)
        elif a.is_hard_constraint and not b.is_hard_constraint:
            d.hard_constraints_removed.append(pid)
        elif b.is_hard_constraint and not a.is_hard_constraint:
            d.hard_constraints_added.append(pid)
    d.hard_constraints_added += [i for i in d.added if news[i].is_hard_constraint]
    d.hard_constraints_removed += [i for i in d.removed if olds[i].is_hard_constraint]

    oc, nc = _categories(old), _categories(new)
    d.categories_added = [k for k in nc if k not in oc]
    d.categories_removed = [k for k in oc if k not in nc]
    d.categories_changed = [k for k in oc if k in nc and oc[k] != nc[k]]
    return d
