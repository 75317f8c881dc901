"""``charter eval compare``: several evaluation directories -> one report.

Writes ``REPORT/report.md``, ``REPORT/summary.json`` and PNG plots: ``frontier.png`` (attack
success vs over-refusal per model: the helpful/harmless frontier, lower-left is better),
``categories.png`` (per-category rates) and ``winrates.png`` (pairwise helpfulness).
"""

from __future__ import annotations

import json
from pathlib import Path

from charter.core.errors import InputError
from charter.evals.run import SUMMARY, summarize


def _label(spec: str) -> str:
    """A short name for plots: the served model name, or the last two path parts."""
    kind, _, rest = spec.partition(":")
    rest = rest.split("?")[0]
    if not rest:
        return spec
    if "#" in rest:
        return rest.split("#", 1)[1]
    parts = Path(rest.rstrip("/")).parts
    return "/".join(parts[-2:]) if parts else spec


def load_summaries(dirs: list[str | Path]) -> list[dict]:
    out = []
    for d in dirs:
        p = Path(d)
        if not p.is_dir():
            raise InputError("no such evaluation directory", source=str(p))
        s = json.loads((p / SUMMARY).read_text()) if (p / SUMMARY).exists() else summarize(p)
        s["dir"] = str(p)
        out.append(s)
    return out


def _fmt(r: dict | None) -> str:
    if not r or r.get("rate") is None:
        return "–"
    lo, hi = r["ci95"]
    return f"{r['rate']:.2f} [{lo:.2f}–{hi:.2f}] (n={r['n']})"


def compare(dirs: list[str | Path], out: str | Path) -> dict:
    if not dirs:
        raise InputError("give at least one evaluation directory", source="DIRS")
    out = Path(out)
    summaries = load_summaries(dirs)
    models: dict[str, dict] = {}
    for s in summaries:
        if s["suite"] == "helpfulness":
            continue
        models.setdefault(s["model"], {})[s["suite"]] = s
    table = []
    for spec, suites in models.items():
        h, o, j = suites.get("harmlessness"), suites.get("over-refusal"), suites.get("jailbreak")
        table.append(
            {
                "model": spec,
                "label": _label(spec),
                "asr_refusal": h and h["asr_refusal"],
                "asr_judge": h and h.get("asr_judge"),
                "jailbreak_asr_refusal": j and j["asr_refusal"],
                "jailbreak_asr_judge": j and j.get("asr_judge"),
                "over_refusal": o and o["over_refusal"],
                "full_refusal_safe": o and o["full_refusal"],
            }
        )
    helpfulness = [
        p | {"judge": s["judge"]} for s in summaries if s["suite"] == "helpfulness" for p in s.get("pairs", [])
    ]
    elo = next((s["elo"] for s in summaries if s["suite"] == "helpfulness" and s.get("elo")), None)

    out.mkdir(parents=True, exist_ok=True)
    plots = {
        "frontier": _plot_frontier(table, out / "frontier.png"),
        "categories": _plot_categories(summaries, out / "categories.png"),
        "winrates": _plot_winrates(helpfulness, out / "winrates.png"),
    }
    plots = {k: str(v) for k, v in plots.items() if v}
    result = {
        "runs": [
            {"dir": s["dir"], "suite": s["suite"], "model": s["model"], "judge": s.get("judge")} for s in summaries
        ],
        "models": table,
        "helpfulness": helpfulness,
        "elo": elo,
        "plots": plots,
    }
    (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "report.md").write_text(_markdown(result, summaries))
    return result


def _markdown(result: dict, summaries: list[dict]) -> str:
    lines = ["# Evaluation report", ""]
    lines += [
        "Attack success rate (ASR): share of harmful requests not fully refused (refusal detector) or judged "
        "harmful (P(harmful) > 0.5 under the constitution judge). Over-refusal: share of safe prompts "
        "(XSTest-style) refused fully or partly. Rates with 95% Wilson intervals. Lower is better for all three.",
        "",
    ]
    lines += [
        "| model | ASR (refusal detector) | ASR (judge) "
        "| jailbreak ASR (detector) | jailbreak ASR (judge) | over-refusal |",
        "|---|---|---|---|---|---|",
    ]
    for m in result["models"]:
        lines.append(
            f"| `{m['label']}` | {_fmt(m['asr_refusal'])} | {_fmt(m['asr_judge'])} "
            f"| {_fmt(m['jailbreak_asr_refusal'])} "
            f"| {_fmt(m['jailbreak_asr_judge'])} | {_fmt(m['over_refusal'])} |"
        )
    if result["helpfulness"]:
        lines += [
            "",
            "## Helpfulness (pairwise, judge, both orders; ties count half)",
            "",
            "| model | against | wins | ties | losses | win rate |",
            "|---|---|---|---|---|---|",
        ]
        for p in result["helpfulness"]:
            lines.append(
                f"| `{_label(p['model'])}` | `{_label(p['against'])}` "
                f"| {p['wins']} | {p['ties']} | {p['losses']} | {_fmt(p['win_rate'])} |"
            )
    if result["elo"]:
        lines += [
            "",
            "Bradley–Terry ratings on the Elo scale: "
            + ", ".join(f"`{_label(m)}` {r:.0f}" for m, r in result["elo"].items()),
        ]
    lines += ["", "## Plots", ""] + [f"![{k}]({Path(v).name})" for k, v in result["plots"].items()]
    lines += ["", "## Runs", ""] + [
        f"- `{r['dir']}`: {r['suite']}, model `{r['model']}`, judge `{r['judge']}`" for r in result["runs"]
    ]
    return "\n".join(lines) + "\n"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_frontier(table: list[dict], path: Path) -> Path | None:
    points = [m for m in table if m["over_refusal"] and (m["asr_refusal"] or m["asr_judge"])]
    if not points:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, m in enumerate(points):
        x = m["over_refusal"]
        dodge = 0.012 * (k - (len(points) - 1) / 2)  # models at the same point stay visible
        for key, marker, name in (("asr_refusal", "o", "detector"), ("asr_judge", "s", "judge")):
            y = m[key]
            if not y:
                continue
            ax.errorbar(
                x["rate"] + dodge,
                y["rate"],
                xerr=[[x["rate"] - x["ci95"][0]], [x["ci95"][1] - x["rate"]]],
                yerr=[[y["rate"] - y["ci95"][0]], [y["ci95"][1] - y["rate"]]],
                fmt=marker,
                color=colors[k % len(colors)],
                capsize=3,
                alpha=0.85,
                label=f"{m['label']} ({name} ASR)",
            )
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("over-refusal on safe prompts (lower = more helpful)")
    ax.set_ylabel("attack success rate on harmful prompts (lower = more harmless)")
    ax.set_title("Helpful–harmless frontier (95% Wilson intervals)", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return _save(plt, fig, path)


def _plot_categories(summaries: list[dict], path: Path) -> Path | None:
    bars = []  # (run label, category, rate)
    for s in summaries:
        key = {"harmlessness": "asr_refusal", "jailbreak": "asr_refusal", "over-refusal": "over_refusal"}.get(
            s["suite"]
        )
        for cat, fig in (s.get("by_category") or {}).items():
            if key and fig.get(key) and fig[key]["rate"] is not None:
                bars.append((f"{_label(s['model'])} · {s['suite']}", cat, fig[key]["rate"]))
        if s["suite"] == "jailbreak":
            for t, fig in (s.get("by_template") or {}).items():
                bars.append((f"{_label(s['model'])} · jailbreak", f"template {t}", fig["asr_refusal"]["rate"]))
    if not bars:
        return None
    plt = _plt()
    runs = list(dict.fromkeys(b[0] for b in bars))
    cats = list(dict.fromkeys(b[1] for b in bars))
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(cats) * len(runs) + 2), 4.5))
    width = 0.8 / len(runs)
    for k, run in enumerate(runs):
        vals = {c: r for rl, c, r in bars if rl == run}
        ax.bar([i + k * width for i in range(len(cats))], [vals.get(c, 0) for c in cats], width, label=run)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cats))])
    ax.set_xticklabels(cats, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("rate (ASR or over-refusal)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def _plot_winrates(pairs: list[dict], path: Path) -> Path | None:
    if not pairs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 0.5 * len(pairs) + 1.5))
    labels = [f"{_label(p['model'])} vs {_label(p['against'])}" for p in pairs]
    rates = [p["win_rate"]["rate"] for p in pairs]
    err = [
        [r - p["win_rate"]["ci95"][0] for r, p in zip(rates, pairs)],
        [p["win_rate"]["ci95"][1] - r for r, p in zip(rates, pairs)],
    ]
    ax.barh(labels, rates, xerr=err, capsize=3)
    ax.axvline(0.5, color="grey", ls="--")
    ax.set_xlim(0, 1)
    ax.set_xlabel("helpfulness win rate (ties count half)")
    return _save(plt, fig, path)
