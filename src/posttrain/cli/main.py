"""Entry point of the `posttrain` command.

Each stage lives in its own module under `posttrain.cli` and registers itself on `app`; this file only assembles
them and turns `InputError` into `error: file:line: what is wrong` with exit code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from posttrain import __version__
from posttrain.errors import EXIT_BAD_INPUT, InputError

app = typer.Typer(
    name="posttrain",
    help="Post-training for language models: verifiable prompts -> samples -> judges -> pairs -> training -> eval.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"posttrain {__version__} (torch {_torch_version()}, malloc: {_allocator()})")
        raise typer.Exit()


def _torch_version() -> str:
    from importlib.metadata import version

    return version("torch")


def _allocator() -> str:
    """jemalloc if the launcher preloaded it (posttrain.cli.launch), else the C library's."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "system"
    return "jemalloc" if "libjemalloc" in maps else "system"


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """posttrain: verifiable preference data and constrained alignment, from a laptop CPU to a cluster."""


def _register_stages() -> None:
    from posttrain.cli import evaluate as evaluate_cli
    from posttrain.cli import halt as halt_cli
    from posttrain.cli import judge as judge_cli
    from posttrain.cli import models as models_cli
    from posttrain.cli import pairs as pairs_cli
    from posttrain.cli import prompts as prompts_cli
    from posttrain.cli import records as records_cli
    from posttrain.cli import redteam as redteam_cli
    from posttrain.cli import run as run_cli
    from posttrain.cli import sample as sample_cli
    from posttrain.cli import select as select_cli
    from posttrain.cli import serve as serve_cli
    from posttrain.cli import train as train_cli

    run_cli.register(app)
    prompts_cli.register(app)
    sample_cli.register(app)
    records_cli.register(app)
    evaluate_cli.register(app)
    judge_cli.register(app)
    pairs_cli.register(app)
    train_cli.register(app)
    serve_cli.register(app)
    models_cli.register(app)
    select_cli.register(app)
    redteam_cli.register(app)
    halt_cli.register(app)


_register_stages()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (usage errors 2, bad input 2, success 0)."""
    # posttrain shows its own Rich progress; transformers' per-load tqdm bars would only interleave with it.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        app(args=argv, prog_name="posttrain")  # standalone: click handles usage errors and exits
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except InputError as err:
        message = Text("error: ", style="bold red") + Text(err.message)
        Console(stderr=True, highlight=False, soft_wrap=True).print(message)
        return EXIT_BAD_INPUT
    return 0


def entry() -> None:
    sys.exit(main())
