"""Content digest of a constitution: sha256 over a canonical JSON form of the validated model.

Comments, whitespace, key order and spelling out a default value do not change it; any change to
a value does.
"""

from __future__ import annotations

import hashlib

from charter.constitution.model import Constitution
from charter.core import digests


def canonical_json(constitution: Constitution) -> str:
    data = constitution.model_dump(mode="json")
    return digests.canonical_json(data)


def constitution_digest(constitution: Constitution) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(constitution).encode("utf-8")).hexdigest()
