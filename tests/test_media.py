"""Audio and visual features from media files: ffmpeg decoding, the built-in encoders, ``data prepare
--media-dir`` on the MELD.Raw layout, bad files and ``--skip-missing``, the cache, and a run on the result.

The media are generated here, once per session: speech from espeak-ng (the first words of each MELD
utterance) muxed by ffmpeg with a test-pattern video, named ``dia{D}_utt{U}.mp4`` for the first
dialogues of the real CSVs (``limit_dialogues``). This tests the plumbing only; nothing here is a
MELD result. The tools come from Debian (``apt-get install ffmpeg espeak-ng``) and the audio extra
(``pip install -e ".[audio]"``); ``.ci/run`` installs them. Without them these tests skip — except
under CI (``CI`` set), where a missing tool is a failure.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from test_meld_raw import MELD_DIR, HashEncoder, hash_encoder, leftovers, run_cli  # noqa: F401 (a fixture)

from merc_bench.errors import UserError
from merc_bench.feature_store import read_corpus, read_manifest
from merc_bench import media_features
from merc_bench.media import MediaError, decode_audio, decode_frames, find_decoder
from merc_bench.media_features import MediaOptions
from merc_bench.plugins import get_registry
from merc_bench.prepare import prepare_command
from merc_bench.testing import check_media_encoder
from merc_bench_datasets.meld_annotations import SPLIT_FILES, read_split
from merc_bench_datasets.meld_media import SPLIT_FOLDERS

DIALOGUES = 1  # per split: 19 utterances of the real CSVs (train 14, dev 2, test 3)


def _require(ready: bool, message: str) -> None:
    if ready:
        return
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def tools() -> None:
    missing = [tool for tool in ("ffmpeg", "espeak-ng") if shutil.which(tool) is None]
    _require(not missing, f"{' and '.join(missing)} not on PATH: `apt-get install ffmpeg espeak-ng` (.ci/run does)")


@pytest.fixture(scope="session")
def audio_extra(tools) -> None:
    _require(importlib.util.find_spec("opensmile") is not None,
             "the audio extra is not installed: `pip install -e \".[audio]\"` (.ci/run does)")


def make_clip(path: Path, words: str, *, pattern: str = "testsrc", seconds: float | None = None) -> None:
    """Speech of ``words`` (espeak-ng) over a ``pattern`` video of the same length (ffmpeg), as mp4."""
    speech = path.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-s", "220", "-w", str(speech), words], check=True, capture_output=True)
    video = ["-f", "lavfi", "-i", f"{pattern}=size=96x64:rate=10"]
    length = ["-af", "apad", "-t", str(seconds)] if seconds else ["-shortest"]  # apad: silence up to the length
    subprocess.run(["ffmpeg", "-v", "error", "-y", *video, "-i", str(speech), *length, "-c:v", "mpeg4",
                    "-c:a", "aac", str(path)], check=True, capture_output=True, timeout=60)
    speech.unlink()


@pytest.fixture(scope="session")
def meld_raw(tools, tmp_path_factory) -> Path:
    """A MELD.Raw folder (train/train_splits/... layout) with a clip per utterance of the first dialogues."""
    root = tmp_path_factory.mktemp("MELD.Raw")
    jobs = []
    for split, name in SPLIT_FILES.items():
        folder = root / split / SPLIT_FOLDERS[split]
        folder.mkdir(parents=True)
        for dialogue in read_split(MELD_DIR / name, split)[0][:DIALOGUES]:
            for utterance, text in zip(dialogue.utterance_ids, dialogue.texts):
                words = " ".join(text.split()[:5]) or "okay"
                jobs.append((folder / f"dia{dialogue.dialogue_id}_utt{utterance}.mp4", words))
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda job: make_clip(*job, pattern="testsrc" if len(job[1]) % 2 else "smptebars"), jobs))
    return root


def _prepare(target: Path, media: MediaOptions, dialogues: int = DIALOGUES):
    output = io.StringIO()
    prepare_command(dataset="meld", target=target, source=MELD_DIR, url=None, text_encoder=HashEncoder.name,
                    console=Console(file=output, width=200), limit_dialogues=dialogues, media=media)
    return read_corpus(target), " ".join(output.getvalue().split())


# -- decoding ---------------------------------------------------------------------------------------

def test_decoder_reads_generated_speech_and_bounds_what_it_decodes(tools, tmp_path, monkeypatch):
    decoder = find_decoder()
    assert decoder.origin == "PATH" and decoder.version.startswith("ffmpeg version")
    clip = tmp_path / "clip.mp4"
    make_clip(clip, "I am so angry with you", seconds=2.0)
    samples = decode_audio(decoder, clip, sample_rate=16000, max_seconds=10)
    assert samples.dtype == np.float32 and 1.8 * 16000 < samples.size <= 2.1 * 16000
    assert np.abs(samples).max() > 0.05  # speech, not silence
    frames = decode_frames(decoder, clip, frame_rate=2, frame_size=(24, 16), max_seconds=10)
    assert frames.dtype == np.uint8 and frames.shape[1:] == (16, 24, 3) and 3 <= len(frames) <= 5
    with pytest.raises(MediaError, match="longer than the limit of 1 s"):
        decode_audio(decoder, clip, sample_rate=16000, max_seconds=1)
    with pytest.raises(MediaError, match="longer than the limit of 1 s"):
        decode_frames(decoder, clip, frame_rate=2, frame_size=(24, 16), max_seconds=1)
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video at all")
    with pytest.raises(MediaError, match="could not decode its audio: .*Invalid data"):
        decode_audio(decoder, junk, sample_rate=16000, max_seconds=10)
    silent = tmp_path / "silent.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=5", "-t", "1",
                    "-c:v", "mpeg4", str(silent)], check=True)
    with pytest.raises(MediaError, match="has no audio stream"):
        decode_audio(decoder, silent, sample_rate=16000, max_seconds=10)
    with pytest.raises(MediaError, match=r"decoding the audio took more than 0.001 s \(killed\)"):
        decode_audio(decoder, clip, sample_rate=16000, max_seconds=10, timeout_s=0.001)
    # A "video" that is a playlist naming another file, or a name that looks like an option or a URL:
    # ffmpeg neither follows the playlist nor reads the name as anything but a local file.
    playlist = tmp_path / "playlist.mp4"
    playlist.write_text("ffconcat version 1.0\nfile 'clip.mp4'\n")  # a plain `ffmpeg -i` decodes clip.mp4 through it
    with pytest.raises(MediaError, match="could not decode"):
        decode_audio(decoder, playlist, sample_rate=16000, max_seconds=10)
    for name in ("-y.mp4", "concat:clip.mp4"):
        shutil.copyfile(clip, tmp_path / name)
        assert decode_audio(decoder, tmp_path / name, sample_rate=16000, max_seconds=10).size == samples.size
    monkeypatch.setenv("MERC_BENCH_FFMPEG", "/bin/true")
    with pytest.raises(UserError, match="not a working ffmpeg"):
        find_decoder()


# -- the encoders -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["audio_encoder", "visual_encoder"])
def test_every_media_encoder_passes_the_contract_kit(kind, request):
    if kind == "audio_encoder":  # the built-in audio encoders need opensmile; the visual one nothing
        request.getfixturevalue("audio_extra")
    entries = list(get_registry().entries(kind))
    assert entries, f"no {kind} registered"
    for entry in entries:
        check_media_encoder(entry)


def test_builtin_audio_dimensions_and_visual_statistics(audio_extra):
    registry = get_registry()
    is10 = registry.get("audio_encoder", "is10").build(registry.get("audio_encoder", "is10").make_config({}), {})
    egemaps = registry.get("audio_encoder", "egemaps").build(registry.get("audio_encoder", "egemaps").make_config({}),
                                                             {})
    assert (is10.dimension, egemaps.dimension) == (1582, 88) and is10.sample_rate == 16000
    assert "opensmile 2." in is10.version
    entry = registry.get("visual_encoder", "frame-stats")
    frames_encoder = entry.build(entry.make_config({"frame_size": 8}), {})
    still = np.full((4, 8, 8, 3), 100, np.uint8)
    moving = np.stack([np.roll(np.eye(8, dtype=np.uint8) * 255, k, axis=1)[..., None].repeat(3, -1)
                       for k in range(4)])
    a, b = frames_encoder.encode([still, moving])
    assert a.shape == (50,) and np.all(a[46:49] == 0)  # a still picture: no motion energy
    assert b[46] == b[48] == 0.25 and b[47] == 0  # a line moving one column per frame: 2 of 8 pixels change
    assert np.isclose(a[:3], 100 / 255).all() and np.isclose(a[49], np.log(5))


def test_missing_audio_extra_says_how_to_install_and_the_licence(monkeypatch):
    import importlib.util as util

    real = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name == "opensmile" else real(name, *a))
    entry = get_registry().get("audio_encoder", "is10")
    with pytest.raises(UserError, match=r"pip install -e \"\.\[audio\]\".*research and educational use only"):
        entry.build(entry.make_config({}), {})


# -- data prepare --media-dir -----------------------------------------------------------------------

@pytest.mark.usefixtures("hash_encoder")
def test_prepare_meld_with_media_then_run_on_all_modalities(meld_raw, audio_extra, tmp_path, capsys):
    target = tmp_path / "meld"
    corpus, out = _prepare(target, MediaOptions(media_dir=meld_raw))
    assert corpus.info.feature_dims == {"text": 8, "audio": 1582, "visual": 50}
    utterances = sum(len(d) for s in ("train", "dev", "test") for d in corpus.split(s))
    assert utterances == 19 and "audio features: 19 computed, 0 reused, 0 skipped (is10, 1582-d)" in out
    audio = np.concatenate([d.features["audio"] for d in corpus.train])
    assert audio.shape == (14, 1582) and np.isfinite(audio).all()
    assert len({row.tobytes() for row in audio}) == 14  # every clip its own speech, its own features
    visual = np.concatenate([d.features["visual"] for d in corpus.train])
    assert visual.shape == (14, 50) and (visual[:, :49] >= 0).all() and (visual[:, :49] <= 1).all()
    frames = np.expm1(visual[:, 49]).round()  # clips of 0.5-2 s sampled at 2 frames per second
    assert frames.min() >= 1 and frames.max() <= 6 and len(set(frames)) > 1
    assert len({tuple(row) for row in visual[:, :3].round(2)}) > 1  # two test patterns, different mean colours
    media = read_manifest(target)["provenance"]["media"]
    assert media["layout"] == {s: f"{s}/{SPLIT_FOLDERS[s]}" for s in ("train", "dev", "test")}
    assert media["decoder"]["origin"] == "PATH" and media["decoder"]["version"].startswith("ffmpeg version")
    assert media["audio_encoder"]["name"] == "is10" and media["audio_encoder"]["dimension"] == 1582
    assert media["visual_encoder"]["name"] == "frame-stats" and media["skipped"] == []
    assert "--modalities text,audio,visual" in out

    # Again into the same folder: nothing is decoded, the same corpus comes out.
    fingerprint = corpus.fingerprint()
    again, out = _prepare(target, MediaOptions(media_dir=meld_raw))
    assert "audio features: 0 computed, 19 reused" in out and again.fingerprint() == fingerprint

    run = tmp_path / "run"
    code, stdout, err = run_cli(["run", "sdt", "--dataset", "meld", "--data-dir", str(target), "--epochs", "1",
                                 "--no-track", "--out", str(run), "--set", "model.hidden_size=16",
                                 "--set", "mixer.heads=2", "--set", "fuser.heads=2"], capsys)
    assert code == 0, err
    result = json.loads((run / "results.json").read_text())
    assert result["modalities"] == ["text", "audio", "visual"]
    assert result["dataset_fingerprint"] == fingerprint


@pytest.mark.usefixtures("hash_encoder")
def test_egemaps_without_visual(meld_raw, audio_extra, tmp_path):
    corpus, out = _prepare(tmp_path / "meld", MediaOptions(media_dir=meld_raw, audio_encoder="egemaps",
                                                           visual_encoder=None))
    assert corpus.info.feature_dims == {"text": 8, "audio": 88}
    assert np.concatenate([d.features["audio"] for d in corpus.train]).shape == (14, 88)


def _damaged_copy(meld_raw: Path, root: Path) -> dict[str, str]:
    """A copy of the media folder (split folders side by side) with five bad files; name -> expected reason."""
    for split, folder in SPLIT_FOLDERS.items():
        shutil.copytree(meld_raw / split / folder, root / folder)
    train = root / "train_splits"
    (train / "dia0_utt1.mp4").unlink()
    (train / "dia0_utt2.mp4").write_bytes(b"")
    (train / "dia0_utt3.mp4").write_text("this is text, not a video")
    good = (train / "dia0_utt4.mp4").read_bytes()
    (train / "dia0_utt4.mp4").write_bytes(good[: len(good) // 3])
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=5", "-t", "1",
                    "-c:v", "mpeg4", str(train / "dia0_utt5.mp4")], check=True)
    return {"dia0_utt1.mp4": "missing", "dia0_utt2.mp4": "empty (0 bytes)", "dia0_utt3.mp4": "ffmpeg could not decode its audio",
            "dia0_utt4.mp4": "ffmpeg could not decode its audio", "dia0_utt5.mp4": "has no audio stream"}


@pytest.mark.usefixtures("hash_encoder")
def test_bad_media_are_all_listed_or_skipped_and_recorded(meld_raw, audio_extra, tmp_path, capsys, monkeypatch):
    damaged = tmp_path / "damaged"
    expected = _damaged_copy(meld_raw, damaged)
    work = tmp_path / "work"
    work.mkdir()
    target = work / "meld"
    with pytest.raises(UserError) as error:
        _prepare(target, MediaOptions(media_dir=damaged))
    message = str(error.value)
    assert message.startswith("5 of 19 utterances' media files cannot be used")
    for name, reason in expected.items():
        assert f"train_splits/{name}: {reason}" in message
    assert "--skip-missing" in message and not target.exists() and leftovers(work) == []
    with monkeypatch.context() as patch, pytest.raises(
            UserError, match=r"19 of 19 .*dia0_utt0.mp4: [0-9,]+ bytes, more than the 1,000 a media file"):
        patch.setattr(media_features, "MAX_MEDIA_FILE_BYTES", 1000)  # every clip is now "huge"
        _prepare(target, MediaOptions(media_dir=damaged))

    corpus, out = _prepare(target, MediaOptions(media_dir=damaged, skip_missing=True))
    skipped = read_manifest(target)["provenance"]["media"]["skipped"]
    lost = {(entry["file"], modality): entry for entry in skipped for modality in entry["modalities"]}
    assert len(lost) == 9  # four files lack both modalities, one only audio
    assert lost[("train_splits/dia0_utt1.mp4", "visual")]["reason"] == "missing"
    assert lost[("train_splits/dia0_utt1.mp4", "audio")]["modalities"] == ["audio", "visual"]
    assert ("train_splits/dia0_utt5.mp4", "visual") not in lost
    entry = lost[("train_splits/dia0_utt5.mp4", "audio")]
    assert (entry["split"], entry["dialogue"], entry["utterance"]) == ("train", "0", 5)
    assert "warning: --skip-missing gave 5 utterances zero features" in out
    dialogue = corpus.train[0]
    assert not dialogue.features["audio"][1:6].any() and dialogue.features["audio"][[0, 6]].any(axis=1).all()
    assert dialogue.features["visual"][5].any() and not dialogue.features["visual"][1:5].any()
    assert "audio features: 0 computed, 14 reused, 5 skipped" in out  # the failed run cached the good files

    # Without --media-dir's dataset layout in PATH, or with its options alone: exit 2, nothing written.
    code, _, err = run_cli(["data", "prepare", "meld", "--to", str(tmp_path / "x"), "--from", str(MELD_DIR),
                            "--text-encoder", HashEncoder.name, "--media-dir", str(work)], capsys)
    assert code == 2 and "holds none of MELD's split folders" in " ".join(err.split())
    code, _, err = run_cli(["data", "prepare", "meld", "--to", str(tmp_path / "x"), "--skip-missing"], capsys)
    assert code == 2 and "only apply with --media-dir" in err
    assert not (tmp_path / "x").exists() and leftovers(tmp_path) == []


@pytest.mark.usefixtures("hash_encoder")
def test_too_long_clips_are_refused_with_the_limit_named(meld_raw, audio_extra, tmp_path):
    with pytest.raises(UserError, match=r"longer than the limit of 1 s .*raise --max-media-seconds"):
        _prepare(tmp_path / "meld", MediaOptions(media_dir=meld_raw, max_seconds=1, visual_encoder=None))
    with pytest.raises(UserError, match=r"--max-media-seconds 0 is outside"):
        _prepare(tmp_path / "meld", MediaOptions(media_dir=meld_raw, max_seconds=0))


# -- conversation-csv: a media column ---------------------------------------------------------------

def _csv_corpus(root: Path, meld_raw: Path, cells: dict[str, list[str]]) -> dict[str, str]:
    """One CSV per split (two dialogues of two utterances), the media cells as given, clips in root/clips."""
    (root / "clips").mkdir(parents=True)
    for index, clip in enumerate(sorted((meld_raw / "train" / "train_splits").glob("*.mp4"))[:8]):
        shutil.copyfile(clip, root / "clips" / f"c{index}.mp4")
    paths = {}
    for split, media in cells.items():
        lines = ["dialogue_id,utterance_id,speaker,label,clip"]
        lines += [f"{split}-{i // 2},{i % 2},{'AB'[i % 2]},{'joy' if i % 3 else 'anger'},{cell}"
                  for i, cell in enumerate(media)]
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
        paths[split] = str(root / f"{split}.csv")
    return paths


def test_conversation_csv_media_column(meld_raw, audio_extra, tmp_path):
    from merc_bench.pipeline import load_corpus

    good = {"train": ["clips/c0.mp4", "clips/c1.mp4", "clips/c2.mp4", "clips/c3.mp4"],
            "dev": ["clips/c4.mp4", "clips/c5.mp4", "clips/c6.mp4", "clips/c7.mp4"],
            "test": ["clips/c0.mp4", "clips/c5.mp4", "clips/c6.mp4", "./clips/c7.mp4"]}
    paths = _csv_corpus(tmp_path / "ok", meld_raw, good)
    options = {**paths, "text_column": None, "media_column": "clip", "audio_encoder": "egemaps"}
    corpus = load_corpus(get_registry(), {"name": "conversation-csv", "config": options}, None)
    assert corpus.info.feature_dims == {"audio": 88, "visual": 50}
    assert corpus.provenance["media"]["features"]["audio"] == {"computed": 8, "reused": 4, "skipped": 0}
    # The same clip gives the same vector wherever it is used (train c0 and test c0).
    np.testing.assert_array_equal(corpus.train[0].features["audio"][0], corpus.test[0].features["audio"][0])

    hostile = {**good, "train": ["clips/c0.mp4", "../ok/clips/c1.mp4", "/etc/hostname", ""],
               "dev": ["clips/c4.mp4", "clips/nothing.mp4", "clips/c6.mp4", "clips"]}
    paths = _csv_corpus(tmp_path / "bad", meld_raw, hostile)
    options = {**paths, "text_column": None, "media_column": "clip", "visual_encoder": None}
    with pytest.raises(UserError) as error:
        load_corpus(get_registry(), {"name": "conversation-csv", "config": options}, None)
    message = str(error.value)
    assert message.startswith("5 of 12 utterances' media files cannot be used")
    for expected in ("train.csv line 3: '../ok/clips/c1.mp4': has a '..' part",
                     "train.csv line 4: '/etc/hostname': an absolute path", "train.csv line 5: '': the media path "
                     "cell is empty", "dev.csv line 3: 'clips/nothing.mp4': missing",
                     "dev.csv line 5: 'clips': not a regular file", "dataset.media_policy=skip"):
        assert expected in message
    corpus = load_corpus(get_registry(), {"name": "conversation-csv",
                                          "config": {**options, "media_policy": "skip"}}, None)
    skipped = corpus.provenance["media"]["skipped"]
    assert [(entry["split"], entry["dialogue"], entry["utterance"]) for entry in skipped][:3] == [
        ("train", "train-0", 1), ("train", "train-1", 0), ("train", "train-1", 1)]
    assert not corpus.train[1].features["audio"].any() and corpus.train[0].features["audio"][0].any()


@pytest.mark.usefixtures("hash_encoder")
def test_data_prepare_csv_carries_the_media_column(meld_raw, audio_extra, tmp_path):
    cells = {split: [f"clips/c{i}.mp4" for i in range(4)] for split in ("train", "dev", "test")}
    paths = _csv_corpus(tmp_path / "corpus", meld_raw, cells)
    for path in paths.values():  # a text column for the prepare to embed
        lines = Path(path).read_text().splitlines()
        Path(path).write_text("\n".join([lines[0] + ",text"] + [f"{line},words {i}" for i, line in
                                                                enumerate(lines[1:])]) + "\n")
    config = tmp_path / "corpus" / "corpus.toml"
    config.write_text('train = "train.csv"\ndev = "dev.csv"\ntest = "test.csv"\nmedia_column = "clip"\n'
                      'audio_encoder = "egemaps"\n')
    prepare_command(dataset="csv", target=tmp_path / "prepared", source=None, url=None, text_encoder=HashEncoder.name,
                    console=Console(file=io.StringIO()), dataset_config=config)
    corpus = read_corpus(tmp_path / "prepared")
    assert corpus.info.feature_dims == {"text": 8, "audio": 88, "visual": 50}
    media = read_manifest(tmp_path / "prepared")["provenance"]["media"]
    assert media["features"]["audio"] == {"computed": 4, "reused": 8, "skipped": 0}
    assert corpus.train[0].features["audio"].any(axis=1).all()
