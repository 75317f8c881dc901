"""``charter cai critique-revise`` (SL-CAI data)."""

from __future__ import annotations

from pathlib import Path

import typer

from charter.cai import CritiqueRevisionConfig, PreferenceConfig
from charter.cli._common import console, handle_errors, run_with_progress
from charter.cli._options import config_command

app = typer.Typer(help="Constitutional AI data generation.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="cai")


@app.command("critique-revise")
@handle_errors
@config_command(CritiqueRevisionConfig)
def critique_revise(cfg: CritiqueRevisionConfig) -> None:
    """Critique -> revision data (SL-CAI): chains.jsonl plus TRL-format sft.jsonl. Resumable."""
    from charter.cai import CritiqueReviser

    summary = run_with_progress(CritiqueReviser(cfg), "critique-revise")
    console.print(
        f"{summary['records']} records in {Path(cfg.out)} ({summary['generated']} generated now, "
        f"{summary['resumed_from']} from an earlier run): chains.jsonl, sft.jsonl",
        highlight=False,
    )


@app.command("preferences")
@handle_errors
@config_command(PreferenceConfig)
def preferences(cfg: PreferenceConfig) -> None:
    """AI-feedback preference labels (RLAIF): prefs.jsonl in TRL's DPO format with soft labels. Resumable."""
    from charter.cai import PreferenceLabeller

    summary = run_with_progress(PreferenceLabeller(cfg), "preferences")
    console.print(
        f"{summary['prompts']} prompts, {summary['pairs']} pairs judged, {summary['kept']} kept, "
        f"{summary['dropped_near_ties']} near-ties dropped, {summary['revision_pairs']} from revisions: "
        f"{Path(cfg.out)}/prefs.jsonl",
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
