"""Fuzz category ``csv``: crafted ``conversation-csv`` datasets through the real command line.

The committed corpus (``tests/fuzz/csv/``, written by ``tests/fuzz/make_csv.py``) holds wrong
encodings, broken quoting, missing and duplicated columns, ragged rows, empty files and values, bad
split columns and feature files that disagree with the rows. Every case goes through
``merc-bench validate`` (which loads and checks the dataset, then builds the model) in a child
process under a 3 GiB address-space cap; the cases marked ``run`` also through ``merc-bench run``,
which must refuse them before training and leave no output folder. The valid controls (BOM, cp1252,
CR line endings, quoted newlines, ids repeating across splits, one file with a split column) must
load; two of them train one epoch.

Hypothesis writes random text into random cells of a valid CSV, read in process: the dataset loads
or refuses it with a :class:`~merc_bench.errors.UserError`, nothing else.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_harness import Case, check_refused, run_cases
from merc_bench.errors import UserError
from merc_bench.plugins import get_registry
from merc_bench.pipeline import load_corpus

FUZZ = Path(__file__).resolve().parent / "fuzz"
CORPUS = FUZZ / "csv"
sys.path.insert(0, str(FUZZ))
import craft  # noqa: E402 - beside the generators

INDEX = json.loads((CORPUS / "INDEX.json").read_text())


def test_committed_corpus_is_what_the_generator_writes(tmp_path):
    subprocess.run([sys.executable, str(FUZZ / "make_csv.py"), "--out", str(tmp_path / "csv")], check=True,
                   capture_output=True)
    assert craft.snapshot(tmp_path / "csv") == craft.snapshot(CORPUS)
    assert len(INDEX) >= 40


def test_every_crafted_csv_is_refused_cleanly_and_the_controls_load(tmp_path):
    cases = []
    for entry in INDEX:
        folder = CORPUS / entry["name"]
        expect = 0 if entry["expect"] == "ok" else 2
        cases.append(Case(f"validate {entry['name']}", craft.csv_argv("validate", folder, entry["sets"]), expect))
        if entry["run"]:
            out = tmp_path / f"run-{entry['name']}"
            cases.append(Case(f"run {entry['name']}", craft.csv_argv("run", folder, entry["sets"], out), expect,
                              [] if expect == 0 else [str(out)]))
    repaired = tmp_path / "run-features-nan-zero"
    cases.append(Case("run features-nan with dataset.nonfinite=zero", craft.csv_argv(
        "run", CORPUS / "features-nan", craft.CSV_SETS + ["dataset.nonfinite=zero"], repaired), 0))
    outcomes = run_cases(cases)
    problems = [problem for case in cases for problem in check_refused(case, outcomes[case.name])]
    assert not problems, "\n".join(problems)
    for out in (tmp_path / "run-valid", tmp_path / "run-valid-ids-repeat-across-splits", repaired):
        result = json.loads((out / "results.json").read_text())
        assert result["classes"] == craft.EMOTIONS and 0.0 <= result["test"]["weighted_f1"]["mean"] <= 1.0
    assert "train 4 dialogues / 12 utterances" in " ".join(outcomes["run valid"].output.split())
    # The refusals name the file or the dataset they are about.
    for case in cases:
        if case.expect_exit == 2:
            text = "".join(outcomes[case.name].output.split())
            assert case.name.split(" ", 1)[1] in text or "conversation-csv" in text, case.name


def test_repeated_ids_across_splits_are_prefixed_and_reported(tmp_path):
    corpus = load_corpus(get_registry(), {"name": "conversation-csv", "config": _config(
        CORPUS / "valid-ids-repeat-across-splits")}, None)
    assert [d.id for d in corpus.dev] == ["dev/train-0", "dev/train-1"]
    assert corpus.train[0].id == "train/train-0" and "prefixed" in corpus.provenance["dialogue_ids"]
    plain = load_corpus(get_registry(), {"name": "conversation-csv", "config": _config(CORPUS / "valid")}, None)
    assert plain.dev[0].id == "dev-1039" and "dialogue_ids" not in plain.provenance


def _config(folder: Path) -> dict:
    config: dict = {"text_encoder": None, "features": {"audio": {}}}
    for split in ("train", "dev", "test"):
        config[split] = str(folder / f"{split}.csv")
        config["features"]["audio"][split] = str(folder / f"{split}_audio.npy")
    return config


@pytest.fixture(scope="module")
def base_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("csv-base")
    craft.write_tree(folder, craft.csv_files())
    return folder


ROWS = craft.csv_rows("train")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(0, len(ROWS) - 1), column=st.integers(0, len(craft.CSV_COLUMNS) - 1),
       value=st.text(alphabet=st.characters(codec="utf-8"), max_size=40), raw=st.booleans())
def test_any_text_in_any_cell_loads_or_is_a_user_error(base_files, row, column, value, raw):
    rows = [list(r) for r in ROWS]
    rows[row][column] = value
    data = craft.csv_text(rows).encode()
    if raw:  # written without quoting: quotes, commas and newlines in the value break the row structure
        lines = data.split(b"\r\n")
        fields = lines[row + 1].decode().split(",")
        fields[min(column, len(fields) - 1)] = value
        lines[row + 1] = ",".join(fields).encode("utf-8", "surrogatepass")
        data = b"\r\n".join(lines)
    (base_files / "train.csv").write_bytes(data)
    try:
        corpus = load_corpus(get_registry(), {"name": "conversation-csv", "config": _config(base_files)}, None)
    except UserError as error:
        assert len(str(error)) < 1500
        return
    assert corpus.train and corpus.dev and corpus.test
    assert all(d.labels.max() < corpus.info.num_classes for d in corpus.train)
