"""The command line: runs that write results, and user mistakes that exit 2 without a traceback."""

import json
import os
import subprocess
import sys

import pytest

from merc_bench.cli import main

TINY = [
    "--set", "dataset.train_dialogues=12", "--set", "dataset.dev_dialogues=4", "--set", "dataset.test_dialogues=6",
    "--set", "model.hidden_size=32", "--set", "mixer.heads=4", "--set", "fuser.heads=4",
]


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


def test_run_writes_results_and_table(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(["run", "sdt", "--epochs", "2", "--no-track", "--out", str(out), *TINY], capsys)
    assert code == 0
    assert "w-avg" in stdout and "macro-F1" in stdout
    result = json.loads((out / "results.json").read_text())
    assert result["recipe"] == "sdt" and result["dataset"] == "synthetic" and result["protocol"] == "clean"
    assert result["seeds"] == [0]
    for split in ("dev", "test"):
        for metric in ("accuracy", "weighted_f1", "macro_f1"):
            assert 0.0 <= result[split][metric]["mean"] <= 1.0
            assert len(result[split][metric]["per_seed"]) == 1
        assert set(result[split]["per_class"]) == set(result["classes"])
        assert set(result[split]["per_class"]["neutral"]) >= {"accuracy", "f1"}
    assert (out / "per_class.csv").read_text().startswith("split,class,support")
    assert (out / "confusion_test.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "checkpoint-seed0.pt").exists()


def test_paper_protocol_two_seeds(tmp_path, capsys):
    out = tmp_path / "paper"
    code, stdout, _ = run_cli(
        ["run", "sdt", "--protocol", "paper", "--seeds", "2", "--epochs", "2", "--no-track", "--out", str(out), *TINY],
        capsys,
    )
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    assert result["protocol"] == "paper" and result["seeds"] == [0, 1]
    assert len(result["test"]["weighted_f1"]["per_seed"]) == 2
    assert "paper protocol" in result["notes"][0]
    assert "dev (trained on)" in stdout
    # Under the paper protocol the selected epoch is the first one reaching the best *test* score.
    for run in result["runs"]:
        scores = [row["test_weighted_f1"] for row in run["history"]]
        assert run["selected_epoch"] == scores.index(max(scores)) + 1


def test_validate_prints_parameter_counts(capsys):
    code, stdout, _ = run_cli(["validate", "sdt", "--dataset", "synthetic", "--set", "dataset.shape=meld"], capsys)
    assert code == 0
    assert "parameters: 78,367,772 (trainable 68,930,588)" in stdout


def test_list_and_plugins(capsys):
    code, stdout, _ = run_cli(["list", "recipe"], capsys)
    assert code == 0 and "sdt" in stdout and "bigru-concat" in stdout
    code, stdout, _ = run_cli(["plugins"], capsys)
    assert code == 0 and "merc-bench" in stdout and "transformer" in stdout and "speaker-position" in stdout


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["run", "sdtt"], "unknown recipe 'sdtt'. Did you mean 'sdt'?"),
        (["run", "sdt", "--dataset", "synthetik"], "unknown dataset 'synthetik'"),
        (["run", "sdt", "--set", "mixer.haeds=4"], "'haeds' is not an option"),
        (["run", "sdt", "--set", "training.lr=fast"], "'training.lr' = 'fast'"),
        (["run", "sdt", "--set", "trainig.lr=1"], "Did you mean 'training'?"),
        (["run", "sdt", "--set", "mixer=transfomer"], "unknown mixer 'transfomer'"),
        (["run", "sdt", "--modalities", "text,smell"], "modality 'smell' is not in dataset 'synthetic'"),
        (["validate", "sdt", "--set", "dataset.shape=cartoon"], "'shape' = 'cartoon'"),
        (["list", "mixerz"], "unknown kind 'mixerz'"),
        (["run", "sdt", "--protocol", "sneaky"], "--protocol 'sneaky' is not known"),
        (["run", "sdt", "--device", "cuda"], "torch sees no CUDA GPU"),
        (["run", "sdt", "--set", "training.batch_size=0"], "'training.batch_size' = 0"),
    ],
)
def test_user_mistakes_exit_2_with_one_paragraph(argv, fragment, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    code, stdout, stderr = run_cli(argv, capsys)
    assert code == 2
    assert fragment in stderr
    assert "Traceback" not in stderr + stdout


@pytest.mark.parametrize(
    "override, suggestion",
    [
        ("training.lrr=0.1", "'training.lrr' is not an option (did you mean 'training.lr'?)"),
        ("model.hiden_size=8", "'model.hiden_size' is not an option (did you mean 'model.hidden_size'?)"),
        ("mixer.haeds=4", "'haeds' is not an option (did you mean 'heads'?)"),  # a component's own options
        ("training.xyzzy=1", "(the options of training: lr, weight_decay, batch_size,"),  # nothing close: all of them
    ],
)
def test_unknown_option_keys_suggest_the_closest_valid_key(override, suggestion, capsys):
    code, _, stderr = run_cli(["validate", "sdt", "--set", override], capsys)
    assert code == 2
    assert suggestion in " ".join(stderr.split())


def test_unwritable_out_directory(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    code, _, stderr = run_cli(["run", "sdt", "--no-track", "--out", str(blocked / "sub")], capsys)
    assert code == 2
    assert "cannot write results to --out" in stderr and str(blocked / "sub") in stderr


def test_console_script_reports_user_error_without_traceback():
    script = os.path.join(os.path.dirname(sys.executable), "merc-bench")
    done = subprocess.run([script, "run", "nope", "--no-track"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "unknown recipe 'nope'" in done.stderr and "Traceback" not in done.stderr


def test_threads_option_sets_torch_threads(capsys):
    import torch

    before = torch.get_num_threads()
    try:
        code, stdout, _ = run_cli(["--threads", "1", "list", "recipe"], capsys)
        assert code == 0 and "sdt" in stdout
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
