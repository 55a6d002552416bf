"""Golden output of ``biocoreset score --help`` and ``biocoreset finetune --help``: every flag, its
group, type, default, choices and help, as recorded in ``tests/cli/golden/<command>.json``.

The record is argparse's view of each option (not the wrapped text), so it does not depend on the
terminal width or on the Python version's help layout. After a deliberate change, regenerate with
``BIOCORESET_UPDATE_GOLDEN=1 pytest tests/cli/test_help_golden.py`` and review the diff; a changed
flag, default or choice goes in the CHANGELOG.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest

from biocoreset.cli import build_parser

GOLDEN = Path(__file__).parent / "golden"


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise AssertionError("no subcommands")  # pragma: no cover


def _record(name: str) -> dict[str, Any]:
    sub = _subparser(name)
    flags = {}
    for group in sub._action_groups:
        for action in group._group_actions:
            key = action.option_strings[-1] if action.option_strings else action.dest
            kind = action.type
            flags[key] = {
                "group": group.title,
                "option_strings": list(action.option_strings),
                "dest": action.dest,
                "action": type(action).__name__,
                "type": None if kind is None else getattr(kind, "__name__", repr(kind)),
                "nargs": action.nargs,
                "default": action.default,
                "choices": None if action.choices is None else list(action.choices),
                "required": action.required,
                "help": action.help,
            }
    return {"description": sub.description, "flags": flags}


@pytest.mark.parametrize("command", ["score", "finetune"])
def test_help_matches_golden(command):
    path = GOLDEN / f"{command}.json"
    got = json.loads(json.dumps(_record(command)))
    if os.environ.get("BIOCORESET_UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    want = json.loads(path.read_text(encoding="utf-8"))
    assert list(got["flags"]) == list(want["flags"]), "flags added, removed or moved"
    for flag, record in want["flags"].items():
        assert got["flags"][flag] == record, flag
    assert got == want


@pytest.mark.parametrize("command", ["score", "finetune"])
def test_help_renders(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in _record(command)["flags"]:
        if flag.startswith("--") and flag != "--damping-relative":
            assert flag in out
