"""Plugin commands on the command line (issue 13): a plugin's ``merc_bench_cli_commands`` adds
top-level commands that ``--help`` lists and that run with the built-ins' error rules; a plugin that
breaks or takes a taken name adds none, with a warning, and ``--strict-plugins`` stops instead.

The command plugins here are registered in process with the command line's own plugin manager
(:func:`merc_bench.plugins.command_plugin_manager`); the example package's entry point is exercised
in ``test_example_plugin.py``.
"""

from __future__ import annotations

import pytest
import typer

from merc_bench import hookimpl
from merc_bench.cli import main
from merc_bench.errors import UserError
from merc_bench.plugins import command_plugin_manager, reset


class GreetPlugin:
    @hookimpl
    def merc_bench_cli_commands(self, app):
        @app.command("toy-greet")
        def greet(name: str, times: int = 1) -> None:
            """Greet NAME (a toy plugin command)."""
            if times > 3:
                raise UserError(f"--times {times} is more than 3: a toy greets at most three times; "
                                "give a smaller --times.")
            for _ in range(times):
                typer.echo(f"hello {name}")

        toys = typer.Typer(help="Toy group.")

        @toys.command("count")
        def count(upto: int) -> None:
            """Count to UPTO."""
            typer.echo(" ".join(str(i) for i in range(1, upto + 1)))

        app.add_typer(toys, name="toy-tools")


class ClashingPlugin:
    @hookimpl
    def merc_bench_cli_commands(self, app):
        @app.command("toy-fine")
        def fine() -> None:
            """Would be fine alone."""

        @app.command("run")
        def run() -> None:
            """Takes the built-in's name."""
            typer.echo("not the real run")


class BrokenPlugin:
    @hookimpl
    def merc_bench_cli_commands(self, app):
        raise RuntimeError("this plugin's command module is broken")


@pytest.fixture
def register():
    registered = []

    def add(plugin, name):
        command_plugin_manager().register(plugin, name=name)
        registered.append(plugin)

    yield add
    for plugin in registered:
        command_plugin_manager().unregister(plugin)
    reset()


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


def test_a_plugin_command_is_listed_and_runs(register, capsys):
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0 and "toy-greet" not in out
    register(GreetPlugin(), "toy-greet-plugin")
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    assert "toy-greet" in out and "Greet NAME (a toy plugin command)." in out and "toy-tools" in out
    assert "run" in out  # the built-ins are all still there
    code, out, _ = run_cli(["toy-greet", "Ann", "--times", "2"], capsys)
    assert code == 0 and out.splitlines() == ["hello Ann", "hello Ann"]
    code, out, _ = run_cli(["toy-tools", "count", "3"], capsys)
    assert code == 0 and out.strip() == "1 2 3"


def test_a_plugin_commands_user_error_is_one_paragraph_and_exit_2(register, capsys):
    register(GreetPlugin(), "toy-greet-plugin")
    code, _, err = run_cli(["toy-greet", "Ann", "--times", "9"], capsys)
    assert code == 2 and "Traceback" not in err
    assert " ".join(err.split()) == ("error: --times 9 is more than 3: a toy greets at most three times; give a "
                                     "smaller --times.")


def test_a_broken_or_clashing_plugin_adds_nothing_and_is_reported(register, capsys):
    register(GreetPlugin(), "toy-greet-plugin")
    register(ClashingPlugin(), "toy-clash")
    register(BrokenPlugin(), "toy-broken")
    code, out, err = run_cli(["--help"], capsys)
    assert code == 0
    assert "toy-greet" in out and "toy-fine" not in out  # all or nothing per plugin
    warnings = " ".join(err.split())
    assert "plugin 'toy-clash'" in warnings and "the command 'run' is already taken by merc-bench itself" in warnings
    assert "plugin 'toy-broken'" in warnings and "this plugin's command module is broken" in warnings
    code, out, _ = run_cli(["run", "--help"], capsys)
    assert code == 0 and "Train and evaluate a recipe" in out  # the built-in run, not the plugin's
    code, _, err = run_cli(["--strict-plugins", "toy-greet", "Ann"], capsys)
    assert code == 2 and "strict plugin loading" in " ".join(err.split())
