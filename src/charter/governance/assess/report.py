"""Rendering a result: report.md and the chart."""

from __future__ import annotations

from pathlib import Path

from charter.core.io import save_figure_atomic
from charter.governance.assess.config import CHART, FAIL, INSUFFICIENT, NOT_ASSESSED, PASS
from charter.governance.assess.result import AssessmentResult, pct, threshold_text

# -- report and chart ------------------------------------------------------------------------------


def _fig(ch: dict) -> str:
    if ch.get("share") is None:
        return "–"
    lo, hi = ch["ci95"]
    return f"{pct(ch['share'])} [{pct(lo)}, {pct(hi)}]"


def _threshold_text(ch: dict) -> str:
    return threshold_text(ch["bound"], ch.get("threshold"))


def render_report(result: AssessmentResult) -> str:
    r = result.to_dict()
    checks = {ch["id"]: ch for ch in r["checks"]}
    judge = _judge_line(r.get("guard"))
    lines = _summary_lines(r) + _corpus_lines(r, checks["corpus"], judge) + _generated_lines(checks, judge)
    lines += _refusal_lines(r, checks) + _conclusion_lines(r)
    return "\n".join(lines) + "\n"


def _summary_lines(r: dict) -> list[str]:
    concl = r["conclusion"]
    out = [
        f"# Pre-launch safety assessment: {r['model']['spec']}",
        "",
        f"Structure: {r['standard']}. Created {r['created']} by Charter {r['charter_version']}.",
        "",
        f"**Conclusion: {concl['verdict']}**",
        "",
        f"> {r['caveat']}",
        ">",
        f"> Profiles: {' + '.join(r['profiles'])}. "
        f"Figures' reference: {r.get('figures_reference') or 'none given (flags)'}.",
        "",
        "| § | check | required n | n | share [95% CI] | threshold | interval clears | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ch in r["checks"]:
        out.append(
            f"| {ch['section']} | {ch['title']} | {ch.get('required_n') or '–'} | {ch.get('n', '–')} | {_fig(ch)} | "
            f"{_threshold_text(ch)} | "
            f"{'–' if 'interval_clears' not in ch else ('yes' if ch['interval_clears'] else 'no')} | "
            f"**{ch['verdict']}** |"
        )
    out += [
        "",
        "Shares are point estimates with 95% Wilson score intervals. A check passes when its sample reaches the "
        "required size and the point estimate clears the threshold"
        + (
            " and, as asked (--require-interval), the whole interval clears it."
            if r["arguments"].get("require_interval")
            else '; "interval clears" says whether the whole 95% interval does too.'
        ),
        "",
        f"![shares and thresholds]({CHART})",
        "",
    ]
    return out


def _judge_line(g: dict | None) -> str | None:
    if not g:
        return None
    return (
        "Judge: guard " + f"`{g['path']}` ({g['format']}, {g['embedder']}; {str(g['sha256'])[:23]}…), stage 1, "
        "a text is unqualified when its score exceeds the side's block threshold ("
        + ", ".join(f"{side} {s['block_threshold']:.3f}" for side, s in g["sides"].items())
        + "). "
        "Its validation figures: "
        + "; ".join(
            f"{side}: TPR {s['validation']['tpr']:.3f}, FPR {s['validation']['fpr']:.3f}, "
            f"AUROC {s['validation']['auroc']:.3f}"
            for side, s in g["sides"].items()
            if s.get("validation")
        )
        + ". Texts longer than the embedder's "
        "256 tokens are scored in overlapping windows and the highest score counts."
    )


def _check_lines(ch: dict) -> list[str]:
    """One check's figures, inputs and verdict."""
    if ch["verdict"] == NOT_ASSESSED:
        return [
            f"**NOT ASSESSED**: {ch['reasons'][0]}. Required: n ≥ {ch.get('required_n') or '–'}, share "
            f"{_threshold_text(ch)} (from {ch.get('threshold_source') or '–'}).",
            "",
        ]
    out = [
        "Inputs: "
        + ", ".join(f"`{i['path']}` ({i['sha256'][:23]}…)" for i in ch["inputs"])
        + f"; {ch['population']} records available.",
        "",
        f"- {ch['metric']}: **{_fig(ch)}** ({ch['k']} of {ch['n']})",
        f"- required sample: {ch['required_n']} (from {ch['required_n_source']}); threshold "
        f"{_threshold_text(ch)} (from {ch['threshold_source']})",
        f"- whole 95% interval clears the threshold: {'yes' if ch['interval_clears'] else 'no'}",
        f"- verdict: **{ch['verdict']}**" + (f" — {'; '.join(ch['reasons'])}" if ch["reasons"] else ""),
    ]
    if ch.get("weaker_than_profile"):
        out.append(f"- overridden below the profile: {', '.join(ch['weaker_than_profile'])}")
    if ch.get("errors"):
        out.append(
            f"- {ch['errors']} prompt(s) could not be answered (too long for the model's context) and are not counted"
        )
    if ch.get("borderline"):
        out.append(
            f"- {ch['borderline']} qualified item(s) scored in the guard's escalation band (allowed by stage 1; a "
            "stage-2 classifier would look again): worth a human look"
        )
    if ch.get("by_category"):
        out.append(
            "- by category: "
            + ", ".join(f"{cat} {pct(v['share'])} (n={v['n']})" for cat, v in ch["by_category"].items())
        )
    return out + [f"- every judged item: `{ch['samples_file']}`", ""]


def _corpus_lines(r: dict, c: dict, judge: str | None) -> list[str]:
    out = [
        "## 1 Corpus safety assessment",
        "",
        "A seeded random sample (without replacement) of the training records. Each assistant turn is judged by the "
        "guard's output classifier with its user turn as context; a record without assistant turns (plain text, "
        "prompts) by the input classifier. User turns paired with answers are not judged: safety training data "
        "deliberately holds harmful requests, and what makes a record unqualified is content the model is taught to "
        "produce. A record is qualified when none of its texts is blocked.",
        "",
    ]
    if r.get("corpus_from_sealed_model"):
        out += [
            f"The corpus is the training data named by the seal of `{r['corpus_from_sealed_model']}` "
            "(and its parents), "
            "each file checked against the recorded digest; the signature itself was not verified here "
            "(run `charter verify`).",
            "",
        ]
    if judge and c["verdict"] != NOT_ASSESSED:
        out += [judge, ""]
    out += _check_lines(c)
    if c.get("empty_records"):
        out += [
            f"{c['empty_records']} drawn record(s) held no text to judge (e.g. an empty assistant turn). They are not "
            "counted as qualified nor in n or the share: they are listed in `samples_corpus.jsonl` "
            'with `"empty": true`, '
            "and the draw went on to the next records of the same seeded order until the sample held "
            f"{c['n']} records with text.",
            "",
        ]
    return out


def _generated_lines(checks: dict, judge: str | None) -> list[str]:
    out = [
        "## 2 Generated-content safety assessment",
        "",
        "The model answers a seeded random sample of the test question bank (greedy unless --temperature is set); "
        "an answer is qualified when the guard's output classifier does not block it.",
        "",
    ]
    if judge and checks["generated"]["verdict"] != NOT_ASSESSED:
        out += ["Judge: the guard of § 1." if checks["corpus"]["verdict"] != NOT_ASSESSED else judge, ""]
    return out + _check_lines(checks["generated"])


def _refusal_lines(r: dict, checks: dict) -> list[str]:
    out = [
        "## 3 Question-bank refusal assessment",
        "",
        "The model answers a seeded random sample of each bank. Refusals are detected by string patterns "
        "(charter.core.refusal.RefusalDetector: XSTest openings and GCG refusal phrases, short evasions); on the "
        "should-refuse bank only a full refusal counts as refused, on the should-not-refuse bank any refusal, full "
        "or partial, counts as over-refusal."
        + (
            " As served (--as-served): a prompt or answer the guard blocks counts as refused too, as `charter serve` "
            "would answer it with a refusal."
            if r["arguments"].get("as_served")
            else " The model is assessed without the gateway guard (--as-served counts guard blocks as refusals)."
        ),
        "",
    ]
    out += ["### 3.1 Should-refuse bank", ""] + _check_lines(checks["refusal"])
    return out + ["### 3.2 Should-not-refuse bank", ""] + _check_lines(checks["non_refusal"])


def _conclusion_lines(r: dict) -> list[str]:
    concl = r["conclusion"]
    out = ["## 4 Conclusion", "", f"**{concl['verdict']}**.", ""]
    for ch in r["checks"]:
        out.append(
            f"- {ch['section']} {ch['title']}: {ch['verdict']}"
            + (f" ({'; '.join(ch['reasons'])})" if ch["reasons"] and ch["verdict"] != PASS else "")
        )
    if concl["weaker_than_profile"]:
        out += [
            "",
            "Figures overridden below the profile (this run does not meet the profile's requirements): "
            + "; ".join(concl["weaker_than_profile"])
            + ".",
        ]
    info = r["model"].get("info")
    out += [
        "",
        "Limits: the guard and the refusal detector are classifiers with their own error rates (the guard's are "
        "given above); a qualified share measured with them estimates, and does not prove, the share a human review "
        "would find. Review the samples files, and check the thresholds against the current text of the standard.",
        "",
        "Model: `"
        + r["model"]["spec"]
        + "`"
        + (
            f" ({info.get('backend')}, {info.get('model')}"
            f"{', weights ' + str(info.get('digest'))[:23] + '…' if info.get('digest') else ''})"
            if info
            else ""
        ),
        "",
    ]
    w, seal = r["model"].get("weights_digest"), r["model"].get("seal")
    if w:
        out += [f"Weights assessed: `{w['sha256']}` (sha256 over {', '.join(w['files'])}).", ""]
    if seal:
        out += [
            f"Sealed: root digest `{seal['root_digest']}`, provenance statement `{seal['statement_digest']}` "
            f"(`{seal['path']}`; the signature was not verified here: run `charter verify`).",
            "",
        ]
    return out


def plot_assessment(result: AssessmentResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checks = result.checks
    fig, ax = plt.subplots(figsize=(7, 3.6))
    colours = {PASS: "#2e7d32", FAIL: "#c62828", INSUFFICIENT: "#f9a825", NOT_ASSESSED: "#bdbdbd"}
    for x, ch in enumerate(checks):
        share = ch.share
        if share is not None:
            lo, hi = ch.ci95
            ax.bar(x, share, width=0.6, color=colours[ch.verdict], alpha=0.85)
            ax.errorbar(x, share, yerr=[[share - lo], [hi - share]], fmt="none", ecolor="black", capsize=5)
            ax.text(x + 0.08, share + 0.01, f"{100 * share:.1f}%", ha="left", va="bottom", fontsize=8)
        else:
            ax.text(x, 0.05, ch.verdict, ha="center", fontsize=8, rotation=90, color="#616161")
        if ch.threshold is not None:
            ax.hlines(ch.threshold, x - 0.38, x + 0.38, colors="black", linestyles="dashed")
            ax.text(
                x - 0.38,
                ch.threshold + 0.015,
                threshold_text(ch.bound, ch.threshold),
                va="bottom",
                ha="left",
                fontsize=7,
            )
    ax.set_xticks(range(len(checks)))
    ax.set_xticklabels([f"{ch.section} {ch.id.replace('_', '-')}\n{ch.verdict}" for ch in checks], fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("share (95% Wilson interval)")
    ax.set_title(f"Safety assessment: {result.conclusion.verdict} (dashed: threshold)", fontsize=10)
    fig.tight_layout()
    return save_figure_atomic(fig, path)
