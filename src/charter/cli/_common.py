"""What every command shares: one-line errors with the right exit code, and progress bars."""

from __future__ import annotations

import functools
import logging
import os
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from charter.core.errors import CharterError

console = Console()
err_console = Console(stderr=True)


def handle_errors(fn):
    """Turn CharterError into ``error: <one line>`` on stderr and its exit code (2 for input)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        # Nothing Charter runs may reach a hub; the user configures every endpoint explicitly.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        logging.getLogger("transformers").setLevel(logging.ERROR)
        _quiet_libraries()
        try:
            return fn(*args, **kwargs)
        except CharterError as exc:
            msg = " ".join(str(exc).split())
            # The message may quote user text ("[/x]" in a statement id): never read it as markup.
            err_console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; rerun the same command to resume", highlight=False)
            raise typer.Exit(130) from None

    return wrapper


def _quiet_libraries() -> None:
    """Library deprecation warnings and per-file loading bars are noise to a CLI user; our own
    progress bars stay."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


class RateColumn(ProgressColumn):
    """Records per minute (a CAI record takes seconds, so per-second rates read as 0.0)."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        if not speed:
            return Text("-- rec/min", style="progress.data.speed")
        return Text(f"{speed * 60:.1f} rec/min", style="progress.data.speed")


@contextmanager
def record_progress(description: str):
    """Yields ``update(done, total, stage)`` driving a rich bar with rate and ETA."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[stage]}"),
        console=err_console,
        disable=os.environ.get("CHARTER_PROGRESS") == "0",
    )
    state = {"task": None}

    def update(done: int, total: int, stage: str) -> None:
        # The bar appears at the first report, after inputs and models were checked, so an
        # input error stays a single line.
        if state["task"] is None:
            progress.start()
            # Records restored from an earlier run are not counted into the rate.
            state["task"] = progress.add_task(description, total=total, completed=done, stage=stage)
        progress.update(state["task"], total=total, completed=done, stage=stage)

    try:
        yield update
    finally:
        if state["task"] is not None:
            progress.stop()


def run_with_progress(task, description: str) -> dict:
    """Run a CAI task object (``run(progress)`` / ``close()``) behind a progress bar."""
    try:
        with record_progress(description) as update:
            return task.run(update)
    finally:
        task.close()
