"""``charter cai critique-revise`` (SL-CAI data)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from charter.cli._common import console, handle_errors, run_with_progress

app = typer.Typer(help="Constitutional AI data generation.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="cai")


MODEL_HELP = "embedded | hf:PATH | gguf:PATH | llamacpp:PATH | openai:URL#MODEL (options after '?')"


@app.command("critique-revise")
@handle_errors
def critique_revise(
    constitution: str = typer.Option(..., "--constitution", "-c", help="Constitution TOML file or bundled name."),
    prompts: Path = typer.Option(..., "--prompts", "-p", help="Red-team prompts: CSV, TSV, JSONL, JSON or TXT."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (chains.jsonl, sft.jsonl, run.json)."),
    model: str = typer.Option("embedded", "--model", "-m", help=f"Policy model. {MODEL_HELP}"),
    critic: Optional[str] = typer.Option(
        None,
        "--critic",
        help="Model that writes critiques and revisions (default: the policy model), or guard:DIR: "
        "the constitutional classifier picks among the policy's candidates (rejection sampling) "
        "and composes a principled refusal when none passes.",
    ),
    column: Optional[str] = typer.Option(
        None, "--column", help="Column/field holding the prompt (default: prompt, goal, question, ...)."
    ),
    revisions: int = typer.Option(
        1, "--revisions", "-n", help="Critique->revision rounds, a new random principle each round."
    ),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use at most this many prompts (per file)."),
    seed: int = typer.Option(0, "--seed", help="Seed for principle sampling and generation."),
    helpful: Optional[Path] = typer.Option(
        None, "--helpful", help="Helpfulness prompts answered without critique and mixed in."
    ),
    helpful_column: Optional[str] = typer.Option(None, "--helpful-column", help="Column of the --helpful file."),
    few_shot: int = typer.Option(1, "--few-shot", help="Few-shot critique dialogues shown before each critique."),
    few_shot_scope: str = typer.Option(
        "critique",
        "--few-shot-scope",
        help="critique: few-shot dialogues before critique/revision turns only (paper); "
        "chain: before the whole conversation (H4 recipe, faster with a prompt cache).",
    ),
    batch_size: int = typer.Option(
        8, "--batch-size", help="Prompts in flight at once (each moves to its next stage as soon as it can)."
    ),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="Token limit of each generation."),
    temperature: float = typer.Option(0.7, "--temperature", help="Sampling temperature (0 = greedy)."),
    top_p: float = typer.Option(0.95, "--top-p", help="Nucleus sampling threshold."),
    candidates: int = typer.Option(
        4, "--candidates", help="With --critic guard:DIR: policy candidates sampled when an answer fails the guard."
    ),
    guard: Optional[Path] = typer.Option(
        None,
        "--guard",
        help="Ensemble: this guard checks the LM critic's final revisions; "
        "one that still fails on a harmful prompt becomes a principled refusal.",
    ),
) -> None:
    """Critique -> revision data (SL-CAI): chains.jsonl plus TRL-format sft.jsonl. Resumable."""
    from charter.cai import CritiqueReviser, CritiqueRevisionConfig

    config = CritiqueRevisionConfig(
        constitution=constitution,
        prompts=str(prompts),
        out=str(out),
        model=model,
        critic=critic,
        column=column,
        revisions=revisions,
        limit=limit,
        seed=seed,
        helpful=str(helpful) if helpful else None,
        helpful_column=helpful_column,
        few_shot=few_shot,
        few_shot_scope=few_shot_scope,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        candidates=candidates,
        guard=str(guard) if guard else None,
    )
    summary = run_with_progress(CritiqueReviser(config), "critique-revise")
    console.print(
        f"{summary['records']} records in {out} ({summary['generated']} generated now, "
        f"{summary['resumed_from']} from an earlier run): chains.jsonl, sft.jsonl",
        highlight=False,
    )


@app.command("preferences")
@handle_errors
def preferences(
    constitution: str = typer.Option(..., "--constitution", "-c", help="Constitution TOML file or bundled name."),
    prompts: Path = typer.Option(..., "--prompts", "-p", help="Prompts: CSV, TSV, JSONL, JSON or TXT."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (judgements.jsonl, prefs.jsonl, run.json)."),
    policy: str = typer.Option("embedded", "--policy", help=f"Model whose responses are compared. {MODEL_HELP}"),
    judge: Optional[str] = typer.Option(
        None,
        "--judge",
        help="Model that reads the constitution and compares (default: the policy; pass a stronger one), "
        "or guard:DIR for the constitutional classifier.",
    ),
    column: Optional[str] = typer.Option(None, "--column", help="Column/field holding the prompt."),
    samples: int = typer.Option(2, "--samples", help="Responses sampled per prompt; every pair is judged."),
    cot: bool = typer.Option(
        False, "--cot", help="Judge reasons step by step first; probabilities clamped to [0.4, 0.6]."
    ),
    margin: float = typer.Option(0.0, "--margin", help="Drop pairs with |p - 0.5| below this (near-ties)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use at most this many prompts."),
    seed: int = typer.Option(0, "--seed", help="Seed for sampling and principle choice."),
    few_shot: int = typer.Option(
        1, "--few-shot", help="Preference examples shown first, where the principle has them."
    ),
    batch_size: int = typer.Option(8, "--batch-size", help="Prompts labelled together."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="Token limit of each sampled response."),
    cot_max_new_tokens: int = typer.Option(256, "--cot-max-new-tokens", help="Token limit of the judge's reasoning."),
    temperature: float = typer.Option(1.0, "--temperature", help="Policy sampling temperature (> 0)."),
    top_p: float = typer.Option(0.95, "--top-p", help="Nucleus sampling threshold."),
    guard: Optional[Path] = typer.Option(
        None, "--guard", help="Ensemble: pool the LM judge with this guard (log-linear: mean of the two logits)."
    ),
    revisions: Optional[Path] = typer.Option(
        None,
        "--revisions",
        help="An SL-CAI chains.jsonl of the same constitution: each chain adds a pair "
        "(revision over initial answer; a helpfulness answer over the principled refusal).",
    ),
    revision_p: float = typer.Option(
        0.9, "--revision-p", help="Soft label (p_chosen) of the pairs from --revisions, in (0.5, 1]."
    ),
) -> None:
    """AI-feedback preference labels (RLAIF): prefs.jsonl in TRL's DPO format with soft labels. Resumable."""
    from charter.cai import PreferenceConfig, PreferenceLabeller

    config = PreferenceConfig(
        constitution=constitution,
        prompts=str(prompts),
        out=str(out),
        policy=policy,
        judge=judge,
        column=column,
        samples=samples,
        cot=cot,
        margin=margin,
        limit=limit,
        seed=seed,
        few_shot=few_shot,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        cot_max_new_tokens=cot_max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        guard=str(guard) if guard else None,
        revisions=str(revisions) if revisions else None,
        revision_p=revision_p,
    )
    summary = run_with_progress(PreferenceLabeller(config), "preferences")
    console.print(
        f"{summary['prompts']} prompts, {summary['pairs']} pairs judged, {summary['kept']} kept, "
        f"{summary['dropped_near_ties']} near-ties dropped, {summary['revision_pairs']} from revisions: "
        f"{out}/prefs.jsonl",
        highlight=False,
    )


@app.command("show-chain")
@handle_errors
def show_chain(
    out: Path = typer.Argument(..., help="Output directory of critique-revise."),
    index: int = typer.Option(0, "--index", "-i", help="Which record (0-based) to show."),
    kind: str = typer.Option("harmless", "--kind", help="harmless (critiqued) or helpful."),
) -> None:
    """Print one chain: prompt, initial answer, each critique and revision."""
    from charter.core.errors import InputError
    from charter.core.io import read_jsonl

    path = out / "chains.jsonl"
    if not path.is_file():
        raise InputError("no chains.jsonl here", source=str(out))
    chains = [c for c in read_jsonl(path) if c["kind"] == kind]
    if not 0 <= index < len(chains):
        raise InputError(f"--index {index} out of range (0..{len(chains) - 1} {kind} records)", source=str(path))
    c = chains[index]
    console.rule(f"[bold]{c['id']}[/]")
    console.print(f"[bold cyan]Prompt[/]\n{c['prompt']}\n", highlight=False)
    console.print(
        f"[bold yellow]Initial response[/] ({c['model']['spec']})\n{c['initial_response']}\n", highlight=False
    )
    for i, r in enumerate(c["rounds"], 1):
        console.print(f"[bold magenta]Round {i}: principle {r['principle']}[/]", highlight=False)
        console.print(f"[dim]{r['critique_request']}[/]", highlight=False)
        console.print(f"[bold]Critique[/] ({c['critic']['spec']})\n{r['critique']}\n", highlight=False)
        console.print(f"[dim]{r['revision_request']}[/]", highlight=False)
        console.print(f"[bold green]Revision[/]\n{r['revision']}\n", highlight=False)
    if not c["rounds"]:
        console.print("(helpfulness prompt: answered without critique)")
