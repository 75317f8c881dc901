"""Seeds derived from stable names, so each prompt's randomness does not depend on run order."""

from __future__ import annotations

import hashlib


def stable_seed(*parts: object) -> int:
    h = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:4], "little")
