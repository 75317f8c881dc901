"""Drafting a constitution from the statements every group endorses."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charter.constitution.loader import parse_constitution
from charter.constitution.model import DEFAULT_TIERS
from charter.core.errors import InputError, require_at_least_one
from charter.core.io import write_text_atomic
from charter.governance.collective.analysis import agree_rate
from charter.governance.collective.votes import ANALYSIS_JSON, DEFAULT_MIN_GROUP_AGREE

# -- drafting a constitution ---------------------------------------------------------------------


@dataclass
class DraftConfig:
    """Arguments of ``charter collective draft`` (one field per CLI flag).

    Selection: with neither ``threshold`` nor ``min_group_agree`` given, every opinion group's
    smoothed agree rate must be at least 0.6 (``DEFAULT_MIN_GROUP_AGREE``). ``threshold`` selects
    by the consensus product instead (its scale shrinks with the number of groups: 0.6 in each of
    3 groups is 0.216); give both to require both.
    """

    analysis: str
    out: str
    threshold: float | None = None
    min_group_agree: float | None = None
    min_seen: int = 5  # votes each group must have cast on a statement
    max_principles: int | None = None
    name: str = "collective-constitution"
    version: str = "0.1.0"
    tier: str = "broadly_ethical"

    def validate(self) -> None:
        for flag, v in (("--threshold", self.threshold), ("--min-group-agree", self.min_group_agree)):
            if v is not None and not 0.0 < v < 1.0:
                raise InputError(f"must be in (0, 1), got {v}", source=flag)
        if self.threshold is None and self.min_group_agree is None:
            self.min_group_agree = DEFAULT_MIN_GROUP_AGREE
        if self.min_seen < 0:
            raise InputError("must be at least 0", source="--min-seen")
        require_at_least_one(self, "max_principles")
        tiers = [t for t, _ in DEFAULT_TIERS]
        if self.tier not in tiers:
            raise InputError(f"unknown tier {self.tier!r} (tiers: {', '.join(tiers)})", source="--tier")
        if not self.name.strip() or not self.version.strip():
            raise InputError(
                "--name and --version must not be empty", source="--name" if not self.name.strip() else "--version"
            )


class ConstitutionDrafter:
    """``charter collective draft``: consensus statements -> a validated constitution TOML."""

    def __init__(self, config: DraftConfig):
        config.validate()
        self.config = config

    def load_analysis(self) -> tuple[dict[str, Any], str]:
        p = Path(self.config.analysis)
        path = p / ANALYSIS_JSON if p.is_dir() else p
        if not path.is_file():
            raise InputError(
                f"no {ANALYSIS_JSON} here: run `charter collective analyze --out DIR` first", source=str(p)
            )
        try:
            a = json.loads(path.read_text(encoding="utf-8"))
            a["consensus"][0]["groups"]  # noqa: B018 (shape check)
            names = [g["id"] for g in a["groups"]]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise InputError(
                f"not an analysis written by `charter collective analyze` ({exc})", source=str(path)
            ) from None
        if not names:
            raise InputError("the analysis has no opinion groups", source=str(path))
        return a, str(path)

    def select(self, a: dict[str, Any]) -> list[dict[str, Any]]:
        """Statements passing the criteria, highest consensus first. Rates are recomputed from
        the counts so a hand-edited threshold in the JSON cannot drift from the formula."""
        cfg = self.config
        picked = []
        rejected = set(a.get("rejected_statements") or ())
        for row in a["consensus"]:
            if row["statement_id"] in rejected or row.get("moderated") == -1:
                continue  # rejected by the moderators: never a principle
            groups = row["groups"]
            rates = {n: float(agree_rate(g["agree"], g["seen"])) for n, g in groups.items()}
            consensus = math.prod(rates.values())
            if min(g["seen"] for g in groups.values()) < cfg.min_seen:
                continue
            if cfg.threshold is not None and consensus < cfg.threshold:
                continue
            if cfg.min_group_agree is not None and min(rates.values()) < cfg.min_group_agree:
                continue
            picked.append(row | {"consensus": consensus, "rates": rates})
        picked.sort(key=lambda r: (-r["consensus"], -r["seen"]))
        return picked[: cfg.max_principles] if cfg.max_principles else picked

    def criterion(self) -> str:
        cfg = self.config
        parts = []
        if cfg.min_group_agree is not None:
            parts.append(f"every opinion group's agree rate (agree+1)/(seen+2) >= {cfg.min_group_agree:g}")
        if cfg.threshold is not None:
            parts.append(f"group-informed consensus >= {cfg.threshold:g}")
        parts.append(f"at least {cfg.min_seen} votes from each group")
        return "; ".join(parts)

    def run(self) -> dict[str, Any]:
        cfg = self.config
        a, source = self.load_analysis()
        picked = self.select(a)
        if not picked:
            best = max(
                (min(float(agree_rate(g["agree"], g["seen"])) for g in r["groups"].values()) for r in a["consensus"]),
                default=0.0,
            )
            raise InputError(
                f"no statement passes the selection ({self.criterion()}); the highest lowest-group agree rate "
                f"is {best:.3f} -- lower --min-group-agree / --threshold or --min-seen",
                source=source,
            )
        text = self.render(a, picked)
        constitution = parse_constitution(text, source=cfg.out)  # never write a file that does not validate
        out = Path(cfg.out)
        if out.is_dir():
            raise InputError("is a directory; give a file name such as constitution.toml", source=cfg.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, text)
        return {
            "out": str(out),
            "principles": len(constitution.principles),
            "candidates": len(a["consensus"]),
            "criterion": self.criterion(),
            "name": constitution.name,
            "version": constitution.version,
            "ids": [p.id for p in constitution.principles],
        }

    def render(self, a: dict[str, Any], picked: list[dict[str, Any]]) -> str:
        cfg = self.config
        c = a["counts"]
        k = len(a["groups"])
        description = (
            f"Drafted from a collective (Polis-style) process: {c['participants']} participants cast {c['votes']} "
            f"votes on {c['statements']} statements, forming {k} opinion groups. Each principle is a participant "
            f"statement endorsed across all groups ({self.criterion()})."
        )
        attribution = (
            "Statements written and voted on by the participants of the collective process; opinion groups and "
            "group-informed consensus computed and this draft generated by `charter collective draft` "
            "(after Collective Constitutional AI). Review before use."
        )
        out = [
            "# Drafted by `charter collective draft` from a collective input process.",
            f"# Source analysis: {a.get('method', 'charter collective analyze')}",
            f"# Selection: {self.criterion()}.",
            "# Principle texts are the participants' statements; critique/revision/preference requests",
            "# are generated from templates. Edit freely: this is a draft for human review.",
            "",
            f"name = {toml_string(cfg.name)}",
            f"version = {toml_string(cfg.version)}",
            f"description = {toml_string(description)}",
            f"attribution = {toml_string(attribution)}",
        ]
        for tier, desc in DEFAULT_TIERS:
            out += ["", "[[tiers]]", f"id = {toml_string(tier)}", f"description = {toml_string(desc)}"]
        ids: set[str] = set()
        for row in picked:
            statement = " ".join(row["text"].split())
            pid = _unique(principle_slug(statement, row["statement_id"]), ids)
            rates = ", ".join(f"{n} {r:.2f}" for n, r in row["rates"].items())
            rationale = (
                f"Publicly endorsed in the collective process (statement {row['statement_id']}): group-informed "
                f"consensus {row['consensus']:.3f} across {k} opinion groups; group agree rates {rates}; "
                f"{row['agree']} of {row['seen']} participants who voted on it agreed."
            )
            out += [
                "",
                "[[principles]]",
                f"id = {toml_string(pid)}",
                f"tier = {toml_string(cfg.tier)}",
                'kind = "default_behaviour"',
                f"statement = {toml_string(statement)}",
                f"rationale = {toml_string(rationale)}",
                "critique = "
                + toml_string(
                    "Identify specific ways in which the assistant's last response conflicts with this publicly "
                    f"endorsed principle: {statement}"
                ),
                "revision = "
                + toml_string(f"Please rewrite the assistant response so that it follows this principle: {statement}"),
                "preference = " + toml_string(f"Which response better follows this principle: {statement}"),
            ]
        return "\n".join(out) + "\n"


def toml_string(s: str) -> str:
    """A TOML basic string. JSON's escapes are TOML's (\\" \\\\ \\n \\t \\uXXXX ...), except that TOML
    also forbids a raw DEL, which JSON leaves alone."""
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007F")


def principle_slug(text: str, statement_id: str, max_len: int = 48) -> str:
    """A readable principle id from the statement's words (cut at a word), else from its id."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    slug = ""
    for w in words:
        if len(slug) + len(w) + 1 > max_len:
            break
        slug = f"{slug}-{w}" if slug else w
    if not slug:
        slug = "statement-" + ("-".join(re.findall(r"[a-z0-9]+", statement_id.lower())) or "x")
    return slug


def _unique(slug: str, taken: set[str]) -> str:
    out, n = slug, 2
    while out in taken:
        out, n = f"{slug}-{n}", n + 1
    taken.add(out)
    return out
