"""Fuzz category ``npy``: crafted ``.npy`` feature files through ``conversation-csv`` and the command line.

The committed corpus (``tests/fuzz/npy/``, written by ``tests/fuzz/make_npy.py``) replaces the
train audio features of a valid conversation-csv dataset with lying headers, huge shapes, pickled
and non-numeric dtypes, truncated and trailing data, wrong dimensions and non-finite values. Every
case goes through ``merc-bench validate`` in a child process under a 3 GiB address-space cap (a
header claiming terabytes must be refused before anything is allocated); the ``run`` cases also
through ``merc-bench run`` (no output folder left). A pickle payload would create a canary file; it
must never exist. The valid controls (float64, float16, int32, Fortran and big-endian order,
format 2.0) load.

Hypothesis writes random headers (dtype, shape, order) over random data lengths and reads them
with :func:`merc_bench.safe_arrays.read_npy_file`: an array of exactly the declared dtype and shape,
or a :class:`~merc_bench.errors.UserError`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz_harness import Case, check_refused, run_cases
from merc_bench.errors import UserError
from merc_bench.safe_arrays import read_npy_file

FUZZ = Path(__file__).resolve().parent / "fuzz"
CORPUS = FUZZ / "npy"
sys.path.insert(0, str(FUZZ))
import craft  # noqa: E402 - beside the generators

INDEX = json.loads((CORPUS / "INDEX.json").read_text())


def test_committed_corpus_is_what_the_generator_writes(tmp_path):
    subprocess.run([sys.executable, str(FUZZ / "make_npy.py"), "--out", str(tmp_path / "npy")], check=True,
                   capture_output=True)
    assert craft.snapshot(tmp_path / "npy") == craft.snapshot(CORPUS)
    assert len(INDEX) >= 30


def test_every_crafted_npy_is_refused_cleanly_and_the_controls_load(tmp_path):
    canary = tmp_path / "canary"
    cases = []
    for entry in INDEX:
        folder = CORPUS / entry["name"]
        expect = 0 if entry["expect"] == "ok" else 2
        cases.append(Case(f"validate {entry['name']}", craft.csv_argv("validate", folder, entry["sets"]), expect,
                          [str(canary)]))
        if entry["run"]:
            out = tmp_path / f"run-{entry['name']}"
            cases.append(Case(f"run {entry['name']}", craft.csv_argv("run", folder, entry["sets"], out), expect,
                              [str(canary)] + ([] if expect == 0 else [str(out)])))
    outcomes = run_cases(cases, env={craft.CANARY_VARIABLE: str(canary)})
    problems = [problem for case in cases for problem in check_refused(case, outcomes[case.name])]
    assert not problems, "\n".join(problems)
    result = json.loads((tmp_path / "run-valid-float64" / "results.json").read_text())
    assert result["classes"] == craft.EMOTIONS and 0.0 <= result["test"]["weighted_f1"]["mean"] <= 1.0
    for case in cases:  # each refusal names the crafted file or, for values, the dialogue and utterance
        if case.expect_exit == 2:
            text = "".join(outcomes[case.name].output.split())
            assert "train_audio.npy" in text or "dialogue'train-" in text, (case.name, text[-300:])


DTYPES = ["<f4", ">f8", "<f2", "<i4", "|u1", "|b1", "<c8", "|O", "<U3", "|S2", "|V4", "<M8[s]", "<f16"]


@settings(max_examples=120, deadline=None)
@given(descr=st.sampled_from(DTYPES), fortran=st.booleans(), extra=st.one_of(st.just(0), st.integers(-64, 64)),
       shape=st.one_of(st.tuples(st.integers(0, 20), st.integers(0, 8)),
                       st.lists(st.integers(-3, 2**40), max_size=3).map(tuple)))
def test_any_header_reads_exactly_or_is_a_user_error(tmp_path_factory, descr, shape, fortran, extra):
    path = tmp_path_factory.mktemp("npy") / "x.npy"
    dtype_size = {"|O": 8, "<U3": 12, "|S2": 2, "|V4": 4, "<M8[s]": 8, "<f16": 16}.get(descr) or int(descr[-1])
    size = int(np.prod(shape)) * dtype_size if all(n >= 0 for n in shape) and np.prod(shape) < 1e6 else 64
    path.write_bytes(craft.npy_header(descr, shape, fortran=fortran) + bytes(range(256)) * ((max(size + extra, 0)
                                                                                             // 256) + 1))
    with open(path, "r+b") as stream:  # cut to the declared size plus `extra` bytes
        stream.truncate(len(craft.npy_header(descr, shape, fortran=fortran)) + max(size + extra, 0))
    try:
        array = read_npy_file(path, spec=("fiu", None, (None, None)))
    except UserError as error:
        assert len(str(error)) < 1500
        return
    assert array.shape == shape and len(shape) == 2 and max(size + extra, 0) == size  # exactly the declared bytes
    assert array.dtype.kind in "fiu" and array.dtype.isnative and array.dtype == np.dtype(descr).newbyteorder("=")
    # The same values numpy's own reader finds in an accepted file.
    assert np.array_equal(array, np.load(path, allow_pickle=False), equal_nan=array.dtype.kind == "f")
