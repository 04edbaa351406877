"""Write the fuzz corpus of crafted pickles: ``python tests/fuzz/make_pickles.py`` rewrites ``tests/fuzz/pickles/``.

Category ``pickles``: hostile and broken feature pickles for ``merc_bench.safe_pickle``, each of which
merc-bench must refuse in one paragraph (exit 2) without running code, crashing or exhausting memory;
plus a few genuine files that must still load. Sub-categories (the file name's prefix):

* ``exec``   code-execution payloads (os.system, subprocess, eval/exec, getattr/__import__ chains,
  INST/OBJ/NEWOBJ/EXT/PERSID opcodes, Python 2 names), in every protocol; each would write a canary
  file ``$MERC_FUZZ_CANARY/<name>`` if it ran;
* ``dtype``  numpy dtypes with crafted constructor arguments or ``__setstate__`` state (object, void,
  structured, sub-array, datetime, long double, lying sizes and byte orders), the segfault of issue 12;
* ``array``  ``_reconstruct``/``_frombuffer``/``scalar`` with lying shapes, buffers, flags and dtypes;
* ``length`` every length-prefixed opcode claiming far more bytes than the file holds (up to 2^64-1);
* ``alloc``  allowed callables asked to allocate (``bytearray(4_000_000_000)``) or to copy without end;
* ``memo``   memo floods and bad memo indices (the C unpickler sized its memo by the largest index);
* ``nest``   deep nesting (100,000 levels of tuples; 10,000 by list, dict and MARK), cycles, shared-list bombs;
* ``keys``   dictionary keys and set members whose hashes collide (big integers, tuples, frozensets);
* ``call``   allowed callables with wrong argument types, non-callables called, globals as values;
* ``trunc``  truncated, empty-stack, garbage and non-pickle files, unknown opcodes and protocols;
* ``valid``  controls: a small MELD-layout file at protocols 2 and 5 and one written as Python 2 with
  numpy 1.x's ``numpy.core.multiarray`` spelling, which must load (exit 0).

Deterministic: the same files every run. ``index.json`` records, per file, what the test expects:
``refuse`` (with a fragment the message must contain), ``no-layout`` (the pickle is harmless plain
data that loads and is then refused as no feature-file layout), or ``load``; which commands run it
(``inspect``, and for some ``convert`` and ``run``); and whether it carries a canary.
"""

from __future__ import annotations

import json
import pickle
import shutil
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "pickles"
sys.path.insert(0, str(HERE.parent))

P = pickle
NEW = "numpy._core.multiarray"
OLD = "numpy.core.multiarray"

# Fragments of merc-bench's own messages (merc_bench/safe_pickle.py) a refusal must contain.
NOT_PLAIN = "not plain data"
UNSAFE = "Nothing from the file was executed"
LIMIT = "over the limit of"
TRUNCATED = "truncated or not a pickle"
DAMAGED = "damaged or not a feature pickle"
AGAIN = "Download it again"  # in both of the above: where a cut file fails depends on where it was cut

ENTRIES: dict[str, dict] = {}
FILES: dict[str, bytes] = {}


def add(name: str, data: bytes, expect: str = "refuse", fragment: str | None = None, *,
        commands: tuple[str, ...] = ("inspect",), canary: bool = False) -> None:
    assert name not in ENTRIES, name
    assert expect in ("refuse", "no-layout", "load")
    assert (fragment is not None) == (expect == "refuse"), name
    FILES[name] = data
    ENTRIES[name] = {"expect": expect, "fragment": fragment, "commands": list(commands), "canary": canary}


# -- writing opcodes by hand --------------------------------------------------------------------------
class Raw(bytes):
    """Opcodes inserted as they are."""


def head(proto: int) -> bytes:
    return P.PROTO + bytes([proto]) if proto >= 2 else b""


def whole(proto: int, body: bytes) -> bytes:
    return head(proto) + body + P.STOP


def glob(module: str, name: str, proto: int) -> Raw:
    if proto >= 4:
        return Raw(text(module, proto) + text(name, proto) + P.STACK_GLOBAL)
    return Raw(P.GLOBAL + module.encode() + b"\n" + name.encode() + b"\n")


def text(value: str, proto: int) -> bytes:
    data = value.encode("utf-8", "surrogatepass")
    if proto == 0:
        return P.UNICODE + value.encode("raw-unicode-escape") + b"\n"
    if proto >= 4 and len(data) < 256:
        return P.SHORT_BINUNICODE + bytes([len(data)]) + data
    return P.BINUNICODE + struct.pack("<I", len(data)) + data


def enc(value: object, proto: int) -> bytes:
    """``value`` as opcodes of ``proto``: None, bool, int, float, str, bytes, bytearray, tuple, list, dict, Raw."""
    if isinstance(value, Raw):
        return bytes(value)
    if value is None:
        return P.NONE
    if isinstance(value, bool):
        if proto >= 2:
            return P.NEWTRUE if value else P.NEWFALSE
        return P.INT + (b"01" if value else b"00") + b"\n"
    if isinstance(value, int):
        if proto == 0 or (proto == 1 and not -2**31 <= value < 2**31):
            return (P.INT + str(value).encode() + b"\n") if -2**31 <= value < 2**31 else \
                P.LONG + str(value).encode() + b"L\n"
        if 0 <= value < 256:
            return P.BININT1 + bytes([value])
        if -2**31 <= value < 2**31:
            return P.BININT + struct.pack("<i", value)
        data = P.encode_long(value)
        return P.LONG1 + bytes([len(data)]) + data
    if isinstance(value, float):
        return P.FLOAT + repr(value).encode() + b"\n" if proto == 0 else P.BINFLOAT + struct.pack(">d", value)
    if isinstance(value, str):
        return text(value, proto)
    if isinstance(value, bytearray):
        return P.BYTEARRAY8 + struct.pack("<Q", len(value)) + bytes(value)
    if isinstance(value, bytes):
        if proto >= 3:
            if len(value) < 256:
                return P.SHORT_BINBYTES + bytes([len(value)]) + value
            return P.BINBYTES + struct.pack("<I", len(value)) + value
        return call(glob("_codecs", "encode", proto), (value.decode("latin-1"), "latin1"), proto)
    if isinstance(value, tuple):
        return P.MARK + b"".join(enc(v, proto) for v in value) + P.TUPLE
    if isinstance(value, list):
        if proto == 0:
            return P.MARK + b"".join(enc(v, proto) for v in value) + P.LIST
        return P.EMPTY_LIST + (P.MARK + b"".join(enc(v, proto) for v in value) + P.APPENDS if value else b"")
    if isinstance(value, dict):
        pairs = b"".join(enc(k, proto) + enc(v, proto) for k, v in value.items())
        if proto == 0:
            return P.MARK + pairs + P.DICT
        return P.EMPTY_DICT + (P.MARK + pairs + P.SETITEMS if value else b"")
    raise TypeError(type(value))


def call(func: bytes, args: tuple, proto: int) -> Raw:
    return Raw(bytes(func) + enc(tuple(args), proto) + P.REDUCE)


def dtype(typestr: str, state: object, proto: int = 2, *, align: object = False) -> Raw:
    built = call(glob("numpy", "dtype", proto), (typestr, align, True), proto)
    return Raw(built + (enc(state, proto) + P.BUILD if state is not None else b""))


def plain_state(order: str = "<", elsize: int = -1, alignment: int = -1) -> tuple:
    return (3, order, None, None, None, elsize, alignment, 0)


def array(shape: object, dt: bytes, data: object, proto: int = 2, *, fortran: object = False,
          module: str = NEW, version: object = 1) -> Raw:
    recon = call(glob(module, "_reconstruct", proto), (glob("numpy", "ndarray", proto), (0,), b"b"), proto)
    state = (version, shape, Raw(dt), fortran, data) if version is not None else (shape, Raw(dt), fortran, data)
    return Raw(recon + enc(state, proto) + P.BUILD)


def frombuffer(buffer: object, dt: bytes, shape: object, order: object = "C", proto: int = 5) -> Raw:
    return call(glob("numpy._core.numeric", "_frombuffer", proto), (buffer, Raw(dt), shape, order), proto)


F4 = dtype("f4", plain_state())


# -- exec: code-execution payloads ---------------------------------------------------------------------
def shell(name: str) -> str:
    return f'touch "${{MERC_FUZZ_CANARY:-/tmp}}/{name}"'


def python(name: str) -> str:
    return f"open(__import__('os').environ.get('MERC_FUZZ_CANARY', '/tmp') + '/{name}', 'w').close()"


def exec_payloads() -> None:
    main = {
        "os-system": lambda n, p: call(glob("os", "system", p), (shell(n),), p),
        "posix-system": lambda n, p: call(glob("posix", "system", p), (shell(n),), p),
        "subprocess": lambda n, p: call(glob("subprocess", "check_call", p), (["sh", "-c", shell(n)],), p),
        "eval": lambda n, p: call(glob("builtins", "eval", p), (python(n),), p),
        "exec": lambda n, p: call(glob("builtins", "exec", p), (python(n),), p),
        "getattr-import": lambda n, p: call(call(glob("builtins", "getattr", p), (
            call(glob("builtins", "__import__", p), ("os",), p), "system"), p), (shell(n),), p),
    }
    for kind, make in main.items():
        for proto in range(6):
            name = f"exec-{kind}-p{proto}"
            commands = ("inspect", "convert", "run") if proto in (2, 5) else ("inspect",)
            add(name, whole(proto, make(name, proto)), "refuse", NOT_PLAIN, commands=commands, canary=True)
    singles = {
        "py2-builtin-eval": (glob("__builtin__", "eval", 0), lambda n: (python(n),)),
        "py2-builtin-apply": (glob("__builtin__", "apply", 0), lambda n: (Raw(glob("os", "system", 0)), (shell(n),))),
        "py2-commands": (glob("commands", "getoutput", 0), lambda n: (shell(n),)),
        "nt-system": (glob("nt", "system", 2), lambda n: (shell(n),)),
        "os-popen": (glob("os", "popen", 2), lambda n: (shell(n),)),
        "subprocess-popen": (glob("subprocess", "Popen", 2), lambda n: (["sh", "-c", shell(n)],)),
        "pty-spawn": (glob("pty", "spawn", 2), lambda n: (["sh", "-c", shell(n)],)),
        "runpy": (glob("runpy", "_run_code", 2), lambda n: (python(n), {})),
        "code-interp": (glob("code", "InteractiveInterpreter", 2), lambda n: ()),
        "importlib": (glob("importlib", "import_module", 2), lambda n: ("os",)),
        "functools-partial": (glob("functools", "partial", 2), lambda n: (Raw(glob("os", "system", 2)), shell(n))),
        "operator-methodcaller": (glob("operator", "methodcaller", 2), lambda n: ("system", shell(n))),
        "pickle-loads": (glob("pickle", "loads", 2),
                         lambda n: (P.dumps(None, 2)[:-1] + call(glob("os", "system", 2), (shell(n),), 2) + P.STOP,)),
        "c-pickle-loads": (glob("_pickle", "loads", 4), lambda n: (b"cos\nsystem\n(Vx\ntR.",)),
        "marshal-loads": (glob("marshal", "loads", 3), lambda n: (b"\xe3",)),
        "types-function": (glob("types", "FunctionType", 3), lambda n: (None, {})),
        "numpy-load": (glob("numpy", "load", 3), lambda n: ("/etc/passwd", None, True)),
        "numpy-runstring": (glob("numpy.testing._private.utils", "runstring", 3), lambda n: (python(n), {})),
        "numpy-frompyfunc": (glob("numpy", "frompyfunc", 3), lambda n: (Raw(glob("builtins", "eval", 3)), 1, 1)),
        "copyreg-reconstructor": (glob("copyreg", "_reconstructor", 2),
                                  lambda n: (Raw(glob("builtins", "object", 2)), Raw(glob("builtins", "object", 2)),
                                             None)),
        "builtins-open": (glob("builtins", "open", 2), lambda n: ("/dev/null", "w")),
        "builtins-type": (glob("builtins", "type", 2), lambda n: ("X", (), {"__reduce__": None})),
        "builtins-compile": (glob("builtins", "compile", 2), lambda n: (python(n), "f", "exec")),
        "builtins-object": (glob("builtins", "object", 4), lambda n: ()),
        "torch-load": (glob("torch", "load", 4), lambda n: ("/dev/null",)),
        "sys-modules": (glob("sys", "modules", 4), lambda n: ()),
    }
    for kind, (func, args) in singles.items():
        name = f"exec-{kind}"
        proto = 0 if kind.startswith("py2") else 2
        add(name, whole(proto, call(func, args(name), proto)), "refuse", NOT_PLAIN, canary=True)
    # Opcodes that call without REDUCE.
    name = "exec-inst-opcode"
    add(name, P.MARK + enc(shell(name), 0) + P.INST + b"os\nsystem\n" + P.STOP, "refuse", NOT_PLAIN, canary=True)
    name = "exec-obj-opcode"
    add(name, P.MARK + glob("os", "system", 1) + enc(shell(name), 1) + P.OBJ + P.STOP, "refuse", NOT_PLAIN, canary=True)
    name = "exec-newobj-opcode"
    add(name, whole(2, glob("os", "system", 2) + enc((shell(name),), 2) + P.NEWOBJ), "refuse", NOT_PLAIN, canary=True)
    name = "exec-newobj-ex-opcode"
    add(name, whole(4, glob("subprocess", "Popen", 4) + enc((["sh", "-c", shell(name)],), 4) + enc({}, 4)
                    + P.NEWOBJ_EX), "refuse", NOT_PLAIN, canary=True)
    name = "exec-stack-global-memo"  # module and name fetched from the memo, not spelled at the call
    add(name, whole(4, text("os", 4) + P.MEMOIZE + text("system", 4) + P.MEMOIZE + P.POP + P.POP
                    + P.BINGET + b"\x00" + P.BINGET + b"\x01" + P.STACK_GLOBAL + enc((shell(name),), 4) + P.REDUCE),
        "refuse", NOT_PLAIN, canary=True)
    add("exec-ext1", whole(2, P.EXT1 + b"\x01"), "refuse", UNSAFE)
    add("exec-ext2", whole(2, P.EXT2 + b"\x01\x02"), "refuse", UNSAFE)
    add("exec-ext4", whole(2, P.EXT4 + b"\x01\x02\x03\x04"), "refuse", UNSAFE)
    add("exec-persid", P.PERSID + shell("exec-persid").encode() + b"\n" + P.STOP, "refuse", UNSAFE)
    add("exec-binpersid", whole(2, enc("os.system", 2) + P.BINPERSID), "refuse", UNSAFE)
    add("exec-next-buffer", whole(5, P.NEXT_BUFFER), "refuse", UNSAFE)
    add("exec-readonly-buffer", whole(5, enc(b"x", 5) + P.READONLY_BUFFER), "refuse", UNSAFE)
    # Allowed types used as a way in: a defaultdict whose factory is a function, BUILD on a dict.
    add("exec-defaultdict-factory", whole(2, call(glob("collections", "defaultdict", 2),
                                                  (Raw(glob("_codecs", "encode", 2)),), 2)), "refuse", UNSAFE)
    add("exec-defaultdict-setstate", whole(2, call(glob("collections", "defaultdict", 2), (), 2)
                                           + enc((None, {"default_factory": Raw(glob("builtins", "list", 2))}), 2)
                                           + P.BUILD), "refuse", UNSAFE)
    add("exec-dict-build-class", whole(2, enc({}, 2) + enc({"__class__": Raw(glob("builtins", "list", 2))}, 2)
                                       + P.BUILD), "refuse", UNSAFE)
    add("exec-list-build", whole(2, enc([1], 2) + enc(({}, {"append": Raw(glob("builtins", "str", 2))}), 2)
                                 + P.BUILD), "refuse", UNSAFE)
    add("exec-codecs-zlib", whole(2, call(glob("_codecs", "encode", 2), ("x\x9c\x03\x00", "zlib"), 2)), "refuse",
        UNSAFE)
    add("exec-codecs-base64", whole(2, call(glob("_codecs", "encode", 2), ("aGk=", "base64"), 2)), "refuse", UNSAFE)
    add("exec-codecs-rot13", whole(2, call(glob("_codecs", "encode", 2), ("abc", "rot13"), 2)), "refuse", UNSAFE)
    add("exec-codecs-bytes-arg", whole(3, call(glob("_codecs", "encode", 3), (b"abc", "latin1"), 3)), "refuse",
        UNSAFE)
    add("exec-ndarray-direct", whole(2, call(glob("numpy", "ndarray", 2), ((3,), "f4"), 2)), "refuse", UNSAFE)
    add("exec-reconstruct-subtype", whole(2, call(glob(NEW, "_reconstruct", 2),
                                                  (Raw(glob("builtins", "dict", 2)), (0,), b"b"), 2)), "refuse",
        DAMAGED)
    add("exec-long-global-name", whole(0, glob("os" * 4000, "system" * 100, 0)), "refuse", NOT_PLAIN)


# -- dtype: crafted numpy dtypes -------------------------------------------------------------------------
def dtype_attacks() -> None:
    def with_dtype(dt: bytes, proto: int = 2, data: bytes = b"A" * 8, shape: tuple = (1,)) -> bytes:
        return whole(proto, array(shape, dt, data, proto))

    refused = {
        "object": (dtype("O8", (3, "|", None, None, None, -1, -1, 63)), UNSAFE),
        "object-numpy1": (dtype("O4", (3, "|", None, None, None, -1, -1, 63)), UNSAFE),
        "void": (dtype("V8", (3, "|", None, None, None, 8, 1, 0)), UNSAFE),
        "structured": (dtype("V4", (3, "|", None, ("a",), {"a": (Raw(F4), 0)}, 4, 1, 16)), UNSAFE),
        "structured-on-f4": (dtype("f4", (3, "<", None, ("a",), {"a": (Raw(F4), 0)}, 4, 1, 16)), UNSAFE),
        "structured-object-field": (dtype("V8", (3, "|", None, ("a",), {"a": (Raw(dtype("O8", (3, "|", None, None, None,
                                    -1, -1, 63))), 0)}, 8, 1, 63)), UNSAFE),
        # numpy trusts the flags and offsets of a state: these read pointers and memory the file chose
        # (issue 12's segfault: an object field whose flags do not say it holds objects).
        "structured-object-field-flags0": (dtype("V8", (3, "|", None, ("a",), {"a": (Raw(dtype("O8", (
            3, "|", None, None, None, -1, -1, 63))), 0)}, 8, 1, 0)), UNSAFE),
        "structured-offset-out-of-bounds": (dtype("V8", (3, "|", None, ("a",), {"a": (Raw(F4), 2**40)}, 8, 1, 0)),
                                            UNSAFE),
        "structured-elsize-small": (dtype("V8", (3, "|", None, ("a",), {"a": (Raw(dtype("f8", plain_state())), 0)},
                                                 1, 1, 0)), UNSAFE),
        "subarray": (dtype("V8", (3, "|", (Raw(F4), (2,)), None, None, 8, 4, 0)), UNSAFE),
        "subarray-huge": (dtype("f4", (3, "<", (Raw(F4), (2**31, 2**31)), None, None, 4, 4, 0)), UNSAFE),
        "datetime": (dtype("M8", (4, "<", None, None, None, -1, -1, 0, (None, (b"s", 1, 1, 1)))), UNSAFE),
        "timedelta": (dtype("m8", (4, "<", None, None, None, -1, -1, 0, (None, (b"D", 1, 1, 1)))), UNSAFE),
        "metadata": (dtype("f4", (4, "<", None, None, None, -1, -1, 0, {"key": "value"})), UNSAFE),
        "longdouble": (dtype("f16", plain_state()), UNSAFE),
        "complex256": (dtype("c32", plain_state()), UNSAFE),
        "f3": (dtype("f3", plain_state()), UNSAFE),
        "i16": (dtype("i16", plain_state()), UNSAFE),
        "name-float32": (dtype("float32", plain_state()), UNSAFE),
        "byteorder-prefix": (dtype("<f4", plain_state()), UNSAFE),
        "empty-typestr": (dtype("", plain_state()), UNSAFE),
        "huge-typestr": (dtype("f" + "9" * 5000, plain_state()), UNSAFE),
        "string-huge-item": (dtype("U999999999", plain_state("<", -1, 4)), UNSAFE),
        "byteorder-x": (dtype("f4", plain_state("x")), DAMAGED),
        "byteorder-none": (dtype("f4", (3, None, None, None, None, -1, -1, 0)), DAMAGED),
        "byteorder-pipe-f8": (dtype("f8", plain_state("|")), DAMAGED),
        "byteorder-long": (dtype("f4", plain_state("<" * 1000)), DAMAGED),
        "elsize-lie": (dtype("f4", plain_state("<", 1000)), DAMAGED),
        "elsize-negative-string": (dtype("S0", plain_state("|", -5, 1)), DAMAGED),
        "elsize-unicode-odd": (dtype("U0", plain_state("<", 6, 4)), DAMAGED),
        "elsize-float": (dtype("f4", plain_state("<", 4.5)), DAMAGED),
        "state-version-99": (dtype("f4", (99, "<", None, None, None, -1, -1, 0)), DAMAGED),
        "state-short": (dtype("f4", (3, "<")), DAMAGED),
        "state-list": (dtype("f4", [3, "<", None, None, None, -1, -1, 0]), DAMAGED),
        "state-dict": (dtype("f4", {"byteorder": "<"}), DAMAGED),
        "state-twice": (Raw(call(glob("numpy", "dtype", 2), ("f4", False, True), 2) + P.DUP + enc(plain_state(), 2)
                            + P.BUILD + P.POP + enc(plain_state(">"), 2) + P.BUILD), DAMAGED),
        "no-state": (dtype("f4", None), DAMAGED),
        "align-string": (dtype("f4", plain_state(), align="yes"), DAMAGED),
        "typestr-bytes": (Raw(call(glob("numpy", "dtype", 3), (b"f4", False, True), 3) + enc(plain_state(), 3)
                              + P.BUILD), DAMAGED),
    }
    for kind, (dt, fragment) in refused.items():
        add(f"dtype-{kind}", with_dtype(dt), "refuse", fragment, commands=("inspect", "convert", "run") if kind in (
            "structured-object-field-flags0", "structured-offset-out-of-bounds") else ("inspect",))
    # The same object dtype under every protocol and numpy 1.x's module name.
    for proto in (0, 1, 3, 4, 5):
        add(f"dtype-object-p{proto}", whole(proto, array((1,), dtype("O8", (3, "|", None, None, None, -1, -1, 63),
                                                                   proto), [None], proto)), "refuse", UNSAFE)
    add("dtype-object-numpy1-spelling", whole(2, array((1,), dtype("O8", (3, "|", None, None, None, -1, -1, 63)),
                                                       [Raw(glob("os", "system", 2))], module=OLD)), "refuse", UNSAFE)
    # A second BUILD on a dtype already used for an array.
    twice = Raw(dtype("f4", plain_state()) + P.MEMOIZE)
    add("dtype-rebuild-after-use", whole(4, array((1,), twice, b"\0" * 4, 4) + P.POP + P.BINGET + b"\0"
                                          + enc(plain_state(">"), 4) + P.BUILD), "refuse", UNSAFE)


# -- array: lying shapes, buffers and flags -------------------------------------------------------------
def array_attacks() -> None:
    cases = {
        "short-buffer": array((1000,), F4, b"\0" * 8),
        "long-buffer": array((2,), F4, b"\0" * 12),
        "huge-shape": array((2**40, 2**40), F4, b"\0" * 8),
        "shape-product-wraps": array((2**32, 2**32), F4, b""),
        "shape-negative": array((-1, 2), F4, b"\0" * 8),
        "shape-float": array((2.0,), F4, b"\0" * 8),
        "shape-bool": array((True,), F4, b"\0" * 4),
        "shape-none": array(None, F4, b"\0" * 8),
        "shape-list": array([2], F4, b"\0" * 8),
        "shape-string": array("2", F4, b"\0" * 8),
        "ndim-33": array((1,) * 33, F4, b"\0" * 4),
        "ndim-1000": array((1,) * 1000, F4, b"\0" * 4),
        "zero-size-huge-dims": array((0, 2**47, 2**47), F4, b""),
        "zero-size-claims-exabytes": array((0, 2**44, 2**44), F4, b""),
        "fortran-2": array((2,), F4, b"\0" * 8, fortran=2),
        "fortran-string": array((2,), F4, b"\0" * 8, fortran="yes"),
        "data-list": array((2,), F4, [1.0, 2.0]),
        "data-none": array((2,), F4, None),
        "data-int": array((2,), F4, 8),
        "data-non-latin1": array((1,), F4, "\u20ac\u20ac"),
        "data-dtype-unbuilt": array((2,), dtype("f4", None), b"\0" * 8),
        "data-dtype-not-dtype": array((2,), Raw(enc("f4", 2)), b"\0" * 8),
        "unicode-bad-codepoint": array((2,), dtype("U1", plain_state("<", 4, 4)), b"\xff\xff\xff\xff" * 2),
        "unicode-bad-codepoint-be": array((1,), dtype("U2", plain_state(">", 8, 4)), b"\x00\x00\x00A\x7f\xff\xff\xff"),
        "state-version-str": array((2,), F4, b"\0" * 8, version="1"),
        "state-3-tuple": Raw(call(glob(NEW, "_reconstruct", 2), (Raw(glob("numpy", "ndarray", 2)), (0,), b"b"), 2)
                             + enc((1, (2,), Raw(F4)), 2) + P.BUILD),
        "state-dict": Raw(call(glob(NEW, "_reconstruct", 2), (Raw(glob("numpy", "ndarray", 2)), (0,), b"b"), 2)
                          + enc({"shape": (2,)}, 2) + P.BUILD),
        "reconstruct-unbuilt": call(glob(NEW, "_reconstruct", 2), (Raw(glob("numpy", "ndarray", 2)), (0,), b"b"), 2),
        "reconstruct-twice": Raw(array((2,), F4, b"\0" * 8) + enc((1, (2,), Raw(F4), False, b"\0" * 8), 2) + P.BUILD),
        "reconstruct-escaped": Raw(call(glob(NEW, "_reconstruct", 2), (Raw(glob("numpy", "ndarray", 2)), (0,), b"b"),
                                        2) + P.DUP + enc((1, (2,), Raw(F4), False, b"\0" * 8), 2) + P.BUILD
                                   + P.TUPLE2),
        "reconstruct-bad-args": call(glob(NEW, "_reconstruct", 2), (1, 2, 3), 2),
        "reconstruct-huge-typecode": call(glob(NEW, "_reconstruct", 2), (Raw(glob("numpy", "ndarray", 2)), (0,),
                                                                         b"b" * 5000), 2),
        "scalar-short-data": call(glob(NEW, "scalar", 2), (Raw(F4), b"\0\0"), 2),
        "scalar-object": call(glob(NEW, "scalar", 2), (Raw(dtype("O8", (3, "|", None, None, None, -1, -1, 63))),
                                                       Raw(glob("builtins", "list", 2))), 2),
        "scalar-list-data": call(glob(NEW, "scalar", 2), (Raw(F4), [1, 2]), 2),
        "scalar-one-arg": call(glob(NEW, "scalar", 2), (Raw(F4),), 2),
        "scalar-numpy1-unbuilt-dtype": call(glob(OLD, "scalar", 2), (Raw(dtype("f8", None)), b"\0" * 8), 2),
    }
    for kind, body in cases.items():
        unsafe = ("data-list", "data-none", "data-int", "scalar-object", "reconstruct-twice", "scalar-list-data")
        limit = ("huge-shape", "shape-product-wraps", "zero-size-huge-dims", "zero-size-claims-exabytes")
        fragment = UNSAFE if kind in unsafe else LIMIT if kind in limit else DAMAGED
        add(f"array-{kind}", whole(2, body), "refuse", fragment,
            commands=("inspect", "convert", "run") if kind in ("short-buffer", "huge-shape") else ("inspect",))
    proto5 = {
        "frombuffer-short": frombuffer(bytearray(8), dtype("f8", plain_state(), 5), (100,)),
        "frombuffer-order-k": frombuffer(bytearray(8), dtype("f8", plain_state(), 5), (1,), "K"),
        "frombuffer-order-none": frombuffer(bytearray(8), dtype("f8", plain_state(), 5), (1,), None),
        "frombuffer-list": frombuffer([1, 2], dtype("f8", plain_state(), 5), (2,)),
        "frombuffer-object": frombuffer(bytearray(8), dtype("O8", (3, "|", None, None, None, -1, -1, 63), 5), (1,)),
        "frombuffer-no-dtype": frombuffer(bytearray(8), Raw(enc(None, 5)), (1,)),
        "frombuffer-three-args": call(glob("numpy._core.numeric", "_frombuffer", 5), (bytearray(8), 1, 2), 5),
        "frombuffer-numpy1-huge": call(glob("numpy.core.numeric", "_frombuffer", 5), (
            Raw(P.BYTEARRAY8 + struct.pack("<Q", 4_000_000_000)), Raw(dtype("f8", plain_state(), 5)), (500_000_000,),
            "C"), 5),
    }
    for kind, body in proto5.items():
        add(f"array-{kind}", whole(5, body), "refuse", UNSAFE if kind in ("frombuffer-object", "frombuffer-list") else (
            LIMIT if kind == "frombuffer-numpy1-huge" else DAMAGED))


# -- length: huge claims for every length-prefixed opcode ---------------------------------------------
def length_attacks() -> None:
    claims = {
        "binbytes": (3, P.BINBYTES + struct.pack("<I", 2**32 - 1)),
        "binbytes8-4gb": (4, P.BINBYTES8 + struct.pack("<Q", 4_000_000_000)),
        "binbytes8-2e63": (4, P.BINBYTES8 + struct.pack("<Q", 2**63 - 1)),
        "binbytes8-2e64": (4, P.BINBYTES8 + struct.pack("<Q", 2**64 - 1)),
        "short-binbytes": (3, P.SHORT_BINBYTES + b"\xff" + b"abc"),
        "binunicode": (1, P.BINUNICODE + struct.pack("<I", 2**32 - 1)),
        "binunicode8": (4, P.BINUNICODE8 + struct.pack("<Q", 4_000_000_000)),
        "short-binunicode": (4, P.SHORT_BINUNICODE + b"\xff" + b"abc"),
        "binstring": (1, P.BINSTRING + struct.pack("<i", 2**31 - 1)),
        "binstring-negative": (1, P.BINSTRING + struct.pack("<i", -1)),
        "short-binstring": (1, P.SHORT_BINSTRING + b"\xff" + b"abc"),
        "bytearray8-4gb": (5, P.BYTEARRAY8 + struct.pack("<Q", 4_000_000_000)),
        "bytearray8-2e63": (5, P.BYTEARRAY8 + struct.pack("<Q", 2**63)),
        "long1": (2, P.LONG1 + b"\xff" + b"\x01"),
        "long4": (2, P.LONG4 + struct.pack("<i", 2**31 - 1)),
        "long4-negative": (2, P.LONG4 + struct.pack("<i", -5)),
        "long4-2kb": (2, P.LONG4 + struct.pack("<i", 2048) + b"\x01" * 2048),
        "frame-4gb": (4, P.FRAME + struct.pack("<Q", 4_000_000_000)),
        "frame-2e63": (4, P.FRAME + struct.pack("<Q", 2**63)),
        "frame-in-frame": (4, P.FRAME + struct.pack("<Q", 12) + P.FRAME + struct.pack("<Q", 4_000_000_000)
                           + b"\0" * 3),
        "frame-then-binbytes8": (4, P.FRAME + struct.pack("<Q", 9) + P.BINBYTES8 + struct.pack("<Q", 4_000_000_000)),
        "binbytes-in-list": (3, P.EMPTY_LIST + P.MARK + P.NONE * 10 + P.BINBYTES + struct.pack("<I", 2**31)),
    }
    for kind, (proto, body) in claims.items():
        fragment = DAMAGED if "negative" in kind else TRUNCATED
        if kind in ("binbytes", "binbytes8-4gb", "binbytes8-2e63", "binbytes8-2e64", "binunicode", "binunicode8",
                    "binstring", "bytearray8-4gb", "bytearray8-2e63", "long4", "long4-2kb", "binbytes-in-list",
                    "frame-then-binbytes8"):
            fragment = LIMIT  # over the 1 GiB item limit (or 1 KiB for integers) before the file's end is checked
        commands = ("inspect", "convert", "run") if kind in ("binbytes8-4gb", "bytearray8-4gb") else ("inspect",)
        add(f"length-{kind}", head(proto) + body + P.STOP, "refuse", fragment, commands=commands)


# -- alloc: allowed callables asked to allocate --------------------------------------------------------
def alloc_attacks() -> None:
    add("alloc-bytearray-4gb", whole(2, call(glob("builtins", "bytearray", 2), (4_000_000_000,), 2)), "refuse", UNSAFE,
        commands=("inspect", "convert", "run"))
    add("alloc-bytearray-4gb-p4", whole(4, call(glob("builtins", "bytearray", 4), (4_000_000_000,), 4)), "refuse",
        UNSAFE)
    add("alloc-bytes-4gb", whole(2, call(glob("builtins", "bytes", 2), (4_000_000_000,), 2)), "refuse", UNSAFE)
    add("alloc-bytes-2e70", whole(2, call(glob("__builtin__", "bytes", 2), (2**70,), 2)), "refuse", UNSAFE)
    add("alloc-bytearray-negative", whole(2, call(glob("builtins", "bytearray", 2), (-1,), 2)), "refuse", UNSAFE)
    add("alloc-bytearray-utf16", whole(2, call(glob("builtins", "bytearray", 2), ("abc", "utf-16"), 2)), "refuse",
        UNSAFE)
    add("alloc-newobj-bytes", whole(2, glob("builtins", "bytes", 2) + enc((4_000_000_000,), 2) + P.NEWOBJ), "refuse",
        UNSAFE)
    add("alloc-newobj-bytearray", whole(2, glob("builtins", "bytearray", 2) + enc((4_000_000_000,), 2) + P.NEWOBJ),
        "refuse", UNSAFE)
    add("alloc-inst-bytearray", P.MARK + enc(4_000_000_000, 0) + P.INST + b"__builtin__\nbytearray\n" + P.STOP,
        "refuse", UNSAFE)
    # Each copy below costs 6 bytes of file (BINGET callable, BINGET memoized argument tuple, REDUCE,
    # POP) and allocates thousands of times that: the allocation limit must stop the loop.
    def copies(setup: bytes, count: int) -> bytes:
        """``setup`` leaves (callable, args) memoized as 0 and 1; call it ``count`` times."""
        return whole(4, setup + (P.BINGET + b"\x00" + P.BINGET + b"\x01" + P.REDUCE + P.POP) * count + P.NONE)

    items = P.EMPTY_LIST + P.MARK + P.NONE * 20_000 + P.APPENDS
    add("alloc-list-copies", copies(glob("builtins", "list", 4) + P.MEMOIZE + P.POP + items + P.TUPLE1 + P.MEMOIZE
                                    + P.POP, 1000), "refuse", LIMIT)
    keys = P.EMPTY_LIST + P.MARK + b"".join(enc(i, 4) for i in range(10_000)) + P.APPENDS
    add("alloc-set-copies", copies(glob("builtins", "set", 4) + P.MEMOIZE + P.POP + keys + P.TUPLE1 + P.MEMOIZE
                                   + P.POP, 1000), "refuse", LIMIT)
    string = text("x" * 50_000, 4)
    add("alloc-encode-copies", copies(glob("_codecs", "encode", 4) + P.MEMOIZE + P.POP + string + P.TUPLE1
                                      + P.MEMOIZE + P.POP, 6000), "refuse", LIMIT)
    data = P.BINBYTES + struct.pack("<I", 65536) + b"\0" * 65536
    args = P.MARK + data + dtype("f8", plain_state(), 4) + enc((8192,), 4) + text("C", 4) + P.TUPLE
    add("alloc-array-copies", copies(glob("numpy._core.numeric", "_frombuffer", 4) + P.MEMOIZE + P.POP + args
                                     + P.MEMOIZE + P.POP, 5000), "refuse", LIMIT)
    add("alloc-int-10k-digits", whole(2, call(glob("builtins", "int", 2), ("9" * 10_000,), 2)), "refuse", DAMAGED)
    add("alloc-int-text-opcode", P.INT + b"9" * 5000 + b"\n" + P.STOP, "refuse", DAMAGED)
    add("alloc-str-of-list", whole(2, call(glob("builtins", "str", 2), ([None] * 1000,), 2)), "refuse", DAMAGED)


# -- memo ---------------------------------------------------------------------------------------------
def memo_attacks() -> None:
    # What exhausted memory through the C unpickler: memo indices near 2^32 (its memo is an array).
    puts = b"".join(P.LONG_BINPUT + struct.pack("<I", 2**32 - 1 - i) for i in range(200))
    add("memo-long-binput-huge-index", whole(4, P.EMPTY_LIST + puts), "no-layout",
        commands=("inspect", "convert", "run"))
    add("memo-put-huge-index", P.EMPTY_LIST + P.PUT + b"9" * 5000 + b"\n" + P.STOP, "refuse", DAMAGED)
    add("memo-put-negative", P.EMPTY_LIST + P.PUT + b"-1\n" + P.STOP, "refuse", DAMAGED)
    add("memo-memoize-flood", whole(4, P.EMPTY_LIST + P.MEMOIZE * 20_000), "no-layout")
    add("memo-get-missing", whole(2, P.BINGET + b"\x07"), "refuse", TRUNCATED)
    add("memo-long-binget-missing", whole(2, P.LONG_BINGET + struct.pack("<I", 2**32 - 1)), "refuse", TRUNCATED)
    add("memo-get-text-huge", P.GET + b"9" * 10_000 + b"\n" + P.STOP, "refuse", DAMAGED)
    add("memo-dup-flood", whole(2, P.NONE + P.DUP * 20_000), "no-layout")


# -- nest: depth, cycles and shared-container bombs ----------------------------------------------------
def nest_attacks() -> None:
    depth = 10_000
    add("nest-tuple1-100k", whole(2, P.EMPTY_TUPLE + P.TUPLE1 * 100_000), "refuse", LIMIT,
        commands=("inspect", "convert", "run"))
    add("nest-lists-10k", whole(2, P.EMPTY_LIST * depth + P.APPEND * (depth - 1)), "refuse", LIMIT)
    add("nest-dicts-10k", whole(2, (P.EMPTY_DICT + P.NONE) * (depth - 1) + P.EMPTY_DICT + P.SETITEM * (depth - 1)),
        "refuse", LIMIT)
    add("nest-marks-10k", whole(2, P.MARK * depth + P.TUPLE * depth), "refuse", LIMIT)
    add("nest-marks-p0-10k", P.MARK * depth + P.LIST * depth + P.STOP, "refuse", LIMIT)
    add("nest-lists-101", whole(2, P.EMPTY_LIST * 101 + P.APPEND * 100), "refuse", LIMIT)
    add("nest-list-cycle", whole(2, P.EMPTY_LIST + P.BINPUT + b"\x00" + P.BINGET + b"\x00" + P.APPEND), "refuse",
        UNSAFE)
    add("nest-dict-cycle", whole(2, P.EMPTY_DICT + P.BINPUT + b"\x00" + enc("self", 2) + P.BINGET + b"\x00"
                                 + P.SETITEM), "refuse", UNSAFE)
    add("nest-tuple-cycle", whole(2, P.EMPTY_LIST + P.BINPUT + b"\x00" + P.TUPLE1 + P.BINPUT + b"\x01" + P.POP
                                  + P.BINGET + b"\x00" + P.BINGET + b"\x01" + P.APPEND), "refuse", UNSAFE)
    # 64 levels of [x, x]: a few hundred bytes that a consumer's loop would expand to 2^64 items.
    bomb = P.EMPTY_LIST
    for level in range(64):
        bomb += P.BINPUT + bytes([level]) + P.POP + P.EMPTY_LIST + P.BINGET + bytes([level]) + P.APPEND \
            + P.BINGET + bytes([level]) + P.APPEND
    add("nest-shared-list-bomb", whole(2, bomb), "refuse", LIMIT, commands=("inspect", "convert", "run"))
    dicts = P.EMPTY_DICT
    for level in range(64):
        dicts += P.BINPUT + bytes([level]) + P.POP + P.EMPTY_DICT + P.MARK + enc(0, 2) + P.BINGET + bytes([level]) \
            + enc(1, 2) + P.BINGET + bytes([level]) + P.SETITEMS
    add("nest-shared-dict-bomb", whole(2, dicts), "refuse", LIMIT)


# -- keys: hash-collision and unhashable keys ----------------------------------------------------------
def key_attacks() -> None:
    modulus = sys.hash_info.modulus
    colliding = b"".join(enc(k * modulus, 2) + P.NONE for k in range(1, 2001))
    add("keys-int-collisions", whole(2, P.EMPTY_DICT + P.MARK + colliding + P.SETITEMS), "refuse", UNSAFE)
    members = b"".join(enc(k * modulus, 4) for k in range(1, 2001))
    add("keys-set-int-collisions", whole(4, P.EMPTY_SET + P.MARK + members + P.ADDITEMS), "refuse", UNSAFE)
    add("keys-frozenset-int-collisions", whole(4, P.MARK + members + P.FROZENSET), "refuse", UNSAFE)
    add("keys-set-call-collisions", whole(2, call(glob("builtins", "set", 2), ([k * modulus for k in range(1, 500)],),
                                                  2)), "refuse", UNSAFE)
    add("keys-dict-call-collisions", whole(2, call(glob("builtins", "dict", 2), ([(k * modulus, 0) for k in
                                                                                  range(1, 500)],), 2)),
        "refuse", UNSAFE)
    add("keys-tuple", whole(2, enc({(1, 2): 0}, 2)), "refuse", UNSAFE)
    add("keys-frozenset-key", whole(4, P.EMPTY_DICT + P.MARK + P.MARK + enc(1, 4) + P.FROZENSET + P.NONE + P.SETITEMS),
        "refuse", UNSAFE)
    add("keys-list-unhashable", whole(2, P.EMPTY_DICT + P.EMPTY_LIST + P.NONE + P.SETITEM), "refuse", UNSAFE)
    add("keys-complex", whole(2, P.EMPTY_DICT + call(glob("builtins", "complex", 2), (1.0, 2.0), 2) + P.NONE
                              + P.SETITEM), "refuse", UNSAFE)
    add("keys-dtype", whole(2, P.EMPTY_DICT + F4 + P.NONE + P.SETITEM), "refuse", UNSAFE)
    add("keys-dict-opcode-p0", P.MARK + enc(2**70, 0) + enc(1, 0) + P.DICT + P.STOP, "refuse", UNSAFE)
    add("keys-ordereddict-pairs", whole(2, call(glob("collections", "OrderedDict", 2), ([[(1,), 2]],), 2)), "refuse",
        UNSAFE)


# -- call: wrong arguments to allowed callables, non-callables, globals as values ----------------------
def call_attacks() -> None:
    calls = {
        "dict-int": ("dict", (5,), DAMAGED), "list-int": ("list", (5,), DAMAGED),
        "tuple-none": ("tuple", (None,), DAMAGED), "set-str": ("set", ("abc",), DAMAGED),
        "frozenset-int": ("frozenset", (1,), DAMAGED), "int-list": ("int", ([1],), DAMAGED),
        "float-dict": ("float", ({},), DAMAGED), "complex-long-text": ("complex", ("1" * 100,), DAMAGED),
        "int-base-junk": ("int", ("zz", 36, 1), DAMAGED), "str-bytes": ("str", (b"abc", "utf-8"), DAMAGED),
        "bytes-list": ("bytes", ([1, 2, 3],), UNSAFE), "bytes-str-no-encoding": ("bytes", ("abc",), UNSAFE),
        "dict-odd-pairs": ("dict", ([(1, 2, 3)],), DAMAGED), "list-two-args": ("list", ([], []), DAMAGED),
        "bool-list": ("bool", ([1],), DAMAGED),
    }
    for kind, (func, args, fragment) in calls.items():
        add(f"call-{kind}", whole(2, call(glob("builtins", func, 2), args, 2)), "refuse", fragment)
    add("call-ordereddict-int", whole(2, call(glob("collections", "OrderedDict", 2), (5,), 2)), "refuse", DAMAGED)
    add("call-defaultdict-list-value", whole(2, call(glob("collections", "defaultdict", 2), ([],), 2)), "refuse",
        UNSAFE)
    add("call-defaultdict-dtype", whole(2, call(glob("collections", "defaultdict", 2),
                                                (Raw(glob("numpy", "dtype", 2)),), 2)), "refuse", UNSAFE)
    add("call-defaultdict-three", whole(2, call(glob("collections", "defaultdict", 2),
                                                (Raw(glob("builtins", "list", 2)), {}, {}), 2)), "refuse", DAMAGED)
    add("call-reduce-args-list", whole(2, glob("builtins", "list", 2) + enc([1], 2) + P.REDUCE), "refuse", DAMAGED)
    add("call-reduce-string", whole(2, enc("os.system", 2) + enc(("x",), 2) + P.REDUCE), "refuse", DAMAGED)
    add("call-reduce-int", whole(2, enc(1, 2) + enc((), 2) + P.REDUCE), "refuse", DAMAGED)
    add("call-reduce-array", whole(2, array((1,), F4, b"\0" * 4) + enc((), 2) + P.REDUCE), "refuse", DAMAGED)
    add("call-newobj-list-args", whole(2, glob("builtins", "list", 2) + enc((5,), 2) + P.NEWOBJ), "refuse", UNSAFE)
    add("call-newobj-ndarray", whole(2, glob("numpy", "ndarray", 2) + enc(((3,),), 2) + P.NEWOBJ), "refuse", UNSAFE)
    add("call-newobj-ex-kwargs", whole(4, glob("builtins", "dict", 4) + enc((), 4) + enc({"a": 1}, 4) + P.NEWOBJ_EX),
        "refuse", UNSAFE)
    add("call-obj-empty", P.MARK + P.OBJ + P.STOP, "refuse", DAMAGED)
    add("call-appends-to-str", whole(2, enc("abc", 2) + P.MARK + enc(1, 2) + P.APPENDS), "refuse", DAMAGED)
    add("call-appends-to-bytearray", whole(3, call(glob("builtins", "bytearray", 3), (b"x",), 3) + P.MARK + enc(1, 3)
                                        + P.APPENDS), "refuse", DAMAGED)
    add("call-setitem-on-list", whole(2, enc([1], 2) + enc(0, 2) + enc(5, 2) + P.SETITEM), "refuse", DAMAGED)
    add("call-additems-to-list", whole(4, enc([1], 4) + P.MARK + enc(1, 4) + P.ADDITEMS), "refuse", DAMAGED)
    for name in ("list", "dict", "ndarray", "dtype", "_reconstruct", "encode"):
        module = {"ndarray": "numpy", "dtype": "numpy", "_reconstruct": NEW, "encode": "_codecs"}.get(name, "builtins")
        add(f"call-global-as-value-{name}", whole(2, enc([Raw(glob(module, name, 2))], 2)), "refuse", UNSAFE)


# -- trunc: truncated, damaged and non-pickle files -----------------------------------------------------
def truncated(valid: dict[int, bytes]) -> None:
    for proto, raw in valid.items():
        for fraction in (0.1, 0.5, 0.9):
            cut = raw[: int(len(raw) * fraction)]
            add(f"trunc-meld-p{proto}-{int(fraction * 100)}pct", cut, "refuse", AGAIN,
                commands=("inspect", "convert", "run") if proto == 2 and fraction == 0.5 else ("inspect",))
        add(f"trunc-meld-p{proto}-no-stop", raw[:-1], "refuse", AGAIN)
    add("trunc-proto-only", P.PROTO + b"\x04", "refuse", TRUNCATED)
    add("trunc-stop-empty-stack", P.STOP, "refuse", DAMAGED)
    add("trunc-proto-6", P.PROTO + b"\x06" + P.NONE + P.STOP, "refuse", DAMAGED)
    add("trunc-proto-255", P.PROTO + b"\xff" + P.NONE + P.STOP, "refuse", DAMAGED)
    add("trunc-unknown-opcode", P.PROTO + b"\x02" + b"\xfe" + P.STOP, "refuse", TRUNCATED)
    add("trunc-text", b"videoIDs,videoSpeakers,videoLabels\n1,A,0\n", "refuse", TRUNCATED)
    add("trunc-gzip", b"\x1f\x8b\x08\x00" + b"\0" * 60, "refuse", TRUNCATED)
    add("trunc-zip", b"PK\x03\x04" + b"\0" * 60, "refuse", UNSAFE)  # 'P' is PERSID
    add("trunc-npy", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }" + b" " * 60
        + b"\n" + b"\0" * 8, "refuse", DAMAGED)
    add("trunc-pop-empty", whole(2, P.POP), "refuse", DAMAGED)
    add("trunc-pop-mark-without-mark", whole(2, P.POP_MARK), "refuse", DAMAGED)
    add("trunc-tuple-without-mark", whole(2, P.TUPLE), "refuse", DAMAGED)
    add("trunc-setitems-odd", whole(2, P.EMPTY_DICT + P.MARK + enc(1, 2) + P.SETITEMS), "refuse", DAMAGED)
    add("trunc-string-unquoted", P.STRING + b"abc\n" + P.STOP, "refuse", TRUNCATED)
    add("trunc-bad-utf8", whole(4, P.SHORT_BINUNICODE + b"\x02\xff\xfe"), "refuse", DAMAGED)
    add("trunc-float-junk", P.FLOAT + b"one point five\n" + P.STOP, "refuse", DAMAGED)
    add("trunc-stack-global-ints", whole(4, enc(1, 4) + enc(2, 4) + P.STACK_GLOBAL), "refuse", TRUNCATED)


# -- valid controls -----------------------------------------------------------------------------------
def controls() -> dict[int, bytes]:
    import layout_fixtures as lf

    truth = lf.make_truth("mmgcn-meld")
    obj = list(lf.build_object("mmgcn-meld", truth))
    for field in (3, 4, 5):  # 8 features per modality keep the files small (undocumented sizes load with a warning)
        obj[field] = {d: [row[:8].copy() for row in rows] for d, rows in obj[field].items()}
    obj = tuple(obj)
    valid = {proto: pickle.dumps(obj, protocol=proto) for proto in (2, 5)}
    add("valid-meld-p2", valid[2], "load", commands=("inspect", "run"))
    add("valid-meld-p5", valid[5], "load", commands=("inspect", "convert"))
    py2 = lf.pickle_bytes(obj, py2=True)
    assert b"numpy.core.multiarray" in py2 and b"numpy._core" not in py2
    add("valid-meld-py2-numpy1", py2, "load", commands=("inspect",))
    return valid


def carrier(bad: bytes, proto: int = 2) -> bytes:
    """The small MELD-layout file with its first text row replaced by ``bad``, all written by hand.

    A crafted array inside a real layout reaches the code that reads feature values (the layout
    checks, conversion, training), which a bare array does not.
    """
    import layout_fixtures as lf
    import numpy as np

    obj = list(lf.build_object("mmgcn-meld", lf.make_truth("mmgcn-meld")))
    for field in (3, 4, 5):
        obj[field] = {d: [row[:8].copy() for row in rows] for d, rows in obj[field].items()}
    first = next(iter(obj[3]))
    replaced = []

    def convert(value: object) -> object:
        if isinstance(value, np.ndarray):
            if value is obj[3][first][0]:
                replaced.append(True)
                return Raw(bad)
            order, typestr = value.dtype.str[0], value.dtype.str[1:]
            return Raw(array(value.shape, dtype(typestr, plain_state(order), proto), value.tobytes(), proto))
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(convert(v) for v in value)
        return value

    body = enc(convert(tuple(obj)), proto)
    assert replaced
    return whole(proto, body)


def carried_attacks() -> None:
    o8 = Raw(dtype("O8", (3, "|", None, None, None, -1, -1, 63)))
    attacks = {
        "object-field-flags0": array((8,), dtype("V8", (3, "|", None, ("a",), {"a": (o8, 0)}, 8, 1, 0)), b"A" * 64),
        "offset-out-of-bounds": array((8,), dtype("V4", (3, "|", None, ("a",), {"a": (Raw(F4), 2**30)}, 4, 1, 0)),
                                      b"A" * 32),
        "object-array": array((8,), o8, b"A" * 64),
        "short-buffer": array((8,), F4, b"A" * 4),
    }
    for kind, bad in attacks.items():
        add(f"dtype-in-layout-{kind}", carrier(bad), "refuse", UNSAFE if kind != "short-buffer" else DAMAGED,
            commands=("inspect", "convert", "run"))


def build() -> None:
    valid = controls()
    exec_payloads()
    dtype_attacks()
    carried_attacks()
    array_attacks()
    length_attacks()
    alloc_attacks()
    memo_attacks()
    nest_attacks()
    key_attacks()
    call_attacks()
    truncated(valid)


def write(folder: Path = OUT) -> dict[str, dict]:
    """Rebuild the corpus into ``folder`` (replacing it) and return the index."""
    ENTRIES.clear()
    FILES.clear()
    build()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, data in FILES.items():
        (folder / f"{name}.pkl").write_bytes(data)
    (folder / "index.json").write_bytes(index_bytes())
    return dict(ENTRIES)


def index_bytes() -> bytes:
    """``index.json``: one line per file, sorted."""
    lines = [f"{json.dumps(name)}: {json.dumps(ENTRIES[name], sort_keys=True)}" for name in sorted(ENTRIES)]
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode()


def generate() -> dict[str, bytes]:
    """The corpus as ``{file name: bytes}``, index.json included, without writing anything."""
    ENTRIES.clear()
    FILES.clear()
    build()
    files = {f"{name}.pkl": data for name, data in FILES.items()}
    files["index.json"] = index_bytes()
    return files


if __name__ == "__main__":
    index = write()
    counts: dict[str, int] = {}
    for name in index:
        counts[name.split("-")[0]] = counts.get(name.split("-")[0], 0) + 1
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"{len(index)} files in {OUT} ({total / 1024:.0f} KiB): "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
