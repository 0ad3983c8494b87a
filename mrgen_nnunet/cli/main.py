"""The `mrgen-nnunet` entry point: command groups, --version, --debug and one-line errors."""

from __future__ import annotations

import sys

import click
import typer

from mrgen_nnunet import __version__
from mrgen_nnunet.cli import (
    benchmark,
    convert,
    demo,
    evaluate,
    evaluate_generator,
    segment,
    synthesize,
    train,
    trainer_path,
)
from mrgen_nnunet.errors import MRGenError, NotReadyError

app = typer.Typer(
    name="mrgen-nnunet",
    help="Synthesise an unlabelled MRI sequence from another sequence's labels and train nnU-Net on it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mrgen-nnunet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
) -> None:
    """mrgen-nnunet: MRGen synthesis for nnU-Net."""


app.add_typer(convert.app, name="convert")
app.add_typer(train.app, name="train")
app.command("synthesize")(synthesize.synthesize)
app.add_typer(segment.app, name="segment")
app.command("evaluate")(evaluate.evaluate)
app.command("evaluate-generator")(evaluate_generator.evaluate_generator)
app.command("evaluate-autoencoder")(evaluate_generator.evaluate_autoencoder)
app.command("benchmark")(benchmark.benchmark)
app.command("demo")(demo.demo)
app.command("trainer-path")(trainer_path.trainer_path)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code. Errors are one line unless --debug is given."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        app(args=argv, prog_name="mrgen-nnunet", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        print("mrgen-nnunet: error: aborted", file=sys.stderr)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except NotReadyError as exc:
        if debug:
            raise
        print(f"mrgen-nnunet: error: {exc}", file=sys.stderr)
        return 2
    except MRGenError as exc:
        if debug:
            raise
        print(f"mrgen-nnunet: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mrgen-nnunet: error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: still one line, the traceback only with --debug
        if debug:
            raise
        print(f"mrgen-nnunet: error: {type(exc).__name__}: {exc} — rerun with --debug for the traceback",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
