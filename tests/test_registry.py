"""Registry rules and plugin discovery."""

import os
import subprocess
import sys

import pytest
import torch
from pydantic import BaseModel, ConfigDict

from merc_bench import hookimpl
from merc_bench.errors import UserError
from merc_bench.plugins import get_registry, plugin_manager, reset
from merc_bench.registry import RegistrationError, Registry


class GoodConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = 2


class GoodMixer(torch.nn.Module):
    def __init__(self, config: GoodConfig, *, hidden_size: int):
        super().__init__()
        self.width = config.width

    def forward(self, x, mask):
        return x


def test_builtins_arrive_through_entry_points():
    registry = get_registry()
    assert {"sdt", "bigru-concat"} <= set(registry.names("recipe"))
    assert "synthetic" in registry.names("dataset")
    assert registry.get("mixer", "transformer").plugin == "merc-bench"
    assert registry.get("mixer", "transformer").source == "sdt"


def test_unknown_name_lists_known_names_and_close_matches():
    with pytest.raises(UserError) as error:
        get_registry().get("mixer", "transfomer")
    message = str(error.value)
    assert "Did you mean 'transformer'" in message
    assert "bigru" in message and "identity" in message


def test_registration_checks_interface_and_config():
    registry = Registry()
    registry.register("mixer", "good", GoodMixer, config=GoodConfig)
    with pytest.raises(RegistrationError, match="registered twice: by 'merc-bench' and by 'merc-bench'"):
        registry.register("mixer", "good", GoodMixer, config=GoodConfig)

    class LooseConfig(BaseModel):
        width: int = 2

    with pytest.raises(RegistrationError, match="extra='forbid'"):
        registry.register("mixer", "loose", GoodMixer, config=LooseConfig)

    class WrongConfig(BaseModel):
        model_config = ConfigDict(extra="forbid")
        depth: int = 1

    with pytest.raises(RegistrationError, match="annotated GoodConfig, but the component is declared with config "
                                                "WrongConfig"):
        registry.register("mixer", "wrong", GoodMixer, config=WrongConfig)

    class Positional(torch.nn.Module):
        def __init__(self, config, hidden_size):
            super().__init__()

        def forward(self, x, mask):
            return x

    with pytest.raises(RegistrationError, match=r"one positional parameter.*\['config', 'hidden_size'\]"):
        registry.register("mixer", "positional", Positional, config=GoodConfig)

    class OptionsInTheSignature(torch.nn.Module):  # the old style: every option a second time, with a default
        def __init__(self, *, hidden_size: int, width: int = 2):
            super().__init__()

        def forward(self, x, mask):
            return x

    with pytest.raises(RegistrationError, match="validated config as its one positional parameter"):
        registry.register("mixer", "options", OptionsInTheSignature, config=GoodConfig)

    class OptionBesideTheConfig(torch.nn.Module):
        def __init__(self, config: GoodConfig, *, hidden_size: int, width: int = 2):
            super().__init__()

        def forward(self, x, mask):
            return x

    with pytest.raises(RegistrationError, match=r"\['width'\] are not build-context names"):
        registry.register("mixer", "beside", OptionBesideTheConfig, config=GoodConfig)

    class Anything(torch.nn.Module):
        def __init__(self, config, **context):
            super().__init__()

        def forward(self, x, mask):
            return x

    with pytest.raises(RegistrationError, match=r"\*args or \*\*kwargs \(\['context'\]\)"):
        registry.register("mixer", "anything", Anything, config=GoodConfig)

    class NotAModule:
        def __init__(self, config):
            pass

        def forward(self, x, mask):
            return x

    with pytest.raises(RegistrationError, match="torch.nn.Module"):
        registry.register("mixer", "plain", NotAModule, config=GoodConfig)
    with pytest.raises(RegistrationError, match="unknown kind"):
        registry.register("mixxer", "x", GoodMixer, config=GoodConfig)


DECLARING_MODULE = """
import torch
from pydantic import BaseModel, ConfigDict

from merc_bench import component
from test_registry_helpers import Imported


class ScaleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scale: float = 2.0


def search_space(trial, prefix):
    return {"scale": trial.suggest_float(prefix + "scale", 1.0, 3.0)}


@component("mixer", "scale", config=ScaleConfig, search_space=search_space, paper="Nobody, 2025")
class ScaleMixer(torch.nn.Module):
    \"\"\"Multiplies by a constant.\"\"\"

    def __init__(self, config: ScaleConfig, *, hidden_size: int):
        super().__init__()
        self.scale, self.hidden_size, self.config = config.scale, hidden_size, config

    def forward(self, x, mask):
        return x * self.scale


class Undeclared(ScaleMixer):  # a subclass is not declared by its parent's decorator
    pass
"""


def _module(name: str, source: str, monkeypatch) -> object:
    import types

    helpers = types.ModuleType("test_registry_helpers")
    exec("from merc_bench import component\nfrom pydantic import BaseModel, ConfigDict\nimport torch\n"
         "class C(BaseModel):\n    model_config = ConfigDict(extra='forbid')\n"
         "@component('mixer', 'imported', config=C)\nclass Imported(torch.nn.Module):\n"
         "    def __init__(self, config):\n        super().__init__()\n    def forward(self, x, mask):\n        return x\n",
         helpers.__dict__)
    monkeypatch.setitem(sys.modules, "test_registry_helpers", helpers)
    module = types.ModuleType(name)
    exec(source, module.__dict__)
    return module


def test_register_declared_registers_what_a_module_declares_beside_its_classes(monkeypatch):
    from merc_bench import component
    from merc_bench.registry import declared_components

    module = _module("acme_scale", DECLARING_MODULE, monkeypatch)
    assert [cls.__name__ for cls in declared_components(module)] == ["ScaleMixer"]  # not Imported, not Undeclared
    registry = Registry()
    scoped = registry.scoped("acme-merc", "acme")
    [entry] = scoped.register_declared(module)
    assert (entry.kind, entry.name, entry.obj, entry.config) == ("mixer", "acme-merc:scale", module.ScaleMixer,
                                                                 module.ScaleConfig)
    assert entry.search_space is module.search_space and entry.paper == "Nobody, 2025"
    assert entry.description == "Multiplies by a constant." and entry.source == "acme"
    built = entry.build(entry.make_config({"scale": 3.0}), {"hidden_size": 5, "modalities": ("text",)})
    assert built.scale == 3.0 and built.hidden_size == 5 and isinstance(built.config, module.ScaleConfig)
    assert entry.context_parameters() == ["hidden_size"]  # only what it asks for is passed
    with pytest.raises(RegistrationError, match="declares no component"):
        registry.register_declared(_module("empty", "x = 1", monkeypatch))
    with pytest.raises(RegistrationError, match="Undeclared is not declared"):
        registry.register_declared(module.Undeclared)
    with pytest.raises(RegistrationError, match="declared twice"):
        component("mixer", "again", config=module.ScaleConfig)(module.ScaleMixer)
    # The declaration goes through the same checks as register(): a bad one is refused when registered.
    broken = _module("acme_broken", DECLARING_MODULE.replace("*, hidden_size: int", "*, hidden_size: int, width=2"),
                     monkeypatch)
    with pytest.raises(RegistrationError, match=r"\['width'\] are not build-context names"):
        Registry().register_declared(broken)


def test_config_rejects_typos_with_a_clear_message():
    entry = get_registry().get("mixer", "transformer")
    with pytest.raises(UserError, match="'head' is not an option"):
        entry.make_config({"head": 4})
    with pytest.raises(UserError, match="'heads' = 'four'"):
        entry.make_config({"heads": "four"})


def test_throwaway_plugin_registers_through_the_hook():
    class ThrowawayPlugin:
        @hookimpl
        def merc_bench_register(self, registry):
            registry.register("mixer", "throwaway", GoodMixer, config=GoodConfig)

    manager = plugin_manager()
    plugin = ThrowawayPlugin()
    manager.register(plugin, name="throwaway")
    try:
        get_registry.cache_clear()
        entry = get_registry().get("mixer", "throwaway")
        assert entry.source == "throwaway"
        assert entry.plugin == "(registered in process)"
        assert entry.name == "throwaway:throwaway"  # in-process plugins are namespaced by their plugin name
    finally:
        manager.unregister(plugin)
        get_registry.cache_clear()
    with pytest.raises(UserError):
        get_registry().get("mixer", "throwaway")


def _names_in_subprocess(environment: dict) -> str:
    code = "from merc_bench.plugins import get_registry; print(sorted(get_registry().names('recipe')))"
    env = dict(os.environ, **environment)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


def test_disable_autoload_and_block_variables():
    assert "sdt" in _names_in_subprocess({})
    assert _names_in_subprocess({"MERC_BENCH_DISABLE_PLUGIN_AUTOLOAD": "1"}).strip() == "[]"
    blocked = _names_in_subprocess({"MERC_BENCH_BLOCK_PLUGINS": "sdt"})
    assert "sdt" not in blocked and "bigru-concat" in blocked


def test_reset_rebuilds():
    first = get_registry()
    reset()
    assert get_registry() is not first


def test_lifecycle_hooks_add_epoch_metrics_and_see_the_result(tmp_path, capsys):
    from merc_bench.cli import main

    seen = {}

    class EpochLogger:
        @hookimpl
        def merc_bench_after_epoch(self, epoch, metrics, run):
            return {"doubled_loss": 2 * metrics["train_loss"]}

        @hookimpl
        def merc_bench_after_run(self, result):
            seen["result"] = result

    manager = plugin_manager()
    plugin = EpochLogger()
    manager.register(plugin, name="epoch-logger")
    try:
        with pytest.raises(SystemExit) as stop:
            main(["run", "bigru-concat", "--epochs", "2", "--no-track", "--out", str(tmp_path),
                  "--set", "dataset.train_dialogues=8", "--set", "dataset.dev_dialogues=3",
                  "--set", "dataset.test_dialogues=3", "--set", "model.hidden_size=16"])
        assert stop.value.code == 0
    finally:
        manager.unregister(plugin)
    history = seen["result"]["runs"][0]["history"]
    assert [row["doubled_loss"] for row in history] == [2 * row["train_loss"] for row in history]


def test_third_party_names_are_namespaced_with_a_short_alias():
    registry = Registry()
    registry.register("mixer", "good", GoodMixer, config=GoodConfig)  # a built-in
    entry = registry.register("mixer", "fancy", GoodMixer, config=GoodConfig, plugin="acme-merc")
    assert entry.name == "acme-merc:fancy" and entry.short_name == "fancy"
    assert registry.get("mixer", "acme-merc:fancy") is entry
    assert registry.get("mixer", "fancy") is entry  # unambiguous alias
    registry.register("mixer", "fancy", GoodMixer, config=GoodConfig, plugin="other-merc")
    with pytest.raises(UserError, match="ambiguous: acme-merc:fancy, other-merc:fancy"):
        registry.get("mixer", "fancy")
    assert registry.get("mixer", "other-merc:fancy").plugin == "other-merc"
    with pytest.raises(RegistrationError, match="'acme-merc' clashes with the built-in mixer 'good' of 'merc-bench'"):
        registry.register("mixer", "good", GoodMixer, config=GoodConfig, plugin="acme-merc")
    with pytest.raises(RegistrationError, match="clashes with 'acme-merc:fancy' of 'acme-merc'"):
        registry.register("mixer", "fancy", GoodMixer, config=GoodConfig)  # a built-in arriving later
    with pytest.raises(RegistrationError, match="registered twice: by 'acme-merc' and by 'acme-merc'"):
        registry.register("mixer", "fancy", GoodMixer, config=GoodConfig, plugin="acme-merc")
    with pytest.raises(RegistrationError, match="without ':'"):
        registry.register("mixer", "acme:x", GoodMixer, config=GoodConfig, plugin="acme-merc")


def test_a_failing_plugin_is_reported_rolled_back_and_the_rest_load(monkeypatch):
    from merc_bench.plugins import plugin_problems

    class HalfBroken:
        @hookimpl
        def merc_bench_register(self, registry):
            registry.register("mixer", "half", GoodMixer, config=GoodConfig)
            raise RuntimeError("boom in register")

    manager = plugin_manager()
    plugin = HalfBroken()
    manager.register(plugin, name="half-broken")
    try:
        get_registry.cache_clear()
        registry = get_registry()
        assert "half-broken:half" not in registry.names("mixer")  # rolled back
        assert "sdt" in registry.names("recipe")  # the others loaded
        problems = [p for p in plugin_problems() if p.plugin == "half-broken"]
        assert len(problems) == 1 and "boom in register" in problems[0].message()
        monkeypatch.setenv("MERC_BENCH_STRICT_PLUGINS", "1")
        get_registry.cache_clear()
        with pytest.raises(UserError, match="half-broken.*boom in register.*stops here"):
            get_registry()
    finally:
        manager.unregister(plugin)
        get_registry.cache_clear()


def test_plugin_import_errors_name_the_distribution(tmp_path):
    """A distribution whose entry point cannot be imported: warned about, everything else works."""
    site = tmp_path / "site"
    info = site / "broken_merc_plugin-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-merc-plugin\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[merc_bench]\nbroken = broken_merc_plugin_module\n")
    (site / "broken_merc_plugin_module.py").write_text("raise ImportError('needs a missing library')\n")
    env = dict(os.environ, PYTHONPATH=str(site))
    listed = subprocess.run([sys.executable, "-m", "merc_bench.cli", "list", "recipe"], env=env,
                            capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert "sdt" in listed.stdout
    warning = " ".join(listed.stderr.split())  # rich wraps long lines
    assert "plugin 'broken' of distribution 'broken-merc-plugin 1.2.3' could not be imported" in warning
    assert "needs a missing library" in warning
    strict = subprocess.run([sys.executable, "-m", "merc_bench.cli", "--strict-plugins", "list"], env=env,
                            capture_output=True, text=True)
    assert strict.returncode == 2
    assert "broken-merc-plugin" in strict.stderr and "Traceback" not in strict.stderr


def test_trace_logs_hook_calls(tmp_path):
    result = subprocess.run([sys.executable, "-m", "merc_bench.cli", "--trace", "list", "recipe"],
                            capture_output=True, text=True)
    assert result.returncode == 0
    assert "[merc-bench hook]   merc_bench_register" in result.stderr
    assert "source='sdt'" in result.stderr


# -- components refusing a build (the one way for a component to say "not with this configuration") --

class WidthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = 2
    failure: str = "value"


class PickyMixer(torch.nn.Module):
    """Refuses widths above 4 the documented way, or fails the way a bug does (``failure``)."""

    def __init__(self, config: WidthConfig, *, hidden_size: int):
        super().__init__()
        width, failure = config.width, config.failure
        if width > 4:
            if failure == "value":
                raise ValueError(f"width {width} is more than 4")
            if failure == "type":
                raise TypeError("width must be at most 4")
            if failure == "user":
                raise UserError("width must be at most 4, as the paper's Table 2 uses.")
            if failure == "long":
                raise ValueError("x" * 5000 + "\n\nsecond paragraph")
            raise ZeroDivisionError("a bug in the component, not a refusal")
        self.linear = torch.nn.Linear(hidden_size, hidden_size)

    def forward(self, x, mask):
        if self.linear.in_features == 3:
            raise RuntimeError("a bug in forward")
        return self.linear(x)


@pytest.mark.parametrize("failure, shown", [("value", "ValueError: width 9 is more than 4"),
                                            ("type", "TypeError: width must be at most 4"),
                                            ("user", "refused to build: width must be at most 4, as the paper's")])
def test_a_constructor_refusal_names_the_component_its_distribution_and_version(failure, shown):
    from importlib.metadata import version

    from merc_bench.registry import BuildRefused

    entry = Registry().register("mixer", "picky", PickyMixer, config=WidthConfig)  # a built-in: merc-bench
    with pytest.raises(BuildRefused) as refused:
        entry.build(entry.make_config({"width": 9, "failure": failure}), {"hidden_size": 8})
    message = str(refused.value)
    assert message.startswith(f"mixer 'picky' (distribution merc-bench {version('merc-bench')}) refused to build: ")
    assert shown in message
    assert isinstance(refused.value, UserError) and refused.value.entry is entry


def test_a_refusal_message_is_one_bounded_paragraph():
    entry = Registry().register("mixer", "picky", PickyMixer, config=WidthConfig, plugin="acme-merc")
    with pytest.raises(UserError) as refused:
        entry.build(entry.make_config({"width": 9, "failure": "long"}), {"hidden_size": 8})
    message = str(refused.value)
    assert "\n" not in message and "second paragraph" not in message
    assert len(message) < 700 and "mixer 'acme-merc:picky' (distribution acme-merc)" in message


def test_other_exceptions_in_a_constructor_are_bugs_and_propagate():
    entry = Registry().register("mixer", "picky", PickyMixer, config=WidthConfig)
    with pytest.raises(ZeroDivisionError):
        entry.build(entry.make_config({"width": 9, "failure": "bug"}), {"hidden_size": 8})


@pytest.fixture
def picky_plugin():
    class PickyPlugin:
        @hookimpl
        def merc_bench_register(self, registry):
            registry.register("mixer", "picky", PickyMixer, config=WidthConfig)

    manager = plugin_manager()
    plugin = PickyPlugin()
    manager.register(plugin, name="picky-plugin")
    get_registry.cache_clear()
    try:
        yield
    finally:
        manager.unregister(plugin)
        get_registry.cache_clear()


def test_cli_refusal_exits_2_without_traceback_and_writes_nothing(picky_plugin, tmp_path, capsys):
    from merc_bench.cli import main

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        main(["run", "bigru-concat", "--no-track", "--out", str(out), "--set", "mixer=picky",
              "--set", "mixer.width=9", "--set", "model.hidden_size=8"])
    stderr = capsys.readouterr().err
    assert stop.value.code == 2
    text = " ".join(stderr.split())
    assert text.startswith("error: mixer 'picky-plugin:picky' (distribution (registered in process)) refused to "
                           "build: ValueError: width 9 is more than 4.")
    assert "Traceback" not in stderr and not out.exists()


def test_cli_bug_in_forward_keeps_its_traceback(picky_plugin, tmp_path):
    from merc_bench.cli import main

    with pytest.raises(RuntimeError, match="a bug in forward"):
        main(["run", "bigru-concat", "--no-track", "--epochs", "1", "--out", str(tmp_path / "out"),
              "--set", "mixer=picky", "--set", "model.hidden_size=3", "--set", "dataset.train_dialogues=4",
              "--set", "dataset.dev_dialogues=2", "--set", "dataset.test_dialogues=2"])
