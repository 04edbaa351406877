"""Write the ``spaces`` fuzz category: hostile ``tune --space`` files, TOML and YAML.

spaces: search-space files that are not UTF-8 (UTF-16, Latin-1, binary, overlong and truncated
sequences, NUL bytes), TOML that parses slowly or not at all (40,000-part dotted keys, nesting past
the recursion limit, duplicate keys and tables, 5000-digit integers, dates), YAML that expands or
executes (a 389-byte "billion laughs" alias bomb, aliases, merge keys, Python tags, binary, sets,
timestamps, duplicate and non-string keys, several documents, deep nesting), and well-formed files
whose values no trial could train: inverted, NaN and infinite bounds, steps ≤ 0, log ranges with
low ≤ 0 or a step, integers given as floats or booleans, bounds past 2**53, ranges for a choice
setting, empty, nested, duplicate and invalid choices (a Literal, a bounded int), unknown sections,
slots, components, settings, options and range keys, and 20 KB names and values.

Every file is written to ``tests/fuzz/spaces/<name>`` and listed in ``cases.json`` with what it
tests (``why``), what is expected (``refuse``: exit 2 with one ``error:`` paragraph before a study
folder exists; ``ok``: a valid control, which trains trial 0) and a ``fragment`` the refusal must
contain (so a file is refused for its own reason). ``tests/test_fuzz_spaces.py`` runs them through
``merc-bench tune``. Files *claiming* to be huge are not here (a regular file cannot claim a size):
the test makes a sparse 2 MiB file, a pipe, a device and a folder at run time.

Run ``python tests/fuzz/make_spaces.py`` to rewrite the corpus (deterministic); ``--out DIR``
writes elsewhere.
"""

from __future__ import annotations

import argparse
import codecs
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: The canary a YAML payload would create through ``os.system`` (the shell expands the variable).
CANARY_VARIABLE = "MERC_FUZZ_CANARY"

VALID_TOML = """# a narrow, valid space
[training]
lr = { low = 1e-3, high = 1e-2, log = true }
batch_size = [4, 8]
[model]
head_dropout = { low = 0.0, high = 0.3, step = 0.1 }
"""

VALID_YAML = """# the same space in YAML (1.0e-3: YAML 1.1 reads 1e-3 as text)
training:
  lr: {low: 1.0e-3, high: 1.0e-2, log: true}
  batch_size: [4, 8]
model:
  head_dropout: {low: 0.0, high: 0.3, step: 0.1}
"""

BILLION_LAUGHS = """a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""


def _noise(count: int, seed: int = 12345) -> bytes:
    """Deterministic bytes from a linear congruential generator (no ``random``: same on any Python)."""
    out, state = bytearray(), seed
    for _ in range(count):
        state = (1103515245 * state + 12345) % 2**31
        out.append(state >> 16 & 0xFF)
    return bytes(out)


def case(name: str, content: str | bytes, why: str, fragment: str | None, expect: str = "refuse") -> dict:
    data = content.encode() if isinstance(content, str) else content
    return {"name": name, "why": why, "expect": expect, "fragment": fragment, "data": data}


def cases() -> list[dict]:
    out = [
        # -- valid controls ----------------------------------------------------------------------------
        case("valid.toml", VALID_TOML, "a narrow valid space", None, "ok"),
        case("valid.yaml", VALID_YAML, "the same space as YAML", None, "ok"),
        case("valid-utf8-bom.toml", codecs.BOM_UTF8 + VALID_TOML.encode(), "a UTF-8 byte-order mark is dropped",
             None, "ok"),

        # -- bytes that are not UTF-8 text -------------------------------------------------------------
        case("utf16-bom.toml", VALID_TOML.encode("utf-16"), "UTF-16 with its byte-order mark", "UTF-16"),
        case("utf16le-no-bom.toml", VALID_TOML.encode("utf-16-le"), "UTF-16 without a mark: NUL bytes", "NUL byte"),
        case("latin1.toml", "# caf\xe9\n[training]\nepochs = 2\n".encode("latin-1"), "Latin-1 text", "not UTF-8"),
        case("binary.toml", _noise(4096), "4 KB of noise", "not UTF-8"),
        case("png.yaml", b"\x89PNG\r\n\x1a\n" + _noise(200, 7), "an image named .yaml", "not UTF-8"),
        case("overlong-utf8.toml", b"[training]\nlr = \"\xc0\xaf\"\n", "an overlong encoding of '/'", "not UTF-8"),
        case("surrogate-utf8.toml", b"[training]\nlr = \"\xed\xa0\x80\"\n", "an encoded UTF-16 surrogate",
             "not UTF-8"),
        case("truncated-utf8.toml", b"[training]\nepochs = 2 # \xe2\x82", "a sequence cut at the end", "not UTF-8"),
        case("nul-byte.toml", b"[training]\nepochs = 2\x00\n", "a NUL byte in TOML", "NUL byte"),
        case("utf8-bom-then-typo.toml", codecs.BOM_UTF8 + b"[training]\nlrr = 1e-3\n",
             "after the mark, the content is still checked", "Did you mean 'lr'"),

        # -- TOML that parses slowly, deeply or not at all ---------------------------------------------
        case("dotted-key-40000.toml", "a" + ".a" * 40_000 + " = 1\n",
             "a dotted key of 40,000 parts (tomllib: 21 s, quadratic)", "dotted name of more than 8 parts"),
        case("dotted-header-20000.toml", "[" + ".".join(["t"] * 20_000) + "]\nx = 1\n",
             "a table header of 20,000 parts", "dotted name of more than 8 parts"),
        case("dotted-quoted-keys.toml", ".".join(['"k"'] * 5_000) + " = 1\n", "quoted parts count too",
             "dotted name of more than 8 parts"),
        case("deep-arrays.toml", "[training]\nlr = " + "[" * 5_000 + "]" * 5_000 + "\n",
             "arrays nested 5,000 deep", "nested too deeply"),
        case("deep-inline-tables.toml", "x = " + "{a = " * 3_000 + "1" + "}" * 3_000 + "\n",
             "inline tables nested 3,000 deep", "nested too deeply"),
        case("five-levels.toml", "[mixer.bigru.layers.low]\nx = 1\n", "one level deeper than a range",
             "nested too deeply"),
        case("duplicate-key.toml", "[training]\nepochs = 2\nepochs = 3\n", "a key twice", "not valid TOML"),
        case("duplicate-table.toml", "[training]\nepochs = 2\n[training]\nlr = 1e-3\n", "a table twice",
             "not valid TOML"),
        case("syntax-error.toml", "[training\nlr = \n", "an unclosed header", "not valid TOML"),
        case("int-5000-digits.toml", "[training]\nepochs = " + "9" * 5_000 + "\n",
             "an integer past Python's 4300-digit limit", "not valid TOML"),
        case("datetime.toml", "[training]\nlr = 1979-05-27T07:32:00Z\n", "a TOML date as a value", "datetime"),
        case("top-level-value.toml", "lr = 1e-3\n", "a setting outside any section", "unknown section 'lr'"),
        case("yaml-named-toml.toml", VALID_YAML, "YAML in a .toml file", "not valid TOML"),

        # -- YAML that expands, executes or hides ------------------------------------------------------
        case("billion-laughs.yaml", BILLION_LAUGHS, "389 bytes of nested aliases: 9**7 strings (it hung)",
             "aliases"),
        case("one-alias.yaml", "training:\n  lr: &x {low: 1.0e-3, high: 1.0e-2}\n  weight_decay: *x\n",
             "a single, harmless-looking alias", "aliases"),
        case("merge-alias.yaml", "base: &b {epochs: 2}\ntraining:\n  <<: *b\n", "a merge through an alias", "aliases"),
        case("merge-inline.yaml", "training:\n  <<: {epochs: 2}\n", "a merge key without an alias", "merge keys"),
        case("deep-flow.yaml", "training:\n  lr: " + "[" * 5_000 + "]" * 5_000 + "\n", "flow lists 5,000 deep",
             "nested too deeply"),
        case("deep-block.yaml", "".join(" " * i + f"k{i}:\n" for i in range(200)) + " " * 200 + "v: 1\n",
             "block mappings 200 deep", "nested too deeply"),
        case("python-apply.yaml", f'training: !!python/object/apply:os.system ["touch ${CANARY_VARIABLE}"]\n',
             "a Python call (would create the canary)", "not valid YAML"),
        case("python-name.yaml", "training: !!python/name:os.system\n", "a Python object by name", "not valid YAML"),
        case("python-module.yaml", "training: !!python/module:os\n", "a Python module", "not valid YAML"),
        case("binary-tag.yaml", "training:\n  lr: !!binary aGVsbG8=\n", "bytes", "is a bytes"),
        case("set-tag.yaml", "slots: !!set {bigru, concat}\n", "a set where a table goes", "is a set"),
        case("timestamp.yaml", "training:\n  lr: 2001-12-14\n", "YAML's implicit date", "is a date"),
        case("duplicate-key.yaml", "training:\n  epochs: 2\n  epochs: 3\n", "PyYAML keeps the last silently",
             "appears twice"),
        case("int-key.yaml", "training:\n  1: 2\n", "a number as a key", "is not a name"),
        case("null-key.yaml", "training:\n  ~: 2\n", "null as a key", "is not a name"),
        case("complex-key.yaml", "? [a, b]\n: 1\n", "a list as a key", "a key must be a name"),
        case("two-documents.yaml", VALID_YAML + "---\n" + VALID_YAML, "two documents", "not valid YAML"),
        case("top-level-list.yaml", "- training\n- model\n", "a list instead of tables", "must hold tables"),
        case("top-level-scalar.yaml", "hello\n", "a word instead of tables", "must hold tables"),
        case("nan-bound.yaml", "training:\n  lr: {low: .nan, high: 1.0e-2}\n", "YAML's NaN", "finite"),
        case("inf-bound.yaml", "training:\n  epochs: {low: 1, high: .inf}\n", "YAML's infinity", "finite"),
        case("yaml-1e-3-is-text.yaml", "training:\n  lr: {low: 1e-5, high: 1e-3}\n", "YAML 1.1 reads 1e-3 as text",
             "YAML 1.1 reads 1e-3 as text"),
        case("tab-indent.yaml", "training:\n\tepochs: 2\n", "a tab as indentation", "not valid YAML"),
        case("int-5000-digits.yaml", "training:\n  epochs: " + "9" * 5_000 + "\n", "a 5000-digit integer",
             "not valid YAML"),
        case("control-char.yaml", "training:\n  epochs: 2\x07\n", "a bell character", "not valid YAML"),

        # -- ranges ------------------------------------------------------------------------------------
        case("inverted-bounds.toml", "[training]\nlr = { low = 1e-2, high = 1e-3 }\n", "low above high",
             "is above high"),
        case("nan-low.toml", "[training]\nlr = { low = nan, high = 1e-2 }\n", "TOML's nan", "finite"),
        case("inf-high.toml", "[training]\nepochs = { low = 1, high = inf }\n", "TOML's inf", "finite"),
        case("minus-inf-low.toml", "[model]\nhead_dropout = { low = -inf, high = 0.5 }\n", "TOML's -inf", "finite"),
        case("step-zero.toml", "[model]\nhead_dropout = { low = 0.0, high = 0.5, step = 0.0 }\n", "step 0",
             "step must be above 0"),
        case("step-negative.toml", "[training]\nbatch_size = { low = 4, high = 32, step = -4 }\n", "a negative step",
             "step must be above 0"),
        case("step-text.toml", "[training]\nepochs = { low = 1, high = 4, step = \"1\" }\n", "a step as text",
             "step must be an integer"),
        case("log-low-zero.toml", "[training]\nweight_decay = { low = 0.0, high = 1e-3, log = true }\n",
             "log from 0", "log range needs low > 0"),
        case("log-low-negative.toml", "[training]\nweight_decay = { low = -1.0, high = 1e-3, log = true }\n",
             "log from a negative", "log range needs low > 0"),
        case("log-with-step.toml", "[training]\nlr = { low = 1e-4, high = 1e-2, log = true, step = 1e-4 }\n",
             "log and step", "not both"),
        case("log-yes.toml", "[training]\nlr = { low = 1e-4, high = 1e-2, log = \"yes\" }\n", "log as text",
             "log must be true or false"),
        case("range-extra-key.toml", "[training]\nepochs = { low = 1, high = 4, mid = 2 }\n", "an unknown range key",
             "unknown range key 'mid'"),
        case("range-typo.toml", "[training]\nepochs = { low = 1, hihg = 4 }\n", "a misspelt range key",
             "Did you mean 'high'"),
        case("range-without-high.toml", "[training]\nepochs = { low = 1 }\n", "a range with one end",
             "needs both low and high"),
        case("range-bool-bound.toml", "[training]\nbatch_size = { low = true, high = 8 }\n", "a boolean bound",
             "must be an integer, not a bool"),
        case("range-float-for-int.toml", "[training]\nbatch_size = { low = 4.5, high = 8 }\n",
             "a fraction for an integer setting", "must be an integer, not a float"),
        case("range-past-2-53.toml", "[training]\nepochs = { low = 1, high = 1152921504606846976 }\n",
             "an end Optuna cannot store exactly", "2**53"),
        case("range-for-literal.toml", "[model]\nprediction = { low = 0, high = 1 }\n", "a range for a choice setting",
             "not a number; give a list of choices"),
        case("range-for-bool.toml", "[model]\nmodality_heads = { low = 0, high = 1 }\n", "a range for a boolean",
             "not a number; give a list of choices"),
        case("head-dropout-to-1.toml", "[model]\nhead_dropout = { low = 0.0, high = 1.0 }\n",
             "an end the config refuses (< 1)", "less than 1"),
        case("lr-from-negative.toml", "[training]\nlr = { low = -1.0, high = 1e-2 }\n", "a negative learning rate",
             "greater than 0"),
        case("hidden-size-1e8.toml", "[model]\nhidden_size = { low = 8, high = 100000000 }\n",
             "the campaign's 40 TB model as a range end", "hidden_size"),

        # -- choices and fixed values -----------------------------------------------------------------
        case("empty-choices.toml", "[training]\nbatch_size = []\n", "no choices", "empty list of choices"),
        case("nested-choice.toml", "[training]\nbatch_size = [[8]]\n", "a list inside the choices",
             "a choice is a plain value"),
        case("table-choice.toml", "[training]\nbatch_size = [{ a = 1 }]\n", "a table inside the choices",
             "a choice is a plain value"),
        case("too-many-choices.toml", "[training]\nbatch_size = [" + ", ".join(str(i) for i in range(1, 302)) + "]\n",
             "301 choices", "at most 256"),
        case("duplicate-choices.toml", "[training]\nbatch_size = [8, 16, 8]\n", "a choice twice", "listed twice"),
        case("literal-choice.toml", "[model]\nprediction = [\"fused\", \"average\"]\n", "not one of a Literal's values",
             "prediction"),
        case("precision-choice.toml", "[training]\nprecision = [\"fp64\"]\n", "not a precision", "precision"),
        case("int-choice-zero.toml", "[training]\nbatch_size = [8, 0]\n", "0 dialogues per batch", "greater than 0"),
        case("int-choice-text.toml", "[training]\nbatch_size = [8, \"sixteen\"]\n", "a word among integers",
             "must be an integer, not a str"),
        case("int-choice-float.toml", "[training]\nbatch_size = [8.5]\n", "a fraction among integers",
             "must be an integer, not a float"),
        case("int-choice-bool.toml", "[training]\nbatch_size = [true]\n", "true is not 1 here",
             "must be an integer, not a bool"),
        case("fixed-epochs-zero.toml", "[training]\nepochs = 0\n", "zero epochs (every trial failed, exit 0)",
             "greater than 0"),
        case("fixed-epochs-text.toml", "[training]\nepochs = \"ten\"\n", "epochs as a word",
             "must be an integer, not a str"),
        case("fixed-seed-2-40.toml", "[training]\nseed = 1099511627776\n", "a seed numpy cannot take", "seed"),
        case("selection-metric.toml", "[training]\nselection_metric = \"accuracy\"\n", "--metric's job",
             "--metric sets it"),

        # -- names -------------------------------------------------------------------------------------
        case("unknown-section.toml", "[optimizer]\nlr = 1\n", "not a section", "unknown section 'optimizer'"),
        case("unknown-slot.toml", "[slots]\nmixxer = [\"bigru\"]\n", "a misspelt slot", "Did you mean 'mixer'"),
        case("unknown-component.toml", "[slots]\nmixer = [\"bigur\"]\n", "a misspelt mixer", "Did you mean 'bigru'"),
        case("unknown-component-section.toml", "[mixer.transformr]\nheads = [2, 4]\n", "a misspelt component table",
             "Did you mean 'transformer'"),
        case("unknown-training-setting.toml", "[training]\nlrr = 1e-3\n", "a misspelt setting", "Did you mean 'lr'"),
        case("unknown-model-setting.toml", "[model]\nhidden = 64\n", "a misspelt model setting",
             "Did you mean 'hidden_size'"),
        case("unknown-option.toml", "[mixer.bigru]\nlayerz = 2\n", "a misspelt option",
             "unknown mixer 'bigru' option 'layerz'"),
        case("component-not-allowed.toml", "[slots]\nfuser = [\"concat\"]\n[fuser.hcmf]\nlayers = 2\n",
             "options of a component the slots exclude", "not among the allowed fusers"),
        case("slots-not-a-list.toml", "[slots]\nmixer = \"bigru\"\n", "one name, not a list", "non-empty list"),
        case("slots-empty.toml", "[slots]\nmixer = []\n", "no names", "non-empty list"),
        case("slots-number.toml", "[slots]\nmixer = [1]\n", "a number as a name", "registered mixer"),
        case("section-not-table.toml", "training = 5\n", "a number as a section", "expected a table"),
        case("component-not-table.toml", "[mixer]\nbigru = 3\n", "a number as a component's table",
             "expected a table"),
        case("option-out-of-range.toml", "[mixer.bigru]\nlayers = 0\n", "an option the component refuses",
             "greater than 0"),
        case("option-range-for-literal.toml", "[fuser.hcmf]\ncombine = { low = 1, high = 2 }\n",
             "a range for a component's choice option", "not a number; give a list of choices"),
        case("option-invalid-choice.toml", "[fuser.hcmf]\ncombine = [\"gated\", \"bogus\"]\n",
             "a choice the component's Literal refuses", "combine"),
        case("option-float-for-int.toml", "[mixer.sdmoe]\nexperts = { low = 2.5, high = 4 }\n",
             "a fraction for an integer option", "must be an integer, not a float"),

        # -- size --------------------------------------------------------------------------------------
        case("long-key.toml", "[training]\n\"" + "k" * 20_000 + "\" = 1\n", "a 20 KB setting name",
             "unknown training setting"),
        case("long-value.toml", "[model]\nprediction = \"" + "x" * 20_000 + "\"\n", "a 20 KB value", "prediction"),
        case("long-component-name.toml", "[slots]\nmixer = [\"" + "m" * 5_000 + "\"]\n", "a 5000-character name",
             "a name of 5000 characters"),
    ]
    names = [c["name"] for c in out]
    assert len(set(names)) == len(names), "case names must be unique"
    return out


def write(target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    index = []
    for entry in cases():
        (target / entry["name"]).write_bytes(entry["data"])
        index.append({key: value for key, value in entry.items() if key != "data"})
    (target / "cases.json").write_text(json.dumps({"canary_variable": CANARY_VARIABLE, "cases": index}, indent=1)
                                       + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "spaces", help="folder to write (replaced)")
    write(parser.parse_args().out)


if __name__ == "__main__":
    main()
