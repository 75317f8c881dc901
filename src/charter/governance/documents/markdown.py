"""Markdown formatting shared by the documents' sections: figures as text, and tables."""

from __future__ import annotations

from typing import Any


def _pct(r: dict) -> str:
    if not isinstance(r, dict) or r.get("rate") is None:
        return "—"
    lo, hi = (r.get("ci95") or [None, None])[:2]
    ci = f" (95% CI {lo:.1%}–{hi:.1%})" if lo is not None and hi is not None else ""
    return f"{r['rate']:.1%}{ci}, n={r['n']}"


def _share(x: Any) -> str:
    return f"{x:.1%}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "—"


def _num(x: Any) -> str:
    return "—" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


def _table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
