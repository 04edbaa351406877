"""Fuzz category ``spaces``: hostile ``tune --space`` files through the real command line.

The committed corpus (``tests/fuzz/spaces/``, written by ``tests/fuzz/make_spaces.py``) holds files
that are not UTF-8, TOML that parses slowly or too deeply, YAML alias bombs and Python tags, and
well-formed files whose names, ranges or choices no trial could train. Each runs through
``merc-bench tune --dataset synthetic --trials 1 --epochs 1 --space FILE --no-track --out DIR`` in
a child process under a 3 GiB address-space cap (:mod:`fuzz_harness`): every refusal must be one
clean ``error:`` paragraph naming the case's own culprit, before the study's folder exists — so
no trial ran — and the YAML payload's canary must never appear. The valid controls train trial 0.
Files that cannot be committed — a sparse 2 MiB file, a pipe, ``/dev/zero``, a folder — are made
here.

Hypothesis adds arbitrary bytes (read as TOML and YAML: a table or a :class:`UserError`, nothing
else) and random spaces built from the real section, setting and option names with hostile
values: :func:`build_space` accepts them or raises a :class:`UserError`, and every trial an
accepted space samples is a configuration that the run configuration and the components' configs
accept — the promise behind checking the file up front.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import typing
from pathlib import Path

import optuna
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fuzz_harness import MAX_MESSAGE, Case, check_refused, run_cases
from merc_bench.config import ModelConfig, RunConfig, TrainingConfig
from merc_bench.errors import UserError
from merc_bench.model import build_context
from merc_bench.plugins import get_registry
from merc_bench.tuning.space import SLOTS, RecipeTrial, build_space, recipe_in_space, sample_config
from merc_bench.tuning.space_file import MAX_SPACE_BYTES, read_space_file

FUZZ = Path(__file__).resolve().parent / "fuzz"
CORPUS_DIR = FUZZ / "spaces"
CORPUS = json.loads((CORPUS_DIR / "cases.json").read_text())


def test_committed_corpus_is_what_the_generator_writes(tmp_path):
    subprocess.run([sys.executable, str(FUZZ / "make_spaces.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in CORPUS_DIR.iterdir())
    for name in written:
        assert (tmp_path / name).read_bytes() == (CORPUS_DIR / name).read_bytes(), name
    sizes = [p.stat().st_size for p in CORPUS_DIR.iterdir()]
    assert len(CORPUS["cases"]) >= 50 and max(sizes) < 200_000 and sum(sizes) < 1_000_000


def _argv(space: Path | str, out: Path) -> list[str]:
    return ["tune", "--dataset", "synthetic", "--trials", "1", "--epochs", "1", "--space", str(space), "--no-track",
            "--out", str(out)]


def test_every_hostile_space_is_refused_before_a_study_exists(tmp_path):
    canary = tmp_path / "canary"
    cases, fragments = [], {}
    for entry in CORPUS["cases"]:
        out = tmp_path / "studies" / entry["name"]
        refuse = entry["expect"] == "refuse"
        cases.append(Case(entry["name"], _argv(CORPUS_DIR / entry["name"], out), 2 if refuse else 0,
                          [str(out), str(canary)] if refuse else [str(canary)]))
        fragments[entry["name"]] = entry["fragment"]
    # What a corpus cannot hold: a file over the size limit (sparse: no disk used), a pipe that would
    # block a reader, a device that never ends, a folder, a missing file.
    sparse = tmp_path / "sparse.toml"
    with open(sparse, "wb") as stream:
        stream.truncate(2 * MAX_SPACE_BYTES)
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    for name, path, fragment in (("sparse-2MiB", sparse, "at most 1048576 bytes"),
                                 ("fifo", fifo, "not a regular file"),
                                 ("dev-zero", "/dev/zero", "not a regular file"),
                                 ("folder", tmp_path, "is a folder"),
                                 ("missing", tmp_path / "missing.toml", "cannot read")):
        out = tmp_path / "studies" / name
        cases.append(Case(name, _argv(path, out), 2, [str(out)]))
        fragments[name] = fragment
    outcomes = run_cases(cases, env={CORPUS["canary_variable"]: str(canary)})
    problems = [problem for case in cases for problem in check_refused(case, outcomes[case.name])]
    for case in cases:
        text = " ".join(outcomes[case.name].output.split())
        if case.expect_exit == 2 and fragments[case.name] not in text:
            problems.append(f"{case.name}: the refusal does not mention {fragments[case.name]!r}: {text[-400:]!r}")
        if case.expect_exit == 0:
            out = tmp_path / "studies" / case.name
            if "trial   0 COMPLETE" not in outcomes[case.name].output or not (out / "trials.csv").is_file():
                problems.append(f"{case.name}: the valid control did not train trial 0: {text[-400:]!r}")
    assert not problems, "\n".join(problems)
    slowest = max(outcomes.values(), key=lambda o: o.seconds)
    assert slowest.seconds < 30, f"{slowest.name} took {slowest.seconds} s"


# -- hypothesis: arbitrary bytes and random spaces, in process ---------------------------------------------

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400) | st.text(max_size=300).map(str.encode), suffix=st.sampled_from([".toml", ".yaml"]))
def test_any_bytes_read_as_tables_or_one_clear_error(tmp_path, data, suffix):
    path = tmp_path / f"space{suffix}"
    path.write_bytes(data)
    try:
        values = read_space_file(path)
    except UserError as error:
        message = str(error)
        assert message.startswith("--space ") and len(message) < MAX_MESSAGE and "\n\n" not in message
        return
    assert isinstance(values, dict) and all(isinstance(key, str) for key in values)


@pytest.fixture(scope="module")
def tiny():
    from merc_bench.pipeline import load_corpus

    registry = get_registry()
    corpus = load_corpus(registry, {"name": "synthetic", "config": {"train_dialogues": 4, "dev_dialogues": 2,
                                                                     "test_dialogues": 2}}, None)
    base = RunConfig.model_validate(registry.get("recipe", "bigru-concat").obj.resolve("meld")
                                    | {"dataset": {"name": "synthetic"}}).model_dump(mode="json")
    return registry, corpus, base, build_context(RunConfig.model_validate(base), corpus.info)


def _settings() -> dict[str, dict[str, st.SearchStrategy]]:
    """Where → setting → a strategy of values its config accepts (most of the time)."""
    registry = get_registry()
    configs = {"training": TrainingConfig, "model": ModelConfig,
               "mixer.bigru": registry.get("mixer", "bigru").config, "fuser.concat": registry.get("fuser", "concat").config,
               "mixer.transformer": registry.get("mixer", "transformer").config}
    out: dict[str, dict[str, st.SearchStrategy]] = {}
    for where, config in configs.items():
        out[where] = {}
        for option, field in config.model_fields.items():
            if option == "selection_metric":
                continue
            kind = field.annotation
            out[where][option] = (st.integers(1, 8) if kind is int
                                  else st.sampled_from([0.0, 0.05, 0.1, 0.3, 1e-5, 1e-3]) if kind is float
                                  else st.booleans() if kind is bool
                                  else st.sampled_from(list(typing.get_args(kind)) or ["none"])
                                  if typing.get_origin(kind) is typing.Literal else st.just("none"))
    return out


SETTINGS = _settings()
HOSTILE = st.one_of(st.integers(-3, 70000), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
                    st.sampled_from([0.999999, 1.0, 2**53 + 1, -1e-300, "", "x" * 200, "1e-3", "fused", "gated"]))


@st.composite
def values_for(draw, good: st.SearchStrategy):
    """A fixed value, a list of choices or a range, of mostly good and sometimes hostile values."""
    value = st.one_of(good, good, good, HOSTILE)
    form = draw(st.sampled_from(["fixed", "choices", "range", "range"]))
    if form == "fixed":
        return draw(value)
    if form == "choices":
        return draw(st.lists(value, min_size=0 if draw(st.integers(0, 9)) == 9 else 1, max_size=3))
    low, high = draw(value), draw(value)
    if draw(st.integers(0, 4)) < 4 and isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
        low, high = high, low  # mostly ordered; inverted ones stay too
    out = {"low": low, "high": high}
    if draw(st.integers(0, 4)) == 4:
        out["log"] = draw(st.one_of(st.booleans(), st.booleans(), st.just("yes")))
    if draw(st.integers(0, 4)) == 4:
        out["step"] = draw(value)
    if draw(st.integers(0, 19)) == 19:
        out["mid"] = 1
    return out


@st.composite
def spaces(draw) -> dict:
    space: dict = {}
    for _ in range(draw(st.integers(1, 2))):
        where = draw(st.sampled_from([*SETTINGS, "training", "model", "mixer.bigru", "optimizer"]))
        known = SETTINGS.get(where, {"lr": GOOD_LR})
        option = draw(st.sampled_from(sorted(known))) if draw(st.integers(0, 19)) < 19 else "unknown_option"
        section, _, component = where.partition(".")
        table = space.setdefault(section, {})
        if component:
            table = table.setdefault(component, {})
        table[option] = draw(values_for(known.get(option, GOOD_LR)))
    if draw(st.integers(0, 2)) == 2:
        space["slots"] = {"mixer": draw(st.lists(st.sampled_from(["bigru", "transformer", "transformer", "bigur"]),
                                                  min_size=0 if draw(st.integers(0, 9)) == 9 else 1, max_size=3))}
    return space


GOOD_LR = st.sampled_from([1e-5, 1e-3])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(values=spaces(), seed=st.integers(0, 2**16))
def test_a_space_is_refused_up_front_or_every_trial_it_samples_is_a_valid_configuration(tiny, values, seed):
    registry, corpus, base, context = tiny
    try:
        space = build_space(registry, base, values, fixed_slots=True, where="fuzz.toml", context=context,
                            corpus=corpus)
    except UserError as error:
        message = str(error)
        assert message.startswith("--space 'fuzz.toml'") and len(message) < MAX_MESSAGE and "\n\n" not in message
        event("refused")
        return
    event("accepted")
    for spec in space.params.values():
        numbers = [spec[k] for k in ("low", "high", "step") if k in spec]
        assert all(math.isfinite(n) for n in numbers) and ("low" not in spec or spec["low"] <= spec["high"])
        assert "choices" not in spec or spec["choices"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    params, outside = recipe_in_space(space, base, registry)
    study.enqueue_trial(params, user_attrs={"origin": "recipe settings"})
    for number in range(3):
        trial = study.ask()
        view = RecipeTrial(trial, params) if number == 0 else trial
        sampled = sample_config(view, space, base, registry)
        config = RunConfig.model_validate(sampled | {"recipe": f"fuzz#{number}"})
        for slot in SLOTS:
            choice = getattr(config, slot)
            registry.get(slot, choice.name).make_config(choice.config, where=slot)
        if number == 0:  # trial 0 records only values the space holds: Optuna accepted every one of them
            assert set(trial.params) <= set(params) and all(trial.params[k] == params[k] for k in trial.params)
        study.tell(trial, 0.5)
    assert isinstance(outside, list)
