"""The restricted unpickler: plain data and numpy arrays load; anything that could run code is refused."""

import collections
import fractions
import os
import pickle
import struct

import numpy as np
import pytest

from merc_bench.errors import UserError
from merc_bench.safe_pickle import UnsafePickleError, load_pickle
from layout_fixtures import pickle_bytes


class Malicious:
    """Unpickling this would run a shell command (the classic pickle attack)."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


class Opaque:
    """An ordinary class: harmless here, but not plain data, so a feature file may not hold it."""

    def __init__(self):
        self.value = 1


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_malicious_pickle_is_refused_before_it_runs(tmp_path, protocol):
    target = tmp_path / "SOMEFILE"
    path = write(tmp_path, "evil.pkl", pickle.dumps({"features": [Malicious(target)]}, protocol=protocol))
    with pytest.raises(UnsafePickleError) as caught:
        load_pickle(path)
    message = str(caught.value)
    assert "posix.system" in message or "os.system" in message or "nt.system" in message
    assert str(path) in message and "nothing from the file was executed" in message
    assert not target.exists()
    # The refusal is a UserError, so the CLI prints it as one paragraph and exits 2.
    assert isinstance(caught.value, UserError)


@pytest.mark.parametrize("value, name", [
    (Opaque(), "test_safe_pickle.Opaque"),
    (fractions.Fraction(1, 3), "fractions.Fraction"),
    (collections.Counter("aab"), "collections.Counter"),
    (eval, "builtins.eval"),
    (getattr, "builtins.getattr"),
])
def test_unknown_globals_are_refused_by_name(tmp_path, value, name):
    path = write(tmp_path, "other.pkl", pickle.dumps([1, value], protocol=4))
    with pytest.raises(UnsafePickleError, match=name.replace(".", r"\.")):
        load_pickle(path)


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_plain_containers_and_numpy_round_trip(tmp_path, protocol):
    value = {
        "ids": ["Ses01F_impro01", "dia0"], "set": {1, 2}, "frozen": frozenset({"a"}), "tuple": (1.5, None, True),
        "bytes": b"\x00\xff", "complex": 1 + 2j, "big": 2**70,
        "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
        "default": collections.defaultdict(list, {"x": [1]}),
        "matrix": np.arange(12, dtype=np.float32).reshape(3, 4), "labels": np.array([0, 5, 3], dtype=np.int64),
        "fortran": np.asfortranarray(np.ones((2, 3))), "scalar": np.float32(2.5), "int_scalar": np.int64(7),
    }
    loaded = load_pickle(write(tmp_path, "ok.pkl", pickle.dumps(value, protocol=protocol)))
    assert loaded.keys() == value.keys()
    for key in ("ids", "set", "frozen", "tuple", "bytes", "complex", "big", "ordered", "default"):
        assert loaded[key] == value[key] and type(loaded[key]) is type(value[key])
    assert loaded["default"].default_factory is list
    for key in ("matrix", "labels", "fortran"):
        assert loaded[key].dtype == value[key].dtype and np.array_equal(loaded[key], value[key])
    assert loaded["scalar"] == np.float32(2.5) and loaded["scalar"].dtype == np.float32
    assert loaded["int_scalar"] == 7


def test_python2_byte_strings_are_read_as_latin1(tmp_path):
    # Protocol 2 as Python 2 wrote it: SHORT_BINSTRING 'caf\xe9' (not ASCII) and an int, in a list.
    raw = b"\x80\x02]q\x00(U\x04caf\xe9q\x01K\x01e."
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(raw)
    assert load_pickle(write(tmp_path, "py2.pkl", raw)) == ["caf\xe9", 1]


def test_python2_numpy_arrays_load(tmp_path):
    arrays = {"Ses01F_impro01": [np.linspace(-1, 1, 5, dtype=np.float32), np.full(5, 300.25, np.float32)],
              "labels": np.array([[1, 2], [3, 4]], dtype=np.int64)}
    raw = pickle_bytes(arrays, py2=True)  # byte strings everywhere, numpy under numpy.core.multiarray
    assert b"numpy.core.multiarray" in raw and b"numpy._core" not in raw
    loaded = load_pickle(write(tmp_path, "py2_arrays.pkl", raw))
    for row, expected in zip(loaded["Ses01F_impro01"], arrays["Ses01F_impro01"]):
        assert row.dtype == np.float32 and np.array_equal(row, expected)
    assert np.array_equal(loaded["labels"], arrays["labels"])


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("old, new", [(b"numpy._core.multiarray", b"numpy.core.multiarray"),
                                      (b"numpy.core.multiarray", b"numpy._core.multiarray")])
def test_numpy_module_path_of_either_major_version_loads(tmp_path, protocol, old, new):
    value = [np.arange(6, dtype=np.float32).reshape(2, 3), np.float64(1.25)]
    raw = pickle.dumps(value, protocol=protocol)
    # Normalise to the "old" spelling first, then rewrite to the "new" one (GLOBAL names are plain text).
    raw = raw.replace(b"numpy._core.multiarray", old).replace(b"numpy.core.multiarray", old).replace(old, new)
    assert new in raw
    loaded = load_pickle(write(tmp_path, "np.pkl", raw))
    assert np.array_equal(loaded[0], value[0]) and loaded[1] == 1.25


@pytest.mark.parametrize("module", [b"numpy._core.numeric", b"numpy.core.numeric"])
def test_protocol5_frombuffer_under_either_module_path(tmp_path, module):
    value = np.arange(10, dtype=np.int16)
    raw = pickle.dumps(value, protocol=5)
    current = b"numpy._core.numeric" if b"numpy._core.numeric" in raw else b"numpy.core.numeric"
    if module != current:
        # SHORT_BINUNICODE carries its length; the first FRAME carries the frame's length.
        raw = raw.replace(b"\x8c" + bytes([len(current)]) + current, b"\x8c" + bytes([len(module)]) + module)
        assert raw[2:3] == b"\x95"
        frame = struct.unpack("<Q", raw[3:11])[0] + len(module) - len(current)
        raw = raw[:3] + struct.pack("<Q", frame) + raw[11:]
    assert module in raw
    assert np.array_equal(load_pickle(write(tmp_path, "p5.pkl", raw)), value)


def test_codecs_encode_only_for_latin1(tmp_path):
    # Python 3 writes bytes at protocol 2 as _codecs.encode(text, 'latin1'); other codecs are refused.
    assert load_pickle(write(tmp_path, "b.pkl", pickle.dumps(b"\x00\xfe", protocol=2))) == b"\x00\xfe"
    raw = pickle.dumps(b"abc", protocol=2).replace(b"latin1", b"zlib__")
    with pytest.raises(UserError, match="not allowed"):
        load_pickle(write(tmp_path, "zlib.pkl", raw))


def test_truncated_empty_and_garbage_files(tmp_path):
    raw = pickle.dumps({"x": np.ones((50, 20), np.float32), "ids": list(range(100))}, protocol=4)
    for name, data, fragment in [("cut.pkl", raw[: len(raw) // 2], "truncated"), ("empty.pkl", b"", "is empty"),
                                 ("text.pkl", b"videoIDs,videoLabels\n1,2\n", "not a")]:
        path = write(tmp_path, name, data)
        with pytest.raises(UserError) as caught:
            load_pickle(path)
        assert str(path) in str(caught.value) and fragment in str(caught.value)
    with pytest.raises(UserError, match="cannot read"):
        load_pickle(tmp_path / "missing.pkl")
