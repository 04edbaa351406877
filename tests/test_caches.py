"""The seed and teacher caches are keyed on the code that produced an entry, not only on versions.

A throwaway component package is written to a temporary folder and registered in process; editing
its source or "upgrading" its distribution must make ``compare`` retrain and say why.
"""

import importlib.metadata
import sys
import textwrap

import pytest

from merc_bench import code_fingerprint
from merc_bench.cli import main
from merc_bench import hookimpl
from merc_bench.plugins import get_registry, plugin_manager
from merc_bench.pipeline import prepare
from merc_bench.seed_cache import seed_key
from merc_bench.teachers import teacher_config, teacher_fingerprint

TINY = ["--set", "dataset.train_dialogues=6", "--set", "dataset.dev_dialogues=3", "--set", "dataset.test_dialogues=4",
        "--set", "model.hidden_size=8", "--epochs", "1", "--seeds", "1", "--no-track"]

MIXER_SOURCE = '''
import torch
from pydantic import BaseModel, ConfigDict


class ScaleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scale: float = 1.0


class ScaleMixer(torch.nn.Module):
    """Multiplies the hidden states by a learnt scalar (a component only this test uses)."""

    def __init__(self, config: ScaleConfig, *, hidden_size: int):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(config.scale))

    def forward(self, x, mask):
        return x * self.scale
'''


@pytest.fixture
def scale_mixer(tmp_path, monkeypatch):
    """A mixer package on disk, registered as ``cachetest:scale``; yields the package's source file."""
    package = tmp_path / "pkgs" / "cachetest_mixer"
    package.mkdir(parents=True)
    source = package / "__init__.py"
    source.write_text(textwrap.dedent(MIXER_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    import cachetest_mixer

    class Plugin:
        @hookimpl
        def merc_bench_register(self, registry):
            registry.register("mixer", "scale", cachetest_mixer.ScaleMixer, config=cachetest_mixer.ScaleConfig)

    manager = plugin_manager()
    plugin = Plugin()
    manager.register(plugin, name="cachetest")
    get_registry.cache_clear()
    code_fingerprint.package_digest.cache_clear()
    try:
        yield source
    finally:
        manager.unregister(plugin)
        get_registry.cache_clear()
        code_fingerprint.package_digest.cache_clear()
        sys.modules.pop("cachetest_mixer", None)


def _compare(capsys, out):
    with pytest.raises(SystemExit) as stop:
        main(["compare", "bigru-concat", "--set", "mixer=cachetest:scale", "--out", str(out), *TINY])
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_editing_a_component_or_upgrading_its_plugin_retrains_and_says_why(scale_mixer, tmp_path, capsys, monkeypatch):
    first = _compare(capsys, tmp_path / "1")
    assert "reused from the seed cache" not in first
    assert "reused from the seed cache" in _compare(capsys, tmp_path / "2")

    scale_mixer.write_text(scale_mixer.read_text().replace("return x * self.scale", "return x * self.scale * 1.0"))
    code_fingerprint.package_digest.cache_clear()  # a new process would read the edited file anyway
    edited = _compare(capsys, tmp_path / "3")
    assert "reused from the seed cache" not in edited.replace("not reused from the seed cache", "")
    assert "not reused from the seed cache, code changed since it was cached: cachetest_mixer's source was edited" \
        in " ".join(edited.split())

    monkeypatch.setattr(code_fingerprint, "_distribution_version", lambda name: "9.9")
    upgraded = " ".join(_compare(capsys, tmp_path / "4").split())
    assert "cachetest_mixer upgraded from unversioned to 9.9" in upgraded
    assert f"merc_bench_basic upgraded from {importlib.metadata.version('merc-bench')} to 9.9" in upgraded  # built-in plugins: merc-bench's version


def test_a_seed_reused_from_the_cache_says_its_teacher_was_reused_too(tmp_path, capsys):
    """A cached SUMMER seed brings its teacher's facts along; nothing is trained, so nothing says "trained"."""
    def compare(out):
        with pytest.raises(SystemExit) as stop:
            main(["compare", "summer-small", "--tsne", "none", "--out", str(tmp_path / out), *TINY])
        assert stop.value.code == 0
        return " ".join(capsys.readouterr().out.split())

    first = compare("1")
    assert "teacher (text) trained" in first and "reused from the seed cache" not in first
    second = compare("2")
    assert "reused from the seed cache" in second
    assert "teacher (text) reused" in second and "teacher (text) trained" not in second


def test_seed_key_separates_code_but_not_labels():
    registry = get_registry()
    base = prepare(registry, recipe="bigru-concat", dataset="synthetic", overrides=["dataset.train_dialogues=4"])
    code = code_fingerprint.code_parts([base.config], registry)
    key = seed_key(base.config, base.corpus, 0, "cpu", code)
    assert set(code) == {"merc-bench", "merc_bench_basic"}
    edited = {**code, "merc_bench_basic": {**code["merc_bench_basic"], "source": "0" * 16}}
    other = seed_key(base.config, base.corpus, 0, "cpu", edited)
    assert other.key != key.key and other.identity == key.identity
    assert code_fingerprint.changed_parts(code, edited) == ["merc_bench_basic's source was edited"]


def test_teacher_fingerprint_follows_the_teachers_code(monkeypatch):
    registry = get_registry()
    prepared = prepare(registry, recipe="summer-small", dataset="synthetic", overrides=["dataset.train_dialogues=4"],
                       flags={"device": "cpu"})
    teacher = teacher_config(prepared.config, prepared.corpus.info, registry)
    before = teacher_fingerprint(teacher, prepared.corpus, registry, "clean", 0)
    real = code_fingerprint.package_digest
    monkeypatch.setattr(code_fingerprint, "package_digest",
                        lambda folder, **kw: "edited" if folder.endswith("merc_bench_sdt") else real(folder, **kw))
    assert teacher_fingerprint(teacher, prepared.corpus, registry, "clean", 0) != before


def test_core_digest_ignores_presentation_modules_only(tmp_path):
    core = tmp_path / "core"
    (core / "tuning").mkdir(parents=True)
    (core / "trainer.py").write_text("x = 1\n")
    (core / "cli.py").write_text("y = 1\n")
    (core / "tuning" / "study.py").write_text("z = 1\n")
    digest = code_fingerprint.package_digest(str(core), exclude=code_fingerprint.NOT_TRAINING)
    (core / "cli.py").write_text("y = 2\n")
    (core / "tuning" / "study.py").write_text("z = 2\n")
    code_fingerprint.package_digest.cache_clear()
    assert code_fingerprint.package_digest(str(core), exclude=code_fingerprint.NOT_TRAINING) == digest
    (core / "trainer.py").write_text("x = 2\n")
    code_fingerprint.package_digest.cache_clear()
    assert code_fingerprint.package_digest(str(core), exclude=code_fingerprint.NOT_TRAINING) != digest


def test_tsne_of_a_seed_cached_without_its_representations_trains_it_again(tmp_path, capsys):
    """A seed cached by a compare without t-SNE has no fused test representations; a later compare
    asking for the plot must not reuse it silently plotless, but retrain it, say why, and plot."""
    def compare(out, tsne):
        with pytest.raises(SystemExit) as stop:
            main(["compare", "early-fusion", "--tsne", tsne, "--out", str(tmp_path / out), *TINY])
        assert stop.value.code == 0
        return " ".join(capsys.readouterr().out.split())

    compare("plain", "none")
    assert not (tmp_path / "plain" / "tsne_early-fusion.png").exists()
    second = compare("plotted", "early-fusion")
    assert "not reused from the seed cache, its fused test representations (for the t-SNE plot) were not cached" in second
    assert (tmp_path / "plotted" / "tsne_early-fusion.png").is_file()
    third = compare("again", "early-fusion")  # now cached with them: reused, and still plotted
    assert "reused from the seed cache" in third and "not reused" not in third
    assert (tmp_path / "again" / "tsne_early-fusion.png").is_file()
