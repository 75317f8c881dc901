"""``charter data filter``: screen a corpus with the guard, with lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from charter.cli._common import console, handle_errors, run_with_progress

app = typer.Typer(help="Training-data tools.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="data")


@app.command("filter")
@handle_errors
def filter_corpus(
    guard: Path = typer.Option(..., "--guard", "-g", help="Guard directory (charter guard train)."),
    input: Path = typer.Option(..., "--in", help="Corpus: .jsonl, .parquet or a datasets save_to_disk directory."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for kept.jsonl, removed.jsonl, lineage.json."),
    text_field: str = typer.Option("text", "--text-field", help="Field holding the text to screen."),
    side: str = typer.Option(
        "input", "--side", help="Which classifier screens it: input (prompts) or output (responses)."
    ),
    batch_size: int = typer.Option(256, "--batch-size", help="Records scored per batch."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Stop after this many records."),
) -> None:
    """Keep or remove each record by the guard's stage-1 score; resumable; writes a lineage record."""
    from charter.guard.filter import CorpusFilter, FilterConfig

    cfg = FilterConfig(
        guard=str(guard),
        input=str(input),
        out=str(out),
        text_field=text_field,
        side=side,
        batch_size=batch_size,
        limit=limit,
    )
    lineage = run_with_progress(CorpusFilter(cfg), "filter")
    console.print(
        f"{lineage['records']} records: {lineage['kept']} kept, {lineage['removed']} removed -> {out} (lineage.json)",
        highlight=False,
    )
