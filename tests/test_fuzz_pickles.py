"""Fuzz category ``pickles``: crafted feature pickles through the real command line, and hypothesis.

The committed corpus (``tests/fuzz/pickles/``, written by ``tests/fuzz/make_pickles.py``) goes
through ``merc-bench data inspect`` (and a subset through ``data convert`` and ``run``) in a child
process under a 3 GiB address-space cap (:mod:`fuzz_harness`): every hostile file must be refused in
one paragraph with exit 2 — no signal, no traceback, no MemoryError, no hang, no canary file written
by a code-execution payload, no output folder left — and its message must be the refusal the corpus
index names. The genuine controls must load. Hypothesis adds random byte strings and random opcode
programs built from the allow-listed pieces, in process and (a derandomized sample) through the CLI.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_harness import MAX_MESSAGE, Case, check_refused, run_cases
from merc_bench.errors import UserError
from merc_bench.safe_pickle import load_pickle

CORPUS = Path(__file__).resolve().parent / "fuzz" / "pickles"
GENERATOR = CORPUS.parent / "make_pickles.py"
# Phrases of the loader's own refusals: a "no-layout" file must get past the loader.
LOADER_PHRASES = ("refusing to load", "is damaged or not a feature pickle", "is truncated or not a pickle")


def squash(text: str) -> str:
    """Text without whitespace: the console wraps long messages, even inside paths."""
    return "".join(text.split())


def generator():
    spec = importlib.util.spec_from_file_location("make_pickles", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def index() -> dict[str, dict]:
    return json.loads((CORPUS / "index.json").read_text())


def argv(command: str, path: Path, out: Path) -> list[str]:
    if command == "inspect":
        return ["data", "inspect", str(path)]
    if command == "convert":
        return ["data", "convert", str(path), "--to", str(out)]
    return ["run", "bigru-concat", "--dataset", "meld", "--set", f"dataset.path={path}", "--epochs", "1",
            "--no-track", "--out", str(out), "--set", "model.hidden_size=16"]


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    """Every corpus entry through each of its commands, in one harness batch."""
    work = tmp_path_factory.mktemp("fuzz-pickles")
    canary = work / "canary"
    canary.mkdir()
    cases = []
    for name, entry in sorted(index().items()):
        for command in entry["commands"]:
            out = work / "out" / f"{name}-{command}"
            guarded = [str(canary / name)] if entry["canary"] else []
            if entry["expect"] != "load" and command != "inspect":
                guarded.append(str(out))  # a refused file leaves no output folder behind
            cases.append(Case(f"{name}:{command}", argv(command, CORPUS / f"{name}.pkl", out),
                              expect_exit=0 if entry["expect"] == "load" else 2, must_not_exist=guarded))
    outcomes = run_cases(cases, env={"MERC_FUZZ_CANARY": str(canary)})
    return cases, outcomes, canary, work


def test_committed_corpus_is_what_the_generator_writes():
    expected = generator().generate()
    actual = {path.name: path.read_bytes() for path in CORPUS.iterdir()}
    assert sorted(actual) == sorted(expected), "run `python tests/fuzz/make_pickles.py` to rewrite the corpus"
    assert [name for name in expected if actual[name] != expected[name]] == []
    entries = index()
    assert len(entries) >= 120 and len(actual) == len(entries) + 1
    assert sum(map(len, actual.values())) < 1 << 20 and max(map(len, actual.values())) <= 200 * 1024
    prefixes = collections.Counter(name.split("-")[0] for name in entries)
    assert set(prefixes) == {"exec", "dtype", "array", "length", "alloc", "memo", "nest", "keys", "call", "trunc",
                             "valid"}
    assert sum(e["canary"] for e in entries.values()) >= 30
    assert all(e["expect"] == "load" for n, e in entries.items() if n.startswith("valid"))


@pytest.mark.slow  # the whole corpus in one batch: ~12 s here, more on a loaded machine
def test_every_hostile_pickle_is_refused_cleanly(corpus_run):
    cases, outcomes, canary, _ = corpus_run
    entries = index()
    problems = []
    for case in cases:
        name = case.name.split(":")[0]
        if entries[name]["expect"] == "load":
            continue
        outcome = outcomes[case.name]
        problems += check_refused(case, outcome)
        message = squash(outcome.output)
        if squash(f"{name}.pkl") not in message:
            problems.append(f"{case.name}: the message does not name the file: {outcome.output[-300:]!r}")
        fragment = entries[name]["fragment"]
        if fragment is not None and squash(fragment) not in message:
            problems.append(f"{case.name}: expected {fragment!r} in {outcome.output[-400:]!r}")
        if entries[name]["expect"] == "no-layout" and any(squash(p) in message for p in LOADER_PHRASES):
            problems.append(f"{case.name}: harmless data was refused by the loader: {outcome.output[-300:]!r}")
    assert problems == [], "\n".join(problems[:20])
    assert list(canary.iterdir()) == []


@pytest.mark.slow  # the whole corpus in one batch: ~12 s here, more on a loaded machine
def test_genuine_files_still_load(corpus_run):
    cases, outcomes, _, work = corpus_run
    loaded = [case for case in cases if case.expect_exit == 0]
    assert {case.name.split(":")[0] for case in loaded} == {"valid-meld-p2", "valid-meld-p5", "valid-meld-py2-numpy1"}
    for case in loaded:
        outcome = outcomes[case.name]
        assert check_refused(case, outcome) == [], outcome.output[-2000:]
        if case.name.endswith(":inspect"):
            assert "mmgcn-meld" in outcome.output and squash("text 8, audio 8, visual 8") in squash(outcome.output)
    results = json.loads((work / "out" / "valid-meld-p2-run" / "results.json").read_text())
    assert results["dataset"] == "meld"
    converted = json.loads((work / "out" / "valid-meld-p5-convert" / "manifest.json").read_text())
    assert converted  # the converted folder has its manifest


# -- hypothesis ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hypothesis")


def _assert_plain(value: object) -> None:
    """What a load may return: plain containers, scalars and numpy arrays of the allowed dtypes."""
    seen, todo = set(), [value]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (list, tuple, set, frozenset)):
            todo.extend(item)
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, np.ndarray):
            assert item.dtype.kind in "biufcUS" and item.dtype.fields is None and item.flags.writeable
        elif isinstance(item, np.dtype):
            assert item.kind in "biufcUS"
        else:
            assert isinstance(item, (str, bytes, bytearray, int, float, complex, type(None), np.generic)), type(item)


def _check(data: bytes, folder: Path) -> None:
    """``data`` loads as plain data or is refused in one bounded paragraph naming the file."""
    path = folder / "h.pkl"
    path.write_bytes(data)
    try:
        value = load_pickle(path, max_bytes=64 << 20)
    except UserError as error:
        message = str(error)
        assert str(path) in message and len(message) < MAX_MESSAGE and "\n\n" not in message
    else:
        _assert_plain(value)


def _op(code: bytes, *parts: bytes) -> bytes:
    return code + b"".join(parts)


def _text(value: str) -> bytes:
    data = value.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(data)]) + data


_GLOBALS = [("builtins", n) for n in ("list", "dict", "tuple", "set", "frozenset", "str", "bytes", "bytearray",
                                      "int", "float", "bool", "complex")] + [
    ("collections", "OrderedDict"), ("collections", "defaultdict"), ("_codecs", "encode"), ("numpy", "ndarray"),
    ("numpy", "dtype"), ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer")]
_TYPESTRS = ["f4", "f8", "f2", "i8", "u1", "b1", "c8", "U3", "S2", "O8", "V4", "M8", "f16", "x", ""]
def _dtype_bytes(typestr: str, order: str, elsize: int, flags: int) -> bytes:
    return (_text("numpy") + _text("dtype") + pickle.STACK_GLOBAL + _text(typestr) + pickle.NEWFALSE + pickle.NEWTRUE
            + pickle.TUPLE3 + pickle.REDUCE + pickle.MARK + pickle.BININT1 + b"\x03" + _text(order) + pickle.NONE * 3
            + pickle.BININT + struct.pack("<i", elsize) + pickle.BININT + struct.pack("<i", -1)
            + pickle.BININT1 + bytes([flags]) + pickle.TUPLE + pickle.BUILD)


def _dtypes() -> st.SearchStrategy[bytes]:
    """numpy.dtype(typestr) + BUILD(state), mostly honest, sometimes lying about order, size or flags."""
    return st.builds(_dtype_bytes, st.sampled_from(_TYPESTRS), st.sampled_from("<<<>|=x"),
                     st.sampled_from([-1, -1, -1, 0, 3, 8, 2**31 - 1]), st.sampled_from([0, 0, 8, 63]))


@st.composite
def _arrays(draw) -> bytes:
    """_reconstruct + BUILD with a shape and a buffer that usually agree."""
    typestr = draw(st.sampled_from(["f4", "f8", "i8", "u1", "b1", "f2", "c8", "U2", "S3", "O8", "V4"]))
    itemsize = {"U2": 8, "S3": 3, "c8": 8, "f8": 8, "i8": 8, "V4": 4, "O8": 8}.get(typestr, 2 if typestr == "f2" else
                                                                                     int(typestr[1:]))
    shape = draw(st.lists(st.integers(0, 4), max_size=3))
    count = int(np.prod(shape)) if shape else 1
    length = draw(st.sampled_from([count * itemsize] * 4 + [0, count * itemsize + 1, 7]))
    data = draw(st.binary(min_size=length, max_size=length))
    dtype = draw(st.one_of(st.just(_dtype_bytes(typestr, "<" if typestr not in ("u1", "b1", "S3") else "|", -1, 0)),
                           _dtypes()))
    return (_text("numpy._core.multiarray") + _text("_reconstruct") + pickle.STACK_GLOBAL + _text("numpy")
            + _text("ndarray") + pickle.STACK_GLOBAL + pickle.BININT1 + b"\0" + pickle.TUPLE1
            + pickle.SHORT_BINBYTES + b"\x01b" + pickle.TUPLE3 + pickle.REDUCE + pickle.MARK + pickle.BININT1 + b"\x01"
            + pickle.MARK + b"".join(pickle.BININT1 + bytes([d]) for d in shape) + pickle.TUPLE + dtype
            + (pickle.NEWTRUE if draw(st.booleans()) else pickle.NEWFALSE) + pickle.BINBYTES
            + struct.pack("<I", len(data)) + data + pickle.TUPLE + pickle.BUILD)


_lengths = st.sampled_from([0, 1, 7, 255, 2**31 - 1, 2**32 - 1, 2**63, 2**64 - 1])
_piece = st.one_of(
    st.sampled_from([pickle.NONE, pickle.NEWTRUE, pickle.EMPTY_LIST, pickle.EMPTY_DICT, pickle.EMPTY_SET,
                     pickle.EMPTY_TUPLE, pickle.MARK, pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3,
                     pickle.LIST, pickle.DICT, pickle.APPEND, pickle.APPENDS, pickle.SETITEM, pickle.SETITEMS,
                     pickle.ADDITEMS, pickle.FROZENSET, pickle.REDUCE, pickle.BUILD, pickle.NEWOBJ, pickle.DUP,
                     pickle.POP, pickle.POP_MARK, pickle.MEMOIZE, pickle.STACK_GLOBAL]),
    st.integers(-2**40, 2**70).map(lambda n: pickle.LONG1 + bytes([len(pickle.encode_long(n))])
                                   + pickle.encode_long(n)),
    st.integers(0, 255).map(lambda n: pickle.BININT1 + bytes([n])),
    st.floats(allow_nan=True).map(lambda x: pickle.BINFLOAT + struct.pack(">d", x)),
    st.binary(max_size=24).map(lambda b: pickle.SHORT_BINBYTES + bytes([len(b)]) + b),
    st.sampled_from(_TYPESTRS + ["<", ">", "|", "C", "F", "latin1"]).map(_text),
    st.sampled_from(_GLOBALS).map(lambda g: _text(g[0]) + _text(g[1]) + pickle.STACK_GLOBAL),
    st.integers(0, 7).map(lambda i: pickle.BINGET + bytes([i])),
    st.integers(0, 7).map(lambda i: pickle.BINPUT + bytes([i])),
    st.tuples(st.sampled_from([pickle.BINBYTES8, pickle.BYTEARRAY8, pickle.BINUNICODE8, pickle.FRAME]), _lengths)
    .map(lambda t: t[0] + struct.pack("<Q", t[1])),
    st.tuples(st.sampled_from([pickle.BINBYTES, pickle.BINUNICODE]), _lengths.filter(lambda n: n < 2**32))
    .map(lambda t: t[0] + struct.pack("<I", t[1])),
    _dtypes(),
    _arrays(),
)
programs = st.one_of(
    st.lists(_piece, max_size=40),  # anything from the pieces, mostly damaged
    st.lists(st.one_of(_arrays(), _dtypes()), min_size=1, max_size=4)  # a list of arrays and dtypes
    .map(lambda parts: [pickle.EMPTY_LIST + pickle.MARK, *parts, pickle.APPENDS]),
).map(lambda parts: pickle.PROTO + b"\x04" + b"".join(parts) + pickle.STOP)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b"\x80\x04" + b)))
def test_random_bytes_are_loaded_or_refused_in_one_paragraph(folder, data):
    _check(data, folder)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs)
def test_random_opcode_programs_from_allowed_pieces(folder, data):
    _check(data, folder)


def test_a_derandomized_sample_of_programs_through_the_cli(tmp_path):
    """Forty programs from the strategy, through `data inspect` under the harness's memory cap."""
    sample: list[bytes] = []

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(programs)
    def collect(data):
        sample.append(data)

    collect()
    cases = []
    for number, data in enumerate(sample):
        path = tmp_path / f"program-{number}.pkl"
        path.write_bytes(data)
        cases.append(Case(f"program-{number}", ["data", "inspect", str(path)]))
    outcomes = run_cases(cases)
    problems = [p for case in cases for p in check_refused(case, outcomes[case.name])]
    assert problems == [], "\n".join(problems[:10])
