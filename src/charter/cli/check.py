"""``charter check``: does a release need re-filing or review?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from charter.cli._common import console, handle_errors
from charter.core.errors import InputError


def register(app: typer.Typer) -> None:
    app.command("check")(check)


@handle_errors
def check(
    baseline: Path = typer.Option(..., "--baseline", help="The sealed model last filed/released."),
    candidate: Path = typer.Option(..., "--candidate", help="The sealed model about to be released."),
    rules: Optional[Path] = typer.Option(
        None, "--rules", help="Rules TOML (thresholds and refile/review/ignore per rule)."
    ),
    public_key: Optional[Path] = typer.Option(None, "--public-key", "-p", help="Verify both seals first."),
    allow_unrelated: bool = typer.Option(
        False, "--allow-unrelated", help="Compare models with no constitution, base or seal in common."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the result as JSON here."),
) -> None:
    """Does the candidate release need re-filing or review? Exit 1 with the list when it does."""
    from charter.governance.check import CheckConfig, ReleaseCheck

    if out is not None and out.is_dir():
        raise InputError("is a directory; --out takes a file name (e.g. check.json)", source=str(out))
    result = ReleaseCheck(
        CheckConfig(
            baseline=str(baseline),
            candidate=str(candidate),
            rules=str(rules) if rules else None,
            public_key=str(public_key) if public_key else None,
            allow_unrelated=allow_unrelated,
        )
    ).run()
    if out:
        from charter.core.io import write_text_atomic

        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        for line in result.lines():
            console.print(line, highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(result.exit_code)
