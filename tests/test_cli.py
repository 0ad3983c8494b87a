"""The CLI shell: groups listed, --version, one-line errors."""

from mrgen_nnunet import __version__
from mrgen_nnunet.cli.main import main


def test_help_lists_all_groups(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for group in ("convert", "train", "synthesize", "segment", "evaluate", "benchmark", "demo", "trainer-path"):
        assert group in out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_unknown_command_fails(capsys):
    assert main(["no-such-command"]) != 0
