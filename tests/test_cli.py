"""The `synartifact` command: help, error handling and exit codes."""

import subprocess
import sys

import pytest

from synartifact import cli

SUBCOMMANDS = ["dataset", "tiny", "sft", "evaluate", "ddpo", "evaluate-generator", "reward-check", "repair", "demo"]


def test_top_level_help_lists_every_stage(capsys):
    assert list(cli.COMMANDS) == SUBCOMMANDS
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    ") and not line.startswith("     ")]
    assert listed == SUBCOMMANDS, out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([name, "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_user_error_exits_2_without_traceback(capsys):
    def bad():
        raise ValueError("record 3, field 'bbox': expected 4 numbers")

    assert cli._run(bad, [], verbose=False) == 2
    err = capsys.readouterr().err
    assert "record 3, field 'bbox'" in err and "Traceback" not in err


def test_failure_exits_1_and_verbose_shows_traceback(capsys):
    def boom():
        raise RuntimeError("kaput")

    assert cli._run(boom, [], verbose=False) == 1
    assert "--verbose" in capsys.readouterr().err
    assert cli._run(boom, [], verbose=True) == 1
    assert "Traceback" in capsys.readouterr().err


def test_console_script_runs_as_module():
    result = subprocess.run([sys.executable, "-m", "synartifact", "tiny", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "vlm" in result.stdout and "sd" in result.stdout
