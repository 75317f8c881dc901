"""``charter models`` -- check that a model spec loads and answers."""

from __future__ import annotations

import json
import time

import typer

from charter.cli._common import console, handle_errors

app = typer.Typer(help="Inspect model backends.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="models")


@app.command()
@handle_errors
def check(
    spec: str = typer.Argument("embedded", help="embedded | hf:PATH | gguf:PATH | llamacpp:PATH | openai:URL#MODEL"),
    prompt: str = typer.Option("Say hello in one short sentence.", "--prompt"),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens"),
    require_seal: str = typer.Option(
        None, "--require-seal", help="hf: only: refuse the model unless its seal verifies with this public key."
    ),
) -> None:
    """Load a model, generate one greedy answer and print its identity and speed."""
    from charter.backends import SamplingConfig, load_backend

    if require_seal:
        spec += ("&" if "?" in spec else "?") + f"require_seal={require_seal}"
    t0 = time.perf_counter()
    with load_backend(spec) as backend:
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        g = backend.generate([[{"role": "user", "content": prompt}]], SamplingConfig(max_new_tokens, 0.0))[0]
        gen_s = time.perf_counter() - t1
        console.print_json(json.dumps(backend.info.to_dict()))
    console.print(
        f"load {load_s:.2f}s; {g.completion_tokens} tokens in {gen_s:.2f}s "
        f"({g.completion_tokens / max(gen_s, 1e-9):.1f} tok/s)",
        highlight=False,
    )
    console.print(g.text, highlight=False, markup=False)
