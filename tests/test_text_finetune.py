"""``data prepare meld --finetune``: fine-tuned MiniLM text features on a few real MELD dialogues.

Every prepare here reads the first 3 dialogues per split of the real CSVs (../shared/data/meld,
read-only), trains 1–2 epochs with 24 word pieces per input, so a run takes seconds on a CPU. The
test-split guard also runs on a conversation-csv corpus (``data prepare csv``, tests/test_csv_prepare.py).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import torch
import pytest
from rich.console import Console

import merc_bench
import merc_bench.text_finetune as text_finetune
from merc_bench.cli import main
from merc_bench.errors import UserError
from merc_bench.feature_store import read_corpus, read_manifest
from merc_bench.prepare import build_text_encoder, prepare_command
from merc_bench_datasets.meld_annotations import SPLIT_FILES, read_split

MELD_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "meld"
SMALL = {"epochs": 2, "max_tokens": 24, "batch_size": 8, "context_turns": 2, "layers": 2}
LIMIT = 3


def prepare(target: Path, finetune: dict, console_output: io.StringIO | None = None) -> Path:
    return prepare_command(dataset="meld", target=target, source=MELD_DIR, url=None, text_encoder="minilm",
                           console=Console(file=console_output or io.StringIO(), width=160), limit_dialogues=LIMIT,
                           finetune=finetune)


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


def hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """One fine-tuned prepare shared by the tests that only read it (with the shared cache isolated)."""
    root = tmp_path_factory.mktemp("finetuned")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MERC_BENCH_CACHE", str(root / "shared-cache"))
        output = io.StringIO()
        prepare(root / "meld", SMALL, output)
    return root / "meld", output.getvalue()


def test_manifest_records_the_whole_finetuning(finetuned):
    target, output = finetuned
    provenance = read_manifest(target)["provenance"]
    encoder = provenance["text_encoder"]
    assert encoder["name"] == "minilm" and encoder["finetuned"] is True and encoder["dimension"] == 384
    assert "all-MiniLM-L6-v2" in encoder["version"] and len(encoder["weights_sha256"]) == 64
    report = provenance["finetune"]
    assert report["config"] == text_finetune.FinetuneConfig(**SMALL).model_dump()
    assert report["selected_epoch"] in (1, 2)
    selected = report["history"][report["selected_epoch"] - 1]["dev"]
    assert report["dev"] == selected and 0 <= report["dev"]["weighted_f1"] <= 1 and 0 <= report["dev"]["accuracy"] <= 1
    assert max(h["dev"]["weighted_f1"] for h in report["history"]) == report["dev"]["weighted_f1"]
    assert [h["epoch"] for h in report["history"]] == [1, 2] and report["seconds"] > 0
    # The head's own scores, measured while extracting with the restored selected epoch: on dev they are the
    # selection's scores again (a different model state would give different predictions).
    assert sorted(report["head_scores"]) == ["dev", "test", "train"]
    assert report["head_scores"]["dev"] == pytest.approx(report["dev"])
    assert report["resumed_after_epoch"] == 0 and len(report["cache_key"]) == 16
    assert provenance["embeddings"] == {"train": "computed", "dev": "computed", "test": "computed"}
    assert "fine-tuning epoch 2/2" in output and "fine-tuned" in output
    # The checkpoints are gone once the folder is published.
    assert hidden(target.parent) == []


def test_finetuned_vectors_differ_from_frozen_and_layers_are_kept(finetuned):
    target, _ = finetuned
    corpus = read_corpus(target)
    assert corpus.info.feature_dims == {"text": 384}
    texts = read_split(MELD_DIR / SPLIT_FILES["train"], "train")[0][0].texts
    frozen = build_text_encoder("minilm").encode(list(texts))
    tuned = corpus.train[0].features["text"]
    assert tuned.shape == frozen.shape
    # Not the frozen (unit-norm) sentence embeddings: another scale, and other directions.
    cosine = np.sum(tuned * frozen, axis=1) / np.linalg.norm(tuned, axis=1)
    assert np.all(cosine < 0.99) and not np.allclose(np.linalg.norm(tuned, axis=1), 1.0, atol=1e-3)
    layers = {split: np.load(target / "text_layers" / f"{split}.npz")["layers"] for split in ("train", "dev", "test")}
    for split, stacked in layers.items():
        features = np.concatenate([d.features["text"] for d in corpus.split(split)])
        assert stacked.shape == (len(features), 2, 384)
        np.testing.assert_array_equal(stacked[:, 0], features)  # index 0 is the text feature, the last layer
        assert not np.allclose(stacked[:, 1], stacked[:, 0])


def test_finetuned_folder_trains_with_sdt(finetuned, tmp_path, capsys):
    target, _ = finetuned
    code, _, err = run_cli(["run", "sdt", "--dataset", "meld", "--data-dir", str(target), "--modalities", "text",
                            "--epochs", "1", "--no-track", "--out", str(tmp_path / "run"),
                            "--set", "model.hidden_size=16", "--set", "mixer.heads=2", "--set", "fuser.heads=2"],
                           capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    assert result["dataset_fingerprint"] == read_corpus(target).fingerprint()
    # Predicting on MELD's own CSV of those test dialogues embeds them again with the kept fine-tuned
    # encoder (same context turns) and reproduces the run's test predictions.
    weights = read_manifest(target)["provenance"]["finetune"]["weights"]
    assert hashlib.sha256((target / weights["file"]).read_bytes()).hexdigest() == weights["sha256"]
    test_csv = tmp_path / "test.csv"
    with open(MELD_DIR / SPLIT_FILES["test"], newline="", encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
    first = sorted({int(r["Dialogue_ID"]) for r in rows})[:LIMIT]
    with open(test_csv, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if int(r["Dialogue_ID"]) in first)
    frame = merc_bench.predict(tmp_path / "run", test_csv)
    saved = np.load(tmp_path / "run" / "predictions.npz")
    assert list(frame["prediction"]) == [result["classes"][i] for i in saved["predictions"][0]]


def prepared_meld_or_csv(source: str, target: Path, options: dict) -> set[str]:
    """Prepare MELD's first dialogues or a conversation-csv corpus (``data prepare csv``); return the test texts."""
    if source == "meld":
        prepare(target, options)
        return {t for d in read_split(MELD_DIR / SPLIT_FILES["test"], "test")[0][:LIMIT] for t in d.texts}
    from test_csv_prepare import prepare_csv, text_rows, write_friends

    prepare_csv(write_friends(target.parent / "friends"), target, options)
    return {row["text"] for row in text_rows("test")}


@pytest.mark.parametrize("source", ["meld", "csv"])
def test_training_never_sees_the_test_split(tmp_path, monkeypatch, source):
    seen: dict[str, list] = {"ids": [], "pairs": []}
    real_fit = text_finetune._fit

    def recording_fit(model, train, dev, config, work_dir, progress):
        seen["ids"] += train.utterance_ids + dev.utterance_ids
        forward = model.forward

        def recording_forward(pairs):
            seen["pairs"] += list(pairs)
            return forward(pairs)

        monkeypatch.setattr(model, "forward", recording_forward)
        try:
            return real_fit(model, train, dev, config, work_dir, progress)
        finally:
            monkeypatch.setattr(model, "forward", forward)

    monkeypatch.setattr(text_finetune, "_fit", recording_fit)
    target = tmp_path / source
    test_texts = prepared_meld_or_csv(source, target, {"epochs": 1, "max_tokens": 16, "batch_size": 16})
    corpus = read_corpus(target)
    expected = {f"{d.id}/{i}" for split in ("train", "dev") for d in corpus.split(split) for i in range(len(d))}
    assert set(seen["ids"]) == expected
    test_dialogues = {d.id for d in corpus.test}
    assert not {i.rsplit("/", 1)[0] for i in seen["ids"]} & test_dialogues  # CSV ids hold '/' themselves
    trained_texts = {target_text.split(": ", 1)[1] for _, target_text in seen["pairs"]}
    assert trained_texts and not trained_texts & test_texts
    # And the loop itself refuses any other split.
    raw_test = read_split(MELD_DIR / SPLIT_FILES["test"], "test")[0][:LIMIT]
    examples = text_finetune._examples("test", raw_test, 0)
    with pytest.raises(RuntimeError, match="only train and dev"):
        real_fit(None, examples, examples, text_finetune.FinetuneConfig(), tmp_path, None)


def test_an_interrupted_run_resumes_after_its_last_finished_epoch(tmp_path, monkeypatch):
    options = {"epochs": 2, "max_tokens": 16, "batch_size": 16}
    real_save = text_finetune._atomic_save

    def save_then_die(obj, path):
        real_save(obj, path)
        if path.name == "last.pt" and obj["epoch"] == 1:
            raise KeyboardInterrupt  # as if killed right after epoch 1's checkpoint

    monkeypatch.setattr(text_finetune, "_atomic_save", save_then_die)
    target = tmp_path / "meld"
    with pytest.raises(KeyboardInterrupt):
        prepare(target, options)
    assert not target.exists()
    work = [p for p in tmp_path.iterdir() if ".finetune-" in p.name]
    assert len(work) == 1 and (work[0] / "last.pt").is_file() and (work[0] / "best.pt").is_file()

    monkeypatch.setattr(text_finetune, "_atomic_save", real_save)
    output = io.StringIO()
    prepare(target, options, output)
    report = read_manifest(target)["provenance"]["finetune"]
    assert report["resumed_after_epoch"] == 1 and [h["epoch"] for h in report["history"]] == [1, 2]
    assert "fine-tuning epoch 1/2" not in output.getvalue() and "fine-tuning epoch 2/2" in output.getvalue()
    assert not work[0].exists() and hidden(tmp_path) == []

    # Resuming gives what an uninterrupted run gives (same seed, same per-epoch order).
    straight = tmp_path / "straight"
    monkeypatch.setenv("MERC_BENCH_CACHE", str(tmp_path / "other-cache"))
    prepare(straight, options)
    np.testing.assert_allclose(read_corpus(straight).test[0].features["text"], read_corpus(target).test[0].features["text"],
                               atol=1e-4)
    assert read_manifest(straight)["provenance"]["finetune"]["history"][1]["dev"] == report["history"][1]["dev"]


def test_cache_reuses_only_the_same_configuration(tmp_path, monkeypatch):
    options = {"epochs": 1, "max_tokens": 16, "batch_size": 16}
    target = tmp_path / "meld"
    prepare(target, options)
    first = read_manifest(target)["provenance"]["finetune"]

    def no_training(*args, **kwargs):
        raise AssertionError("fine-tuned again although the same run's vectors are cached")

    monkeypatch.setattr(text_finetune, "finetune_and_extract", no_training)
    prepare(target, options)
    provenance = read_manifest(target)["provenance"]
    assert provenance["embeddings"] == {"train": "reused", "dev": "reused", "test": "reused"}
    assert provenance["finetune"]["selected_epoch"] == first["selected_epoch"]
    # Another seed, or frozen features, must not come from that cache.
    with pytest.raises(AssertionError, match="fine-tuned again"):
        prepare(target, {**options, "seed": 1})
    prepare(target, None)
    provenance = read_manifest(target)["provenance"]
    assert "finetune" not in provenance and provenance["embeddings"]["train"] == "computed"
    assert np.allclose(np.linalg.norm(read_corpus(target).train[0].features["text"], axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize(("arguments", "message"), [
    (["--finetune", "--finetune-epochs", "0"], "--finetune-epochs '0'"),
    (["--finetune", "--finetune-lr", "nan"], "--finetune-lr"),
    (["--finetune", "--finetune-max-tokens", "100000"], "--finetune-max-tokens"),
    (["--finetune", "--device", "tpu"], "--device 'tpu'"),
    (["--finetune-epochs", "2"], "only apply with --finetune"),
    (["--finetune", "--finetune-layers", "9"], "the model has 6 layers"),
])
def test_bad_options_exit_2_and_write_nothing(tmp_path, capsys, arguments, message):
    target = tmp_path / "out"
    code, _, err = run_cli(["data", "prepare", "meld", "--to", str(target), "--from", str(MELD_DIR), *arguments],
                           capsys)
    assert code == 2 and message in err, err
    assert "Traceback" not in err and err.count("\n") <= 3
    assert not target.exists() and hidden(tmp_path) == []


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run_cli(["data", "prepare", "meld", "--to", str(tmp_path / "out"), "--from", str(MELD_DIR),
                            "--finetune", "--device", "cuda"], capsys)
    assert code == 2 and "no usable CUDA device" in err and not (tmp_path / "out").exists()


def test_finetuning_without_the_text_extra_says_how_to_install(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sentence_transformers" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install '\.\[text\]'"):
        prepare(tmp_path / "out", {"epochs": 1})
    assert not (tmp_path / "out").exists()


def test_inputs_are_the_preceding_turns_of_the_same_dialogue_then_the_target():
    dialogue = read_split(MELD_DIR / SPLIT_FILES["train"], "train")[0][0]
    turns = [f"{name}: {text}" for name, text in zip(dialogue.speaker_names, dialogue.texts)]
    assert text_finetune.dialogue_inputs(dialogue, 0) == [("", turn) for turn in turns]
    with_context = text_finetune.dialogue_inputs(dialogue, 2)
    assert with_context[0] == ("", turns[0]) and with_context[1] == (turns[0], turns[1])
    assert with_context[5] == (f"{turns[3]} {turns[4]}", turns[5])  # oldest first, at most 2 turns


def test_truncation_drops_the_oldest_context_and_keeps_the_target(monkeypatch):
    model = build_text_encoder("minilm").trainable(num_classes=7, max_tokens=16, layers=1, device="cpu")
    seen = {}
    backbone_forward = model.backbone.forward

    def record(**encoded):
        seen.update(encoded)
        return backbone_forward(**encoded)

    monkeypatch.setattr(model.backbone, "forward", record)
    context = "Ross: " + " ".join(f"word{i}" for i in range(40)) + " the most recent words"
    logits, pooled = model([(context, "Monica: okay"), ("", "Joey: how you doin")])
    assert logits.shape == (2, 7) and pooled.shape == (2, 1, 384)
    tokens = model.tokenizer.convert_ids_to_tokens(seen["input_ids"][0])
    assert len(tokens) == 16 and tokens[-4:] == ["monica", ":", "okay", "[SEP]"]
    assert "recent" in tokens and "ross" not in tokens  # the oldest context went first
    # Only the target's tokens are pooled: another context changes the vector (attention), not the count.
    model.eval()
    a = model([("Rachel: hi", "Monica: okay")])[1]
    b = model([("Chandler: could this be any longer", "Monica: okay")])[1]
    assert not torch.allclose(a, b)


def test_an_encoder_without_a_trainable_model_is_refused(tmp_path, capsys):
    from pydantic import BaseModel, ConfigDict

    from merc_bench import hookimpl
    from merc_bench.plugins import get_registry, plugin_manager

    class NoOptions(BaseModel):
        model_config = ConfigDict(extra="forbid")

    class FrozenOnly:
        name, version, dimension = "frozen-only", "1", 4

        def __init__(self, config: NoOptions) -> None:
            pass

        def encode(self, texts):
            return np.zeros((len(texts), 4), np.float32)

    class Plugin:
        @hookimpl
        def merc_bench_register(self, registry):
            registry.register("text_encoder", FrozenOnly.name, FrozenOnly, config=NoOptions)

    plugin = Plugin()
    plugin_manager().register(plugin, name="frozen-only")
    get_registry.cache_clear()
    try:
        code, _, err = run_cli(["data", "prepare", "meld", "--to", str(tmp_path / "out"), "--from", str(MELD_DIR),
                                "--text-encoder", "frozen-only", "--finetune"], capsys)
    finally:
        plugin_manager().unregister(plugin)
        get_registry.cache_clear()
    assert code == 2 and "cannot be fine-tuned" in err and "frozen-only" in err
    assert not (tmp_path / "out").exists() and hidden(tmp_path) == []
