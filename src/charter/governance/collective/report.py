"""Rendering an analysis: analysis.json, representative statements, the groups plot, the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charter.core.io import save_figure_atomic
from charter.governance.collective.votes import GROUP_NAMES, Z_90

if TYPE_CHECKING:
    from charter.governance.collective.analysis import CollectiveResult


def analysis_json(a: dict[str, Any]) -> str:
    """analysis.json: indented, except one line per consensus row. Indenting forces json's pure
    Python encoder, which took seconds over 10^4 statements; one row a line is as readable."""
    head = json.dumps({key: v for key, v in a.items() if key != "consensus"}, indent=2, ensure_ascii=False)
    rows = ",\n    ".join(json.dumps(row, ensure_ascii=False) for row in a["consensus"])
    return head[: -len("\n}")] + f',\n  "consensus": [\n    {rows}\n  ]\n}}\n'


def plot_groups(r: CollectiveResult, path: Path) -> None:
    """Participants on the two components, coloured by group, each group labelled at its centre.
    Uses the Agg canvas directly, so no global matplotlib backend is switched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    out = r.labels < 0
    if out.any():
        ax.scatter(*r.projection[out].T, s=6, c="#bbbbbb", alpha=0.5, linewidths=0, label="not clustered (few votes)")
    colors = [
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#d62728",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
        "#bcbd22",
        "#17becf",
    ]
    for grp in r.analysis["groups"]:
        j = GROUP_NAMES.index(grp["id"])
        pts = r.projection[r.labels == j]
        color = colors[j % len(colors)]
        ax.scatter(*pts.T, s=8, c=color, alpha=0.6, linewidths=0, label=f"group {grp['id']} (n={grp['size']})")
        ax.annotate(
            grp["id"],
            grp["centroid"],
            fontsize=16,
            fontweight="bold",
            ha="center",
            va="center",
            color="black",
            bbox={"boxstyle": "circle", "fc": "white", "ec": color, "alpha": 0.9},
        )
    evr = r.explained_variance_ratio
    ax.set_xlabel(f"PC1 ({evr[0]:.1%} of variance)")
    ax.set_ylabel(f"PC2 ({evr[1]:.1%} of variance)")
    sil = r.silhouette.get(r.k)
    ax.set_title(f"Opinion groups: k = {r.k}" + (f", silhouette {sil:.2f}" if sil is not None else ""))
    ax.legend(loc="best", fontsize=8, markerscale=2)
    fig.tight_layout()
    save_figure_atomic(fig, path)


def render_report(a: dict[str, Any], top: int = 10) -> str:
    """report.md: overview, groups with representative statements, consensus, divisive."""
    c = a["counts"]
    names = [g["id"] for g in a["groups"]]
    sil = ", ".join(f"k={k}: {'-' if v is None else f'{v:.3f}'}" for k, v in a["silhouette"].items())
    evr = a["explained_variance_ratio"]
    lines = [
        "# Collective constitution: opinion groups and consensus",
        "",
        f"- {c['participants']} participants ({c['participants_clustered']} with at least "
        f"{a['params']['min_votes']} votes were clustered), {c['statements']} statements "
        f"({c['statements_with_votes']} with votes), {c['votes']} votes "
        f"({c['agree']} agree, {c['disagree']} disagree, {c['pass']} pass).",
        *(
            [
                f"- Left out: {c['statements_rejected']} statement(s) the moderators rejected (moderated = -1) and the "
                f"{c['votes_on_rejected_statements']} vote(s) on them."
            ]
            if c.get("statements_rejected")
            else []
        ),
        *(
            [
                f"- {c['votes_superseded']} earlier vote(s) were replaced by the same participant's later re-vote "
                "on the statement (by timestamp)."
            ]
            if c.get("votes_superseded")
            else []
        ),
        f"- Opinion groups: **k = {a['k']}** ({'forced with --k' if a['k_forced'] else 'best silhouette'}; "
        f"silhouette {sil}).",
        f"- The two components explain {evr[0]:.1%} and {evr[1]:.1%} of the vote variance.",
        "- Group-informed consensus = product over groups of (agree + 1) / (seen + 2): it is high only if "
        f"every group agrees; with {a['k']} groups and no votes it is {0.5 ** a['k']:.3f}.",
        "",
        "![groups](groups.png)",
        "",
        "## Groups and their representative statements",
        "",
        "A statement represents a group when the group agrees (or disagrees) with it markedly more than "
        f"everyone else (two-proportion z > {Z_90}) and most of the group holds that view; ranked by the "
        "ratio of the group's rate to the rest's.",
    ]
    lines += _group_lines(a["groups"])
    lines += _consensus_lines(a, names, top)
    lines += _divisive_lines(a, names, top)
    lines += [
        "",
        "Rates are smoothed: (count + 1) / (seen + 2). Draft a constitution from these statements "
        "with `charter collective draft`.",
        "",
    ]
    return "\n".join(lines)


def _group_lines(groups: list[dict]) -> list[str]:
    """One subsection per group: its representative statements as a table."""
    lines = []
    for g in groups:
        lines += ["", f"### Group {g['id']} — {g['size']} participants", ""]
        if not g["representative"]:
            lines.append("No statement separates this group significantly.")
            continue
        lines += ["| statement | view | group | rest | ratio |", "|---|---|---|---|---|"]
        for s in g["representative"]:
            lines.append(
                f"| {_md(s['text'])} ({s['statement_id']}) | {s['direction']} | {s['group_rate']:.2f} | "
                f"{s['rest_rate']:.2f} | {s['ratio']:.2f} |"
            )
    return lines


def _consensus_lines(a: dict[str, Any], names: list[str], top: int) -> list[str]:
    """The ``top`` consensus statements, with each group's agree rate."""
    head = " | ".join(f"{n} agree" for n in names)
    lines = [
        "",
        f"## Top {top} consensus statements",
        "",
        f"| statement | consensus | agree (all) | {head} | votes |",
        "|---|---|---|" + "---|" * len(names) + "---|",
    ]
    for s in a["consensus"][:top]:
        per = " | ".join(f"{s['groups'][n]['agree_rate']:.2f}" for n in names)
        lines.append(
            f"| {_md(s['text'])} ({s['statement_id']}) | {s['consensus']:.3f} | {s['agree_rate']:.2f} | "
            f"{per} | {s['seen']} |"
        )
    return lines


def _divisive_lines(a: dict[str, Any], names: list[str], top: int) -> list[str]:
    """The ``top`` statements the groups disagree about most."""
    lines = [
        "",
        "## Most divisive statements",
        "",
        "Largest gap between the groups' agree rates.",
        "",
        f"| statement | gap | {' | '.join(names)} |",
        "|---|---|" + "---|" * len(names),
    ]
    for s in a["divisive"][:top]:
        per = " | ".join(f"{s['agree_rates'][n]:.2f}" for n in names)
        lines.append(f"| {_md(s['text'])} ({s['statement_id']}) | {s['spread']:.2f} | {per} |")
    return lines


def _md(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
