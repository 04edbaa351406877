"""The Python API: the README's example runs as written, and its objects hold what the files hold."""

import json
import re
from pathlib import Path

import pytest

import merc_bench
from merc_bench.errors import UserError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    section = text[text.index("### From Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path, monkeypatch):
    namespace: dict = {}
    exec(compile(readme_example(), "README.md (From Python)", "exec"), namespace)
    run, table, frame = namespace["run"], namespace["table"], namespace["frame"]
    saved = json.loads((tmp_path / "runs/api-run/results.json").read_text())
    assert run.summary["test"] == saved["test"] and run.out_dir == Path("runs/api-run")
    assert list(frame["seed"]) == [0, 1]
    assert frame["test_weighted_f1"].tolist() == saved["test"]["weighted_f1"]["per_seed"]
    assert frame.dtypes["test_weighted_f1"].kind == "f" and frame.dtypes["selected_epoch"].kind == "i"
    flat = table.to_frame()
    assert list(flat["model"]) == ["bigru-concat", "early-fusion"]
    assert flat["w-F1 mean"].dtype.kind == "f" and (tmp_path / "runs/api-compare/comparison.csv").is_file()
    loaded = merc_bench.load_results("runs/api-compare").to_frame()
    assert sorted(set(loaded["recipe"])) == ["bigru-concat", "early-fusion"] and len(loaded) == 4
    assert table.runs["early-fusion"].out_dir == Path("runs/api-compare/02-early-fusion")


def test_a_mistake_raises_the_commands_error_before_anything_is_written(tmp_path):
    with pytest.raises(UserError, match="mixer 'bigru'"):
        merc_bench.run("bigru-concat", overrides=["mixer.heads=2"], track=False, out=tmp_path / "r")
    with pytest.raises(UserError, match="protocol"):
        merc_bench.run("bigru-concat", protocol="best", track=False)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("content, field", [
    ("[1, 2]", "top level"), ('{"recipe": "x"}', "'dataset'"), ("{", "not valid JSON"),
    ('{"recipe": "x", "dataset": "d", "protocol": "clean", "runs": [{"seed": "0"}]}', "runs[0].seed"),
    ('{"recipe": "x", "dataset": "d", "protocol": "clean", "runs": [{"seed": 0, "selected_epoch": 1, '
     '"seconds": 1.0}], "test": {"accuracy": {"per_seed": [NaN]}}}', "test.accuracy.per_seed"),
])
def test_load_results_refuses_what_is_not_a_results_file(tmp_path, content, field):
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(UserError, match=re.escape(field)):
        merc_bench.load_results(tmp_path)


def test_load_results_without_results(tmp_path):
    with pytest.raises(UserError, match="no results.json"):
        merc_bench.load_results(tmp_path)
