"""Constitutions: the TOML file people edit, its validated model, digest and diff."""

from charter.constitution.diff import ConstitutionDiff, diff_constitutions
from charter.constitution.digest import canonical_json, constitution_digest
from charter.constitution.loader import (
    bundled_names,
    constitution_text,
    load_constitution,
    parse_constitution,
)
from charter.constitution.model import (
    DEFAULT_TIERS,
    DEPTH_PRESETS,
    Constitution,
    ContentCategories,
    ContentCategory,
    CritiqueExample,
    PreferenceExample,
    Principle,
    Tier,
)

__all__ = [
    "DEFAULT_TIERS",
    "DEPTH_PRESETS",
    "Constitution",
    "ConstitutionDiff",
    "ContentCategories",
    "ContentCategory",
    "CritiqueExample",
    "PreferenceExample",
    "Principle",
    "Tier",
    "bundled_names",
    "canonical_json",
    "constitution_digest",
    "constitution_text",
    "diff_constitutions",
    "load_constitution",
    "parse_constitution",
]
