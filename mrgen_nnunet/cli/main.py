"""The `mrgen-nnunet` entry point: command groups, --version, --debug, one-line errors, quiet third-party warnings."""

from __future__ import annotations

import sys
import warnings

import typer
from rich.markup import escape

try:  # typer >= 0.26 ships its own copy of click (typer._click); older typer uses click itself
    from typer import _click as click
except ImportError:
    import click

from mrgen_nnunet import __version__
from mrgen_nnunet.cli import (
    benchmark,
    convert,
    demo,
    env,
    evaluate,
    evaluate_generator,
    pseudo_label,
    segment,
    synthesize,
    train,
    trainer_path,
)
from mrgen_nnunet.environment import apply_thread_policy
from mrgen_nnunet.errors import MRGenError, os_error

app = typer.Typer(
    name="mrgen-nnunet",
    help="Synthesise an unlabelled MRI sequence from another sequence's labels and train nnU-Net on it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


# pipeline order in `--help`: prepare data, train the generator, synthesise, segment, evaluate; then the rest
ORDER = ("convert", "train", "synthesize", "segment", "pseudo-label", "evaluate", "evaluate-generator", "evaluate-autoencoder",
         "benchmark", "demo", "env", "trainer-path")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mrgen-nnunet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and third-party warnings."),
) -> None:
    """mrgen-nnunet: MRGen synthesis for nnU-Net."""


app.add_typer(convert.app, name="convert")
app.add_typer(train.app, name="train")
app.command("synthesize")(synthesize.synthesize)
app.add_typer(segment.app, name="segment")
app.command("pseudo-label")(pseudo_label.pseudo_label)
app.command("evaluate")(evaluate.evaluate)
app.command("evaluate-generator")(evaluate_generator.evaluate_generator)
app.command("evaluate-autoencoder")(evaluate_generator.evaluate_autoencoder)
app.command("benchmark")(benchmark.benchmark)
app.command("demo")(demo.demo)
app.command("env")(env.env)
app.command("trainer-path")(trainer_path.trainer_path)


def _plain_help(command: click.Command) -> None:
    """Help shown exactly as written: rich markup would eat `[default: $nnUNet_raw]` or `[ray]`, so escape it;
    flags get no `<bool>` type column."""
    command.help = command.help and escape(command.help)
    for param in [*command.params, command.get_help_option(click.Context(command))]:  # --help is cached
        if getattr(param, "help", None):
            param.help = escape(param.help)
        if getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def build_cli() -> click.Command:
    """The click command tree of `app`: help text as written, commands in pipeline order (ORDER)."""
    cli = typer.main.get_command(app)
    assert set(cli.commands) == set(ORDER), set(cli.commands) ^ set(ORDER)
    cli.commands = {name: cli.commands[name] for name in ORDER}
    _plain_help(cli)
    return cli


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code. Errors are one line unless --debug is given.

    Without `argv` this is the program itself (console script, `python -m`): the thread policy is applied first,
    before any command imports torch. A caller passing `argv` (tests, scripts) keeps its own environment.
    """
    if argv is None:
        apply_thread_policy()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        with warnings.catch_warnings():
            if not debug:  # torch.jit FutureWarnings and the like; our own code raises errors, not warnings
                warnings.simplefilter("ignore")
            build_cli().main(args=argv, prog_name="mrgen-nnunet", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("mrgen-nnunet: error: aborted", file=sys.stderr)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except MRGenError as exc:
        if debug:
            raise
        print(f"mrgen-nnunet: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mrgen-nnunet: error: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a path the code did not check itself: still what, where and how to fix
        if debug:
            raise
        print(f"mrgen-nnunet: error: {os_error(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # last resort: still one line, the traceback only with --debug
        if debug:
            raise
        print(f"mrgen-nnunet: error: {type(exc).__name__}: {exc} — rerun with --debug for the traceback",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
