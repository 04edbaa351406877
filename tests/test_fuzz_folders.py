"""Fuzz category ``folders``: crafted converted folders through the real command line.

The committed corpus (``tests/fuzz/folders/``, written by ``tests/fuzz/make_folders.py``) holds
malformed manifests, path escapes, symlinks out, hash mismatches, zip bombs, lying ``.npy`` headers,
pickled members and arrays that disagree with the manifest. Every folder goes through
``merc-bench data inspect`` (which verifies the folder as loading it would) in a child process
under a 3 GiB address-space cap; the cases marked ``run`` also go through ``merc-bench run``, which
must refuse them before training and leave no output folder. The valid controls must load, and the
smallest one must train one epoch. A pickle payload in the corpus would create a canary file; it
must never exist.

Hypothesis adds random JSON values in random manifest fields and random bytes in split files,
read in process: the only failure allowed is a :class:`~merc_bench.errors.UserError`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_harness import Case, check_refused, run_cases
from merc_bench.errors import UserError
from merc_bench.feature_store import read_corpus, sha256_file

FUZZ = Path(__file__).resolve().parent / "fuzz"
CORPUS = FUZZ / "folders"
sys.path.insert(0, str(FUZZ))
import craft  # noqa: E402 - beside the generators

INDEX = json.loads((CORPUS / "INDEX.json").read_text())


def test_committed_corpus_is_what_the_generator_writes(tmp_path):
    fresh = tmp_path / "folders"
    subprocess.run([sys.executable, str(FUZZ / "make_folders.py"), "--out", str(fresh)], check=True,
                   capture_output=True)
    assert craft.snapshot(fresh) == craft.snapshot(CORPUS)
    assert len(INDEX) >= 60 and sum(entry["expect"] == "ok" for entry in INDEX) <= 5


def test_every_crafted_folder_is_refused_cleanly_and_the_controls_load(tmp_path):
    canary = tmp_path / "canary"
    cases = []
    for entry in INDEX:
        folder = CORPUS / entry["name"]
        expect = 0 if entry["expect"] == "ok" else 2
        cases.append(Case(f"inspect {entry['name']}", ["data", "inspect", str(folder)], expect, [str(canary)]))
        if entry["run"]:
            out = tmp_path / f"run-{entry['name']}"
            cases.append(Case(f"run {entry['name']}", [
                "run", "bigru-concat", "--dataset", "meld", "--data-dir", str(folder), "--epochs", "1", "--no-track",
                "--out", str(out), "--set", "model.hidden_size=8"], expect, [str(canary)] + ([] if expect == 0 else
                                                                                              [str(out)])))
    # The generic policy reaches converted folders: the NaN folder trains once NaN is replaced by 0.
    repaired = tmp_path / "run-features-nan-zero"
    cases.append(Case("run features-nan with dataset.nonfinite=zero", [
        "run", "bigru-concat", "--dataset", "meld", "--data-dir", str(CORPUS / "features-nan"), "--epochs", "1",
        "--no-track", "--out", str(repaired), "--set", "model.hidden_size=8", "--set", "dataset.nonfinite=zero"], 0))
    outcomes = run_cases(cases, env={craft.CANARY_VARIABLE: str(canary)})
    problems = [problem for case in cases for problem in check_refused(case, outcomes[case.name])]
    assert not problems, "\n".join(problems)
    # The controls' output is sane: the run trained on the folder's 4 train dialogues and wrote its results.
    for out in (tmp_path / "run-valid", repaired):
        result = json.loads((out / "results.json").read_text())
        assert result["dataset"] == "meld" and result["classes"] == craft.MELD_CLASSES
        assert 0.0 <= result["test"]["weighted_f1"]["mean"] <= 1.0
    assert "train 4 dialogues / 12 utterances" in " ".join(outcomes["run valid"].output.split())
    assert "replaced non-finite feature values with 0" in " ".join(outcomes[cases[-1].name].output.split())
    # Every refusal is specific: the message names the file or folder it is about.
    for case in cases:
        if case.expect_exit == 2:
            name = case.name.split(" ", 1)[1]
            assert name in "".join(outcomes[case.name].output.split()), (case.name, outcomes[case.name].output)


@pytest.fixture(scope="module")
def valid_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("valid") / "valid"
    shutil.copytree(CORPUS / "valid", folder)
    return folder


def _values():
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                        st.text(max_size=30))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                        max_leaves=12)


def _paths(document, prefix=()):
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _paths(value, prefix + (index,))


MANIFEST = json.loads((CORPUS / "valid" / "manifest.json").read_text())
PATHS = [path for path in _paths(MANIFEST) if path]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), value=_values())
def test_any_value_in_any_manifest_field_is_accepted_or_a_user_error(valid_folder, path, value):
    document = json.loads(json.dumps(MANIFEST))
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    (valid_folder / "manifest.json").write_text(json.dumps(document))
    try:
        corpus = read_corpus(valid_folder)
    except UserError as error:
        assert len(str(error)) < 1500 and "\n\n" not in str(error)
        return
    # Accepted: then it is a corpus the checks vouch for (labels in range, splits non-empty).
    assert all(corpus.split(split) for split in ("train", "dev", "test"))
    assert all(d.labels.min() >= 0 and d.labels.max() < corpus.info.num_classes for d in corpus.train)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(split=st.sampled_from(["train", "dev", "test"]), data=st.data())
def test_any_byte_change_in_a_split_file_is_accepted_or_a_user_error(valid_folder, split, data):
    original = (CORPUS / "valid" / f"{split}.npz").read_bytes()
    position = data.draw(st.integers(0, len(original) - 1))
    replacement = data.draw(st.binary(min_size=1, max_size=16))
    changed = original[:position] + replacement + original[position + len(replacement):]
    (valid_folder / f"{split}.npz").write_bytes(changed)
    document = json.loads(json.dumps(MANIFEST))
    document["splits"][split]["sha256"] = sha256_file(valid_folder / f"{split}.npz")  # the attacker rehashes
    (valid_folder / "manifest.json").write_text(json.dumps(document))
    try:
        corpus = read_corpus(valid_folder)
    except UserError:
        return
    finally:
        (valid_folder / f"{split}.npz").write_bytes(original)
    for dialogue in corpus.split(split):
        assert np.isfinite(dialogue.features["text"]).all() and dialogue.labels.max() < 7
