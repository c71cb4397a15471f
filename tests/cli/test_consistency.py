"""One consistent CLI: every subcommand describes itself with an example, shows its defaults,
spells the shared options alike and takes --log-level after the subcommand; the bus rule."""

from __future__ import annotations

import argparse

import pytest

from streaming.commandline import EMBEDDED_DEFAULT, KAFKA_DEFAULT, CommandError, cli_bus_url
from ticktide.cli import build_parser, iter_commands

# option -> the one help text it has everywhere (the bus's names its own default)
SHARED = ("--bus", "--symbols", "--venue", "--log-level", "--config", "--input")
INTER_PROCESS = {"consume", "subscribe", "produce", "replay", "topics", "stress", "gateway"}
EMBEDDED = {"demo", "workflow run"}


def leaves():
    return [(name, p) for name, p in iter_commands(build_parser()) if not any(
        isinstance(a, argparse._SubParsersAction) for a in p._actions)]


def test_every_subcommand_has_a_description_and_an_example():
    for name, p in leaves():
        text = p.format_help()
        assert p.description and len(p.description) > 40, name
        assert "example:" in text and f"ticktide {name}" in text.split("example:", 1)[1], name


def test_every_option_with_a_default_shows_it():
    for name, p in leaves():
        for a in p._actions:
            if not a.option_strings or any(a.default is x for x in (None, False, argparse.SUPPRESS)) or a.help is None:
                continue
            assert "default" in p._get_formatter()._get_help_string(a), f"{name} {a.option_strings}"


def test_shared_options_have_one_spelling_and_one_help():
    seen: dict[str, set[str]] = {}
    for name, p in leaves():
        for a in p._actions:
            for opt in SHARED:
                if opt in a.option_strings:
                    assert a.option_strings[0] == opt, f"{name}: {a.option_strings}"
                    assert a.metavar or a.choices, f"{name} {opt}"
                    seen.setdefault(opt, set()).add(a.help.split(" (default")[0] if opt != "--bus" else
                                                    a.help.split("(default")[0])
        # no command keeps a private spelling of a shared option
        assert "--symbol" not in p._option_string_actions or \
            p._option_string_actions["--symbol"].option_strings[0] == "--symbols", name
    assert len(seen["--bus"]) == 1 and len(seen["--log-level"]) == 1, seen
    assert len(seen["--symbols"]) == 1, seen["--symbols"]


def test_log_level_after_the_subcommand():
    parser = build_parser()
    for name, p in leaves():
        assert "--log-level" in p._option_string_actions, name
    args = parser.parse_args(["consume", "features", "--log-level", "debug"])
    assert args.log_level == "DEBUG"
    assert parser.parse_args(["--log-level", "ERROR", "topics", "list"]).log_level == "ERROR"


def test_venue_options_are_validated_with_the_list():
    from producers.venues import available

    for name, p in leaves():
        for a in p._actions:
            if a.option_strings and a.option_strings[0] in ("--venue", "--fallback-venue"):
                assert a.choices and set(a.choices) == set(available()), f"{name} {a.option_strings}"


def test_bus_defaults_follow_the_one_rule(monkeypatch, capsys):
    monkeypatch.delenv("TICKTIDE_BUS", raising=False)
    parser = build_parser()
    args_of = {name: p for name, p in leaves()}
    for name in INTER_PROCESS | EMBEDDED:
        p = args_of[name]
        default = p.get_default("bus_default")
        assert default == (EMBEDDED_DEFAULT if name in EMBEDDED else KAFKA_DEFAULT), name
    ns = argparse.Namespace(bus=None, bus_default=KAFKA_DEFAULT)
    assert cli_bus_url(ns) == KAFKA_DEFAULT
    monkeypatch.setenv("TICKTIDE_BUS", "kafka://h:1")
    assert cli_bus_url(ns) == "kafka://h:1"
    assert cli_bus_url(argparse.Namespace(bus="kafka://x:2", bus_default=KAFKA_DEFAULT)) == "kafka://x:2"
    assert capsys.readouterr().err == ""
    # memory:// chosen for an inter-process command works, with a warning
    assert cli_bus_url(argparse.Namespace(bus="memory://", bus_default=KAFKA_DEFAULT), "ticktide consume") \
        == "memory://"
    assert "ticktide consume: warning: memory:// is private to this process" in capsys.readouterr().err
    assert cli_bus_url(argparse.Namespace(bus="memory://", bus_default=EMBEDDED_DEFAULT)) == "memory://"
    assert capsys.readouterr().err == ""
    with pytest.raises(CommandError, match="bad bus URL"):
        cli_bus_url(argparse.Namespace(bus="localhost:9092", bus_default=KAFKA_DEFAULT))
    assert parser is not None


def test_symbols_comma_separated_or_repeated():
    parser = build_parser()
    a = parser.parse_args(["subscribe", "signals.v1", "--symbols", "A,B", "--symbols", "C"])
    assert a.symbols == "A,B,C"
    assert parser.parse_args(["subscribe", "signals.v1", "--symbol", "X"]).symbols == "X"  # old spelling
    assert parser.parse_args(["demo"]).symbols == "BTCUSDT,ETHUSDT,SOLUSDT"
    assert parser.parse_args(["demo", "--symbols", "BTCUSDT"]).symbols == "BTCUSDT"
