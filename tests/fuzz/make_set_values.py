"""Write the ``set_values`` fuzz category: hostile ``--set`` values (and a few flags) as argument lists.

set_values: ``--set`` overrides that are out of range, NaN, infinite, huge, negative, of the wrong
type, unknown, malformed (no ``=``, empty key, a value used as a group), nested garbage, deeply
nested or oversized JSON, heads that do not divide the hidden size, absurd expert and layer counts,
models too big for the machine, and a few ``--max-memory`` and ``--modalities`` values.

Nothing here is a file: the corpus is ``tests/fuzz/set_values/cases.json``, a list of cases, each
with a ``name``, what it tests (``why``), the ``command`` (``validate``, ``run`` or ``compare``), the
``recipe``, the case's own ``sets`` (given after :data:`BASE`, so they win), extra ``flags``, what
is expected (``refuse``: exit 2 with one ``error:`` paragraph; ``ok``: exit 0) and a ``fragment``
the refusal must contain (so a case is refused for its own reason, not a neighbour's).
``tests/test_fuzz_set_values.py`` runs them through the real command line.

Run ``python tests/fuzz/make_set_values.py`` to rewrite the corpus (deterministic); ``--out DIR``
writes elsewhere.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Given before every case's own ``--set`` values: a small synthetic corpus and a small model.
BASE = ["dataset.train_dialogues=6", "dataset.dev_dialogues=2", "dataset.test_dialogues=2", "model.hidden_size=32"]

BIG_DIGITS = "9" * 5000  # past Python's 4300-digit limit for int(str)
DEEP_LIST = "[" * 3000 + "]" * 3000  # past the JSON parser's recursion limit
LONG = "x" * 5000  # longer than any message may be


def case(name: str, why: str, sets: list[str], *, fragment: str | None = None, recipe: str = "sdt",
         command: str = "validate", flags: list[str] | None = None, expect: str = "refuse") -> dict:
    return {"name": name, "why": why, "command": command, "recipe": recipe, "sets": sets, "flags": flags or [],
            "expect": expect, "fragment": fragment}


def cases() -> list[dict]:
    out = [
        # -- valid controls --------------------------------------------------------------------------
        case("ok-small-sdt", "the base options alone", [], expect="ok"),
        case("ok-largest-seed", "2**32 - 1 is a seed", ["training.seed=4294967295"], expect="ok"),
        case("ok-modalities-repeated", "a modality named twice is the same subset",
             ["modalities=text,text,audio"], expect="ok"),
        case("ok-run-bigru", "one epoch trains", [], recipe="bigru-concat", command="run", expect="ok"),

        # -- the hidden size -------------------------------------------------------------------------
        case("hidden-1e8", "the fuzz campaign's 40 TB model", ["model.hidden_size=100000000"],
             fragment="model.hidden_size"),
        case("hidden-0", "zero", ["model.hidden_size=0"], fragment="model.hidden_size"),
        case("hidden-negative", "negative", ["model.hidden_size=-16"], fragment="model.hidden_size"),
        case("hidden-65537", "one above the bound", ["model.hidden_size=65537"], fragment="model.hidden_size"),
        case("hidden-inf", "1e400 reads as infinity", ["model.hidden_size=1e400"], fragment="model.hidden_size"),
        case("hidden-fraction", "not an integer", ["model.hidden_size=16.5"], fragment="model.hidden_size"),
        case("hidden-word", "a word", ["model.hidden_size=sixteen"], fragment="model.hidden_size"),
        case("hidden-list", "a list", ["model.hidden_size=[16]"], fragment="model.hidden_size"),
        case("hidden-dict", "an object", ['model.hidden_size={"a": 1}'], fragment="model.hidden_size"),
        case("hidden-null", "null", ["model.hidden_size=null"], fragment="model.hidden_size"),
        case("hidden-5000-digits", "an integer Python will not parse from text", [f"model.hidden_size={BIG_DIGITS}"],
             fragment="model.hidden_size"),
        case("hidden-deep-json", "JSON nested past the parser's recursion limit", [f"model.hidden_size={DEEP_LIST}"],
             fragment="model.hidden_size"),
        case("hidden-65536", "in range, but 313 billion parameters", ["model.hidden_size=65536"],
             fragment="too large to train here"),
        case("hidden-16384-summer", "SUMMER at H = 16384 does not fit", ["model.hidden_size=16384"], recipe="summer",
             fragment="too large to train here"),

        # -- other model settings --------------------------------------------------------------------
        case("head-dropout-1", "dropout of 1 drops everything", ["model.head_dropout=1"], fragment="head_dropout"),
        case("head-dropout-nan", "NaN", ["model.head_dropout=NaN"], fragment="head_dropout"),
        case("prediction-unknown", "not a choice", ["model.prediction=median"], fragment="model.prediction"),
        case("modality-heads-maybe", "not a boolean", ["model.modality_heads=maybe"], fragment="modality_heads"),

        # -- training settings -----------------------------------------------------------------------
        case("lr-1e308", "the campaign's learning rate (trained to NaN weights, exit 0)", ["training.lr=1e308"],
             fragment="training.lr"),
        case("lr-zero", "zero", ["training.lr=0"], fragment="training.lr"),
        case("lr-negative", "negative", ["training.lr=-0.001"], fragment="training.lr"),
        case("lr-nan", "NaN", ["training.lr=NaN"], fragment="training.lr"),
        case("lr-inf", "infinity", ["training.lr=Infinity"], fragment="training.lr"),
        case("lr-minus-inf", "minus infinity", ["training.lr=-Infinity"], fragment="training.lr"),
        case("lr-11", "above the bound of 10", ["training.lr=11"], fragment="training.lr"),
        case("lr-word", "a word", ["training.lr=fast"], fragment="training.lr"),
        case("weight-decay-inf", "infinity", ["training.weight_decay=Infinity"], fragment="weight_decay"),
        case("weight-decay-negative", "negative", ["training.weight_decay=-1"], fragment="weight_decay"),
        case("epochs-zero", "zero", ["training.epochs=0"], fragment="training.epochs"),
        case("epochs-1e9", "a billion epochs", ["training.epochs=1e9"], fragment="training.epochs"),
        case("epochs-fraction", "2.5 epochs", ["training.epochs=2.5"], fragment="training.epochs"),
        case("batch-zero", "zero", ["training.batch_size=0"], fragment="batch_size"),
        case("batch-1e12", "a trillion dialogues per batch", ["training.batch_size=1000000000000"],
             fragment="batch_size"),
        case("seed-negative", "negative", ["training.seed=-1"], fragment="training.seed"),
        case("seed-2-32", "one past torch's and numpy's 32-bit seed range", ["training.seed=4294967296"],
             fragment="training.seed"),
        case("seed-1e20", "far past it", ["training.seed=1e20"], fragment="training.seed"),
        case("seed-range-overflows", "seed + seeds - 1 past 2**32 - 1", ["training.seed=4294967295", "seeds=2"],
             fragment="largest seed"),
        case("seeds-zero", "no seeds", ["seeds=0"], fragment="seeds"),
        case("seeds-huge", "a million seeds", ["seeds=1000000"], fragment="seeds"),
        case("class-weights-nan", "a NaN weight", ["training.class_weights=[1,NaN,1,1,1,1,1]"],
             fragment="class_weights"),
        case("class-weights-negative", "a negative weight", ["training.class_weights=[1,-1,1,1,1,1,1]"],
             fragment="class_weights"),
        case("class-weights-word", "not a choice", ["training.class_weights=balanced"], fragment="class_weights"),
        case("class-weights-short", "two weights for seven classes", ["training.class_weights=[1,2]"],
             command="run", recipe="bigru-concat", fragment="class_weights has 2 values"),
        case("precision-fp16", "not a choice", ["training.precision=fp16"], fragment="precision"),
        case("selection-loss", "not a metric", ["training.selection_metric=loss"], fragment="selection_metric"),
        case("protocol-dirty", "not a protocol", ["protocol=dirty"], fragment="protocol"),
        case("device-tpu", "not a device", ["device=tpu"], fragment="device"),

        # -- unknown keys and malformed arguments ----------------------------------------------------
        case("typo-hiden-size", "a typo in a model setting", ["model.hiden_size=16"], fragment="hiden_size"),
        case("typo-learning-rate", "a name from another framework", ["training.learning_rate=0.1"],
             fragment="learning_rate"),
        case("unknown-top-level", "no such setting", ["optimizer=sgd"], fragment="unknown setting 'optimizer'"),
        case("typo-component-option", "a typo in a component option", ["mixer.head=4"], fragment="'head' is not"),
        case("unknown-component-option", "no such option", ["fuser.nonexistent=1"], fragment="nonexistent"),
        case("no-equals", "no '=' at all", ["model.hidden_size"], fragment="not of the form key=value"),
        case("empty-key", "an empty key", ["=16"], fragment="empty key"),
        case("only-dots", "a key of dots", ["...=1"], fragment="empty key"),
        case("value-as-group", "a value used as a group of settings", ["model.hidden_size.x=1"],
             fragment="is a value, not a group"),
        case("section-replaced", "a whole section replaced by a number", ["training=5"], fragment="training"),
        case("model-as-list", "a section as a list", ["model=[]"], fragment="model"),
        case("component-as-number", "a component chosen by a number", ["mixer=5"], fragment="chosen by name"),
        case("component-as-object", "a component given as JSON", ['mixer={"name": "bigru"}'],
             fragment="chosen by name"),
        case("component-empty", "an empty component name", ["mixer="], fragment="unknown mixer ''"),
        case("component-unknown", "no such mixer", ["mixer=transfomer"], fragment="Did you mean 'transformer'"),
        case("component-huge-name", "a 5,000-character component name", [f"mixer={LONG}"],
             fragment="unknown mixer"),
        case("huge-key", "a 5,000-character setting name", [f"{LONG}=1"], fragment="unknown setting"),
        case("huge-string-value", "a 5,000-character value", [f"model.prediction={LONG}"],
             fragment="model.prediction"),
        case("nested-garbage", "an option nested three levels deep", ["mixer.heads.deep.er=1"], fragment="heads"),
        case("component-config-key", "the config key itself as an option", ["mixer.config.heads=4"],
             fragment="'config' is not"),
        case("control-characters", "NUL and a right-to-left override in a name", ["mixer=\u0000\u202eevil"],
             fragment="unknown mixer"),

        # -- components refusing their options -------------------------------------------------------
        case("heads-7-of-32", "heads that do not divide the hidden size", ["mixer.heads=7"],
             fragment="mixer 'transformer'"),
        case("fuser-heads-5-of-32", "the cross-modal fuser's heads", ["fuser.heads=5"],
             fragment="fuser 'cross-modal-transformer'"),
        case("hcmf-heads-3", "HCMF's heads", ["fuser.heads=3"], recipe="summer-small", fragment="fuser 'hcmf'"),
        case("multiattn-heads-6", "MultiEMO's heads", ["fuser.heads=6"], recipe="multiemo",
             fragment="fuser 'multiattn'"),
        case("heads-zero", "no heads", ["mixer.heads=0"], fragment="heads"),
        case("heads-huge", "a million heads", ["mixer.heads=1000000"], fragment="heads"),
        case("experts-negative", "negative SDMoE experts", ["mixer=sdmoe", "mixer.experts=-1"], fragment="experts"),
        case("experts-huge", "a billion experts", ["mixer=sdmoe", "mixer.experts=1e9"], fragment="experts"),
        case("sdmoe-temperature-inf", "an infinite gate temperature", ["mixer=sdmoe", "mixer.temperature=Infinity"],
             fragment="temperature"),
        case("hcmf-layers-huge", "ten thousand HCMF layers", ["fuser.layers=10000"], recipe="summer-small",
             fragment="layers"),
        case("bigru-layers-huge", "a thousand GRU layers", ["mixer=bigru", "mixer.layers=1000"], fragment="layers"),
        case("dialoguernn-state-huge", "a billion-wide party state", ["fuser.party_size=1000000000"],
             recipe="dialoguernn", fragment="party_size"),
        case("dialoguegcn-window-huge", "a window of a billion utterances", ["fuser.window_past=1000000000"],
             recipe="dialoguegcn", fragment="window_past"),
        case("distiller-temperature-zero", "SDT's distillation temperature of zero", ["distiller.temperature=0"],
             fragment="temperature"),
        case("distiller-weight-nan", "a NaN loss weight", ["distiller.kl_weight=NaN"], fragment="kl_weight"),
        case("ikd-teacher-modality-unknown", "a teacher modality the data does not have",
             ["distiller.teacher.modality=smell"], recipe="summer-small", fragment="distiller 'ikd'"),
        case("ikd-without-text", "IKD's text teacher on an audio+visual run (was KeyError: 'text' mid-training)",
             [], recipe="summer-small", flags=["--modalities", "audio,visual"], fragment="distiller 'ikd'"),
        case("ikd-teacher-recipe-unknown", "a teacher recipe nobody registered",
             ["distiller.teacher.recipe=nonexistent"], recipe="summer-small", command="run",
             fragment="nonexistent"),

        # -- modalities, dataset options, memory ------------------------------------------------------
        case("modalities-unknown", "a modality the dataset lacks", ["modalities=smell"], fragment="smell"),
        case("modalities-empty", "an empty list", ["modalities=[]"], fragment="modalities"),
        case("modalities-numbers", "numbers", ["modalities=[1, 2]"], fragment="modalities"),
        case("modalities-huge-name", "a 5,000-character modality", [f"modalities={LONG}"], fragment="modalit"),
        case("dataset-dialogues-1e8", "a hundred million synthetic dialogues", ["dataset.train_dialogues=100000000"],
             fragment="train_dialogues"),
        case("dataset-shape-unknown", "a shape that does not exist", ["dataset.shape=imdb"], fragment="shape"),
        case("dataset-noise-inf", "infinite noise", ["dataset.noise=Infinity"], fragment="noise"),
        case("max-memory-1M", "a limit the model cannot fit", [], flags=["--max-memory", "1M"],
             fragment="--max-memory"),
        case("max-memory-garbage", "not a size", [], flags=["--max-memory", "lots"], fragment="not a memory size"),

        # -- through run and compare: refused before training, no output folder ----------------------
        case("run-lr-1e308", "the campaign's learning rate, through run", ["training.lr=1e308"], command="run",
             recipe="bigru-concat", fragment="training.lr"),
        case("run-hidden-1e8", "the campaign's hidden size, through run", ["model.hidden_size=100000000"],
             command="run", recipe="bigru-concat", fragment="model.hidden_size"),
        case("run-hidden-65536", "too big to train, through run", ["model.hidden_size=65536"], command="run",
             fragment="too large to train here"),
        case("run-heads-7", "a refusing component, through run", ["mixer.heads=7"], command="run",
             fragment="mixer 'transformer'"),
        case("run-ikd-without-text", "IKD without its teacher's modality, through run", [], command="run",
             recipe="summer-small", flags=["--modalities", "audio,visual"], fragment="distiller 'ikd'"),
        case("compare-hidden-65536", "compare checks every recipe's training memory before the first trains",
             ["model.hidden_size=65536"], command="compare", fragment="too large to train here"),
    ]
    names = [c["name"] for c in out]
    assert len(names) == len(set(names)), "case names must be unique"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "set_values", help="folder to write cases.json into")
    target = parser.parse_args().out
    target.mkdir(parents=True, exist_ok=True)
    (target / "cases.json").write_text(json.dumps({"base": BASE, "cases": cases()}, indent=1, ensure_ascii=True)
                                       + "\n")


if __name__ == "__main__":
    main()
