"""Training data: SL-CAI SFT records and AI-feedback preference pairs, validated line by line.

SFT rows: ``messages`` (the last turn is the assistant's and is what is learned) or
``prompt`` + ``completion``. Preference rows: ``prompt``, ``chosen``, ``rejected`` (TRL's DPO
format, plain or conversational) and ``p_chosen`` for soft labels. Either may carry
``principles`` (list) or ``principle`` (one id): the principles that shaped the example, which
decide where routing sends its gradients. Rows without any train every block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from charter.core.errors import InputError
from charter.core.io import json_records
from charter.train.routing import RoutingPlan, group_key


@dataclass
class TrainingData:
    rows: list[dict]
    source: str
    groups: list[str] = field(default_factory=list)

    def group_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for g in self.groups:
            counts[g] = counts.get(g, 0) + 1
        return counts


def _read_rows(path: str | Path) -> list[tuple[int, dict]]:
    p = Path(path)
    if not p.exists():
        raise InputError("no such data file", source=str(p))
    if not p.is_file():
        raise InputError("not a file", source=str(p))
    rows = json_records(p.read_text(encoding="utf-8-sig"), str(p), json_array=p.suffix.lower() == ".json")
    if not rows:
        raise InputError("data file holds no records", source=str(p))
    for i, r in rows:
        if not isinstance(r, dict):
            raise InputError("record is not a JSON object", source=str(p), line=i)
    return rows


def _is_text_or_turns(v: object) -> bool:
    if isinstance(v, str):
        return bool(v.strip())
    return (
        isinstance(v, list)
        and bool(v)
        and all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in v)
    )


def _principles(r: dict, source: str, line: int) -> list[str]:
    if "principles" in r:
        ps = r["principles"]
        if not isinstance(ps, list) or not all(isinstance(x, str) for x in ps):
            raise InputError("field 'principles' must be a list of principle ids", source=source, line=line)
        return ps
    if "principle" in r:
        if not isinstance(r["principle"], str):
            raise InputError("field 'principle' must be a principle id", source=source, line=line)
        return [r["principle"]]
    return []


def load_sft_data(path: str | Path, plan: RoutingPlan | None = None, limit: int | None = None) -> TrainingData:
    source = str(path)
    rows, groups = [], []
    for line, r in _read_rows(path)[:limit]:
        if "messages" in r:
            msgs = r["messages"]
            if not _is_text_or_turns(msgs) or isinstance(msgs, str):
                raise InputError("field 'messages' must be a list of {role, content} turns", source=source, line=line)
            if msgs[-1]["role"] != "assistant" or len(msgs) < 2:
                raise InputError(
                    "'messages' must end with an assistant turn after at least one user turn", source=source, line=line
                )
            prompt, completion = msgs[:-1], msgs[-1:]
        elif "prompt" in r or "completion" in r:
            for col in ("prompt", "completion"):
                if col not in r:
                    raise InputError(f"missing column {col!r}", source=source, line=line)
                if not _is_text_or_turns(r[col]):
                    raise InputError(
                        f"column {col!r} must be text or a list of {{role, content}} turns", source=source, line=line
                    )
            prompt, completion = r["prompt"], r["completion"]
            if isinstance(prompt, str) != isinstance(completion, str):
                raise InputError(
                    "'prompt' and 'completion' must both be text or both be turns", source=source, line=line
                )
        else:
            raise InputError(
                f"missing column 'messages' (or 'prompt' + 'completion'); found: {', '.join(sorted(r)) or 'nothing'}",
                source=source,
                line=line,
            )
        principles = _principles(r, source, line)
        if plan is not None:
            plan.check_known(principles, source, line)
        key = group_key(principles)
        rows.append({"prompt": prompt, "completion": completion, "charter_group": key})
        groups.append(key)
    return TrainingData(rows, source, groups)


def load_preference_data(
    path: str | Path, plan: RoutingPlan | None = None, soft_labels: bool = True, limit: int | None = None
) -> TrainingData:
    source = str(path)
    rows, groups = [], []
    for line, r in _read_rows(path)[:limit]:
        for col in ("prompt", "chosen", "rejected"):
            if col not in r:
                raise InputError(
                    f"missing column {col!r} (preference rows need prompt, chosen, rejected)", source=source, line=line
                )
            if not _is_text_or_turns(r[col]):
                raise InputError(
                    f"column {col!r} must be text or a list of {{role, content}} turns", source=source, line=line
                )
        if len({isinstance(r[c], str) for c in ("prompt", "chosen", "rejected")}) > 1:
            raise InputError(
                "'prompt', 'chosen' and 'rejected' must all be text or all be turns", source=source, line=line
            )
        if soft_labels:
            if "p_chosen" not in r:
                raise InputError(
                    "missing column 'p_chosen' (needed for soft labels; pass --labels hard to train without)",
                    source=source,
                    line=line,
                )
            p = r["p_chosen"]
            if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.5 <= p <= 1.0:
                raise InputError(
                    f"'p_chosen' must be a number in [0.5, 1] (the chosen answer is the preferred one), got {p!r}",
                    source=source,
                    line=line,
                )
        principles = _principles(r, source, line)
        if plan is not None:
            plan.check_known(principles, source, line)
        key = group_key(principles)
        rows.append(
            {
                "prompt": r["prompt"],
                "chosen": r["chosen"],
                "rejected": r["rejected"],
                "p_chosen": float(r["p_chosen"]) if soft_labels else 1.0,
                "charter_group": key,
            }
        )
        groups.append(key)
    return TrainingData(rows, source, groups)
