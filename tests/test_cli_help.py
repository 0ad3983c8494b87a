"""`--help` shows every option's help exactly as written (rich markup used to eat `[default: $nnUNet_raw]`),
commands in pipeline order, flags without a type column, and `env` reports what it promises."""

from __future__ import annotations

import re
import warnings

import pytest
import typer

from mrgen_nnunet import __version__
from mrgen_nnunet.cli.main import ORDER, app, main


def _normalise(text: str) -> str:
    """Drop the panels' box characters and collapse whitespace, so wrapped lines join up again."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _commands(command, path=()):
    """(path, click command) for every command and subcommand, as written in the source (not escaped)."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(path) or "mrgen-nnunet" for path, _ in COMMANDS])
def test_every_help_text_appears_verbatim_in_help(path, command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert main([*path, "--help"]) == 0
    shown = _normalise(capsys.readouterr().out)
    texts = [command.help.split("\n\n")[0]] if command.help else []
    texts += [p.help for p in command.params if getattr(p, "help", None)]
    missing = [t for t in texts if _normalise(t) not in shown]
    assert not missing, f"`mrgen-nnunet {' '.join(path)} --help` lost: {missing}"
    assert "<bool>" not in shown


def test_bracketed_help_survives_and_commands_are_in_pipeline_order(capsys):
    assert main(["synthesize", "--help"]) == 0
    shown = _normalise(capsys.readouterr().out)
    assert "nnU-Net raw folder to write to [default: $nnUNet_raw]." in shown and "extra [ray])" in shown
    for panel in ("Input and output", "Generation", "Filter", "Scale-out"):
        assert f" {panel} " in shown
    assert main(["--help"]) == 0
    listed = [ln.split()[1] for ln in capsys.readouterr().out.splitlines()
              if ln.startswith("│ ") and ln.split()[1] in ORDER]
    assert listed == list(ORDER) and ORDER[:6] == ("convert", "train", "synthesize", "segment", "pseudo-label",
                                                   "evaluate")


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"mrgen-nnunet {__version__}\n"


def test_usage_errors_are_click_messages_with_exit_code_2(capsys):
    assert main(["synthesize", "--target", "LGE"]) == 2
    assert "Missing option '--source'" in capsys.readouterr().err


def test_third_party_warnings_only_with_debug(monkeypatch, capsys):
    import mrgen_nnunet.environment as environment

    def warn_then_report(report):
        warnings.warn("torch.jit.script is deprecated", FutureWarning, stacklevel=1)  # as torch does on import
        return "report"

    monkeypatch.setattr(environment, "format_report", warn_then_report)
    for argv, expected in ((["env"], []), (["--debug", "env"], [FutureWarning])):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            assert main(argv) == 0
        assert [w.category for w in seen] == expected
