"""Fuzz category ``set_values``: hostile ``--set`` values through the real command line.

The committed corpus (``tests/fuzz/set_values/cases.json``, written by
``tests/fuzz/make_set_values.py``) holds out-of-range, NaN, infinite, huge and mistyped values,
unknown keys, malformed arguments, nested and oversized JSON, components refusing their options and
models too big for the machine. Every case runs through ``merc-bench validate`` (or ``run`` /
``compare``, which must refuse before training and leave no output folder) in a child process
under a 3 GiB address-space cap; each refusal must be one clean ``error:`` paragraph that names the
case's own culprit. The valid controls must pass, one of them training an epoch.

Hypothesis builds random overrides — keys from the real settings and options, values from JSON
and text — and resolves them in process the way ``prepare`` does: the result is a valid
configuration or a :class:`~merc_bench.errors.UserError`, nothing else.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_harness import Case, check_refused, run_cases
from merc_bench.config import COMPONENT_SLOTS, RunConfig, apply_overrides
from merc_bench.errors import UserError
from merc_bench.plugins import get_registry
from merc_bench.registry import describe_validation_error

FUZZ = Path(__file__).resolve().parent / "fuzz"
CORPUS = json.loads((FUZZ / "set_values" / "cases.json").read_text())


def test_committed_corpus_is_what_the_generator_writes(tmp_path):
    subprocess.run([sys.executable, str(FUZZ / "make_set_values.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    assert (tmp_path / "cases.json").read_bytes() == (FUZZ / "set_values" / "cases.json").read_bytes()
    assert len(CORPUS["cases"]) >= 50


def _argv(entry: dict, out: Path) -> list[str]:
    argv = [entry["command"], entry["recipe"], *entry["flags"]]
    for value in CORPUS["base"] + entry["sets"]:
        argv += ["--set", value]
    if entry["command"] in ("run", "compare"):
        argv += ["--no-track", "--out", str(out), "--epochs", "1"]
    if entry["command"] == "compare":
        argv += ["--seeds", "1", "--no-reuse"]
    return argv


@pytest.mark.slow
def test_every_hostile_value_is_refused_cleanly_and_the_controls_pass(tmp_path):
    cases, entries = [], {}
    for entry in CORPUS["cases"]:
        out = tmp_path / entry["name"]
        refuse = entry["expect"] == "refuse"
        cases.append(Case(entry["name"], _argv(entry, out), 2 if refuse else 0, [str(out)] if refuse else []))
        entries[entry["name"]] = entry
    outcomes = run_cases(cases)
    problems = [problem for case in cases for problem in check_refused(case, outcomes[case.name])]
    for case in cases:
        fragment = entries[case.name]["fragment"]
        text = " ".join(outcomes[case.name].output.split())
        if fragment and fragment not in text:
            problems.append(f"{case.name}: the refusal does not mention {fragment!r}: {text[-400:]!r}")
    assert not problems, "\n".join(problems)
    result = json.loads((tmp_path / "ok-run-bigru" / "results.json").read_text())
    assert 0.0 <= result["test"]["weighted_f1"]["mean"] <= 1.0 and len(result["runs"][0]["history"]) == 1
    validated = " ".join(outcomes["ok-small-sdt"].output.split())
    assert "memory: " in validated and "(measured, batch of" in validated  # validate prints the estimate


# -- hypothesis: random overrides resolve to a configuration or a UserError --------------------------------

def _keys() -> list[str]:
    registry = get_registry()
    keys = [f"model.{name}" for name in RunConfig.model_fields["model"].annotation.model_fields]
    keys += [f"training.{name}" for name in RunConfig.model_fields["training"].annotation.model_fields]
    keys += ["seeds", "protocol", "device", "modalities", "recipe", "model", "training", *COMPONENT_SLOTS]
    for kind in ("encoder", "mixer", "fuser", "distiller"):
        for entry in registry.entries(kind):
            keys += [f"{kind}.{name}" for name in entry.config.model_fields]
    return sorted(set(keys))


KEYS = _keys()
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)
RAW_VALUES = JSON_VALUES.map(lambda value: json.dumps(value)) | st.text(max_size=30)
OVERRIDES = st.lists(
    st.tuples(st.sampled_from(KEYS) | st.text(max_size=15), RAW_VALUES).map(lambda kv: f"{kv[0]}={kv[1]}")
    | st.text(max_size=30),
    min_size=1, max_size=4,
)


def _resolve(overrides: list[str]) -> RunConfig:
    """What ``prepare`` does with overrides before it loads data: merge, validate, check every component."""
    registry = get_registry()
    values = registry.get("recipe", "sdt").obj.resolve("meld")
    values["dataset"] = {"name": "synthetic", "config": {}}
    values = apply_overrides(values, overrides)
    try:
        config = RunConfig.model_validate(values)
    except pydantic.ValidationError as error:
        raise UserError(describe_validation_error(error, "recipe 'sdt'")) from None
    for kind in ("encoder", "mixer", "fuser", "distiller"):
        choice = getattr(config, kind)
        registry.get(kind, choice.name).make_config(choice.config, where=kind)
    return config


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OVERRIDES)
def test_random_overrides_give_a_config_or_one_bounded_user_error(overrides):
    try:
        config = _resolve(overrides)
    except UserError as error:
        message = str(error)
        assert message and len(message) < 1500 and "\n\n" not in message
        return
    assert 0 < config.model.hidden_size <= 65536 and 0 < config.training.lr <= 10
    assert 0 <= config.training.seed + config.seeds - 1 <= 2**32 - 1
