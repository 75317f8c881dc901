"""Traceability: every figure a document shows, with the statement digest and JSON pointer (or the
file and sha256) it was read from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from charter.governance.sealed import SealedStage


def _escape(part: Any) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def resolve_pointer(doc: Any, pointer: str) -> Any:
    """RFC 6901 JSON pointer lookup (what a reviewer runs against the statement)."""
    node = doc
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


@dataclass
class Trace:
    items: list[dict] = field(default_factory=list)

    def fig(self, stage: SealedStage, path: tuple, fmt: Callable[[Any], str] = str, label: str = "") -> str:
        """The value at ``path`` in ``stage``'s statement, formatted, and recorded with its pointer."""
        value: Any = stage.statement
        for part in path:
            value = value[part]
        shown = fmt(value)
        self.items.append(
            {
                "label": label or path[-1],
                "shown": shown,
                "value": value,
                "source": "statement",
                "statement_digest": stage.statement_digest,
                "model_dir": stage.model_dir,
                "pointer": "/" + "/".join(_escape(p) for p in path),
            }
        )
        return shown

    def file_fig(
        self, label: str, value: Any, file: str, digest: str, fmt: Callable[[Any], str] = str, source: str = "file"
    ) -> str:
        """A figure read from a file: one the seal covers (``file``), or a runtime input beside it
        (``gateway-config``, ``profile``, ``assessment``), named by its sha256."""
        shown = fmt(value)
        self.items.append(
            {"label": label, "shown": shown, "value": value, "source": source, "file": file, "sha256": digest}
        )
        return shown
