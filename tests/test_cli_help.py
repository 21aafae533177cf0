"""Every option of every subcommand explains itself in --help, and shows its default."""

from __future__ import annotations

import argparse

import pytest

from hybrid_pipeline.cli import _shows_default, build_parser


def subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) for the parser and every subparser below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subcommands(sub, (*path, name))


COMMANDS = list(subcommands(build_parser()))


def test_the_walk_finds_every_command():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"data stats", "data show", "data check", "score", "trm train", "trm eval", "joint train", "baseline",
            "plan", "merge", "sandbox run"} <= names


@pytest.mark.parametrize("path, parser", COMMANDS, ids=[" ".join(p) or "hybrid-arc" for p, _ in COMMANDS])
def test_every_option_has_help_and_a_default_shows_in_it(path, parser):
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"hybrid-arc {' '.join(path)}: {name} has no help text"
        text = formatter._expand_help(action)
        if _shows_default(action):
            assert "default" in text and str(action.default) in text, \
                f"hybrid-arc {' '.join(path)}: {name} defaults to {action.default!r} but its help says {text!r}"


def test_help_shows_a_default_once(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["plan", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "attempts per test input (default: 4)" in text
    assert "(default: search, and trm with --trm, hybrid with --hybrid, llm with --backbone)" in text
    assert text.count("default: 4") == 1 and "(default: None)" not in text and "(default: False)" not in text
