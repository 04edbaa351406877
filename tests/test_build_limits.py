"""Sizes are checked before anything is allocated, and out-of-range settings are configuration errors.

merc_bench.sizing counts parameters on the meta device and estimates training memory before the
model is built for real; every numeric option of the run and of every registered component has
bounds, so a typo is a one-paragraph error instead of a traceback, an exhausted machine or a run
that trains on NaN.
"""

import math
import os
import typing

import pydantic
import pytest
import torch

from merc_bench.cli import main
from merc_bench.config import MAX_SEED, RunConfig
from merc_bench.errors import UserError
from merc_bench.model import build_model, count_parameters
from merc_bench.plugins import get_registry
from merc_bench.pipeline import prepare
from merc_bench.sizing import (MAX_MEMORY_VARIABLE, estimate_training_memory, memory_limit, parse_size)

TINY = ["dataset.train_dialogues=6", "dataset.dev_dialogues=2", "dataset.test_dialogues=2"]


def cli(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    captured = capsys.readouterr()
    return stop.value.code, captured.out, " ".join(captured.err.split())


# -- sizes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, size", [("8G", 8 << 30), ("512M", 512 << 20), ("1.5GiB", 3 << 29), ("64gb", 64 << 30),
                                        (" 2 T ", 2 << 40), ("1048576", 1 << 20), ("4096k", 4 << 20)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "8Q", "-1G", "1e400", "nan", "inf", "100", "8G8", "x" * 500])
def test_parse_size_refuses_what_is_not_a_size(text):
    with pytest.raises(UserError, match="is not a memory size") as refused:
        parse_size(text)
    assert len(str(refused.value)) < 300


def test_a_huge_model_is_refused_before_a_byte_is_allocated(capsys):
    """SDT at H = 65536 has 313 billion parameters: counted on the meta device, refused with the figures."""
    code, _, err = cli(["validate", "sdt", "--set", "model.hidden_size=65536"], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.startswith("error: recipe 'sdt' is too large to train here: 313,649,201,180 parameters;")
    assert "GiB" in err and "more than the limit of" in err and "(available memory)" in err


def test_build_model_refuses_weights_over_the_limit_without_allocating(monkeypatch):
    """What compare, ablate and tune rely on: every build counts on the meta device first."""
    registry = get_registry()
    prepared = prepare(registry, recipe="sdt", dataset="synthetic", overrides=TINY)
    config, info = prepared.config, prepared.corpus.info
    huge = config.model_copy(update={"model": config.model.model_copy(update={"hidden_size": 65536})})
    with pytest.raises(UserError, match=r"recipe 'sdt' has 313,649,201,180 parameters, 1,168.\d\d GiB of weights"):
        build_model(huge, info, registry)
    monkeypatch.setenv(MAX_MEMORY_VARIABLE, "2M")
    with pytest.raises(UserError, match=r"more than the limit of 2.0 MiB \(--max-memory"):
        build_model(config, info, registry)


def test_the_size_check_leaves_the_weights_unchanged():
    """The meta build draws no random numbers: SDT initialises exactly as without the check."""
    registry = get_registry()
    prepared = prepare(registry, recipe="sdt", dataset="synthetic", overrides=TINY + ["model.hidden_size=32"])
    torch.manual_seed(7)
    checked, _ = build_model(prepared.config, prepared.corpus.info, registry)
    torch.manual_seed(7)
    unchecked, _ = build_model(prepared.config, prepared.corpus.info, registry, check_size=False)
    assert checked.state_dict().keys() == unchecked.state_dict().keys()
    assert all(torch.equal(checked.state_dict()[k], unchecked.state_dict()[k]) for k in checked.state_dict())


def test_the_estimate_counts_parameters_exactly_and_activations_per_dialogue():
    registry = get_registry()
    prepared = prepare(registry, recipe="summer-small", dataset="synthetic",
                       overrides=TINY + ["dataset.train_dialogues=12", "training.batch_size=4"])
    model, distiller = build_model(prepared.config, prepared.corpus.info, registry)
    one = estimate_training_memory(prepared.config, prepared.corpus, registry, "cpu")
    assert one.parameters == count_parameters(model, distiller)[0] and one.method == "measured"
    assert one.training_state == 16 * one.trainable  # gradient, two Adam moments, best-epoch copy
    config = prepared.config.model_copy(update={"training": prepared.config.training.model_copy(
        update={"batch_size": 2 * one.batch[0]})})
    two = estimate_training_memory(config, prepared.corpus, registry, "cpu")
    assert one.batch[0] == 4 and two.batch == (8, one.batch[1])
    assert two.activations == pytest.approx(2 * one.activations, rel=1e-6)  # dialogues in a batch are independent


def test_max_memory_option_refuses_and_does_not_outlive_the_command(capsys, tmp_path):
    out = tmp_path / "out"
    code, _, err = cli(["run", "summer-small", "--no-track", "--out", str(out), "--max-memory", "64M",
                        *[a for o in TINY for a in ("--set", o)]], capsys)
    assert code == 2 and "more than the limit of 64.0 MiB (--max-memory / MERC_BENCH_MAX_MEMORY)" in err
    assert not out.exists() and MAX_MEMORY_VARIABLE not in os.environ
    code, stdout, _ = cli(["validate", "summer-small", "--max-memory", "1T", *[a for o in TINY for a in ("--set", o)]],
                          capsys)
    assert code == 0 and MAX_MEMORY_VARIABLE not in os.environ
    text = " ".join(stdout.split())
    assert "memory: 2,267,069 parameters; training needs about" in text and "(measured, batch of" in text
    assert f"limit {memory_limit('cpu')}".split(" (")[1] in text  # the machine's memory is lower than 1 TiB
    code, _, err = cli(["validate", "sdt", "--max-memory", "lots"], capsys)
    assert code == 2 and "--max-memory 'lots' is not a memory size" in err


# -- configuration bounds ---------------------------------------------------------------------------

@pytest.mark.parametrize("override, fragment", [
    ("training.seed=4294967296", "'training.seed' = 4294967296: Input should be less than or equal to 4294967295"),
    ("training.seed=-1", "'training.seed' = -1"),
    ("model.hidden_size=100000000", "'model.hidden_size' = 100000000: Input should be less than or equal to 65536"),
    ("training.lr=1e308", "'training.lr' = 1e+308"),
    ("training.lr=NaN", "'training.lr'"),
    ("training.weight_decay=Infinity", "'training.weight_decay'"),
    ("training.epochs=1000000000", "'training.epochs'"),
    ("training.batch_size=1e9", "'training.batch_size'"),
    ("training.class_weights=[1, NaN, 1]", "'training.class_weights"),
    ("seeds=100000", "'seeds' = 100000"),
])
def test_out_of_range_settings_are_configuration_errors(override, fragment):
    with pytest.raises(UserError) as refused:
        prepare(get_registry(), recipe="sdt", dataset="synthetic", overrides=TINY + [override])
    assert fragment in str(refused.value)


def test_seeds_stay_in_range_as_a_whole():
    registry = get_registry()
    last = prepare(registry, recipe="bigru-concat", dataset="synthetic", overrides=TINY + [f"training.seed={MAX_SEED}"])
    assert last.config.training.seed == MAX_SEED
    with pytest.raises(UserError, match=r"seeds 4294967295…4294967296 go past the largest seed"):
        prepare(registry, recipe="bigru-concat", dataset="synthetic",
                overrides=TINY + [f"training.seed={MAX_SEED}", "seeds=2"])


def _numeric_fields(model: type[pydantic.BaseModel]):
    """(name, kind, is_list) of every int/float field, optional or a list of them."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        for candidate in (annotation, *typing.get_args(annotation)):
            inner = typing.get_args(candidate)
            if candidate in (int, float):
                yield name, candidate, False
                break
            if typing.get_origin(candidate) is list and inner and typing.get_args(inner[0])[:1] in ((int,), (float,)):
                yield name, typing.get_args(inner[0])[0], True
                break


def _configs():
    from merc_bench.config import ModelConfig, TrainingConfig

    yield "run", RunConfig
    yield "model", ModelConfig
    yield "training", TrainingConfig
    for entry in get_registry().entries():
        if entry.config is not None:
            yield f"{entry.kind} {entry.name}", entry.config
            for name, field in entry.config.model_fields.items():  # nested groups, e.g. IKD's teacher options
                if isinstance(field.annotation, type) and issubclass(field.annotation, pydantic.BaseModel):
                    yield f"{entry.kind} {entry.name}.{name}", field.annotation


@pytest.mark.parametrize("owner, config", list(_configs()), ids=lambda value: value if isinstance(value, str) else "")
def test_every_numeric_option_is_bounded_and_finite(owner, config):
    """A sweep of every registered config: no int or float option accepts absurd, NaN or infinite values."""
    fields = list(_numeric_fields(config))
    for name, kind, is_list in fields:
        absurd = [10**30, -(10**30)] + ([math.nan, math.inf, -math.inf] if kind is float else [])
        for value in absurd:
            values = {name: [value] if is_list else value}
            if config is RunConfig:
                values = dict(recipe="r", dataset={"name": "d"}, encoder={"name": "e"}, mixer={"name": "m"},
                              fuser={"name": "f"}, distiller={"name": "d"}, **values)
            with pytest.raises(pydantic.ValidationError):
                config.model_validate(values)


def test_the_recipes_own_values_stay_valid():
    registry = get_registry()
    for entry in registry.entries("recipe"):
        for family in ("meld", "iemocap"):
            values = entry.obj.resolve(family)
            config = RunConfig.model_validate(dict(values, dataset={"name": "synthetic"}))
            for kind in ("encoder", "mixer", "fuser", "distiller"):
                choice = getattr(config, kind)
                registry.get(kind, choice.name).make_config(choice.config, where=kind)


@pytest.mark.parametrize("override, component", [("mixer.heads=7", "mixer 'transformer'"),
                                                 ("fuser.heads=3", "fuser 'cross-modal-transformer'"),
                                                 ("mixer.heads=1024", "mixer 'transformer'")])
def test_heads_not_dividing_the_hidden_size_are_refused_by_the_component(override, component, capsys):
    code, _, err = cli(["validate", "sdt", "--set", "model.hidden_size=1000", "--set", override], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"error: {component} (distribution merc-bench ") and "is not divisible by heads" in err


def test_the_sweep_sees_nested_and_optional_numbers():
    from merc_bench.config import TrainingConfig

    assert {"lr", "class_weights", "seed"} <= {name for name, _, _ in _numeric_fields(TrainingConfig)}
    ikd = get_registry().get("distiller", "ikd").config
    assert ("self_distillation_temperature", float, False) in set(_numeric_fields(ikd))  # float | None
    teacher = dict(_configs())["distiller ikd.teacher"]  # a nested options group is swept too
    assert ("epochs", int, False) in set(_numeric_fields(teacher))
