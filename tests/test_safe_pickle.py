"""The restricted unpickler: plain data and numpy arrays load; anything that could run code is refused."""

import collections
import fractions
import os
import pickle
import struct
import sys

import numpy as np
import pytest

from merc_bench.errors import UserError
from merc_bench.safe_pickle import PickleLimitError, UnsafePickleError, default_max_bytes, load_pickle
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


# -- numpy arrays are rebuilt from checked parts ------------------------------------------------------
ALLOWED_ARRAYS = {
    "bool": np.array([True, False, True]), "int8": np.arange(-3, 3, dtype=np.int8),
    "int16": np.arange(4, dtype=np.int16), "int32": np.arange(4, dtype=np.int32), "int64": np.arange(4),
    "uint8": np.arange(4, dtype=np.uint8), "uint16": np.arange(4, dtype=np.uint16),
    "uint32": np.arange(4, dtype=np.uint32), "uint64": np.array([2**64 - 1], dtype=np.uint64),
    "float16": np.linspace(0, 1, 5, dtype=np.float16), "float64": np.linspace(0, 1, 5),
    "complex64": np.array([1 + 2j], np.complex64), "complex128": np.array([1 - 2j]),
    "big-endian": np.arange(6, dtype=">f8").reshape(2, 3), "big-endian-int": np.arange(3, dtype=">i4"),
    "utterance-ids": np.array(["dia0_utt0", "dia0_utt1", "é"]), "bytes-ids": np.array([b"a", b"bc"]),
    "big-endian-ids": np.array(["ab", "c"], dtype=">U2"), "zero-d": np.array(3.5), "empty": np.zeros((0, 5)),
    "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "strided": np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2],
}


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_allowed_dtypes_round_trip_as_writable_arrays(tmp_path, protocol):
    loaded = load_pickle(write(tmp_path, "arrays.pkl", pickle.dumps(ALLOWED_ARRAYS, protocol=protocol)))
    for name, expected in ALLOWED_ARRAYS.items():
        got = loaded[name]
        assert type(got) is np.ndarray and got.dtype == expected.dtype and got.shape == expected.shape, name
        assert np.array_equal(got, expected) and got.flags.writeable, name
    assert loaded["fortran"].flags.f_contiguous
    scalars = [np.bool_(True), np.float16(1.5), np.int8(-3), np.str_("dia0"), np.bytes_(b"x"), np.complex64(1j),
               np.dtype(">i2"), np.dtype("U7")]
    again = load_pickle(write(tmp_path, "scalars.pkl", pickle.dumps(scalars, protocol=protocol)))
    assert [type(v) for v in again] == [type(v) for v in scalars] and again == scalars


@pytest.mark.parametrize("value, named", [
    (np.array([1, None], dtype=object), "'O8', object"),
    (np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]), "structured"),
    (np.array(["2020-01-01"], dtype="M8[D]"), "datetime64"),
    (np.array([1], dtype="m8[s]"), "timedelta64"),
    (np.zeros(2, dtype=np.longdouble), "'f16'"),
    (np.zeros(2, dtype="V4"), "void"),
])
def test_other_dtypes_are_refused_by_name(tmp_path, value, named):
    path = write(tmp_path, "odd.pkl", pickle.dumps({"x": value}, protocol=4))
    with pytest.raises(UnsafePickleError) as caught:
        load_pickle(path)
    assert named in str(caught.value) and str(path) in str(caught.value)


def _bool_array(payload: bytes) -> bytes:
    """protocol-4 ``bool`` array whose buffer holds ``payload`` (numpy's own pickle, with the bytes swapped)."""
    raw = pickle.dumps(np.zeros(len(payload), dtype=bool), protocol=4)
    return raw.replace(bytes([len(payload)]) + b"\0" * len(payload), bytes([len(payload)]) + payload)


def test_bools_are_stored_as_0_or_1(tmp_path):
    loaded = load_pickle(write(tmp_path, "bools.pkl", _bool_array(b"\x00\x02\xff")))
    assert loaded.tolist() == [False, True, True] and loaded.view(np.uint8).tolist() == [0, 1, 1]


def test_code_points_beyond_unicode_are_refused(tmp_path):
    raw = pickle.dumps(np.array(["ab"]), protocol=4).replace(b"a\0\0\0b\0\0\0", b"a\0\0\0\x00\x00\x11\x00")
    with pytest.raises(UserError, match="character code above 0x10ffff"):
        load_pickle(write(tmp_path, "codes.pkl", raw))


# -- resource limits ---------------------------------------------------------------------------------
def test_a_claimed_4gb_is_refused_before_anything_is_allocated(tmp_path):
    import tracemalloc

    raw = b"\x80\x04\x8e" + struct.pack("<Q", 4_000_000_000) + b"."  # BINBYTES8 claiming 4 GB, 12 bytes
    path = write(tmp_path, "claim.pkl", raw)
    tracemalloc.start()
    try:
        with pytest.raises(UserError) as over_item:
            load_pickle(path)
        with pytest.raises(UserError) as past_end:
            load_pickle(path, max_item_bytes=1 << 40)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert "4,000,000,000-byte" in str(over_item.value) and "1,073,741,824 bytes for one item" in str(over_item.value)
    assert "only 1 bytes follow" in str(past_end.value) and str(path) in str(past_end.value)


def test_bytearray_of_a_count_is_refused(tmp_path):
    raw = b"\x80\x02c__builtin__\nbytearray\nJ\x00(k\xee\x85R."  # bytearray(4_000_000_000): 33 bytes
    assert len(raw) == 33
    with pytest.raises(UnsafePickleError, match="a number would allocate"):
        load_pickle(write(tmp_path, "count.pkl", raw))


def test_allocation_limit_counts_array_payloads(tmp_path, monkeypatch):
    path = write(tmp_path, "big.pkl", pickle.dumps([np.zeros(1 << 20)], protocol=4))  # 8 MiB of data
    assert load_pickle(path)[0].shape == (1 << 20,)
    with pytest.raises(PickleLimitError) as caught:
        load_pickle(path, max_bytes=4 << 20)
    message = str(caught.value)
    assert str(path) in message and "4,194,304 bytes" in message and "MERC_BENCH_PICKLE_MAX_BYTES" in message
    monkeypatch.setenv("MERC_BENCH_PICKLE_MAX_BYTES", "6M")
    assert default_max_bytes(100) == 6 << 20
    with pytest.raises(PickleLimitError, match="6,291,456 bytes"):
        load_pickle(path)
    monkeypatch.setenv("MERC_BENCH_PICKLE_MAX_BYTES", "lots")
    with pytest.raises(UserError, match="MERC_BENCH_PICKLE_MAX_BYTES 'lots' is not a memory size"):
        load_pickle(path)


def test_default_allocation_limit_follows_file_size_and_free_memory(monkeypatch):
    import psutil

    monkeypatch.delenv("MERC_BENCH_PICKLE_MAX_BYTES", raising=False)
    memory = collections.namedtuple("memory", "available")
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory(1 << 40))
    assert default_max_bytes(1000) == 256 << 20
    assert default_max_bytes(10 << 20) == 640 << 20
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory(200 << 20))
    assert default_max_bytes(1000) == 100 << 20


def test_memo_objects_and_depth_limits(tmp_path):
    names = write(tmp_path, "names.pkl", pickle.dumps([f"id{i}" for i in range(200)], protocol=4))
    assert len(load_pickle(names, max_memo=1000)) == 200
    with pytest.raises(PickleLimitError, match="more than 100 values in its memo"):
        load_pickle(names, max_memo=100)
    numbers = write(tmp_path, "numbers.pkl", pickle.dumps(list(range(5000)), protocol=4))
    with pytest.raises(PickleLimitError, match="more than 1,000 values"):
        load_pickle(numbers, max_objects=1000)
    nested: list = []
    for _ in range(9):
        nested = [nested]
    deep = write(tmp_path, "deep.pkl", pickle.dumps(nested, protocol=4))
    assert load_pickle(deep, max_depth=10) == nested
    with pytest.raises(PickleLimitError, match="more than 5 levels deep"):
        load_pickle(deep, max_depth=5)


def test_shared_containers_are_counted_each_time_and_cycles_refused(tmp_path):
    shared: list = [0]
    for _ in range(40):
        shared = [shared, shared]  # 2^40 items for a loop, a few hundred bytes of pickle
    with pytest.raises(PickleLimitError, match="shared containers are counted"):
        load_pickle(write(tmp_path, "bomb.pkl", pickle.dumps(shared, protocol=4)))
    small = [[1, 2]] * 3  # honest sharing stays well under the limit
    assert load_pickle(write(tmp_path, "shared.pkl", pickle.dumps(small, protocol=4))) == small
    cycle: list = [1]
    cycle.append(cycle)
    with pytest.raises(UnsafePickleError, match="contains itself"):
        load_pickle(write(tmp_path, "cycle.pkl", pickle.dumps(cycle, protocol=4)))


def test_keys_that_could_collide_are_refused(tmp_path):
    ok = {"dia0": 1, 7: 2, np.int64(3): 3, 2.5: 4, None: 5, b"x": 6}
    assert load_pickle(write(tmp_path, "keys.pkl", pickle.dumps(ok, protocol=4))) == ok
    modulus = sys.hash_info.modulus
    for name, value in [("big", {k * modulus: 0 for k in range(1, 50)}), ("tuple", {(1, 2): 0}),
                        ("set", {k * modulus for k in range(1, 50)}), ("frozenset-key", {frozenset([1]): 0})]:
        with pytest.raises(UnsafePickleError, match="dictionary key or set member"):
            load_pickle(write(tmp_path, f"{name}.pkl", pickle.dumps(value, protocol=4)))


def test_messages_quote_untrusted_text_in_bounded_previews(tmp_path):
    raw = b"c" + b"m" * 100_000 + b"\n" + b"n" * 50_000 + b"\n."
    with pytest.raises(UnsafePickleError) as caught:
        load_pickle(write(tmp_path, "long.pkl", raw))
    assert len(str(caught.value)) < 700 and "mmmm" in str(caught.value)
    dtype = pickle.dumps(np.zeros(1, np.float32), protocol=2).replace(b"X\x02\x00\x00\x00f4",
                                                                      b"X\x00\x00\x01\x00" + b"q" * 65536)
    with pytest.raises(UserError) as caught:
        load_pickle(write(tmp_path, "dtype.pkl", dtype))
    assert len(str(caught.value)) < 700 and "qqqq" in str(caught.value)
    payload = pickle.dumps(np.zeros(1, np.float32), protocol=3).replace(b"X\x02\x00\x00\x00f4",
                                                                        b"B\x00\x00\x10\x00" + b"b" * (1 << 20))
    with pytest.raises(UserError) as caught:  # numpy.dtype(<1 MiB of bytes>): previewed, not repr'd whole
        load_pickle(write(tmp_path, "bytes.pkl", payload))
    assert len(str(caught.value)) < 700 and "bbbb" in str(caught.value)
