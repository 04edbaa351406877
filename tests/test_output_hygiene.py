"""What a run leaves on disk: the whole output folder or nothing, files with the user's umask, and a
diverged recipe recorded as failed by ``compare`` instead of producing numbers."""

import os
import stat

import pytest
import torch

from merc_bench.cli import main
from merc_bench.trainer import Trainer

TINY = ["--set", "dataset.train_dialogues=6", "--set", "dataset.dev_dialogues=3", "--set", "dataset.test_dialogues=4",
        "--set", "model.hidden_size=8", "--epochs", "1", "--no-track"]


def _exit_code(argv):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    return stop.value.code


@pytest.fixture
def diverging(monkeypatch):
    """Make the named recipes' training loss NaN at every step."""
    recipes = set()
    original = Trainer.loss

    def loss(self, model, distiller, batch):
        total, terms, output = original(self, model, distiller, batch)
        if self.config.recipe in recipes:
            total = total * float("nan")
        return total, terms, output

    monkeypatch.setattr(Trainer, "loss", loss)
    return recipes


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_diverged_run_leaves_no_output_folder(tmp_path, diverging, capsys):
    diverging.add("bigru-concat")
    out = tmp_path / "runs" / "deep" / "r"
    assert _exit_code(["run", "bigru-concat", "--out", str(out), *TINY]) == 2
    assert "training diverged in seed 0, epoch 1, step 1" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "runs").exists()  # neither the folder nor the parents made for it


def test_results_are_written_whole_with_the_users_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        assert _exit_code(["run", "bigru-concat", "--out", str(tmp_path / "r"), *TINY]) == 0
    finally:
        os.umask(previous)
    out = tmp_path / "r"
    names = {p.name for p in out.iterdir()}
    assert {"results.json", "per_class.csv", "confusion_test.png", "config.json", "predictions.npz",
            "checkpoint-seed0.pt"} <= names
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path.name
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert _leftovers(tmp_path) == []
    assert torch.load(out / "checkpoint-seed0.pt", weights_only=True)  # a complete state dict


def test_rerun_into_an_existing_folder_replaces_its_files(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _exit_code(["run", "bigru-concat", "--out", str(out), *TINY]) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "results.json").is_file()
    assert _leftovers(tmp_path) == []


def test_compare_records_a_diverged_recipe_as_failed_and_tables_the_rest(tmp_path, diverging, capsys):
    diverging.add("early-fusion")
    out = tmp_path / "cmp"
    assert _exit_code(["compare", "bigru-concat", "early-fusion", "--seeds", "1", "--out", str(out), *TINY]) == 2
    captured = capsys.readouterr()
    error = " ".join(captured.err.split())
    assert "1 of 2 recipes failed and are left out of the table" in error and "early-fusion: training diverged" in error
    markdown = (out / "comparison.md").read_text()
    assert "| bigru-concat |" in markdown and "| early-fusion |" not in markdown
    assert "Not in the table, because training failed: early-fusion" in markdown
    assert [p.name for p in out.iterdir() if p.is_dir()] == ["01-bigru-concat"]  # no folder for the failed recipe


def test_compare_whose_reference_diverged_writes_nothing(tmp_path, diverging, capsys):
    diverging.add("bigru-concat")
    out = tmp_path / "cmp"
    assert _exit_code(["compare", "bigru-concat", "early-fusion", "--seeds", "1", "--out", str(out), *TINY]) == 2
    assert "the comparison has no table: the reference failed" in " ".join(capsys.readouterr().err.split())
    assert not out.exists() and _leftovers(tmp_path) == []


def test_compare_checks_every_recipe_before_training_any(tmp_path, capsys, monkeypatch):
    trained = []
    original = Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self, *a, **k: trained.append(1) or original(self, *a, **k))
    out = tmp_path / "cmp"
    argv = ["compare", "bigru-concat", "sdt", "--seeds", "1", "--out", str(out), *TINY]
    assert _exit_code([*argv, "--set", "mixer.heads=3"]) == 2  # bigru-concat's mixer has no heads option
    assert _exit_code([*argv, "--max-memory", "1M"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "heads" in err and "too large to train here" in err
    assert trained == [] and not out.exists()
