"""`analytics-admin`: each command's `--help` says what it does (tests/test_access.py runs one
against a stack)."""

from __future__ import annotations

import pytest

from report_server import admin_cli


@pytest.mark.parametrize(
    "command",
    [
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
        ["keys", "rotate"],
        ["tokens", "create"],
        ["tokens", "list"],
        ["tokens", "revoke"],
        ["tokens", "rotate"],
        ["bootstrap"],
    ],
    ids=" ".join,
)
def test_every_cli_command_explains_itself(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        admin_cli.main([*command, "--help"])

    assert exited.value.code == 0
    assert len(capsys.readouterr().out.split("\n\n")[1]) > 40  # a description, not just usage
