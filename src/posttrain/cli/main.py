"""Entry point of the `posttrain` command.

Each stage lives in its own module under `posttrain.cli` and registers itself on `app`; this file only assembles
them and turns `InputError` into `error: file:line: what is wrong` with exit code 2.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

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
        typer.echo(f"posttrain {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """posttrain: verifiable preference data and constrained alignment, from a laptop CPU to a cluster."""


def _register_stages() -> None:
    from posttrain.cli import records as records_cli

    records_cli.register(app)


_register_stages()


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, standalone_mode=False)
    except InputError as err:
        Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {err.message}", markup=True)
        return EXIT_BAD_INPUT
    except typer.Exit as exit_:
        return exit_.exit_code
    except typer.Abort:
        return 1
    except Exception as err:  # click usage errors carry their own exit code (2)
        import click

        if isinstance(err, click.ClickException):
            err.show()
            return err.exit_code
        raise
    return 0


def entry() -> None:
    sys.exit(main())
